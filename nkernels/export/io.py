"""Saving and loading models: weights in safetensors, the architecture as JSON metadata.

A file holds the parameters (``model.<index>.<name>``), optionally an optimizer's state
(``optimizer.<param>.<state>``), and in the safetensors header the model config (layers by
registry name, so plugin layers round-trip) and the optimizer's config. Writes are atomic (a
temporary file, fsync, rename), and loading parses data only: it never executes code.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runtime.devices import assign, to_host
from ..errors import CorruptFileError, PluginError

FORMAT = "nkernels"
FORMAT_VERSION = "1"


def _create_temporary(directory: str, prefix: str) -> tuple[int, str]:
    """A new file next to the target, created with mode 0o666 so that the umask applies, as it does
    to any file a user writes (``tempfile.mkstemp`` would make it 0o600)."""
    while True:
        tmp = os.path.join(directory, f"{prefix}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, whole.

    A new file gets the permissions the umask allows; a file replaced keeps its mode.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            if os.path.isfile(path):
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
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


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, with an OSError naming the reason, if :func:`atomic_write_bytes` could not write ``path``
    later: it creates the missing folders (as a save would) and a throw-away file beside it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = _create_temporary(directory, os.path.basename(path))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file stands where a folder of the path should be"
        raise type(exc)(f"cannot write {path}: {reason}") from None
    os.close(fd)
    os.unlink(tmp)


def save(model, path: str | os.PathLike, optimizer=None, extra: dict[str, Any] | None = None,
         arrays: dict[str, np.ndarray] | None = None) -> None:
    """Save ``model`` (weights and buffers) and optionally an optimizer's state to ``path`` atomically.

    ``extra`` (JSON values) and ``arrays`` (named arrays) travel along, for checkpoints.
    """
    from safetensors.numpy import save as st_save

    tensors = {f"model.{k}": np.ascontiguousarray(to_host(v)) for k, v in model.params.items()}
    tensors.update({f"buffer.{k}": np.ascontiguousarray(to_host(v)) for k, v in model.buffers.items()})
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
    params = _group(tensors, "model.")
    optimizer = None
    if "optimizer" in metadata:
        optimizer = _json_field(metadata, "optimizer", path)
        if not isinstance(optimizer, dict):
            raise CorruptFileError(f"{path}: the 'optimizer' metadata must be a JSON object, got {optimizer!r}")
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, array in _group(tensors, "optimizer.").items():
            param_key, _, name = key.rpartition(".")
            state.setdefault(param_key, {})[name] = array
        optimizer["state"] = state
        _check_optimizer_state(optimizer, params, path)
    extra = _json_field(metadata, "extra", path) if "extra" in metadata else None
    return Checkpoint(_json_field(metadata, "model", path), params, _group(tensors, "buffer."),
                      optimizer, extra, _group(tensors, "extra."))


def _spec(array: Any) -> str:
    return f"{np.dtype(array.dtype)} of shape {tuple(array.shape)}"


def _check_optimizer_state(optimizer: dict[str, Any], params: dict[str, np.ndarray], path: Any) -> None:
    """CorruptFileError unless every saved optimizer state array belongs to a saved parameter and has
    the flat shape and the dtype of that parameter (the optimizer would otherwise restart it at zero)."""
    from ..optimizers import OPTIMIZERS

    steps = optimizer.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CorruptFileError(f"{path}: the optimizer's step count must be an integer >= 0, found {steps!r}")
    state_names = getattr(OPTIMIZERS.get(str(optimizer.get("type"))), "state_names", None)
    for key, named in optimizer["state"].items():
        if key not in params:
            raise CorruptFileError(f"{path}: the file holds optimizer state for {key!r}, which is not a parameter "
                                   f"of the model (parameters: {', '.join(sorted(params))})")
        if state_names is not None and set(named) != set(state_names):
            raise CorruptFileError(f"{path}: the {optimizer['type']} state of parameter {key!r} should hold "
                                   f"{sorted(state_names)}, the file holds {sorted(named)}")
        expected = np.empty((params[key].size,), params[key].dtype)
        for name, array in named.items():
            if array.shape != expected.shape or array.dtype != expected.dtype:
                raise CorruptFileError(f"{path}: the optimizer state {name!r} of parameter {key!r} should be "
                                       f"{_spec(expected)}, the file holds {_spec(array)}")


def _check_arrays(what: str, expected: dict[str, Any], found: dict[str, np.ndarray], path: Any) -> None:
    """CorruptFileError unless the file's arrays ``found`` have exactly the names, shapes and dtypes of
    the model's arrays ``expected`` (a 1-element array would otherwise broadcast into any shape)."""
    missing = [k for k in expected if k not in found]
    if missing:
        listed = ", ".join(f"{k!r} ({_spec(expected[k])})" for k in missing)
        raise CorruptFileError(f"{path}: the file lacks the {what}(s) {listed} that the model has")
    unexpected = [k for k in found if k not in expected]
    if unexpected:
        listed = ", ".join(f"{k!r} ({_spec(found[k])})" for k in unexpected)
        raise CorruptFileError(f"{path}: the file holds the {what}(s) {listed}, which the model does not have")
    for key, want in expected.items():
        got = found[key]
        if tuple(got.shape) != tuple(want.shape) or np.dtype(got.dtype) != np.dtype(want.dtype):
            raise CorruptFileError(f"{path}: the {what} {key!r} should be {_spec(want)}, the file holds {_spec(got)}")


def restore_weights(model, checkpoint: Checkpoint, path: Any = "the checkpoint") -> None:
    """Copy a checkpoint's weights and buffers into ``model``, whose architecture and dtype must match.

    Every parameter and buffer must be in the file with the model's shape and dtype, and the file
    must hold no other: anything else is a CorruptFileError naming the array, what the model
    expects and what the file holds. Nothing is written into the model unless all of them match.
    """
    config = model.get_config()
    if checkpoint.config.get("dtype", config["dtype"]) != config["dtype"]:  # first: a cast changes layer configs too
        raise ValueError(f"{path} holds a {checkpoint.config['dtype']} model, the model given is {config['dtype']}; "
                         f"cast the model first (model.astype({checkpoint.config['dtype']!r}))")
    if config["layers"] != checkpoint.config.get("layers"):
        raise ValueError(f"{path} holds a different architecture than the model given")
    _check_arrays("parameter", model.params, checkpoint.params, path)
    _check_arrays("buffer", model.buffers, checkpoint.buffers, path)
    model.set_params(checkpoint.params)
    for key, value in model.buffers.items():
        assign(value, checkpoint.buffers[key])  # a frozen Sequential's weights are on the GPU with its model


def load(path: str | os.PathLike):
    """The model saved at ``path``, with its weights and buffers.

    Raises CorruptFileError for a bad file, and an ``UnknownNameError`` naming the layer type (and
    the plugin that provides it, when known) for a model whose plugin is not installed.
    """
    from ..model import Sequential

    checkpoint = read_checkpoint(path)
    try:
        model = Sequential.from_config(checkpoint.config)
    except (KeyError, PluginError):  # a layer or extractor that no plugin here provides: not corrupt
        raise
    except (ValueError, TypeError) as exc:
        raise CorruptFileError(f"{path}: the model config it holds cannot be built ({exc})") from None
    restore_weights(model, checkpoint, path)
    return model


def load_optimizer(path: str | os.PathLike):
    """The optimizer saved with the model at ``path`` (state included), or None if none was saved."""
    from ..optimizers import get_optimizer

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
