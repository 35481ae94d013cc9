"""Time per MAC iteration in this process and on 1 and 2 Dask workers (LocalClusters on loopback), on
the digits training split tiled ``--copies`` times (a little noise added, so the copies differ).

The net is the digits MLP 64-128-64-10 with the scheme's defaults; one shard per worker. The
median and the fastest of the iterations after the first are reported (on a shared machine the
fastest is the least disturbed by other processes), with each iteration's violation and mu.

    python plugins/nkernels-mac/scripts/worker_scaling.py --copies 50 --workers 1 2
"""
import argparse

import numpy as np

import nkernels as nk

L = nk.layers


def mlp():
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--in-process", action="store_true", help="also time a run without Dask")
    args = parser.parse_args()
    X0, y0, _, _ = nk.datasets.load("digits")
    rng = np.random.default_rng(0)
    X = (np.concatenate([X0] * args.copies) + rng.normal(0, 0.02, (len(X0) * args.copies, X0.shape[1])))
    X, y = X.astype(np.float32), np.concatenate([y0] * args.copies)
    print(f"{len(X)} samples, {args.iterations} iterations each")
    print(f"{'run':>12s} {'median ms':>10s} {'fastest ms':>11s} {'speed-up (fastest)':>19s} {'last violation':>15s}")
    base = None
    for workers in ([None] if args.in_process else []) + args.workers:
        options = {} if workers is None else {"workers": workers}
        history = nk.train(mlp(), X, y, scheme="mac", epochs=args.iterations, seed=0, **options)
        times = 1e3 * np.array(history["time"][1:])
        base = base or times.min()
        label = "in-process" if workers is None else f"{workers} worker{'s' * (workers > 1)}"
        print(f"{label:>12s} {np.median(times):10.1f} {times.min():11.1f} {base / times.min():18.2f}x "
              f"{history['violation'][-1]:15.4f}")


if __name__ == "__main__":
    main()
