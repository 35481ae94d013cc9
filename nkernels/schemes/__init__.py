"""Training schemes. ``Scheme`` is the base class; the built-in ``backprop`` lives here too."""
from .backprop import Backprop
from .base import Scheme

__all__ = ["Scheme", "Backprop"]
