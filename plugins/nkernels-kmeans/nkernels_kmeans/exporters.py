"""ONNX exporters of the k-means extractors: ``nk.export_onnx`` writes ``Frozen(extractor)`` with them.

They are registered by extractor class through ``nkernels_register_exporters``; the exporter of
``nk.layers.Frozen`` looks them up. Each graph computes what the extractor's ``transform``
computes, in the model's float dtype, with ops onnxruntime's CPU provider runs in float and
double alike (no Conv: patches are strided slices):

- codes of rows (:func:`encode`): the cross term ``z @ C.T`` and the squared norms give the
  squared distances; ``triangle`` is ``max(0, mean_j |z - c_j| - |z - c_k|)``, ``hard`` a
  one-hot of the nearest centroid (ArgMin: ties go to the lowest index, as in the kernels);
- a conv-kmeans stage (:func:`stage_maps`): every patch (strided slices, channels last),
  contrast normalization, whitening, the codes, and sum pooling over regions as two MatMuls
  with 0/1 region matrices.

Importing this module loads no Numba code (the extractors' helpers are imported on export).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nkernels.export.onnx_export import OnnxGraph

#: the last axis, over which rows of features are reduced
LAST_AXIS = np.array([-1], np.int64)


def _sum_last(graph: OnnxGraph, x: str) -> str:
    """The sum over the last axis, kept as an axis of 1 (ReduceSum takes its axes as an input from opset 13)."""
    return graph.node("ReduceSum", [x, graph.constant(LAST_AXIS, "axes")], keepdims=1)


def _scalar(graph: OnnxGraph, value: float, hint: str) -> str:
    return graph.weight(np.array(value), hint)


def normalize_rows(graph: OnnxGraph, x: str) -> str:
    """Each row of ``x`` over its Euclidean norm (rows of zeros stay zero): ``lloyd.normalize_rows``."""
    norm = graph.node("Sqrt", [_sum_last(graph, graph.node("Mul", [x, x]))], hint="norm")
    positive = graph.node("Greater", [norm, _scalar(graph, 0.0, "zero")])
    return graph.node("Div", [x, graph.node("Where", [positive, norm, _scalar(graph, 1.0, "one")])])


def encode(graph: OnnxGraph, z: str, centroids: np.ndarray, hard: bool) -> str:
    """The codes (..., k) of the rows ``z`` (..., d): triangle, or with ``hard`` a one-hot of the nearest centroid."""
    from .lloyd import row_sq_norms

    k = len(centroids)
    cross = graph.node("MatMul", [z, graph.weight(np.ascontiguousarray(centroids.T), "centroids_t")], hint="cross")
    twice_cross = graph.node("Add", [cross, cross])
    c_sq = graph.weight(row_sq_norms(centroids), "centroid_sq_norms")
    if hard:  # the kernels compare |c|^2 - 2 z.c (|z|^2 is the same for every centroid)
        nearest = graph.node("ArgMin", [graph.node("Sub", [c_sq, twice_cross])], axis=-1, keepdims=1)
        one_hot = graph.node("Equal", [nearest, graph.constant(np.arange(k, dtype=np.int64), "clusters")])
        return graph.node("Where", [one_hot, _scalar(graph, 1.0, "one"), _scalar(graph, 0.0, "zero")],
                          hint="codes")
    z_sq = _sum_last(graph, graph.node("Mul", [z, z]))
    squared = graph.node("Sub", [graph.node("Add", [z_sq, c_sq]), twice_cross])
    distances = graph.node("Sqrt", [graph.node("Relu", [squared])], hint="distances")
    mean = graph.node("Div", [_sum_last(graph, distances), _scalar(graph, float(k), "k")])
    return graph.node("Relu", [graph.node("Sub", [mean, distances])], hint="codes")


def standardize(graph: OnnxGraph, features: str, state: dict[str, np.ndarray]) -> str:
    """``(features - feature_mean) / feature_std`` with the statistics of ``state``."""
    centered = graph.node("Sub", [features, graph.weight(state["feature_mean"], "feature_mean")])
    return graph.node("Div", [centered, graph.weight(state["feature_std"], "feature_std")], hint="standardized")


def _patches(graph: OnnxGraph, images: str, n_channels: int, grid: tuple[int, int], options: Any) -> tuple[str, np.ndarray]:
    """Every patch of ``images`` (N, C, H, W) as rows (N, ny, nx, C ph pw), and the order of their features.

    The patch at each offset (dy, dx) is one strided Slice (N, C, ny, nx); they are concatenated
    offset-major, so feature ``(dy, dx, c)`` comes where the kernels put ``(c, dy, dx)``: the
    returned index maps each graph feature to the kernels' one.
    """
    (ph, pw), stride = options.patch, options.stride
    steps = graph.constant(np.array([stride, stride], np.int64), "steps")
    axes = graph.constant(np.array([2, 3], np.int64), "axes")
    slices = []
    for dy in range(ph):
        for dx in range(pw):
            starts = graph.constant(np.array([dy, dx], np.int64), "starts")
            ends = graph.constant(np.array([dy + stride * (grid[0] - 1) + 1, dx + stride * (grid[1] - 1) + 1],
                                           np.int64), "ends")
            slices.append(graph.node("Slice", [images, starts, ends, axes, steps], hint="patch_slice"))
    stacked = graph.node("Concat", slices, axis=1) if len(slices) > 1 else slices[0]
    order = np.array([c * ph * pw + dy * pw + dx for dy in range(ph) for dx in range(pw)
                      for c in range(n_channels)], np.int64)
    return graph.node("Transpose", [stacked], perm=[0, 2, 3, 1], hint="patches"), order


def _contrast_normalize(graph: OnnxGraph, rows: str, n_features: int, eps: float) -> str:
    """Each row minus its mean, over ``sqrt(variance + eps)``: the ``contrast_normalize`` kernel."""
    size = _scalar(graph, float(n_features), "patch_features")
    centered = graph.node("Sub", [rows, graph.node("Div", [_sum_last(graph, rows), size])])
    variance = graph.node("Div", [_sum_last(graph, graph.node("Mul", [centered, centered])), size])
    scale = graph.node("Reciprocal", [graph.node("Sqrt", [graph.node("Add", [variance, _scalar(graph, eps, "eps")])])])
    return graph.node("Mul", [centered, scale], hint="normalized")


def _pool(graph: OnnxGraph, maps: str, region_y: np.ndarray, region_x: np.ndarray, n_regions: tuple[int, int]) -> str:
    """Maps (N, k, ny, nx) summed over regions: (N, k, R, Q), as ``A_y @ maps @ A_x.T`` with 0/1 region matrices."""
    rows = (np.arange(n_regions[0])[:, None] == region_y[None, :]).astype(np.float64)
    columns = (region_x[:, None] == np.arange(n_regions[1])[None, :]).astype(np.float64)
    pooled_y = graph.node("MatMul", [graph.weight(rows, "region_rows"), maps])
    return graph.node("MatMul", [pooled_y, graph.weight(columns, "region_columns")], hint="pooled")


def stage_maps(graph: OnnxGraph, images: str, images_shape: tuple[int, ...], coder: dict[str, np.ndarray], options: Any,
               region_y: np.ndarray, region_x: np.ndarray, n_regions: tuple[int, int], hard: bool) -> str:
    """One coder at every patch position of ``images`` of ``images_shape`` (N, C, H, W), its codes sum-pooled
    over regions: (N, k, R, Q), what ``patches.encode`` computes."""
    from .patches import output_grid

    rows, order = _patches(graph, images, images_shape[1], output_grid(images_shape, options), options)
    if options.normalize:
        rows = _contrast_normalize(graph, rows, len(order), options.norm_eps)
    centered = graph.node("Sub", [rows, graph.weight(coder["mean"][order], "patch_mean")])
    whitened = graph.node("MatMul", [centered, graph.weight(coder["whitening"][order], "whitening")], hint="whitened")
    codes = encode(graph, whitened, coder["centroids"], hard)  # (N, ny, nx, k)
    maps = graph.node("Transpose", [codes], perm=[0, 3, 1, 2], hint="maps")
    return _pool(graph, maps, region_y, region_x, n_regions)


def _flat_features(graph: OnnxGraph, parts: list[str]) -> str:
    flat = [graph.node("Flatten", [part], axis=1) for part in parts]
    return graph.node("Concat", flat, axis=1, hint="features") if len(flat) > 1 else flat[0]


def export_kmeans(extractor: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """``kmeans``: rows (N, d), normalized if ``spherical``, to their codes (standardized if asked)."""
    state = extractor.state_arrays()
    rows = normalize_rows(graph, x) if extractor.spherical else x
    codes = encode(graph, rows, state["centroids"], extractor.encoding == "hard")
    return standardize(graph, codes, state) if extractor.standardize else codes


def export_conv_kmeans(extractor: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """``conv-kmeans``: images (N, C, H, W) to their codes pooled over the ``pool_grid`` grid, flattened."""
    from .patches import grid_regions, output_grid

    state, grid = extractor.state_arrays(), extractor.pool_grid
    ny, nx = output_grid(input_shape, extractor.options)
    pooled = stage_maps(graph, x, tuple(input_shape), state, extractor.options, grid_regions(ny, grid),
                        grid_regions(nx, grid), (grid, grid), extractor.encoding == "hard")
    features = _flat_features(graph, [pooled])
    return standardize(graph, features, state) if extractor.standardize else features


def export_stacked_kmeans(extractor: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """``stacked-kmeans``: the stages bottom up, each group on its channels (Gather), the groups' maps
    concatenated; the top stage's grid-pooled maps and, with ``concat``, every lower stage's, flattened."""
    from .patches import grid_regions

    state, grid, hard = extractor.state_arrays(), extractor.pool_grid, extractor.encoding == "hard"
    maps, shape, parts = x, tuple(input_shape), []
    top = len(extractor.stages) - 1
    for s, (options, grouping, _) in enumerate(extractor.stages):
        region_y, region_x, regions = extractor._stage_regions(shape, s, s == top)
        outputs, n_maps = [], 0
        for g in range(1 if grouping is None else grouping[0]):
            coder = {k: state[f"stage{s}.group{g}.{k}"] for k in ("mean", "whitening", "centroids", "channels")}
            channels = coder["channels"]
            group_maps = maps if np.array_equal(channels, np.arange(shape[1])) else \
                graph.node("Gather", [maps, graph.constant(channels.astype(np.int64), "channels")], axis=1)
            outputs.append(stage_maps(graph, group_maps, (shape[0], len(channels)) + shape[2:], coder, options,
                                      region_y, region_x, regions, hard))
            n_maps += len(coder["centroids"])
        pooled = graph.node("Concat", outputs, axis=1) if len(outputs) > 1 else outputs[0]
        if s == top:
            parts.append(pooled)
        elif extractor.concat:
            parts.append(_pool(graph, pooled, grid_regions(regions[0], grid), grid_regions(regions[1], grid),
                               (grid, grid)))
        maps, shape = pooled, (shape[0], n_maps) + tuple(regions)
    features = _flat_features(graph, parts)
    return standardize(graph, features, state) if extractor.standardize else features
