"""An epoch of the plugin schemes greedy, dfa and fa on the digits MLP 64-128-64-10, next to backprop.

The schemes come from the first-party plugins nkernels-greedy and nkernels-feedback; without them
loaded, their benchmarks are skipped (setup raises NotImplementedError, saying why) and the suite
still loads.
"""
import nkernels as nk

from .common import require_registered

L = nk.layers

#: benchmark name -> (registered scheme, scheme options); greedy's epoch is one epoch of every stage
#: (pretraining and the output layer: fine-tuning, 10 epochs by default since 0.2, is backprop's epoch)
SCHEMES = {
    "backprop": ("backprop", {}),
    "greedy-autoencoder": ("greedy", {"finetune_epochs": 0}),
    "greedy-rbm": ("greedy", {"pretrain": "rbm", "finetune_epochs": 0}),
    "greedy-supervised": ("greedy", {"mode": "supervised"}),
    "dfa": ("dfa", {}),
    "fa": ("fa", {}),
}


def digits_mlp():
    """The MLP 64-128-64-10 of the greedy and feedback-alignment figures."""
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


class GreedyFeedbackEpoch:
    """One epoch (Adam, batch 32) on the digits training split; kernels compiled in setup."""

    params = list(SCHEMES)
    param_names = ["scheme"]
    timeout = 300

    def setup(self, name):
        scheme, self.options = SCHEMES[name]
        require_registered("schemes", scheme)
        self.scheme = scheme
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.model = digits_mlp()
        self.time_epoch(name)

    def time_epoch(self, name):
        nk.train(self.model, self.X, self.y, scheme=self.scheme, epochs=1, batch_size=32, seed=0, **self.options)
