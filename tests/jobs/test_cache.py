"""The shared cache's eviction (jobs._cache.prune_shared, mark_used), on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobs import _cache

HOUR, DAY = 3_600, 86_400


def _file(folder: Path, name: str, age_s: float, size: int = 100, now: float = 0.0) -> Path:
    p = folder / name
    p.write_bytes(b"x" * size)
    os.utime(p, (now - age_s, now - age_s))
    return p


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_prune_removes_unused_entries_and_dead_writes_and_nothing_else(tmp_path):
    now = time.time()
    f = lambda name, age: _file(tmp_path, name, age, now=now)  # noqa: E731
    f("tiles-Lyon-0123456789abcdef.parquet", 40 * DAY)  # unused for 40 days: removed
    f("tiles-Paris-00000000000000aa.parquet", 1 * DAY)  # used yesterday: kept
    kept_old = f("poi-points-00000000000000bb.parquet", 90 * DAY)  # the entry just written: kept
    f(".tiles-Nice-00000000000000cc.parquet.4242.tmp", 2 * HOUR)  # a write that died: removed
    f(".tiles-Nice-00000000000000dd.parquet.4243.tmp", 10 * 60)  # a write under way: kept
    f("local-cluster.json", 90 * DAY)  # not the cache's: never looked at
    f("my-notes.parquet", 90 * DAY)  # no key: not an entry
    removed = _cache.prune_shared(tmp_path, keep=(kept_old,), now=now)
    assert {p.name for p in removed} == {"tiles-Lyon-0123456789abcdef.parquet",
                                         ".tiles-Nice-00000000000000cc.parquet.4242.tmp"}
    assert _names(tmp_path) == {"tiles-Paris-00000000000000aa.parquet", "poi-points-00000000000000bb.parquet",
                                ".tiles-Nice-00000000000000dd.parquet.4243.tmp", "local-cluster.json",
                                "my-notes.parquet"}


def test_prune_over_the_size_bound_removes_least_recently_used_but_not_what_is_in_use(tmp_path):
    now = time.time()
    ages = {"a": 5 * HOUR, "b": 4 * HOUR, "c": 3 * HOUR, "d": 2 * HOUR, "e": 10 * 60}
    for k, age in ages.items():
        _file(tmp_path, f"tiles-{k}-{'0' * 15}{k}.parquet", age, size=100, now=now)
    # 500 bytes against 250: the three least recently used go, oldest first
    removed = _cache.prune_shared(tmp_path, now=now, max_bytes=250)
    assert [p.name[6] for p in removed] == ["a", "b", "c"]
    assert sorted(p.name[6] for p in tmp_path.iterdir()) == ["d", "e"]
    # a bound below what is in use: everything older than the grace goes, "e" (10 min) stays
    removed = _cache.prune_shared(tmp_path, now=now, max_bytes=50)
    assert [p.name[6] for p in removed] == ["d"] and sorted(p.name[6] for p in tmp_path.iterdir()) == ["e"]


def test_mark_used_refreshes_the_last_use_and_says_whether_the_entry_is_there(tmp_path):
    p = _file(tmp_path, "tiles-X-0123456789abcdef.parquet", 20 * DAY, now=time.time())
    assert time.time() - p.stat().st_mtime > 19 * DAY
    assert _cache.mark_used(p) is True
    assert time.time() - p.stat().st_mtime < 60
    assert _cache.mark_used(tmp_path / "tiles-Y-0123456789abcdef.parquet") is False
