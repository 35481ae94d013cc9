"""The ``gan`` scheme (the nkernels-gan plugin) against backprop: one epoch of each on digits.

A GAN epoch (the gan preset: generator 16-128-64, discriminator 64-128-1, batches of 64, 19
steps) runs per step a generator forward pass, one compiled discriminator step on 128 rows
(64 real, 64 generated) and one compiled generator step through the discriminator. The backprop
epoch trains the same discriminator on the 1,257 real rows with 0/1 labels and
``bce_with_logits``, batches of 64: the ratio of the two is what the adversarial game costs.
"""
import numpy as np

import nkernels as nk

from .common import require_registered


class GANEpoch:
    """One epoch with the gan scheme or with backprop (same discriminator, batch 64); kernels
    compiled (or loaded from Numba's cache) in setup."""

    params = ["gan", "backprop"]
    param_names = ["scheme"]
    timeout = 300

    def setup(self, scheme):
        if scheme == "gan":
            require_registered("schemes", "gan")
        self.X, _, _, _ = nk.datasets.load("digits")
        self.labels = np.arange(len(self.X)) % 2
        self.data_range = (float(self.X.min()), float(self.X.max()))
        self.time_epoch(scheme)

    def time_epoch(self, scheme):
        generator, discriminator = nk.presets.gan(self.X.shape[1:], data_range=self.data_range, seed=0)
        if scheme == "gan":
            nk.train(discriminator, self.X, scheme="gan", generator=generator, epochs=1, seed=0)
        else:
            nk.train(discriminator, self.X, self.labels, epochs=1, batch_size=64, seed=0, loss="bce_with_logits")
