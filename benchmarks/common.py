"""Shared pieces of the asv suite: guarded imports of the optional peers (PyTorch, JAX)."""
import importlib


def safe_import(name):
    """The module, or None when it is not installed, so that one missing peer never breaks discovery."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


torch = safe_import("torch")
jax = safe_import("jax")
