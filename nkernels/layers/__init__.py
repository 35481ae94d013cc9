"""Layers. Every layer subclasses :class:`Layer`; its passes call the kernels of its device."""
from .activation import ReLU, Sigmoid, Tanh
from .base import Layer
from .dense import Dense
from .reshape import Flatten

__all__ = ["Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Flatten"]
