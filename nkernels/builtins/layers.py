"""Registers the built-in layers."""
from .. import layers as L
from ..plugin_marker import hookimpl


@hookimpl
def nkernels_register_layers():
    """The built-in layers by registry name."""
    names = {"dense": "Dense", "relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "flatten": "Flatten",
             "conv1d": "Conv1D", "conv2d": "Conv2D", "maxpool1d": "MaxPool1D", "maxpool2d": "MaxPool2D",
             "avgpool2d": "AvgPool2D", "dropout": "Dropout", "lstm": "LSTM", "gru": "GRU"}
    return {name: getattr(L, cls) for name, cls in names.items() if hasattr(L, cls)}
