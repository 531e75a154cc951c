"""Regression tables in stargazer form and plain tables, as Markdown, LaTeX or HTML.

Two layers, as elsewhere in ``cpc_core``:

* :func:`regression_table` turns fitted :class:`~cpc_core.validation.statistics.OLSResult` objects into a
  :class:`RegressionTable`: every number already formatted to a string, stars kept apart, so
  the layout is decided once and each renderer only decides markup;
* the renderers :func:`to_markdown`, :func:`to_latex` and :func:`to_html` (and
  :func:`frame_to_markdown`, :func:`frame_to_latex`, :func:`frame_to_html` for plain
  DataFrames such as Table 1 or the Spearman table) produce text.

Layout, following the paper's Tables 3 and 5-7 (R's stargazer): one column per model;
per term a coefficient row with stars (``*`` p<0.1, ``**`` p<0.05, ``***`` p<0.01) and a row
with the (robust) standard error in parentheses below it; the constant last; then
Observations, R2 and adjusted R2. Numbers use stargazer's rounding rule: ``digits`` decimals,
and up to ``digits_extra`` more when a nonzero value would otherwise print as zero (the
paper's ``-0.003`` and ``-0.0001``).
"""

from __future__ import annotations

import html
import logging
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from cpc_core.validation.statistics import OLSResult

__all__ = [
    "STAR_LEVELS",
    "RegressionTable",
    "TableRow",
    "format_coef",
    "format_p",
    "format_sig",
    "dependent_pivot",
    "looks_numeric",
    "frame_to_html",
    "frame_to_latex",
    "frame_to_markdown",
    "latex_escape",
    "regression_table",
    "stars",
    "to_html",
    "to_latex",
    "to_markdown",
]

logger = logging.getLogger(__name__)

#: (threshold, marker) pairs, strictest first: p < threshold earns the marker.
STAR_LEVELS: tuple[tuple[float, str], ...] = ((0.01, "***"), (0.05, "**"), (0.1, "*"))

RowKind = Literal["coef", "se", "nobs", "rsquared", "rsquared_adj"]
_STAT_KINDS = ("nobs", "rsquared", "rsquared_adj")

# Row labels of the summary statistics, per output format.
_STAT_LABELS: dict[str, dict[str, str]] = {
    "text": {"nobs": "Observations", "rsquared": "R2", "rsquared_adj": "Adjusted R2"},
    "markdown": {"nobs": "Observations", "rsquared": "R²", "rsquared_adj": "Adjusted R²"},
    "latex": {"nobs": "Observations", "rsquared": "R$^{2}$", "rsquared_adj": "Adjusted R$^{2}$"},
    "html": {
        "nobs": "Observations",
        "rsquared": "R<sup>2</sup>",
        "rsquared_adj": "Adjusted R<sup>2</sup>",
    },
}
_CONSTANT = "const"


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def format_coef(x: float, digits: int = 2, digits_extra: int = 2) -> str:
    """Format a number as stargazer does.

    ``digits`` decimals; if that rounds a nonzero value to zero, up to ``digits_extra`` more
    decimals are tried, so that small effects do not print as ``0.00``.

    Parameters
    ----------
    x : float
    digits : int, default 2
    digits_extra : int, default 2

    Returns
    -------
    str
        Empty for NaN or None; ``"0.00"`` (never ``"-0.00"``) for values that stay zero.

    Examples
    --------
    >>> format_coef(0.3512), format_coef(-0.0031), format_coef(-0.00012), format_coef(1e-9)
    ('0.35', '-0.003', '-0.0001', '0.00')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    x = float(x)
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    for d in range(digits, digits + digits_extra + 1):
        s = f"{x:.{d}f}"
        if float(s) != 0.0:
            return s
    return f"{0.0:.{digits}f}"


def format_sig(x: float | None, digits: int = 3, sci_below: float = 1e-3,
               sci_from: float = 1e6) -> str:  # fmt: skip
    """A number to ``digits`` significant digits; very small or large ones in scientific form.

    Every value keeps its significant digits: a c_j of 1e-05 prints as ``1.00e-05``, never as
    ``0.0000`` (a fixed number of decimals turns small values into zeros).

    Parameters
    ----------
    x : float or None
    digits : int, default 3
    sci_below, sci_from : float
        Magnitudes below ``sci_below`` or from ``sci_from`` on are written as ``d.dde-XX``.

    Returns
    -------
    str
        Empty for None/NaN; ``"0"`` for zero.

    Examples
    --------
    >>> [format_sig(v) for v in (0.16651, -0.0584, 1e-05, 0.000766, 1234.5, 0.0, 2.0)]
    ['0.167', '-0.0584', '1.00e-05', '7.66e-04', '1.23e+03', '0', '2.00']
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    x = float(x)
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    mag = abs(x)
    if mag < sci_below or mag >= sci_from:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(mag)))
    text = f"{x:.{decimals}f}"
    if decimals == 0 and len(text.lstrip("-")) > digits:  # 1234.5 -> 4 digits: scientific
        return f"{x:.{digits - 1}e}"
    return text


def format_p(p: float | None) -> str:
    """A p-value: two significant digits, ``<1e-16`` under double precision's resolution.

    Examples
    --------
    >>> format_p(0.04567), format_p(1.33e-06), format_p(0.0), format_p(float("nan"))
    ('0.046', '1.3e-06', '<1e-16', '')
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 1e-16:
        return "<1e-16"
    return format_sig(p, 2)


_NUMBER = re.compile(r"^[-+\u2212]?[(\[<]?[-+\u2212]?(\d|\.\d|Inf)")


def looks_numeric(text: str) -> bool:
    """Whether a formatted cell is a number (right-aligned, math minus in LaTeX).

    Examples
    --------
    >>> looks_numeric("-0.0584"), looks_numeric("(0.02)"), looks_numeric("[-0.1, 0.2]"), looks_numeric("Tor")
    (True, True, True, False)
    """
    return bool(_NUMBER.match(str(text).strip()))


def stars(p: float) -> str:
    """Significance marker for a p-value: ``***`` p<0.01, ``**`` p<0.05, ``*`` p<0.1.

    Examples
    --------
    >>> stars(0.001), stars(0.05), stars(0.0999), stars(float("nan"))
    ('***', '*', '*', '')
    """
    if p is None or math.isnan(p):
        return ""
    for threshold, marker in STAR_LEVELS:
        if p < threshold:
            return marker
    return ""


# --------------------------------------------------------------------------------------------
# Regression table model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRow:
    """One body row of a :class:`RegressionTable`.

    Attributes
    ----------
    label : str
        Row label (empty for standard-error rows); plain text, escaped by the renderers.
    cells : tuple of str
        One formatted number per model (empty where a model lacks the term).
    stars : tuple of str
        Significance markers per model (empty strings except for coefficient rows).
    kind : {"coef", "se", "nobs", "rsquared", "rsquared_adj"}
    """

    label: str
    cells: tuple[str, ...]
    stars: tuple[str, ...]
    kind: RowKind


@dataclass(frozen=True)
class RegressionTable:
    """A regression table with every number formatted; render with ``to_*``.

    Attributes
    ----------
    dependent : tuple of str
        Dependent-variable label per model.
    column_labels : tuple of str or None
        Optional model labels shown under the dependent variables.
    rows : tuple of TableRow
        Coefficient and standard-error rows, then the statistics rows.
    se_note : str
        What the bracketed numbers are (e.g. the covariance estimator).
    notes : tuple of str
        Further notes printed under the table in every format (e.g. omitted controls).
    """

    dependent: tuple[str, ...]
    column_labels: tuple[str, ...] | None
    rows: tuple[TableRow, ...]
    se_note: str
    notes: tuple[str, ...] = ()

    @property
    def n_models(self) -> int:
        return len(self.dependent)

    def to_frame(self) -> pd.DataFrame:
        """The table as strings: stars appended, one column per model.

        Examples
        --------
        >>> import numpy as np
        >>> from cpc_core.validation.statistics import fit_ols
        >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, 5.1], "x": np.arange(5.0)})
        >>> regression_table([fit_ols(df, "y", ["x"])]).to_frame().index.tolist()
        ['x', '', 'Constant', '', 'Observations', 'R2', 'Adjusted R2']
        """
        labels = [
            _STAT_LABELS["text"][r.kind] if r.kind in _STAT_KINDS else r.label for r in self.rows
        ]
        data = [[c + s for c, s in zip(r.cells, r.stars, strict=True)] for r in self.rows]
        return pd.DataFrame(
            data, index=labels, columns=[f"({i + 1})" for i in range(self.n_models)]
        )


def _term_order(results: Sequence[OLSResult], order: Sequence[str] | None) -> list[str]:
    # Union of terms by first appearance (stargazer's order), ``order`` first if given, and
    # the constant last unless ``order`` places it.
    seen = dict.fromkeys(t for r in results for t in r.params.index)
    head = [t for t in (order or ()) if t in seen]
    unknown = [t for t in (order or ()) if t not in seen]
    if unknown:
        logger.warning("regression_table: terms in `order` not in any model: %s", unknown)
    rest = [t for t in seen if t not in head and t != _CONSTANT]
    tail = [_CONSTANT] if _CONSTANT in seen and _CONSTANT not in head else []
    return head + rest + tail


def _se_note(results: Sequence[OLSResult], brackets: str) -> str:
    kinds = list(dict.fromkeys(r.cov_type for r in results))
    where = {"()": "in parentheses", "[]": "in brackets"}.get(brackets, "in brackets")
    if kinds == ["nonrobust"]:
        return f"Standard errors {where}."
    return f"Heteroscedasticity-robust standard errors ({', '.join(kinds)}) {where}."


def regression_table(
    results: Sequence[OLSResult],
    *,
    covariate_labels: Mapping[str, str] | None = None,
    dependent_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
    digits: int = 2,
    digits_extra: int = 2,
    se_brackets: Literal["()", "[]"] = "()",
    notes: Sequence[str] = (),
) -> RegressionTable:
    """Build a stargazer-style table from fitted models.

    Parameters
    ----------
    results : sequence of OLSResult
        One column per model, in this order.
    covariate_labels : mapping, optional
        Display names by term; the intercept ``"const"`` shows as ``"Constant"`` unless
        mapped.
    dependent_labels : sequence of str, optional
        Dependent-variable labels per model; default each model's ``y``.
    column_labels : sequence of str, optional
        Model labels (e.g. ``["no lag", "lagged"]``); default the model names when any of
        them differs from its ``y``, else none.
    order : sequence of str, optional
        Terms to list first, in this order; the others follow by first appearance, the
        constant last.
    digits, digits_extra : int, default 2, 2
        See :func:`format_coef`; R2 uses ``digits`` too.
    se_brackets : {"()", "[]"}, default "()"
        Parentheses as in stargazer and the paper, or square brackets.
    notes : sequence of str
        Notes printed under the table by every renderer.

    Returns
    -------
    RegressionTable

    Examples
    --------
    >>> import numpy as np
    >>> from cpc_core.validation.statistics import fit_ols
    >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, 5.1], "x": np.arange(5.0)})
    >>> table = regression_table([fit_ols(df, "y", ["x"], cov_type="HC1")])
    >>> [(r.label, r.cells[0] + r.stars[0]) for r in table.rows[:2]]
    [('x', '1.03***'), ('', '(0.02)')]
    """
    results = list(results)
    if not results:
        raise ValueError("regression_table: no models given")
    if se_brackets not in ("()", "[]"):
        raise ValueError(f"se_brackets must be '()' or '[]', got {se_brackets!r}")
    k = len(results)
    for name, seq in (("dependent_labels", dependent_labels), ("column_labels", column_labels)):
        if seq is not None and len(seq) != k:
            raise ValueError(f"{name} has {len(seq)} entries for {k} models")
    labels = {_CONSTANT: "Constant", **(covariate_labels or {})}
    open_, close = se_brackets

    rows: list[TableRow] = []
    for term in _term_order(results, order):
        coef, se, marks = [], [], []
        for r in results:
            if term in r.params.index:
                coef.append(format_coef(r.params[term], digits, digits_extra))
                se.append(open_ + format_coef(r.bse[term], digits, digits_extra) + close)
                marks.append(stars(float(r.pvalues[term])))
            else:
                coef.append("")
                se.append("")
                marks.append("")
        rows.append(TableRow(labels.get(term, term), tuple(coef), tuple(marks), "coef"))
        rows.append(TableRow("", tuple(se), ("",) * k, "se"))
    no_stars = ("",) * k
    rows.append(TableRow("Observations", tuple(str(r.nobs) for r in results), no_stars, "nobs"))
    r2_kinds: tuple[RowKind, ...] = ("rsquared", "rsquared_adj")
    for kind in r2_kinds:
        cells = tuple(f"{getattr(r, kind):.{digits}f}" for r in results)
        rows.append(TableRow(_STAT_LABELS["text"][kind], cells, no_stars, kind))

    if column_labels is None and any(r.name != r.y for r in results):
        column_labels = [r.name for r in results]
    dependent = tuple(dependent_labels or (r.y for r in results))
    if column_labels is not None and all(
        _same_label(c, d) for c, d in zip(column_labels, dependent, strict=True)
    ):
        # model names that only repeat the dependent variable would be a second, identical
        # header row (Table 3's "log_cpc" under "log_cpc_per_1000"): dropped
        column_labels = None
    return RegressionTable(
        dependent=dependent,
        column_labels=None if column_labels is None else tuple(column_labels),
        rows=tuple(rows),
        se_note=_se_note(results, se_brackets),
        notes=tuple(n for n in notes if n),
    )


def _same_label(a: str, b: str) -> bool:
    from cpc_core.render.labels import label

    return a == b or label(a) == label(b)


def _as_table(table: RegressionTable | Sequence[OLSResult]) -> RegressionTable:
    return table if isinstance(table, RegressionTable) else regression_table(table)


def _spans(values: Sequence[str]) -> list[tuple[str, int]]:
    """Runs of equal adjacent values, for merged header cells (stargazer merges them)."""
    out: list[tuple[str, int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def _star_legend(fmt: str) -> str:
    parts = []
    for threshold, marker in reversed(STAR_LEVELS):
        if fmt == "latex":
            parts.append(f"$^{{{marker}}}$p$<${threshold:g}")
        elif fmt == "html":
            parts.append(f"<sup>{marker}</sup>p&lt;{threshold:g}")
        else:
            parts.append(f"{marker}p<{threshold:g}")
    return "; ".join(parts)


def _row_label(row: TableRow, fmt: str, escape: Callable[[str], str]) -> str:
    return _STAT_LABELS[fmt][row.kind] if row.kind in _STAT_KINDS else escape(row.label)


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    # Only what would break the table grid. Stars stay raw: in a cell they always follow a
    # digit and end the cell (right-flanking, nothing to close), so they render literally.
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    rule = {"l": ":--", "c": ":-:", "r": "--:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(table: RegressionTable | Sequence[OLSResult]) -> str:
    """Render a regression table as a GitHub-flavoured Markdown table plus a note line.

    Parameters
    ----------
    table : RegressionTable or sequence of OLSResult
        A built table, or models to build one from with default options.

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from cpc_core.validation.statistics import fit_ols
    >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, 5.1], "x": np.arange(5.0)})
    >>> print(to_markdown([fit_ols(df, "y", ["x"], cov_type="HC1")]).splitlines()[3])
    | x | 1.03*** |
    """
    t = _as_table(table)
    header = ["Dependent variable:"] + [_md_escape(d) for d in t.dependent]
    body: list[list[str]] = []
    if t.column_labels is not None:
        body.append([""] + [_md_escape(c) for c in t.column_labels])
    body.append([""] + [f"({i + 1})" for i in range(t.n_models)])
    for r in t.rows:
        cells = [c + s for c, s in zip(r.cells, r.stars, strict=True)]
        body.append([_row_label(r, "markdown", _md_escape), *cells])
    grid = _md_table(header, body, ["l"] + ["c"] * t.n_models)
    extra = "".join(f"\n{_md_escape(n)}\n" for n in t.notes)
    return f"{grid}\n\nNote: {t.se_note} {_star_legend('markdown')}\n{extra}"


# --------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters ``\\ & % $ # _ { } ~ ^`` for text mode.

    One pass over the characters, so the braces that the backslash replacement introduces
    are never escaped a second time.

    Examples
    --------
    >>> print(latex_escape("log_Tor_per_1000 (50%) & {x}"))
    log\\_Tor\\_per\\_1000 (50\\%) \\& \\{x\\}
    """
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text).replace("\n", " "))


def _latex_number(text: str) -> str:
    # stargazer prints a math minus, which is longer than a text hyphen.
    return "$-$" + text[1:] if text.startswith("-") else text


def _latex_wrap(tabular: str, caption: str | None, label: str | None, document: bool) -> str:
    parts = ["\\begin{table}[!htbp] \\centering"]
    if caption is not None:
        parts.append(f"  \\caption{{{latex_escape(caption)}}}")
    if label is not None:
        parts.append(f"  \\label{{{label}}}")
    parts += [tabular, "\\end{table}"]
    out = "\n".join(parts) + "\n"
    if document:
        out = "\\documentclass{article}\n\\begin{document}\n" + out + "\\end{document}\n"
    return out


def to_latex(
    table: RegressionTable | Sequence[OLSResult],
    *,
    caption: str | None = None,
    label: str | None = None,
    document: bool = False,
) -> str:
    """Render a regression table as a LaTeX ``table`` with a ``tabular`` (stargazer layout).

    Needs no package beyond base LaTeX. All labels are escaped with :func:`latex_escape`.

    Parameters
    ----------
    table : RegressionTable or sequence of OLSResult
    caption : str, optional
        Escaped caption.
    label : str, optional
        ``\\label`` key, used verbatim.
    document : bool, default False
        Wrap in a minimal ``article`` document that compiles on its own.

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from cpc_core.validation.statistics import fit_ols
    >>> df = pd.DataFrame({"y_1": [1.0, 2.1, 2.9, 4.2, 5.1], "x_1": np.arange(5.0)})
    >>> tex = to_latex([fit_ols(df, "y_1", ["x_1"], cov_type="HC1")])
    >>> [line for line in tex.splitlines() if line.startswith("x")]
    ['x\\\\_1 & 1.03$^{***}$ \\\\\\\\']
    """
    t = _as_table(table)
    k = t.n_models
    lines = [
        f"\\begin{{tabular}}{{@{{\\extracolsep{{5pt}}}}l{'c' * k}}}",
        "\\\\[-1.8ex]\\hline",
        "\\hline \\\\[-1.8ex]",
        f" & \\multicolumn{{{k}}}{{c}}{{\\textit{{Dependent variable:}}}} \\\\",
        f"\\cline{{2-{k + 1}}}",
    ]
    dep = " & ".join(
        latex_escape(d) if n == 1 else f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(d)}}}"
        for d, n in _spans(t.dependent)
    )
    lines.append(f"\\\\[-1.8ex] & {dep} \\\\")
    if t.column_labels is not None:
        lines.append(" & " + " & ".join(latex_escape(c) for c in t.column_labels) + " \\\\")
    lines.append("\\\\[-1.8ex] & " + " & ".join(f"({i + 1})" for i in range(k)) + "\\\\")
    lines.append("\\hline \\\\[-1.8ex]")
    for r in t.rows:
        if r.kind == "nobs":
            lines.append("\\hline \\\\[-1.8ex]")
        cells = [
            _latex_number(c) + (f"$^{{{s}}}$" if s else "")
            for c, s in zip(r.cells, r.stars, strict=True)
        ]
        lines.append(f"{_row_label(r, 'latex', latex_escape)} & {' & '.join(cells)} \\\\")
    lines += [
        "\\hline",
        "\\hline \\\\[-1.8ex]",
        f"\\textit{{Note:}} & \\multicolumn{{{k}}}{{r}}{{{latex_escape(t.se_note)}}} \\\\",
        f" & \\multicolumn{{{k}}}{{r}}{{{_star_legend('latex')}}} \\\\",
        *(
            f"\\multicolumn{{{k + 1}}}{{p{{0.9\\linewidth}}}}{{{latex_escape(n)}}} \\\\"
            for n in t.notes
        ),
        "\\end{tabular}",
    ]
    return _latex_wrap("\n".join(lines), caption, label, document)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


def _html_cell(tag: str, text: str, colspan: int = 1) -> str:
    span = f' colspan="{colspan}"' if colspan > 1 else ""
    return f"<{tag}{span}>{text}</{tag}>"


def to_html(table: RegressionTable | Sequence[OLSResult], *, caption: str | None = None) -> str:
    """Render a regression table as an HTML ``<table>``; all text goes through ``html.escape``.

    Parameters
    ----------
    table : RegressionTable or sequence of OLSResult
    caption : str, optional

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from cpc_core.validation.statistics import fit_ols
    >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, 5.1], "x<1>": np.arange(5.0)})
    >>> out = to_html([fit_ols(df, "y", ["x<1>"], cov_type="HC1")])
    >>> '<td>x&lt;1&gt;</td><td class="num">1.03<sup>***</sup></td>' in out
    True
    """
    t = _as_table(table)
    k = t.n_models
    esc = html.escape
    out = ['<table class="regression-table">']
    if caption is not None:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead>")
    out.append(
        "<tr>"
        + _html_cell("th", "")
        + _html_cell("th", "<em>Dependent variable:</em>", k)
        + "</tr>"
    )
    out.append(
        "<tr>"
        + _html_cell("th", "")
        + "".join(_html_cell("th", esc(d), n) for d, n in _spans(t.dependent))
        + "</tr>"
    )
    if t.column_labels is not None:
        out.append(
            "<tr>"
            + _html_cell("th", "")
            + "".join(_html_cell("th", esc(c)) for c in t.column_labels)
            + "</tr>"
        )
    out.append(
        "<tr>"
        + _html_cell("th", "")
        + "".join(_html_cell("th", f"({i + 1})") for i in range(k))
        + "</tr>"
    )
    out.append("</thead>")
    out.append("<tbody>")
    for r in t.rows:
        if r.kind == "nobs":
            out.append('</tbody>\n<tbody class="statistics">')
        cells = "".join(
            f'<td class="num">{esc(c)}' + (f"<sup>{s}</sup>" if s else "") + "</td>"
            for c, s in zip(r.cells, r.stars, strict=True)
        )
        out.append(f"<tr>{_html_cell('td', _row_label(r, 'html', esc))}{cells}</tr>")
    out.append("</tbody>")
    note = f"<em>Note:</em> {esc(t.se_note)} {_star_legend('html')}"
    extra = "".join(f"\n<tr>{_html_cell('td', esc(n), k + 1)}</tr>" for n in t.notes)
    out.append(f"<tfoot>\n<tr>{_html_cell('td', note, k + 1)}</tr>{extra}\n</tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# The dependent-correlation tests, pivoted
# --------------------------------------------------------------------------------------------


def dependent_pivot(dep: pd.DataFrame, digits: int = 3) -> tuple[pd.DataFrame, str]:
    """The dependent-correlation tests as one row per comparison and a column per method.

    Each method's cell holds its statistic and, on a second line, its p-value in parentheses;
    Zou's method gives an interval for the difference of the correlations instead. Labels come
    from :mod:`cpc_core.render.labels`.

    Parameters
    ----------
    dep : pandas.DataFrame
        Long form, one row per comparison and method (``tables.json``'s ``dependent_tests``):
        ``target, other, method, n, r_target, r_other, r_target_other, statistic, p_value,
        ci_lower, ci_upper``.
    digits : int, default 3
        Significant digits of the statistics and correlations.

    Returns
    -------
    (pandas.DataFrame, str)
        The formatted table (text cells) and a note on what is shown, including the
        correlation of the outcome with the target when it is the same on every row.

    Examples
    --------
    >>> dep = pd.DataFrame({"target": "log_cpc_per_1000", "other": ["log_Tor_per_1000"] * 2,
    ...     "method": ["williams", "zou"], "n": 64, "r_target": 0.4, "r_other": 0.3,
    ...     "r_target_other": 0.9, "statistic": [2.345, float("nan")], "p_value": [0.0213, float("nan")],
    ...     "ci_lower": [float("nan"), 0.01], "ci_upper": [float("nan"), 0.2]})
    >>> table, note = dependent_pivot(dep)
    >>> table.iloc[0]["Williams t"].splitlines(), table.iloc[0]["Zou interval"]
    (['2.35', '(0.021)'], '[0.0100,\\n0.200]')
    >>> list(table.columns)
    ['r(outcome, other)', 'r(cpc, other)', 'Williams t', 'Zou interval']
    >>> table.index.tolist(), table.index.name
    (['Tor per 1000, log'], 'cpc per 1000, log compared with')
    """
    from cpc_core.render.labels import METHOD_SHORT, label

    if dep.empty:
        return pd.DataFrame(), "No test could be computed (see the notes)."
    methods = list(dict.fromkeys(dep["method"]))
    rows = {}
    for (target, other), g in dep.groupby(["target", "other"], sort=False):
        first = g.iloc[0]
        row = {
            "n": str(int(first["n"])) if pd.notna(first["n"]) else "",
            "r(outcome, cpc)": format_sig(first["r_target"], digits),
            "r(outcome, other)": format_sig(first["r_other"], digits),
            "r(cpc, other)": format_sig(first["r_target_other"], digits),
        }
        by = g.set_index("method")
        for m in methods:
            if m not in by.index:
                row[METHOD_SHORT.get(m, m)] = ""
                continue
            r = by.loc[m]
            if m == "zou" or (pd.isna(r["statistic"]) and pd.notna(r.get("ci_lower"))):
                cell = f"[{format_sig(r['ci_lower'], digits)},\n{format_sig(r['ci_upper'], digits)}]"
            elif pd.isna(r["statistic"]):
                cell = "undefined"
            else:
                cell = f"{format_sig(r['statistic'], digits)}\n({format_p(r['p_value'])})"
            row[METHOD_SHORT.get(m, m)] = cell
        rows[(label(target), label(other))] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    targets = {t for t, _ in table.index}
    note = ("Each method: the test statistic and, in parentheses, its p-value; Zou: the "
            "confidence interval of the difference of the two correlations.")  # fmt: skip
    if len(targets) == 1:
        # one target on every row (the paper's case): named once, in the header and the note
        (target,) = targets
        table.index = pd.Index([o for _, o in table.index], name=f"{target} compared with")
        note += f" Every row compares the outcome's correlation with {target} and with the row's variable."
    else:
        table.index = pd.Index([f"{t} vs {o}" for t, o in table.index], name="comparison")
    for col, what in (("n", "n"), ("r(outcome, cpc)", "r(outcome, cpc)")):
        if table[col].nunique() == 1:
            note += f" {what} = {table[col].iloc[0]} on every row."
            table = table.drop(columns=col)
    return table, note


# --------------------------------------------------------------------------------------------
# Plain DataFrames (Table 1, Spearman table, dependent-correlation tests)
# --------------------------------------------------------------------------------------------

Formatter = str | Callable[[float], str]


def _make_formatter(spec: Formatter) -> Callable[[float], str]:
    return spec.format if isinstance(spec, str) else spec


def _format_value(x: object, fmt: Callable[[float], str], na_rep: str) -> tuple[str, bool]:
    """Formatted text and whether it is a number (for LaTeX's math minus)."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return na_rep, False
    if isinstance(x, bool):
        return str(x), False
    if isinstance(x, numbers.Integral):
        return str(int(x)), True
    if isinstance(x, numbers.Real):
        return fmt(float(x)), True
    return str(x), looks_numeric(str(x))


def _frame_cells(
    df: pd.DataFrame,
    formats: Mapping[str, Formatter] | None,
    float_format: Formatter,
    index: bool,
    na_rep: str,
) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    default = _make_formatter(float_format)
    per_col = {c: _make_formatter(f) for c, f in (formats or {}).items()}
    header = [str(c) for c in df.columns]
    if index:
        header = [str(df.index.name or "")] + header
    rows = []
    values = df.astype(object)
    for label, row in zip(df.index, values.itertuples(index=False, name=None), strict=True):
        cells = [
            _format_value(x, per_col.get(c, default), na_rep)
            for c, x in zip(df.columns, row, strict=True)
        ]
        if index:
            cells = [(str(label), False), *cells]
        rows.append(cells)
    return header, rows


def frame_to_markdown(
    df: pd.DataFrame,
    *,
    formats: Mapping[str, Formatter] | None = None,
    float_format: Formatter = "{:.4g}",
    index: bool = True,
    na_rep: str = "",
) -> str:
    """Render a DataFrame as a Markdown table.

    Parameters
    ----------
    df : pandas.DataFrame
    formats : mapping, optional
        Per-column format string (``"{:.3f}"``) or callable for real numbers.
    float_format : str or callable, default "{:.4g}"
        For real-valued cells of the other columns; integers print as integers.
    index : bool, default True
        Include the index as the first column (headed by its name).
    na_rep : str, default ""
        Text for missing values.

    Returns
    -------
    str

    Examples
    --------
    >>> df = pd.DataFrame({"rho": [0.1781], "p_value": [1.33e-06]}, index=["log_YT"])
    >>> print(frame_to_markdown(df, formats={"rho": "{:.3f}", "p_value": "{:.3g}"}))
    |  | rho | p_value |
    |:--|--:|--:|
    | log_YT | 0.178 | 1.33e-06 |
    """
    header, rows = _frame_cells(df, formats, float_format, index, na_rep)
    body = [[_md_escape(text) for text, _ in r] for r in rows]
    align = (["l"] if index else []) + ["r"] * len(df.columns)
    return _md_table([_md_escape(h) for h in header], body, align)


def frame_to_latex(
    df: pd.DataFrame,
    *,
    formats: Mapping[str, Formatter] | None = None,
    float_format: Formatter = "{:.4g}",
    index: bool = True,
    na_rep: str = "",
    caption: str | None = None,
    label: str | None = None,
    document: bool = False,
) -> str:
    """Render a DataFrame as a LaTeX ``table``/``tabular``, every text cell escaped.

    Parameters are those of :func:`frame_to_markdown`, plus ``caption``, ``label`` and
    ``document`` as in :func:`to_latex`.

    Examples
    --------
    >>> df = pd.DataFrame({"mean": [0.1649], "n": [1341]}, index=["rho_j"])
    >>> tex = frame_to_latex(df)
    >>> [line for line in tex.splitlines() if line.startswith("rho")]
    ['rho\\\\_j & 0.1649 & 1341 \\\\\\\\']
    """
    header, rows = _frame_cells(df, formats, float_format, index, na_rep)
    cols = ("l" if index else "") + "r" * len(df.columns)
    lines = [
        f"\\begin{{tabular}}{{{cols}}}",
        "\\hline",
        " & ".join(latex_escape(h) for h in header) + " \\\\",
        "\\hline",
    ]
    for r in rows:
        cells = [
            _latex_number(latex_escape(text)) if is_num else latex_escape(text)
            for text, is_num in r
        ]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return _latex_wrap("\n".join(lines), caption, label, document)


def frame_to_html(
    df: pd.DataFrame,
    *,
    formats: Mapping[str, Formatter] | None = None,
    float_format: Formatter = "{:.4g}",
    index: bool = True,
    na_rep: str = "",
    caption: str | None = None,
    css_class: str | None = None,
) -> str:
    """Render a DataFrame as an HTML ``<table>``; all text goes through ``html.escape``.

    Parameters are those of :func:`frame_to_markdown`, plus ``caption`` and ``css_class`` (the
    table's class, e.g. ``"compact"`` for a wide table). Numeric columns are right-aligned
    (``class="num"``); a newline in a cell is a line break.

    Examples
    --------
    >>> df = pd.DataFrame({"a<b": [1.5]}, index=["x&y"])
    >>> print(frame_to_html(df))
    <table>
    <thead>
    <tr><th></th><th class="num">a&lt;b</th></tr>
    </thead>
    <tbody>
    <tr><td>x&amp;y</td><td class="num">1.5</td></tr>
    </tbody>
    </table>
    <BLANKLINE>
    """
    header, rows = _frame_cells(df, formats, float_format, index, na_rep)
    esc = html.escape
    # a column is numeric when all its non-empty cells are: header and cells right-aligned
    numeric = [
        bool(cells) and all(is_num for _, is_num in cells)
        for cells in ([c for c in col if c[0] != na_rep] for col in zip(*rows, strict=True))
    ] if rows else [False] * len(header)  # fmt: skip
    if index and numeric:
        numeric[0] = False

    def cell(tag: str, text: str, num: bool) -> str:
        body = esc(text).replace("\n", "<br>")
        return f'<{tag} class="num">{body}</{tag}>' if num else f"<{tag}>{body}</{tag}>"

    out = [f'<table class="{esc(css_class)}">' if css_class else "<table>"]
    if caption is not None:
        out.append(f"<caption>{esc(caption)}</caption>")
    out += ["<thead>", "<tr>" + "".join(cell("th", h, n) for h, n in zip(header, numeric,
                                                                           strict=True)) + "</tr>"]
    out += ["</thead>", "<tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(cell("td", text, n) for (text, _), n in zip(r, numeric,
                                                                               strict=True)) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out) + "\n"
