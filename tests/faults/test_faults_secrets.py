"""Fault corpus: configuration, usage, secrets and the command line's exit-code contract.

Each case runs a real ``cpc`` command (tests/faults/harness.py) and states its exit code, a
fragment of its one-line message and a data check: nothing written or started where the
command must stop at the configuration, the message never echoing a secret or a whole hostile
value. Exit codes: 1 bad data, 2 usage/configuration, 3 environment, 4 internal, 130 interrupted
(docs/errors.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cpc_core.config.core import ConfigError, load_config
from tests.faults.harness import CPC, ROOT, expect, run_cpc

BOMB_LEVELS = "abcdefghi"


def alias_bomb(indent: str = "") -> str:
    """The classic "billion laughs": 9 levels of 9 aliases, 10^9 strings once expanded."""
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip(BOMB_LEVELS, BOMB_LEVELS[1:], strict=False):
        lines.append(f"{indent}{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def nothing_written(folder: Path, *allowed: Path) -> None:
    """The data check of a command refused at its configuration: no file besides the inputs."""
    made = sorted(p for p in folder.rglob("*") if p not in allowed)
    assert made == [], made


# --------------------------------------------------------------------------------------------
# YAML that would hang or exhaust memory


@pytest.mark.parametrize("where", ["top", "cluster_options"])
def test_alias_bomb_refused_in_under_a_second(tmp_path, where):
    if where == "top":
        text = alias_bomb()
    else:  # inside cluster.cluster_options (dict[str, Any]): the case that ignored SIGTERM
        text = "cluster:\n  kind: gateway\n  cluster_options:\n" + alias_bomb("    ")
    cfg = write(tmp_path / "bomb.yaml", text)
    assert len(text.encode()) < 800
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="alias"):
        load_config(cfg)
    assert time.perf_counter() - t0 < 1.0
    t0 = time.perf_counter()
    ans = expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "bomb.yaml", "alias", "refused")
    assert time.perf_counter() - t0 < 20  # the interpreter's start-up, not an expansion
    assert len(ans.err) < 1000
    nothing_written(tmp_path, cfg)


def test_recursive_alias_refused(tmp_path):
    cfg = write(tmp_path / "loop.yaml", "cluster:\n  kind: gateway\n  cluster_options: &x\n    inner: *x\n")
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "loop.yaml", "contains it")
    nothing_written(tmp_path, cfg)


def test_deep_nesting_refused(tmp_path):
    cfg = write(tmp_path / "deep.yaml", "cluster:\n  cluster_options: " + "[" * 5000 + "]" * 5000 + "\n")
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "deep.yaml", "nested")
    nothing_written(tmp_path, cfg)


def test_benign_aliases_still_work(tmp_path):
    """Bounding the expansion keeps the ordinary use of anchors."""
    cfg = write(tmp_path / "ok.yaml", "synth: {days: 2}\nestimate:\n  lag_h: &lag 2\n  lags: [0, 1, *lag]\n")
    ans = expect(run_cpc("config", "show", cfg, cwd=tmp_path, timeout=60), 0)
    assert yaml.safe_load(ans.out)["estimate"]["lags"] == [0, 1, 2]


# --------------------------------------------------------------------------------------------
# Keys and values


@pytest.mark.parametrize("override, fragment", [
    ("estimate.lga_h=2", "estimate.lga_h: unknown key (did you mean lag_h?)"),
    ("estimat.lag_h=2", "estimat: unknown key (did you mean estimate?)"),
    ("validation.cov_tpye=HC1", "validation.cov_tpye: unknown key (did you mean cov_type?)"),
    ("cluster.pasword=pw-SENTINEL", "cluster.pasword: unknown key (did you mean password?)"),
], ids=["lag_h", "section", "validation", "password"])
def test_unknown_key_suggests_the_nearest(tmp_path, override, fragment):
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    ans = expect(run_cpc("run", cfg, "--set", override, cwd=tmp_path, timeout=60), 2, fragment)
    assert "SENTINEL" not in ans.text
    nothing_written(tmp_path, cfg)


def test_set_value_that_is_not_yaml_is_a_string(tmp_path):
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    for value in ("{netmob}/{city}/x.geojson", "{netmob}"):
        ans = expect(run_cpc("config", "show", cfg, "--set", f"areas.tiles={value}", cwd=tmp_path, timeout=60), 0)
        assert yaml.safe_load(ans.out)["areas"]["tiles"] == value
    nothing_written(tmp_path, cfg)


@pytest.mark.parametrize("template, fragment", [
    ("{netmob}/{cty}/x.geojson", "unknown placeholder {cty}"),
    ("{netmob}/{city.__class__}.geojson", "unknown placeholder {city.__class__}"),
    ("{netmob}/{}/x.geojson", "unknown placeholder {}"),
    ("{netmob/{city}.geojson", "placeholders allowed"),
], ids=["typo", "attribute", "positional", "unbalanced"])
def test_bad_tiles_placeholder_named_at_load(tmp_path, template, fragment):
    cfg = write(tmp_path / "c.yaml", yaml.safe_dump({"synth": {"days": 2}, "areas": {"tiles": template}}))
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "areas.tiles", fragment, "{netmob}, {city}")
    nothing_written(tmp_path, cfg)


#: every bounded numeric key, with a value past its bound (1e20 the issue's numba crash)
HUGE = [
    ("estimate.min_hours", "1.0e+20"), ("estimate.lag_h", "1000"), ("estimate.lags", "[0, 1, 1000]"),
    ("estimate.zero_value", "1.0e+300"), ("estimate.zero_value", ".inf"), ("estimate.c_floor", "5"),
    ("estimate.hours_per_chunk", "1.0e+12"), ("estimate.onion_share", "2"), ("ingest.tile_chunk", "1.0e+12"),
    ("ingest.outage_ratio", ".nan"), ("synth.days", "1000000"), ("synth.seed", "-1"), ("synth.scale", "2"),
    ("areas.square_m", "1.0e+12"), ("poi.min_n", "1.0e+12"), ("poi.profile_top_n", "1.0e+9"),
    ("disclosure.min_population", "1.0e+12"), ("disclosure.min_tiles", "1.0e+9"), ("cluster.n_workers", "1000000"),
    ("cluster.threads_per_worker", "100000"), ("validation.digits", "100"), ("validation.figures.dpi", "1.0e+6"),
    ("validation.figures.top_n", "1.0e+9"), ("validation.disclosure.min_population", "1.0e+12"),
]


def test_every_numeric_key_is_bounded_at_load(tmp_path):
    """All at once (two commands): a config error lists every offending key, so one command
    checks that each bound is named, and nothing started."""
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    halves = [HUGE[0::2], HUGE[1::2]]
    assert all(len({k for k, _ in half}) == len(half) for half in halves)  # one value per key and command
    for half in halves:
        ans = expect(run_cpc("run", cfg, *[a for k, v in half for a in ("--set", f"{k}={v}")], cwd=tmp_path,
                             timeout=60), 2, "invalid configuration")
        named = [line.strip().split(":")[0].rstrip(".0123456789") for line in ans.err.splitlines()
                 if line.startswith("  ")]  # estimate.lags.2 -> estimate.lags
        assert sorted(named) == sorted(k for k, _ in half), ans.err
        assert "numba" not in ans.text.lower()
    nothing_written(tmp_path, cfg)


def test_gateway_bounds_in_one_config(tmp_path):
    cfg = write(tmp_path / "c.yaml", yaml.safe_dump({"synth": {"days": 2}, "cluster": {
        "kind": "gateway", "workers": 10**9, "adapt_maximum": 10**9}}))
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "cluster.workers", "cluster.adapt_maximum")
    nothing_written(tmp_path, cfg)


@pytest.mark.parametrize("key", ["username", "password", "address"])
def test_empty_cluster_string_is_a_config_error(tmp_path, key):
    cfg = write(tmp_path / "c.yaml", yaml.safe_dump({"synth": {"days": 2}, "cluster": {
        "kind": "gateway", "auth": "basic", key: ""}}))
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, f"cluster.{key}", "empty")
    nothing_written(tmp_path, cfg)


def test_password_for_a_local_cluster_refused_without_echo(tmp_path):
    cfg = write(tmp_path / "c.yaml", yaml.safe_dump({"synth": {"days": 2}, "cluster": {
        "kind": "local", "password": "pw-SENTINEL-local"}}))
    ans = expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "cluster.password", "gateway")
    assert "SENTINEL" not in ans.text
    nothing_written(tmp_path, cfg)


def test_bad_cluster_value_refused_before_any_cluster(tmp_path):
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    expect(run_cpc("run", cfg, "--cluster", "ftp://nowhere", cwd=tmp_path, timeout=60), 2, "--cluster ftp://nowhere")
    nothing_written(tmp_path, cfg)


def test_set_without_a_value(tmp_path):
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    expect(run_cpc("run", cfg, "--set", "estimate", cwd=tmp_path, timeout=60), 2, "expected KEY=VALUE")
    expect(run_cpc("run", cfg, "--set", "estimate..lag_h=2", cwd=tmp_path, timeout=60), 2, "empty key part")
    nothing_written(tmp_path, cfg)


def test_huge_value_echo_is_clipped(tmp_path):
    cfg = write(tmp_path / "c.yaml", "synth: {days: 2}\n")
    ans = expect(run_cpc("run", cfg, "--set", "ingest.on_error=" + "x" * 100_000, cwd=tmp_path, timeout=60), 2,
                 "ingest.on_error", "characters)")
    assert len(ans.err) < 2000
    nothing_written(tmp_path, cfg)


# --------------------------------------------------------------------------------------------
# The configuration file itself


def test_config_file_is_a_folder(tmp_path):
    (tmp_path / "c.yaml").mkdir()
    expect(run_cpc("run", tmp_path / "c.yaml", cwd=tmp_path, timeout=60), 2, "c.yaml", "is a folder")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.yaml"]


def test_config_file_missing_binary_or_huge(tmp_path):
    expect(run_cpc("run", tmp_path / "absent.yaml", cwd=tmp_path, timeout=60), 2, "absent.yaml", "not found")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"synth: {}\n\xff\xfe\x00\x01")
    expect(run_cpc("run", binary, cwd=tmp_path, timeout=60), 2, "b.yaml", "not UTF-8")
    huge = write(tmp_path / "h.yaml", "# " + "x" * (2 << 20) + "\n")
    expect(run_cpc("run", huge, cwd=tmp_path, timeout=60), 2, "h.yaml", "larger than 1024 KiB")
    nothing_written(tmp_path, binary, huge)


def test_config_file_is_a_symlink_loop(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    expect(run_cpc("run", loop, cwd=tmp_path, timeout=60), 2, "loop.yaml", "symbolic links")
    nothing_written(tmp_path, loop)


def test_output_dir_name_too_long(tmp_path):
    """ENAMETOOLONG: a 300-character folder name, named at load (before any cluster starts)."""
    cfg = write(tmp_path / "c.yaml", yaml.safe_dump({"synth": {"days": 2}, "output": {"dir": "o" * 300}}))
    expect(run_cpc("run", cfg, cwd=tmp_path, timeout=60), 2, "output.dir", "file name too long")
    nothing_written(tmp_path, cfg)


# --------------------------------------------------------------------------------------------
# Operating-system failures that reach the top: one line with the path, code 2 or 3


def test_synth_out_name_too_long_is_one_line(tmp_path):
    """The same fault where no config names the path: the OSError mapping (exit 2, the path),
    before a cluster starts."""
    ans = expect(run_cpc("synth", "--out", tmp_path / ("s" * 300), "--days", "1", "--cities", "Nice",
                         "--scale", "0.001", cwd=tmp_path, timeout=120), 2, "file name too long", "s" * 50,
                 "shorter path")
    assert "Dask cluster" not in ans.err
    assert len(ans.err.strip().splitlines()[-1]) < 600
    assert list(tmp_path.iterdir()) == []


def test_synth_out_not_permitted_is_environment(tmp_path):
    """/sys refuses every write, even root's (EPERM): exit 3 naming the path and a remedy,
    before a cluster starts."""
    target = Path("/sys/cpc-fault-test")
    if os.access("/sys", os.W_OK) and not Path("/sys").is_mount():  # pragma: no cover - unusual host
        pytest.skip("/sys is writable here")
    ans = expect(run_cpc("synth", "--out", target, "--days", "1", "--cities", "Nice", "--scale", "0.001",
                         cwd=tmp_path, timeout=120), 3, str(target), "permission")
    assert not target.exists() and "Dask cluster" not in ans.err
    assert ans.err.strip().splitlines()[-1].startswith("cpc synth: ")


def _nobody_prefix() -> list[str] | None:
    """Run as an unprivileged user where the tests run as root (root ignores permissions)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def open_dir():
    """A world-readable scratch folder (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="cpc-fault-"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(d)


def _run_unprivileged(args: list[str], cwd: Path) -> tuple[int, str]:
    prefix = _nobody_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    home = cwd if cwd.name == "home" else cwd / "home"  # the user's own writable home (numba's cache)
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "HOME": str(home)}
    probe = subprocess.run([*prefix, "test", "-r", str(ROOT / "jobs" / "cli.py")], env=env)
    if probe.returncode != 0:
        pytest.skip("the checkout is not readable by an unprivileged user")
    proc = subprocess.run([*prefix, *CPC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    return proc.returncode, proc.stdout + proc.stderr


def test_unreadable_config(open_dir):
    cfg = write(open_dir / "c.yaml", "synth: {days: 2}\n")
    cfg.chmod(0o000)
    code, text = _run_unprivileged(["run", str(cfg)], open_dir)
    assert code == 2, text
    assert "c.yaml: configuration file not readable (permission denied)" in text
    assert "Traceback" not in text
    assert sorted(open_dir.iterdir()) == [cfg, open_dir / "home"]


def test_output_dir_permission_denied(open_dir):
    """EACCES on the output folder (``cpc synth`` creates it before any cluster starts): exit 3,
    the path and a remedy; nothing written there."""
    locked = open_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, text = _run_unprivileged(["synth", "--out", str(locked / "out"), "--cities", "Nice", "--days", "1",
                                    "--scale", "0.001"], open_dir / "home")
    assert code == 3, text
    assert f"cpc synth: permission denied: {locked / 'out'} (check its permissions" in text
    assert "Traceback" not in text
    assert list(locked.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The command line itself


def test_version_and_debug_flags(tmp_path):
    from cpc_core import __version__

    expect(run_cpc("--version", cwd=tmp_path, timeout=60), 0, f"cpc {__version__}")
    bad = write(tmp_path / "c.yaml", "estimate: {lag: 2}\n")
    quiet = expect(run_cpc("-v", "run", bad, cwd=tmp_path, timeout=60), 2, "estimate.lag: unknown key")
    assert "Traceback" not in quiet.text
    loud = expect(run_cpc("--debug", "run", bad, cwd=tmp_path, timeout=60), 2, "estimate.lag: unknown key",
                  traceback_ok=True)
    assert "Traceback (most recent call last)" in loud.err and "ConfigError" in loud.err
    nothing_written(tmp_path, bad)


def test_internal_error_is_exit_4_one_line(monkeypatch, capsys):
    """An unexpected exception (a bug) is not bad data: exit 4, one line, the traceback only
    with --debug."""
    from jobs import cli

    def boom(cfg):
        raise KeyError("no such column")  # stands for a bug anywhere below a command

    monkeypatch.setattr(cli, "cmd_config_show", boom)
    assert cli.main(["config", "show", str(ROOT / "configs" / "demo.yaml")]) == cli.EXIT_INTERNAL == 4
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "cpc config: internal error: KeyError: 'no such column' (re-run with --debug for the traceback and "
        "report it)"]
    assert cli.main(["--debug", "config", "show", str(ROOT / "configs" / "demo.yaml")]) == 4
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize("exc, code, fragments", [
    (PermissionError(13, "Permission denied", "/data/x"), 3, ("permission denied: /data/x", "permissions")),
    (OSError(28, "No space left on device", "/data/cube.zarr/c/0"), 3,
     ("no space left on device: /data/cube.zarr/c/0", "re-run the same command")),
    (OSError(30, "Read-only file system", "/ro/out"), 3, ("read-only file system: /ro/out",)),
    (OSError(36, "File name too long", "/x/" + "y" * 300), 2, ("file name too long", "characters)")),
    (OSError(40, "Too many levels of symbolic links", "/d/loop.txt"), 3, ("symlink loop", "/d/loop.txt")),
    (ConnectionRefusedError(111, "Connection refused"), 3, ("cannot connect", "address")),
    (TimeoutError("timed out"), 3, ("cannot connect",)),
    (MemoryError(), 3, ("out of memory",)),
    (ValueError("deep in a library"), 4, ("internal error: ValueError",)),
], ids=["EACCES", "ENOSPC", "EROFS", "ENAMETOOLONG", "ELOOP", "ECONNREFUSED", "timeout", "memory", "foreign-value"])
def test_top_level_mapping_of_environment_failures(monkeypatch, capsys, exc, code, fragments):
    """Each OSError kind that can reach the top (disk full while writing chunks, a read-only
    mount...) maps to one line with the path and a remedy."""
    from jobs import cli

    def fail(cfg):
        raise exc

    monkeypatch.setattr(cli, "cmd_config_show", fail)
    assert cli.main(["config", "show", str(ROOT / "configs" / "demo.yaml")]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
