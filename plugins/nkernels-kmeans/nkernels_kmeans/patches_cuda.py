"""The image pipeline of :mod:`nkernels_kmeans.patches` on the GPU: encoding a stage without a host round trip.

:func:`encode` is the CUDA twin of :func:`nkernels_kmeans.patches.encode` for images already on the device:

1. :func:`_gather_normalize_center`: every patch (the im2col of the images, rows in (image, y, x) order,
   features in (channel, row, column) order, as :func:`nkernels_kmeans.kernels.gather_patches`), contrast
   normalized as :func:`nkernels_kmeans.kernels.contrast_normalize` and centred by the coder's mean, one
   thread per patch;
2. the whitening ``Z = P @ W`` and the cross term ``Z @ C.T``: nkernels' CUDA ``dense_forward`` GEMM
   through the kernel registry (a faster registered GEMM takes over), and the squared norms of Z and C
   (:func:`nkernels_kmeans.cuda.row_sq_norms`);
3. :func:`_position_codes`: per patch, the mean distance ``mu`` (triangle) or the nearest centroid (hard);
4. :func:`_pool_codes`: one thread per (image, centroid) adds the codes of the positions in order into
   their regions, as :func:`nkernels_kmeans.kernels.encode_pool` does (same order, same rounding).

The stacked extractor's glue (a group's channels, the grid pooling of a lower stage's maps, the features
placed side by side) are small kernels here too, so a whole ``transform`` stays on the device. Buffers
live in a :class:`PatchWorkspace`, allocated once per shape.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from nkernels.kernels.cuda.launch import grid_stride, python_function
from nkernels.plugins.kernels import kernel

from . import cuda as G
from . import kernels as K
from .patches import output_grid

_contrast_normalize_row = cuda.jit(device=True)(python_function(K.contrast_normalize_row))


@cuda.jit
def _gather_normalize_center(images, ph, pw, stride, n_x, per_image, normalize, eps, mean, out):
    """``out[r]`` = the patch of row r (image ``r // per_image``, position ``r % per_image``), contrast
    normalized when ``normalize``, minus ``mean``."""
    n_channels = images.shape[1]
    d = out.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, out.shape[0], step):
        img = r // per_image
        p = r - img * per_image
        y0 = (p // n_x) * stride
        x0 = (p % n_x) * stride
        f = 0
        for c in range(n_channels):
            for dy in range(ph):
                for dx in range(pw):
                    out[r, f] = images[img, c, y0 + dy, x0 + dx]
                    f += 1
        if normalize:
            _contrast_normalize_row(out, r, eps)
        for f in range(d):
            out[r, f] -= mean[f]


@cuda.jit
def _position_codes(cross, z_sq, c_sq, hard, mu, labels):
    """Per row: the nearest centroid (``hard``) in ``labels``, else the mean triangle distance in ``mu``."""
    k = cross.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, cross.shape[0], step):
        if hard:
            labels[i], _ = G._nearest(cross, i, c_sq)
        else:
            total = 0.0
            for j in range(k):
                c = cross[i, j]
                dist = z_sq[i] + c_sq[j] - (c + c)
                total += math.sqrt(dist) if dist > 0 else 0.0
            mu[i] = total / k


@cuda.jit
def _pool_codes(cross, z_sq, c_sq, hard, mu, labels, n_x, per_image, region_y, region_x, channel0, out):
    """``out[n, channel0 + j]`` = the codes of centroid j summed over the regions, positions in order."""
    n_images = out.shape[0]
    k = cross.shape[1]
    n_ry, n_rx = out.shape[2], out.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n_images * k, step):
        n = item // k
        j = item - n * k
        for a in range(n_ry):
            for b in range(n_rx):
                out[n, channel0 + j, a, b] = 0.0
        for p in range(per_image):
            i = n * per_image + p
            ry = region_y[p // n_x]
            rx = region_x[p % n_x]
            if hard:
                if labels[i] == j:
                    out[n, channel0 + j, ry, rx] += 1.0
            else:
                c = cross[i, j]
                dist = z_sq[i] + c_sq[j] - (c + c)
                z = math.sqrt(dist) if dist > 0 else 0.0
                if z < mu[i]:
                    out[n, channel0 + j, ry, rx] += mu[i] - z


@cuda.jit
def _take_channels(maps, channels, out):
    """``out[:, c] = maps[:, channels[c]]``."""
    n, g, h, w = out.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n * g * h * w, step):
        x = item % w
        rest = item // w
        y = rest % h
        rest //= h
        c = rest % g
        i = rest // g
        out[i, c, y, x] = maps[i, channels[c], y, x]


@cuda.jit
def _grid_pool(maps, region_y, region_x, out):
    """``out[n, c, gy, gx]`` = the sum of ``maps[n, c]`` over the cells of region (gy, gx), cells in order."""
    n, k, r, q = maps.shape
    g1, g2 = out.shape[2], out.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n * k, step):
        i = item // k
        c = item - i * k
        for a in range(g1):
            for b in range(g2):
                out[i, c, a, b] = 0.0
        for y in range(r):
            for x in range(q):
                out[i, c, region_y[y], region_x[x]] += maps[i, c, y, x]


@cuda.jit
def _place_columns(src, dst, offset):
    """``dst[:, offset:offset + src.shape[1]] = src``."""
    n, m = src.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n * m, step):
        i = item // m
        j = item - i * m
        dst[i, offset + j] = src[i, j]


def _launch(fn, items, *args):
    blocks, threads = grid_stride(items, per_thread=1)
    fn[blocks, threads](*args)


class PatchWorkspace:
    """The device buffers of :func:`encode` for ``rows`` patches of ``d`` numbers and ``k`` centroids."""

    def __init__(self, rows: int, k: int, d: int, dtype):
        dtype = np.dtype(dtype)
        self.key = (rows, k, d, dtype.str)
        self.patches = cuda.device_array((rows, d), dtype)
        self.whitened = cuda.device_array((rows, d), dtype)
        self.mu = cuda.device_array(rows, np.float64)
        self.codes = G.Workspace(rows, k, d, dtype)

    @classmethod
    def for_shape(cls, previous: "PatchWorkspace | None", rows: int, k: int, d: int, dtype) -> "PatchWorkspace":
        """``previous`` when it has these sizes, else a new workspace."""
        if previous is not None and previous.key == (rows, k, d, np.dtype(dtype).str):
            return previous
        return cls(rows, k, d, dtype)


class DevicePatches:
    """What one extractor keeps for its GPU transforms: the device copies of its coders (per dtype, copied
    again when the host state changes) and one workspace per coder."""

    def __init__(self):
        self.state = G.DeviceState()
        self.workspaces: dict[str, PatchWorkspace] = {}
        self._ints: dict[str, tuple[np.ndarray, Any]] = {}

    def __deepcopy__(self, memo) -> "DevicePatches":
        return DevicePatches()  # a copy of the extractor copies its host state, and this fills again on use

    def __reduce__(self):
        return DevicePatches, ()

    def ints(self, name: str, values: np.ndarray):
        """``values`` (an index array) as a device int64 array, copied over only when they change."""
        values = np.ascontiguousarray(values, np.int64)
        held = self._ints.get(name)
        if held is None or not np.array_equal(held[0], values):
            held = self._ints[name] = (values, cuda.to_device(values))
        return held[1]

    def coders(self, state: dict[str, np.ndarray], prefixes, dtype) -> dict[str, Any]:
        """Device arrays of ``prefix + mean``, ``prefix + whitening`` (transposed: the GEMM's weight),
        ``prefix + centroids`` for every prefix (and the feature statistics when the state has them)."""
        host = {}
        for prefix in prefixes:
            host[prefix + "mean"] = state[prefix + "mean"]
            host[prefix + "whitening_t"] = np.ascontiguousarray(state[prefix + "whitening"].T)
            host[prefix + "centroids"] = state[prefix + "centroids"]
        for name in ("feature_mean", "feature_std"):
            if name in state:
                host[name] = state[name]
        return self.state.get(host, list(host), dtype)


def encode(images, coder: dict[str, Any], prefix: str, options, region_y, region_x, hard: bool, out,
           channel0: int, gpu: DevicePatches) -> None:
    """The pooled codes of every patch position of the device ``images`` (N, C, H, W), written into
    ``out[:, channel0:channel0 + k]`` (a device array (N, channels, R, Q)); ``coder`` from
    :meth:`DevicePatches.coders`, ``region_y``/``region_x`` device int64 arrays."""
    n, c = images.shape[0], images.shape[1]
    ny, nx = output_grid(images.shape, options)
    ph, pw = options.patch
    centroids = coder[prefix + "centroids"]
    k, d = centroids.shape[0], c * ph * pw
    rows = n * ny * nx
    ws = gpu.workspaces[prefix] = PatchWorkspace.for_shape(gpu.workspaces.get(prefix), rows, k, d, images.dtype)
    _launch(_gather_normalize_center, rows, images, ph, pw, options.stride, nx, ny * nx, options.normalize,
            options.norm_eps, coder[prefix + "mean"], ws.patches)
    dense = kernel("dense_forward", "cuda")
    dense(ws.patches, coder[prefix + "whitening_t"], ws.codes.no_bias, ws.whitened)
    dense(ws.whitened, centroids, ws.codes.no_bias, ws.codes.cross)
    G.row_sq_norms(ws.whitened, ws.codes.x_sq)
    G.row_sq_norms(centroids, ws.codes.c_sq)
    _launch(_position_codes, rows, ws.codes.cross, ws.codes.x_sq, ws.codes.c_sq, hard, ws.mu, ws.codes.labels)
    _launch(_pool_codes, n * k, ws.codes.cross, ws.codes.x_sq, ws.codes.c_sq, hard, ws.mu, ws.codes.labels, nx,
            ny * nx, region_y, region_x, channel0, out)


def take_channels(maps, channels):
    """A new device array: ``maps[:, channels]`` (``channels`` a device int64 array)."""
    n, _, h, w = maps.shape
    out = cuda.device_array((n, channels.shape[0], h, w), maps.dtype)
    _launch(_take_channels, out.size, maps, channels, out)
    return out


def grid_pool(maps, region_y, region_x, grid: int):
    """A new device array (N, k, grid, grid): the maps summed over the regions (device int64 arrays)."""
    n, k = maps.shape[0], maps.shape[1]
    out = cuda.device_array((n, k, grid, grid), maps.dtype)
    _launch(_grid_pool, n * k, maps, region_y, region_x, out)
    return out


def side_by_side(parts, n: int, dtype):
    """A new device array (N, sum of widths): the device arrays ``parts`` flattened per row, in order."""
    flat = [p.reshape(n, p.size // n) for p in parts]
    out = cuda.device_array((n, sum(p.shape[1] for p in flat)), dtype)
    offset = 0
    for p in flat:
        _launch(_place_columns, p.size, p, out, offset)
        offset += p.shape[1]
    return out
