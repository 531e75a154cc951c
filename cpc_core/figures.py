"""Figures of the validation report (the paper's Figures 1-5 and the lag sweep).

Each public function takes small, already aggregated data (frames of communes, 7 x 24
profiles, per-lag correlations) and returns a :class:`matplotlib.figure.Figure`. Figures are
built with the object-oriented API on the Agg canvas, never through ``pyplot``: no global
state, no display. :func:`render` turns a figure into PNG, SVG or PDF bytes (SVG text as
paths, so no font is needed to view it); it sets matplotlib's SVG id salt for the call
(``rc_context``, process-global), so render from one thread at a time.

Disclosure control is the caller's job for what goes in (only commune-level values, small
areas marked) and this module's job for how it is drawn: suppressed areas are drawn grey and
hatched, never with their value, and no figure here takes tile coordinates.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cpc_core import netmob

__all__ = [
    "SUPPRESSED_STYLE",
    "choropleths",
    "composition",
    "lag_sweep",
    "pca_loadings",
    "render",
    "render_formats",
    "top_commune",
    "weekday_hour_heatmaps",
]

logger = logging.getLogger(__name__)

#: How a suppressed area is drawn: grey, hatched, no value.
SUPPRESSED_STYLE = {"facecolor": "#d9d9d9", "edgecolor": "#8c8c8c", "hatch": "////"}
_MISSING_STYLE = {"facecolor": "white", "edgecolor": "#bdbdbd"}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class _Canvas(FigureCanvasAgg):
    """An Agg canvas that draws only when a figure is rendered.

    geopandas' ``plot`` ends every layer with ``canvas.draw_idle()``, which a non-interactive
    Agg canvas executes at once as a full draw, constrained layout included: Figure 5 of the
    20 metropoles (20 maps, two or three layers each) was drawn ~40 times before being saved,
    17 s on the real commune polygons instead of ~1 s (BENCHMARKS.md, problem 21).
    """

    def draw_idle(self, *args, **kwargs):
        pass


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    _Canvas(fig)
    return fig


#: Salt of the ids matplotlib gives SVG clip paths and hatches: without one they come from
#: ``uuid4`` and the same figure gave different SVG bytes on every render.
SVG_HASHSALT = "cpc"


def render(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure as PNG, SVG or PDF bytes: reproducible (no creation date, fixed SVG ids).

    Examples
    --------
    >>> fig = composition(0.011, 0.41705, 0.41502, 0.165)
    >>> render(fig, "png")[:4]
    b'\\x89PNG'
    >>> render(fig, "svg") == render(fig, "svg")
    True
    """
    buf = io.BytesIO()
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata.get(fmt))
    return buf.getvalue()


def render_formats(fig: Figure, formats: Sequence[str], dpi: int = 110) -> dict[str, bytes]:
    """:func:`render` in each of ``formats``, in order.

    The figure's layout (constrained) is computed for the first format and kept for the
    others, so that a figure costs one layout, not one per format.

    Examples
    --------
    >>> out = render_formats(composition(0.011, 0.41705, 0.41502, 0.165), ["png", "svg"])
    >>> list(out), out["png"][:4]
    (['png', 'svg'], b'\\x89PNG')
    """
    out: dict[str, bytes] = {}
    engine = fig.get_layout_engine()
    try:
        for i, fmt in enumerate(dict.fromkeys(formats)):
            out[fmt] = render(fig, fmt, dpi=dpi)
            if i == 0 and engine is not None:
                fig.set_layout_engine("none")
    finally:
        if engine is not None:
            fig.set_layout_engine(engine)
    return out


# --------------------------------------------------------------------------------------------
# Figure 1: composition of the global and the local share
# --------------------------------------------------------------------------------------------


def composition(
    onion_share: float, porn_share: float, csam_share: float, mean_rho: float
) -> Figure:
    """Figure 1: how the global 0.19 % and the local share are composed.

    Globally, CSAM share = onion share x pornographic share x CSAM share of pornography;
    locally the pornographic share is replaced by the area's rho_j, whose mean is shown.

    Parameters
    ----------
    onion_share, porn_share, csam_share : float
        The three global shares (0.011, 0.41705, 0.41502).
    mean_rho : float
        Mean of rho_j over the communes (the paper: 0.165).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = composition(0.011, 0.41705, 0.41502, 0.165)
    >>> [ax.get_title() for ax in fig.axes]
    ['Global', 'Local (mean of the communes)']
    """
    fig = _figure(10, 3.6)
    axes = fig.subplots(1, 2, sharex=True)
    chains = {
        "Global": [
            ("Tor download traffic", 1.0),
            (f"to onion services (x {onion_share:.1%})", onion_share),
            (f"pornographic (x {porn_share:.1%})", porn_share),
            (f"CSAM (x {csam_share:.1%})", csam_share),
        ],
        "Local (mean of the communes)": [
            ("Tor download traffic", 1.0),
            (f"to onion services (x {onion_share:.1%})", onion_share),
            (f"porn-like timing (x mean rho_j {mean_rho:.1%})", mean_rho),
            (f"CSAM (x {csam_share:.1%})", csam_share),
        ],
    }
    colours = ["#9ecae1", "#6baed6", "#3182bd", "#08519c"]
    for ax, (title, chain) in zip(axes, chains.items(), strict=True):
        values = np.cumprod([v for _, v in chain])
        labels = [lab for lab, _ in chain]
        y = np.arange(len(chain))[::-1]
        ax.barh(y, values, color=colours, height=0.6)
        for yi, v in zip(y, values, strict=True):
            ax.text(v * 1.15, yi, f"{v:.3%}" if v < 0.01 else f"{v:.1%}", va="center", fontsize=9)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(5e-5, 10)
        ax.set_title(title)
        ax.set_xlabel("share of Tor download traffic (log scale)")
    fig.suptitle(
        "Composition of the CSAM estimates: global "
        f"{onion_share * porn_share * csam_share:.2%}, local {onion_share * mean_rho * csam_share:.2%}"
        " (estimates, not facts)",
        fontsize=10,
    )
    return fig


# --------------------------------------------------------------------------------------------
# Figure 2: PCA loadings of the search terms
# --------------------------------------------------------------------------------------------


def pca_loadings(loadings: pd.DataFrame, explained: pd.Series | None = None) -> Figure:
    """Figure 2: loadings of the search terms on the principal components (heatmap).

    Parameters
    ----------
    loadings : pandas.DataFrame
        Term x component (:attr:`cpc_core.search_interest.SearchPCA.loadings`).
    explained : pandas.Series, optional
        Explained variance ratio per component, shown in the column labels.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> L = pd.DataFrame([[0.7, 0.1], [0.1, -0.9]], index=["a", "b"], columns=["PC1", "PC2"])
    >>> pca_loadings(L).axes[0].get_xticklabels()[0].get_text()
    'PC1'
    """
    values = loadings.to_numpy(dtype=float)
    fig = _figure(1.6 + 1.3 * values.shape[1], 1.0 + 0.32 * values.shape[0])
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    cols = [
        f"{c}\n({explained[c]:.0%})" if explained is not None and c in explained else str(c)
        for c in loadings.columns
    ]
    ax.set_xticks(range(values.shape[1]), cols)
    ax.set_yticks(range(values.shape[0]), [str(t) for t in loadings.index])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(values[i, j]) > 0.6 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="loading")
    ax.set_title("Search terms and their principal components", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# Figures 3 and 4: weekday x hour profiles, the top commune
# --------------------------------------------------------------------------------------------


def _heatmap(ax, profile: pd.DataFrame, title: str):
    im = ax.imshow(profile.to_numpy(dtype=float), aspect="auto", cmap="magma", vmin=0, vmax=1)
    ax.set_yticks(range(7), list(profile.index) if len(profile.index) == 7 else _WEEKDAYS)
    ax.set_xticks(range(0, 24, 3), [f"{h:02d}" for h in range(0, 24, 3)])
    ax.set_xlabel("hour of day (Europe/Paris)")
    ax.set_title(title, fontsize=10)
    return im


def weekday_hour_heatmaps(profiles: Mapping[str, pd.DataFrame]) -> Figure:
    """Figure 3: normalised download traffic by weekday and hour, one panel per service.

    Parameters
    ----------
    profiles : mapping of title -> DataFrame
        7 x 24 profiles (:func:`cpc_core.profiles.weekday_hour_profile`, normalised to a
        maximum of 1), e.g. YouTube, Web_Adult, Tor over all areas and cpc over the top
        communes.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> p = pd.DataFrame(np.random.default_rng(0).random((7, 24)), index=list(_WEEKDAYS))
    >>> len(weekday_hour_heatmaps({"Tor": p, "YouTube": p}).axes)
    3
    """
    n = len(profiles)
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig = _figure(5.2 * ncols, 2.6 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    im = None
    for ax, (title, prof) in zip(axes, profiles.items(), strict=False):
        im = _heatmap(ax, prof, title)
    for ax in axes[n:]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=list(axes[:n]), label="normalised download traffic", shrink=0.8)
    return fig


def top_commune(hourly: pd.Series, profile: pd.DataFrame, label: str) -> Figure:
    """Figure 4: hourly cpc of one commune over the window and its weekday x hour heatmap.

    Commune level only (the paper's per-tile lines are not drawn: disclosure control).

    Parameters
    ----------
    hourly : pandas.Series
        Hourly cpc of the commune, indexed by UTC hour starts (NaN = excluded hours).
    profile : pandas.DataFrame
        Its 7 x 24 normalised profile.
    label : str
        Commune name for the title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> idx = pd.date_range("2019-03-16", periods=48, freq="h")
    >>> p = pd.DataFrame(np.ones((7, 24)), index=list(_WEEKDAYS))
    >>> len(top_commune(pd.Series(np.arange(48.0), idx), p, "X").axes)
    3
    """
    fig = _figure(11, 3.4)
    ax_line, ax_map = fig.subplots(1, 2, width_ratios=[1.7, 1])
    local = pd.DatetimeIndex(hourly.index).tz_localize("UTC").tz_convert(netmob.LOCAL_TZ)
    ax_line.plot(local, hourly.to_numpy(dtype=float), lw=0.7, color="#08519c")
    ax_line.set_ylabel("estimated cpc (normalised traffic units)")
    ax_line.set_title(f"Hourly cpc estimate: {label}", fontsize=10)
    for tick in ax_line.get_xticklabels():
        tick.set_rotation(30)
    im = _heatmap(ax_map, profile, "by weekday and hour")
    fig.colorbar(im, ax=ax_map, label="normalised")
    return fig


# --------------------------------------------------------------------------------------------
# Figure 5: choropleths per metropole
# --------------------------------------------------------------------------------------------


def choropleths(areas, value: str = "cpc_per_1000", by: str | None = "city") -> Figure:
    """Figure 5: commune choropleths of ``value``, one map per metropole.

    Parameters
    ----------
    areas : geopandas.GeoDataFrame
        One row per commune: geometry, ``value``, ``suppressed`` (bool) and, if ``by`` is
        given, the metropole column. Suppressed areas are drawn grey and hatched whatever
        their value; areas without a value are drawn white.
    value : str
        Column to map, on a common logarithmic colour scale (non-positive values are drawn
        as missing).
    by : str or None
        Metropole column; None or absent draws a single map.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> g = gpd.GeoDataFrame({"cpc_per_1000": [10.0, 100.0, 5.0], "suppressed": [False, False, True],
    ...                       "city": ["A", "A", "B"]},
    ...                      geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(0, 0, 1, 1)])
    >>> [ax.get_title() for ax in choropleths(g).axes[:2]]
    ['A', 'B']
    """
    groups = list(areas.groupby(by, sort=True)) if by and by in areas.columns else [("", areas)]
    n = len(groups)
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig = _figure(3.4 * ncols + 1.2, 3.2 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    shown = areas.loc[~areas["suppressed"].astype(bool), value].astype(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if len(shown):
        lo, hi = float(shown.min()), float(shown.max())
        norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    else:
        norm = Normalize(0, 1)
    cmap = "viridis"
    for ax, (name, g) in zip(axes, groups, strict=False):
        suppressed = g["suppressed"].astype(bool)
        v = g[value].astype(float)
        ok = ~suppressed & np.isfinite(v) & (v > 0)
        if ok.any():
            g.loc[ok].plot(ax=ax, column=value, cmap=cmap, norm=norm, edgecolor="white",
                           linewidth=0.3)  # fmt: skip
        if (~ok & ~suppressed).any():
            g.loc[~ok & ~suppressed].plot(ax=ax, linewidth=0.3, **_MISSING_STYLE)
        if suppressed.any():
            g.loc[suppressed].plot(ax=ax, linewidth=0.3, **SUPPRESSED_STYLE)
        ax.set_title(str(name), fontsize=10)
        ax.set_axis_off()
    for ax in axes[n:]:
        ax.set_visible(False)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[:n]), shrink=0.7,
                 label=f"{value} (log scale)")  # fmt: skip
    fig.legend(
        handles=[Patch(label="suppressed (small area)", **SUPPRESSED_STYLE),
                 Patch(label="no estimate", **_MISSING_STYLE)],
        loc="lower center", ncols=2, fontsize=8, frameon=False,
    )  # fmt: skip
    return fig


# --------------------------------------------------------------------------------------------
# Lag sweep
# --------------------------------------------------------------------------------------------


def lag_sweep(rho_by_lag: pd.DataFrame, marks: Mapping[str, int] | None = None) -> Figure:
    """Distribution of rho_j per lag (box plots) with the mean, from ``rho_by_lag.csv``.

    Parameters
    ----------
    rho_by_lag : pandas.DataFrame
        ``lag_h`` and ``rho`` columns (one row per commune and lag; NaN rho is skipped).
    marks : mapping of label -> lag, optional
        Lags to highlight (e.g. the reported lag and Table 7's).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> df = pd.DataFrame({"lag_h": [0, 0, 1, 1], "rho": [0.1, 0.2, 0.0, 0.05]})
    >>> lag_sweep(df, {"reported": 0}).axes[0].get_xlabel()
    'lag L (hours); rho(L) = corr(log Web_Adult(t), log Tor(t + L))'
    """
    d = rho_by_lag.dropna(subset=["rho"])
    lags = sorted(d["lag_h"].astype(int).unique())
    data = [d.loc[d["lag_h"] == lag, "rho"].to_numpy(dtype=float) for lag in lags]
    fig = _figure(max(6, 0.55 * len(lags) + 2), 3.8)
    ax = fig.add_subplot()
    if not lags:
        # every rho undefined (e.g. a window shorter than estimate.min_hours): say so, don't fail
        ax.text(0.5, 0.5, "no commune has a defined rho_j at any lag", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ax.boxplot(data, positions=lags, widths=0.6, showfliers=False)
    ax.plot(lags, [x.mean() if len(x) else np.nan for x in data], "o-", color="#d95f02",
            ms=3, lw=1, label="mean rho_j")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.5)
    for i, (label, lag) in enumerate((marks or {}).items()):
        ax.axvline(lag, color=f"C{i + 2}", ls="--", lw=1, label=f"{label} ({lag:+d} h)")
    ax.set_xticks(lags, [str(lag) for lag in lags])
    ax.set_xlabel("lag L (hours); rho(L) = corr(log Web_Adult(t), log Tor(t + L))")
    ax.set_ylabel("rho_j")
    ax.set_title("Lag sweep: distribution of the communes' rho_j", fontsize=10)
    ax.legend(fontsize=8)
    return fig
