"""The ``kmeans`` extractor: k-means on flat vectors, and their triangle or hard codes."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.runtime import devices
from nkernels.validation import check_bool, check_choice, check_int, check_number, check_rows, check_seed

from .base import ENCODINGS, Extractor, feature_statistics, standardize

ALGORITHMS = ("lloyd", "minibatch")
INITS = ("k-means++", "random")


class KMeans(Extractor):
    """k-means clustering as a feature extractor (Coates, Lee and Ng 2011), registered as ``"kmeans"``.

    ``fit(X)`` learns ``n_clusters`` centroids of the rows of X (n, d): k-means++ initialization
    (or ``init="random"`` rows, or an array (k, d)), then Lloyd iterations (``algorithm="lloyd"``)
    or mini-batches of ``batch_size`` rows for large data (``"minibatch"``; ``max_iter`` then
    counts passes over the data). ``spherical=True`` clusters the directions of the rows: rows
    and centroids are scaled to unit length, so the nearest centroid is the most cosine-similar.

    ``transform(X)`` returns the codes (n, k): ``encoding="triangle"`` gives
    ``max(0, mean_j z_j - z_k)`` with ``z_k`` the distance to centroid k, ``"hard"`` a one-hot
    of the nearest centroid. ``standardize=True`` also scales each code to zero mean and unit
    variance over the training rows, which helps a linear head.

    After ``fit``: ``cluster_centers_``, ``labels_``, ``inertia_`` (sum of squared distances),
    ``n_iter_`` and ``objective_history_`` (the objective at every assignment step). The same
    ``seed`` gives the same centroids (for a given number of Numba threads).

    On the GPU: ``transform`` of a device array (numba, CuPy, a PyTorch CUDA tensor) computes the codes
    there and returns a numba device array (:mod:`nkernels_kmeans.cuda`), and after ``to("cuda")`` a
    Lloyd ``fit`` runs its assignment steps there. ``nk.layers.Frozen(km)`` moves with its model
    (``model.to("cuda")``).

    Example::

        km = KMeans(200, seed=0).fit(X)
        model = nk.Sequential([nk.layers.Frozen(km), nk.layers.Dense(200, 10)])
    """

    def __init__(self, n_clusters: int = 8, init: Any = "k-means++", max_iter: int = 300, tol: float = 1e-4,
                 algorithm: str = "lloyd", batch_size: int = 1024, spherical: bool = False,
                 encoding: str = "triangle", standardize: bool = False, seed: int | None = None):
        self.n_clusters = check_int(n_clusters, "n_clusters")
        if isinstance(init, (list, tuple, np.ndarray)):
            init = np.asarray(init)
            if init.ndim != 2 or init.shape[0] != self.n_clusters or init.dtype.kind not in "fiu" \
                    or not np.all(np.isfinite(init)):
                raise ValueError(f"init as an array must hold {self.n_clusters} finite centroids (k, d), got "
                                 f"shape {init.shape}")
        else:
            check_choice(init, "init", INITS)
        self.init = init
        self.max_iter = check_int(max_iter, "max_iter")
        self.tol = check_number(tol, "tol", low=0)
        self.algorithm = check_choice(algorithm, "algorithm", ALGORITHMS)
        self.batch_size = check_int(batch_size, "batch_size")
        self.spherical = check_bool(spherical, "spherical")
        self.encoding = check_choice(encoding, "encoding", ENCODINGS)
        self.standardize = check_bool(standardize, "standardize")
        self.seed = check_seed(seed)

    #: where ``fit`` runs its Lloyd assignment steps (:meth:`to`)
    # -- fitting --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Learn the centroids of the rows of ``X`` (n, d); ``y`` is ignored. Returns self."""
        from nkernels.runtime.threads import blas_single_threaded

        from . import lloyd

        if devices.is_device_array(X):
            X = devices.to_host(X)  # k-means++ and the updates run on the host
        X = check_rows(X)
        if self.device == "cuda" and self.algorithm == "minibatch":
            raise ValueError("mini-batch k-means has no GPU path (its batches are too small to pay for one); "
                             "fit with algorithm='lloyd' on 'cuda', or move the extractor to 'cpu' (to('cpu'))")
        if len(X) < self.n_clusters:
            raise ValueError(f"n_clusters={self.n_clusters} needs at least as many samples, got {len(X)}")
        if isinstance(self.init, np.ndarray) and self.init.shape[1] != X.shape[1]:
            raise ValueError(f"init centroids have {self.init.shape[1]} features but X has {X.shape[1]}")
        rng = np.random.default_rng(self.seed)
        with blas_single_threaded():
            data = lloyd.normalize_rows(X) if self.spherical else X
            if self.algorithm == "minibatch" and not isinstance(self.init, np.ndarray):
                # as scikit-learn's MiniBatchKMeans: initialize on a subsample of 3 batches
                size = min(len(data), max(3 * self.batch_size, self.n_clusters))
                sample = data[np.sort(rng.choice(len(data), size, replace=False))]
                centroids = lloyd.initial_centroids(sample, self.n_clusters, self.init, rng)
            else:
                centroids = lloyd.initial_centroids(data, self.n_clusters, self.init, rng)
            if self.spherical:
                centroids = lloyd.normalize_rows(centroids)
            if self.algorithm == "lloyd":
                step = None
                if self.device == "cuda":
                    from .cuda import LloydStep

                    step = LloydStep(data, self.n_clusters, self.spherical)
                result = lloyd.lloyd(data, centroids, self.max_iter, self.tol, self.spherical, step)
            else:
                result = lloyd.minibatch(data, centroids, self.batch_size, self.max_iter, self.tol, rng,
                                         self.spherical)
            state = {"centroids": result.centroids}
            if self.standardize:
                state.update(feature_statistics(self._encode(data, result.centroids)))
        self._set_state(state)
        self.labels_, self.inertia_, self.n_iter_ = result.labels, result.inertia, result.n_iter
        self.objective_history_ = result.history
        return self

    # -- using it -------------------------------------------------------------------------------
    @property
    def cluster_centers_(self) -> np.ndarray:
        """The centroids (k, d), as scikit-learn names them."""
        self._check_fitted()
        return self._state["centroids"]

    def transform(self, X: Any) -> np.ndarray:
        """The codes (n, k) of the rows of ``X`` (n, d), in the dtype of the centroids."""
        from nkernels.runtime.threads import blas_single_threaded

        from . import lloyd

        self._check_fitted()
        if devices.is_device_array(X):
            return self._transform_device(X)
        centroids = self._state["centroids"]
        X = np.ascontiguousarray(check_rows(X, centroids.shape[1]), dtype=centroids.dtype)
        with blas_single_threaded():
            codes = self._encode(lloyd.normalize_rows(X) if self.spherical else X, centroids)
        return standardize(codes, self._state) if self.standardize else codes

    def _transform_device(self, X: Any) -> Any:
        """The codes of a device array ``X`` (n, d), computed on the GPU in X's dtype (a numba device array)."""
        from . import cuda

        X = devices.as_device_array(X, "X")
        d = self._state["centroids"].shape[1]
        if X.ndim != 2 or X.shape[1] != d or not X.is_c_contiguous() or np.dtype(X.dtype).kind != "f":
            raise ValueError(f"X on the GPU must be a C-contiguous float array (n, {d}), got {X.dtype} of shape "
                             f"{X.shape}")
        if "_device_state" not in vars(self):
            self._device_state = cuda.DeviceState()
        gpu = self._device_state
        names = ["centroids"] + (["feature_mean", "feature_std"] if self.standardize else [])
        state = gpu.get(self._state, names, X.dtype)
        if self.spherical:
            X = cuda.normalize_rows(X)
        gpu.workspace = cuda.Workspace.for_shape(gpu.workspace, X.shape[0], len(self._state["centroids"]), d,
                                                 X.dtype)
        return cuda.encode(X, state["centroids"], self.encoding, gpu.workspace, state.get("feature_mean"),
                           state.get("feature_std"))

    def predict(self, X: Any) -> np.ndarray:
        """The index of the nearest centroid of each row of ``X``."""
        from nkernels.runtime.threads import blas_single_threaded

        from . import lloyd

        self._check_fitted()
        centroids = self._state["centroids"]
        X = np.ascontiguousarray(check_rows(X, centroids.shape[1]), dtype=centroids.dtype)
        with blas_single_threaded():
            labels, _ = lloyd.assign(lloyd.normalize_rows(X) if self.spherical else X, centroids)
        return labels

    def _encode(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        from . import lloyd

        return lloyd.encode(X, centroids, self.encoding)

    def _state_names(self, arrays):
        return ["centroids"] + (["feature_mean", "feature_std"] if self.standardize else [])
