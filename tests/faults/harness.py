"""The fault corpus's harness: run a real ``cpc`` command as a user would and check its answer.

Every case states the exit code it expects, a fragment of its one-line message and, through
the caller, a data check (read = stored + rejected, cube unchanged or repaired, no silent
change). :func:`run_cpc` fails the case on any traceback unless the command was run with
``-v``/``--debug``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPC = [sys.executable, "-m", "jobs.cli"]


@dataclass(frozen=True)
class Answer:
    """What a command returned: exit code, standard output and standard error."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cpc(*args: str, env: dict | None = None, cwd: Path | str | None = None, timeout: float = 300,
            stdin: str | None = None) -> Answer:
    """Run ``cpc ARGS`` in a fresh interpreter (the checkout first on ``PYTHONPATH``)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    full_env.update(env or {})
    proc = subprocess.run([*CPC, *map(str, args)], env=full_env, cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, input=stdin)
    return Answer(proc.returncode, proc.stdout, proc.stderr)


def expect(answer: Answer, code: int, *fragments: str, traceback_ok: bool = False) -> Answer:
    """Assert the exit code, that each fragment is in the output and that no traceback was
    printed. Returns the answer for further (data) checks."""
    assert answer.code == code, f"exit {answer.code}, expected {code}:\n{answer.err[-3000:]}"
    for frag in fragments:
        assert frag in answer.text, f"{frag!r} not in the output:\n{answer.text[-3000:]}"
    if not traceback_ok:
        assert "Traceback (most recent call last)" not in answer.text, answer.text[-4000:]
    return answer
