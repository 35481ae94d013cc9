"""A training epoch of each preset on digits, per scheme (backprop; plugin schemes register more)."""
import nkernels as nk

# nk.presets: the public name on both sides of the move to nkernels.cli (asv runs older commits too)
from nkernels import presets


class PresetEpoch:
    """One epoch of backprop (Adam, batch 32) on the digits training split, compiled in setup."""

    params = ["mlp", "cnn", "lstm"]
    param_names = ["preset"]
    timeout = 300

    def setup(self, preset):
        form = presets.input_form(preset)
        X, y, _, _ = nk.datasets.load("digits", flat=form == "flat")
        self.X, self.y = presets.prepare_inputs(form, X), y
        self.model = presets.build(preset, self.X.shape[1:], 10)
        self.time_epoch(preset)

    def time_epoch(self, preset):
        nk.train(self.model, self.X, self.y, epochs=1, batch_size=32, seed=0)


class SchemeEpoch:
    """One epoch (or generation) of every registered scheme that trains the digits MLP with defaults."""

    params = ["backprop"]
    param_names = ["scheme"]
    timeout = 300

    def setup(self, scheme):
        self.X, self.y, _, _ = nk.datasets.load("digits")
        self.model = presets.build("mlp", (64,), 10)
        self.time_epoch(scheme)

    def time_epoch(self, scheme):
        nk.train(self.model, self.X, self.y, scheme=scheme, epochs=1, batch_size=32, seed=0)
