"""The validation stage's outputs: files, tables.json, figures, the report in a real browser.

The report is opened in headless Chromium (install it with ``scripts/install-browser.sh``):
a probe script appended to a copy of the page records, once the page has loaded, whether
every image decoded (``img.complete && img.naturalWidth > 0``) into a DOM attribute, and the
browser's console messages are read from its log (``--enable-logging=stderr``). The network
is disabled for the browser, so anything the page tried to fetch would fail and show up.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from cpc_core.config.core import parse_config
from cpc_core.config.validation_options import ValidationConfig
from jobs import validate

FIGURES = ("figure1", "figure2", "figure3", "figure4", "figure5", "lag_sweep")
TABLES = ("table1", "spearman", "dependent_tests", "table3", "table5", "table6", "table7")


@pytest.fixture(scope="module")
def run_dir(four_city_run_dir) -> Path:
    return four_city_run_dir  # Paris, Lyon, Toulouse, Nice at 5 %, 7 days (tests/conftest.py)


@pytest.fixture(scope="module")
def validated(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    res = validate.run_validation(run_dir / "communes.csv", out, ValidationConfig(),
                                  run_dir=run_dir)  # fmt: skip
    return out, res


# --------------------------------------------------------------------------------------------
# Files and tables.json
# --------------------------------------------------------------------------------------------


def test_every_output_is_written(validated):
    out, res = validated
    assert res["tables"] == dict.fromkeys(("table3", "table5", "table6", "table7"), "ok")
    for t in TABLES:
        for ext in ("csv", "md", "tex", "html"):
            assert (out / "tables" / f"{t}.{ext}").stat().st_size > 0, (t, ext)
    for f in FIGURES:
        assert (out / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
        assert b"<svg" in (out / "figures" / f"{f}.svg").read_bytes()[:500]
    assert (out / "report.html").exists() and (out / "communes_public.csv").exists()
    tex = (out / "tables" / "table3.tex").read_text()
    assert "\\begin{tabular}" in tex and "cpc per 1000, log" in tex
    md = (out / "tables" / "table6.md").read_text()
    assert "| Observations |" in md and "HC3" in md


def test_tables_json_matches_an_independent_computation(validated, run_dir):
    out, _ = validated
    doc = json.loads((out / "tables.json").read_text())
    assert {"table1", "spearman", "dependent_tests", "ols", "tables", "disclosure", "notes",
            "meta"} <= set(doc)  # fmt: skip
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    d = com.merge(cov[["commune", "sexual_violence_per_1000"]], on="commune")
    d = d.loc[d["sexual_violence_per_1000"].notna()]
    ref = scipy.stats.spearmanr(d["sexual_violence_per_1000"], np.log(d["cpc_per_1000"]))
    row = {r["indicator"]: r for r in doc["spearman"]}["log_cpc_per_1000"]
    assert row["rho"] == pytest.approx(ref.statistic) and row["n"] == len(d)
    assert doc["table1"]["rho_j"]["mean"] == pytest.approx(com["rho"].mean())
    assert doc["meta"]["inputs"]["commune table"]["sha256"]
    assert doc["meta"]["versions"]["statsmodels"]
    assert doc["lag_h"] == -2 and doc["disclosure"]["min_population"] == 500
    csv = pd.read_csv(out / "tables" / "table3.csv")
    m = [o for o in doc["ols"] if o["table"] == "table3" and o["column"] == 2][0]
    coef = {c["term"]: c["coef"] for c in m["coefficients"]}
    got = csv.loc[(csv["column"] == 2) & (csv["term"] == "log_cpc_per_1000"), "coef"].item()
    assert got == pytest.approx(coef["log_cpc_per_1000"])


def test_rendered_tables_show_labels_not_identifiers(validated):
    """One label map for Markdown, LaTeX and HTML: no identifier in any rendered table; the
    CSV files keep them (scripts select on them)."""
    from cpc_core.render.labels import label
    from cpc_core.render.tables import latex_escape
    from cpc_core.validation.stage import LABELS

    out, _ = validated
    idents = {i for i in (*LABELS, *LABELS.values(), "Sexual_violence_per_1000") if "_" in i}
    assert "log_YouTube_per_1000" in idents
    for t in TABLES:
        for ext in ("md", "html", "tex"):
            text = (out / "tables" / f"{t}.{ext}").read_text()
            forms = idents | {latex_escape(i) for i in idents} if ext == "tex" else idents
            found = [i for i in forms if re.search(rf"(?<![A-Za-z_]){re.escape(i)}(?![A-Za-z_])", text)]
            assert not found, (t, ext, found)
    html = (out / "tables" / "table3.html").read_text()
    assert label("log_YouTube_per_1000") in html and "<style>" in html  # styled standalone
    assert "log_YouTube_per_1000" in (out / "tables" / "spearman.csv").read_text()
    page = (out / "report.html").read_text()
    tables_part = page.split("<h2>Tables</h2>")[1].split("<h2>Figures</h2>")[0]
    assert "log_YouTube_per_1000" not in tables_part and "YouTube per 1000, log" in tables_part
    # one caption per table: the section heading, no <caption> repeating it
    assert "<caption>" not in tables_part


def test_dependent_tests_csv_has_every_field(validated, run_dir):
    out, _ = validated
    csv = pd.read_csv(out / "tables" / "dependent_tests.csv")
    doc = json.loads((out / "tables.json").read_text())
    assert list(csv.columns) == list(doc["dependent_tests"][0])  # every field of tables.json
    assert {"method", "alternative", "outcome", "target", "standard"} <= set(csv.columns)
    # one value against the hand formula (Spearman, the authors' t) on the raw files
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    d = com.merge(cov[["commune", "sexual_violence_per_1000"]], on="commune")
    x = pd.DataFrame({"y": d["sexual_violence_per_1000"], "cpc": np.log(d["cpc_per_1000"]),
                      "tor": np.log(d["tor_per_1000"])}).dropna()  # fmt: skip
    r = scipy.stats.spearmanr(x.to_numpy()).statistic
    t = (r[0, 1] - r[0, 2]) / np.sqrt((1 - r[1, 2] ** 2) / (len(x) - 3))
    row = csv.loc[(csv["method"] == "koebe2024") & (csv["other"] == "log_Tor_per_1000")].iloc[0]
    assert row["statistic"] == pytest.approx(t, rel=1e-9) and row["n"] == len(x)
    assert row["alternative"] == "two-sided" and not row["standard"]
    assert row["target"] == "log_cpc_per_1000" and row["outcome"] == "Sexual_violence_per_1000"
    assert csv.loc[csv["method"] == "williams", "standard"].all()


def test_the_runs_table_uses_the_estimates_constants(run_dir, tmp_path):
    """A run's own table: estimate.* (run record) is the one source; an external one: its own."""
    run = {"config": {"estimate": {"lag_h": 0, "onion_share": 0.011, "csam_share": 0.5,
                                   "c_floor": 2e-6}}, "config_hash": "r"}  # fmt: skip
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    n_floored = int(com["c_floored"].sum())
    assert n_floored > 0
    mine = ValidationConfig(c_floor=3e-5, figures={"enabled": False})
    validate.run_validation(run_dir / "communes.csv", tmp_path / "a", mine, run_dir=run_dir,
                            run_record=run)  # fmt: skip
    doc = json.loads((tmp_path / "a" / "tables.json").read_text())
    cfg = doc["meta"]["config"]
    assert (cfg["csam_share"], cfg["c_floor"], cfg["table_lag_h"]) == (0.5, 2e-6, 0)
    page = (tmp_path / "a" / "report.html").read_text()
    assert f"{n_floored} communes with c_j floored at 2e-06" in page
    assert "c_j = 0.011 x 0.5 x rho_j" in page and "0.41502" not in page.split("<h2>Tables")[1]
    assert any(n["level"] == "warning" and "validation.c_floor = 3e-05 ignored" in n["text"]
               for n in doc["notes"])  # fmt: skip
    # the same file elsewhere is an external table: the discovered run.json is not its record
    assert (run_dir / "run.json").exists()  # discovered through run_dir, yet not this table's
    ext = tmp_path / "external" / "mine.csv"
    ext.parent.mkdir()
    com.to_csv(ext, index=False)
    validate.run_validation(ext, tmp_path / "b", mine, run_dir=run_dir)
    cfg_b = json.loads((tmp_path / "b" / "tables.json").read_text())["meta"]["config"]
    assert (cfg_b["csam_share"], cfg_b["c_floor"], cfg_b["table_lag_h"]) == (0.41502, 3e-5, None)
    assert "floored at 3e-05" in (tmp_path / "b" / "report.html").read_text()


# --------------------------------------------------------------------------------------------
# Disclosure control in the outputs
# --------------------------------------------------------------------------------------------


def test_no_tile_level_data_and_small_areas_suppressed(validated, run_dir):
    out, _ = validated
    tile_cols = {"tile", "tile_id", "tile_pos", "x", "y", "lon", "lat", "geometry"}
    for csv in out.rglob("*.csv"):
        assert not tile_cols & set(pd.read_csv(csv, nrows=0).columns), csv
    doc = (out / "tables.json").read_text()
    assert "tile_id" not in doc
    pub = pd.read_csv(out / "communes_public.csv", dtype={"commune": str})
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    small = ((com["population"] < 500) | (com["n_tiles"] < 3)).to_numpy()
    assert small.any() and (pub["suppressed"].to_numpy() == small).all()
    assert pub.loc[small, ["cpc_per_1000", "tor_per_1000", "c", "rho"]].isna().all().all()
    page = (out / "report.html").read_text()
    n_small = int(small.sum())
    assert "Disclosure control" in page
    assert re.search(rf"small areas \(suppressed or flagged\)</td><td[^>]*>{n_small}<", page)
    assert f"rates of {n_small} small areas blanked" in page


def test_report_is_self_contained_and_carries_the_cautions(validated):
    out, _ = validated
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "@font-face" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    imgs = re.findall(r'<img [^>]*src="([^"]*)"', page)
    # the figures and the check against the planted truth (the fixture's data are generated)
    assert len(imgs) == len(FIGURES) + 1
    assert all(s.startswith("data:image/png;base64,") for s in imgs)
    lower = page.lower()
    for phrase in ("ecological fallacy", "mobile traffic only", "wi-fi", "fixed lines",
                   "estimates, not facts", "not propagated", "tip of the iceberg",
                   "associations, not causation", "zero inflation", "dropping the zero communes",
                   "spatial dependence not modelled", "neighbouring communes",
                   "no spatial or multilevel model"):  # fmt: skip
        assert phrase in lower, phrase
    assert lower.index("ecological fallacy") < lower.index("<h2>tables</h2>")  # cautions first
    for section in ("Configuration of this stage", "Input files", "Package versions",
                    "Pipeline run (run.json)", "test-run"):  # fmt: skip
        assert section in page, section
    assert "koebe2024: the authors&#39; replication formula (non-standard)" in page  # Jinja2's escape


# --------------------------------------------------------------------------------------------
# The report in a real browser
# --------------------------------------------------------------------------------------------

_PROBE = (
    "<script>window.addEventListener('load',function(){var r=[];"
    "for(var i=0;i<document.images.length;i++){var m=document.images[i];"
    "r.push(m.complete&&m.naturalWidth>0?1:0);}"
    "document.body.setAttribute('data-images',r.join(','));"
    "document.body.setAttribute('data-probe','done');});</script>"
)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _open_in_browser(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """DOM after load (with the probe's attributes) and the console messages."""
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH: run scripts/install-browser.sh")
    probed = tmp / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", probed.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def test_the_browser_check_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                   "<script>console.error('boom')</script></body></html>")  # fmt: skip
    dom, console = _open_in_browser(bad, tmp_path)
    assert 'data-images="0"' in dom
    assert any("boom" in line for line in console)


def test_report_renders_in_headless_chromium(validated, tmp_path):
    out, _ = validated
    dom, console = _open_in_browser(out / "report.html", tmp_path)
    assert 'data-probe="done"' in dom, "the page did not finish loading"
    flags = re.search(r'data-images="([^"]*)"', dom).group(1).split(",")
    assert flags == ["1"] * (len(FIGURES) + 1), f"images that did not load: {flags}"
    assert console == [], console
    assert "Validation of the commune-level cpc estimates" in dom
    assert "Read this first" in dom


# The widths a colleague reads the report at: a desktop, a small laptop window, a phone.
WIDTHS = (1280, 800, 414)

# Records, once the page has loaded, what the layout checks need. In an iframe (the width
# test) it writes to the host page, whose DOM --dump-dom prints.
_LAYOUT_PROBE = (
    "<script>window.addEventListener('load',function(){"
    "var host=(window.parent!==window)?parent.document.body:document.body;var r=[];"
    "for(var i=0;i<document.images.length;i++){var m=document.images[i];"
    "r.push(m.complete&&m.naturalWidth>0?1:0);}"
    "host.setAttribute('data-images',r.join(','));"
    "host.setAttribute('data-scroll-width',document.documentElement.scrollWidth);"
    "host.setAttribute('data-inner-width',window.innerWidth);"
    "host.setAttribute('data-banner',document.getElementById('synthetic-banner')?'1':'0');"
    "host.setAttribute('data-probe','done');});</script>"
)


def _open_at_width(page: Path, tmp: Path, width: int) -> tuple[dict, list[str]]:
    """Load ``page`` in headless Chromium in a frame ``width`` CSS pixels wide.

    A frame, because the browser's window cannot be narrower than 500 px; the page lays out
    to its frame's width as to a window's (media queries included). The page goes in as
    ``srcdoc``, so it keeps the host's origin and the probe may write to the host.
    """
    import html as html_lib

    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH: run scripts/install-browser.sh")
    inner = page.read_text().replace("</body>", _LAYOUT_PROBE + "</body>")
    host = tmp / f"host-{width}-{page.parent.name}.html"
    host.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe style="width:{width}px;'
                    f'height:900px;border:0" srcdoc="{html_lib.escape(inner)}"></iframe></body></html>')  # fmt: skip
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
        f"--window-size={max(width, 500) + 40},900",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", host.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout).group(0)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return attrs, console


@pytest.fixture(scope="module")
def validated_real(run_dir, tmp_path_factory):
    """The same commune table and covariates, copied where no generator marker is: real input."""
    ext = tmp_path_factory.mktemp("external")
    shutil.copy(run_dir / "communes.csv", ext / "communes.csv")
    shutil.copy(run_dir / "data/covariates/communes.csv", ext / "covariates.csv")
    out = ext / "validation"
    cfg = ValidationConfig(covariates=[{"path": str(ext / "covariates.csv")}], discover=False,
                           figures={"formats": ["png"]})  # fmt: skip
    validate.run_validation(ext / "communes.csv", out, cfg)
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_report_layout_at_reading_widths(validated, validated_real, tmp_path, width):
    """At 1280, 800 and 414 px: no horizontal scrolling, every image decoded, a silent
    console; the synthetic banner on generated data and not on a run that declares real input."""
    for out, synthetic in ((validated[0], True), (validated_real, False)):
        attrs, console = _open_at_width(out / "report.html", tmp_path, width)
        assert attrs.get("probe") == "done", "the page did not finish loading"
        assert int(attrs["inner-width"]) == width
        assert int(attrs["scroll-width"]) <= width, (out, attrs)
        flags = attrs["images"].split(",")
        assert flags and set(flags) == {"1"}, f"images that did not load: {flags}"
        assert console == [], console
        assert attrs["banner"] == ("1" if synthetic else "0"), out


def test_the_width_check_catches_overflow(tmp_path):
    wide = tmp_path / "wide" / "page.html"
    wide.parent.mkdir()
    wide.write_text('<!DOCTYPE html><html><body><div style="width:900px">x</div>'
                    "</body></html>")  # fmt: skip
    attrs, _ = _open_at_width(wide, tmp_path, 800)
    assert int(attrs["scroll-width"]) > 800 and attrs["banner"] == "0"


def test_synthetic_data_are_said_everywhere(validated, validated_real):
    out, _ = validated
    page = (out / "report.html").read_text()
    assert page.index('id="synthetic-banner"') < page.index("Read this first")  # above all else
    assert "<title>[SYNTHETIC DATA]" in page
    doc = json.loads((out / "tables.json").read_text())
    assert doc["meta"]["data"] == "synthetic"
    for t in TABLES:
        assert "SYNTHETIC DATA" in (out / "tables" / f"{t}.md").read_text().splitlines()[0], t
        assert "SYNTHETIC DATA" in (out / "tables" / f"{t}.tex").read_text(), t
        assert "SYNTHETIC DATA" in (out / "tables" / f"{t}.html").read_text(), t
    # the check against the planted truth, with its figure
    assert 'id="truth-check"' in page and 'id="truth_check"' in page
    assert "rank correlation of cpc per 1000" in page
    real = (validated_real / "report.html").read_text()
    assert "synthetic-banner" not in real and "SYNTHETIC" not in real
    assert json.loads((validated_real / "tables.json").read_text())["meta"]["data"] == "real"
    assert "SYNTHETIC" not in (validated_real / "tables" / "table1.md").read_text()


def test_truth_check_matches_an_independent_computation(validated, run_dir):
    """The demo's numbers against the planted truth, recomputed with scipy on the raw files."""
    out, _ = validated
    page = (out / "report.html").read_text()
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    truth = pd.read_csv(run_dir / "data/truth/communes.csv", dtype={"commune": str})
    m = com.merge(truth, on="commune", suffixes=("_est", "_true"))
    rank = scipy.stats.spearmanr(m["cpc_per_1000_est"], m["cpc_per_1000_true"]).statistic
    r = np.corrcoef(m["rho_est"], m["rho_true"])[0, 1]
    med = (m["rho_est"] - m["rho_latent"]).abs().median()
    row = re.search(r"rank correlation of cpc per 1000, estimated vs planted \(Spearman\)</td>"
                    r'<td class="num">([^<]+)<', page).group(1)  # fmt: skip
    assert float(row) == pytest.approx(rank, abs=5e-4)
    row = re.search(r"correlation of estimated and planted rho_j \(Pearson\)</td>"
                    r'<td class="num">([^<]+)<', page).group(1)  # fmt: skip
    assert float(row) == pytest.approx(r, abs=5e-4)
    # this fixture plants rho itself as the estimate: the realised rho differs, and the
    # verdict must say the tolerance was missed rather than claim a recovery
    assert med > 0.01 and "NOT recovered" in page


def test_header_names_the_command_and_the_run(run_dir, validated_real, tmp_path):
    rec = {"run_id": "20260101T000000Z-abcd1234", "command": "cpc demo --out x",
           "config": {"synth": {"cities": ["Nice"]}}}  # fmt: skip
    validate.run_validation(run_dir / "communes.csv", tmp_path / "v",
                            ValidationConfig(figures={"enabled": False}), run_dir=run_dir,
                            run_record=rec)  # fmt: skip
    page = (tmp_path / "v" / "report.html").read_text()
    assert "by <code>cpc demo --out x</code>, run <code>20260101T000000Z-abcd1234</code>" in page
    assert "cpc validate" not in page.split("</header>")[0]
    # a run that declares real data: no banner, though the folder holds the generator's marker
    validate.run_validation(run_dir / "communes.csv", tmp_path / "r",
                            ValidationConfig(figures={"enabled": False}), run_dir=run_dir,
                            run_record={**rec, "data": "real", "config": {}})  # fmt: skip
    assert "synthetic-banner" not in (tmp_path / "r" / "report.html").read_text()
    # cpc validate on an external table names itself
    assert "by <code>cpc validate</code>" in (validated_real / "report.html").read_text()


def test_missing_outputs_are_explained(validated, caplog):
    out, _ = validated
    page = (out / "report.html").read_text()
    missing = page.split('id="missing"')[1].split("</section>")[0]
    assert "Table 4: points of interest in the top tiles" in missing
    assert "poi_top_tiles.csv" in missing
    run = {"run_id": "r1", "command": "cpc demo --out x", "data": "synthetic",
           "missing": [{"output": "poi_top_tiles.csv", "reason": "poi_top_tiles.csv is empty: "
                        "the top 0.001 share of the 1983 tiles is 2 tile(s)"}]}  # fmt: skip
    t4 = validate._table4(run, None)
    assert t4.skipped.startswith("poi_top_tiles.csv is empty") and not t4.html


# --------------------------------------------------------------------------------------------
# The command line on an external table
# --------------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    """``cpc ARGV`` in process, through the command line's error contract (exit codes)."""
    from jobs.cli import main

    return main(argv)


def test_cli_on_an_external_semicolon_table(run_dir, tmp_path, capsys):
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    ext = com.merge(cov[["commune", "sexual_violence_per_1000"]], on="commune").rename(columns={
        "commune": "code_com", "population": "pop", "tor": "Tor", "web_adult": "Web_Adult",
        "youtube": "YouTube", "sexual_violence_per_1000": "sv_com_17_21"})[
        ["code_com", "pop", "Tor", "Web_Adult", "YouTube", "c", "sv_com_17_21"]]  # fmt: skip
    ext["code_com"] = "0" + ext["code_com"]  # a leading zero must survive
    table = tmp_path / "external.csv"
    ext.to_csv(table, sep=";", decimal=",", index=False)
    covs = cov.drop(columns=["sexual_violence_per_1000"]).assign(commune="0" + cov["commune"])
    covs.to_parquet(tmp_path / "cov.parquet")
    config = tmp_path / "validate.yaml"
    config.write_text(
        "validation:\n"
        "  columns: {commune: code_com, population: pop, tor: Tor, web_adult: Web_Adult,\n"
        "            youtube: YouTube, c: c, outcome: sv_com_17_21}\n"
        f"  covariates: [{tmp_path / 'cov.parquet'}]\n"
        f"  search_interest: {run_dir / 'data/covariates/search_interest.csv'}\n"
        "  discover: false\n"
        "  figures: {formats: [png]}\n"
    )
    rc = _cli(["validate", "--table", str(table), "--config", str(config), "--out",
               str(tmp_path / "out")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "tables.json").read_text())
    assert (
        doc["tables"]["table3"]["status"] == "ok" and doc["tables"]["table7"]["status"] == "skipped"
    )
    # same statistics as from the pipeline's own table (decimal commas parsed back)
    ref = validate.read_table(run_dir / "communes.csv")
    assert len(ref) == doc["disclosure"]["n_areas"]
    pub = pd.read_csv(tmp_path / "out" / "communes_public.csv", dtype={"commune": str})
    assert pub["commune"].str.startswith("0").all()
    assert not (tmp_path / "out" / "figures" / "figure1.svg").exists()
    assert "Figures 3 and 4" in (tmp_path / "out" / "report.html").read_text()  # noted as skipped

    # a missing required role is a data error (1) naming the role and the columns found
    rc = _cli(["validate", "--table", str(table), "--config", str(config), "--out",
               str(tmp_path / "o2"), "--set", "validation.columns.youtube=YT"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "role 'youtube' -> column 'YT' not found" in err and "Web_Adult" in err
    # an unknown key is a configuration error (2)
    rc = _cli(["validate", "--table", str(table), "--config", str(config), "--out",
               str(tmp_path / "o3"), "--set", "validation.colour=red"])  # fmt: skip
    assert rc == 2 and "validation.colour: unknown key" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# On the real pipeline's outputs
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_on_real_pipeline_outputs(tmp_path, client):
    from jobs.pipeline import run_pipeline

    cfg = parse_config({
        "synth": {"cities": ["Nice", "Lyon"], "days": 7, "scale": 0.02, "seed": 3},
        "output": {"dir": str(tmp_path / "run")},
    })  # fmt: skip
    res = run_pipeline(cfg, client)
    out = tmp_path / "run" / "validation"
    v = validate.run_validation(
        Path(res["output_dir"]) / "communes.csv", out,
        ValidationConfig(figures={"formats": ["png"]}),
        run_dir=res["output_dir"], disclosure=cfg.disclosure,
    )  # fmt: skip
    doc = json.loads((out / "tables.json").read_text())
    assert doc["table1"]["rho_j"]["n"] == res["run"]["areas"]
    assert doc["meta"]["run_config_hash"] == res["run"]["config_hash"]
    assert {"figure1", "figure3", "figure4", "figure5", "lag_sweep"} <= {
        Path(p).stem for p in v["outputs"] if p.endswith(".png")
    }
    assert "report.html" in v["outputs"]


def test_lag_sweep_without_any_defined_rho():
    # a window shorter than estimate.min_hours leaves every rho NaN: the figure says so
    import numpy as np
    import pandas as pd

    from cpc_core.render import figures

    fig = figures.lag_sweep(pd.DataFrame({"lag_h": [0, 1], "rho": [np.nan, np.nan]}))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["no commune has a defined rho_j at any lag"]


def test_choropleths_draw_once_when_rendered(monkeypatch):
    """Building Figure 5 draws nothing (geopandas' draw_idle after every layer used to draw the
    whole figure each time: ~40 draws for 20 metropoles); rendering draws it, and the
    suppressed areas are still drawn hatched."""
    import geopandas as gpd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from shapely.geometry import box

    from cpc_core.render import figures

    draws = []
    orig = FigureCanvasAgg.draw
    monkeypatch.setattr(FigureCanvasAgg, "draw", lambda self, *a, **k: (draws.append(1), orig(self, *a, **k))[1])
    n = 12
    g = gpd.GeoDataFrame({"cpc_per_1000": np.linspace(1, 50, n), "suppressed": [i % 4 == 0 for i in range(n)],
                          "city": [f"C{i % 6}" for i in range(n)]},
                         geometry=[box(i, 0, i + 1, 1) for i in range(n)], crs="EPSG:2154")
    fig = figures.choropleths(g)
    assert draws == []
    assert figures.render(fig, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert 1 <= len(draws) <= 2
    hatched = [p for ax in fig.axes for c in ax.collections for p in [c] if c.get_hatch() == "////"]
    assert len(hatched) == 3  # the three metropoles with a suppressed commune


def test_figures_are_reproducible(run_dir, tmp_path):
    """Two validations of one table write the same figure files, byte for byte (matplotlib's
    SVG clip-path ids came from uuid4 before), and embed the same PNGs in the report."""
    cfg = ValidationConfig(figures={"formats": ["png", "svg", "pdf"]})
    runs = [validate.run_validation(run_dir / "communes.csv", tmp_path / k, cfg, run_dir=run_dir) for k in "ab"]
    names = [sorted(Path(p).name for p in r["outputs"].values() if Path(p).parent.name == "figures") for r in runs]
    assert names[0] == names[1]
    assert {f"{f}.{x}" for f in FIGURES for x in ("png", "svg", "pdf")} <= set(names[0])
    for n in names[0]:
        assert (tmp_path / "a" / "figures" / n).read_bytes() == (tmp_path / "b" / "figures" / n).read_bytes(), n

    def images(which):
        return re.findall(r'src="data:image/png;base64,([^"]+)"', (tmp_path / which / "report.html").read_text())

    assert len(images("a")) == len(FIGURES) + 1 and images("a") == images("b")


def test_render_formats_lays_out_once_and_restores_the_engine(monkeypatch):
    from cpc_core.render import figures

    fig = figures.lag_sweep(pd.DataFrame({"lag_h": [0, 0, 1, 1], "rho": [0.1, 0.2, 0.15, 0.3]}))
    engine = fig.get_layout_engine()
    layouts = []
    orig = type(engine).execute
    monkeypatch.setattr(type(engine), "execute", lambda self, f: (layouts.append(1), orig(self, f))[1])
    out = figures.render_formats(fig, ["png", "svg", "png"])
    assert len(layouts) == 1  # the first format's layout serves the others
    assert list(out) == ["png", "svg"]
    assert out["png"][:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in out["svg"][:500]
    assert fig.get_layout_engine() is engine
    assert figures.render(fig, "svg") == figures.render(fig, "svg")


def test_data_kind_rule(run_dir, tmp_path):
    """synthetic: the run says so, has a synth section, or its data tree holds the generator's
    marker; real otherwise (docs/outputs-validation.md, "Synthetic or real data")."""
    from cpc_core.render.report import data_kind

    assert data_kind({"data": "real", "config": {"synth": {"cities": ["Nice"]}}})[0] == "real"
    assert data_kind({"config": {"synth": {"cities": ["Nice"]}}})[0] == "synthetic"
    # a `cpc run` whose input.netmob is <tree>/netmob of a tree written by cpc synth
    assert (run_dir / "data" / "truth" / "truth.json").is_file()
    kind, why = data_kind({"config": {"synth": None}}, [run_dir / "data"])
    assert kind == "synthetic" and "truth.json" in why
    assert data_kind({"config": {"synth": None}}, [run_dir])[0] == "synthetic"  # <run>/data/truth
    assert data_kind({"config": {"synth": None}}, [tmp_path])[0] == "real"
    assert data_kind(None, [])[0] == "real"


def test_the_command_line_leaves_set_values_out():
    from jobs.cli import _command, build_parser

    args = build_parser().parse_args(["run", "c.yaml", "--set", "storage.options.secret=pw-S3CRET"])
    text = _command(args, args.config)
    assert text == "cpc run c.yaml --set storage.options.secret=..." and "S3CRET" not in text


def test_table4_from_the_pipelines_poi_table(tmp_path):
    """A POI table beside the commune table is shown with labels; an empty one says why."""
    t = pd.DataFrame({"measure": ["cpc", "cpc"], "category": ["school", "mosque"], "n": [12, 4],
                      "mean_value_per_poi": [0.000012, 3.5]})  # fmt: skip
    t.to_csv(tmp_path / "poi_top_tiles.csv", index=False)
    t4 = validate._table4(None, tmp_path)
    assert not t4.skipped and "mean value per poi" in t4.html and "1.20e-05" in t4.html
    assert "mean_value_per_poi" not in t4.html
    t.iloc[:0].to_csv(tmp_path / "poi_top_tiles.csv", index=False)
    t4 = validate._table4(None, tmp_path)
    assert "is empty" in t4.skipped and "poi.min_n" in t4.skipped
    (tmp_path / "poi_top_tiles.csv").unlink()
    assert "came without a poi_top_tiles.csv" in validate._table4(None, tmp_path).skipped


def test_configuration_collapsed_and_every_figure_enlarges(validated):
    """Issue #16: the configuration dump is collapsed like run.json, and every figure can be
    opened at full size (legible at 414 px): each image sits in a zoom toggle whose checked
    state lifts the width limit."""
    out, _ = validated
    page = (out / "report.html").read_text()
    provenance = page.split('id="provenance"')[1]
    pres = re.findall(r"(<details><summary>[^<]*</summary>)?<pre>", provenance)
    assert len(pres) >= 2 and all(pres), "a <pre> dump in the provenance section is not collapsed"
    images = re.findall(r"<img ", page)
    zoomable = re.findall(r'<label class="zoom"><input type="checkbox"[^>]*><span><img ', page)
    assert len(images) >= 5 and len(zoomable) == len(images)
    assert ".zoom input:checked+span img{max-width:none" in page  # the CSS is inlined


def test_missing_outputs_are_said_in_the_log_too(run_dir, tmp_path, caplog):
    """Issue #16: every absent output says why in the report and in the log. An external
    table without covariates or a run record: Tables 2-7 and Table 4 cannot be produced."""
    import logging

    shutil.copy(run_dir / "communes.csv", tmp_path / "communes.csv")
    shutil.copy(run_dir / "data/covariates/communes.csv", tmp_path / "covariates.csv")
    cov = pd.read_csv(tmp_path / "covariates.csv", dtype={"commune": str})
    cov.drop(columns=["drug_abuse_per_1000"]).to_csv(tmp_path / "covariates.csv", index=False)
    cfg = ValidationConfig(covariates=[{"path": str(tmp_path / "covariates.csv")}], discover=False,
                           figures={"enabled": False})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="jobs.validate"):
        validate.run_validation(tmp_path / "communes.csv", tmp_path / "out", cfg)
    logged = [r.getMessage() for r in caplog.records if "not produced" in r.getMessage()]
    page = (tmp_path / "out" / "report.html").read_text()
    missing = page.split('id="missing"')[1].split("</section>")[0]
    for key in ("table4", "table5"):
        line = next((m for m in logged if f"validation: {key} not produced: " in m), None)
        assert line is not None, (key, logged)
        reason = line.split(" not produced: ", 1)[1]
        assert reason in html.unescape(missing), (key, reason)


def test_uncertainty_section_and_caterpillar_from_interval_columns(run_dir, tmp_path):
    """A table with interval columns: the report's uncertainty section states how many
    public communes' intervals contain their median (counted here with pandas), and the
    caterpillar figure is drawn; small areas are neither plotted nor counted."""
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    w = np.random.default_rng(0).uniform(0.05, 2.0, len(com))
    com["cpc_per_1000_lo"] = com["cpc_per_1000"] * np.exp(-w)
    com["cpc_per_1000_hi"] = com["cpc_per_1000"] * np.exp(w)
    table = tmp_path / "with_intervals.csv"
    com.to_csv(table, index=False)
    run = {"config": {"estimate": {"uncertainty": {"level": 0.8}}}}
    validate.run_validation(table, tmp_path / "v", ValidationConfig(), run_dir=run_dir,
                            run_record=run)  # fmt: skip
    pub = pd.read_csv(tmp_path / "v" / "communes_public.csv", dtype={"commune": str})
    big = pub.loc[~pub["small_area"].astype(bool)]
    assert len(big) < len(pub)  # small areas exist and are left out
    med = big["cpc_per_1000"].median()
    k = int(((big["cpc_per_1000_lo"] <= med) & (med <= big["cpc_per_1000_hi"])).sum())
    assert 0 < k < len(big)
    page = (tmp_path / "v" / "report.html").read_text()
    section = page.split('<section id="uncertainty">')[1].split("</section>")[0]
    assert f"Of the {len(big)} communes with an interval of cpc per 1000, {k} (" in section
    assert "have a 80 % interval" in section
    doc = json.loads((tmp_path / "v" / "tables.json").read_text())
    assert doc["uncertainty"]["n"] == len(big) and doc["uncertainty"]["n_overlap"] == k
    assert doc["uncertainty"]["median"] == pytest.approx(med) and doc["uncertainty"]["level"] == 0.8
    assert (tmp_path / "v" / "figures" / "caterpillar.png").read_bytes()[:4] == b"\x89PNG"
    assert 'id="caterpillar"' in page
    # without interval columns: no section, and the figure is listed as not produced
    plain = (run_dir / "communes.csv")
    validate.run_validation(plain, tmp_path / "w", ValidationConfig(), run_dir=run_dir)
    page = (tmp_path / "w" / "report.html").read_text()
    assert 'id="uncertainty"' not in page
    assert "Uncertainty of the top communes" in page.split('id="missing"')[1]
    assert json.loads((tmp_path / "w" / "tables.json").read_text())["uncertainty"] is None


def test_spearman_intervals_in_the_csv_and_the_report(validated, run_dir):
    """Table 2's bootstrap interval (default: 1000 resamples, 90 %, seed 0) against a
    bootstrap written here with scipy, in spearman.csv and in the report's table."""
    out, _ = validated
    com = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    d = com.merge(cov[["commune", "sexual_violence_per_1000"]], on="commune")
    d = d.loc[d["sexual_violence_per_1000"].notna()]
    x, y = np.log(d["cpc_per_1000"].to_numpy()), d["sexual_violence_per_1000"].to_numpy()
    idx = np.random.default_rng(0).integers(0, len(d), size=(1000, len(d)))
    boot = [scipy.stats.spearmanr(x[i], y[i]).statistic for i in idx]
    lo, hi = np.quantile(boot, [0.05, 0.95])
    csv = pd.read_csv(out / "tables" / "spearman.csv").set_index("indicator")
    assert csv.loc["log_cpc_per_1000", "ci_lower"] == pytest.approx(lo, abs=1e-9)
    assert csv.loc["log_cpc_per_1000", "ci_upper"] == pytest.approx(hi, abs=1e-9)
    assert (csv["ci_level"] == 0.9).all() and (csv["ci_draws"] == 1000).all()
    page = (out / "report.html").read_text()
    table2 = page.split('<section id="spearman">')[1].split("</section>")[0]
    assert "90 % bootstrap interval" in table2 and f"[{lo:.3f}, {hi:.3f}]" in table2
