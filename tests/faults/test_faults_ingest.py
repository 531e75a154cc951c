"""Fault corpus: the input files of ``cpc ingest`` (issue #12, "Ingest edge cases").

Every case runs the real command in a fresh interpreter (:mod:`tests.faults.harness`) on a copy
of one small synthetic tree (Nice, Tor and Web_Adult, 2 days, DL: four files of ~33 tiles),
damaged in one way, in ``fail`` and in ``quarantine`` mode where both make sense. Each states
the exit code, a fragment of the message (file and line) and a data check:

- the cube equals a plain-numpy parse of the good lines of the untouched files (rejected lines
  and files NaN, never zero, nothing shifted);
- in the QC report, values read = values stored + values rejected, and the damaged file is
  listed (rejected, ignored or missing) with its reason;
- in ``fail`` mode nothing of the damaged file is stored.

Commands connect to the session's Dask cluster (``--cluster tcp://...``) so that each case
costs a command's start, not a cluster's; the permission cases start their own cluster, whose
workers must lack the right to read the file.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from cpc_core.cube import store
from tests.faults.harness import CPC, ROOT, Answer, expect, run_cpc

CITY = "Nice"
SERVICES = ("Tor", "Web_Adult")
DAYS = (dt.date(2019, 3, 16), dt.date(2019, 3, 17))
KEYS = [(s, d) for s in SERVICES for d in DAYS]
#: Nice's grid is 150 x 214 cells
GRID = 150 * 214


def fname(service: str, day: dt.date) -> str:
    return f"{CITY}/{service}/{day:%Y%m%d}/{CITY}_{service}_{day:%Y%m%d}_DL.txt"


#: the file damaged by the line cases: the plan's last, read by a worker (the first file is the
#: tile list's reference and is read while planning)
VICTIM = ("Web_Adult", DAYS[1])


def slots_utc(day: dt.date) -> pd.DatetimeIndex:
    """Independent of cpc_core.netmob.facts: the day's 96 wall-clock slots in UTC (no DST day here)."""
    wall = pd.date_range(pd.Timestamp(day), periods=96, freq="15min")
    return wall.tz_localize("Europe/Paris").tz_convert("UTC").tz_localize(None)


def plain(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy: tile ids and values of a clean NetMob file."""
    a = np.loadtxt(path, dtype=np.float64, ndmin=2)
    return a[:, 0].astype(np.int64), a[:, 1:]


@pytest.fixture(scope="module")
def base(tmp_path_factory, client) -> Path:
    from cpc_core.synth.generator import SynthSpec
    from jobs.synth import run_synth

    out = tmp_path_factory.mktemp("faults-ingest")
    run_synth(SynthSpec(cities=(CITY,), services=SERVICES, start=DAYS[0], days=2, scale=0.002, seed=5), out, client)
    root = out / "netmob"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.txt")) == sorted(fname(*k) for k in KEYS)
    return root


@pytest.fixture(scope="module")
def ref(base) -> dict:
    """(service, day) -> (tile ids, values) of the untouched files, by plain numpy."""
    return {k: plain(base / fname(*k)) for k in KEYS}


@pytest.fixture(scope="module")
def plain_cube(base, client, tmp_path_factory) -> str:
    s = str(tmp_path_factory.mktemp("plain") / "c.zarr")
    expect(run_cpc("ingest", "--input", base, "--store", s, "--cluster", client.scheduler.address), 0)
    return s


@pytest.fixture
def tree(tmp_path, base) -> Path:
    dst = tmp_path / "netmob"
    shutil.copytree(base, dst)
    return dst


def ingest(tree: Path, mode: str, client=None, prefix: tuple[str, ...] = (), timeout: float = 180) -> tuple[Answer, str, Path]:
    """``cpc ingest`` of ``tree`` in ``mode``; returns the answer, the store and the report dir."""
    s = str(tree.parent / f"{mode}.zarr")
    rep = tree.parent / f"{mode}-reports"
    args = ["ingest", "--input", tree, "--store", s, "--on-error", mode, "--report-dir", rep]
    if client is not None:
        args += ["--cluster", client.scheduler.address]
    if not prefix:
        return run_cpc(*args, timeout=timeout), s, rep
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    proc = subprocess.run([*prefix, *CPC, *map(str, args)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return Answer(proc.returncode, proc.stdout, proc.stderr), s, rep


def qc_of(rep: Path) -> dict:
    qc = json.loads(max(rep.glob("ingest-*.json")).read_text())
    # the accounting every case checks: nothing read is unaccounted for
    assert qc["values_read"] == qc["values_stored"] + qc["values_rejected"], qc
    assert sum(e["values"] for e in qc["rejected"]) == qc["values_rejected"]
    return qc


def check_cube(s: str, ref: dict, nan_files=(), nan_rows: dict | None = None) -> None:
    """The stored cube equals the plain parse, with whole files or rows (0-based) NaN."""
    lay = store.read_layout(s, CITY)
    np.testing.assert_array_equal(lay.tiles, np.sort(ref[KEYS[0]][0]))
    ds = store.open_cube(s, CITY)
    for k, (ids, vals) in ref.items():
        exp = vals.astype(np.float32)
        if k in nan_files:
            exp[:] = np.nan
        for i in (nan_rows or {}).get(k, ()):
            exp[i] = np.nan
        got = ds["DL"].sel(service=k[0], tile=ids, time=slots_utc(k[1])).values
        np.testing.assert_array_equal(got, exp, err_msg=str(k))


def nothing_stored(s: str, key: tuple) -> None:
    """Fail mode: the damaged file left no trace (no store yet, or its slot pending and NaN)."""
    lay = store.read_layout(s, CITY)
    if lay is None:
        return
    si, di = lay.services.index(key[0]), lay.days.index(key[1])
    assert store.file_states(s, CITY, "DL")[0][si, di] == store.STATUS["pending"]
    assert np.isnan(store.open_cube(s, CITY)["DL"].sel(service=key[0], time=slots_utc(key[1])).values).all()


def rejected_file(qc: dict, path: Path, fragment: str) -> dict:
    """The whole-file entry of a quarantined file, its slot listed as rejected."""
    rows = [r for r in qc["rejected"] if r["path"] == str(path) and r["code"] == -1]
    assert len(rows) == 1 and fragment in rows[-1]["reason"], (fragment, qc["rejected"])
    assert qc["files"]["rejected"] == 1 and qc["files"]["ok"] == len(KEYS) - 1
    states = {(m["service"], m["state"]) for m in qc["cities"][CITY]["missing"]}
    assert len(qc["cities"][CITY]["missing"]) == 1 and states <= {(s, "rejected") for s in SERVICES}
    return rows[-1]


def set_line(path: Path, lineno: int, new: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[lineno - 1] = new
    path.write_bytes(b"".join(lines))


def line_of(ref: dict, key: tuple, i: int, values: list[str] | None = None) -> bytes:
    ids, vals = ref[key]
    toks = values if values is not None else [str(int(v)) for v in vals[i]]
    return (f"{ids[i]} " + " ".join(toks) + "\n").encode()


# --- 1. a file cut inside its last number, without a final newline --------------------------

def _truncate(tree: Path, ref: dict) -> tuple[Path, int]:
    f = tree / fname(*VICTIM)
    n = len(ref[VICTIM][0])
    set_line(f, n, line_of(ref, VICTIM, n - 1, ["7"] * 95 + ["1234"]))
    f.write_bytes(f.read_bytes()[:-3])  # "1234\n" -> "12": the right column count
    return f, n


def test_truncated_last_number_fail(tree, ref, client):
    f, n = _truncate(tree, ref)
    a, s, _ = ingest(tree, "fail", client)
    expect(a, 1, f"{f}:{n}: truncated last line (the file does not end with a newline)")
    nothing_stored(s, VICTIM)


def test_truncated_last_number_quarantine(tree, ref, client):
    f, n = _truncate(tree, ref)
    a, s, rep = ingest(tree, "quarantine", client)
    expect(a, 0)
    qc = qc_of(rep)
    row = rejected_file(qc, f, "truncated: the file does not end with a newline")
    assert row["line"] == n and f"line {n}" in row["reason"]
    assert qc["values_rejected"] == n * 96  # the whole file, its cut line included
    check_cube(s, ref, nan_files={VICTIM})


# --- 2. non-regular files, and files present but unusable ----------------------------------

@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_fifo_named_like_a_data_file_is_ignored_never_opened(tree, ref, client, mode):
    f = tree / fname(*VICTIM)
    f.unlink()
    os.mkfifo(f)
    a, s, rep = ingest(tree, mode, client, timeout=120)  # opening it would block a worker forever
    expect(a, 0, "not a regular file (a FIFO): never opened")
    qc = qc_of(rep)
    assert qc["ignored_paths"] == [str(f)] and "a FIFO" in qc["ignored_reasons"][str(f)]
    assert [(m["service"], m["state"]) for m in qc["cities"][CITY]["missing"]] == [(VICTIM[0], "missing")]
    assert "a FIFO" in max(rep.glob("ingest-*.md")).read_text()
    check_cube(s, ref, nan_files={VICTIM})


def _directory(tree: Path) -> Path:
    f = tree / fname(*VICTIM)
    f.unlink()
    f.mkdir()
    return f


def _wrong_case(tree: Path) -> Path:
    f = tree / fname(*VICTIM)
    g = f.with_name(f.name.replace(CITY, CITY.lower(), 1))
    f.rename(g)
    return g


def _dangling(tree: Path) -> Path:
    f = tree / fname(*VICTIM)
    f.unlink()
    f.symlink_to("gone.txt")
    return f


def _loop(tree: Path) -> Path:
    f = tree / fname(*VICTIM)
    f.unlink()
    f.symlink_to(f.name)  # a link to itself: ELOOP
    return f


UNUSABLE = {
    "directory": (_directory, 1, "present but unusable: a directory, not a file"),
    "wrong-case": (_wrong_case, 1, "present but unusable: the name differs in case from the layout's"),
    "dangling-link": (_dangling, 1, "present but unusable: a symbolic link to a missing file"),
    "symlink-loop": (_loop, 3, "present but unusable: a symbolic link loop (ELOOP)"),
}


@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_file_fail(tree, ref, client, case):
    make, code, fragment = UNUSABLE[case]
    f = make(tree)
    a, s, _ = ingest(tree, "fail", client)
    expect(a, code, f"{f}: {fragment}", "--on-error quarantine")
    assert store.read_layout(s, CITY) is None  # stopped while planning: nothing written


@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_file_quarantine(tree, ref, client, case):
    make, _, fragment = UNUSABLE[case]
    f = make(tree)
    a, s, rep = ingest(tree, "quarantine", client)
    expect(a, 0, fragment)  # logged
    qc = qc_of(rep)
    row = rejected_file(qc, f, fragment)
    assert row["values"] == 0 and qc["values_read"] == qc["values_stored"] == 3 * 96 * len(ref[VICTIM][0])
    check_cube(s, ref, nan_files={VICTIM})


# --- 3. permissions: the environment, not the data -----------------------------------------

def _unreadable(tree: Path) -> tuple[Path, tuple[str, ...]]:
    f = tree / fname(*VICTIM)
    f.chmod(0)
    # root reads anything: drop the capabilities that let it (the command and its workers)
    prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--") if os.geteuid() == 0 else ()
    return f, prefix


def test_permission_denied_fail_is_exit_3(tree, ref):
    f, prefix = _unreadable(tree)
    a, s, _ = ingest(tree, "fail", prefix=prefix)
    expect(a, 3, f"{f}: permission denied", "the environment, not the data")
    assert len(a.err.strip().splitlines()[-1]) < 400
    nothing_stored(s, VICTIM)


def test_permission_denied_quarantine_keeps_going(tree, ref):
    f, prefix = _unreadable(tree)
    a, s, rep = ingest(tree, "quarantine", prefix=prefix)
    expect(a, 0)
    qc = qc_of(rep)
    assert rejected_file(qc, f, "permission denied")["values"] == 0
    check_cube(s, ref, nan_files={VICTIM})


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_unreadable_day_folder_is_exit_3_not_missing_files(tree, ref, mode):
    """fsspec's walk leaves an unreadable folder out silently: its files would have read as
    missing. It is the environment in both modes (nothing inside can be judged)."""
    d = (tree / fname(*VICTIM)).parent
    d.chmod(0)
    try:
        prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--") if os.geteuid() == 0 else ()
        a, s, _ = ingest(tree, mode, prefix=prefix)
    finally:
        d.chmod(0o755)
    expect(a, 3, f"{d}: cannot list the folder: permission denied")
    assert store.read_layout(s, CITY) is None


# --- 4. quarantine when none of the city's first files is fully clean -----------------------

def _all_dirty(tree: Path, ref: dict) -> tuple[dict, int]:
    """Each file has one negative value on a different line; the first has one extra tile."""
    rows = {}
    for i, k in enumerate(KEYS):
        f = tree / fname(*k)
        vals = [str(int(v)) for v in ref[k][1][i + 1]]
        vals[5] = "-3"
        set_line(f, i + 2, line_of(ref, k, i + 1, vals))
        rows[k] = [i + 1]
    extra = next(t for t in range(GRID - 1, 0, -1) if t not in ref[KEYS[0]][0])
    f = tree / fname(*KEYS[0])
    f.write_bytes(f.read_bytes() + f"{extra} ".encode() + b"1 " * 95 + b"1\n")
    return rows, extra


def test_no_clean_first_file_fail(tree, ref, client):
    _all_dirty(tree, ref)
    a, s, _ = ingest(tree, "fail", client)
    expect(a, 1, f"{tree / fname(*KEYS[0])}:2: negative value in value column 6")
    assert store.read_layout(s, CITY) is None


def test_no_clean_first_file_quarantine_takes_the_majority(tree, ref, client):
    rows, extra = _all_dirty(tree, ref)
    a, s, rep = ingest(tree, "quarantine", client)
    expect(a, 0, "majority of their valid lines")
    qc = qc_of(rep)
    src = qc["cities"][CITY]["tile_list_from"]
    assert "more than half of these 4 files" in src["rule"] and src["left_out"] == [extra]
    assert src["left_out_tiles"] == 1 and len(src["files"]) == 4
    reasons = {(Path(r["path"]).name, r["line"]): r["reason"] for r in qc["rejected"]}
    first = Path(fname(*KEYS[0])).name
    assert reasons[first, len(ref[KEYS[0]][0]) + 1].startswith(f"tile id not in the city's tile list: {extra}")
    assert all(reasons[Path(fname(*k)).name, i + 2] == "negative value in value column 6" for i, k in enumerate(KEYS))
    assert qc["files"]["partial"] == 4 and qc["values_rejected"] == 5 * 96
    check_cube(s, ref, nan_rows=rows)


# --- 5. compressed files --------------------------------------------------------------------

def _compress(f: Path, codec: str) -> Path:
    data = f.read_bytes()
    if codec == "gz":
        packed = gzip.compress(data)
    elif codec == "bz2":
        packed = bz2.compress(data)
    else:
        import zstandard

        packed = zstandard.ZstdCompressor().compress(data)
    g = f.with_name(f.name + "." + codec)
    g.write_bytes(packed)
    f.unlink()
    return g


def same_cube(a: str, b: str) -> None:
    """Every array of the city's group holds the same bytes."""
    ga, gb = zarr.open_group(a, mode="r")[CITY], zarr.open_group(b, mode="r")[CITY]
    names = sorted(n for n, _ in ga.arrays())
    assert names == sorted(n for n, _ in gb.arrays()) and "DL" in names
    for n in names:
        x, y = np.asarray(ga[n][...]), np.asarray(gb[n][...])
        assert x.dtype == y.dtype and x.shape == y.shape, n
        assert x.tobytes() == y.tobytes(), n


@pytest.mark.parametrize("codecs", [("gz",), ("bz2",), ("zst",), ("gz", None, "zst", "bz2")],
                         ids=["gz", "bz2", "zst", "mixed"])
def test_compressed_tree_ingests_to_the_plain_cube(tree, ref, client, plain_cube, codecs):
    for i, k in enumerate(KEYS):
        codec = codecs[i % len(codecs)]
        if codec:
            _compress(tree / fname(*k), codec)
    a, s, rep = ingest(tree, "fail", client)
    expect(a, 0)
    qc = qc_of(rep)
    assert qc["files"]["ok"] == 4 and qc["values_rejected"] == 0 and qc["ignored_files"] == 0
    assert qc["values_read"] == 96 * sum(len(v[0]) for v in ref.values())
    same_cube(s, plain_cube)
    check_cube(s, ref)


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_plain_and_compressed_copy_of_one_file(tree, ref, client, mode):
    f = tree / fname(*VICTIM)
    g = f.with_name(f.name + ".gz")
    g.write_bytes(gzip.compress(f.read_bytes()))
    a, s, rep = ingest(tree, mode, client)
    frag = f"2 copies of one file: {f} and {g}"
    if mode == "fail":
        expect(a, 1, frag)
        assert store.read_layout(s, CITY) is None
        return
    expect(a, 0)
    qc = qc_of(rep)
    assert rejected_file(qc, f, frag)["values"] == 0  # neither is read, never counted twice
    check_cube(s, ref, nan_files={VICTIM})


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_damaged_gzip(tree, ref, client, mode):
    g = _compress(tree / fname(*VICTIM), "gz")
    g.write_bytes(g.read_bytes()[:-20])  # cut: no end-of-stream marker
    a, s, rep = ingest(tree, mode, client)
    if mode == "fail":
        expect(a, 1, f"{g}: damaged gzip file")
        nothing_stored(s, VICTIM)
        return
    expect(a, 0)
    rejected_file(qc_of(rep), g, "damaged gzip file")
    check_cube(s, ref, nan_files={VICTIM})


# --- 7. whole-file and line-level bad input ---------------------------------------------------

def test_crlf_line_ends_are_accepted(tree, ref, client, plain_cube):
    """NetMob23's README says space separated, one tile per line; a copy made on Windows has
    CRLF line ends. They carry the same values: accepted, the same cube."""
    for k in KEYS:
        f = tree / fname(*k)
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    a, s, rep = ingest(tree, "fail", client)
    expect(a, 0)
    assert qc_of(rep)["files"]["ok"] == 4
    same_cube(s, plain_cube)


WHOLE = {
    "empty": (b"", None, "empty file"),
    "header-only": (b"tile_id " + b" ".join(f"v{i}".encode() for i in range(1, 97)) + b"\n", 1,
                    "tile id is not a non-negative integer"),
}


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
@pytest.mark.parametrize("case", WHOLE)
def test_whole_file_bad(tree, ref, client, case, mode):
    content, line, reason = WHOLE[case]
    f = tree / fname(*VICTIM)
    f.write_bytes(content)
    a, s, rep = ingest(tree, mode, client)
    if mode == "fail":
        expect(a, 1, f"{f}:{line}: {reason}" if line else f"{f}: {reason}")
        nothing_stored(s, VICTIM)
        return
    expect(a, 0)
    qc = qc_of(rep)
    rejected_file(qc, f, "empty file" if case == "empty" else "no valid line")
    if line:
        assert any(r["path"] == str(f) and r["line"] == line and reason in r["reason"] for r in qc["rejected"])
        assert qc["values_rejected"] == 96  # the header's 96 tokens after its first
    check_cube(s, ref, nan_files={VICTIM})


def _tok(col: int, token: str):
    def edit(ids, vals, i):
        toks = [str(int(v)) for v in vals[i]]
        toks[col - 1] = token
        return (f"{ids[i]} " + " ".join(toks) + "\n").encode(), 96
    return edit


def _extra(ids, vals, i):
    return (f"{ids[i]} " + " ".join(str(int(v)) for v in vals[i]) + " 5\n").encode(), 97


def _short(ids, vals, i):
    return (f"{ids[i]} " + " ".join(str(int(v)) for v in vals[i][:90]) + "\n").encode(), 90


def _dup(ids, vals, i):
    return (f"{ids[0]} " + " ".join("4" for _ in range(96)) + "\n").encode(), 96


def _outside(ids, vals, i):
    return (f"{GRID + 17} " + " ".join(str(int(v)) for v in vals[i]) + "\n").encode(), 96


def _nul_in_id(ids, vals, i):
    return (f"{ids[i]}\0 " + " ".join(str(int(v)) for v in vals[i]) + "\n").encode(), 96


#: name -> (edit of line 3, reason in the message)
LINES = {
    "nul-byte": (_tok(7, "1\0"), "non-numeric value in value column 7"),
    "nul-in-tile-id": (_nul_in_id, "tile id is not a non-negative integer"),
    "non-utf8-byte": (lambda ids, vals, i: (_tok(9, "x")(ids, vals, i)[0].replace(b" x ", b" \xff\xfe ", 1), 96),
                      "non-numeric value in value column 9"),
    "too-many-columns": (_extra, "too many value columns: expected 96, found 97"),
    "too-few-columns": (_short, "too few value columns: expected 96, found 90"),
    "negative": (_tok(40, "-12"), "negative value in value column 40"),
    "nan-text": (_tok(2, "NaN"), "NaN value in value column 2"),
    "inf-text": (_tok(96, "inf"), "non-numeric value in value column 96"),
    "duplicate-tile": (_dup, "duplicate tile id: {first}"),
    "outside-grid": (_outside, f"tile id outside the city's grid: {GRID + 17}"),
}


#: the line cases whose line lacks a valid tile id of its own: that tile is absent from the file
NO_OWN_TILE = ("duplicate-tile", "outside-grid", "nul-in-tile-id")


@pytest.mark.parametrize("case", LINES)
def test_bad_line_fail(tree, ref, client, case):
    edit, reason = LINES[case]
    f = tree / fname(*VICTIM)
    ids, vals = ref[VICTIM]
    set_line(f, 3, edit(ids, vals, 2)[0])
    a, s, _ = ingest(tree, "fail", client)
    expect(a, 1, f"{f}:3: {reason.format(first=ids[0])}")
    nothing_stored(s, VICTIM)


def test_bad_lines_quarantine(tree, ref, client):
    """Every line case of :data:`LINES` at once, one per line (2, 3, ...) of the same file: each
    line is rejected with its reason and its tokens counted; every other value is stored."""
    f = tree / fname(*VICTIM)
    ids, vals = ref[VICTIM]
    tokens = {}
    for j, (case, (edit, _)) in enumerate(LINES.items()):
        new, tokens[case] = edit(ids, vals, j + 1)
        set_line(f, j + 2, new)
    a, s, rep = ingest(tree, "quarantine", client)
    expect(a, 0)
    qc = qc_of(rep)
    rows = [r for r in qc["rejected"] if r["path"] == str(f)]
    by_line = {r["line"]: r for r in rows if r["line"]}
    for j, (case, (_, reason)) in enumerate(LINES.items()):
        r = by_line[j + 2]
        assert reason.format(first=ids[0]) in r["reason"] and r["values"] == tokens[case], (case, r)
    assert len(by_line) == len(LINES)
    assert qc["values_rejected"] == sum(tokens.values()) and qc["files"]["partial"] == 1 and qc["files"]["ok"] == 3
    # a line without a valid tile id of its own leaves that tile absent from the file: reported
    absent = [r for r in rows if r["code"] == -2]
    lost = [ids[j + 1] for j, case in enumerate(LINES) if case in NO_OWN_TILE]
    assert len(absent) == 1 and f"{len(lost)} of {len(ids)} tiles absent (e.g. {', '.join(map(str, lost))})" \
        in absent[0]["reason"]
    # the bad lines' tiles are not stored from them (NaN); every other value is
    check_cube(s, ref, nan_rows={VICTIM: list(range(1, len(LINES) + 1))})
