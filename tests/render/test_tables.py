"""Tests for cpc_core.render.tables: number rules, exact cells, and escaping in every format.

The fitted-model tables use the Longley data shipped with statsmodels, whose coefficients are
NIST-certified and whose HC1 standard errors are Stata's (see tests/validation/test_validation.py), so
the expected cells below are published figures rounded as stargazer would.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from cpc_core.render.tables import (
    RegressionTable,
    format_coef,
    frame_to_html,
    frame_to_latex,
    frame_to_markdown,
    latex_escape,
    regression_table,
    stars,
    to_html,
    to_latex,
    to_markdown,
)
from cpc_core.validation.statistics import OLSResult, fit_ols, summary_table1

NASTY = r"a_b%c&d#e$f{g}h~i^j\k"  # every LaTeX special character


def _result(name, y, terms, cov_type="HC3", nobs=630, r2=(0.964, 0.9612)):
    """An OLSResult with chosen numbers; terms: {term: (coef, se, p)}."""
    idx = list(terms)
    col = lambda i: pd.Series([terms[t][i] for t in idx], index=idx, dtype=float)  # noqa: E731
    return OLSResult(
        name=name, y=y, params=col(0), bse=col(1), pvalues=col(2), nobs=nobs,
        rsquared=r2[0], rsquared_adj=r2[1], cov_type=cov_type, dropped=0,
        df_resid=nobs - len(idx), use_t=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def paper_like():
    """A slice of the paper's Table 3, with unrounded numbers that round to its cells."""
    m1 = _result(
        "log_cpc", "log_cpc_per_1000",
        {
            "const": (-11.0412, 1.0011, 1e-20),
            "log_YouTube_per_1000": (0.3512, 0.1101, 0.0015),
            "log_Web_Adult_per_1000": (-0.2531, 0.1013, 0.0127),
            "POI_adult_entertainment": (-0.0031, 0.0102, 0.76),
            "Share_Macron": (2.7213, 1.5391, 0.0775),
            "Sexual_violence_per_1000": (0.1401, 0.0701, 0.046),
        },
    )  # fmt: skip
    m2 = _result(
        "Sexual_violence", "Sexual_violence_per_1000",
        {
            "const": (1.2618, 0.5204, 0.0156),
            "log_YouTube_per_1000": (0.0421, 0.0902, 0.64),
            "log_Web_Adult_per_1000": (-0.0903, 0.0998, 0.37),
            "POI_adult_entertainment": (0.0212, 0.0301, 0.48),
            "Share_Macron": (0.0498, 0.6412, 0.94),
            "log_cpc_per_1000": (0.1012, 0.0598, 0.091),
        },
        r2=(0.4061, 0.3873),
    )  # fmt: skip
    return [m1, m2]


@pytest.fixture(scope="module")
def longley_hc1():
    d = sm.datasets.longley.load_pandas().data
    return fit_ols(d, "TOTEMP", ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"], cov_type="HC1")


# --------------------------------------------------------------------------------------------
# Number rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "kwargs", "want"),
    [
        (0.3512, {}, "0.35"),
        (-0.2531, {}, "-0.25"),
        (-0.0031, {}, "-0.003"),  # Table 3, POI_adult_entertainment
        (-0.00012, {}, "-0.0001"),  # Table 6, POI_mosque
        (0.0049, {}, "0.005"),
        (0.00004, {}, "0.00"),  # beyond digits + digits_extra
        (-0.00004, {}, "0.00"),  # never "-0.00"
        (-0.0, {}, "0.00"),
        (1829.15146, {}, "1829.15"),
        (-3482258.6346, {}, "-3482258.63"),
        (0.0031, {"digits_extra": 0}, "0.00"),
        (0.12345, {"digits": 3}, "0.123"),
        (float("nan"), {}, ""),
        (None, {}, ""),
        (float("-inf"), {}, "-Inf"),
    ],
)
def test_format_coef(x, kwargs, want):
    assert format_coef(x, **kwargs) == want


@pytest.mark.parametrize(
    ("p", "want"),
    [(0.0, "***"), (0.00999, "***"), (0.01, "**"), (0.0499, "**"), (0.05, "*"),
     (0.0999, "*"), (0.1, ""), (0.7, ""), (float("nan"), "")],
)  # fmt: skip
def test_stars_thresholds_are_strict(p, want):
    assert stars(p) == want


# --------------------------------------------------------------------------------------------
# Regression table model
# --------------------------------------------------------------------------------------------


def test_paper_like_cells(paper_like):
    t = regression_table(paper_like)
    f = t.to_frame()
    assert f.columns.tolist() == ["(1)", "(2)"]
    assert f.index.tolist() == [
        "log_YouTube_per_1000", "", "log_Web_Adult_per_1000", "", "POI_adult_entertainment",
        "", "Share_Macron", "", "Sexual_violence_per_1000", "", "log_cpc_per_1000", "",
        "Constant", "", "Observations", "R2", "Adjusted R2",
    ]  # fmt: skip
    # The paper's Table 3 cells for these terms.
    assert f.iloc[:, 0].tolist() == [
        "0.35***", "(0.11)", "-0.25**", "(0.10)", "-0.003", "(0.01)", "2.72*", "(1.54)",
        "0.14**", "(0.07)", "", "", "-11.04***", "(1.00)", "630", "0.96", "0.96",
    ]  # fmt: skip
    assert f.iloc[:, 1].tolist() == [
        "0.04", "(0.09)", "-0.09", "(0.10)", "0.02", "(0.03)", "0.05", "(0.64)", "", "",
        "0.10*", "(0.06)", "1.26**", "(0.52)", "630", "0.41", "0.39",
    ]  # fmt: skip
    assert t.dependent == ("log_cpc_per_1000", "Sexual_violence_per_1000")
    # the model names only repeat the dependent variables: no second, identical header row
    assert t.column_labels is None
    assert t.se_note == "Heteroscedasticity-robust standard errors (HC3) in parentheses."


def test_order_labels_and_brackets(paper_like):
    t = regression_table(
        paper_like,
        order=["Share_Macron", "const", "not_a_term"],
        covariate_labels={"Share_Macron": "Macron share", "const": "Intercept"},
        dependent_labels=["cpc", "sv"],
        column_labels=["A", "B"],
        se_brackets="[]",
    )
    coef_rows = [r for r in t.rows if r.kind == "coef"]
    assert [r.label for r in coef_rows][:3] == ["Macron share", "Intercept", "log_YouTube_per_1000"]
    assert t.rows[1].cells == ("[1.54]", "[0.64]") and t.rows[1].kind == "se"
    assert t.dependent == ("cpc", "sv") and t.column_labels == ("A", "B")
    assert t.se_note.endswith("in brackets.")


def test_table_errors(paper_like):
    with pytest.raises(ValueError, match="no models"):
        regression_table([])
    with pytest.raises(ValueError, match="column_labels has 1 entries for 2 models"):
        regression_table(paper_like, column_labels=["x"])
    with pytest.raises(ValueError, match="se_brackets"):
        regression_table(paper_like, se_brackets="{}")


def test_nonrobust_and_mixed_notes(longley_hc1):
    d = sm.datasets.longley.load_pandas().data
    plain = fit_ols(d, "TOTEMP", ["GNP"], cov_type="nonrobust")
    assert regression_table([plain]).se_note == "Standard errors in parentheses."
    mixed = regression_table([longley_hc1, plain]).se_note
    assert mixed == "Heteroscedasticity-robust standard errors (HC1, nonrobust) in parentheses."


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

LONGLEY_MD = """\
| Dependent variable: | TOTEMP |
|:--|:-:|
|  | (1) |
| GNPDEFL | 15.06 |
|  | (68.29) |
| GNP | -0.04 |
|  | (0.03) |
| UNEMP | -2.02*** |
|  | (0.51) |
| ARMED | -1.03*** |
|  | (0.19) |
| POP | -0.05 |
|  | (0.21) |
| YEAR | 1829.15** |
|  | (571.18) |
| Constant | -3482258.63** |
|  | (1109615.44) |
| Observations | 16 |
| R² | 1.00 |
| Adjusted R² | 0.99 |

Note: Heteroscedasticity-robust standard errors (HC1) in parentheses. *p<0.1; **p<0.05; ***p<0.01
"""


def test_markdown_longley_exact(longley_hc1):
    # NIST coefficients and Stata HC1 SEs (68.29380, 0.03277, 0.51099, 0.19499, 0.21094,
    # 571.17917, 1109615), rounded to 2 decimals.
    assert to_markdown([longley_hc1]) == LONGLEY_MD
    assert to_markdown(regression_table([longley_hc1])) == LONGLEY_MD


def _md_split(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_markdown_grid_survives_pipes(paper_like):
    models = [_result("m|1", "y|1", {"a|b": (1.0, 0.5, 0.02), "const": (0.0, 1.0, 1.0)})]
    out = to_markdown(models)
    grid = [line for line in out.splitlines() if line.startswith("|")]
    assert {len(_md_split(line)) for line in grid} == {2}
    assert _md_split(grid[0]) == ["Dependent variable:", "y\\|1"]
    assert _md_split(grid[4]) == ["a\\|b", "1.00**"]
    two = [ln for ln in to_markdown(paper_like).splitlines() if ln.startswith("|")]
    assert {len(_md_split(line)) for line in two} == {3}
    assert _md_split(two[2]) == ["", "(1)", "(2)"]  # no row repeating the dependent variables
    assert _md_split(two[3])[0] == "log_YouTube_per_1000"


# --------------------------------------------------------------------------------------------
# LaTeX: escaping checked by parsing, and by pdflatex when it is installed
# --------------------------------------------------------------------------------------------

_UNESCAPE = {
    r"\textbackslash{}": "\\", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^",
    r"\&": "&", r"\%": "%", r"\$": "$", r"\#": "#", r"\_": "_", r"\{": "{", r"\}": "}",
}  # fmt: skip
_TOKEN = re.compile("|".join(re.escape(k) for k in sorted(_UNESCAPE, key=len, reverse=True)))


def _latex_unescape(text: str) -> str:
    return _TOKEN.sub(lambda m: _UNESCAPE[m.group(0)], text)


def _strip_escapes(line: str) -> str:
    """Remove escape sequences, leaving only characters that LaTeX would interpret."""
    return _TOKEN.sub("", line)


def _check_latex_structure(tex: str, ncols: int) -> None:
    """A small parser: braces balance, math is paired, specials appear only where allowed."""
    body = tex[tex.index("\\begin{tabular}") : tex.index("\\end{tabular}")]
    raw = _strip_escapes(body)
    depth = 0
    for ch in raw:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "unbalanced }"
    assert depth == 0, "unbalanced {"
    assert raw.count("$") % 2 == 0, "unpaired $"
    text_only = re.sub(r"\$[^$]*\$", "", raw)  # drop math segments ($^{***}$, $-$, $<$)
    for ch in "_^~%#":
        assert ch not in text_only, f"unescaped {ch!r}"
    for line in body.splitlines():
        stripped = _strip_escapes(line)
        if stripped.rstrip().endswith("\\\\") and "&" in stripped and "multicolumn" not in line:
            assert stripped.count("&") == ncols - 1, line


def test_latex_escape_round_trip():
    assert latex_escape(NASTY) == (
        r"a\_b\%c\&d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    assert _latex_unescape(latex_escape(NASTY)) == NASTY
    assert latex_escape("plain text 1.5") == "plain text 1.5"


def test_latex_longley_exact_lines(longley_hc1):
    tex = to_latex([longley_hc1], caption="Longley 50% & more", label="tab:longley")
    lines = tex.splitlines()
    assert lines[0] == "\\begin{table}[!htbp] \\centering"
    assert "  \\caption{Longley 50\\% \\& more}" in lines
    assert "  \\label{tab:longley}" in lines
    for want in [
        "UNEMP & $-$2.02$^{***}$ \\\\",
        " & (0.51) \\\\",
        "YEAR & 1829.15$^{**}$ \\\\",
        "Constant & $-$3482258.63$^{**}$ \\\\",
        "Observations & 16 \\\\",
        "R$^{2}$ & 1.00 \\\\",
        "Adjusted R$^{2}$ & 0.99 \\\\",
        " & \\multicolumn{1}{r}{$^{*}$p$<$0.1; $^{**}$p$<$0.05; $^{***}$p$<$0.01} \\\\",
    ]:
        assert want in lines, want
    _check_latex_structure(tex, 2)


def test_latex_escapes_every_name(paper_like):
    models = [
        _result(NASTY, NASTY, {NASTY: (0.5, 0.1, 0.001), "const": (-1.0, 0.2, 0.5)}),
        _result("m2", "y2", {NASTY: (-0.5, 0.1, 0.2)}),
    ]
    tex = to_latex(models, caption=NASTY, document=True)
    _check_latex_structure(tex, 3)
    escaped = latex_escape(NASTY)
    assert f"{escaped} & 0.50$^{{***}}$ & $-$0.50 \\\\" in tex.splitlines()
    assert f"  \\caption{{{escaped}}}" in tex.splitlines()
    assert tex.startswith("\\documentclass{article}\n\\begin{document}\n")
    assert tex.endswith("\\end{document}\n")


def test_latex_merges_equal_dependent_variables(paper_like):
    # Table 7: both models explain log_cpc; stargazer spans the name over both columns.
    lagged = [paper_like[0], paper_like[0]]
    tex = to_latex(regression_table(lagged, column_labels=["no lag", "lagged"]))
    lines = tex.splitlines()
    assert "\\\\[-1.8ex] & \\multicolumn{2}{c}{log\\_cpc\\_per\\_1000} \\\\" in lines
    assert " & no lag & lagged \\\\" in lines
    _check_latex_structure(tex, 3)


def _pdflatex() -> str:
    """pdflatex, or skip; in CI (``CPC_REQUIRE_PDFLATEX=1``, set by .ci/run, which installs
    TeX) its absence is a failure, so that the compile tests can never silently skip there."""
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CPC_REQUIRE_PDFLATEX") == "1":
            pytest.fail("pdflatex not installed, but CPC_REQUIRE_PDFLATEX=1 (see .ci/run)")
        pytest.skip("pdflatex not installed (.ci/run installs it)")
    return exe


def _compile(tmp_path, name: str, tex: str) -> None:
    (tmp_path / f"{name}.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run(
        [_pdflatex(), "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1000


def test_latex_compiles(tmp_path, paper_like):
    models = [*paper_like, _result(NASTY, NASTY, {NASTY: (0.5, 0.1, 0.001)})]
    df = summary_table1([0.1, 0.2, np.nan], [0.001, 0.002, 0.003])
    df.index = [NASTY, "c_j"]
    for i, tex in enumerate(
        [to_latex(models, caption=NASTY, document=True), frame_to_latex(df, document=True)]
    ):
        _compile(tmp_path, f"t{i}", tex)


def test_every_tex_table_the_validation_writes_compiles(tmp_path):
    """Each .tex file of a real validation run (Tables 1, 2, 3, 5, 6, 7, the dependent
    tests and the outcome models), included as written into a minimal article, compiles."""
    _pdflatex()
    from cpc_core.config.validation_options import FiguresConfig, ValidationConfig
    from jobs.validate import run_validation
    from tests.validation.test_validation_stage import build_run_dir

    run_dir = build_run_dir(tmp_path / "run", ("Paris", "Lyon", "Toulouse", "Nice"), 0.05, days=7,
                            seed=1, geography=True)  # fmt: skip (polygons: the spatial rows)
    out = tmp_path / "validation"
    res = run_validation(run_dir / "communes.csv", out,
                         ValidationConfig(figures=FiguresConfig(enabled=False), report=False),
                         run_dir=run_dir)  # fmt: skip
    assert set(res["tables"].values()) == {"ok"}, res["tables"]
    written = sorted(p.name for p in (out / "tables").glob("*.tex"))
    assert written == sorted(f"{t}.tex" for t in ("table1", "spearman", "dependent_tests",
                                                  "table3", "table5", "table6", "table7",
                                                  "outcome_models",
                                                  "outcome_models_coefficients"))  # fmt: skip
    assert "spatial error" in (out / "tables" / "outcome_models.tex").read_text()
    for name in written:
        doc = ("\\documentclass{article}\n\\begin{document}\n"
               + (out / "tables" / name).read_text(encoding="utf-8") + "\\end{document}\n")  # fmt: skip
        _compile(out / "tables", f"doc_{name[:-4]}", doc)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


class _TableParser(HTMLParser):
    """Collects the text of each row's cells (with colspans) and every start tag."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, int]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None
        self._span = 1

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._span = [], int(dict(attrs).get("colspan", 1))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(("".join(self._cell), self._span))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(out: str) -> _TableParser:
    p = _TableParser()
    p.feed(out)
    p.close()
    return p


def test_html_longley_cells(longley_hc1):
    out = to_html([longley_hc1], caption="Longley <1947-1962>")
    assert "<caption>Longley &lt;1947-1962&gt;</caption>" in out
    assert '<tr><td>UNEMP</td><td class="num">-2.02<sup>***</sup></td></tr>' in out
    assert '<tr><td>R<sup>2</sup></td><td class="num">1.00</td></tr>' in out
    p = _parse(out)
    assert {sum(span for _, span in row) for row in p.rows} == {2}
    texts = [[c for c, _ in row] for row in p.rows]
    assert ["YEAR", "1829.15**"] in texts and ["", "(571.18)"] in texts
    assert texts[-1][0].startswith("Note: Heteroscedasticity-robust standard errors (HC1)")


def test_html_escapes_names(paper_like):
    evil = '<script>alert("x")</script> & ' + NASTY
    models = [_result(evil, evil, {evil: (0.5, 0.1, 0.001)}), paper_like[1]]
    out = to_html(models, caption=evil)
    assert "<script>" not in out
    assert html.escape(evil) in out
    p = _parse(out)
    assert "script" not in p.tags
    texts = [[c for c, _ in row] for row in p.rows]
    assert [evil, "0.50***", ""] in texts  # round-trips to the original text
    assert {sum(span for _, span in row) for row in p.rows} == {3}


def test_html_spans_equal_dependent_variables(paper_like):
    out = to_html([paper_like[0], paper_like[0]])
    assert '<tr><th></th><th colspan="2">log_cpc_per_1000</th></tr>' in out


# --------------------------------------------------------------------------------------------
# Plain frames
# --------------------------------------------------------------------------------------------


@pytest.fixture
def table1():
    # c_j: mean 0.0006; deviations (-4, -2, 0, 6)e-4 give std sqrt(56 / 3) e-4 = 4.3205e-4;
    # linear quartiles at positions 0.75, 1.5, 2.25: 0.00035, 0.0005, 0.00075.
    return summary_table1([0.1, 0.2, 0.3, np.nan], [0.0002, 0.0004, 0.0006, 0.0012])


def test_frame_to_markdown_table1(table1):
    out = frame_to_markdown(table1)
    assert out.splitlines() == [
        "| quantity | mean | std | min | 25% | 50% | 75% | max | n | n_missing |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        "| rho_j | 0.2 | 0.1 | 0.1 | 0.15 | 0.2 | 0.25 | 0.3 | 3 | 1 |",
        "| c_j | 0.0006 | 0.000432 | 0.0002 | 0.00035 | 0.0005 | 0.00075 | 0.0012 | 4 | 0 |",
    ]


def test_frame_formats_and_missing():
    df = pd.DataFrame(
        {
            "indicator": ["log_YouTube_per_1000", "log|cpc"],
            "rho": [0.17812, np.nan],
            "p_value": [1.3312e-06, 4.99e-15],
            "n": pd.array([731, pd.NA], dtype="Int64"),
            "flag": [True, False],
        }
    )
    out = frame_to_markdown(
        df, formats={"rho": "{:.3f}", "p_value": lambda p: f"{p:.2e}"}, index=False, na_rep="NA"
    )
    assert out.splitlines()[2:] == [
        "| log_YouTube_per_1000 | 0.178 | 1.33e-06 | 731 | True |",
        "| log\\|cpc | NA | 4.99e-15 | NA | False |",
    ]


def test_frame_to_latex(table1):
    df = table1.copy()
    df.index = [NASTY, "c_j"]
    df.index.name = "quantity_1"
    df["min"] = -df["min"]
    tex = frame_to_latex(df[["mean", "min", "n"]], caption="Table 1", label="tab:t1")
    lines = tex.splitlines()
    assert "quantity\\_1 & mean & min & n \\\\" in lines
    assert f"{latex_escape(NASTY)} & 0.2 & $-$0.1 & 3 \\\\" in lines
    assert "c\\_j & 0.0006 & $-$0.0002 & 4 \\\\" in lines
    assert "\\begin{tabular}{lrrr}" in lines
    _check_latex_structure(tex, 4)


def test_frame_to_html(table1):
    df = table1[["mean", "n"]].copy()
    df.index = ["<rho>", "c&j"]
    out = frame_to_html(df, caption="Table <1>")
    assert "<caption>Table &lt;1&gt;</caption>" in out
    assert '<tr><td>&lt;rho&gt;</td><td class="num">0.2</td><td class="num">3</td></tr>' in out
    p = _parse(out)
    assert [[c for c, _ in row] for row in p.rows] == [
        ["", "mean", "n"],
        ["<rho>", "0.2", "3"],
        ["c&j", "0.0006", "4"],
    ]


def test_renderers_accept_results_or_table(paper_like):
    t = regression_table(paper_like)
    assert isinstance(t, RegressionTable)
    assert to_latex(paper_like) == to_latex(t)
    assert to_html(paper_like) == to_html(t)


# --------------------------------------------------------------------------------------------
# Significant digits, the label map, the pivot of the dependent tests (issue 16)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x", [1e-05, -3.3e-07, 0.000766, 0.0584, -0.16651, 0.99949, 2.5, 47.123,
                               999.4, 123456.0, 1.234e9])  # fmt: skip
def test_format_sig_keeps_three_significant_digits(x):
    from cpc_core.render.tables import format_sig

    text = format_sig(x)
    assert float(text) != 0.0  # never 0.0000 for a nonzero value
    # the value agrees with x to three significant digits (independent: numpy's rounding)
    ref = float(f"{x:.2e}")
    assert float(text) == pytest.approx(ref, rel=1e-12), (x, text)
    mantissa = text.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    assert len(mantissa) == 3, (x, text)


def test_format_sig_small_values_in_scientific_notation():
    from cpc_core.render.tables import format_p, format_sig

    assert format_sig(1e-05) == "1.00e-05" and format_sig(0.0) == "0" and format_sig(None) == ""
    assert format_p(3.2e-20) == "<1e-16" and format_p(0.04567) == "0.046"


def test_every_identifier_has_a_readable_label():
    from cpc_core.render import labels
    from cpc_core.validation.stage import LABELS, METHOD_LABELS

    for ident in (*LABELS, *LABELS.values(), "log_cpc_per_1000_lag-2h", "PC1", "PC3"):
        text = labels.label(ident)
        assert "_" not in text and text != ident or ident in ("Constant",), (ident, text)
    assert set(METHOD_LABELS) <= set(labels.METHOD_SHORT)


def test_dependent_pivot_one_row_per_comparison_a_column_per_method():
    from cpc_core.render.labels import METHOD_SHORT
    from cpc_core.render.tables import dependent_pivot

    rng = np.random.default_rng(3)
    others = ["log_YouTube_per_1000", "log_Web_Adult_per_1000", "log_Tor_per_1000"]
    methods = ["williams", "steiger", "zou", "koebe2024"]
    rows = []
    for o in others:
        r_other = rng.uniform(0.1, 0.5)
        for m in methods:
            stat, p = (np.nan, np.nan) if m == "zou" else (rng.normal(0, 2), rng.uniform(0, 1))
            lo, hi = (rng.uniform(-0.2, 0), rng.uniform(0, 0.2)) if m == "zou" else (np.nan, np.nan)
            rows.append({"target": "log_cpc_per_1000", "other": o, "method": m, "n": 64,
                         "r_target": 0.389, "r_other": r_other, "r_target_other": 0.6,
                         "statistic": stat, "p_value": p, "ci_lower": lo, "ci_upper": hi})
    long = pd.DataFrame(rows)
    table, note = dependent_pivot(long)
    assert table.index.tolist() == ["YouTube per 1000, log", "Web Adult per 1000, log",
                                    "Tor per 1000, log"]  # fmt: skip
    assert [c for c in table.columns if c in METHOD_SHORT.values()] == [METHOD_SHORT[m] for m in methods]
    assert "n = 64 on every row" in note and "r(outcome, cpc) = 0.389" in note
    for rec in rows:
        cell = table.loc[table.index[others.index(rec["other"])], METHOD_SHORT[rec["method"]]]
        if rec["method"] == "zou":
            lo, hi = (float(x) for x in cell.strip("[]").split(",\n"))
            assert lo == pytest.approx(rec["ci_lower"], rel=5e-3)
            assert hi == pytest.approx(rec["ci_upper"], rel=5e-3)
        else:
            stat, p = cell.split("\n")
            assert float(stat) == pytest.approx(rec["statistic"], rel=5e-3)
            assert float(p.strip("()")) == pytest.approx(rec["p_value"], rel=5e-2)
