"""The ``autoencoder`` scheme (the nkernels-greedy plugin): an epoch of the denoising autoencoder
64-128-64 on digits, next to a backprop epoch of the classifier 64-128-64-10 (batch 32, Adam)."""
import nkernels as nk

from .common import require_registered

L = nk.layers

#: benchmark name -> (scheme, its options, whether it trains on labels)
RUNS = {
    "backprop": ("backprop", {}, True),
    "autoencoder": ("autoencoder", {}, False),  # the defaults: 30% of the inputs masked
    "autoencoder-plain": ("autoencoder", {"corruption": 0.0}, False),
}


def model_for(name):
    """The classifier 64-128-64-10 for backprop; for the autoencoder, its hidden layer and a decoder back to 64."""
    if RUNS[name][0] == "backprop":
        return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64)], seed=0)


class AutoencoderEpoch:
    """One epoch on the digits training split (1,257 images); kernels compiled in setup."""

    params = list(RUNS)
    param_names = ["run"]
    timeout = 300

    def setup(self, name):
        self.scheme, self.options, labelled = RUNS[name]
        require_registered("schemes", self.scheme)
        X, y, _, _ = nk.datasets.load("digits")
        self.data = (X, y) if labelled else (X,)
        self.model = model_for(name)
        self.time_epoch(name)

    def time_epoch(self, name):
        nk.train(self.model, *self.data, scheme=self.scheme, epochs=1, batch_size=32, seed=0, **self.options)
