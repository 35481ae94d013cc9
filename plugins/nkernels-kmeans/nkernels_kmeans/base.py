"""What every extractor of this plugin shares: the scikit-learn shape and the state protocol.

The state protocol is the one :class:`nkernels.layers.Frozen` uses to save an extractor inside a
model: ``get_config()`` (constructor arguments as JSON values), ``from_config(config)``,
``state_arrays()`` (the fitted arrays themselves) and ``load_state_arrays(arrays)``.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from nkernels.errors import NotFittedError
from nkernels.runtime import devices
from nkernels.validation import check_images

ENCODINGS = ("triangle", "hard")


class Extractor:
    """Base class: records the constructor arguments and keeps the fitted state as named arrays.

    A subclass's ``fit`` ends with :meth:`_set_state`, and ``transform`` reads ``self._state``
    (after :meth:`_check_fitted`); :meth:`_state_names` lists the names a fitted state has, given
    the constructor arguments, so that a loaded state can be checked against the config.
    """

    #: the device the extractor computes on with its model (:meth:`to`)
    device = "cpu"

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        obj._config = dict(list(bound.arguments.items())[1:])
        obj._state = None
        return obj

    # -- the state protocol -------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON values) that rebuild this extractor, unfitted."""
        return _jsonable(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Extractor":
        """A new, unfitted extractor from :meth:`get_config`'s output."""
        return cls(**config)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_arrays`) has run."""
        return self._state is not None

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state: the arrays ``transform`` computes with (not copies)."""
        self._check_fitted()
        return dict(self._state)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> "Extractor":
        """Adopt ``arrays`` (as from :meth:`state_arrays`) as the fitted state, without copying; returns self."""
        expected = set(self._state_names(arrays))
        missing, unexpected = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__} state arrays do not match its config: missing {missing}, "
                             f"unexpected {unexpected}")
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"state array {name!r} must be a NumPy array, got {type(value).__name__}")
        self._state = dict(arrays)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X, y).transform(X)``."""
        return self.fit(X, y).transform(X)

    # -- for subclasses ------------------------------------------------------------------------
    def _state_names(self, arrays: dict[str, np.ndarray]) -> list[str]:
        """The names a fitted state must have (``arrays`` is the state offered, for names that vary)."""
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def _transform_images(self, X: Any, dtype_key: str) -> np.ndarray:
        """``transform`` of the image extractors: ``X`` checked against the fitted image shape and cast
        to the dtype of the state array ``dtype_key``, then ``self._features`` (standardized if asked).
        A device array is transformed on the GPU (:meth:`_transform_images_on_device`)."""
        from nkernels.runtime.threads import blas_single_threaded

        self._check_fitted()
        if devices.is_device_array(X):
            return self._transform_images_on_device(X)
        X = check_images(X, tuple(self._state["image_shape"]))
        X = np.ascontiguousarray(X, dtype=self._state[dtype_key].dtype)
        with blas_single_threaded():
            features = self._features(X, self._state)  # type: ignore[attr-defined]
        return standardize(features, self._state) if self.standardize else features  # type: ignore[attr-defined]

    def _transform_images_on_device(self, X: Any) -> Any:
        """The features of the device images ``X`` (N, C, H, W), computed on the GPU in X's dtype (a numba
        device array): ``self._device_features`` (:mod:`nkernels_kmeans.patches_cuda`), standardized if asked."""
        from . import cuda
        from .patches_cuda import DevicePatches

        X = devices.as_device_array(X, "X")
        shape = tuple(int(v) for v in self._state["image_shape"])
        if X.ndim != 4 or tuple(X.shape[1:]) != shape or not X.is_c_contiguous() or np.dtype(X.dtype).kind != "f":
            raise ValueError(f"images on the GPU must be a C-contiguous float array (N, {', '.join(map(str, shape))}), "
                             f"got {X.dtype} of shape {tuple(X.shape)}")
        if "_device_patches" not in vars(self):
            self._device_patches = DevicePatches()
        gpu = self._device_patches
        coders = gpu.coders(self._state, self._coder_prefixes(), X.dtype)
        features = self._device_features(X, coders, gpu)  # type: ignore[attr-defined]
        if self.standardize:  # type: ignore[attr-defined]
            cuda.standardize(features, coders["feature_mean"], coders["feature_std"])
        return features

    def _coder_prefixes(self) -> list[str]:
        """The prefixes of the coders' state arrays (image extractors)."""
        raise NotImplementedError

    def to(self, device: str) -> "Extractor":
        """Record the device the extractor computes on with its model (``"cpu"`` or ``"cuda"``; ``nk.layers.Frozen``
        calls this); returns self. ``transform`` computes wherever its input lives, so a fitted extractor needs
        no move; :class:`~nkernels_kmeans.KMeans` runs its later Lloyd fits on this device."""
        device = devices.check_device(device)
        if device == "cuda":
            devices.require_cuda()
        self.device = device
        return self

    def _check_fitted(self) -> None:
        if self._state is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items() if not isinstance(v, np.ndarray))
        return f"{type(self).__name__}({args})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def feature_statistics(features: np.ndarray) -> dict[str, np.ndarray]:
    """The per-feature mean and standard deviation (1 where a feature is constant) of training features."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0
    return {"feature_mean": mean.astype(features.dtype), "feature_std": std.astype(features.dtype)}


def standardize(features: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
    """``features`` standardized in place with :func:`feature_statistics` from ``state``; returns them."""
    features -= state["feature_mean"]
    features /= state["feature_std"]
    return features
