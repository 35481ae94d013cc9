"""Sequential: a chain of layers, sliceable into feature extractors."""
from __future__ import annotations

import copy as _copy
from typing import Any, Iterator

import numpy as np

from .runtime import devices
from .runtime.threads import kernel_threads
from .layers.base import Layer
from .validation import as_numeric_array, check_float_dtype, check_int


class Sequential:
    """A chain of layers applied in order.

    ``seed`` re-draws every layer's initial parameters from one seeded generator, so the same
    seed gives the same model. ``model[a:b]`` is a Sequential sharing those layers (a feature
    extractor), and ``model[i]`` is one layer. ``params`` and ``grads`` are flat dicts named
    ``"<index>.<name>"`` as in a PyTorch ``state_dict``.
    """

    def __init__(self, layers: Any, seed: int | None = None, dtype: Any = None):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential expects nkernels Layer objects; item {i} is {layer!r}")
        self.layers: list[Layer] = layers
        if seed is not None:
            self.reset_parameters(seed)
        if dtype is not None:
            self.astype(dtype)

    # -- structure -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(self.layers[index])
        return self.layers[index]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"

    def copy(self) -> "Sequential":
        """An independent copy of the model, the one way nkernels copies a model.

        The copy holds the same layers with the same parameters, gradients, buffers and settings
        (a Dropout's seed, say), and each :class:`~nkernels.layers.Frozen` layer a copy of its
        fitted extractor; it computes the same numbers and shares no array with this model, so
        training either leaves the other alone. A model on the GPU is copied on the GPU. What a
        training-mode forward kept for ``backward`` is not copied. Layers used twice in this model
        are one layer, used twice, in the copy. ``copy.deepcopy(model)`` gives the same result.

        Extractors and plugin layers are copied with :func:`copy.deepcopy`; one that holds
        something that cannot be copied (a lock, a client) defines ``__deepcopy__``.
        """
        return _copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> "Sequential":
        # deepcopy cannot copy GPU arrays, and the activations a layer keeps for backward are not part
        # of the model: the memo maps each GPU array to a copy made on the device, each kept pass to None.
        for layer in self.layers:
            memo.setdefault(id(layer._saved), None)
            for arrays in (layer.params, layer.grads, layer.buffers):
                for array in arrays.values():
                    if devices.is_device_array(array) and id(array) not in memo:
                        memo[id(array)] = devices.copy(array)
        twin = Sequential.__new__(type(self))
        memo[id(self)] = twin
        twin.__dict__.update(_copy.deepcopy(self.__dict__, memo))
        return twin

    def reset_parameters(self, seed: int | None) -> None:
        """Draw every layer's parameters afresh from generators spawned off ``seed``."""
        children = np.random.SeedSequence(seed).spawn(len(self.layers))
        for layer, child in zip(self.layers, children):
            if type(layer).reset_parameters is not Layer.reset_parameters:  # (the base draws nothing)
                layer.reset_parameters(np.random.default_rng(child))

    # -- parameters ----------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every parameter, named ``"<layer index>.<name>"``; the arrays are the layers' own."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Every gradient, named as :attr:`params`."""
        return {f"{i}.{k}": layer.grads[k] for i, layer in enumerate(self.layers) for k in layer.params}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Every layer's non-trained state (e.g. dropout's counter), named as :attr:`params`."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy values into the parameters named as in :attr:`params` (shapes must match)."""
        own = self.params
        missing = sorted(set(own) - set(params))
        unexpected = sorted(set(params) - set(own))
        if missing or unexpected:
            raise ValueError(f"parameter names do not match the model: missing {missing}, unexpected {unexpected}")
        for key, value in params.items():
            value = value if devices.is_device_array(value) else np.asarray(value)
            if tuple(value.shape) != tuple(own[key].shape):
                raise ValueError(f"parameter {key} has shape {own[key].shape}, got {value.shape}")
            devices.assign(own[key], value)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the parameters (float32 unless cast)."""
        for layer in self.layers:
            if layer.params:
                return layer.dtype
        return self.layers[0].dtype if self.layers else np.dtype(np.float32)

    def astype(self, dtype: Any) -> "Sequential":
        """Cast every layer to ``dtype`` (float32 or float64) in place; returns self."""
        dt = check_float_dtype(dtype)
        for layer in self.layers:
            layer.astype(dt)
        return self

    @property
    def input_dtype(self) -> np.dtype:
        """The dtype inputs are given in: the model's dtype, or integers when the first layer takes
        indices (an Embedding)."""
        first = self.layers[0].input_dtype if self.layers else None
        return np.dtype(first) if first is not None else self.dtype

    def check_inputs(self, X: np.ndarray, what: str = "X") -> None:
        """Check the values of ``X`` (all of it) as the first layer wants them, before any kernel
        reads them: an Embedding's indices must be in range. Raises a ValueError naming ``what``."""
        if self.layers:
            self.layers[0].check_input_values(X, what)

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where the parameters live (see :meth:`to`)."""
        return self.layers[0].device if self.layers else "cpu"

    def to(self, device: str) -> "Sequential":
        """Move every layer's parameters and gradients to ``device`` (``"cpu"`` or ``"cuda"``); returns self.

        On ``"cuda"``, :meth:`forward` takes NumPy arrays (copied over, the result copied back)
        or GPU arrays with ``__cuda_array_interface__`` (numba device arrays, CuPy, PyTorch CUDA
        tensors: used without a copy and answered with a numba device array). A
        :class:`~nkernels.errors.DeviceUnavailableError` says why when no GPU is usable, and a
        ValueError names the first layer without kernels for the device; either way nothing moves.
        """
        device = devices.check_device(device)
        if device == "cuda":
            devices.require_cuda()
        for i, layer in enumerate(self.layers):
            if device not in layer.supported_devices:
                raise ValueError(f"layer {i} ({type(layer).__name__}) has no {device.upper()} kernels, so "
                                 f"the model cannot move to {device!r}; it supports "
                                 f"{', '.join(layer.supported_devices)}")
        for layer in self.layers:
            layer.to(device)
        return self

    # -- passes --------------------------------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        """Run every layer on ``x``; with ``training=True`` each keeps what backward needs.

        On a CUDA model a NumPy input gives a NumPy output, and a GPU array a device array.
        """
        if not self.layers:
            raise ValueError("the model has no layers")
        on_host = self.device == "cuda" and not devices.is_device_array(x)
        with kernel_threads(self.device):
            for layer in self.layers:
                x = layer.forward(x, training=training)
        return devices.to_host(x) if on_host else x

    __call__ = forward

    def backward(self, dy: Any, input_grad: bool = True) -> Any:
        """Back-propagate ``dy`` through every layer, filling each layer's ``grads``; returns dx
        (on a CUDA model, on the host when ``dy`` was a NumPy array).

        ``input_grad=False`` skips what only the input's gradient needs: the layers below the
        first one with parameters, and the first trainable layer's input gradient (the trainers
        pass it; a scheme that needs the input's gradient keeps the default). Returns None then.
        """
        on_host = self.device == "cuda" and not devices.is_device_array(dy)
        trainable = [i for i, layer in enumerate(self.layers) if layer.params]
        first = 0 if input_grad else (trainable[0] if trainable else len(self.layers))
        with kernel_threads(self.device):
            for i in reversed(range(first, len(self.layers))):
                layer = self.layers[i]
                need_dx = input_grad or i > first
                dy = layer.backward(dy, need_dx=need_dx) if layer.described else layer.backward(dy)
        if not input_grad:
            return None
        return devices.to_host(dy) if on_host else dy

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for an input of ``input_shape`` (batch first)."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """The outputs for every row of ``X``, computed in batches in evaluation mode."""
        X = as_numeric_array(X, "X")
        batch_size = check_int(batch_size, "batch_size")
        if len(X) == 0:
            raise ValueError("X is empty")
        from .runtime.threads import blas_single_threaded

        with blas_single_threaded():
            return np.concatenate([self.forward(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])

    # -- the extractor protocol: a trained model (or a slice of one) is a feature extractor ----
    def fit(self, X: Any = None, y: Any = None) -> "Sequential":
        """A trained model needs no fitting as an extractor: returns self (train it with ``nk.train``)."""
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The features this chain computes for ``X`` (same as :meth:`predict`)."""
        return self.predict(X)

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-ready data: each layer by registry name with its config."""
        from . import registry

        return {"layers": [{"type": registry.layers.name_of(type(layer)), "config": layer.get_config()}
                           for layer in self.layers],
                "dtype": str(self.dtype)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        """A new model (fresh weights) from :meth:`get_config`'s output; layers resolve by registry name.

        A layer type no installed plugin registers is an ``UnknownNameError`` naming the layer and,
        for a first-party plugin's layer, the distribution to install.
        """
        from . import registry

        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("a model config must be a dict with a 'layers' list")
        layers = []
        for i, item in enumerate(config["layers"]):
            if not isinstance(item, dict) or "type" not in item:
                raise ValueError(f"layer {i} of the config must be a dict with a 'type', got {item!r}")
            try:
                layer_cls = registry.layers[item["type"]]
            except registry.UnknownNameError as exc:  # typically a plugin that is not installed here
                raise registry.UnknownNameError(f"layer {i} of the model config has the type {item['type']!r}, "
                                                f"which no plugin installed here registers: {exc}") from None
            layers.append(layer_cls.from_config(dict(item.get("config") or {})))
        return cls(layers, dtype=config.get("dtype"))
