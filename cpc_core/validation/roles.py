"""Commune codes, the joins of the covariate files and the resolution of the column roles.

The first step of :func:`cpc_core.validation.stage.prepare`:

- :func:`check_lost_zeros` -- codes that lost their leading zero (an error, or padded);
- :func:`join_inputs` -- the commune table left-joined with the covariate inputs, with which
  rows each input matched;
- :func:`resolve_roles` -- role -> the column that fills it, or a :class:`RoleError` naming
  the role, the column looked for and the columns found;
- :func:`invalid_values` -- the values of the numeric roles the analysis cannot use, counted
  (nothing dropped silently);
- :func:`check_outcome` -- an error when the outcome has no numeric value at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpc_core.errors import InputDataError, clip
from cpc_core.validation.choices import REQUIRED_ROLES
from cpc_core.validation.covariates import lost_leading_zero
from cpc_core.validation.results import CovariateInput, Note, RoleError

__all__ = [
    "QUIET_ROLES",
    "TEXT_ROLES",
    "Joined",
    "check_lost_zeros",
    "check_outcome",
    "commune_codes",
    "index_by_code",
    "invalid_values",
    "join_inputs",
    "numeric",
    "report_invalid",
    "resolve_roles",
]

logger = logging.getLogger(__name__)

#: Optional roles whose absence is normal (c or rho suffices; the others have fallbacks).
QUIET_ROLES = ("c", "rho", "c_lagged", "c_floored")


def commune_codes(values: pd.Series) -> pd.Series:
    """Commune codes as text ("01004", "2A004"); integers read from Parquet become their decimal text.

    Examples
    --------
    >>> commune_codes(pd.Series([1004.0, " 2A004", 75056])).tolist()
    ['1004', '2A004', '75056']
    """
    def one(v):
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return values.map(one).astype(object)


def check_lost_zeros(inputs: Sequence[tuple[str, pd.DataFrame, str]], pad: bool,
                notes: list[Note]) -> bool:  # fmt: skip
    """Find commune codes that lost their leading zero; return whether to pad them.

    A 4-digit code (:func:`cpc_core.validation.covariates.lost_leading_zero`) next to 5-character codes
    (in the same or another input) would silently fail to join: an error naming the file, the
    row and the fix, unless ``pad``. When every code has 4 digits the joins agree; a warning
    says what the codes may be.
    """
    found, cog = [], False
    for name, frame, code in inputs:
        if code not in frame.columns:
            continue
        codes = commune_codes(frame[code])
        cog = cog or bool(codes.str.fullmatch(r"\d{5}|2[AB]\d{3}").any())
        lost = lost_leading_zero(codes).to_numpy()
        if lost.any():
            i = int(np.flatnonzero(lost)[0])
            found.append(f"{name}: {int(lost.sum())} code(s) in column {code!r}, e.g. data row "
                         f"{i + 1}: {clip(codes.iloc[i], 20)!r} -> '0{clip(codes.iloc[i], 20)}'")  # fmt: skip
    if not found:
        return False
    what = "; ".join(found)
    if pad:
        text = (f"commune codes with 4 digits zero-padded (a department 01-09 code that lost its "
                f"leading zero): {what}")  # fmt: skip
        logger.warning("validation: %s", text)
        notes.append(Note("data", text, "warning"))
        return True
    if cog:
        raise InputDataError(
            f"{what}: commune codes with 4 digits, a department 01-09 code that lost its leading "
            "zero (a spreadsheet round trip), while other codes have 5 characters: they would "
            "not join. Re-export the file keeping the codes as text, or set "
            "validation.pad_codes: true to zero-pad them"
        )
    text = (f"every commune code has 4 digits or is not a French code ({what}): if they are "
            "French commune codes they lost their leading zero; set validation.pad_codes: true")  # fmt: skip
    logger.warning("validation: %s", text)
    notes.append(Note("data", text, "warning"))
    return False


def index_by_code(frame: pd.DataFrame, code: str, what: str, pad: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` indexed by its commune codes (column ``code``, dropped), checked unique.

    Raises
    ------
    RoleError
        No column ``code``.
    InputDataError
        Duplicated codes (one row per commune is needed to join).
    """
    if code not in frame.columns:
        raise RoleError(
            f"{what}: no commune code column {code!r}; columns found: {list(frame.columns)}"
        )
    out = frame.copy()
    codes = commune_codes(out[code])
    if pad:
        codes = codes.where(~lost_leading_zero(codes), "0" + codes)
    out.index = pd.Index(codes, name="commune")
    out = out.drop(columns=[code])
    dup = out.index[out.index.duplicated()].unique()
    if len(dup):
        n_rows = int(out.index.isin(dup).sum())
        raise InputDataError(
            f"{what}: {len(dup)} duplicated commune code(s) in column {code!r} ({n_rows} rows), "
            f"e.g. {clip(list(dup[:5]))}; one row per commune is needed to join"
        )
    return out


# Roles read as text (codes, names, flags); every other role is numeric.
TEXT_ROLES = ("commune", "name", "city", "department", "region", "c_floored")
# How many communes and values an invalid-value entry lists (the count is always complete).
SHOW = 10


def invalid_values(joined: pd.DataFrame, roles: Mapping[str, str | None],
                    source_of: Mapping[str, str]) -> list[dict]:  # fmt: skip
    """Values of the numeric role columns that the analysis cannot use, counted per column.

    A cell that is present but not a number (``"abc"``), an infinity (``inf``) or a
    population <= 0 becomes a missing value downstream; this says how many, where and why,
    so that it is reported rather than silently dropped.

    Raises
    ------
    InputDataError
        For a column whose type cannot hold numbers at all (dates, durations): converting
        them would give nonsense, not missing values.
    """
    out = []
    seen = set()
    for role, column in roles.items():
        if column is None or role in TEXT_ROLES or column in seen or column not in joined:
            continue
        seen.add(column)
        raw = joined[column]
        src = source_of.get(column, "table")
        if (pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw)
                or isinstance(raw.dtype, pd.PeriodDtype)):  # fmt: skip
            raise InputDataError(
                f"{src}: column {column!r} (role {role!r}) has type {raw.dtype}; numbers are "
                "needed (convert the column, or map the role to another column with --set "
                f"validation.columns.{role}=COLUMN)"
            )
        values = numeric(raw)
        checks = [("not a number", raw.notna() & values.isna()), ("infinite", np.isinf(values))]
        if role == "population":
            checks.append(("not positive", np.isfinite(values) & (values <= 0)))
        for reason, mask in checks:
            n = int(mask.sum())
            if not n:
                continue
            out.append({
                "source": src, "column": column, "role": role, "reason": reason, "n": n,
                "communes": [str(c) for c in joined.index[mask.to_numpy()][:SHOW]],
                "values": [clip(v, 40) for v in raw[mask].iloc[:SHOW]],
            })  # fmt: skip
    return out


def numeric(values: pd.Series) -> pd.Series:
    """A column as float64: booleans as 0/1, anything that is not a number as NaN.

    Examples
    --------
    >>> numeric(pd.Series(["1.5", "abc", None])).tolist()
    [1.5, nan, nan]
    """
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


@dataclass(frozen=True, eq=False)
class Joined:
    """The commune table joined with its covariate inputs.

    Attributes
    ----------
    frame : pandas.DataFrame
        Indexed by the commune code (``commune``); the table's columns, then each input's new
        ones.
    source_of : dict
        Column -> the name of the input it came from.
    matched : dict
        Input name -> bool Series on ``frame``'s index: the rows the input had a row for.
    joins : list of dict
        Per covariate input: rows, rows matched, unmatched rows, columns joined and ignored.
    """

    frame: pd.DataFrame
    source_of: dict[str, str]
    matched: dict[str, pd.Series]
    joins: list[dict]


def join_inputs(table: pd.DataFrame, covariates: Sequence[CovariateInput], commune: str,
                table_name: str, pad: bool, notes: list[Note]) -> Joined:  # fmt: skip
    """Left-join the covariate inputs to the commune table on the commune code, in order.

    Columns already present are ignored (the commune table, then the earlier inputs, win);
    communes without a row in an input get a warning note.

    Parameters
    ----------
    table : pandas.DataFrame
        The commune table, its code in column ``commune``.
    covariates : sequence of CovariateInput
    commune : str
        The commune table's code column.
    table_name : str
        How notes name the commune table.
    pad : bool
        Zero-pad 4-digit codes (:func:`check_lost_zeros`).
    notes : list of Note
        Appended to.

    Returns
    -------
    Joined

    Examples
    --------
    >>> t = pd.DataFrame({"commune": ["a", "b"], "x": [1, 2]})
    >>> cov = CovariateInput("cov.csv", pd.DataFrame({"code": ["a"], "y": [3.0], "x": [9]}), "code")
    >>> j = join_inputs(t, [cov], "commune", "t", False, notes := [])
    >>> j.frame["y"].tolist(), j.joins[0]["columns_ignored"], j.matched["cov.csv"].tolist()
    ([3.0, nan], ['x'], [True, False])
    """
    base = index_by_code(table, commune, table_name, pad)
    source_of = dict.fromkeys(base.columns, table_name)
    matched: dict[str, pd.Series] = {table_name: pd.Series(True, index=base.index)}
    joined = base
    joins = []
    for cov in covariates:
        right = index_by_code(cov.frame, cov.commune, cov.name, pad)
        ignored = [c for c in right.columns if c in joined.columns]
        new = [c for c in right.columns if c not in joined.columns]
        if ignored:
            logger.info("%s: columns already in the table, ignored: %s", cov.name, ignored)
        hit = pd.Series(joined.index.isin(right.index), index=joined.index)
        joined = joined.join(right[new], how="left")
        matched[cov.name] = hit
        source_of.update(dict.fromkeys(new, cov.name))
        n_extra = int((~right.index.isin(base.index)).sum())
        joins.append({
            "name": cov.name, "rows": int(len(right)), "matched": int(hit.sum()),
            "unmatched_table_rows": int((~hit).sum()), "rows_not_in_table": n_extra,
            "columns_joined": new, "columns_ignored": ignored,
        })  # fmt: skip
        if (~hit).any():
            notes.append(Note("data", f"{int((~hit).sum())} of {len(hit)} communes have no row in "
                                      f"{cov.name}; their values from it are missing", "warning"))  # fmt: skip
    return Joined(joined, source_of, matched, joins)


def resolve_roles(joined: Joined, columns: Mapping[str, str | None], table_name: str,
                  found: Sequence[str], notes: list[Note]) -> dict[str, str | None]:  # fmt: skip
    """Role -> the column that fills it in the joined table (None where absent).

    Parameters
    ----------
    joined : Joined
    columns : mapping
        Role -> configured column name (``validation.columns`` as a dict).
    table_name : str
    found : sequence of str
        The columns the user provided, named in the error.
    notes : list of Note
        Appended to: one note per optional role without its column.

    Raises
    ------
    RoleError
        A required role (:data:`~cpc_core.config.validation_options.REQUIRED_ROLES`) has no
        column, or neither ``c`` nor ``rho`` has one.

    Examples
    --------
    >>> j = join_inputs(pd.DataFrame({"commune": ["a"], "tor": [1.0]}), [], "commune", "t", False, [])
    >>> resolve_roles(j, {"commune": "commune", "tor": "tor", "rho": "rho"}, "t", ["commune", "tor"], [])
    {'commune': 'commune', 'tor': 'tor', 'rho': None}
    >>> resolve_roles(j, {"commune": "commune", "population": "pop"}, "t", ["commune"], [])
    Traceback (most recent call last):
    ...
    cpc_core.validation.results.RoleError: t: role 'population' -> column 'pop' not found. Columns found: ['commune']
    """
    roles: dict[str, str | None] = {}
    for role, column in columns.items():
        roles[role] = column if column is not None and column in joined.frame.columns else None
    missing_required = [r for r in REQUIRED_ROLES if r in columns and roles[r] is None]
    if "commune" in roles and roles["commune"] is None:  # consumed as the index
        roles["commune"] = columns["commune"]
        missing_required.remove("commune")
    if missing_required:
        detail = "; ".join(
            f"role {r!r} -> column {columns[r]!r} not found" for r in missing_required
        )
        raise RoleError(f"{table_name}: {detail}. Columns found: {clip(list(found))}",
                        role=missing_required[0])  # fmt: skip
    if "c" in columns and "rho" in columns and roles["c"] is None and roles["rho"] is None:
        raise RoleError(
            f"{table_name}: neither role 'c' (column {columns['c']!r}) nor role 'rho' (column "
            f"{columns['rho']!r}) was found; one is needed. Columns found: {clip(list(found))}"
        )
    for role, column in columns.items():
        if column is not None and roles[role] is None and role not in QUIET_ROLES:
            notes.append(Note("data", f"optional role {role!r}: column {column!r} not found"))
    return roles


def report_invalid(invalid: Sequence[dict], notes: list[Note]) -> None:
    """One warning note and log line per entry of :func:`invalid_values`."""
    for item in invalid:
        text = (f"{item['source']}: column {item['column']!r} (role {item['role']!r}): "
                f"{item['n']} value(s) {item['reason']}, left out of the statistics; communes "
                f"{', '.join(item['communes'])}{' ...' if item['n'] > SHOW else ''} (values "
                f"{', '.join(item['values'])})")  # fmt: skip
        notes.append(Note("data", text, "warning"))
        logger.warning("validation: %s", text)


def check_outcome(joined: Joined, outcome_column: str, table_name: str) -> None:
    """Nothing to validate without one numeric outcome (decisions: an error, not empty tables).

    Raises
    ------
    RoleError
        Of the role ``outcome``: ``cpc validate`` exits 1; the pipeline skips the stage
        loudly, as for a missing outcome column (a grid without an outcome, e.g. squares).
    """
    values = numeric(joined.frame[outcome_column])
    if not np.isfinite(values).any():
        raise RoleError(
            f"{joined.source_of.get(outcome_column, table_name)}: outcome column "
            f"{outcome_column!r} (role 'outcome') has no numeric value in its "
            f"{len(joined.frame)} row(s): nothing to validate",
            role="outcome",
        )
