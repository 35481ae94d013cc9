"""The ``mac`` scheme (the nkernels-mac plugin) on the digits MLP 64-128-64-10: one MAC iteration (the
Z-step of every sample, the W-step of every layer, the epoch's forward-pass metrics) next to one
backprop epoch (Adam, batch 32) of the same model, in this process."""
import nkernels as nk

from .common import require_registered

L = nk.layers


def _digits_mlp():
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


class MACEpoch:
    """One epoch with the scheme's defaults (mac: penalty 0.01, 3 Z-steps, 1 W-step pass of Adam in
    batches of 32), on the digits training split. Kernels are compiled (or loaded from Numba's
    cache) in setup. The mac figure includes starting the run (a forward pass for the coordinates)."""

    params = ["mac", "backprop"]
    param_names = ["scheme"]
    timeout = 300

    def setup(self, scheme):
        # skip (asv's NotImplementedError) where nkernels-mac is not installed, failed to load or is disabled
        require_registered("schemes", scheme)
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.time_epoch(scheme)

    def time_epoch(self, scheme):
        nk.train(_digits_mlp(), self.X, self.y, scheme=scheme, epochs=1, batch_size=32, seed=0)
