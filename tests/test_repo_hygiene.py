"""Nothing in the repository refers to files outside it; the code passes its linter.

A user of the repository has only the repository: a reference to ``../shared`` or
``/work/shared`` (the development machines' shared material) points at a file they do not have.
The one exception is the optional test data lookup in ``tests/conftest.py`` (real commune
polygons supplied beside the checkout).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"tests/conftest.py", "tests/test_repo_hygiene.py"}
# Built from pieces so that this file does not match itself when read as text.
FORBIDDEN = ("../" + "shared", "/work/" + "shared", "shared/" + "reference")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:  # an exported tree has no git
        pytest.skip(f"not a git checkout ({exc})")
    return [p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_refers_outside_the_repository():
    files = _tracked()
    assert "cpc_core/netmob/facts.py" in files  # the listing is the real one, not empty
    offenders = []
    for rel in files:
        if rel in ALLOWED:
            continue
        path = ROOT / rel
        if not path.is_file():  # deleted in the work tree but still tracked
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for needle in FORBIDDEN:
                if needle in line:
                    offenders.append(f"{rel}:{lineno}: {needle}")
    assert not offenders, "references outside the repository:\n" + "\n".join(offenders)


def test_the_code_passes_its_linter():
    """`ruff check .` with pyproject.toml's rules (import order, pyflakes, bugbear, ...): a
    finding fails here, not in a reviewer's eye."""
    import shutil
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is a test dependency (pyproject's test extra, requirements.lock)"
    out = subprocess.run([ruff, "check", ".", "--output-format", "concise", "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
