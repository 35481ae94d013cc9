"""The ``stacked-pmi`` and ``pmi-factorization`` extractors (the nkernels-pmi plugin): fit time on digits.

The fit of the default two-stage stack on the digits training split (1,257 x 64), one stage
alone, and the co-activation statistics kernel alone (one stage's counts and marginals on the
binarised pixels). Kernels are compiled (or loaded from Numba's cache) in setup. Without the
plugin, setup raises NotImplementedError and asv skips these benchmarks, saying why.
"""
import numpy as np

from .common import require_plugin_module


def pmi_plugin():
    """The nkernels-pmi plugin's package; NotImplementedError (asv's skip) saying why it is missing."""
    return require_plugin_module("extractors", "stacked-pmi", "nkernels_pmi")


class PMIFit:
    """Fitting the PMI extractors with their defaults on the digits training split."""

    timeout = 300

    def setup(self):
        import nkernels as nk

        self.plugin = pmi_plugin()
        self.X = nk.datasets.load("digits")[0]
        from nkernels_pmi import statistics

        self.statistics = statistics
        self.scale = statistics.location_scale(self.X)
        self.time_fit_stack()  # compile outside the timing
        self.time_fit_stage()

    def time_fit_stack(self):
        self.plugin.StackedPMI().fit(self.X)

    def time_fit_stage(self):
        self.plugin.PMIFactorization().fit(self.X)

    def time_cooccurrence(self):
        self.statistics.cooccurrence(self.X, self.scale, 0.5)


if __name__ == "__main__":
    import time

    try:
        pmi_plugin()
    except NotImplementedError as exc:
        raise SystemExit(str(exc)) from None
    bench = PMIFit()
    bench.setup()
    for name in ("time_fit_stack", "time_fit_stage", "time_cooccurrence"):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            getattr(bench, name)()
            runs.append(time.perf_counter() - start)
        print(f"{name:<20}{np.min(runs) * 1e3:>10.2f} ms (best of 5)")
