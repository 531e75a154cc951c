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

import functools
import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from cpc_core.netmob import facts as netmob

__all__ = [
    "MIN_BOX_POINTS",
    "SUPPRESSED_STYLE",
    "FigureSpec",
    "caterpillar",
    "choropleths",
    "composition",
    "draw",
    "inputs_hash",
    "lag_sweep",
    "pca_loadings",
    "render",
    "render_formats",
    "render_stored",
    "store_figure",
    "stored_figure",
    "sweep_comparison",
    "truth_scatter",
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


#: The file beside the figures that holds, per figure, the hash of what drew it
#: (:func:`render_stored`).
INPUTS_FILE = "inputs.json"


def _feed(h, obj) -> None:
    """Feed ``obj``'s content (not its identity) into the hash ``h``.

    Frames and series column by column (name, dtype, values; geometries as WKB; the index),
    arrays by dtype, shape and bytes, mappings and sequences in order. Anything else by its
    ``repr``: an object whose repr names its address never matches, so it is redrawn, never
    wrongly reused.
    """
    h.update(type(obj).__name__.encode() + b"\0")
    if obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
        h.update(repr(obj).encode())
    elif isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(repr(obj.tolist()).encode() if obj.dtype == object else np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, pd.DataFrame):
        h.update(repr(getattr(obj, "crs", None)).encode())
        _feed(h, obj.index)
        for name in obj.columns:
            _feed(h, name)
            _feed(h, obj[name])
    elif isinstance(obj, (pd.Series, pd.Index)):
        h.update(f"{obj.name!r}{obj.dtype}".encode())
        if hasattr(obj, "to_wkb"):  # a GeoSeries: exact coordinates
            _feed(h, np.asarray(obj.to_wkb(), dtype=object))
            h.update(repr(getattr(obj, "crs", None)).encode())
        elif isinstance(obj, pd.MultiIndex):
            for level in range(obj.nlevels):
                _feed(h, obj.get_level_values(level))
        else:
            try:
                h.update(pd.util.hash_pandas_object(obj, index=False).to_numpy().tobytes()
                         if len(obj) else b"empty")
            except TypeError:  # unhashable values (lists, dicts): their text
                h.update(repr(obj.tolist()).encode())
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _feed(h, v)
    elif hasattr(obj, "to_series") and hasattr(obj, "dims"):  # an xarray DataArray
        _feed(h, obj.to_series())
    else:
        h.update(repr(obj).encode())


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """This module's source and matplotlib's version: a change to either redraws every figure."""
    return hashlib.sha256(Path(__file__).read_bytes() + matplotlib.__version__.encode()).hexdigest()[:16]


def inputs_hash(name: str, args: Sequence = (), kwargs: Mapping | None = None) -> str:
    """The hash of a figure function's name, its arguments and the drawing code.

    What :func:`render_stored` compares to decide a redraw; computed from the arguments alone,
    so a :class:`FigureSpec` knows it before (and without) drawing.
    """
    h = hashlib.sha256(f"{name}:{_code_version()}".encode())
    _feed(h, tuple(args))
    _feed(h, dict(sorted((kwargs or {}).items())))
    return h.hexdigest()


#: The public figure functions (those decorated by :func:`_hashed`), by name.
_FIGURES: dict[str, object] = {}


def _hashed(func):
    """Record on the returned figure a hash of the function, its arguments and the drawing code
    (``fig.cpc_inputs``), for :func:`render_stored`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        fig = func(*args, **kwargs)
        fig.cpc_inputs = inputs_hash(func.__name__, args, kwargs)
        return fig

    _FIGURES[func.__name__] = wrapper
    return wrapper


@dataclass(frozen=True)
class FigureSpec:
    """A figure not drawn yet: the name of one of this module's figure functions and its
    arguments.

    Plain data (a name, frames, numbers), so it pickles: another process can draw it
    (``jobs._figure_process``). :attr:`inputs` is the hash the drawn figure carries, known
    without drawing.

    Examples
    --------
    >>> spec = FigureSpec("composition", (0.011, 0.41705, 0.41502, 0.165))
    >>> spec.inputs == composition(0.011, 0.41705, 0.41502, 0.165).cpc_inputs == spec.draw().cpc_inputs
    True
    >>> FigureSpec("savefig")
    Traceback (most recent call last):
    ...
    ValueError: 'savefig' is not a figure function of cpc_core.render.figures
    """

    name: str
    args: tuple = ()
    kwargs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in _FIGURES:
            raise ValueError(f"{self.name!r} is not a figure function of {__name__}")

    @functools.cached_property
    def inputs(self) -> str:
        """The input hash (:func:`inputs_hash`) of the figure this spec draws."""
        return inputs_hash(self.name, self.args, self.kwargs)

    def draw(self) -> Figure:
        """Build the figure (not rendered), carrying :attr:`inputs` as ``cpc_inputs``.

        The undecorated function is called: its inputs were hashed once, by :attr:`inputs`
        (a pickled spec carries the hash along, so a helper process does not hash the data
        again).
        """
        fig = _FIGURES[self.name].__wrapped__(*self.args, **self.kwargs)
        fig.cpc_inputs = self.inputs
        return fig


def draw(spec: FigureSpec, formats: Sequence[str], dpi: int = 110) -> dict[str, bytes]:
    """Build ``spec``'s figure and render it in each of ``formats`` (:func:`render_formats`)."""
    return render_formats(spec.draw(), formats, dpi=dpi)


def _read_record(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text())
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(path: Path, rec: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True))
    os.replace(tmp, path)


def stored_figure(folder: Path, key: str, inputs: str | None, formats: Sequence[str],
                  write: Sequence[str], dpi: int = 110) -> dict[str, bytes] | None:
    """The bytes of ``folder``'s files of ``key`` if they were drawn from ``inputs``, else None.

    ``<folder>/inputs.json`` holds per figure its input hash (:func:`inputs_hash`), the dpi,
    the formats and each file's SHA-256: the files are reused only when that entry matches and
    every format of ``formats`` is written (``write``) and on disk unchanged. A folder on
    object storage (not a :class:`pathlib.Path`) never reuses: its figures are drawn each time.
    """
    if not isinstance(folder, Path) or inputs is None or not set(formats) <= set(write):
        return None
    want = {"inputs": inputs, "dpi": dpi, "formats": list(dict.fromkeys(formats))}
    entry = _read_record(folder / INPUTS_FILE).get(key)
    if not isinstance(entry, dict) or {k: entry.get(k) for k in want} != want \
            or not isinstance(entry.get("sha256"), dict):
        return None
    try:
        data = {fmt: (folder / f"{key}.{fmt}").read_bytes() for fmt in want["formats"]}
    except OSError:
        return None
    if all(hashlib.sha256(b).hexdigest() == entry["sha256"].get(fmt) for fmt, b in data.items()):
        logger.debug("figure %s: inputs unchanged, not redrawn", key)
        return data
    return None


def store_figure(folder: Path, key: str, inputs: str | None, data: Mapping[str, bytes],
                 formats: Sequence[str], write: Sequence[str], dpi: int = 110) -> None:
    """Write ``data``'s formats of ``write`` as ``<folder>/<key>.<fmt>``, then their entry.

    The figure's old entry in ``inputs.json`` goes first and the new one is written last, so
    an interrupted write is redrawn next time; never an entry beside files it does not
    describe. A folder on object storage gets the files only.
    """
    if not isinstance(folder, Path):
        for fmt in write:
            (folder / f"{key}.{fmt}").write_bytes(data[fmt])
        return
    record_path = folder / INPUTS_FILE
    record = _read_record(record_path)
    if key in record:
        del record[key]
        _write_record(record_path, record)
    for fmt in write:
        (folder / f"{key}.{fmt}").write_bytes(data[fmt])
    if inputs is not None:
        record[key] = {"inputs": inputs, "dpi": dpi, "formats": list(dict.fromkeys(formats)),
                       "sha256": {f: hashlib.sha256(data[f]).hexdigest() for f in write}}
        _write_record(record_path, record)


def render_stored(fig: Figure, folder: Path, key: str, formats: Sequence[str], write: Sequence[str],
                  dpi: int = 110) -> tuple[dict[str, bytes], bool]:
    """:func:`render_formats`, unless ``folder``'s files of ``key`` were drawn from the same inputs.

    ``write``: the formats written as ``<folder>/<key>.<fmt>`` (a subset of ``formats``). The
    figure's input hash is ``fig.cpc_inputs``, set by every public figure function from its
    arguments, this module's code and matplotlib's version (:func:`inputs_hash`). When
    :func:`stored_figure` finds the files drawn from the same inputs, their bytes are returned
    without drawing (a re-run whose figure inputs did not change); else the figure is rendered
    and written (:func:`store_figure`).

    Returns
    -------
    (bytes per format, whether the stored files were reused)
    """
    inputs = getattr(fig, "cpc_inputs", None)
    data = stored_figure(folder, key, inputs, formats, write, dpi=dpi)
    if data is not None:
        return data, True
    data = render_formats(fig, formats, dpi=dpi)
    store_figure(folder, key, inputs, data, formats, write, dpi=dpi)
    return data, False


# --------------------------------------------------------------------------------------------
# Figure 1: composition of the global and the local share
# --------------------------------------------------------------------------------------------


@_hashed
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
    fig = _figure(7, 5.6)  # stacked: legible on a narrow screen too
    axes = fig.subplots(2, 1, sharex=True)
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
            text = f"{v:.3%}" if v < 0.01 else f"{v:.1%}"
            if v > 0.05:  # long bars: the value inside the bar's end, so the axis stops at 100 %
                ax.text(v / 1.15, yi, text, va="center", ha="right", fontsize=9, color="white")
            else:
                ax.text(v * 1.15, yi, text, va="center", fontsize=9)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(5e-5, 1.0)  # a share: the axis ends at 100 %
        ax.set_xticks([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g} %"))
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


@_hashed
def pca_loadings(loadings: pd.DataFrame, explained: pd.Series | None = None) -> Figure:
    """Figure 2: loadings of the search terms on the principal components (heatmap).

    Parameters
    ----------
    loadings : pandas.DataFrame
        Term x component (:attr:`cpc_core.validation.search_interest.SearchPCA.loadings`).
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


@_hashed
def weekday_hour_heatmaps(profiles: Mapping[str, pd.DataFrame]) -> Figure:
    """Figure 3: normalised download traffic by weekday and hour, one panel per service.

    Parameters
    ----------
    profiles : mapping of title -> DataFrame
        7 x 24 profiles (:func:`cpc_core.estimate.profiles.weekday_hour_profile`, normalised to a
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


@_hashed
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


@_hashed
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
    ['A (2 communes)', 'B (1 communes)']
    """
    groups = list(areas.groupby(by, sort=True)) if by and by in areas.columns else [("", areas)]
    # one title style whatever the source's spelling ("PARIS", "paris"), in that order
    groups = sorted(((str(k).strip().title(), g) for k, g in groups), key=lambda kg: kg[0])
    n = len(groups)
    ncols = min(2, n)  # two maps a row: each stays legible on a narrow screen
    nrows = int(np.ceil(n / ncols))
    fig = _figure(4.6 * ncols + 1.0, 4.2 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    shown = areas.loc[~areas["suppressed"].astype(bool), value].astype(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if len(shown):
        lo, hi = float(shown.min()), float(shown.max())
        norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    else:
        norm = Normalize(0, 1)
    cmap = "viridis"
    metric = areas.crs is not None and areas.crs.is_projected
    for ax, (name, g) in zip(axes, groups, strict=False):
        _draw_areas(ax, g, value, cmap, norm)
        ax.set_title(f"{name or 'All areas'} ({len(g)} communes)", fontsize=11)
        ax.set_axis_off()
        if metric:
            _scale_bar(ax)
        zoom = _central_window(g)
        if zoom is not None:
            ins = ax.inset_axes([0.6, 0.55, 0.4, 0.4])
            _draw_areas(ins, g, value, cmap, norm)
            ins.set_xlim(zoom[0], zoom[2])
            ins.set_ylim(zoom[1], zoom[3])
            ins.set_xticks([])
            ins.set_yticks([])
            ins.set_xlabel("")
            ins.set_ylabel("")
            ins.set_title("centre, enlarged", fontsize=7)
            ax.indicate_inset_zoom(ins, edgecolor="#333333")
    for ax in axes[n:]:
        ax.set_visible(False)
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[:n]), shrink=0.7)
    bar.set_label(f"{_VALUE_LABELS.get(value, value)}, log scale", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    fig.legend(
        handles=[Patch(label="suppressed (small area)", **SUPPRESSED_STYLE),
                 Patch(label="no estimate", **_MISSING_STYLE)],
        loc="lower center", ncols=2, fontsize=9, frameon=False,
    )  # fmt: skip
    return fig


#: Colour-bar labels of the mapped columns, with their unit (docs/outputs.md).
_VALUE_LABELS = {
    "cpc_per_1000": "estimated cpc per 1000 inhabitants\n(NetMob23 traffic units)",
    "tor_per_1000": "Tor per 1000 inhabitants\n(NetMob23 traffic units)",
}


def _draw_areas(ax, g, value: str, cmap, norm) -> None:
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


def _nice_length(span: float) -> float:
    """A round length (1, 2 or 5 x 10^k) of about a quarter of ``span``."""
    target = span / 4
    k = 10 ** np.floor(np.log10(target))
    return float(max(m * k for m in (1, 2, 5) if m * k <= target))


def _scale_bar(ax) -> None:
    """A scale bar in the lower left corner (the map's CRS is metric: x in metres)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    if not (np.isfinite(x0) and x1 > x0):
        return
    length = _nice_length(x1 - x0)
    xs, ys = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    ax.plot([xs, xs + length], [ys, ys], color="black", lw=2.5, solid_capstyle="butt")
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(xs + length / 2, ys + 0.015 * (y1 - y0), text, ha="center", va="bottom", fontsize=8)


def _central_window(g, min_ratio: float = 0.002) -> tuple[float, float, float, float] | None:
    """A window around the small central communes when they would be unreadable, else None.

    When the smallest quarter of the communes each cover less than ``min_ratio`` of the map's
    bounding box, the window around them (their centroids' spread, at least a fifth of the
    map) is shown enlarged in an inset.
    """
    if len(g) < 8:
        return None
    minx, miny, maxx, maxy = g.total_bounds
    box = (maxx - minx) * (maxy - miny)
    if not box > 0:
        return None
    areas = g.geometry.area
    small = areas <= areas.quantile(0.25)
    if float(areas[small].median()) / box >= min_ratio:
        return None
    c = g.geometry[small].centroid
    cx, cy = float(c.x.median()), float(c.y.median())
    half = max(float(c.x.quantile(0.75) - c.x.quantile(0.25)),
               float(c.y.quantile(0.75) - c.y.quantile(0.25)),
               0.1 * max(maxx - minx, maxy - miny)) / 2  # fmt: skip
    return cx - half, cy - half, cx + half, cy + half


# --------------------------------------------------------------------------------------------
# Lag sweep
# --------------------------------------------------------------------------------------------

#: Below this many values a box plot says less than the points themselves: they are drawn.
MIN_BOX_POINTS = 10


def _distribution(ax, positions: Sequence[float], data: Sequence[np.ndarray]) -> None:
    """Box plots of ``data`` at ``positions``, or the points when any group has < 10 values."""
    if min((len(x) for x in data), default=0) >= MIN_BOX_POINTS:
        ax.boxplot(data, positions=positions, widths=0.6, showfliers=False)
        return
    rng = np.random.default_rng(0)  # a fixed jitter: the same figure on every render
    for pos, x in zip(positions, data, strict=True):
        jitter = rng.uniform(-0.15, 0.15, len(x))
        ax.plot(np.asarray(pos) + jitter, x, "o", ms=3, color="#3182bd", alpha=0.7)



@_hashed
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
    _distribution(ax, lags, data)
    ax.plot(lags, [x.mean() if len(x) else np.nan for x in data], "o-", color="#d95f02",
            ms=3, lw=1, label="mean rho_j")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.5)
    for i, (label, lag) in enumerate((marks or {}).items()):
        ax.axvline(lag, color=f"C{i + 2}", ls="--", lw=1, label=f"{label} ({lag:+d} h)")
    ax.set_xticks(lags, [str(lag) for lag in lags])
    ax.set_xlabel("lag L (hours); rho(L) = corr(log Web_Adult(t), log Tor(t + L))")
    ax.set_ylabel("rho_j")
    few = min(len(x) for x in data) < MIN_BOX_POINTS
    ax.set_title("Lag sweep: the communes' rho_j" + (" (one point per commune)" if few else
                 " (box plots)"), fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# The sweep's comparison of variants, the demo's truth check
# --------------------------------------------------------------------------------------------


@_hashed
def sweep_comparison(rho_by_lag: Mapping[str, pd.DataFrame],
                     table: pd.DataFrame | None = None) -> Figure:  # fmt: skip
    """``cpc sweep``: rho_j per lag for each variant and, when known, the outcome correlation.

    Parameters
    ----------
    rho_by_lag : mapping of variant -> DataFrame
        Each variant's ``rho_by_lag.csv`` (``lag_h``, ``rho``).
    table : pandas.DataFrame, optional
        ``sweep/comparison.csv``: ``grid``, ``lag_h`` and ``spearman_cpc`` (the Spearman
        correlation of log cpc per 1000 with the outcome), drawn on a second row.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> r = {"g": pd.DataFrame({"lag_h": [0, 0, 1, 1], "rho": [0.1, 0.2, 0.0, 0.05]})}
    >>> t = pd.DataFrame({"grid": ["g", "g"], "lag_h": [0, 1], "spearman_cpc": [0.3, 0.1]})
    >>> fig = sweep_comparison(r, t)
    >>> len(fig.axes), fig.axes[1].get_ylabel()
    (2, 'Spearman(log cpc per 1000, outcome)')
    """
    outcome = (table is not None and "spearman_cpc" in table.columns
               and table["spearman_cpc"].notna().any())  # fmt: skip
    n = max(1, len(rho_by_lag))
    fig = _figure(min(4.8 * n, 14), 3.6 + (2.6 if outcome else 0))
    axes = fig.subplots(2 if outcome else 1, n, squeeze=False, sharey="row")
    for i, (grid, r) in enumerate(rho_by_lag.items()):
        ax = axes[0][i]
        r = r.dropna(subset=["rho"])
        lags = sorted(r["lag_h"].astype(int).unique())
        data = [r.loc[r["lag_h"] == lag, "rho"].to_numpy(dtype=float) for lag in lags]
        if lags:
            _distribution(ax, lags, data)
            ax.set_xticks(lags, [str(x) for x in lags])
        n_areas = r["commune"].nunique() if "commune" in r.columns else max(map(len, data), default=0)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{grid}: rho_j by lag ({n_areas} areas)", fontsize=10)
        ax.set_xlabel("lag (h), Tor after Web_Adult")
        if outcome:
            t = table.loc[table["grid"] == grid].sort_values("lag_h")
            axo = axes[1][i]
            axo.plot(t["lag_h"], t["spearman_cpc"], "o-", color="#d95f02", ms=4)
            axo.axhline(0, color="grey", lw=0.5)
            axo.set_xlabel("lag (h)")
            axo.set_title(f"{grid}: correlation with the outcome", fontsize=10)
    axes[0][0].set_ylabel("rho_j")
    if outcome:
        axes[1][0].set_ylabel("Spearman(log cpc per 1000, outcome)")
    return fig


@_hashed
def truth_scatter(rho_true: pd.Series, rho_est: pd.Series, cpc_true: pd.Series,
                  cpc_est: pd.Series) -> Figure:  # fmt: skip
    """The demo's check: estimated against planted rho_j, and cpc per 1000 (synthetic data).

    Examples
    --------
    >>> s = pd.Series([0.1, 0.2, 0.3])
    >>> [ax.get_xlabel() for ax in truth_scatter(s, s, s * 10, s * 11).axes]
    ['planted rho_j', 'planted cpc per 1000 (log)']
    """
    fig = _figure(9, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(rho_true, rho_est, "o", ms=3, alpha=0.7, color="#3182bd")
    lo = float(np.nanmin([rho_true.min(), rho_est.min(), 0.0])) if len(rho_true) else 0.0
    hi = float(np.nanmax([rho_true.max(), rho_est.max(), 0.1])) if len(rho_true) else 1.0
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="y = x")
    ax1.set_xlabel("planted rho_j")
    ax1.set_ylabel("estimated rho_j")
    ax1.set_title("rho_j: recovered vs planted", fontsize=10)
    ax1.legend(fontsize=8)
    ok = (cpc_true > 0) & (cpc_est > 0)
    ax2.plot(cpc_true[ok], cpc_est[ok], "o", ms=3, alpha=0.7, color="#6a3d9a")
    if ok.any():
        lo2 = float(min(cpc_true[ok].min(), cpc_est[ok].min()))
        hi2 = float(max(cpc_true[ok].max(), cpc_est[ok].max()))
        ax2.plot([lo2, hi2], [lo2, hi2], color="grey", lw=1, ls="--")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
    else:
        # a log axis without one positive value cannot be drawn (matplotlib raises at render);
        # the panel says so instead of failing the report (tiny runs, all cpc suppressed or 0)
        ax2.text(0.5, 0.5, "no commune with a positive planted and\nestimated cpc per 1000",
                 ha="center", va="center", transform=ax2.transAxes, fontsize=9)
    ax2.set_xlabel("planted cpc per 1000 (log)")
    ax2.set_ylabel("estimated cpc per 1000 (log)")
    ax2.set_title("cpc per 1000: estimated vs planted", fontsize=10)
    fig.suptitle("SYNTHETIC DATA: check against the planted truth", fontsize=10, color="#6a3d9a")
    return fig


# --------------------------------------------------------------------------------------------
# Uncertainty of the estimates (estimate.uncertainty)
# --------------------------------------------------------------------------------------------


@_hashed
def caterpillar(areas: pd.DataFrame, value: str = "cpc_per_1000", *, top_n: int = 30,
                level: float = 0.90, median: float | None = None,
                label: str = "name") -> Figure:  # fmt: skip
    """Caterpillar plot: the ``top_n`` areas by ``value`` with their intervals.

    One row per area, highest at the top, a point at the estimate and a bar from
    ``{value}_lo`` to ``{value}_hi``; a vertical line at ``median`` (the median over all
    areas, passed by the caller, who knows which areas are public). Rows whose interval
    contains the median are drawn grey: their place above the typical area is not
    established at this level.

    Parameters
    ----------
    areas : pandas.DataFrame
        ``value``, ``{value}_lo``, ``{value}_hi`` and optionally ``label`` per area; the
        index is used when ``label`` is absent or empty. Pass public areas only (small areas
        removed): the plot names areas.
    value : str
        The ranked quantity (default cpc per 1000).
    top_n : int
        How many areas to draw (fewer if fewer have an interval).
    level : float
        The intervals' level, for the axis label.
    median : float, optional
        Drawn as a vertical line and used for the grey rows; ``None``: no line.
    label : str
        Column of area names.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> df = pd.DataFrame({"cpc_per_1000": [3.0, 1.0, 2.0], "cpc_per_1000_lo": [2.0, 0.5, 1.0],
    ...                    "cpc_per_1000_hi": [4.0, 1.5, 3.0]}, index=["a", "b", "c"])
    >>> ax = caterpillar(df, top_n=2, median=2.0).axes[0]
    >>> sorted((float(t.get_position()[1]), t.get_text()) for t in ax.get_yticklabels())
    [(0.0, 'c'), (1.0, 'a')]
    """
    lo_col, hi_col = f"{value}_lo", f"{value}_hi"
    d = areas.loc[areas[[value, lo_col, hi_col]].notna().all(axis=1)]
    d = d.sort_values(value, ascending=False, kind="stable").head(int(top_n))
    names = [str(n) if isinstance(n, str) and n else str(i)
             for i, n in zip(d.index, d[label] if label in d else d.index, strict=True)]  # fmt: skip
    fig = _figure(7, max(2.5, 0.22 * len(d) + 1.4))
    ax = fig.add_subplot()
    what = value.replace("_", " ")
    if d.empty:
        ax.text(0.5, 0.5, f"no area has an interval of {what}", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    y = np.arange(len(d))[::-1]  # the highest at the top
    v, lo, hi = (d[c].to_numpy(dtype=float) for c in (value, lo_col, hi_col))
    over = np.zeros(len(d), bool) if median is None else (lo <= median) & (median <= hi)
    for mask, colour, lab in ((~over, "#3182bd", "interval above the median"),
                              (over, "#969696", "interval contains the median")):
        if mask.any():
            ax.hlines(y[mask], lo[mask], hi[mask], color=colour, lw=2, label=lab)
            ax.plot(v[mask], y[mask], "o", ms=4, color=colour)
    if median is not None:
        ax.axvline(median, color="#d95f02", ls="--", lw=1,
                   label=f"median of all areas ({median:.3g})")
    if (lo > 0).all() and (median is None or median > 0):
        ax.set_xscale("log")
        scale = ", log scale"
    else:
        scale = ""
    ax.set_yticks(y, names, fontsize=7)
    ax.set_ylim(-0.7, len(d) - 0.3)
    ax.set_xlabel(f"{what} with its {round(100 * level)} % interval{scale}")
    ax.set_title(f"The {len(d)} areas with the highest {what}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig
