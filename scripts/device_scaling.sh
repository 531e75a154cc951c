#!/usr/bin/env bash
# Scaling of cpc on a lent 16-core machine, in one prepared run of about 6 minutes:
# set up the environment, generate one benchmark dataset, run scripts/bench_suite.py at
# 16, 1, 4, 2 and 8 workers, the public code's way (pandas, one core) once, memory flatness
# (D vs 2D days) at 16 workers if time is left, and merge everything into
# $OUT/scaling.json + $OUT/scaling.md (rewritten after every step, so a run cut short still
# returns what it measured). The log is $OUT/log.txt. The validation stage runs without its
# figures there (--no-figures): matplotlib on one core would add ~10 s to every run.
#
# The lent machines reach no package registry. Prepare wheels here once (cp312, manylinux,
# the versions of this checkout's .venv; about 50 MB, ignored by git through .git/info/exclude):
#
#     bash scripts/device_scaling.sh --fetch-wheels
#
# then, through the device tool:
#
#     run(command="bash scripts/device_scaling.sh", carry=[".whl"], timeout_s=600)
#
# Environment knobs: CITIES ("Lyon Toulouse"), SCALE (1.0), DAYS (14), WORKERS ("16 1 4 2 8"),
# LIGHT (worker counts that measure the first run only, e.g. "8 4 1"),
# FLATNESS (1: the D vs 2D days run at the end, if time is left; 0: never),
# PUBLIC_AFTER (the worker count after whose suite the public way runs; default the last),
# BUDGET_S (480: no optional step starts after this many seconds), OUT (default /tmp/cpc-scaling).
# On any machine with the project's .venv (or network for scripts/setup.sh) it runs as is,
# e.g. `CITIES=Lyon SCALE=0.1 DAYS=3 WORKERS="1 2" bash scripts/device_scaling.sh` as a dry run.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

# the project's own venv: the packages the cluster needs that the device image does not hold
WHEELS="dask distributed zarr numcodecs donfig google-crc32c geopandas shapely pyproj pyogrio dask-geopandas
pydantic pydantic_core annotated-types typing-inspection cloudpickle partd locket tblib zict tornado"

if [ "${1:-}" = "--fetch-wheels" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    mkdir -p .whl
    freeze=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null)
    for name in $WHEELS; do
        pin=$(echo "$freeze" | grep -i -E "^${name//[-_]/[-_]}==" | head -1)
        [ -n "$pin" ] || { echo "not in .venv: $name" >&2; exit 2; }
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pin" || exit 1
    done
    du -sh .whl
    exit 0
fi

OUT=${OUT:-/tmp/cpc-scaling}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-480}
CITIES=${CITIES:-"Lyon Toulouse"}
SCALE=${SCALE:-1.0}
DAYS=${DAYS:-14}
WORKERS=${WORKERS:-"16 1 4 2 8"}
LIGHT=${LIGHT:-}  # worker counts measured on the first run only (no floors, no re-runs)
PUBLIC_AFTER=${PUBLIC_AFTER:-$(echo "$WORKERS" | awk '{print $NF}')}  # the public way runs after this count
RUNS=/tmp/cpc-scaling-runs
export PYTHONUNBUFFERED=1 CPC_BENCH_DIR=${CPC_BENCH_DIR:-/tmp/cpc-bench} TQDM_DISABLE=1
rm -rf "$RUNS"
mkdir -p "$RUNS"
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(elapsed) s] $*"; }

# ---------------------------------------------------------------- environment
need='import cpc_core, dask, distributed, zarr, zarr.codecs, geopandas, dask_geopandas, pydantic, psutil, pyarrow, jobs.pipeline'
if [ -x .venv/bin/python ] && .venv/bin/python -c "$need" 2>/dev/null; then
    PY=$REPO/.venv/bin/python
elif python3 -c 'import socket; socket.create_connection(("pypi.org", 443), timeout=3)' 2>/dev/null \
        && bash scripts/setup.sh; then
    PY=$REPO/.venv/bin/python
elif ls .whl/*.whl >/dev/null 2>&1; then
    say "no registry: installing the carried wheels into /tmp/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { say "wheel install failed"; exit 2; }
    export PYTHONPATH=/tmp/site:$REPO
    PY=$(command -v python3)
else
    say "no .venv, no registry and no .whl/: run 'bash scripts/device_scaling.sh --fetch-wheels' where pip works"
    exit 2
fi
$PY -c "$need" || { say "environment incomplete"; exit 2; }
say "python: $PY; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(free -g | awk '/Mem/{print $2}') GiB"
# compile the numba kernels once, before 16 workers would each try
$PY -c "from cpc_core import parse, textio, correlation, store; import numpy as np; parse.parse_bytes(b'1 2\n', 1); textio.format_netmob(np.array([1]), np.array([[1]])); store._split_hours(np.ones((1, 4), np.float32), np.empty((1, 1, 4), np.float32), np.empty((1, 25), np.float32))"

SUITE="$PY scripts/bench_suite.py --cities $CITIES --scale $SCALE --days $DAYS"
combine() {
    ls "$RUNS"/*.json >/dev/null 2>&1 || return 0
    $PY scripts/bench_suite.py --combine "$RUNS"/*.json --json "$OUT/scaling.json" --md "$OUT/scaling.md" >/dev/null \
        || say "combine failed"
}

# ---------------------------------------------------------------- dataset
say "dataset: $CITIES, scale $SCALE, $DAYS days (generated with the most workers)"
$SUITE --workers "$(nproc)" --generate-only --json "$RUNS/dataset.json.skip" || { say "generation failed"; exit 1; }

public_way() {
    if [ "$(elapsed)" -lt "$BUDGET_S" ]; then
        say "public way (pandas, one core)"
        $SUITE --public-only --json "$RUNS/public.json" || say "public way failed"
        combine
    else
        say "budget spent: no public way"
    fi
}

# ---------------------------------------------------------------- scaling (+ public way)
for n in $WORKERS; do
    if [ "$(elapsed)" -gt "$BUDGET_S" ]; then say "budget spent: skipping $n workers"; continue; fi
    flags=""
    case " $LIGHT " in *" $n "*) flags="--no-floors --no-reruns" ;; esac
    say "suite at $n workers $flags"
    $SUITE --workers "$n" --repeat 1 --no-public --no-flatness --no-figures $flags --json "$RUNS/w$n.json" \
        --md "$RUNS/w$n.md" || say "suite at $n workers failed"
    [ -f "$RUNS/w$n.md" ] && cp "$RUNS/w$n.md" "$OUT/suite-w$n.md"
    combine
    say "  done"
    [ "$n" = "$PUBLIC_AFTER" ] && public_way
done

# ---------------------------------------------------------------- flatness
if [ "${FLATNESS:-1}" = 1 ] && [ "$(elapsed)" -lt $(( BUDGET_S - 60 )) ]; then
    say "memory flatness at $(nproc) workers ($DAYS vs $(( 2 * DAYS )) days)"
    $SUITE --workers "$(nproc)" --repeat 1 --no-public --no-reruns --no-floors --no-figures --json "$RUNS/flatness.json.skip" \
        --md "$OUT/flatness.md" || say "flatness failed"
fi
combine
say "done: $OUT/scaling.md"
cat "$OUT/scaling.md" 2>/dev/null
