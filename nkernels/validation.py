"""Argument and data checks: the one vocabulary that the core and every plugin check their inputs with.

Each check takes the value and the name of the argument it came from, returns the value in its
normal form (a Python ``int``, ``float`` or ``bool``, a NumPy dtype, a contiguous array) and
otherwise raises, before any kernel runs:

- a :class:`TypeError` when the value has the wrong type (``2.5`` or ``True`` for an integer,
  ``"0.1"`` for a number, ``1`` for a bool, an array of strings for data, ``int32`` for a float
  dtype);
- a :class:`ValueError` when it has the right type but lies out of range (``0`` where at least 1 is
  needed, NaN or infinity where a finite number is, a name that is not among the choices, data of
  the wrong shape or with NaN in it).

The message names the argument, says what was expected and shows what was given:

>>> from nkernels.validation import check_choice, check_int, check_number
>>> check_int(3, "epochs")
3
>>> check_int(0, "epochs")
Traceback (most recent call last):
    ...
ValueError: epochs must be at least 1, got 0
>>> check_int(2.5, "epochs")
Traceback (most recent call last):
    ...
TypeError: epochs must be an integer, got 2.5 (float)
>>> check_number(0.9, "momentum", low=0, high=1, high_open=True)
0.9
>>> check_number(float("nan"), "lr", low=0, low_open=True)
Traceback (most recent call last):
    ...
ValueError: lr must be a finite number above 0, got nan
>>> check_choice("adam", "optimizer", ("adam", "sgd"))
'adam'

A plugin layer checks its constructor's arguments as the built-in layers do::

    from nkernels.validation import check_bool, check_number

    class Scale(nk.layers.Layer):
        def __init__(self, factor: float = 1.0, bias: bool = False):
            self.factor = check_number(factor, "factor", low=0, low_open=True)
            self.use_bias = check_bool(bias, "bias")

and a scheme checks its ``fit`` arguments and data with :func:`check_fit_arguments`,
:func:`check_features`, :func:`check_same_length`, :func:`check_model_input` and
:func:`check_validation_data`, as the backprop scheme does.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, overload

import numpy as np

from .runtime import devices

__all__ = ["FLOAT_DTYPES", "as_numeric_array", "check_bool", "check_choice", "check_features", "check_fit_arguments",
           "check_float_dtype", "check_images", "check_int", "check_model_data", "check_model_input", "check_number", "check_pair",
           "check_rows", "check_same_length", "check_seed", "check_unlabelled_validation_data",
           "check_validation_data"]

#: the floating-point dtypes that layers, losses and models compute in
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_INTEGER_TYPES = (int, np.integer)
_NUMBER_TYPES = (int, float, np.integer, np.floating)
_Choice = TypeVar("_Choice")


def constructor_signature(cls: type) -> inspect.Signature:
    """``inspect.signature(cls)``, read once per class and constructor: reading it takes ~20 µs,
    and each ``nk.train`` checks the options of its scheme's and its optimizer's constructors."""
    return _constructor_signature(cls, cls.__init__, cls.__new__)  # type: ignore[misc]


@functools.lru_cache(maxsize=128)
def _constructor_signature(cls: type, init: Any, new: Any) -> inspect.Signature:
    return inspect.signature(cls)


def _given(value: Any) -> str:
    """``value`` as a message shows it: its repr (shortened) and, for a TypeError's sake, its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_integer(value: Any) -> bool:
    return isinstance(value, _INTEGER_TYPES) and not isinstance(value, (bool, np.bool_))


# -- scalar arguments ---------------------------------------------------------------------------
@overload
def check_int(value: Any, name: str, minimum: int = 1, *, allow_none: Literal[False] = False) -> int: ...


@overload
def check_int(value: Any, name: str, minimum: int = 1, *, allow_none: Literal[True]) -> int | None: ...


def check_int(value: Any, name: str, minimum: int = 1, *, allow_none: bool = False) -> int | None:
    """``value`` as a Python int of at least ``minimum`` (None passes through with ``allow_none``).

    A bool, a float (even ``3.0``) or a string is a TypeError; an int below ``minimum`` a
    ValueError. NumPy integers are accepted.
    """
    if value is None and allow_none:
        return None
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer{' or None' if allow_none else ''}, got {_given(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The range of :func:`check_number` in words: ``" above 0"``, ``" in [0, 1)"``, or ``""``."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'above' if low_open else 'at least'} {low:g}"
    if high is not None:
        return f" {'below' if high_open else 'at most'} {high:g}"
    return ""


@overload
def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, allow_none: Literal[False] = False) -> float: ...


@overload
def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, allow_none: Literal[True]) -> float | None: ...


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> float | None:
    """``value`` as a finite Python float between ``low`` and ``high`` (None passes through with ``allow_none``).

    ``low`` and ``high`` are inclusive bounds unless ``low_open``/``high_open`` (None: no bound).
    A bool or a string is a TypeError; NaN, infinity and numbers out of range are a ValueError.
    Ints and NumPy scalars are accepted.

    >>> check_number(1e-3, "lr", low=0, low_open=True)
    0.001
    >>> check_number(1.0, "corruption", low=0, high=1, high_open=True)
    Traceback (most recent call last):
        ...
    ValueError: corruption must be a finite number in [0, 1), got 1.0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _NUMBER_TYPES):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, got {_given(value)}")
    expected = f"{name} must be a finite number{_bounds(low, high, low_open, high_open)}"
    try:
        number = float(value)
    except OverflowError:  # an int beyond the range of floats
        raise ValueError(f"{expected}, got {_given(value)}") from None
    if not math.isfinite(number) \
            or (low is not None and (number < low or (low_open and number == low))) \
            or (high is not None and (number > high or (high_open and number == high))):
        raise ValueError(f"{expected}, got {number!r}")
    return number


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a Python bool; anything but True or False (``1``, ``"yes"``, None) is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_given(value)}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Sequence[_Choice]) -> _Choice:
    """``value`` if it is one of ``choices`` (usually names).

    A value of a type no choice has (a number where names are expected) is a TypeError; another
    value of the right type a ValueError. Both messages list the choices.

    >>> check_choice("elkan", "algorithm", ("lloyd", "minibatch"))
    Traceback (most recent call last):
        ...
    ValueError: algorithm must be one of 'lloyd', 'minibatch', got 'elkan'
    """
    expected = f"{name} must be one of {', '.join(map(repr, choices))}"
    if not isinstance(value, tuple({type(choice) for choice in choices})):
        raise TypeError(f"{expected}, got {_given(value)}")
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{expected}, got {value!r}")


def check_seed(value: Any, name: str = "seed") -> int | None:
    """A random seed: None (a fresh one each time) or an int of at least 0, as ``np.random.default_rng`` takes."""
    return check_int(value, name, minimum=0, allow_none=True)


def check_pair(value: Any, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int, or a pair (tuple or list) of ints, as a pair of Python ints each at least ``minimum``.

    This is how a size along two axes is given (``kernel_size=3`` or ``kernel_size=(3, 5)``).
    """
    expected = f"{name} must be an int or a pair of ints, each at least {minimum}"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{expected}, got {value!r}")
        if not all(_is_integer(v) for v in value):
            raise TypeError(f"{expected}, got {_given(value)}")
        if min(value) < minimum:
            raise ValueError(f"{expected}, got {value!r}")
        return int(value[0]), int(value[1])
    if not _is_integer(value):
        raise TypeError(f"{expected}, got {_given(value)}")
    size = check_int(value, name, minimum)
    return size, size


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """``dtype`` as a NumPy dtype, which must be float32 or float64; anything else is a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {_given(dtype)}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


# -- data ---------------------------------------------------------------------------------------
def as_numeric_array(x: Any, name: str = "input") -> np.ndarray:
    """``x`` as a NumPy array of numbers (float, int or unsigned; not copied when it is one).

    A GPU array (the data belongs on the CPU) or an array of anything but numbers is a TypeError.
    """
    if devices.is_device_array(x):
        raise TypeError(f"{name} is a GPU array but this layer is on the CPU; call model.to('cuda') "
                        f"first or pass a NumPy array")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers (float or int), got dtype {arr.dtype}")
    return arr


def check_features(X: Any, name: str = "X", dtype: Any = None) -> np.ndarray:
    """``X`` as a C-contiguous float array with samples on the first axis and at least one feature axis.

    The dtype is ``dtype``, or X's own when it is floating point (float32 otherwise). An empty
    ``X``, NaN or infinity, or values too large for the dtype are a ValueError. An integer
    ``dtype`` asks for indices: ``X`` must hold integers (a TypeError otherwise), never cast
    from floats.
    """
    arr = as_numeric_array(X, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have a sample axis and feature axes (at least 2-D), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); training needs at least one sample")
    if arr.size == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape})")
    if dtype is not None and np.dtype(dtype).kind in "iu":  # indices (an Embedding's tokens): never via floats
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype}; the model's first layer "
                            f"takes indices (cast whole-number data with X.astype(int))")
        return np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; clean or impute them first")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype or (arr.dtype if arr.dtype.kind == "f" else np.float32))
    if out.dtype != arr.dtype and not np.all(np.isfinite(out)):
        raise ValueError(f"{name} holds values too large for {out.dtype} (largest magnitude "
                         f"{float(np.abs(arr).max()):g}); rescale it first")
    return out


def check_model_data(model: Any, X: Any, name: str = "X") -> np.ndarray:
    """``X`` as ``model`` takes it: :func:`check_features` in the model's input dtype (its dtype, or
    integer indices when its first layer takes them), then the first layer's checks of the values
    (an Embedding's indices must be in range), so that no kernel ever reads out of bounds."""
    X = check_features(X, name, dtype=model.input_dtype)
    model.check_inputs(X, name)
    return X


def check_rows(X: Any, n_features: int | None = None, name: str = "X", dtype: Any = None) -> np.ndarray:
    """``X`` as :func:`check_features` gives it, which must be 2-D (samples, features).

    With ``n_features`` (the number an estimator was fitted on), X must have that many columns.
    """
    X = check_features(X, name, dtype)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the extractor was fitted on {n_features}")
    return X


def check_images(X: Any, shape: tuple[int, ...] | None = None, name: str = "X", dtype: Any = None) -> np.ndarray:
    """``X`` as :func:`check_features` gives it, which must be images (N, C, H, W).

    With ``shape`` (the (C, H, W) an estimator was fitted on), the images must have that shape.
    """
    X = check_features(X, name, dtype)
    if X.ndim != 4:
        raise ValueError(f"{name} must be images of shape (N, C, H, W), got shape {X.shape}; reshape flat "
                         f"vectors first (nk.datasets.load('digits', flat=False) gives (N, 1, 8, 8))")
    shape = None if shape is None else tuple(int(s) for s in shape)
    if shape is not None and tuple(X.shape[1:]) != shape:
        raise ValueError(f"{name} has images of shape {tuple(X.shape[1:])} but the extractor was fitted on "
                         f"{shape}")
    return X


def check_same_length(X: np.ndarray, y: Any, x_name: str = "X", y_name: str = "y") -> None:
    """Raise a ValueError unless ``y`` is given and has as many samples as ``X``."""
    if y is None:
        raise ValueError(f"{y_name} is required: this scheme learns from targets")
    n_y = len(y)
    if n_y != len(X):
        raise ValueError(f"{x_name} has {len(X)} samples but {y_name} has {n_y}; they must match")


def check_fit_arguments(epochs: Any, batch_size: Any) -> tuple[int, int]:
    """``epochs`` and ``batch_size``, the arguments of every scheme's ``fit``, as ints of at least 1."""
    return check_int(epochs, "epochs"), check_int(batch_size, "batch_size")


def check_model_input(model: Any, X: np.ndarray, name: str = "X") -> tuple[int, ...]:
    """Run one sample through the model (evaluation mode) so that shape errors surface now.

    Returns the output's shape for the whole of ``X``. The sample runs with Numba's kernels on the
    calling thread alone (:func:`nkernels.runtime.threads.one_kernel_thread`): a second thread gains
    nothing on one sample, and its OpenMP thread would then spin for milliseconds, taking a core
    from the split mode's halves that start next (the digits CNN's first 19 batches took 8.7 ms
    after a two-thread sample, 1.7 ms after a one-thread one).
    """
    from .runtime.threads import one_kernel_thread

    try:
        with one_kernel_thread():
            out = model.forward(X[:1], training=False)
    except ValueError as exc:
        raise ValueError(f"{name} of shape {X.shape} does not fit the model: {exc}") from None
    return (len(X),) + tuple(out.shape[1:])


def check_unlabelled_validation_data(validation_data: Any, model: Any, who: str) -> tuple[np.ndarray, None]:
    """``(X_val, None)`` for scheme ``who``, which learns from ``X`` alone: ``validation_data`` is
    ``X_val`` or the pair ``(X_val, None)``; labels ``y_val`` are refused (they would have no effect).
    ``X_val`` is checked as the training data is, and returned as a contiguous array of the model's dtype.
    """
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) != 2:
            raise ValueError(f"validation_data must be X_val or a pair (X_val, None), got a "
                             f"{type(validation_data).__name__} of {len(validation_data)} items")
        if validation_data[1] is not None:
            raise ValueError(f"{who} learns from X alone, so y_val would have no effect; pass validation_data="
                             f"(X_val, None) or X_val")
        validation_data = validation_data[0]
    X_val = check_model_data(model, validation_data, "X_val")
    check_model_input(model, X_val, "X_val")
    return X_val, None


def check_validation_data(validation_data: Any, model: Any, loss: Any) -> tuple[np.ndarray, Any]:
    """``(X_val, y_val)`` checked as the training data is, before training starts.

    Returns ``X_val`` as a contiguous array of the model's dtype and ``y_val`` as given; errors
    name ``X_val`` or ``y_val``. Anything but a tuple or list is a TypeError, one of another
    length a ValueError.
    """
    expected = "validation_data must be a pair (X_val, y_val)"
    if not isinstance(validation_data, (tuple, list)):
        raise TypeError(f"{expected}, got {type(validation_data).__name__}")
    if len(validation_data) != 2:
        raise ValueError(f"{expected}, got a {type(validation_data).__name__} of {len(validation_data)} items")
    X_val, y_val = validation_data
    X_val = check_model_data(model, X_val, "X_val")
    check_same_length(X_val, y_val, "X_val", "y_val")
    out_shape = check_model_input(model, X_val, "X_val")
    try:
        loss.prepare_targets(y_val, out_shape, model.dtype)
    except (TypeError, ValueError) as exc:
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"y_val: {exc}") from None
    return X_val, y_val
