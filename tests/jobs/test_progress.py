"""Progress bars: the validation stage draws one in a terminal, and none with TQDM_DISABLE."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.validation.test_validation_stage import build_run_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return build_run_dir(tmp_path_factory.mktemp("run"), ("Nice",), 0.01, days=7, seed=3, geography=False)


def _run_in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``cpc ARGS`` with stdout and stderr on a pseudo-terminal; exit code and output."""
    master, slave = os.openpty()
    # a terminal of 24 x 100 (a fresh pty has 0 columns, where tqdm draws an empty line)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    rc = proc.wait(timeout=300)
    os.close(master)
    return rc, b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.parametrize("disabled", [False, True])
def test_validate_draws_a_progress_bar_in_a_terminal(run_dir, tmp_path, disabled):
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["PYTHONPATH"] = str(ROOT)
    if disabled:
        env["TQDM_DISABLE"] = "1"  # what `cpc submit` sets
    out = tmp_path / "v"
    rc, text = _run_in_terminal(["validate", "--table", str(run_dir / "communes.csv"), "--run-dir", str(run_dir),
                                 "--out", str(out), "--set", "validation.figures.enabled=false"], env)
    assert rc == 0, text[-2000:]
    assert (out / "report.html").exists() and (out / "tables.json").exists()
    bars = re.findall(r"validate:\s+(\d+)%\|[^|]*\| (\d+)/(\d+)", text)
    if disabled:
        assert bars == [] and "%|" not in text
    else:
        # 11 steps without figures: inputs, prepare, Spearman, dependent tests, Tables 3, 5, 6,
        # 7, tables written, tables.json, report
        assert bars, text[-2000:]
        assert bars[-1] == ("100", "11", "11")
        assert {total for _, _, total in bars} == {"11"}
        assert len(bars) >= 2 and int(bars[0][1]) < 11  # drawn as it went, not once at the end
