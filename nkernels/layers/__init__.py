"""Layers. Every layer subclasses :class:`Layer`; its passes call the kernels of its device."""
from .activation import GELU, ReLU, Sigmoid, SiLU, Tanh
from .attention import MultiHeadAttention
from .base import Layer
from .conv import Conv1D, Conv2D, ConvTranspose2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .frozen import Frozen
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .pool import AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from .recurrent import GRU, LSTM
from .reshape import Flatten
from .residual import Residual
from .upsample import Upsample2D

__all__ = ["Layer", "Dense", "Conv1D", "Conv2D", "ConvTranspose2D", "MaxPool1D", "MaxPool2D", "AvgPool2D",
           "GlobalAvgPool1D", "GlobalAvgPool2D", "Upsample2D", "ReLU", "Sigmoid", "Tanh", "SiLU", "GELU", "Dropout",
           "Flatten", "LSTM", "GRU", "Frozen", "Residual", "BatchNorm1D", "BatchNorm2D", "LayerNorm", "Embedding",
           "PositionalEmbedding", "MultiHeadAttention"]
