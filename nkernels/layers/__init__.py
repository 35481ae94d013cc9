"""Layers. Every layer subclasses :class:`Layer`; its passes call the kernels of its device."""
from .activation import GELU, ReLU, Sigmoid, SiLU, Tanh
from .attention import MultiHeadAttention
from .base import Layer
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout
from .frozen import Frozen
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .pool import AvgPool2D, MaxPool1D, MaxPool2D
from .recurrent import GRU, LSTM
from .reshape import Flatten
from .residual import Residual
from .conv import ConvTranspose2D
from .pool import GlobalAvgPool2D
from .upsample import Upsample2D

__all__ = ["Layer", "Dense", "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Tanh",
           "SiLU", "Dropout", "Flatten", "LSTM", "GRU", "Frozen", "Residual"]
__all__ += ["BatchNorm1D", "BatchNorm2D", "LayerNorm"]
__all__ += ["ConvTranspose2D", "Upsample2D", "GlobalAvgPool2D"]
__all__ += ["GELU", "MultiHeadAttention"]
