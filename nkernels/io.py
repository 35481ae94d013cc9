"""Saving and loading models: weights in safetensors, the architecture as JSON metadata.

A file holds the parameters (``model.<index>.<name>``), optionally an optimizer's state
(``optimizer.<param>.<state>``), and in the safetensors header the model config (layers by
registry name, so plugin layers round-trip) and the optimizer's config. Writes are atomic (a
temporary file, fsync, rename), and loading parses data only: it never executes code.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .devices import to_host
from .errors import CorruptFileError

FORMAT = "nkernels"
FORMAT_VERSION = "1"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, whole."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(model, path: str | os.PathLike, optimizer=None, extra: dict[str, Any] | None = None,
         arrays: dict[str, np.ndarray] | None = None) -> None:
    """Save ``model`` (weights and buffers) and optionally an optimizer's state to ``path`` atomically.

    ``extra`` (JSON values) and ``arrays`` (named arrays) travel along, for checkpoints.
    """
    from safetensors.numpy import save as st_save

    tensors = {f"model.{k}": np.ascontiguousarray(to_host(v)) for k, v in model.params.items()}
    tensors.update({f"buffer.{k}": np.ascontiguousarray(v) for k, v in model.buffers.items()})
    tensors.update({f"extra.{k}": np.ascontiguousarray(v) for k, v in (arrays or {}).items()})
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": json.dumps(model.get_config())}
    if optimizer is not None:
        state = optimizer.state_dict()
        for key, named in state["state"].items():
            for name, array in named.items():
                tensors[f"optimizer.{key}.{name}"] = np.ascontiguousarray(array)
        metadata["optimizer"] = json.dumps({"type": type(optimizer).__name__.lower(),
                                            "config": optimizer.get_config(), "steps": state["steps"]})
    if extra is not None:
        metadata["extra"] = json.dumps(extra)
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


@dataclass
class Checkpoint:
    """Everything a file holds: the model config, its weights and buffers, an optimizer's state, extras."""

    config: dict[str, Any]
    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    optimizer: dict[str, Any] | None
    extra: dict[str, Any] | None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def optimizer_state(self) -> dict[str, Any] | None:
        """The saved optimizer's ``state_dict()``, or None."""
        return None if self.optimizer is None else {"steps": self.optimizer["steps"],
                                                     "state": self.optimizer["state"]}


def _read(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not a readable safetensors file ({exc})") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is a safetensors file but not an nkernels model (no nkernels metadata)")
    return metadata, tensors


def _json_field(metadata: dict[str, str], key: str, path: Any) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError) as exc:
        raise CorruptFileError(f"{path}: the '{key}' metadata is missing or not JSON ({exc})") from None


def _group(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Parse the file at ``path`` (data only, never code); CorruptFileError for a bad file."""
    metadata, tensors = _read(path)
    optimizer = None
    if "optimizer" in metadata:
        optimizer = _json_field(metadata, "optimizer", path)
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, array in _group(tensors, "optimizer.").items():
            param_key, name = key.rsplit(".", 1)
            state.setdefault(param_key, {})[name] = array
        optimizer["state"] = state
    extra = _json_field(metadata, "extra", path) if "extra" in metadata else None
    return Checkpoint(_json_field(metadata, "model", path), _group(tensors, "model."), _group(tensors, "buffer."),
                      optimizer, extra, _group(tensors, "extra."))


def restore_weights(model, checkpoint: Checkpoint, path: Any = "the checkpoint") -> None:
    """Copy a checkpoint's weights and buffers into ``model``, whose architecture must match."""
    if model.get_config()["layers"] != checkpoint.config.get("layers"):
        raise ValueError(f"{path} holds a different architecture than the model given")
    try:
        model.set_params(checkpoint.params)
    except ValueError as exc:
        raise CorruptFileError(f"{path}: the weights do not match the architecture ({exc})") from None
    for key, value in model.buffers.items():
        if key in checkpoint.buffers:
            value[...] = checkpoint.buffers[key]


def load(path: str | os.PathLike):
    """The model saved at ``path``, with its weights. Raises CorruptFileError for a bad file."""
    from .model import Sequential

    checkpoint = read_checkpoint(path)
    model = Sequential.from_config(checkpoint.config)
    restore_weights(model, checkpoint, path)
    return model


def load_optimizer(path: str | os.PathLike):
    """The optimizer saved with the model at ``path`` (state included), or None if none was saved."""
    from .optimizers import get_optimizer

    checkpoint = read_checkpoint(path)
    if checkpoint.optimizer is None:
        return None
    config = dict(checkpoint.optimizer["config"])
    if "betas" in config:
        config["betas"] = tuple(config["betas"])
    optimizer = get_optimizer(checkpoint.optimizer["type"], **config)
    state = checkpoint.optimizer_state()
    if state is not None:
        optimizer.load_state_dict(state)
    return optimizer
