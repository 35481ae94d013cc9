"""Layers. Every layer subclasses :class:`Layer`; its passes call the kernels of its device."""
from .activation import ReLU, Sigmoid, SiLU, Tanh
from .base import Layer
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .frozen import Frozen
from .pool import AvgPool2D, GlobalAvgPool1D, MaxPool1D, MaxPool2D
from .recurrent import GRU, LSTM
from .reshape import Flatten
from .residual import Residual

__all__ = ["Layer", "Dense", "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Tanh",
           "SiLU", "Dropout", "Flatten", "LSTM", "GRU", "Frozen", "Residual",
           "Embedding", "PositionalEmbedding", "GlobalAvgPool1D"]
