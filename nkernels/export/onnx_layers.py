"""The ONNX exporters of the built-in layers, registered from :mod:`nkernels.plugins.builtins.layers`.

Each is ``exporter(layer, graph, x, input_shape) -> output name`` (see
:class:`nkernels.export.onnx_export.OnnxGraph`). Parameters follow PyTorch's layouts, which ONNX's
Gemm and Conv take as they are; the recurrent layers reorder their gates (below).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_export import OnnxGraph

#: the blocks of PyTorch's LSTM gates (i, f, g, o) in ONNX's order (i, o, f, c)
LSTM_GATE_ORDER = (0, 3, 1, 2)
#: the blocks of PyTorch's GRU gates (r, z, n) in ONNX's order (z, r, h)
GRU_GATE_ORDER = (1, 0, 2)


def export_dense(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Dense: ``Gemm(x, weight, bias, transB=1)``, the weight kept as (out, in); on (N, ..., in)
    inputs, which Gemm does not take, ``MatMul(x, weight.T)`` then ``Add(bias)``."""
    from ..runtime import devices

    if len(input_shape) > 2:
        weight_t = graph.weight(np.asarray(devices.to_host(layer.params["weight"])).T, "weight_t")
        y = graph.node("MatMul", [x, weight_t])
        return graph.node("Add", [y, graph.weight(layer.params["bias"], "bias")]) if layer.use_bias else y
    inputs = [x, graph.weight(layer.params["weight"], "weight")]
    if layer.use_bias:
        inputs.append(graph.weight(layer.params["bias"], "bias"))
    return graph.node("Gemm", inputs, transB=1)


def export_conv(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Conv1D and Conv2D: ``Conv`` with the same weight (out, in, k...), strides and symmetric padding."""
    inputs = [x, graph.weight(layer.params["weight"], "weight")]
    if layer.use_bias:
        inputs.append(graph.weight(layer.params["bias"], "bias"))
    pads = list(layer.paddings) * 2  # begins of every spatial axis, then ends
    return graph.node("Conv", inputs, kernel_shape=list(layer.kernel), strides=list(layer.strides), pads=pads)


def _pool(op_type: str, layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    spatial = len(input_shape) - 2
    return graph.node(op_type, [x], kernel_shape=[layer.kernel_size] * spatial, strides=[layer.stride] * spatial)


def export_maxpool(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """MaxPool1D and MaxPool2D: ``MaxPool`` without padding, floor mode."""
    return _pool("MaxPool", layer, graph, x, input_shape)


def export_avgpool(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """AvgPool2D: ``AveragePool`` without padding, floor mode."""
    return _pool("AveragePool", layer, graph, x, input_shape)


def export_relu(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """ReLU: ``Relu``."""
    return graph.node("Relu", [x])


def export_sigmoid(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Sigmoid: ``Sigmoid``."""
    return graph.node("Sigmoid", [x])


def export_tanh(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Tanh: ``Tanh``."""
    return graph.node("Tanh", [x])


def export_silu(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """SiLU: ``Swish`` from opset 24 on, before that ``Mul(x, Sigmoid(x))``."""
    if graph.opset >= 24:
        return graph.node("Swish", [x])
    return graph.node("Mul", [x, graph.node("Sigmoid", [x])], hint="silu")


def export_dropout(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Dropout: ``Identity``, as at inference (``training=False``)."""
    return graph.node("Identity", [x])


def export_flatten(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Flatten: ``Flatten(axis=1)``."""
    return graph.node("Flatten", [x], axis=1)


def _gates(array: Any, order: tuple[int, ...]) -> np.ndarray:
    """The gate blocks of ``array`` (stacked on axis 0) in ``order``."""
    from ..runtime import devices

    blocks = np.split(np.asarray(devices.to_host(array)), len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _recurrent(op_type: str, order: tuple[int, ...], layer: Any, graph: OnnxGraph, x: str,
               **attributes: Any) -> str:
    """LSTM/GRU over batch-first ``x`` (N, T, I): ONNX runs time-first, one direction, zero initial state."""
    p = layer.params
    w = graph.weight(_gates(p["weight_ih"], order)[None], "W")
    r = graph.weight(_gates(p["weight_hh"], order)[None], "R")
    b = graph.weight(np.concatenate([_gates(p["bias_ih"], order), _gates(p["bias_hh"], order)])[None], "B")
    time_first = graph.node("Transpose", [x], perm=[1, 0, 2])
    outputs = ["Y", "Y_h"] if layer.return_sequences else ["", "Y_h"]
    y, y_h = graph.node(op_type, [time_first, w, r, b], outputs, hidden_size=layer.hidden_size, **attributes)[:2]
    if layer.return_sequences:  # Y is (T, 1 direction, N, H)
        steps = graph.node("Squeeze", [y, graph.constant(np.array([1], np.int64), "axes")])
        return graph.node("Transpose", [steps], perm=[1, 0, 2])
    return graph.node("Squeeze", [y_h, graph.constant(np.array([0], np.int64), "axes")])  # Y_h is (1, N, H)


def export_lstm(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """LSTM: ONNX ``LSTM`` with the gates reordered from PyTorch's i, f, g, o to ONNX's i, o, f, c."""
    return _recurrent("LSTM", LSTM_GATE_ORDER, layer, graph, x)


def export_gru(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """GRU: ONNX ``GRU`` (z, r, h from PyTorch's r, z, n) with ``linear_before_reset=1``, PyTorch's
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``."""
    return _recurrent("GRU", GRU_GATE_ORDER, layer, graph, x, linear_before_reset=1)


def export_frozen(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Frozen: the wrapped Sequential's layers inline, or the exporter registered for the extractor's class."""
    return graph.export(layer.extractor, x, input_shape, scope=graph.fresh("frozen") + "/")


def export_residual(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Residual: the body's layers inline, the shortcut's (or the input itself), then ``Add``."""
    from ..model import Sequential

    scope = graph.fresh("residual")
    body = graph.export(Sequential(layer.body), x, input_shape, scope=scope + "/body/")
    other = x if layer.shortcut is None else graph.export(Sequential(layer.shortcut), x, input_shape,
                                                          scope=scope + "/shortcut/")
    return graph.node("Add", [body, other])


def export_embedding(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Embedding: ``Gather(weight, indices, axis=0)`` on the int64 indices."""
    return graph.node("Gather", [graph.weight(layer.params["weight"], "weight"), x], axis=0)


def export_positional_embedding(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """PositionalEmbedding: ``Add`` of the table's first T rows (T, the exported sequence length),
    stored as an initializer."""
    from ..runtime import devices

    rows = np.asarray(devices.to_host(layer.params["weight"]))[:input_shape[1]]
    return graph.node("Add", [x, graph.weight(rows, "positions")])


def export_global_avg_pool1d(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """GlobalAvgPool1D: ``ReduceMean`` over axis 1 without keeping it (the axes an input from opset 18 on)."""
    if graph.opset >= 18:
        return graph.node("ReduceMean", [x, graph.constant(np.array([1], np.int64), "axes")], keepdims=0)
    return graph.node("ReduceMean", [x], axes=[1], keepdims=0)
