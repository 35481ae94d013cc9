"""LabelInput: the slot for the label that forward-forward joins to every input."""
from __future__ import annotations

import numpy as np

import nkernels as nk
from nkernels.validation import check_int


class LabelInput(nk.layers.Layer):
    """Appends ``n_classes`` label columns to each sample: (N, F) -> (N, F + n_classes).

    Forward-forward feeds its first Dense layer the pixels and a one-hot label side by side; the
    scheme writes those labels itself (the true one for positive data, a wrong one for negative
    data, each label in turn for prediction). This layer puts the slot in the model, so that the
    model takes the plain features (``nk.train``, ``model.forward``) and records its number of
    classes. Its own forward fills the slot with the neutral label, ``1 / n_classes`` in every
    column (Hinton 2022, section 3.3), and its backward drops the slot's gradient.
    """

    supported_devices = ("cpu",)

    def __init__(self, n_classes: int):
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + self.n_classes)

    def forward(self, x, training=False):
        x = self.prepare_input(x, ndim=2)
        out = np.empty((x.shape[0], x.shape[1] + self.n_classes), x.dtype)
        out[:, :x.shape[1]] = x
        out[:, x.shape[1]:] = 1.0 / self.n_classes
        if training:
            self.save_for_backward(features=x.shape[1])
        return out

    def backward(self, dy, need_dx=True):
        features = self.saved_for_backward()["features"]
        return np.ascontiguousarray(np.asarray(dy)[:, :features])
