"""ONNX exporters of the PMI extractors: ``nk.export_onnx`` writes ``Frozen(extractor)`` with them.

A stage is ``(x / scale) @ W``, minus the offset, over the spread (Div, MatMul, Sub, Div), then
its nonlinearity: ``relu-pm`` is ``Concat(Relu(z), Relu(-z))``. A stack chains its stages and
concatenates their features. Every op runs in float and double alike in onnxruntime.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nkernels.export.onnx_export import OnnxGraph


def stage_features(graph: OnnxGraph, stage: Any, x: str) -> str:
    """What ``stage.transform`` computes, on the graph value ``x``."""
    state = stage.state_arrays()
    scaled = graph.node("Div", [x, graph.weight(state["scale"], "scale")])
    z = graph.node("MatMul", [scaled, graph.weight(state["components"], "components")], hint="projections")
    z = graph.node("Sub", [z, graph.weight(state["offset"], "offset")])
    z = graph.node("Div", [z, graph.weight(state["spread"], "spread")], hint="centred")
    if stage.nonlinearity == "linear":
        return z
    positive = graph.node("Relu", [z])
    if stage.nonlinearity == "relu":
        return positive
    negative = graph.node("Relu", [graph.node("Neg", [z])])
    return graph.node("Concat", [positive, negative], axis=1, hint="features")


def export_pmi(extractor: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """``pmi-factorization``: rows (N, d) to the stage's features."""
    return stage_features(graph, extractor, x)


def export_stacked_pmi(extractor: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """``stacked-pmi``: the stages bottom up; every stage's features concatenated, or the top stage's."""
    parts = []
    for stage in extractor.stages_:
        x = stage_features(graph, stage, x)
        parts.append(x)
    if not extractor.concat or len(parts) == 1:
        return parts[-1]
    return graph.node("Concat", parts, axis=1, hint="features")
