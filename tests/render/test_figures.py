"""Figures of the report (issue 16): axes, labels, scale bars, insets, points for few areas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpc_core.render import figures


def test_figure1_share_axis_ends_at_100_percent():
    fig = figures.composition(0.011, 0.41705, 0.41502, 0.165)
    figures.render(fig)  # tick labels are made when drawn
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]  # shared: the lower axis
    assert labels[-1] == "100 %" and "1000 %" not in labels
    assert "0.01 %" in labels  # small shares keep their decimals, not "0%"
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert hi == pytest.approx(1.0) and ax.get_xscale() == "log"
        # every value label sits inside the axis
        for t in ax.texts:
            assert lo <= t.get_position()[0] <= hi, t.get_text()


def _grid_city(name: str, n: int, x0: float, centre_small: bool):
    """n x n square communes (1 km), or with the centre split into 100 m communes."""
    import geopandas as gpd
    from shapely.geometry import box

    geoms = []
    for i in range(n):
        for j in range(n):
            if centre_small and i == n // 2 and j == n // 2:
                geoms += [box(x0 + i * 1000 + a * 100, j * 1000 + b * 100,
                              x0 + i * 1000 + (a + 1) * 100, j * 1000 + (b + 1) * 100)
                          for a in range(10) for b in range(10)]  # fmt: skip
            else:
                geoms.append(box(x0 + i * 1000, j * 1000, x0 + (i + 1) * 1000, (j + 1) * 1000))
    k = len(geoms)
    return gpd.GeoDataFrame({"city": name, "cpc_per_1000": np.linspace(1, 100, k),
                             "suppressed": [i % 17 == 0 for i in range(k)]},
                            geometry=geoms, crs="EPSG:2154")  # fmt: skip


def test_choropleths_titles_colour_bar_scale_bar_and_inset():
    g = pd.concat([_grid_city("lyon", 10, 0, True), _grid_city("NICE", 10, 50_000, False)],
                  ignore_index=True)  # fmt: skip
    import geopandas as gpd

    fig = figures.choropleths(gpd.GeoDataFrame(g, crs="EPSG:2154"))
    maps = [ax for ax in fig.axes if ax.get_title().endswith("communes)")]
    titles = [ax.get_title() for ax in maps]
    assert titles == ["Lyon (199 communes)", "Nice (100 communes)"]  # one style, with counts
    bar = [ax for ax in fig.axes if "per 1000 inhabitants" in ax.get_ylabel()]
    assert len(bar) == 1 and "NetMob23 traffic units" in bar[0].get_ylabel()
    assert "log scale" in bar[0].get_ylabel()
    for ax in maps:  # a scale bar on each map: 10 km wide maps get a 2 km bar
        assert [t.get_text() for t in ax.texts] == ["2 km"]
    insets = [c for ax in maps for c in ax.child_axes if c.get_title() == "centre, enlarged"]
    assert len(insets) == 1  # Lyon's 100 m centre communes; Nice's grid is readable
    x0, x1 = insets[0].get_xlim()
    assert x1 - x0 < 5000 and x0 <= 5000 <= x1  # the window holds the centre


def test_lag_sweep_draws_points_below_ten_areas_and_boxes_above():
    few = pd.DataFrame({"lag_h": [0] * 5 + [1] * 5, "rho": np.linspace(0, 0.4, 10)})
    ax = figures.lag_sweep(few).axes[0]
    points = [ln for ln in ax.lines if ln.get_marker() == "o" and ln.get_linestyle() == "None"]
    assert sum(len(ln.get_xdata()) for ln in points) == 10  # every commune, one point each
    assert "one point per commune" in ax.get_title()
    many = pd.DataFrame({"lag_h": [0] * 12 + [1] * 12, "rho": np.linspace(0, 0.4, 24)})
    ax = figures.lag_sweep(many).axes[0]
    assert not [ln for ln in ax.lines if ln.get_marker() == "o" and ln.get_linestyle() == "None"]
    assert "box plots" in ax.get_title()


def test_sweep_comparison_shows_the_outcome_correlation_per_variant():
    rbl = {g: pd.DataFrame({"commune": list("abc") * 2, "lag_h": [0, 0, 0, 1, 1, 1],
                            "rho": [0.1, 0.2, 0.15, 0.05, 0.1, 0.0]}) for g in ("base", "grid:2")}  # fmt: skip
    table = pd.DataFrame({"grid": ["base", "base", "grid:2", "grid:2"], "lag_h": [0, 1, 0, 1],
                          "spearman_cpc": [0.3, 0.1, 0.25, 0.05]})  # fmt: skip
    fig = figures.sweep_comparison(rbl, table)
    assert len(fig.axes) == 4
    top = fig.axes[:2]
    assert all("(3 areas)" in ax.get_title() for ax in top)
    assert all(sum(len(ln.get_xdata()) for ln in ax.lines if ln.get_marker() == "o") == 6 for ax in top)
    bottom = [ax for ax in fig.axes if "correlation with the outcome" in ax.get_title()]
    assert len(bottom) == 2
    assert list(bottom[1].lines[0].get_ydata()) == [0.25, 0.05]
    assert len(figures.sweep_comparison(rbl, None).axes) == 2  # no outcome: the rho row only


def test_truth_scatter_axes():
    s = pd.Series([0.1, 0.2, 0.3])
    fig = figures.truth_scatter(s, s + 0.01, s * 100, s * 110)
    assert [ax.get_ylabel() for ax in fig.axes] == ["estimated rho_j", "estimated cpc per 1000 (log)"]
    assert fig.axes[1].get_xscale() == "log"


def test_caterpillar_draws_the_top_areas_and_the_median_overlap_count():
    """The plot draws the top areas, highest first, with their bars; the sentence's count is
    an independent pandas count of the intervals that contain the median."""
    from cpc_core.estimate.uncertainty import median_overlap
    from cpc_core.render.report import uncertainty_sentence

    rng = np.random.default_rng(3)
    n = 60
    v = np.exp(rng.normal(0, 1, n))
    w = rng.uniform(0.1, 1.5, n)
    df = pd.DataFrame({"cpc_per_1000": v, "cpc_per_1000_lo": v * np.exp(-w),
                       "cpc_per_1000_hi": v * np.exp(w),
                       "name": [f"area {i}" for i in range(n)]},
                      index=[f"{i:05d}" for i in range(n)])  # fmt: skip
    df.iloc[5, 1] = np.nan  # an area without an interval is neither drawn nor counted
    ok = df.dropna()
    med = ok["cpc_per_1000"].median()
    expected = int(((ok["cpc_per_1000_lo"] <= med) & (ok["cpc_per_1000_hi"] >= med)).sum())
    assert 0 < expected < len(ok)  # the check can fail both ways
    res = median_overlap(df["cpc_per_1000"], df["cpc_per_1000_lo"], df["cpc_per_1000_hi"])
    assert res == {"n": n - 1, "n_overlap": expected, "median": pytest.approx(med), "left_out": 1}
    text = uncertainty_sentence(res, 0.9)
    assert f"Of the {n - 1} communes" in text and f", {expected} (" in text and "90 %" in text

    fig = figures.caterpillar(df, top_n=12, median=med)
    ax = fig.axes[0]
    top = ok.sort_values("cpc_per_1000", ascending=False).head(12)
    ticks = sorted(((float(t.get_position()[1]), t.get_text()) for t in ax.get_yticklabels()),
                   reverse=True)  # fmt: skip
    assert [t for _, t in ticks] == top["name"].tolist()  # highest at the top
    segs = np.concatenate([c.get_segments() for c in ax.collections])
    bars = sorted((float(s[0, 1]), float(s[0, 0]), float(s[1, 0])) for s in segs)[::-1]
    np.testing.assert_allclose([b[1] for b in bars], top["cpc_per_1000_lo"])
    np.testing.assert_allclose([b[2] for b in bars], top["cpc_per_1000_hi"])
    assert ax.get_xscale() == "log" and "90 % interval" in ax.get_xlabel()  # default 0.90
    assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [med]
    figures.render(fig)
    empty = figures.caterpillar(df.assign(cpc_per_1000_lo=np.nan))
    assert "no area has an interval" in empty.axes[0].texts[0].get_text()


def test_every_figure_function_records_its_input_hash():
    """render_stored reuses a figure only through fig.cpc_inputs: a figure function without the
    hash would be drawn on every re-run (and break the reuse of the others' record)."""
    import typing

    from matplotlib.figure import Figure

    from cpc_core.render import figures

    makers = [n for n in figures.__all__ if callable(getattr(figures, n))
              and typing.get_type_hints(getattr(figures, n)).get("return") is Figure]
    assert {"caterpillar", "choropleths", "lag_sweep", "truth_scatter"} <= set(makers)
    unhashed = [n for n in makers if not hasattr(getattr(figures, n), "__wrapped__")]
    assert unhashed == []
