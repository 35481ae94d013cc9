"""The built-in layers, one table row each: registry name, class and ONNX exporter.

Both the layer registry and the exporter registry are filled from :data:`BUILTIN_LAYERS`, so a new
built-in layer is one class plus one row here (a test checks that every row has test cases, an
exporter and CUDA twins for every kernel its passes call).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ... import layers as L
from ...export import onnx_layers as onnx
from ..marker import hookimpl


@dataclass(frozen=True)
class BuiltinLayer:
    """A built-in layer: its registry ``name``, its ``layer`` class and its ONNX ``exporter``."""

    name: str
    layer: type
    exporter: Callable


BUILTIN_LAYERS = (
    BuiltinLayer("dense", L.Dense, onnx.export_dense),
    BuiltinLayer("conv1d", L.Conv1D, onnx.export_conv),
    BuiltinLayer("conv2d", L.Conv2D, onnx.export_conv),
    BuiltinLayer("maxpool1d", L.MaxPool1D, onnx.export_maxpool),
    BuiltinLayer("maxpool2d", L.MaxPool2D, onnx.export_maxpool),
    BuiltinLayer("avgpool2d", L.AvgPool2D, onnx.export_avgpool),
    BuiltinLayer("relu", L.ReLU, onnx.export_relu),
    BuiltinLayer("sigmoid", L.Sigmoid, onnx.export_sigmoid),
    BuiltinLayer("tanh", L.Tanh, onnx.export_tanh),
    BuiltinLayer("silu", L.SiLU, onnx.export_silu),
    BuiltinLayer("dropout", L.Dropout, onnx.export_dropout),
    BuiltinLayer("flatten", L.Flatten, onnx.export_flatten),
    BuiltinLayer("lstm", L.LSTM, onnx.export_lstm),
    BuiltinLayer("gru", L.GRU, onnx.export_gru),
    BuiltinLayer("frozen", L.Frozen, onnx.export_frozen),
    BuiltinLayer("residual", L.Residual, onnx.export_residual),
    BuiltinLayer("batchnorm1d", L.BatchNorm1D, onnx.export_batchnorm),
    BuiltinLayer("batchnorm2d", L.BatchNorm2D, onnx.export_batchnorm),
    BuiltinLayer("layernorm", L.LayerNorm, onnx.export_layernorm),
    BuiltinLayer("convtranspose2d", L.ConvTranspose2D, onnx.export_convtranspose),
    BuiltinLayer("upsample2d", L.Upsample2D, onnx.export_upsample),
    BuiltinLayer("globalavgpool2d", L.GlobalAvgPool2D, onnx.export_globalavgpool),
    BuiltinLayer("gelu", L.GELU, onnx.export_gelu),
    BuiltinLayer("multiheadattention", L.MultiHeadAttention, onnx.export_multiheadattention),
    BuiltinLayer("embedding", L.Embedding, onnx.export_embedding),
    BuiltinLayer("positionalembedding", L.PositionalEmbedding, onnx.export_positional_embedding),
    BuiltinLayer("globalavgpool1d", L.GlobalAvgPool1D, onnx.export_globalavgpool1d),
)


@hookimpl
def nkernels_register_layers():
    """The built-in layers by registry name."""
    return {row.name: row.layer for row in BUILTIN_LAYERS}


@hookimpl
def nkernels_register_exporters():
    """The built-in layers' ONNX exporters by layer registry name (``onnx`` is imported only on export)."""
    return {row.name: row.exporter for row in BUILTIN_LAYERS}
