"""An epoch of synthetic gradients (the nkernels-sg plugin) on the digits MLP 64-128-64-10, next to backprop.

Without the plugin loaded the sg benchmarks are skipped (setup raises NotImplementedError, saying
why) and the suite still loads: nothing here imports the plugin at module level.
"""
import nkernels as nk

from .common import require_registered

L = nk.layers

#: benchmark name -> (registered scheme, scheme options)
SCHEMES = {
    "backprop": ("backprop", {}),
    "sg": ("sg", {}),
    "sg-unconditioned": ("sg", {"conditioned": False}),
}


def digits_mlp():
    """The MLP 64-128-64-10 of the sg figures."""
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


class SGEpoch:
    """One epoch (Adam, batch 32) on the digits training split: the forward pass, the predictors'
    forward and regression, and the blocks' and predictors' updates, against one backprop epoch.
    Kernels are compiled (or loaded from Numba's cache) in setup."""

    params = list(SCHEMES)
    param_names = ["scheme"]
    timeout = 300

    def setup(self, name):
        scheme, options = SCHEMES[name]
        require_registered("schemes", scheme)
        self.scheme = nk.registry.schemes[scheme](**options)
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.model = digits_mlp()
        self.time_epoch(name)

    def time_epoch(self, name):
        nk.train(self.model, self.X, self.y, scheme=self.scheme, epochs=1, batch_size=32, seed=0)
