"""Frozen: a fitted feature extractor as a layer, so that a trained head can sit on top of it."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..runtime import devices
from ..validation import as_numeric_array, check_float_dtype
from .base import Layer

#: the registry name under which a Frozen layer records a wrapped ``Sequential``
SEQUENTIAL = "sequential"
#: the most bytes of extractor state a Frozen config may ask for; a larger header is refused
#: before anything is allocated (a corrupt or hostile file)
MAX_STATE_BYTES = 1 << 34
#: the most axes a state array may have
MAX_STATE_NDIM = 32
#: the dtype kinds extractor state may have: bool, signed and unsigned integers, floats, complex
NUMERIC_KINDS = "biufc"


class Frozen(Layer):
    """Wraps a fitted extractor (anything with ``transform(X)``) as a layer with no trainable parameters.

    ``nk.Sequential([nk.layers.Frozen(kmeans), nk.layers.Dense(200, 10)])`` trains only the
    Dense head: Frozen has no ``params``, and its ``backward`` passes no gradient to its input
    (it returns zeros, as ``tensor.detach()`` would), so layers *below* a Frozen layer do not
    learn. Put Frozen layers first. A trained ``model[:k]`` can be frozen too.

    Saving (``nk.save``/``nk.load``) needs the extractor to be registered in
    ``nk.registry.extractors`` (a ``Sequential`` needs nothing) and to implement a small protocol:

    - ``get_config()``: its constructor arguments as JSON values, and ``from_config(config)``
      (a classmethod; ``cls(**config)`` when absent);
    - ``state_arrays()``: its fitted state as a dict of NumPy arrays, the very arrays its
      ``transform`` computes with (not copies); NotFittedError before ``fit``;
    - ``load_state_arrays(arrays)``: adopt those arrays, without copying, as its fitted state.

    The state travels as this layer's ``buffers``, the config in the model's JSON metadata, so
    loading never executes code. On load, the extractor is rebuilt from its config, given
    zero-filled arrays of the recorded shapes and dtypes, and the file's values are then written
    into those arrays in place: ``transform`` must therefore derive everything it needs from the
    state arrays when it runs, not cache it in ``load_state_arrays``.

    A copy of the model (:meth:`nkernels.Sequential.copy`, or ``copy.deepcopy``) holds a copy of
    the extractor made by ``copy.deepcopy``, fitted state included, and this layer's buffers are
    that copy's own state arrays; nothing is shared with the original. An extractor that holds
    something ``copy.deepcopy`` cannot copy (a lock, a client) defines ``__deepcopy__``.

    On the GPU (``model.to("cuda")``): a wrapped ``Sequential`` moves with the model (its weights, this
    layer's buffers, become device arrays); an extractor with a ``to(device)`` method is moved by it and
    handed device arrays, which its ``transform`` must accept and answer with device arrays (the
    k-means extractors of nkernels-kmeans do); any other extractor keeps computing on the host, each
    forward copying the input over and the features back.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, extractor: Any):
        if not callable(getattr(extractor, "transform", None)):
            raise TypeError(f"Frozen needs a fitted extractor with a transform(X) method, got {extractor!r}")
        self.extractor = extractor
        self.buffers.update(_state_buffers(extractor))

    def astype(self, dtype: Any) -> "Frozen":
        """Set the dtype of this layer's output. A wrapped Sequential is cast too (its weights are
        this layer's buffers); any other extractor keeps computing in its own precision, with its
        state arrays as they are."""
        self._dtype = check_float_dtype(dtype)
        if _is_sequential(self.extractor):
            self.extractor.astype(self._dtype)
            self.buffers = _state_buffers(self.extractor)
        return self

    def to(self, device: str) -> "Frozen":
        """Move the extractor's computation to ``device`` with the model (see the class docstring); returns self."""
        device = devices.check_device(device)
        if device == "cuda":
            devices.require_cuda()
        if _is_sequential(self.extractor):
            self.extractor.to(device)
            self.buffers = _state_buffers(self.extractor)
        elif callable(getattr(self.extractor, "to", None)):
            self.extractor.to(device)
        self.device = device
        self._saved = None
        return self

    def _device_transform(self, x):
        """The features of the device array ``x`` as a C-contiguous device array of this layer's dtype."""
        ext = self.extractor
        if _is_sequential(ext):
            out = ext.forward(x, training=False)
        elif callable(getattr(ext, "to", None)):
            out = ext.transform(x)
        else:  # a host-only extractor: the features are computed on the host
            out = as_numeric_array(ext.transform(devices.to_host(x)), f"{type(ext).__name__}.transform output")
            return devices.to_device(np.ascontiguousarray(out, dtype=self.dtype))
        if not devices.is_device_array(out):
            raise TypeError(f"{type(ext).__name__}.transform returned a {type(out).__name__} for a device array; "
                            f"an extractor with a to(device) method must answer device arrays with device arrays")
        out = devices.as_device_array(out)
        if np.dtype(out.dtype) != self.dtype or not out.is_c_contiguous():
            out = devices.to_device(np.ascontiguousarray(devices.to_host(out), dtype=self.dtype))
        return out

    # -- passes --------------------------------------------------------------------------------
    def forward(self, x, training=False):
        x = self.prepare_input(x)
        if self.device == "cuda":
            out = self._device_transform(x)
            if out.ndim < 1 or out.shape[0] != x.shape[0]:
                raise ValueError(f"{type(self.extractor).__name__}.transform returned shape {out.shape} for "
                                 f"{x.shape[0]} samples; it must return one row per sample")
            if training:
                self.save_for_backward(shape=x.shape, out_shape=tuple(out.shape))
            return out
        out = as_numeric_array(self.extractor.transform(x), f"{type(self.extractor).__name__}.transform output")
        if out.ndim < 1 or out.shape[0] != x.shape[0]:
            raise ValueError(f"{type(self.extractor).__name__}.transform returned shape {out.shape} for "
                             f"{x.shape[0]} samples; it must return one row per sample")
        if training:
            self.save_for_backward(shape=x.shape, out_shape=out.shape)
        return np.ascontiguousarray(out, dtype=self.dtype)

    def backward(self, dy):
        """Checks ``dy`` and returns zeros shaped as the input: no gradient flows through an extractor."""
        saved = self.saved_for_backward()
        self.prepare_grad_output(dy, saved["out_shape"])
        if self.device == "cuda":
            return devices.zeros(saved["shape"], self.dtype, "cuda")
        return np.broadcast_to(np.zeros((), self.dtype), saved["shape"])

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The extractor by registry name, its config, and the shapes and dtypes of its state arrays."""
        ext = self.extractor
        if _is_sequential(ext):
            name, config = SEQUENTIAL, ext.get_config()
        else:
            from .. import registry

            missing = [m for m in ("get_config", "state_arrays", "load_state_arrays")
                       if not callable(getattr(ext, m, None))]
            if missing:
                raise TypeError(f"a Frozen {type(ext).__name__} cannot be saved: the extractor implements no "
                                f"{', '.join(missing)} (see nk.layers.Frozen for the protocol)")
            name, config = registry.extractors.name_of(type(ext)), ext.get_config()
        state = {k[len("state."):]: {"shape": list(v.shape), "dtype": v.dtype.str}
                 for k, v in self.buffers.items()}
        return {"extractor": name, "config": config, "state": state}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Frozen":
        """A Frozen layer around an extractor rebuilt from :meth:`get_config`'s output (state zero-filled).

        The recorded shapes and dtypes are checked before anything is allocated: a ValueError names
        the entry whose shape is not a list of ints >= 0 or whose dtype is not numeric, or says the
        total exceeds :data:`MAX_STATE_BYTES`.
        """
        from .. import registry
        from ..model import Sequential

        if not isinstance(config, dict) or not isinstance(config.get("extractor"), str) \
                or not isinstance(config.get("state", {}), dict):
            raise ValueError(f"a Frozen config must be a dict with an 'extractor' name and a 'state' dict, "
                             f"got {config!r}")
        specs = {key: _state_spec(key, spec) for key, spec in config.get("state", {}).items()}
        total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in specs.values())  # Python ints: no overflow
        if total > MAX_STATE_BYTES:
            raise ValueError(f"a Frozen config asks for {total:,} bytes of extractor state, more than "
                             f"nkernels.layers.frozen.MAX_STATE_BYTES ({MAX_STATE_BYTES:,}); a corrupt file? "
                             f"Raise that limit if the extractor really is this large")
        name, ext_config = config["extractor"], dict(config.get("config") or {})
        if name == SEQUENTIAL:
            extractor = Sequential.from_config(ext_config)
            layer = cls(extractor)  # its buffers are the model's own arrays, which the loader fills
            if set(layer.buffers) != {f"state.{k}" for k in specs}:
                raise ValueError("the state entries of a frozen Sequential do not match its architecture")
            for key, (shape, dtype) in specs.items():
                own = layer.buffers[f"state.{key}"]
                if own.shape != shape or own.dtype != dtype:
                    raise ValueError(f"the Frozen state entry {key!r} records {dtype} of shape {shape}, but the "
                                     f"frozen Sequential's array is {own.dtype} of shape {own.shape}")
            return layer
        state = {key: np.zeros(shape, dtype) for key, (shape, dtype) in specs.items()}
        ext_cls = registry.extractors[name]
        build = getattr(ext_cls, "from_config", None)
        extractor = build(ext_config) if callable(build) else ext_cls(**ext_config)
        extractor.load_state_arrays(state)
        return cls(extractor)

    def __repr__(self) -> str:
        return f"Frozen({self.extractor!r})"


def _state_buffers(extractor: Any) -> dict[str, np.ndarray]:
    """The extractor's fitted state as a Frozen layer's buffers (``state.<name>``), the very arrays it computes with."""
    if _is_sequential(extractor):
        state = {**{f"params.{k}": v for k, v in extractor.params.items()},
                 **{f"buffers.{k}": v for k, v in extractor.buffers.items()}}
    elif callable(getattr(extractor, "state_arrays", None)):
        state = extractor.state_arrays()  # NotFittedError for an extractor that was never fitted
        if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
            raise TypeError(f"{type(extractor).__name__}.state_arrays() must return a dict of NumPy arrays")
    else:
        state = {}  # usable for training and inference; get_config says why it cannot be saved
    return {f"state.{k}": v for k, v in state.items()}


def _state_spec(key: str, spec: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a Frozen config records for state array ``key``, checked before anything is
    allocated: a list of ints >= 0 and a numeric dtype (never an object or structured one)."""
    where = f"the Frozen state entry {key!r}"
    if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) or not isinstance(spec.get("dtype"), str):
        raise ValueError(f"{where} must be {{'shape': [ints], 'dtype': str}}, got {spec!r}")
    shape = spec["shape"]
    if len(shape) > MAX_STATE_NDIM or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise ValueError(f"{where} has shape {shape!r}; a shape is a list of at most {MAX_STATE_NDIM} ints >= 0")
    try:
        dtype = np.dtype(spec["dtype"])
    except (TypeError, ValueError):
        raise ValueError(f"{where} has dtype {spec['dtype']!r}, which is not a NumPy dtype") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"{where} has dtype {spec['dtype']!r}; extractor state must be numeric "
                         f"(bool, integer, float or complex)")
    return tuple(shape), dtype


def _is_sequential(obj: Any) -> bool:
    from ..model import Sequential

    return isinstance(obj, Sequential)
