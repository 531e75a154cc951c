"""Job: the validation and report stage (``cpc validate`` and the pipeline's last stage).

Only wiring and input/output: read the commune table and the optional inputs (covariate
files, search interest, estimates by lag, rho by lag, the hourly area series, commune
polygons, run.json), call :mod:`cpc_core.validation.stage` for the statistics,
:mod:`cpc_core.render.figures` for the figures and :mod:`cpc_core.render.report` for the page, and write::

    <out>/tables.json                 every statistic, machine-readable (docs/outputs-validation.md)
    <out>/tables/<table>.csv|md|tex|html   one file per table and format
    <out>/figures/<figure>.png|svg    Figures 1-5 and the lag sweep
    <out>/communes_public.csv         per-commune estimates, small areas suppressed
    <out>/report.html                 the self-contained report

Exit status of ``cpc validate`` (cpc_core/errors.py): 0 on success; 1 on bad input data (an
empty or unreadable table, a required role without a column, duplicated codes, no numeric
outcome); 2 on a usage or configuration error (a ``--table`` that does not exist or is a
directory, an unknown ``--set`` key). Nothing is written on an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import platform
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from cpc_core import storage
from cpc_core.config.core import load_validation_config
from cpc_core.config.validation_options import (
    POI_ROLES,
    CovariateFile,
    GeoConfig,
    SearchInterestConfig,
    ValidationConfig,
)
from cpc_core.errors import CpcError, InputDataError, UsageError, clip
from cpc_core.estimate import profiles, uncertainty
from cpc_core.render import labels as labels_mod
from cpc_core.render import report, tables
from cpc_core.render.labels import label
from cpc_core.synth import truth as truthmod
from cpc_core.validation import stage as vs
from jobs._figure_process import FigureProcess, use_process
from jobs._progress import progress

__all__ = ["cmd", "read_inputs", "read_table", "run_validation", "validation_options"]

logger = logging.getLogger(__name__)

# Where the pipeline (and the synthetic generator) put the optional inputs, relative to the
# run directory; looked up when the configuration leaves them unset.
_DISCOVER = {
    "covariates": "data/covariates/communes.csv",
    "search_interest": "data/covariates/search_interest.csv",
    "geo": "data/geo/communes.gpkg",
    "poi_counts": "poi_counts.csv",
    "estimates_by_lag": "estimates_by_lag.csv",
    "rho_by_lag": "rho_by_lag.csv",
    "hourly": "internal/hourly.zarr",
    "run": "run.json",
}
_PACKAGES = ("cpc", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "xarray", "zarr",
             "geopandas", "pydantic")  # fmt: skip
# Row order of the regression tables (the paper's), the constant last.
_ORDER = (
    *vs.TRAFFIC, "log_pop_density", "share_singles", "drug_abuse", "poverty_rate",
    "unemployment_rate", "turnout_2017", "share_le_pen", "share_macron", *POI_ROLES,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _sniff_sep(text: str) -> str:
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def _decode(path: Path) -> str:
    """The file's text as UTF-8 (a BOM allowed); any other encoding is an error naming the line.

    Not guessed: Latin-1 would decode anything, so a wrong guess would go unnoticed.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputDataError(
            f"{path}: line {line}: not UTF-8 (byte 0x{data[err.start]:02x}); save the file as "
            "UTF-8 (a Latin-1/Windows-1252 export: iconv -f cp1252 -t utf-8)"
        ) from None


def _decimal_commas(df: pd.DataFrame, codes: tuple[str, ...]) -> pd.DataFrame:
    """In a ``;``-separated table, turn text columns of decimal-comma numbers into numbers.

    A column is converted when most of its values read as numbers once "," is "."; the values
    that do not (``"abc"``) are kept as text, so the validation counts and reports them
    instead of the whole column staying text.
    """
    for c in df.columns:
        if c in codes or not (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])):
            continue
        text = df[c].astype("string")
        converted = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
        present = int(df[c].notna().sum())
        if present and converted.notna().sum() * 2 > present:
            df[c] = converted.astype(object).where(converted.notna(), df[c])
            if converted.notna().sum() == present:
                df[c] = converted.astype(float)
    return df


def read_table(path: str | Path, codes: tuple[str, ...] = ("commune",)) -> pd.DataFrame:
    """Read a CSV (``,`` or ``;`` separated, sniffed from the header) or Parquet table.

    Code columns are read as text so that leading zeros survive ("01004"). In
    ``;``-separated files, text columns holding decimal commas ("1,5") become numbers.

    Parameters
    ----------
    path : str or Path
    codes : tuple of str
        Columns to keep as text.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    cpc_core.errors.UsageError
        A directory, or an extension other than .csv/.txt/.tsv/.parquet/.pq.
    cpc_core.errors.InputDataError
        An empty file, a file that is not UTF-8, or one that cannot be parsed (the line).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(p, "w").write("code;x\\n01004;1,5\\n")
    >>> read_table(p, codes=("code",)).to_dict("records")
    [{'code': '01004', 'x': 1.5}]
    """
    import io

    path = storage.path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{clip(path)}: is a directory, not a table file (CSV or Parquet)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path, **storage.pandas_options(path))
        except (PermissionError, FileNotFoundError, IsADirectoryError, CpcError):
            raise  # the environment or the path, not the file's content
        except Exception as err:  # pyarrow's errors have no common base but OSError/ArrowInvalid
            raise InputDataError(f"{path}: cannot be read as Parquet: {clip(err)}") from None
        for c in codes:
            if c in df.columns:
                df[c] = df[c].astype(str)
        return df
    if suffix not in (".csv", ".txt", ".tsv"):
        raise UsageError(f"{clip(path)}: expected a .csv, .tsv, .txt or .parquet file")
    text = _decode(path)
    if not text.strip():
        raise InputDataError(f"{path}: the file is empty (no header, no rows): nothing to validate")
    sep = "\t" if suffix == ".tsv" else _sniff_sep(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype={c: str for c in codes})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputDataError(f"{path}: cannot be read as a table: {clip(err)}") from None
    if sep == ";":
        # French exports: ';' separators go with decimal commas.
        df = _decimal_commas(df, codes)
    return df


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _remote_file_info(path: storage.RemotePath) -> dict:
    """:func:`_file_info` of an object (or every object under a prefix), through fsspec."""
    fs, base = storage._fs(str(path))
    with storage.guard(path, "reading"):
        files = sorted(fs.find(base)) if fs.isdir(base) else [base]
        h = hashlib.sha256()
        size = 0
        for f in files:
            if f != base:
                h.update(f[len(base):].lstrip("/").encode())
            data = fs.cat_file(f)
            size += len(data)
            h.update(data)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": int(size)}


def _file_info(path: Path) -> dict:
    if isinstance(path, storage.RemotePath):
        return _remote_file_info(path)
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    return {"path": str(path), "sha256": _sha256(path), "bytes": int(size)}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


class _Inputs:
    """Resolves the optional inputs: explicit configuration first, then discovery."""

    def __init__(self, config: ValidationConfig, table_path: Path | None, run_dir: Path | None):
        self.config = config
        self.bases = [b for b in (run_dir, table_path.parent if table_path else None) if b]

    def find(self, key: str, explicit: str | None) -> Path | None:
        if explicit is not None:
            p = storage.path(explicit)
            if not p.exists():
                raise UsageError(f"validation.{key}: {clip(p)}: no such file")
            return p
        if not self.config.discover:
            return None
        for base in self.bases:
            p = base / _DISCOVER[key]
            if p.exists():
                logger.info("validation: using %s %s", key, p)
                return p
        return None


def _pipeline_poi_counts(config: ValidationConfig, inputs: _Inputs, covs: list[vs.CovariateInput],
                         notes: list[dict]) -> tuple[vs.CovariateInput, Path] | None:  # fmt: skip
    """The pipeline's ``poi_counts.csv`` (and its path) as the one source of the POI roles, or None.

    Its ``poi_<category>`` columns are renamed to the POI roles' configured columns, so that
    they fill the roles whatever the covariate files call theirs; joined first, they win
    over the POI columns of any covariate file (those are ignored, and the note says so).
    """
    if not config.use_poi_counts:
        return None
    path = inputs.find("poi_counts", config.poi_counts)
    if path is None:
        return None
    counts = read_table(path, codes=("commune",))
    if "commune" not in counts.columns:
        raise InputDataError(f"{path}: no 'commune' column (columns {clip(list(counts.columns))})")
    cols = config.columns
    rename = {role: getattr(cols, role) for role in POI_ROLES
              if role in counts.columns and getattr(cols, role) is not None}  # fmt: skip
    if not rename:
        logger.info("validation: %s has no POI role column; POI counts from the covariate files", path)
        return None
    shadowed = [f"{c.name}: {', '.join(t for t in rename.values() if t in c.frame.columns)}"
                for c in covs if any(t in c.frame.columns for t in rename.values())]  # fmt: skip
    absent = [r for r in POI_ROLES if r not in rename and getattr(cols, r) is not None]
    text = (f"POI counts ({', '.join(rename.values())}) from {path}, the pipeline's own counts"
            + (f"; the POI columns of the covariate files are ignored ({'; '.join(shadowed)})"
               if shadowed else "")
            + (f"; not in it (categories not counted by the run), from the other inputs if "
               f"anywhere: {', '.join(absent)}" if absent else ""))  # fmt: skip
    logger.info("validation: %s", text)
    notes.append({"scope": "ols", "text": text, "level": "info"})
    frame = counts[["commune", *rename]].rename(columns=rename)
    return vs.CovariateInput(path.name, frame, "commune"), path


# --------------------------------------------------------------------------------------------
# Writing tables
# --------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


#: Appended to every table caption (Markdown, LaTeX, HTML) of a run on generated data.
SYNTHETIC_CAPTION = " [SYNTHETIC DATA: generated by cpc synth, not NetMob23]"


def _caption(title: str, synthetic: bool) -> str:
    return title + (SYNTHETIC_CAPTION if synthetic else "")


def _write_frame(tdir: Path, key: str, raw: pd.DataFrame, shown: pd.DataFrame, title: str,
                 formats: dict, index: bool, synthetic: bool, notes: tuple[str, ...] = (),
                 css_class: str | None = None) -> tuple[dict, str]:  # fmt: skip
    """CSV (``raw``, identifiers) and Markdown, LaTeX, HTML (``shown``, labels) of a table.

    Returns the paths and the HTML table for the report, without a caption: the report's
    section heading is the caption (a second one would repeat it).
    """
    paths = {}
    csv = tdir / f"{key}.csv"
    raw.to_csv(csv, index=not isinstance(raw.index, pd.RangeIndex))  # Table 1's quantities
    paths[f"{key}.csv"] = str(csv)
    caption = _caption(title, synthetic)
    md = tables.frame_to_markdown(shown, formats=formats, index=index)
    below = "".join(f"\n{n}" for n in notes)
    paths[f"{key}.md"] = _write_text(tdir / f"{key}.md", f"{caption}\n\n{md}\n{below}")
    tex = tables.frame_to_latex(shown, formats=formats, index=index, caption=caption,
                                label=f"tab:{key}")  # fmt: skip
    paths[f"{key}.tex"] = _write_text(tdir / f"{key}.tex", tex)
    html = tables.frame_to_html(shown, formats=formats, index=index, css_class=css_class)
    page = report.table_page(html, caption, synthetic=synthetic, notes=notes)
    paths[f"{key}.html"] = _write_text(tdir / f"{key}.html", page)
    return paths, html


def _sample_lines(fit: vs.ModelFit) -> str:
    s = fit.sample
    lost = ", ".join(f"{x['n']} {x['reason']}" for x in s["lost"]) or "none"
    return f"({label(fit.spec.name)}) {s['n_used']} of {s['n_input']} communes used; rows lost: {lost}"


def _regression_outputs(tdir: Path, res: vs.ValidationResult, prepared: vs.Prepared,
                        config: ValidationConfig,
                        synthetic: bool) -> tuple[dict, list[report.ReportTable]]:  # fmt: skip
    paths: dict[str, str] = {}
    sections = []
    lags = (prepared.lag_h, prepared.cpc_lag_h)
    names = {**vs.LABELS, "outcome": config.outcome_label,
             "log_cpc_per_1000": vs.variable_label("log_cpc_per_1000", config.outcome_label, *lags),
             "log_cpc_per_1000_lag": vs.variable_label("log_cpc_per_1000_lag", config.outcome_label, *lags)}  # fmt: skip
    shown_labels = {k: label(v) for k, v in names.items()}  # identifiers -> readers' labels
    long = vs.ols_frame(res, validation_options(config), *lags)
    for key, tab in res.tables.items():
        if tab.status != "ok":
            logger.warning("validation: %s not produced: %s", key, tab.reason)
            sections.append(report.ReportTable(key, tab.spec.title, skipped=tab.reason))
            continue
        long.loc[long["table"] == key].to_csv(tdir / f"{key}.csv", index=False)
        paths[f"{key}.csv"] = str(tdir / f"{key}.csv")
        dependent = [label(vs.variable_label(f.spec.y, config.outcome_label, *lags)) for f in tab.fits]
        present = {t for f in tab.fits for t in f.result.params.index}
        order = [t for t in (*_ORDER, *prepared.pcs, "outcome", "log_cpc_per_1000") if t in present]
        built = tables.regression_table(
            [f.result for f in tab.fits], covariate_labels=shown_labels,
            dependent_labels=dependent, column_labels=tab.column_labels, order=order,
            digits=config.digits, notes=(tab.omission_note,),
        )  # fmt: skip
        # tab.title is the paper's title, marked partial when controls were left out
        caption = _caption(tab.title, synthetic)
        notes = [_sample_lines(f) for f in tab.fits]
        notes.append(f"Covariance: {config.cov_type}, "
                     f"{'t' if config.use_t else 'normal'}-based p-values.")  # fmt: skip
        paths[f"{key}.md"] = _write_text(tdir / f"{key}.md", f"{caption}\n\n"
                                         + tables.to_markdown(built))  # fmt: skip
        paths[f"{key}.tex"] = _write_text(
            tdir / f"{key}.tex", tables.to_latex(built, caption=caption, label=f"tab:{key}")
        )
        html = tables.to_html(built)
        page = report.table_page(html, caption, synthetic=synthetic, notes=notes)
        paths[f"{key}.html"] = _write_text(tdir / f"{key}.html", page)
        sections.append(report.ReportTable(key, tab.title, html, tuple(notes)))
    return paths, sections


def _table4(run: Mapping | None, run_dir: Path | None) -> report.ReportTable:
    """Table 4 (POIs in the top tiles): written by the pipeline, not here; say where or why not."""
    title = "Table 4: points of interest in the top tiles"
    for m in (run or {}).get("missing", ()) or ():
        if m.get("output") == "poi_top_tiles.csv":
            return report.ReportTable("table4", title, skipped=str(m.get("reason")))
    path = run_dir / "poi_top_tiles.csv" if run_dir is not None else None
    if path is None or not path.exists():
        reason = ("Table 4 is built by the pipeline from tile-level traffic and a POI file "
                  "(poi.path); this commune table came without a poi_top_tiles.csv"
                  + (" (no run folder)" if run_dir is None else f" in {run_dir}"))  # fmt: skip
        return report.ReportTable("table4", title, skipped=reason)
    t = pd.read_csv(path)
    if t.empty:
        return report.ReportTable("table4", title, skipped=(
            f"{path.name} is empty: no POI category had poi.min_n POIs in the top tiles "
            "(see the run's log and run.json)"))  # fmt: skip
    shown = labels_mod.relabel(t, index=False, values=())
    html = tables.frame_to_html(shown, index=False,
                                formats={"mean value per poi": tables.format_sig})  # fmt: skip
    return report.ReportTable("table4", title, html, (
        f"From the pipeline's {path.name}: mean traffic per POI of each category in the top "
        "tiles; categories with fewer than poi.min_n POIs are left out. Tile-level inputs are "
        "not published; the table shows sums over categories only.",))  # fmt: skip


def _write_tables(out: Path, prepared: vs.Prepared, res: vs.ValidationResult,
                  config: ValidationConfig, synthetic: bool = False,
                  table4: report.ReportTable | None = None,
                  ) -> tuple[dict, list[report.ReportTable]]:  # fmt: skip
    tdir = out / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    sections = []

    t1 = res.table1
    sig = {c: tables.format_sig for c in ("mean", "std", "min", "25%", "50%", "75%", "max")}
    shown = labels_mod.relabel(t1)
    n_floor = int(prepared.stats_frame["c_floored"].sum())
    notes1 = (
        f"{n_floor} communes with c_j floored at {config.c_floor:g} (rho_j <= 0).",
        f"c_j = {config.onion_share} x {config.csam_share} x rho_j, the commune table's, at Tor "
        f"lag {prepared.table_lag_h:+d} h.",
        "Three significant digits; values under 0.001 in scientific notation.",
    )  # fmt: skip
    p, html = _write_frame(tdir, "table1", t1, shown, "Table 1: summary of rho_j and c_j",
                           {label(k): v for k, v in sig.items()}, True, synthetic, notes1)  # fmt: skip
    paths.update(p)
    sections.append(report.ReportTable("table1", "Table 1: correction factors", html, notes1))

    ci = config.spearman_ci
    sp = res.spearman[["indicator", "rho", "p_value", "n",
                       *(["ci_lower", "ci_upper", "ci_level", "ci_draws"] if ci.enabled else [])]]
    shown = labels_mod.relabel(sp[["indicator", "rho", "p_value", "n"]], values=("indicator",))
    notes2 = (f"Outcome: {label(config.outcome_label)}; communes with a published value only.",)
    if ci.enabled:
        shown.insert(2, f"{round(100 * ci.level)} % bootstrap interval", [
            "" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
            for lo, hi in zip(sp["ci_lower"], sp["ci_upper"], strict=True)])  # fmt: skip
        notes2 += (f"Intervals: percentile pairs bootstrap over the communes "
                   f"(validation.spearman_ci: {ci.draws} resamples, seed {ci.seed}); they treat "
                   "the estimates as exact.",)  # fmt: skip
    p, html = _write_frame(tdir, "spearman", sp, shown,
                           "Table 2: Spearman correlation with the outcome",
                           {label("rho"): "{:.3f}", label("p_value"): tables.format_p}, False,
                           synthetic, notes2)  # fmt: skip
    paths.update(p)
    sections.append(report.ReportTable("spearman", "Table 2: Spearman correlations", html, notes2))

    dep = res.dependent
    pivot, how = tables.dependent_pivot(dep)
    methods = "; ".join(f"{labels_mod.METHOD_SHORT.get(m, m)}: {vs.METHOD_LABELS.get(m, m)}"
                        for m in dict.fromkeys(dep["method"]))  # fmt: skip
    notes_dep = (how, *(n.text for n in res.notes if n.scope == "dependent_tests"),
                 f"Methods: {methods}.")  # fmt: skip
    if pivot.empty:
        logger.warning("validation: dependent_tests empty: %s", how)
        sections.append(report.ReportTable("dependent_tests", "Tests of dependent correlations",
                                           skipped=how, notes=notes_dep[1:]))  # fmt: skip
        dep.to_csv(tdir / "dependent_tests.csv", index=False)
        paths["dependent_tests.csv"] = str(tdir / "dependent_tests.csv")
    else:
        # The CSV holds every field in long form (docs/outputs-validation.md); the readable
        # formats hold the pivot: one row per comparison, a column per method.
        p, html = _write_frame(tdir, "dependent_tests", dep, pivot,
                               "Tests of dependent correlations: log cpc per 1000 vs each service",
                               {}, True, synthetic, notes_dep, css_class="compact")  # fmt: skip
        paths.update(p)
        sections.append(report.ReportTable("dependent_tests", "Tests of dependent correlations",
                                           html, notes_dep))  # fmt: skip

    p, reg = _regression_outputs(tdir, res, prepared, config, synthetic)
    paths.update(p)
    if table4 is not None:
        if table4.skipped:
            logger.warning("validation: table4 not produced: %s", table4.skipped)
        reg = [*reg[:1], table4, *reg[1:]]  # the paper's order: Table 3, 4, 5...
    sections += reg
    return paths, sections


def _read_polygons(geo_cfg: GeoConfig | None):
    """Commune polygons indexed by the commune code (None without ``validation.geo``)."""
    if geo_cfg is None:
        return None
    import geopandas as gpd

    g = gpd.read_file(storage.buffer(geo_cfg.path), layer=geo_cfg.layer)
    if geo_cfg.commune not in g.columns:
        raise InputDataError(f"{clip(geo_cfg.path)}: no column {clip(geo_cfg.commune)!r}; columns "
                             f"found: {clip(', '.join(map(str, g.columns)))}")
    g[geo_cfg.commune] = g[geo_cfg.commune].astype(str)
    dup = g[geo_cfg.commune].duplicated()
    if dup.any():
        raise InputDataError(f"{clip(geo_cfg.path)}: {int(dup.sum())} duplicate commune code(s) in "
                             f"column {clip(geo_cfg.commune)!r}, e.g. "
                             f"{clip(g.loc[dup, geo_cfg.commune].iloc[0])}")
    return g.set_index(geo_cfg.commune)[["geometry"]]


def _outcome_models_reading(m: vs.OutcomeModels) -> str:
    """One paragraph: what the models beside the paper's OLS say (numbers from ``m``)."""
    parts = [f"Fitted on Table 3's outcome model ({m.nobs} communes, zeros included) with its "
             "regressors."]
    term = "log_cpc_per_1000"
    if m.hurdle is not None:
        h = m.hurdle
        pos = h.positive_part
        b = pos.params.get(term, float("nan"))
        p = pos.pvalues.get(term, float("nan"))
        parts.append(
            f"Hurdle: {h.n_positive} of {h.nobs} values are positive; the logit of a positive "
            f"value finds {'an' if h.zero_wald_p < 0.05 else 'no'} association with the "
            f"regressors at 5 % (robust Wald p = {tables.format_p(h.zero_wald_p)}, logit "
            f"coefficient of {label(term)} {tables.format_sig(h.zero_params.get(term, float('nan')))}); "
            f"in the positive part the coefficient of {label(term)} is "
            f"{tables.format_sig(b)} (p = {tables.format_p(p)}).")
    elif not m.status["hurdle"].startswith("disabled"):
        parts.append(f"Hurdle model {m.status['hurdle']}.")
    if m.counts:
        comp = m.comparison[m.comparison["comparable"] == "all rows, count"]
        best = comp.loc[comp["aic"].idxmin(), "model"] if comp["aic"].notna().any() else None
        vu = comp.dropna(subset=["vuong_stat"])
        vtxt = "; ".join(f"{r.model} vs {r.vuong_vs}: V = {r.vuong_stat:.2f} "
                         f"(p = {tables.format_p(r.vuong_p)})" for r in vu.itertuples())
        parts.append(f"Count models (counts = outcome x population / 1000): lowest AIC {best}"
                     + (f"; Vuong {vtxt}" if vtxt else "") + ".")
    elif not m.status["counts"].startswith("disabled"):
        parts.append(f"Count models {m.status['counts']}.")
    if m.spatial is not None:
        mo = m.spatial.moran
        fit = m.spatial.fit.set_index("model")
        parts.append(
            f"Moran's I of the OLS residuals is {mo.I:.3f} (expected {mo.expected_I:.3f}; "
            f"one-sided permutation p = {tables.format_p(mo.p_upper)}, {mo.permutations} "
            f"permutations, {m.spatial.weights.kind} weights, {len(m.spatial.weights.islands)} "
            f"island(s)): {'spatial dependence, so Table 3' + chr(39) + 's p-values are likely too small' if mo.p_upper < 0.05 else 'no evidence of spatial dependence at 5 %'}. "
            f"Spatial error lambda = {fit.at['error', 'spatial_param']:.3f}, spatial lag rho = "
            f"{fit.at['lag', 'spatial_param']:.3f}; AIC OLS {fit.at['ols', 'aic']:.1f}, error "
            f"{fit.at['error', 'aic']:.1f}, lag {fit.at['lag', 'aic']:.1f}.")
    elif not m.status["spatial"].startswith("disabled"):
        parts.append(f"Spatial models {m.status['spatial']}.")
    parts.append("AIC/BIC rank models only within one 'comparable' group (same outcome scale and "
                 "rows).")
    return " ".join(parts)


def _outcome_models_outputs(tdir: Path, m: vs.OutcomeModels, synthetic: bool,
                            ) -> tuple[dict, report.ReportTable]:  # fmt: skip
    """tables/outcome_models.* (fit comparison) and outcome_models_coefficients.*."""
    title = "Outcome models beside the paper's OLS: hurdle, count and spatial models"
    reading = _outcome_models_reading(m)
    if m.comparison.empty:
        why = "; ".join(f"{k}: {v}" for k, v in m.status.items())
        return {}, report.ReportTable("outcome_models", title, skipped=why,
                                      notes=tuple(n.text for n in m.notes))
    cols = ["model", "sample", "comparable", "nobs", "k", "llf", "aic", "bic", "vuong_vs",
            "vuong_stat", "vuong_p", "converged"]
    shown = labels_mod.relabel(m.comparison[cols], index=False)
    sig = {label(c): "{:.2f}" for c in ("llf", "aic", "bic", "vuong_stat")}
    sig[label("vuong_p")] = tables.format_p
    notes = (reading, *(n.text for n in m.notes))
    paths, html = _write_frame(tdir, "outcome_models", m.comparison, shown, title, sig, False,
                               synthetic, notes, css_class="compact")  # fmt: skip
    coefs = m.coefficients.assign(label=[label(t) for t in m.coefficients["term"]])
    shown_c = labels_mod.relabel(coefs[["model", "part", "label", "coef", "se", "p_value"]],
                                 index=False)
    fmt = {label("coef"): tables.format_sig, label("se"): tables.format_sig,
           label("p_value"): tables.format_p}
    p2, _ = _write_frame(tdir, "outcome_models_coefficients", m.coefficients, shown_c,
                         title + ": coefficients", fmt, False, synthetic, (reading,))
    paths.update(p2)
    return paths, report.ReportTable("outcome_models", title, html, notes[1:], reading=reading)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


#: figures :func:`_plan_figures` may draw (Figures 1-5, the lag sweep): steps of the progress bar
FIGURE_STEPS = 7


@dataclass
class _Planned:
    """One planned figure: its report entry, what draws it and, once known, its bytes."""

    key: str
    title: str
    caption: str
    spec: Any  # figures.FigureSpec
    data: dict[str, bytes] | None = None  # bytes per format: stored, answered or drawn here
    future: Future | None = None  # the helper's answer, when it was queued there


class _FigurePlan:
    """The validation's figures: planned before the statistics, collected after them.

    :meth:`add` takes a figure not yet drawn (a :class:`~cpc_core.render.figures.FigureSpec`):
    its stored files are reused when they were drawn from the same inputs; else it goes to
    the helper process (``jobs._figure_process``, when ``process`` is given), which draws it
    while this process computes the statistics, or it is drawn here at :meth:`collect`.
    """

    def __init__(self, out: Path, config: ValidationConfig, process: FigureProcess | None = None) -> None:
        from cpc_core.render import figures  # matplotlib (~0.6 s) only when figures are drawn

        self.figures = figures
        self.fdir = out / "figures"
        # the report embeds the PNG: rendered first, written only if asked for
        self.formats = list(dict.fromkeys(("png", *config.figures.formats)))
        self.write = list(config.figures.formats)
        self.dpi = config.figures.dpi
        self.process = process
        self.items: list[_Planned] = []
        self.skipped: list[tuple[str, str]] = []
        self.removed: list[str] = []

    def add(self, key: str, title: str, caption: str, func, *args, **kwargs) -> None:
        """Plan figure ``key`` (``func(*args, **kwargs)``, one of the figure functions)."""
        item = _Planned(key, title, caption, self.figures.FigureSpec(func.__name__, args, kwargs))
        item.data = self.figures.stored_figure(self.fdir, key, item.spec.inputs, self.formats, self.write,
                                               dpi=self.dpi)  # fmt: skip
        if item.data is None and self.process is not None:
            item.future = self.process.submit(item.spec, self.formats, self.dpi)
        self.items.append(item)

    def _draw(self, spec) -> dict[str, bytes]:
        return self.figures.draw(spec, self.formats, dpi=self.dpi)

    def collect(self, on_figure: Callable[[str], None] | None = None) -> tuple[dict, list]:
        """Wait for, write and return the figures: (paths, report figures), in plan order.

        With a helper process, this process draws too: the figures the helper has not taken
        yet, from the last one back, while the helper goes on from the first. ``on_figure(key)``
        is called after each figure is written (a progress bar's tick).
        """
        from jobs._figure_process import FigureProcessError

        self.fdir.mkdir(parents=True, exist_ok=True)
        for item in self.items:  # no helper: drawn here, in order
            if item.data is None and item.future is None:
                self._finish(item, self._draw(item.spec), on_figure)
        waiting = {item.future: item for item in self.items if item.data is None}
        warned = False
        while waiting:
            for fut in [f for f in waiting if f.done()]:
                item = waiting.pop(fut)
                try:
                    data = fut.result()
                except FigureProcessError as e:  # the jobs still queued are taken below
                    if not warned:
                        logger.warning("figures: the helper process %s; drawing the rest here", e)
                        warned = True
                    data = self._draw(item.spec)
                self._finish(item, data, on_figure)
            taken = self.process.take_last() if self.process is not None else None
            if taken is not None:
                spec, fut = taken
                fut.set_result(self._draw(spec))
            elif waiting:
                wait(list(waiting), return_when=FIRST_COMPLETED)
        paths: dict[str, str] = {}
        for item in self.items:
            for fmt in self.write:
                paths[f"{item.key}.{fmt}"] = str(self.fdir / f"{item.key}.{fmt}")
        shown = [report.ReportFigure(i.key, i.title, i.caption, i.data["png"]) for i in self.items]
        return paths, shown

    def _finish(self, item: _Planned, data: dict[str, bytes], on_figure) -> None:
        """Write a drawn figure and its record; tick the progress bar."""
        self.figures.store_figure(self.fdir, item.key, item.spec.inputs, data, self.formats, self.write,
                                  dpi=self.dpi)  # fmt: skip
        item.data = data
        if on_figure is not None:
            on_figure(item.key)


def _plan_figures(out: Path, prepared: vs.Prepared, config: ValidationConfig,
                  paths_in: Mapping[str, Path | None], run_record: Mapping | None,
                  process: FigureProcess | None = None) -> _FigurePlan:  # fmt: skip
    """Figures 1-5, the lag sweep and the uncertainty plot, planned (:class:`_FigurePlan`).

    Their data are read and prepared here (the hourly series' one compute point, the
    polygons); with a helper ``process`` they are drawn there while the caller goes on.
    """
    plan = _FigurePlan(out, config, process)
    figures = plan.figures
    add, skipped, removed = plan.add, plan.skipped, plan.removed
    f = prepared.stats_frame

    mean_rho = float(f["rho"].mean())
    add("figure1", "Figure 1: composition of the estimates",
        f"Global share = onion x pornographic x CSAM share; locally the pornographic share is "
        f"replaced by rho_j (mean {mean_rho:.3f} over {int(f['rho'].notna().sum())} communes).",
        figures.composition, config.onion_share, config.porn_share, config.csam_share, mean_rho)  # fmt: skip

    if prepared.pca is not None:
        add("figure2", "Figure 2: search-interest PCA loadings",
            f"Loadings of the {len(prepared.pca.loadings)} non-zero search terms; "
            f"{', '.join(prepared.pcs)} are used as covariates. Signs are fixed so that each "
            "component's largest absolute loading is positive, as scikit-learn >= 1.5 does; the "
            "authors' scikit-learn PCA may have used the older rule (largest absolute region "
            "score positive), under which "
            + (", ".join(vs.score_rule_flips(prepared.pca)) or "no component")
            + f" has the opposite sign. z-scores with ddof = {prepared.pca.ddof}.",
            figures.pca_loadings, prepared.pca.loadings, prepared.pca.explained_variance_ratio)  # fmt: skip
    else:
        skipped.append(("Figure 2", "no search-interest table"))

    hourly_path = paths_in["hourly"]
    top_n = vs.top_communes(prepared, config.figures.top_n)
    n_small = int(prepared.frame["small_area"].sum())
    if hourly_path is None:
        skipped.append(("Figures 3 and 4", "no hourly area series (internal/hourly.zarr)"))
    else:
        import xarray as xr

        ds = xr.open_zarr(hourly_path, consolidated=False)
        areas = [a for a in prepared.frame.index if a in set(map(str, ds["area"].values))]
        if not areas:
            skipped.append(("Figures 3 and 4", f"no commune of the table is in {hourly_path}"))
        else:
            # The one compute point of the figures: communes x hours, small.
            ds = ds.sel(area=areas)[["youtube", "web_adult", "tor"]].load()
            c = xr.DataArray(prepared.frame.loc[areas, "c"].to_numpy(), dims="area",
                             coords={"area": ds["area"]})  # fmt: skip
            cpc = ds["tor"] * c
            top = [a for a in top_n if a in areas]
            profs = {
                "YouTube (all communes)": profiles.weekday_hour_profile(ds["youtube"]),
                "Web_Adult (all communes)": profiles.weekday_hour_profile(ds["web_adult"]),
                "Tor (all communes)": profiles.weekday_hour_profile(ds["tor"]),
            }
            if top:
                profs[f"cpc (top {len(top)} communes by cpc per 1000)"] = (
                    profiles.weekday_hour_profile(cpc.sel(area=top))
                )
            add("figure3", "Figure 3: download traffic by weekday and hour",
                "Mean traffic per local weekday and hour, summed over communes, normalised to "
                f"a maximum of 1. The cpc panel sums the {len(top)} communes with the highest "
                "cpc per 1000 among those above the disclosure thresholds.",
                figures.weekday_hour_heatmaps, profs)  # fmt: skip
            if top:
                one = top[0]
                name = prepared.frame.at[one, "name"] if "name" in prepared.frame else None
                name = name if isinstance(name, str) and name else one
                series = cpc.sel(area=one).to_pandas()
                add("figure4", "Figure 4: the commune with the highest cpc estimate",
                    f"{name} ({one}): hourly cpc estimate (c_j x hourly Tor traffic) and its "
                    "weekday x hour profile. Commune level only; the paper's per-tile lines are "
                    "not published (disclosure control).",
                    figures.top_commune, series, profiles.weekday_hour_profile(cpc.sel(area=[one])),
                    str(name))  # fmt: skip
            else:
                skipped.append(("Figure 4", "no commune above the disclosure thresholds"))
            if n_small:
                removed.append(f"Figures 3 and 4: {n_small} small areas could not be chosen as "
                               "top communes.")  # fmt: skip

    geo_cfg = config.geo
    if geo_cfg is None:
        skipped.append(("Figure 5", "no commune polygons (validation.geo)"))
    else:
        import geopandas as gpd

        g = gpd.read_file(storage.buffer(geo_cfg.path), layer=geo_cfg.layer)
        if geo_cfg.commune not in g.columns:
            raise InputDataError(f"{geo_cfg.path}: no column {geo_cfg.commune!r}; columns found: "
                             f"{list(g.columns)}")  # fmt: skip
        g = g[[geo_cfg.commune, *(["city"] if "city" in g.columns else []), "geometry"]]
        g[geo_cfg.commune] = g[geo_cfg.commune].astype(str)
        pub = vs.public_communes(prepared)
        if "city" in pub.columns and "city" in g.columns:
            g = g.drop(columns=["city"])
        m = g.merge(pub, left_on=geo_cfg.commune, right_on="commune", how="inner")
        if m.empty:
            skipped.append(("Figure 5", f"no commune of the table is in {geo_cfg.path}"))
        else:
            m["suppressed"] = m["small_area"].astype(bool)  # hatched in both modes
            by = "city" if "city" in m.columns else None
            add("figure5", "Figure 5: cpc estimate per 1000 inhabitants by metropole",
                f"{len(m)} communes on a common log colour scale. Small areas "
                f"({int(m['suppressed'].sum())}) are drawn grey and hatched without their "
                "value. Estimates, not facts: see the cautions.",
                figures.choropleths, m, "cpc_per_1000", by)  # fmt: skip
            removed.append(f"Figure 5: {int(m['suppressed'].sum())} small areas drawn hatched "
                           "without their value.")  # fmt: skip

    intervals = _intervals(prepared, run_record)
    if intervals is None:
        skipped.append(("Uncertainty of the top communes", "the commune table has no interval "
                        "columns (estimate.uncertainty.enabled, on by default in cpc run)"))  # fmt: skip
    else:
        frame, overlap, level = intervals
        add("caterpillar", "Uncertainty of the communes with the highest cpc per 1000",
            "Estimate and interval of cpc per 1000 (bootstrap of rho_j over days and Monte "
            "Carlo of the global shares) for the top communes above the disclosure thresholds; "
            "the dashed line is the median over all of them. "
            + report.uncertainty_sentence(overlap, level),
            figures.caterpillar, frame, top_n=CATERPILLAR_TOP, level=level or 0.90,
            median=overlap["median"])  # fmt: skip

    rbl_path = paths_in["rho_by_lag"]
    if rbl_path is None:
        skipped.append(("Lag sweep", "no rho_by_lag.csv"))
    else:
        rbl = read_table(rbl_path)
        rbl = rbl.loc[rbl["commune"].astype(str).isin(f.index)]
        marks = {"Table 7": config.lag_h}
        reported = (run_record or {}).get("config", {}).get("estimate", {}).get("lag_h")
        if reported is not None:
            marks = {"reported estimate": int(reported), **marks}
        per_lag = rbl.dropna(subset=["rho"]).groupby("lag_h").size()
        how = ("Box plots of rho_j over communes per lag (whiskers 1.5 IQR, no outliers drawn)"
               if len(per_lag) and per_lag.min() >= figures.MIN_BOX_POINTS else
               f"rho_j of each commune per lag, one point each (fewer than "
               f"{figures.MIN_BOX_POINTS} communes at some lag: a box plot would say less)")  # fmt: skip
        add("lag_sweep", "Lag sweep of the correlation rho_j", f"{how}, with the mean.",
            figures.lag_sweep, rbl, marks)  # fmt: skip

    return plan


#: Communes in the caterpillar plot of the report.
CATERPILLAR_TOP = 30


def _intervals(prepared: vs.Prepared, run: Mapping | None):
    """Public communes with an interval of cpc per 1000, the median overlap and the level.

    ``None`` when the table has no interval columns. Small areas are left out in both
    suppression modes: the plot names communes. The level is the run's
    ``estimate.uncertainty.level`` (``None`` for an external table).
    """
    pub = vs.public_communes(prepared)
    if "cpc_per_1000_lo" not in pub or pub["cpc_per_1000_lo"].isna().all():
        return None
    pub = pub.loc[~pub["small_area"].astype(bool)].set_index("commune")
    if pub["cpc_per_1000_lo"].isna().all():  # only small areas have intervals: nothing to show
        return None
    overlap = uncertainty.median_overlap(pub["cpc_per_1000"], pub["cpc_per_1000_lo"],
                                         pub["cpc_per_1000_hi"])  # fmt: skip
    level = ((run or {}).get("config", {}).get("estimate", {}) or {}).get("uncertainty", {})
    level = (level or {}).get("level")
    return pub, overlap, (float(level) if level is not None else None)


def _uncertainty_text(prepared: vs.Prepared, run: Mapping | None) -> list[str]:
    """The report's section "Uncertainty of the estimates" (empty without intervals)."""
    intervals = _intervals(prepared, run)
    if intervals is None:
        return []
    return [report.uncertainty_sentence(intervals[1], intervals[2])]


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

def _run_estimate(run: Mapping | None, given: bool, table_path: Path | None,
                  run_path: Path | None) -> Mapping | None:  # fmt: skip
    """The run's ``estimate`` section when the commune table is that run's own, else None.

    A run record handed over by the caller (the pipeline) describes the table by contract. A
    discovered ``run.json`` does so only for the table it recorded (``outputs.communes``), or
    a ``communes.csv``/``communes.parquet`` in its own folder; any other table is external
    and keeps the validation's own constants.

    Examples
    --------
    >>> run = {"config": {"estimate": {"lag_h": -2}}, "outputs": {"communes": "/r/communes.csv"}}
    >>> _run_estimate(run, False, Path("/r/communes.parquet"), Path("/elsewhere/run.json"))
    {'lag_h': -2}
    >>> _run_estimate(run, False, Path("/r/mine.csv"), Path("/r/run.json")) is None
    True
    """
    est = ((run or {}).get("config") or {}).get("estimate")
    if not isinstance(est, Mapping):
        return None
    if given:
        return est
    if table_path is None or run_path is None:
        return None
    recorded = ((run or {}).get("outputs") or {}).get("communes")
    table = table_path.resolve()
    if recorded and storage.path(recorded).resolve().with_suffix("") == table.with_suffix(""):
        return est
    beside = table.parent == run_path.resolve().parent
    return est if beside and table.stem == "communes" and table.suffix in (".csv", ".parquet") else None


def read_inputs(table: str | Path | pd.DataFrame, config: ValidationConfig, *,
                run_dir: str | Path | None = None, run_record: Mapping | None = None,
                estimate: vs.EstimateConstants | None = None) -> vs.ValidationInputs:  # fmt: skip
    """Build the validation's inputs from the files on disk (``cpc validate``).

    The one place that turns paths into :class:`~cpc_core.validation.inputs.ValidationInputs`:
    the commune table, the covariate files (the pipeline's ``poi_counts.csv`` first), the
    search interest, ``estimates_by_lag.csv``, the run record, and the estimate's constants
    (:func:`~cpc_core.validation.inputs.effective_constants`). Optional inputs left unset in
    ``config`` are looked for in ``run_dir``, then next to the table.

    Parameters
    ----------
    table : path or pandas.DataFrame
    config : ValidationConfig
    run_dir : path, optional
    run_record : mapping, optional
        The run record, when the caller (the pipeline) holds it: the table is then the run's own.
    estimate : EstimateConstants, optional
        The run's constants, handed over in memory by the pipeline (else read from the run
        record when the table is the run's own).
    """
    cols = config.columns
    table_path = None if isinstance(table, pd.DataFrame) else storage.path(table)
    inputs = _Inputs(config, table_path, storage.path(run_dir) if run_dir else None)
    provenance: dict[str, dict] = {}

    if table_path is not None:
        if not table_path.exists():
            raise UsageError(f"--table {clip(table_path)}: no such file")
        if table_path.is_dir():
            raise UsageError(f"--table {clip(table_path)}: is a directory, not a table file "
                             "(CSV or Parquet)")  # fmt: skip
        frame = read_table(table_path, codes=(cols.commune,))
        provenance["commune table"] = _file_info(table_path)
        name = table_path.name
    else:
        frame, name = table, "commune table"

    if config.covariates is not None:
        cov_files = list(config.covariates)
    else:
        found = inputs.find("covariates", None)
        cov_files = [CovariateFile(path=str(found))] if found else []
    covs = []
    for cf in cov_files:
        p = storage.path(cf.path)
        if not p.exists():
            raise UsageError(f"validation.covariates: {clip(p)}: no such file")
        covs.append(vs.CovariateInput(p.name, read_table(p, codes=(cf.commune,)), cf.commune))
        provenance[f"covariates {p.name}"] = _file_info(p)

    notes: list[dict] = []
    poi = _pipeline_poi_counts(config, inputs, covs, notes)
    if poi is not None:
        covs.insert(0, poi[0])  # joined first: its POI columns win over any later file's
        provenance[f"POI counts {poi[1].name}"] = _file_info(poi[1])

    si_path = inputs.find("search_interest", config.search_interest.path if config.search_interest
                          else None)  # fmt: skip
    search = None
    if si_path is not None:
        region = config.search_interest.region if config.search_interest else "region"
        search = read_table(si_path, codes=(region,))
        provenance["search interest"] = _file_info(si_path)

    # The run record: the caller's (the pipeline's), else a discovered run.json. When the
    # table is the run's own, the estimate's constants and lag are used (one source).
    run_path = inputs.find("run", None)
    run = dict(run_record) if run_record is not None else None
    if run is None and run_path is not None:
        run = json.loads(run_path.read_text())
        provenance["run.json"] = _file_info(run_path)
    est = _run_estimate(run, run_record is not None, table_path, run_path)
    own_run = run_record is not None or estimate is not None or est is not None
    if estimate is None and est is not None:
        estimate = vs.EstimateConstants.from_mapping(est)
    own = vs.EstimateConstants(config.onion_share, config.csam_share, config.c_floor,
                               0 if config.table_lag_h is None else int(config.table_lag_h))  # fmt: skip
    constants, constant_notes = vs.effective_constants(own, tuple(config.model_fields_set), estimate)
    if estimate is not None:
        logger.info("validation: constants from the run's estimate: %s", constants)

    ebl_path = inputs.find("estimates_by_lag", config.estimates_by_lag)
    ebl = read_table(ebl_path) if ebl_path else None
    if ebl_path:
        provenance["estimates by lag"] = _file_info(ebl_path)

    # an explicit geo path is checked where it is read (figures, spatial models)
    geo_path = storage.path(config.geo.path) if config.geo else inputs.find("geo", None)
    paths = {"search_interest": si_path, "geo": geo_path,
             "hourly": inputs.find("hourly", config.hourly),
             "rho_by_lag": inputs.find("rho_by_lag", config.rho_by_lag),
             "run_dir": Path(run_dir) if run_dir else (table_path.parent if table_path else None)}  # fmt: skip
    return vs.ValidationInputs(
        table=frame, table_name=name, constants=constants, own_run=own_run, covariates=tuple(covs),
        search_interest=search, estimates_by_lag=ebl, run=run, provenance=provenance,
        notes=tuple([*constant_notes, *notes]), paths=paths, folders=tuple(inputs.bases),
    )  # fmt: skip


def _effective_config(config: ValidationConfig, inputs: vs.ValidationInputs) -> ValidationConfig:
    """The configuration the outputs record: discovered inputs filled in, the run's constants."""
    update: dict = {}
    if config.search_interest is None and inputs.paths.get("search_interest") is not None:
        update["search_interest"] = SearchInterestConfig(path=str(inputs.paths["search_interest"]))
    if config.geo is None and inputs.paths.get("geo") is not None:
        update["geo"] = GeoConfig(path=str(inputs.paths["geo"]))
    if inputs.own_run:
        k = inputs.constants
        update.update(onion_share=k.onion_share, csam_share=k.csam_share, c_floor=k.c_floor,
                      table_lag_h=k.lag_h)  # fmt: skip
    return config.model_copy(update=update)


def validation_options(config: ValidationConfig) -> vs.ValidationOptions:
    """The plain options the library reads, from the configuration model (the one conversion).

    Examples
    --------
    >>> o = validation_options(ValidationConfig())
    >>> o.columns["outcome"], o.cov_type, o.search_interest is None, o.models.hurdle
    ('sexual_violence_per_1000', 'HC3', True, True)
    """
    from cpc_core.validation.options import (
        DisclosureOptions,
        ModelsOptions,
        SearchOptions,
        SpearmanIntervalOptions,
    )

    si, d, m, ci = config.search_interest, config.disclosure, config.models, config.spearman_ci
    return vs.ValidationOptions(
        columns=config.columns.model_dump(), outcome_label=config.outcome_label,
        onion_share=config.onion_share, csam_share=config.csam_share, c_floor=config.c_floor,
        table_lag_h=config.table_lag_h, lag_h=config.lag_h, percent_roles=config.percent_roles,
        pad_codes=config.pad_codes, standardise_poi=config.standardise_poi,
        poi_scaling=config.poi_scaling, cov_type=config.cov_type, use_t=config.use_t,
        conf_level=config.conf_level, dependent_methods=config.dependent_methods,
        alternative=config.alternative, partial_controls=config.partial_controls,
        include_small_areas=config.include_small_areas, small_areas=config.small_areas,
        disclosure=None if d is None else DisclosureOptions(d.min_population, d.min_tiles),
        search_interest=None if si is None else SearchOptions(
            si.path, si.region, si.n_components, si.keep, si.ddof, si.terms, si.exclude,
            si.departments),
        models=ModelsOptions(m.hurdle, m.hurdle_positive, m.count_models, m.spatial, m.weights,
                             m.k, m.permutations, m.seed),
        spearman_ci=SpearmanIntervalOptions(ci.enabled, ci.draws, ci.level, ci.seed),
    )  # fmt: skip


def run_validation(
    table: str | Path | pd.DataFrame | vs.ValidationInputs,
    out_dir: str | Path,
    config: ValidationConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    disclosure: vs.Thresholds | None = None,
    run_record: Mapping | None = None,
    command: str | None = None,
) -> dict:
    """Run the validation stage on a commune table and write its outputs.

    Parameters
    ----------
    table : path, pandas.DataFrame or ValidationInputs
        The pipeline's ``communes.csv``/``.parquet`` or any commune table (CSV with ``,`` or
        ``;``, or Parquet), read with the optional inputs by :func:`read_inputs`; or the
        inputs already built (the pipeline's, with the estimate's constants in memory).
    out_dir : path
        Where the outputs go (created).
    config : ValidationConfig, optional
        Defaults to ``ValidationConfig()``.
    run_dir : path, optional
        The pipeline's output directory: optional inputs are looked for there first, then
        next to ``table``.
    disclosure : cpc_core.config.core.DisclosureConfig, optional
        The run's thresholds (``config.disclosure`` wins if set).
    run_record : mapping, optional
        The run record (run.json content) when the pipeline has not written it yet.
    command : str, optional
        The command that runs the stage, named in the report's header (default
        ``cpc validate``, or the run record's ``command``).

    Returns
    -------
    dict
        ``out_dir``, ``outputs`` (name -> path), ``tables`` (key -> status), ``notes``.

    Raises
    ------
    cpc_core.validation.stage.RoleError
        A required role has no column.
    FileNotFoundError
        The table or an explicitly configured input is missing.

    Notes
    -----
    A progress bar in steps (inputs, statistics, each regression table, each figure, the
    report) is drawn on stderr when it is a terminal, as the other stages' (off with
    ``TQDM_DISABLE=1``, as ``cpc submit`` sets).
    """
    config = config or ValidationConfig()
    n_steps = (2 + vs.COMPUTE_STEPS + 1 + (FIGURE_STEPS if config.figures.enabled else 0) + 1
               + int(config.report))  # fmt: skip
    with progress(n_steps, "validate", unit="step") as bar:

        def step(name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        # a helper process for the figures, started at the first figure to draw, ended here
        with FigureProcess() as process:
            result = _validate(table, out_dir, config, run_dir=run_dir, disclosure=disclosure,
                               run_record=run_record, command=command, step=step,
                               process=process if use_process(config.figures.process) else None)  # fmt: skip
        bar.update(bar.total - bar.n)  # the figures that were skipped
    return result


def _validate(table: str | Path | pd.DataFrame | vs.ValidationInputs, out_dir: str | Path,
              config: ValidationConfig, *, run_dir: str | Path | None,
              disclosure: vs.Thresholds | None, run_record: Mapping | None, command: str | None,
              step: Callable[[str], None], process: FigureProcess | None = None) -> dict:  # fmt: skip
    """:func:`run_validation`'s work; ``step(name)`` after each step of the progress bar.

    ``process``: where figures are drawn while the statistics are computed (None: here, after
    them).
    """
    out = storage.path(out_dir)  # created once the inputs have been read and checked
    if isinstance(table, vs.ValidationInputs):
        given = table
    else:
        given = read_inputs(table, config, run_dir=run_dir, run_record=run_record)
    cfg_used = _effective_config(config, given)
    provenance_inputs = dict(given.provenance)
    run, name = given.run, given.table_name
    own_run = run if given.own_run else None
    step("inputs read")
    if process is not None and config.figures.enabled and not (out / "figures").exists():
        # a first validation draws every figure: the helper boots (matplotlib) while the
        # table is prepared and the figures planned, not after the first is planned
        process.start()
    opts = validation_options(cfg_used)  # the library reads plain options, never the model
    prepared = vs.prepare(given.table, opts, covariates=given.covariates,
                          search_interest=given.search_interest,
                          estimates_by_lag=given.estimates_by_lag, disclosure=disclosure,
                          table_name=name, estimate=given.constants)  # fmt: skip
    step("prepared")
    # The figures' data are read now and, with a helper process, the figures drawn there while
    # the statistics and models below are computed (jobs._figure_process).
    plan = None
    if config.figures.enabled:
        geo_path = given.paths.get("geo")
        if geo_path is not None and not geo_path.exists():
            raise UsageError(f"validation.geo: {clip(geo_path)}: no such file")
        paths_in = {"hourly": given.paths.get("hourly"), "rho_by_lag": given.paths.get("rho_by_lag"),
                    "geo": geo_path}  # fmt: skip
        for key, p in paths_in.items():
            if p is not None:
                provenance_inputs[key] = _file_info(p)
        plan = _plan_figures(out, prepared, cfg_used, paths_in, run, process)
    result = vs.compute(prepared, opts, on_step=step)
    out.mkdir(parents=True, exist_ok=True)

    # Synthetic or real data (report.data_kind): the run record decides, else the generator's
    # marker in the run folder or beside the table.
    roots = list(given.folders)
    kind = report.data_kind(own_run, roots)
    synthetic = kind[0] == "synthetic"
    if synthetic:
        logger.warning("validation: SYNTHETIC data (%s): every output says so", kind[1])
    run_dir_path = given.paths.get("run_dir")

    outputs: dict[str, str] = {}
    table_paths, table_sections = _write_tables(out, prepared, result, cfg_used, synthetic,
                                                _table4(own_run, run_dir_path))  # fmt: skip
    outputs.update(table_paths)
    geo_cfg = cfg_used.geo
    polygons = None
    if config.models.spatial and geo_cfg is not None:
        polygons = _read_polygons(geo_cfg)
    outcome_models = vs.fit_outcome_models(prepared, result, opts, polygons)
    om_paths, om_section = _outcome_models_outputs(out / "tables", outcome_models, synthetic)
    outputs.update(om_paths)
    table_sections.append(om_section)
    step("tables written")

    pub = vs.public_communes(prepared)
    pub.to_csv(out / "communes_public.csv", index=False)
    outputs["communes_public.csv"] = str(out / "communes_public.csv")
    n_small = prepared.disclosure["n_small_areas"]
    removed = [
        f"communes_public.csv: rates of {n_small} small areas blanked."
        if config.small_areas == "suppress"
        else f"communes_public.csv: {n_small} small areas flagged (values kept)."
    ]

    # drawn here while the helper process (if any) draws the figures
    truth = None
    truth_path = truthmod.find_truth(*roots) if synthetic else None
    if synthetic and truth_path is None:
        logger.warning("validation: synthetic data without truth/communes.csv: no truth check")
    elif truth_path is not None:
        planted = None
        tj = truth_path.with_name("truth.json")
        if tj.exists():
            planted = json.loads(tj.read_text()).get("lag_h")
        truth = truthmod.truth_check(prepared.frame, pd.read_csv(truth_path, dtype={"commune": str}),
                                     table_lag_h=prepared.table_lag_h, planted_lag_h=planted,
                                     dpi=config.figures.dpi)  # fmt: skip
        provenance_inputs["planted truth"] = _file_info(truth_path)

    shown, skipped = [], []
    if plan is not None:
        fig_paths, shown = plan.collect(on_figure=step)
        outputs.update(fig_paths)
        skipped, removed = plan.skipped, removed + plan.removed
        for what, why in skipped:
            logger.warning("validation: %s not produced: %s", what, why)
    else:
        skipped = [("Figures 1-5 and the lag sweep", "validation.figures.enabled is false")]

    doc = vs.to_json(prepared, result, opts)
    doc["disclosure"] = {**doc["disclosure"], "removed": removed}
    doc["outcome_models"] = vs.outcome_models_json(outcome_models)
    intervals = _intervals(prepared, own_run)
    doc["uncertainty"] = None if intervals is None else {**intervals[1], "level": intervals[2]}
    doc["notes"] = [*given.notes, *doc["notes"],
                    *(n.as_dict() for n in outcome_models.notes)]
    notes = doc["notes"]
    provenance = {
        "generated_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": provenance_inputs,
        "versions": _versions(),
        "run": run,
    }
    doc["meta"] = {
        "data": kind[0],
        "data_reason": kind[1],
        "config": json.loads(cfg_used.model_dump_json()),
        "generated_utc": provenance["generated_utc"],
        "inputs": provenance_inputs,
        "versions": provenance["versions"],
        "run_config_hash": (run or {}).get("config_hash"),
    }
    (out / "tables.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    outputs["tables.json"] = str(out / "tables.json")
    if prepared.pca is not None:
        # the region scores of every component (the covariates before the region -> commune map)
        scores = prepared.pca.scores.rename_axis("region").reset_index()
        scores.to_csv(out / "search_interest_scores.csv", index=False)
        outputs["search_interest_scores.csv"] = str(out / "search_interest_scores.csv")
    step("tables.json")

    if config.report:
        f = prepared.stats_frame
        summary = [
            ("commune table", name),
            ("communes", len(prepared.frame)),
            ("communes with a published outcome", int(f["outcome"].notna().sum())),
            ("values left out (not a number, infinite, population <= 0)",
             "; ".join(f"{x['column']}: {x['n']} {x['reason']}" for x in prepared.invalid)
             or "none"),
            ("of which zero", int((f["outcome"] == 0).sum())),
            ("data", f"{kind[0]} ({kind[1]})"),
            ("mean rho_j", tables.format_sig(f["rho"].mean())),
            ("mean c_j", tables.format_sig(f["c"].mean())),
            ("regression covariance", f"{config.cov_type} ({'t' if config.use_t else 'z'} p-values)"),
            ("lag of the table's c_j", f"{prepared.table_lag_h:+d} h"),
            ("lag of the unlagged statistics (Tables 2, 3, 5, 6)", f"{prepared.cpc_lag_h:+d} h"),
            ("Table 7 lag", f"{prepared.lag_h:+d} h" if prepared.lag_h is not None else "not available"),
        ]  # fmt: skip
        page = report.build_report(
            title="Validation of the commune-level cpc estimates", summary=summary,
            tables=table_sections, figures=shown, skipped_figures=skipped,
            disclosure=doc["disclosure"], notes=notes, config=doc["meta"]["config"],
            provenance=provenance,
            command=command or (run or {}).get("command") or "cpc validate",
            run_id=(own_run or {}).get("run_id"), data=kind, truth=truth,
            uncertainty=_uncertainty_text(prepared, own_run),
        )  # fmt: skip
        (out / "report.html").write_text(page, encoding="utf-8")
        outputs["report.html"] = str(out / "report.html")
        step("report")
    status = {k: t.status for k, t in result.tables.items()}
    logger.info("validation done: %s; outputs in %s", status, out)
    return {"out_dir": str(out), "outputs": outputs, "tables": status, "notes": notes,
            "invalid": [dict(x) for x in prepared.invalid]}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def cmd(args: argparse.Namespace) -> int:
    """Run ``cpc validate``. Errors reach ``jobs.cli.main``, which maps them to the exit codes of
    ``docs/errors.md`` (1 data, 2 configuration, 3 environment, 4 internal) and shows the
    traceback only with ``--debug``."""
    config = load_validation_config(args.config, args.overrides)
    command = " ".join(["cpc validate --table", str(args.table)]
                       + (["--run-dir", str(args.run_dir)] if args.run_dir else []))  # fmt: skip
    result = run_validation(args.table, args.out, config, run_dir=args.run_dir,
                            command=command)  # fmt: skip
    print(f"validation outputs: {result['out_dir']}")
    for key, status in result["tables"].items():
        print(f"  {key}: {status}")
    if "report.html" in result["outputs"]:
        print(f"  report: {result['outputs']['report.html']}")
    warnings = [n for n in result["notes"] if n["level"] == "warning"]
    for n in warnings:
        print(f"  note ({n['scope']}): {n['text']}")
    for x in result.get("invalid", ()):
        print(f"  left out: {x['source']} column {x['column']!r}: {x['n']} {x['reason']}")
    return 0


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - `python -m jobs.validate`
    from jobs.cli import add_validate_parser

    parser = argparse.ArgumentParser(prog="cpc")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *(argv if argv is not None else sys.argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return cmd(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
