"""k-means (the nkernels-kmeans plugin): time per Lloyd iteration, and its ratio to scikit-learn's.

Both sides run Lloyd's algorithm on the same float32 data, with the same k and the same initial
centroids (scikit-learn's k-means++ with seed 0), in one process: digits (1257 x 64, k = 200)
and a synthetic set (100,000 x 64 standard normal, k = 256). The time per iteration is the
difference between a fit stopped after ``HI`` iterations and one stopped after ``LO``, divided by
the iterations between them, so that setup and the final assignment cancel out on both sides
(``tol=0``; scikit-learn's ``KMeans(algorithm="lloyd", n_init=1)``). Without the plugin
loaded, setup raises NotImplementedError and asv skips these benchmarks, saying why (not
installed, or installed but failed to load, with its error).

``python -m benchmarks.bench_kmeans`` prints the same figures as a table.
"""
import time

import numpy as np

from .common import blas_single_threaded, require_plugin_module

#: dataset -> number of clusters
CASES = {"digits-k200": 200, "synthetic100k-k256": 256}
#: fits stopped after LO and HI iterations give the time per iteration
LO, HI = 1, 6


def load_case(case):
    """The data (float32) and the initial centroids of ``case``."""
    from sklearn.cluster import kmeans_plusplus

    if case.startswith("digits"):
        import nkernels as nk

        X = nk.datasets.load("digits")[0]
    else:
        X = np.random.default_rng(0).standard_normal((100_000, 64)).astype(np.float32)
    centroids, _ = kmeans_plusplus(X, CASES[case], random_state=0)
    return X, np.ascontiguousarray(centroids, dtype=np.float32)


def kmeans_plugin():
    """The nkernels-kmeans plugin's package; NotImplementedError (asv's skip) saying why it is missing."""
    return require_plugin_module("extractors", "kmeans", "nkernels_kmeans")


def fit_nkernels(X, init, max_iter):
    """nkernels-kmeans Lloyd from ``init``; returns the iterations run."""
    return kmeans_plugin().KMeans(len(init), init=init, max_iter=max_iter, tol=0.0).fit(X).n_iter_


def fit_sklearn(X, init, max_iter):
    """scikit-learn Lloyd from ``init``; returns the iterations run."""
    from sklearn.cluster import KMeans

    return KMeans(len(init), init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd").fit(X).n_iter_


def seconds_per_iteration(fit, X, init, repeat=5):
    """The best-of-``repeat`` time of a fit of HI iterations minus one of LO, per iteration between them."""
    best, iterations = {}, {}
    for _ in range(repeat):
        for max_iter in (LO, HI):
            start = time.perf_counter()
            iterations[max_iter] = fit(X, init, max_iter)
            best[max_iter] = min(best.get(max_iter, np.inf), time.perf_counter() - start)
    if iterations[HI] <= iterations[LO]:
        raise RuntimeError(f"{fit.__name__} converged within {LO} iterations; no time per iteration")
    return (best[HI] - best[LO]) / (iterations[HI] - iterations[LO])


def ratio(case, rounds=5):
    """(nkernels seconds per iteration, scikit-learn seconds per iteration) on ``case``.

    Each side is timed best-of-3 in each of ``rounds`` alternating rounds (so that a busy moment
    of the machine hits both), and the median round counts.
    """
    X, init = load_case(case)
    fit_nkernels(X, init, LO)  # compile outside the timing
    fit_sklearn(X, init, LO)
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(seconds_per_iteration(fit_nkernels, X, init, repeat=3))
        theirs.append(seconds_per_iteration(fit_sklearn, X, init, repeat=3))
    return float(np.median(ours)), float(np.median(theirs))


class KMeansLloyd:
    """One Lloyd iteration (assignment and centroid update) of nkernels-kmeans, and its ratio to scikit-learn."""

    params = list(CASES)
    param_names = ["data"]
    timeout = 600

    def setup(self, data):
        kmeans_plugin()
        from nkernels_kmeans.lloyd import LloydStep

        self.X, self.init = load_case(data)
        self.centroids = self.init.copy()
        self.step = LloydStep(self.X, len(self.init))
        self.time_lloyd_iteration(data)  # compile outside the timing

    def time_lloyd_iteration(self, data):
        with blas_single_threaded():  # as KMeans.fit runs it
            labels, min_dist = self.step.assign(self.centroids)
            self.step.update(self.centroids, labels, min_dist)

    def track_time_ratio_vs_sklearn(self, data):
        ours, theirs = ratio(data)
        return ours / theirs

    track_time_ratio_vs_sklearn.unit = "nkernels / scikit-learn time per Lloyd iteration (lower is better)"


if __name__ == "__main__":
    try:
        kmeans_plugin()
    except NotImplementedError as exc:
        raise SystemExit(str(exc)) from None
    print(f"{'data':<22}{'nkernels ms/iter':>18}{'sklearn ms/iter':>18}{'ratio':>8}")
    for case in CASES:
        ours, theirs = ratio(case)
        print(f"{case:<22}{ours * 1e3:>18.2f}{theirs * 1e3:>18.2f}{ours / theirs:>8.2f}")
