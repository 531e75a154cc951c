"""scripts/peak_memory.py, the sampler behind BENCHMARKS.md's peak-memory figures: it must
count the processes a command starts, and tell a big peak from a small one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# the command starts a child that holds ~300 MiB for a moment, then exits 3
HOLDER = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
          "\"import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.0)\"]); "
          "sys.exit(3)")  # fmt: skip


@pytest.mark.parametrize("pss", [False, True])
def test_peak_of_a_command_and_its_children(pss):
    def run(code: str) -> tuple[float, int]:
        cmd = [sys.executable, str(REPO / "scripts" / "peak_memory.py"), *(["--pss"] if pss else []),
               "--", sys.executable, "-c", code]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
        m = re.fullmatch(r"wall (\S+) s peak (\d+) MiB \((PSS|RSS)\) exit (-?\d+)\n", out)
        assert m and m.group(3) == ("PSS" if pss else "RSS"), out
        return int(m.group(2)), int(m.group(4))

    big, rc = run(HOLDER)
    small, rc_small = run("pass")
    assert (rc, rc_small) == (3, 0)
    assert big >= 300 and small < 100 and big - small >= 250, (big, small)
