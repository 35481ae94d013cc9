"""The ``conv-kmeans`` extractor: the single-layer network of Coates, Lee and Ng (2011)."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.validation import (check_bool, check_choice, check_images, check_int, check_number, check_pair,
                                 check_seed)

from .base import ENCODINGS, Extractor, feature_statistics


class ConvKMeans(Extractor):
    """Unsupervised features of images (N, C, H, W), as in Coates, Lee and Ng (2011); registered as ``"conv-kmeans"``.

    ``fit(X)``, in order:

    1. draws ``n_patches`` random ``patch_size`` patches (all of them when the images hold fewer);
    2. normalizes the contrast of each patch (minus its mean, over ``sqrt(variance + norm_eps)``);
    3. learns a ZCA whitening of the patches (``zca_eps`` regularizes the eigenvalues);
    4. runs k-means (k-means++, Lloyd) with ``n_clusters`` centroids on the whitened patches.

    ``transform(X)`` codes the patch at every position (step ``stride``) of each image, the
    convolutional encoding (``encoding="triangle"`` or ``"hard"``), and sums the codes over a
    ``pool_grid`` x ``pool_grid`` grid of regions (2: the four quadrants). The features are the
    pooled maps (N, k, g, g) flattened to (N, k g g). ``standardize=True`` scales each feature to
    zero mean and unit variance over the training images.

    ``transform`` of images on the GPU (a device array: numba, CuPy, a PyTorch CUDA tensor) computes
    there and returns a numba device array (:mod:`nkernels_kmeans.patches_cuda`), so ``nk.layers.Frozen``
    of a fitted extractor stays on the device with its model (``model.to("cuda")``); ``fit`` runs on the host.

    The paper's CIFAR-10 settings are 6x6 patches, stride 1, 400k patches, k = 1600, quadrants
    (77.9% with a linear SVM). For 8x8 digits, 3x3 or 4x4 patches do well.
    """

    def __init__(self, n_clusters: int = 100, patch_size: Any = 4, stride: int = 1, n_patches: int = 100_000,
                 pool_grid: int = 2, normalize: bool = True, norm_eps: float = 0.01, whiten: bool = True,
                 zca_eps: float = 0.1, encoding: str = "triangle", max_iter: int = 100, tol: float = 1e-4,
                 standardize: bool = False, seed: int | None = None):
        from .patches import StageOptions

        self.options = StageOptions(
            n_clusters=check_int(n_clusters, "n_clusters"), patch=check_pair(patch_size, "patch_size"),
            stride=check_int(stride, "stride"), n_patches=check_int(n_patches, "n_patches"),
            normalize=check_bool(normalize, "normalize"),
            norm_eps=check_number(norm_eps, "norm_eps", low=0, low_open=True),
            whiten=check_bool(whiten, "whiten"), zca_eps=check_number(zca_eps, "zca_eps", low=0, low_open=True),
            max_iter=check_int(max_iter, "max_iter"), tol=check_number(tol, "tol", low=0))
        self.pool_grid = check_int(pool_grid, "pool_grid")
        self.encoding = check_choice(encoding, "encoding", ENCODINGS)
        self.standardize = check_bool(standardize, "standardize")
        self.seed = check_seed(seed)

    def fit(self, X: Any, y: Any = None) -> "ConvKMeans":
        """Learn the whitening and the centroids from random patches of the images ``X``; returns self."""
        from nkernels.runtime.threads import blas_single_threaded

        from . import patches

        X = self._check(check_images(X))
        with blas_single_threaded():
            coder = patches.fit_coder(X, self.options, np.random.default_rng(self.seed))
            state = dict(coder, image_shape=np.array(X.shape[1:], np.int64))
            if self.standardize:
                state.update(feature_statistics(self._features(X, state)))
        self._set_state(state)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The pooled features (N, n_clusters * pool_grid**2) of the images ``X``."""
        return self._transform_images(X, "centroids")

    def _features(self, X: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        from . import patches

        ny, nx = patches.output_grid(X.shape, self.options)
        pooled = patches.encode(X, state, self.options, patches.grid_regions(ny, self.pool_grid),
                                patches.grid_regions(nx, self.pool_grid), (self.pool_grid, self.pool_grid),
                                self.encoding == "hard")
        return pooled.reshape(len(X), -1)

    def _coder_prefixes(self) -> list[str]:
        return [""]

    def _device_features(self, X: Any, coders: dict[str, Any], gpu: Any) -> Any:
        """:meth:`_features` of device images, on the GPU (:mod:`nkernels_kmeans.patches_cuda`)."""
        from numba import cuda

        from . import patches, patches_cuda

        ny, nx = patches.output_grid(X.shape, self.options)
        g = self.pool_grid
        out = cuda.device_array((X.shape[0], coders["centroids"].shape[0], g, g), X.dtype)
        patches_cuda.encode(X, coders, "", self.options, gpu.ints("region_y", patches.grid_regions(ny, g)),
                            gpu.ints("region_x", patches.grid_regions(nx, g)), self.encoding == "hard", out, 0, gpu)
        return out.reshape(X.shape[0], out.size // X.shape[0])

    def _check(self, X: np.ndarray) -> np.ndarray:
        ph, pw = self.options.patch
        if X.shape[2] < ph or X.shape[3] < pw:
            raise ValueError(f"patch_size {self.options.patch} does not fit in images of shape {X.shape[1:]}")
        return X

    def _state_names(self, arrays):
        return ["mean", "whitening", "centroids", "image_shape"] + (
            ["feature_mean", "feature_std"] if self.standardize else [])
