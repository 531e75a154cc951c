"""The cube for xarray users: CF-style attributes on every array, no machine paths in them,
and the data untouched (issue #16, "Outputs and their units")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from cpc_core.cube import store


def _walk_attrs(node, out: list[str]) -> None:
    """Every string inside an attribute value (nested lists and dicts included)."""
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        for v in node.values():
            _walk_attrs(v, out)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _walk_attrs(v, out)


def _all_metadata_strings(path: str) -> list[str]:
    found: list[str] = []
    for meta in Path(path).rglob("zarr.json"):
        _walk_attrs(json.loads(meta.read_text()).get("attributes", {}), found)
    return found


def _parse_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NetMob23 file read with pandas alone: tile ids and the (tile, slot) values."""
    df = pd.read_csv(path, sep=" ", header=None)
    df = df.sort_values(0)
    return df[0].to_numpy(np.int64), df.iloc[:, 1:].to_numpy(np.float32)


def test_cube_opens_with_units_and_names_everywhere(cube, synth_tree):
    tree = xr.open_datatree(cube, engine="zarr", consolidated=False)
    cities = [c for c in tree.children]
    assert sorted(cities) == ["Lyon", "Nice"]
    for city in cities:
        ds = tree[city].to_dataset()
        assert ds.attrs["description"] and ds.attrs["cf_attributes"] == store.CF_ATTRIBUTES
        for name, var in {**ds.data_vars, **ds.coords}.items():
            units = var.attrs.get("units", var.encoding.get("units"))
            assert units, f"{city}/{name} has no units"
            assert var.attrs.get("long_name"), f"{city}/{name} has no long_name"
            assert var.attrs.get("description"), f"{city}/{name} has no description"
        assert ds["DL"].attrs["units"] == "NetMob23 traffic units per 15-minute slot"
        assert ds["DL_hourly"].attrs["units"] == "NetMob23 traffic units per hour"
        assert ds["DL_total"].attrs["units"] == "NetMob23 traffic units"
        # the CF time encoding is decoded to datetimes, the slots 15 minutes apart
        assert np.issubdtype(ds["time"].dtype, np.datetime64)
        assert ds["time"].encoding["units"] == "minutes since 1970-01-01"
        assert (np.diff(ds["time"].values) == np.timedelta64(15, "m")).all()
        assert ds["day"].values[0] == np.datetime64("2019-03-29")
        assert ds["DL_status"].attrs["flag_meanings"].split() == list(store.STATUS)


def test_cube_attributes_hold_no_machine_path(cube, synth_tree):
    root = str(Path(synth_tree / "netmob").resolve())
    strings = _all_metadata_strings(cube)
    assert strings, "no attribute read at all"
    for s in strings:
        assert root not in s and "/tmp" not in s and str(Path(cube).resolve()) not in s, s
    # the tile list's sources, relative to the input root, name real files under it
    for city in ("Lyon", "Nice"):
        src = zarr.open_group(cube, mode="r")[city].attrs["tiles_from"]
        assert src and all(not Path(p).is_absolute() for p in src)
        assert all((Path(root) / p).is_file() for p in src), src


def test_cube_values_equal_the_files_parsed_with_pandas(cube, synth_tree):
    ds = xr.open_zarr(cube, group="Nice", consolidated=False)
    days = pd.to_datetime(ds["day"].values).date
    services = list(ds["service"].values)
    checked = 0
    for f in sorted((synth_tree / "netmob" / "Nice").rglob("*_DL.txt"))[:3]:
        service, day = f.parent.parent.name, f.parent.name  # <City>/<Service>/<YYYYMMDD>/file
        day = pd.Timestamp(day).date()
        tiles, values = _parse_file(f)
        di, si = list(days).index(day), services.index(service)
        # layout 3: one row of slots per local day, NaN-padded to 100 (read by xarray alone)
        assert ds["DL"].dims == ("service", "tile", "day", "slot")
        row = ds["DL"].isel(service=si, day=di).sel(tile=tiles).values
        np.testing.assert_array_equal(row[:, : values.shape[1]], values)
        assert np.isnan(row[:, values.shape[1]:]).all()
        assert ds["DL_status"].values[si, di] == store.STATUS["ok"]
        checked += 1
    assert checked == 3


def test_store_written_before_gets_the_attributes_and_keeps_its_chunks(tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.setattr(store, "LAYOUT_VERSION", 2)  # stores of before the attributes were layout 2
    lay = store.CityLayout("Nice", dt.date(2019, 3, 30), dt.date(2019, 3, 31), ("Tor",),
                           np.arange(6, dtype=np.int64), ("DL",))
    s = str(tmp_path / "c.zarr")
    store.create_or_extend(s, lay)
    block = np.arange(6 * 96, dtype=np.float32).reshape(6, 96)
    store.write_file_block(s, "Nice", "DL", 0, 0, lay.day_slice(lay.days[0]), block, store.STATUS["ok"])
    # make it a store of before: no CF attributes on any array, no marker on the group
    for meta in Path(s, "Nice").rglob("zarr.json"):
        doc = json.loads(meta.read_text())
        attrs = doc.get("attributes", {})
        for k in ("long_name", "description", "standard_name"):
            attrs.pop(k, None)
        if meta.parent.name == "Nice":
            attrs.pop("cf_attributes")
        elif meta.parent.name not in ("time", "day"):
            attrs.pop("units", None)
        meta.write_text(json.dumps(doc))
    chunks = {p: p.read_bytes() for p in Path(s, "Nice").rglob("c/*/*") if p.is_file()}
    chunks.update({p: p.read_bytes() for p in Path(s, "Nice").rglob("c/*/*/*") if p.is_file()})
    assert chunks
    before = xr.open_zarr(s, group="Nice", consolidated=False)
    assert "long_name" not in before["DL"].attrs and "units" not in before["tile"].attrs

    store.create_or_extend(s, lay)  # what the next ingest does first
    after = xr.open_zarr(s, group="Nice", consolidated=False)
    for name, var in {**after.data_vars, **after.coords}.items():
        assert var.attrs.get("long_name") and var.attrs.get("description"), name
    assert after["DL"].attrs["units"] == "NetMob23 traffic units per 15-minute slot"
    assert {p: p.read_bytes() for p in chunks} == chunks  # no chunk rewritten
    np.testing.assert_array_equal(after["DL"].values[0, :, :96], block)
    assert zarr.open_group(s, mode="r")["Nice"].attrs["cf_attributes"] == store.CF_ATTRIBUTES
