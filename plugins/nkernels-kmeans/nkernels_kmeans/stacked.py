"""The ``stacked-kmeans`` extractor: conv-kmeans stages, each learning on the pooled maps of the one below."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.validation import (check_bool, check_choice, check_images, check_int, check_number, check_pair,
                                 check_seed)

from .base import ENCODINGS, Extractor, feature_statistics

STAGE_KEYS = ("n_clusters", "patch_size", "stride", "pool_size", "groups", "group_size", "n_patches", "normalize",
              "norm_eps", "whiten", "zca_eps", "max_iter")


class StackedKMeans(Extractor):
    """A deep k-means feature extractor for images (N, C, H, W); registered as ``"stacked-kmeans"``.

    ``stages`` is a list of dicts, one per stage, bottom first. Each stage is a conv-kmeans
    layer (random patches, contrast normalization, ZCA whitening, k-means, triangle or hard
    codes at every position): the first learns on the images, each later one on the maps of the
    stage below, sum-pooled in windows of ``pool_size``. Keys of a stage: ``n_clusters``
    (required), ``patch_size`` (3), ``stride`` (1), ``pool_size``, and optionally ``groups`` and
    ``group_size`` plus any of ``n_patches``, ``normalize``, ``norm_eps``, ``whiten``,
    ``zca_eps``, ``max_iter`` to override the extractor-wide values for that stage.

    ``groups=G, group_size=S`` turns on the receptive-field grouping of Coates and Ng
    ("Selecting receptive fields in deep networks", 2011): the stage learns G separate k-means
    models, each on the S input maps most similar to a randomly chosen one (similarity: the
    correlation of the squared, standardized responses), with ``n_clusters`` centroids each; its
    output has G * n_clusters maps. Small receptive fields keep k-means in low dimensions.

    The features are the top stage's maps summed over a ``pool_grid`` x ``pool_grid`` grid of
    regions (quadrants for 2) and, with ``concat=True``, those of every stage below as well,
    flattened and concatenated bottom first. ``standardize=True`` scales each feature to zero
    mean and unit variance over the training images.

    ``transform`` of images on the GPU (a device array) computes every stage there and returns a numba
    device array (:mod:`nkernels_kmeans.patches_cuda`), so ``nk.layers.Frozen`` of a fitted extractor stays on
    the device with its model; ``fit`` runs on the host.
    """

    def __init__(self, stages: Any = ({"n_clusters": 64, "patch_size": 3}, {"n_clusters": 128, "patch_size": 2}),
                 pool_size: int = 2, pool_grid: int = 2, concat: bool = True, n_patches: int = 100_000,
                 normalize: bool = True, norm_eps: float = 0.01, whiten: bool = True, zca_eps: float = 0.1,
                 encoding: str = "triangle", max_iter: int = 100, tol: float = 1e-4, standardize: bool = False,
                 seed: int | None = None):
        from .patches import StageOptions

        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(f"stages must be a non-empty list of dicts, got {stages!r}")
        defaults = {"stride": 1, "patch_size": 3, "pool_size": check_int(pool_size, "pool_size"),
                    "n_patches": n_patches, "normalize": normalize, "norm_eps": norm_eps, "whiten": whiten,
                    "zca_eps": zca_eps, "max_iter": max_iter, "groups": None, "group_size": None}
        self.stages: list[tuple[Any, tuple[int, int] | None, int]] = []
        for i, stage in enumerate(stages):
            if not isinstance(stage, dict) or "n_clusters" not in stage:
                raise ValueError(f"stage {i} must be a dict with at least 'n_clusters', got {stage!r}")
            unknown = sorted(set(stage) - set(STAGE_KEYS))
            if unknown:
                raise ValueError(f"stage {i} has unknown keys {unknown}; known keys: {', '.join(STAGE_KEYS)}")
            s = {**defaults, **stage}
            name = f"stages[{i}]."
            options = StageOptions(
                n_clusters=check_int(s["n_clusters"], name + "n_clusters"),
                patch=check_pair(s["patch_size"], name + "patch_size"), stride=check_int(s["stride"], name + "stride"),
                n_patches=check_int(s["n_patches"], name + "n_patches"),
                normalize=check_bool(s["normalize"], name + "normalize"),
                norm_eps=check_number(s["norm_eps"], name + "norm_eps", low=0, low_open=True),
                whiten=check_bool(s["whiten"], name + "whiten"),
                zca_eps=check_number(s["zca_eps"], name + "zca_eps", low=0, low_open=True),
                max_iter=check_int(s["max_iter"], name + "max_iter"), tol=check_number(tol, "tol", low=0))
            if (s["groups"] is None) != (s["group_size"] is None):
                raise ValueError(f"stage {i}: give both groups and group_size for receptive-field grouping, or neither")
            grouping = None if s["groups"] is None else (check_int(s["groups"], name + "groups"),
                                                        check_int(s["group_size"], name + "group_size"))
            self.stages.append((options, grouping, check_int(s["pool_size"], name + "pool_size")))
        self.pool_grid = check_int(pool_grid, "pool_grid")
        self.concat = check_bool(concat, "concat")
        self.encoding = check_choice(encoding, "encoding", ENCODINGS)
        self.standardize = check_bool(standardize, "standardize")
        self.seed = check_seed(seed)

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "StackedKMeans":
        """Learn the stages bottom up on the images ``X`` (N, C, H, W); returns self."""
        from nkernels.runtime.threads import blas_single_threaded

        from . import patches

        X = check_images(X)
        rng = np.random.default_rng(self.seed)
        state: dict[str, np.ndarray] = {"image_shape": np.array(X.shape[1:], np.int64)}
        maps = X
        with blas_single_threaded():
            for s, (options, grouping, _) in enumerate(self.stages):
                ph, pw = options.patch
                if maps.shape[2] < ph or maps.shape[3] < pw:
                    raise ValueError(f"stage {s}: patch_size {options.patch} does not fit its input maps of "
                                     f"shape {maps.shape[1:]} (use smaller patches, pooling or fewer stages)")
                if grouping is None:
                    groups = [np.arange(maps.shape[1], dtype=np.int64)]
                else:
                    groups = receptive_fields(maps, *grouping, rng)
                for g, channels in enumerate(groups):
                    coder = patches.fit_coder(np.ascontiguousarray(maps[:, channels]), options, rng)
                    coder["channels"] = channels
                    state.update({f"stage{s}.group{g}.{k}": v for k, v in coder.items()})
                if s < len(self.stages) - 1:
                    maps = self._stage_maps(maps, s, state, top=False)
            if self.standardize:
                state.update(feature_statistics(self._features(X, state)))
        self._set_state(state)
        return self

    # -- using it -------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """The features of the images ``X``: pooled top-stage maps (and, with ``concat``, every stage's)."""
        return self._transform_images(X, "stage0.group0.centroids")

    def _features(self, X: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        maps, parts = X, []
        for s in range(len(self.stages)):
            top = s == len(self.stages) - 1
            pooled = self._stage_maps(maps, s, state, top)
            if top:
                parts.append(pooled)
            elif self.concat:
                parts.append(_grid_pool(pooled, self.pool_grid))
            maps = pooled
        return np.concatenate([p.reshape(len(X), -1) for p in parts], axis=1)

    def _stage_maps(self, maps: np.ndarray, s: int, state: dict[str, np.ndarray], top: bool) -> np.ndarray:
        """Stage ``s`` run on its input maps: pooled in windows of its pool_size, or over the grid when ``top``."""
        from . import patches

        options, grouping, _ = self.stages[s]
        ry, rx, regions = self._stage_regions(maps.shape, s, top)
        outputs = []
        for g in range(1 if grouping is None else grouping[0]):
            prefix = f"stage{s}.group{g}."
            coder = {k: state[prefix + k] for k in ("mean", "whitening", "centroids")}
            group_maps = np.ascontiguousarray(maps[:, state[prefix + "channels"]])
            outputs.append(patches.encode(group_maps, coder, options, ry, rx, regions, self.encoding == "hard"))
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)

    def _coder_prefixes(self) -> list[str]:
        return [f"stage{s}.group{g}." for s, (_, grouping, _) in enumerate(self.stages)
                for g in range(1 if grouping is None else grouping[0])]

    def _device_features(self, X: Any, coders: dict[str, Any], gpu: Any) -> Any:
        """:meth:`_features` of device images, on the GPU (:mod:`nkernels_kmeans.patches_cuda`)."""
        from . import patches, patches_cuda

        maps, parts = X, []
        for s in range(len(self.stages)):
            top = s == len(self.stages) - 1
            pooled = self._device_stage_maps(maps, s, coders, gpu, top)
            if top:
                parts.append(pooled)
            elif self.concat:
                gy = gpu.ints(f"stage{s}.grid_y", patches.grid_regions(pooled.shape[2], self.pool_grid))
                gx = gpu.ints(f"stage{s}.grid_x", patches.grid_regions(pooled.shape[3], self.pool_grid))
                parts.append(patches_cuda.grid_pool(pooled, gy, gx, self.pool_grid))
            maps = pooled
        return patches_cuda.side_by_side(parts, X.shape[0], X.dtype)

    def _device_stage_maps(self, maps: Any, s: int, coders: dict[str, Any], gpu: Any, top: bool) -> Any:
        """:meth:`_stage_maps` of device maps, on the GPU: each group's codes written into its channels."""
        from numba import cuda

        from . import patches_cuda

        options, grouping, _ = self.stages[s]
        ry, rx, regions = self._stage_regions(maps.shape, s, top)
        ry, rx = gpu.ints(f"stage{s}.{top}.region_y", ry), gpu.ints(f"stage{s}.{top}.region_x", rx)
        prefixes = [f"stage{s}.group{g}." for g in range(1 if grouping is None else grouping[0])]
        widths = [coders[p + "centroids"].shape[0] for p in prefixes]
        out = cuda.device_array((maps.shape[0], sum(widths)) + tuple(regions), maps.dtype)
        for prefix, channel0 in zip(prefixes, np.cumsum([0] + widths[:-1])):
            group_maps = maps if grouping is None else patches_cuda.take_channels(
                maps, gpu.ints(prefix + "channels", self._state[prefix + "channels"]))
            patches_cuda.encode(group_maps, coders, prefix, options, ry, rx, self.encoding == "hard", out,
                                int(channel0), gpu)
        return out

    def _stage_regions(self, maps_shape: tuple[int, ...], s: int, top: bool):
        """The pooling of stage ``s`` on input maps of ``maps_shape``: the region of each row and column of
        patch positions, and the number of regions (rows, columns); windows of its pool_size, or the grid
        when ``top``."""
        from . import patches

        options, _, pool = self.stages[s]
        ny, nx = patches.output_grid(maps_shape, options)
        if top:
            grid = self.pool_grid
            return patches.grid_regions(ny, grid), patches.grid_regions(nx, grid), (grid, grid)
        ry, rx = patches.window_regions(ny, pool), patches.window_regions(nx, pool)
        return ry, rx, (int(ry[-1]) + 1, int(rx[-1]) + 1)

    def _state_names(self, arrays):
        names = ["image_shape"]
        for s, (_, grouping, _) in enumerate(self.stages):
            for g in range(1 if grouping is None else grouping[0]):
                names += [f"stage{s}.group{g}.{k}" for k in ("mean", "whitening", "centroids", "channels")]
        return names + (["feature_mean", "feature_std"] if self.standardize else [])


def _grid_pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """Maps (N, k, R, Q) summed over a ``grid`` x ``grid`` grid of regions: (N, k, grid, grid)."""
    from .patches import grid_regions

    n, k, r, q = maps.shape
    out = np.zeros((n, k, grid, grid), maps.dtype)
    gy, gx = grid_regions(r, grid), grid_regions(q, grid)
    for i in range(r):
        for j in range(q):
            out[:, :, gy[i], gx[j]] += maps[:, :, i, j]
    return out


def receptive_fields(maps: np.ndarray, n_groups: int, group_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Coates and Ng's receptive fields: ``n_groups`` sets of ``group_size`` similar input maps.

    The similarity of maps i and j is the correlation, over images and positions, of their
    squared standardized responses. Each group is a randomly drawn map and the ``group_size - 1``
    maps most similar to it (channel indices, sorted).
    """
    n_channels = maps.shape[1]
    if group_size > n_channels:
        raise ValueError(f"group_size={group_size} exceeds the {n_channels} maps the stage receives")
    values = maps.transpose(1, 0, 2, 3).reshape(n_channels, -1).astype(np.float64)
    if values.shape[1] > 100_000:  # the similarity needs a sample, not every response
        values = values[:, np.sort(rng.choice(values.shape[1], 100_000, replace=False))]
    std = values.std(axis=1, keepdims=True)
    values = (values - values.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.nan_to_num(np.corrcoef(values ** 2), nan=0.0)
    seeds = rng.choice(n_channels, n_groups, replace=n_groups > n_channels)
    groups = []
    for seed in seeds:
        order = [int(c) for c in np.argsort(-similarity[seed], kind="stable") if c != seed]
        groups.append(np.sort(np.array([int(seed)] + order[:group_size - 1], np.int64)))
    return groups
