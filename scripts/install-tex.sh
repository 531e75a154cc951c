#!/usr/bin/env bash
# Install a minimal TeX (pdflatex) so that the LaTeX tables are compiled by the tests
# (tests/render/test_tables.py). Idempotent and quiet: does nothing when pdflatex is on PATH.
# Debian/Ubuntu (apt) only; needs root or sudo. texlive-latex-base is all the tables need
# (article class, tabular, \multicolumn, \hline): about 55 MB installed, ~2 min with the
# apt-get update on a fresh machine (measured).
set -euo pipefail
if command -v pdflatex >/dev/null 2>&1; then
  echo "pdflatex already installed: $(pdflatex --version | head -n 1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends texlive-latex-base >/dev/null
pdflatex --version | head -n 1
