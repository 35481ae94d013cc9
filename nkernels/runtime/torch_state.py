"""Weights and buffers to and from a PyTorch ``state_dict`` (nkernels never imports torch).

A :class:`~nkernels.Sequential` of built-in layers corresponds to an ``nn.Sequential`` of their
``torch.nn`` counterparts; the key of an array in the PyTorch model's ``state_dict`` is
``"<layer index>.<torch name>"``, with the torch name of each built-in layer below (a plugin layer
maps each of its parameters and buffers under its own name):

- ``Dense``: ``nn.Linear``; ``weight``, ``bias``.
- ``Conv1D``, ``Conv2D``: ``nn.Conv1d``, ``nn.Conv2d``; ``weight``, ``bias``.
- ``ConvTranspose2D``: ``nn.ConvTranspose2d``; ``weight`` (in, out, kh, kw), ``bias``.
- ``LSTM``, ``GRU``: ``nn.LSTM``, ``nn.GRU`` (``batch_first=True``); ``weight_ih`` -> ``weight_ih_l0``,
  ``weight_hh`` -> ``weight_hh_l0``, ``bias_ih`` -> ``bias_ih_l0``, ``bias_hh`` -> ``bias_hh_l0``.
- ``BatchNorm1D``, ``BatchNorm2D``: ``nn.BatchNorm1d``, ``nn.BatchNorm2d``; ``weight``, ``bias`` and the
  buffers ``running_mean``, ``running_var``, ``num_batches_tracked`` (shape (1,) here, () in torch).
- ``LayerNorm``: ``nn.LayerNorm``; ``weight``, ``bias`` (those the layer has).
- ``Embedding``: ``nn.Embedding``; ``weight``.
- ``PositionalEmbedding``: a module with a parameter ``weight`` (max_len, dim); ``weight``.
- ``MultiHeadAttention``: ``nn.MultiheadAttention(batch_first=True)``; ``in_proj_weight``,
  ``in_proj_bias``, ``out_proj_weight`` -> ``out_proj.weight``, ``out_proj_bias`` -> ``out_proj.bias``.
- ``Residual``: a module with ``body`` and ``shortcut`` ``nn.Sequential`` attributes;
  ``body.<i>.<child's key>``, ``shortcut.<i>.<child's key>``.
- ``Frozen`` of a Sequential: an ``nn.Sequential`` of the wrapped layers; ``<i>.<child's key>`` (a
  Frozen of another extractor has no counterpart: a ValueError).
- ``Dropout``: ``nn.Dropout``; no keys.
- ``ReLU``, ``Sigmoid``, ``Tanh``, ``SiLU``, ``GELU``, ``Flatten``, ``MaxPool1D``, ``MaxPool2D``,
  ``AvgPool2D``, ``Upsample2D``, ``GlobalAvgPool2D``, ``GlobalAvgPool1D``: their ``nn`` modules
  (``GlobalAvgPool2D``: ``AdaptiveAvgPool2d(1)`` then ``Flatten`` in an ``nn.Sequential``;
  ``GlobalAvgPool1D``: a module returning ``x.mean(dim=1)``); no keys.

MultiHeadAttention's and Dropout's random-number ``seed`` and ``counter`` buffers have no PyTorch
counterpart: they are neither written nor read. docs/interop.md shows the modules in full.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import devices

#: buffers that hold nkernels' random-number state and have no PyTorch counterpart
RNG_BUFFERS = ("seed", "counter")


@dataclass(frozen=True)
class Entry:
    """One array of a model as PyTorch names it: ``key`` in the torch ``state_dict``, the nkernels
    ``layer`` that holds it, its ``kind`` (``"param"`` or ``"buffer"``), its ``name`` in that layer
    and its ``torch_shape``."""

    key: str
    layer: Any
    kind: str
    name: str
    torch_shape: tuple[int, ...]

    @property
    def array(self) -> Any:
        """The layer's own array (a parameter may be a device array)."""
        return (self.layer.params if self.kind == "param" else self.layer.buffers)[self.name]


def _own(layer: Any, prefix: str, rename: Callable[[str], str] = lambda name: name,
         skip: tuple[str, ...] = ()) -> list[Entry]:
    """A layer's parameters and buffers (but ``skip``) under ``prefix`` + ``rename(name)``, shapes as here."""
    entries = [Entry(prefix + rename(name), layer, "param", name, tuple(value.shape))
               for name, value in layer.params.items()]
    return entries + [Entry(prefix + rename(name), layer, "buffer", name, tuple(np.shape(value)))
                      for name, value in layer.buffers.items() if name not in skip]


def layer_entries(layer: Any, prefix: str = "") -> list[Entry]:
    """The arrays of ``layer`` under their PyTorch names (see the module's table), each ``prefix``-ed."""
    from .. import layers as L

    if isinstance(layer, L.Residual):
        return [entry for path, children in (("body", layer.body), ("shortcut", layer.shortcut or []))
                for i, child in enumerate(children) for entry in layer_entries(child, f"{prefix}{path}.{i}.")]
    if isinstance(layer, L.Frozen):
        from ..model import Sequential

        if not isinstance(layer.extractor, Sequential):
            raise ValueError(f"layer {prefix.rstrip('.')}: Frozen({type(layer.extractor).__name__}) has no PyTorch "
                             f"counterpart; only a Frozen Sequential maps to torch (an nn.Sequential of its layers)")
        return model_entries(layer.extractor, prefix)
    if isinstance(layer, (L.LSTM, L.GRU)):
        return _own(layer, prefix, lambda name: name + "_l0")
    if isinstance(layer, L.MultiHeadAttention):
        return _own(layer, prefix, lambda name: name.replace("out_proj_", "out_proj."), skip=RNG_BUFFERS)
    if isinstance(layer, L.Dropout):
        return _own(layer, prefix, skip=RNG_BUFFERS)
    entries = _own(layer, prefix)
    if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
        entries = [Entry(e.key, e.layer, e.kind, e.name, ()) if e.name == "num_batches_tracked" else e
                   for e in entries]
    return entries


def model_entries(model: Any, prefix: str = "") -> list[Entry]:
    """Every array of a Sequential under its PyTorch name, ``"<index>.<torch name>"``, in layer order."""
    return [entry for i, layer in enumerate(model.layers) for entry in layer_entries(layer, f"{prefix}{i}.")]


def _checked_entries(model: Any) -> list[Entry]:
    from ..model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"expected an nkernels Sequential, got {type(model).__name__}")
    return model_entries(model)


def to_torch_state_dict(model: Any, convert: Callable[[np.ndarray], Any] | None = None) -> dict[str, Any]:
    """The weights and buffers of ``model`` (a :class:`~nkernels.Sequential`) as a PyTorch ``state_dict``.

    Keys are those of an ``nn.Sequential`` of the layers' ``torch.nn`` counterparts (the table in
    :mod:`nkernels.runtime.torch_state` and docs/interop.md), values NumPy arrays (copies, in the
    model's dtype, on the host; ``num_batches_tracked`` 0-d as in torch), each passed through
    ``convert`` when given. ``torch.nn.Module.load_state_dict`` needs tensors, so::

        torch_model.load_state_dict(nk.interop.to_torch_state_dict(model, convert=torch.from_numpy))

    A layer without a PyTorch counterpart (a Frozen non-Sequential extractor) is a ValueError.
    """
    if convert is not None and not callable(convert):
        raise TypeError(f"convert must be a callable such as torch.from_numpy, got {convert!r}")
    state = {}
    for entry in _checked_entries(model):
        value = np.array(devices.to_host(entry.array)).reshape(entry.torch_shape)
        state[entry.key] = convert(value) if convert is not None else value
    return state


def _as_numpy(value: Any, key: str) -> np.ndarray:
    """A state-dict value as a NumPy array: a torch tensor (duck-typed: ``.detach().cpu().numpy()``) or array-like."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # an object NumPy cannot read
        raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, not an array or tensor") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"state_dict[{key!r}] holds {array.dtype} values; expected numbers")
    return array


def from_torch_state_dict(model: Any, state_dict: Any) -> Any:
    """Copy a PyTorch ``state_dict`` into ``model`` (a :class:`~nkernels.Sequential`) in place; returns ``model``.

    ``state_dict`` maps the keys of :func:`to_torch_state_dict` to torch tensors (any device; read
    with ``.detach().cpu().numpy()``) or NumPy arrays, cast to the model's dtypes. Every key must
    be there with torch's shape: a missing or unexpected key, a wrong shape or a fractional value
    for an integer buffer is a ValueError naming the key, and then nothing is modified.
    """
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to tensors or arrays, got {type(state_dict).__name__}")
    entries = _checked_entries(model)
    expected = {entry.key for entry in entries}
    missing = [entry.key for entry in entries if entry.key not in state_dict]
    unexpected = [key for key in state_dict.keys() if key not in expected]
    if missing or unexpected:
        raise ValueError(f"the state_dict does not match the model: missing keys {missing}, unexpected keys "
                         f"{unexpected} (keys are '<layer index>.<torch name>'; see nk.interop.to_torch_state_dict)")
    values = []
    for entry in entries:
        value = _as_numpy(state_dict[entry.key], entry.key)
        if tuple(value.shape) != entry.torch_shape:
            raise ValueError(f"state_dict[{entry.key!r}] has shape {tuple(value.shape)}, but the model's "
                             f"{type(entry.layer).__name__}.{entry.name} needs {entry.torch_shape}")
        target = np.dtype(entry.array.dtype)
        if target.kind in "iu" and value.dtype.kind == "f" and not np.array_equal(value, np.round(value)):
            raise ValueError(f"state_dict[{entry.key!r}] holds fractional values for the integer buffer "
                             f"{type(entry.layer).__name__}.{entry.name}")
        values.append(np.ascontiguousarray(value, dtype=target).reshape(entry.array.shape))
    for entry, value in zip(entries, values):  # every check passed: now write
        devices.assign(entry.array, value)
    return model


__all__ = ["to_torch_state_dict", "from_torch_state_dict", "layer_entries", "model_entries", "Entry", "RNG_BUFFERS"]
