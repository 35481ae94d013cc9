"""The image pipeline of Coates, Lee and Ng (2011), one stage of it at a time.

A *coder* is what one stage learns for one group of input channels: the mean and ZCA
whitening matrix of its contrast-normalized patches and the k-means centroids of the whitened
patches. Encoding runs the coder at every patch position of every image (a convolution), codes
each position (triangle or hard) and sum-pools the codes over regions, without ever holding the
unpooled maps: the cross term of a block of images is one BLAS GEMM, and one kernel codes and
pools it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from . import lloyd
from .gemm import matmul

#: coder arrays, by name
CODER_ARRAYS = ("mean", "whitening", "centroids")


@dataclass(frozen=True)
class StageOptions:
    """How one stage learns: patch geometry, preprocessing and k-means settings."""

    n_clusters: int
    patch: tuple[int, int]
    stride: int
    n_patches: int
    normalize: bool
    norm_eps: float
    whiten: bool
    zca_eps: float
    max_iter: int
    tol: float


def positions(size: int, patch: int, stride: int) -> int:
    """How many patch positions fit along an axis of ``size``."""
    return (size - patch) // stride + 1


def grid_regions(n: int, grid: int) -> np.ndarray:
    """Region index of each of ``n`` positions split into ``grid`` nearly equal parts (the first ones larger)."""
    return (np.arange(n) * grid // n).astype(np.int64)


def window_regions(n: int, size: int) -> np.ndarray:
    """Region index of each of ``n`` positions pooled in windows of ``size`` (a last, shorter one included)."""
    return (np.arange(n) // size).astype(np.int64)


def _patches(images: np.ndarray, index: np.ndarray, ys: np.ndarray, xs: np.ndarray, options: StageOptions):
    ph, pw = options.patch
    out = np.empty((len(index), images.shape[1] * ph * pw), images.dtype)
    with lloyd.kernel_threads(out.size):
        K.gather_patches(images, index, ys, xs, ph, pw, out)
        if options.normalize:
            K.contrast_normalize(out, options.norm_eps)
    return out


def sample_patches(images: np.ndarray, options: StageOptions, rng: np.random.Generator) -> np.ndarray:
    """``options.n_patches`` distinct random patches (all of them when there are fewer), normalized if asked."""
    n, _, h, w = images.shape
    ny, nx = positions(h, options.patch[0], options.stride), positions(w, options.patch[1], options.stride)
    total = n * ny * nx
    flat = np.arange(total) if options.n_patches >= total else np.sort(rng.choice(total, options.n_patches,
                                                                                 replace=False))
    index, rest = np.divmod(flat, ny * nx)
    ys, xs = np.divmod(rest, nx)
    return _patches(images, index.astype(np.int64), (ys * options.stride).astype(np.int64),
                    (xs * options.stride).astype(np.int64), options)


def fit_zca(patches: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the ZCA whitening matrix ``V diag(1 / sqrt(D + eps)) V^T`` of the patches' covariance."""
    mean = patches.mean(axis=0, dtype=np.float64)
    cov = np.cov(patches, rowvar=False, dtype=np.float64).reshape(patches.shape[1], patches.shape[1])
    eigenvalues, vectors = np.linalg.eigh(cov)
    whitening = (vectors / np.sqrt(np.maximum(eigenvalues, 0.0) + eps)) @ vectors.T
    return mean.astype(patches.dtype), whitening.astype(patches.dtype)


def whiten(patches: np.ndarray, coder: dict[str, np.ndarray]) -> np.ndarray:
    """``(patches - mean) @ whitening``: one GEMM (``patches`` is centered in place)."""
    patches -= coder["mean"]
    return matmul(patches, coder["whitening"], np.empty(patches.shape, patches.dtype))


def fit_coder(images: np.ndarray, options: StageOptions, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Learn one coder on random patches of ``images`` (N, C, H, W): normalize, whiten, k-means."""
    patches = sample_patches(images, options, rng)
    if len(patches) < options.n_clusters:
        raise ValueError(f"{options.n_clusters} clusters need at least as many patches; the images hold only "
                         f"{len(patches)} (use fewer clusters or smaller patches)")
    if options.whiten:
        mean, whitening = fit_zca(patches, options.zca_eps)
    else:
        mean, whitening = patches.mean(axis=0).astype(patches.dtype), np.eye(patches.shape[1], dtype=patches.dtype)
    coder = {"mean": mean, "whitening": whitening}
    data = whiten(patches, coder)
    centroids = lloyd.initial_centroids(data, options.n_clusters, "k-means++", rng)
    coder["centroids"] = lloyd.lloyd(data, centroids, options.max_iter, options.tol).centroids
    return coder


def encode(images: np.ndarray, coder: dict[str, np.ndarray], options: StageOptions, region_y: np.ndarray,
           region_x: np.ndarray, n_regions: tuple[int, int], hard: bool) -> np.ndarray:
    """The pooled codes (N, k, R, Q) of every patch position of ``images``; ``n_regions`` is (R, Q)."""
    n, _, h, w = images.shape
    ny, nx = positions(h, options.patch[0], options.stride), positions(w, options.patch[1], options.stride)
    centroids = coder["centroids"]
    k = len(centroids)
    out = np.empty((n, k) + tuple(n_regions), images.dtype)
    c_sq = lloyd.row_sq_norms(centroids)
    grid_y, grid_x = np.meshgrid(np.arange(ny) * options.stride, np.arange(nx) * options.stride, indexing="ij")
    per_image = ny * nx
    step = max(1, lloyd.CROSS_BLOCK // (per_image * max(k, images.shape[1] * options.patch[0] * options.patch[1])))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        index = np.repeat(np.arange(lo, hi, dtype=np.int64), per_image)
        ys = np.tile(grid_y.ravel(), hi - lo).astype(np.int64)
        xs = np.tile(grid_x.ravel(), hi - lo).astype(np.int64)
        z = whiten(_patches(images, index, ys, xs, options), coder)
        cross = matmul(z, centroids.T, np.empty((len(z), k), z.dtype))
        with lloyd.kernel_threads(cross.size):
            K.encode_pool(cross, lloyd.row_sq_norms(z), c_sq, ny, nx, region_y, region_x, hard, out[lo:hi])
    return out


def output_grid(images_shape: tuple[int, ...], options: StageOptions) -> tuple[int, int]:
    """The number of patch positions (rows, columns) of a stage on images of ``images_shape``."""
    _, _, h, w = images_shape
    return positions(h, options.patch[0], options.stride), positions(w, options.patch[1], options.stride)
