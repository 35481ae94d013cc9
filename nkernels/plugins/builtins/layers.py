"""Registers the built-in layers."""
from ... import layers as L
from ..marker import hookimpl


@hookimpl
def nkernels_register_layers():
    """The built-in layers by registry name."""
    return {"dense": L.Dense, "conv1d": L.Conv1D, "conv2d": L.Conv2D, "maxpool1d": L.MaxPool1D,
            "maxpool2d": L.MaxPool2D, "avgpool2d": L.AvgPool2D, "relu": L.ReLU, "sigmoid": L.Sigmoid,
            "tanh": L.Tanh, "silu": L.SiLU, "dropout": L.Dropout, "flatten": L.Flatten, "lstm": L.LSTM,
            "gru": L.GRU, "frozen": L.Frozen}
