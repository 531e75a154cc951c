"""Wall time and peak memory of a whole command with every process it starts.

Runs the command, samples the memory of it and all its descendants every ``--interval``
seconds and prints one line: wall seconds, peak MiB, exit code. ``--pss`` sums the
proportional set size (shared pages counted once across the processes: the honest total for
a command with helper or worker processes; slower to sample), else the resident set size.
Used for the peak-memory figures of BENCHMARKS.md ("Whole commands")::

    python scripts/peak_memory.py --pss -- cpc validate --table cpc-demo/communes.csv \\
        --run-dir cpc-demo --out /tmp/v
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import psutil


def _tree_bytes(proc: psutil.Process, pss: bool) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_full_info().pss if pss else p.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            pass
    return total


def measure(cmd: list[str], pss: bool = False, interval: float = 0.05) -> dict:
    """Run ``cmd`` (output discarded); its wall seconds, peak bytes and exit code."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_bytes(proc, pss))
        time.sleep(interval)
    return {"wall_s": time.perf_counter() - t0, "peak_bytes": peak, "returncode": child.returncode}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pss", action="store_true", help="sum PSS instead of RSS")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    r = measure(cmd, pss=args.pss, interval=args.interval)
    print(f"wall {r['wall_s']:.2f} s peak {r['peak_bytes'] / 2**20:.0f} MiB ({'PSS' if args.pss else 'RSS'}) "
          f"exit {r['returncode']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
