"""An epoch of forward-forward (the nkernels-ff plugin) next to a backprop epoch, on the digits MLP 64-128-64-10.

ff trains the same hidden layers, the label joined to the input (the model its ``adapt_model`` builds:
LabelInput(10), Dense(74, 128), ReLU, Dense(128, 64), ReLU). Without the plugin loaded its benchmarks
are skipped (setup raises NotImplementedError, saying why) and the suite still loads.
"""
import nkernels as nk

from .bench_schemes_greedy_feedback import digits_mlp
from .common import require_registered

#: benchmark name -> (registered scheme, scheme options)
SCHEMES = {
    "backprop": ("backprop", {}),
    "ff-hardest": ("ff", {"negatives": "hardest"}),
    "ff-random": ("ff", {"negatives": "random"}),
}


class FFEpoch:
    """One epoch (Adam, batch 64) on the digits training split; kernels compiled in setup. ff with hardest
    negatives scores every label of each batch before its update (ten more forward passes of the batch)."""

    params = list(SCHEMES)
    param_names = ["scheme"]
    timeout = 300

    def setup(self, name):
        scheme, self.options = SCHEMES[name]
        require_registered("schemes", scheme)
        self.scheme = scheme
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.model = digits_mlp()
        if scheme != "backprop":
            self.model = nk.registry.schemes[scheme]().adapt_model(self.model, 64, 10)
        self.time_epoch(name)

    def time_epoch(self, name):
        nk.train(self.model, self.X, self.y, scheme=self.scheme, epochs=1, batch_size=64, seed=0, **self.options)
