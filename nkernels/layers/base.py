"""The Layer base class: parameters, gradients, shapes, config, and the hook into the compiled path."""
from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

from ..runtime import devices
from ..runtime.threads import kernel_threads
from ..errors import NotFittedError
from ..plugins.kernels import kernel
from ..passes.interpret import Frame, refs, run
from ..passes.ir import VIEW, LayerPasses, calls_of
from ..validation import FLOAT_DTYPES, as_numeric_array, check_float_dtype


class Layer:
    """Base class of every layer, built-in or plugin.

    A layer holds ``params`` and ``grads``, two dicts of arrays with the same keys, and
    ``buffers``, state that is not trained but must survive a checkpoint (a random-number
    counter, running statistics). It implements ``forward(x, training=False)`` and
    ``backward(dy) -> dx``. ``backward`` follows a ``forward`` with ``training=True`` and
    *overwrites* ``grads``.

    ``get_config`` returns the constructor's arguments, recorded automatically when the layer
    is created, and ``from_config`` calls the constructor with them; a layer whose arguments
    are not JSON values (numbers, strings, lists, dicts) overrides both.

    A layer describes its passes once, as kernel calls on symbolic operands, by returning a
    :class:`~nkernels.passes.LayerPasses` from :meth:`passes`: the default :meth:`forward` and
    :meth:`backward` run those calls, and a :class:`~nkernels.Sequential` of such layers runs
    whole training steps in one compiled call rendered from the same description. A layer may
    instead implement ``forward`` and ``backward`` in Python; it is then driven one call at a
    time.

    ``device`` is ``"cpu"`` or ``"cuda"``; :meth:`to` moves the parameters. A layer lists the
    devices it has kernels for in ``supported_devices``. Written with :meth:`kernel_of`,
    :meth:`empty`, :meth:`prepare_input` and :meth:`prepare_grad_output`, one forward and
    backward serve both devices. On CUDA a layer takes NumPy arrays (copied over) or GPU arrays
    and returns device arrays.
    """

    #: the devices this layer has kernels for; built-in layers have both
    supported_devices: tuple[str, ...] = ("cpu",)
    #: None for layers that take floats (in the model's dtype); an integer dtype for layers that
    #: take indices (an Embedding's tokens), which reach them as integers on every path
    input_dtype: Any = None
    #: whether a sample's output depends on the other samples of its batch (BatchNorm's batch
    #: statistics): the compiled trainer's split mode, which computes two half batches apart, is
    #: then off for a model holding the layer
    couples_batch: bool = False
    #: set per instance in ``__new__`` (so subclasses need not call a base constructor)
    params: dict[str, Any]
    grads: dict[str, Any]
    buffers: dict[str, Any]
    device: str
    _saved: dict[str, Any] | None
    _dtype: np.dtype
    _init_arguments: dict[str, Any] | None

    def __new__(cls, *args: Any, **kwargs: Any):
        layer = super().__new__(cls)
        layer.params = {}
        layer.grads = {}
        layer.buffers = {}
        layer.device = "cpu"
        layer._saved = None
        layer._dtype = np.dtype(np.float32)
        layer._init_arguments = _bind_arguments(cls, args, kwargs)
        return layer

    # -- the pass interface -------------------------------------------------------------------
    def passes(self, input_shape: tuple[int, ...]) -> "LayerPasses | None":
        """The layer's passes at ``input_shape`` (batch first), described once as kernel calls.

        Returning a :class:`~nkernels.passes.LayerPasses` gives the layer both paths from one
        description: :meth:`forward` and :meth:`backward` run its calls one at a time, and the
        compiled training step renders them. The calls may depend on the sample shape but not on
        the batch size (only workspace shapes may). Layers that write :meth:`forward` and
        :meth:`backward` in Python instead return None (the default) and train layer by layer.
        """
        return None

    def check_input_values(self, x: np.ndarray, what: str) -> None:
        """Check the values of an input before any kernel reads it (an Embedding's indices must be
        in range); the layer-by-layer path checks every batch, training checks the whole data
        once. Raises a ValueError naming ``what``; the default checks nothing."""

    def check_training_shape(self, input_shape: tuple[int, ...]) -> None:
        """Refuse, with a ValueError, an input shape that training cannot use although evaluation
        can (BatchNorm needs more than one value per channel), before any kernel runs: every
        training forward and the compiled trainer, at each batch size, call it. The default
        accepts any shape."""

    def scalars(self) -> dict[str, float]:
        """The values of the :class:`~nkernels.passes.Scalar` operands of the passes, by name."""
        return {}

    @property
    def described(self) -> bool:
        """Whether the layer describes its passes (:meth:`passes`) rather than coding them."""
        return type(self).passes is not Layer.passes

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The layer's output for the batch ``x``; with ``training=True``, remember what backward needs.

        The default runs the calls of :meth:`passes`: the training forward, or in evaluation
        the inference pass.
        """
        if not self.described:
            raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training=False) "
                                      f"or describe its passes with passes(input_shape)")
        x = self.prepare_input(x)
        out_shape = tuple(self.output_shape(tuple(x.shape)))
        if training:
            self.check_training_shape(tuple(x.shape))
        passes = self.passes(tuple(x.shape))
        assert passes is not None  # a described layer always describes
        calls = passes.forward if training else passes.evaluation
        frame = self._frame(x, passes, calls if not training else None)
        if calls is VIEW:
            y = x.reshape(out_shape)
        else:
            y = frame.arrays["y"] = self.empty(out_shape, self._compute_dtype(x))
            with kernel_threads(self.device):
                run(calls_of(calls), frame, self.kernel_of)
        if training:
            self._saved = {"passes": passes, "frame": frame, "x": x, "out_shape": out_shape, "fresh": True}
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray:
        """Given the gradient of the loss w.r.t. the output, fill ``grads`` and return the input's gradient.

        The default runs the backward calls of :meth:`passes`. ``need_dx=False`` tells kernels
        that can skip the input's gradient to skip it (the first layer's is never used in
        training); the returned array is then undefined.
        """
        if not self.described:
            raise NotImplementedError(f"{type(self).__name__} must implement backward(dy)")
        saved = self.saved_for_backward()
        dy = self.prepare_grad_output(dy, saved["out_shape"])
        x, passes, frame = saved["x"], saved["passes"], saved["frame"]
        if passes.backward is VIEW:
            return dy.reshape(x.shape)
        frame.arrays["dy"] = dy
        dx = frame.arrays["dx"] = self.empty(x.shape, self._compute_dtype(x))
        frame.specials.update(need_dx=bool(need_dx), fresh=saved["fresh"])
        with kernel_threads(self.device):
            run(calls_of(passes.backward), frame, self.kernel_of)
        saved["fresh"] = False  # the kernels may have reused the forward's workspaces
        return dx

    def _compute_dtype(self, x: Any) -> np.dtype:
        """The float dtype the passes compute in: the input's, or the layer's for integer inputs."""
        return self.dtype if self.input_dtype is not None else x.dtype

    def _frame(self, x, passes: "LayerPasses", only: Any = None) -> Frame:
        """The operands of this layer's passes on input ``x``: parameters, gradients, buffers and
        fresh workspaces (only those ``only``'s calls use, when given: evaluation needs fewer)."""
        used = None if only is None else refs(calls_of(only), "work")
        arrays: dict[Any, Any] = {"x": x}
        arrays.update({("param", k): v for k, v in self.params.items()})
        arrays.update({("grad", k): v for k, v in self.grads.items()})
        arrays.update({("buffer", k): v for k, v in self.buffers.items()})
        for name, space in passes.workspaces.items():
            if used is None or name in used:
                shape = tuple(x.shape) if space.shape == "input" else space.shape
                arrays[("work", name)] = self.empty(shape, self._compute_dtype(x) if space.dtype is None else space.dtype)
        return Frame(arrays, self.scalars(), {"step": 0, "need_dx": True, "fresh": True, "index": 0})

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for an input of ``input_shape`` (batch dimension first).

        The default runs a forward pass on a batch of one; built-in layers compute it directly.
        """
        probe = np.zeros((1,) + tuple(input_shape[1:]), dtype=self.dtype)
        return (input_shape[0],) + self.forward(probe).shape[1:]

    # -- parameters and buffers ----------------------------------------------------------------
    def add_parameter(self, name: str, shape: tuple[int, ...]) -> Any:
        """Declare the trainable parameter ``name`` of ``shape``, with its gradient (zeros, in the
        layer's dtype); returns it. :meth:`reset_parameters` draws its values, :meth:`astype` and
        :meth:`to` cast and move it, and saves, loads, copies and checkpoints carry it by name."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a parameter name must be an identifier, got {name!r}")
        shape = tuple(int(s) for s in shape)
        self.params[name] = devices.zeros(shape, self.dtype, self.device)
        self.grads[name] = devices.zeros(shape, self.dtype, self.device)
        return self.params[name]

    def add_buffer(self, name: str, value: Any) -> np.ndarray:
        """Declare the buffer ``name``: state that is not trained but decides the numbers (running
        statistics, a random-number counter), kept on the host; returns it. Saves, loads, copies
        and checkpoints carry it; :meth:`astype` casts it when it holds floats."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a buffer name must be an identifier, got {name!r}")
        self.buffers[name] = np.ascontiguousarray(value)
        return self.buffers[name]

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw fresh initial parameters from ``rng`` (layers without parameters do nothing)."""

    def fill_uniform(self, rng: np.random.Generator, bound: float) -> None:
        """Draw every parameter from U(-bound, bound) (PyTorch's default initializations) and zero the grads."""
        for value in self.params.values():  # (assigning casts the draw as astype would, without its copy)
            devices.assign(value, rng.uniform(-bound, bound, value.shape))
        self.zero_grads()

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (without its weights)."""
        if self._init_arguments is None:
            raise NotImplementedError(
                f"{type(self).__name__} cannot record its constructor arguments; implement "
                f"get_config() and from_config()")
        return dict(self._init_arguments)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        """A new layer built from :meth:`get_config`'s output."""
        return cls(**config)

    # -- dtype and device ----------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of the parameters (float32 unless cast)."""
        for value in self.params.values():
            return value.dtype
        return self._dtype

    def astype(self, dtype: Any) -> "Layer":
        """Cast parameters, gradients and floating-point buffers (running statistics, say) to
        ``dtype`` (float32 or float64) in place; integer buffers (counters) keep theirs. Returns self."""
        dt = check_float_dtype(dtype)
        self._dtype = dt
        for name in list(self.params):
            host = np.ascontiguousarray(devices.to_host(self.params[name]), dtype=dt)
            self.params[name] = devices.move(host, self.device)
        for name, value in list(self.buffers.items()):
            if np.asarray(value).dtype.kind == "f":
                self.buffers[name] = np.ascontiguousarray(value, dtype=dt)
        self.zero_grads()
        return self

    def to(self, device: str) -> "Layer":
        """Move the parameters and gradients to ``device`` (``"cpu"`` or ``"cuda"``); returns self.

        Buffers (counters, small state) stay on the host. A DeviceUnavailableError says why when
        no GPU is usable, and a ValueError when the layer has no kernels for ``device``.
        """
        device = devices.check_device(device)
        if device not in self.supported_devices:
            raise ValueError(f"{type(self).__name__} has no {device.upper()} kernels (it supports "
                             f"{', '.join(self.supported_devices)})")
        if device == "cuda":
            devices.require_cuda()
        for name in list(self.params):
            self.params[name] = devices.move(self.params[name], device)
            self.grads[name] = devices.move(self.grads[name], device)
        self.device = device
        self._saved = None
        return self

    def zero_grads(self) -> None:
        """Set every gradient to zero."""
        for name, value in self.params.items():
            self.grads[name] = devices.zeros(value.shape, value.dtype, self.device)

    # -- device-neutral helpers for passes ------------------------------------------------------
    def kernel_of(self, op: str):
        """The kernel of ``op`` on this layer's device."""
        return kernel(op, self.device)

    def empty(self, shape: tuple[int, ...], dtype: Any = None):
        """An uninitialized output array on this layer's device (of the layer's dtype by default)."""
        return devices.empty(shape, self.dtype if dtype is None else dtype, self.device)

    # -- helpers for subclasses (plugin layers use them too) ------------------------------------
    def prepare_input(self, x: Any, feature_shape: tuple | None = None, ndim: int | None = None) -> np.ndarray:
        """Validate ``x`` and return it as a C-contiguous array of this layer's dtype.

        ``feature_shape`` is the expected shape after the batch dimension (``None`` entries match
        any size); ``ndim`` alone checks only the number of dimensions. On CUDA, a NumPy array is
        validated and copied over, and a GPU array is used without a copy (it must be
        C-contiguous and of the layer's dtype).
        """
        what = f"{type(self).__name__} input"
        if self.input_dtype is not None:
            return self._prepare_indices(x, what)
        if self.device == "cuda" and devices.is_device_array(x):
            arr = _device_input(x, what, self.dtype if self.params else None)
        else:
            arr = as_numeric_array(x, what)
        if feature_shape is not None:
            fits = arr.ndim == len(feature_shape) + 1 and all(
                e is None or e == a for e, a in zip(feature_shape, arr.shape[1:]))
            if not fits:
                want = ", ".join("*" if e is None else str(e) for e in feature_shape)
                raise ValueError(f"{self!r} expects input of shape (N, {want}), got {arr.shape}")
        elif ndim is not None and arr.ndim != ndim:
            raise ValueError(f"{self!r} expects input with {ndim} dimensions, got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{self!r} got an empty batch (shape {arr.shape})")
        if devices.is_device_array(arr):
            return arr
        dtype = self.dtype if self.params or arr.dtype not in FLOAT_DTYPES else arr.dtype
        return devices.move(np.ascontiguousarray(arr, dtype=dtype), self.device)

    def _prepare_indices(self, x: Any, what: str) -> Any:
        """Integer inputs (``input_dtype``): never cast from floats, checked by
        :meth:`check_input_values` before any kernel reads them, in the layer's ``input_dtype``.

        A GPU array (a device trainer's batch of data checked as a whole before training) must
        already be of ``input_dtype`` and is used as it is: checking its values would copy it to
        the host each batch, so the layer's kernels guard against bad indices themselves."""
        if self.device == "cuda" and devices.is_device_array(x):
            arr = devices.as_device_array(x)
            if np.dtype(arr.dtype) != np.dtype(self.input_dtype):
                raise TypeError(f"{what} is a {arr.dtype} GPU array; this layer takes {np.dtype(self.input_dtype)} "
                                f"indices (GPU arrays are used without a copy: cast them on the device first)")
            if arr.ndim == 0 or arr.shape[0] == 0:
                raise ValueError(f"{self!r} got an empty batch (shape {arr.shape})")
            if arr.size and not arr.is_c_contiguous():
                raise ValueError(f"{what} must be a C-contiguous GPU array")
            return arr
        host = devices.to_host(x) if devices.is_device_array(x) else as_numeric_array(x, what)
        if host.dtype.kind not in "iu":
            raise TypeError(f"{what} must hold integer indices, got dtype {host.dtype}")
        if host.ndim == 0 or host.shape[0] == 0:
            raise ValueError(f"{self!r} got an empty batch (shape {host.shape})")
        self.check_input_values(host, what)
        return devices.move(np.ascontiguousarray(host, dtype=self.input_dtype), self.device)

    def prepare_grad_output(self, dy: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Validate the gradient handed to backward against the output shape of the last forward."""
        what = f"{type(self).__name__} output gradient"
        if self.device == "cuda" and devices.is_device_array(dy):
            arr = _device_input(dy, what, self.dtype if self.params else None)
        else:
            arr = as_numeric_array(dy, what)
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{self!r} backward expects a gradient of shape {shape}, got {arr.shape}")
        if devices.is_device_array(arr):
            return arr
        return devices.move(np.ascontiguousarray(arr, dtype=self.dtype if self.params else
                                                 (arr.dtype if arr.dtype in FLOAT_DTYPES else np.float32)),
                            self.device)

    def save_for_backward(self, **state: Any) -> None:
        """Keep arrays a training-mode forward computed, for :meth:`saved_for_backward`."""
        self._saved = state

    def saved_for_backward(self) -> dict[str, Any]:
        """What the last :meth:`save_for_backward` kept; a clear error if forward never ran."""
        if self._saved is None:
            raise NotFittedError(f"{self!r}: backward() called before forward(x, training=True)")
        return self._saved

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except Exception:
            args = ""
        return f"{type(self).__name__}({args})"


def _device_input(x: Any, what: str, dtype: np.dtype | None):
    """A GPU array as a numba device array after checking it: C-contiguous, float32/float64, and
    ``dtype`` when given (a GPU array is never converted, so a mismatch is an error)."""
    arr = devices.as_device_array(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{what} on the GPU must be float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{what} is a {arr.dtype} GPU array but the layer is {dtype}; cast it on the "
                        f"device first (GPU arrays are used without a copy)")
    if arr.size and not arr.is_c_contiguous():
        raise ValueError(f"{what} must be a C-contiguous GPU array")
    return arr


@functools.lru_cache(maxsize=None)
def _signature(init: Any) -> inspect.Signature:
    """The signature of a constructor, once per function: reading it costs ~70 µs for one that
    Python has only as text (``object.__init__`` of a layer without its own), each time a model is built."""
    return inspect.signature(init)


def _bind_arguments(cls: type, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """The constructor call's arguments by name, or None when they cannot be recorded."""
    try:
        signature = _signature(cls.__init__)  # type: ignore[misc]
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    recorded: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if i == 0:  # self
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        elif kind is inspect.Parameter.VAR_KEYWORD:
            recorded.update(value)
        else:
            recorded[name] = value
    return recorded
