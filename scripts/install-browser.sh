#!/usr/bin/env bash
# Install headless Chromium for the report tests (tests/render/test_report.py). Idempotent: does
# nothing when a chromium binary is already on PATH. Debian/Ubuntu (apt) only; needs root.
set -euo pipefail
for bin in chromium chromium-browser; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "$bin already installed: $("$bin" --version 2>/dev/null || echo "$bin")"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
chromium --version
