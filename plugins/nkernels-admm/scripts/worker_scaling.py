"""Time per ADMM iteration in this process and on 1, 2, ... Dask workers (a LocalCluster on loopback).

The data is the digits training split, repeated ``--copies`` times with a little noise so that
the shards have work worth sending (1 copy is the plain digits split). The net is the digits MLP
64-128-64-10. The median and the fastest of the iterations after the first are reported (on a
shared machine the fastest is the least disturbed by other processes).

    python plugins/nkernels-admm/scripts/worker_scaling.py --copies 1 --copies 50 --workers 1 2
"""
import argparse

import numpy as np

import nkernels as nk

L = nk.layers


def mlp():
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, action="append", help="copies of the digits split (repeatable)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    X0, y0, _, _ = nk.datasets.load("digits")
    rng = np.random.default_rng(0)
    print(f"{'samples':>8s} {'run':>12s} {'median ms':>10s} {'fastest ms':>11s} {'speed-up (fastest)':>19s}")
    for copies in args.copies or [1, 50]:
        X = np.concatenate([X0] * copies)
        X = (X + rng.normal(0, 0.02, X.shape)).astype(np.float32) if copies > 1 else X
        y = np.concatenate([y0] * copies)
        base = None
        for workers in [None, *args.workers]:
            options = {} if workers is None else {"workers": workers}
            history = nk.train(mlp(), X, y, scheme="admm", epochs=args.iterations, **options)
            times = 1e3 * np.array(history["time"][1:])
            base = base or times.min()
            label = "in-process" if workers is None else f"{workers} worker{'s' * (workers > 1)}"
            print(f"{len(X):8d} {label:>12s} {np.median(times):10.1f} {times.min():11.1f} "
                  f"{base / times.min():18.2f}x")


if __name__ == "__main__":
    main()
