"""The uncertainty stage's kernels at a given size (issue #15: at most 20 % of the first run).

Times :func:`cpc_core.estimate.uncertainty.bootstrap_rho` (day-block bootstrap of rho_j) and
:func:`~cpc_core.estimate.uncertainty.propagate` (Monte Carlo of the shares, intervals, rank
probabilities) on random hourly series of ``--areas`` areas x ``--days`` days, in memory, after
one warm-up call (numba's cache). The defaults are full-size Paris: 201 communes, 77 days, the
stage's default 1000 draws and 2-day blocks. Compare with the first run of the same size in
BENCHMARKS.md ("First run and re-runs at full size").

    python scripts/bench_uncertainty.py --areas 201 --days 77 --draws 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr

from cpc_core.estimate import uncertainty as u


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--areas", type=int, default=201)
    ap.add_argument("--days", type=int, default=77)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--block-days", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    hours = pd.date_range("2019-03-16", periods=a.days * 24, freq="h")
    coords = {"area": [f"a{i}" for i in range(a.areas)], "hour": hours}
    wa = xr.DataArray(rng.lognormal(5, 1, (a.areas, a.days * 24)), dims=("area", "hour"), coords=coords)
    tor = xr.DataArray(rng.lognormal(3, 1, (a.areas, a.days * 24)), dims=("area", "hour"), coords=coords)
    tot = xr.DataArray(rng.lognormal(10, 1, a.areas), dims="area", coords={"area": coords["area"]})
    pop = xr.DataArray(rng.integers(1_000, 100_000, a.areas).astype(float), dims="area",
                       coords={"area": coords["area"]})
    u.bootstrap_rho(wa[:5], tor[:5], draws=10, block_days=a.block_days)  # warm-up: numba's cache
    shares = u.draw_shares(a.draws, seed=0)
    boot, prop = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        draws = u.bootstrap_rho(wa, tor, lags=(0,), draws=a.draws, block_days=a.block_days)
        t1 = time.perf_counter()
        u.propagate(draws.isel(lag=0), tot, pop, shares)
        t2 = time.perf_counter()
        boot.append(t1 - t0)
        prop.append(t2 - t1)
    print(f"{a.areas} areas x {a.days} days, {a.draws} draws, {a.block_days}-day blocks, {a.repeat} repeats")
    print(f"bootstrap_rho: min {min(boot):.3f} s, median {np.median(boot):.3f} s")
    print(f"propagate:     min {min(prop):.3f} s, median {np.median(prop):.3f} s")
    print(f"total (min):   {min(boot) + min(prop):.3f} s")


if __name__ == "__main__":
    main()
