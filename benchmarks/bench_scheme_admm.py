"""The ``admm`` scheme (the nkernels-admm plugin) on the digits MLP 64-128-64-10, in this process."""
import nkernels as nk

from .common import require_registered


def _require_plugin():
    """Skip (asv's NotImplementedError) where the admm scheme is not registered, saying why: its
    plugin nkernels-admm is not installed, or failed to load (with the error), or is disabled.
    Nothing here imports the plugin at module level, so discovery works without it."""
    require_registered("schemes", "admm")


def _digits_mlp():
    L = nk.layers
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


class ADMMTrain:
    """nk.train with ADMM for 3 iterations on the digits training split: the start (a forward pass, the
    inputs' Gram matrix) and the iterations that take the held-out accuracy past 93% (95.2%).
    Kernels are compiled (or loaded from Numba's cache) in setup."""

    timeout = 300

    def setup(self):
        _require_plugin()
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.time_train()

    def time_train(self):
        nk.train(_digits_mlp(), self.X, self.y, scheme="admm", epochs=3)


class ADMMIteration:
    """One ADMM iteration alone, on a run started in setup: the weight solves, the activation and
    pre-activation updates of every layer, the outputs and the multiplier, and the training
    metrics of the new weights."""

    timeout = 300

    def setup(self):
        _require_plugin()
        X, y, _, _ = nk.datasets.load("digits")
        self.run = nk.registry.schemes["admm"]().start(_digits_mlp(), X, y)
        self.run.step()  # compile or load the kernels

    def teardown(self):
        if hasattr(self, "run"):  # asv tears down after a skipped or failed setup too
            self.run.close()

    def time_iteration(self):
        self.run.step()
