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


def export_batchnorm(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """BatchNorm1D and BatchNorm2D: ``BatchNormalization`` with the running statistics, as in evaluation
    mode (the exported graph is an inference graph)."""
    p, b = layer.params, layer.buffers
    inputs = [x, graph.weight(p["weight"], "scale"), graph.weight(p["bias"], "bias"),
              graph.weight(b["running_mean"], "running_mean"), graph.weight(b["running_var"], "running_var")]
    return graph.node("BatchNormalization", inputs, epsilon=layer.eps)


def export_layernorm(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """LayerNorm: ``LayerNormalization`` over the trailing dimensions from opset 17 on (a scale of ones
    without ``elementwise_affine``); before that ReduceMean, Sub, Mul, Sqrt and Div."""
    k = len(layer.normalized_shape)
    weight = graph.weight(layer.params["weight"], "weight") if layer.elementwise_affine else None
    bias = graph.weight(layer.params["bias"], "bias") if layer.use_bias else None
    if graph.opset >= 17:
        scale = weight or graph.weight(np.ones(layer.normalized_shape), "ones")
        return graph.node("LayerNormalization", [x, scale] + ([bias] if bias else []), axis=-k, epsilon=layer.eps)
    axes = list(range(-k, 0))
    centred = graph.node("Sub", [x, graph.node("ReduceMean", [x], axes=axes, keepdims=1)], hint="centred")
    variance = graph.node("ReduceMean", [graph.node("Mul", [centred, centred])], axes=axes, keepdims=1)
    std = graph.node("Sqrt", [graph.node("Add", [variance, graph.weight(np.array(layer.eps), "eps")])])
    out = graph.node("Div", [centred, std], hint="normalised")
    if weight:
        out = graph.node("Mul", [out, weight])
    if bias:
        out = graph.node("Add", [out, bias])
    return out
def export_convtranspose(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """ConvTranspose2D: ``ConvTranspose`` with the same weight (in, out, kh, kw), strides, symmetric padding
    and ``output_padding``."""
    inputs = [x, graph.weight(layer.params["weight"], "weight")]
    if layer.use_bias:
        inputs.append(graph.weight(layer.params["bias"], "bias"))
    return graph.node("ConvTranspose", inputs, kernel_shape=list(layer.kernel), strides=list(layer.strides),
                      pads=list(layer.paddings) * 2, output_padding=list(layer.output_paddings))


def export_upsample(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Upsample2D: ``Resize`` (nearest, ``asymmetric`` coordinates rounded down: output pixel i reads input
    pixel i // scale_factor) with scales (1, 1, s, s)."""
    s = float(layer.scale_factor)
    scales = graph.constant(np.array([1.0, 1.0, s, s], np.float32), "scales")
    return graph.node("Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                      nearest_mode="floor")


def export_globalavgpool(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """GlobalAvgPool2D: ``GlobalAveragePool`` ((N, C, 1, 1)), then ``Flatten(axis=1)``."""
    return graph.node("Flatten", [graph.node("GlobalAveragePool", [x])], axis=1)
def export_gelu(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """GELU: ``Gelu`` from opset 20 on; before that ``0.5 * x * (1 + Erf(x / sqrt(2)))``, or for
    ``approximate="tanh"`` ``0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``."""
    if graph.opset >= 20:
        return graph.node("Gelu", [x], approximate=layer.approximate)
    const = lambda value, hint: graph.weight(np.array(value), hint)  # noqa: E731 (a scalar, broadcast)
    if layer.approximate == "none":
        inner = graph.node("Erf", [graph.node("Mul", [x, const(np.sqrt(0.5), "sqrt_half")])])
    else:
        cube = graph.node("Mul", [graph.node("Mul", [x, x]), x], hint="cube")
        cubic = graph.node("Add", [x, graph.node("Mul", [cube, const(0.044715, "cubic")])])
        inner = graph.node("Tanh", [graph.node("Mul", [cubic, const(np.sqrt(2.0 / np.pi), "sqrt_2_over_pi")])])
    half_x = graph.node("Mul", [x, const(0.5, "half")])
    return graph.node("Mul", [half_x, graph.node("Add", [inner, const(1.0, "one")])], hint="gelu")


def export_multiheadattention(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """MultiHeadAttention as standard ops: MatMul projections (+ Add for the biases), Reshape and
    Transpose into heads (N, H, T, D), ``MatMul(q, k^T) * 1/sqrt(D)`` (+ a constant mask of -inf
    above the diagonal when causal), ``Softmax`` over the keys, ``MatMul`` with v, the heads put
    back side by side, and the output projection. Dropout is left out, as at inference."""
    from ..runtime import devices

    e, h = layer.embed_dim, layer.num_heads
    t, d = input_shape[1], e // h
    weight = np.asarray(devices.to_host(layer.params["in_proj_weight"]))
    bias = np.asarray(devices.to_host(layer.params["in_proj_bias"])) if layer.use_bias else None

    def project(w: np.ndarray, b: Any, value: str, hint: str) -> str:
        out = graph.node("MatMul", [value, graph.weight(w.T, hint + "_weight")], hint=hint)
        return out if b is None else graph.node("Add", [out, graph.weight(b, hint + "_bias")], hint=hint)

    split = graph.constant(np.array([0, 0, h, d], np.int64), "heads_shape")  # 0: keep N and T (dynamic batch)
    q, k, v = (graph.node("Reshape", [project(weight[i * e:(i + 1) * e], None if bias is None else
                                              bias[i * e:(i + 1) * e], x, name), split])
               for i, name in enumerate(("q", "k", "v")))
    q = graph.node("Transpose", [q], perm=[0, 2, 1, 3])  # (N, H, T, D)
    k = graph.node("Transpose", [k], perm=[0, 2, 3, 1])  # (N, H, D, T)
    v = graph.node("Transpose", [v], perm=[0, 2, 1, 3])
    scores = graph.node("Mul", [graph.node("MatMul", [q, k]), graph.weight(np.array(1.0 / np.sqrt(d)), "scale")],
                        hint="scores")
    if layer.causal:
        future = np.triu(np.full((t, t), -np.inf), 1)
        scores = graph.node("Add", [scores, graph.weight(future, "causal_mask")], hint="scores")
    weights = graph.node("Softmax", [scores], axis=-1, hint="attention")
    heads = graph.node("Transpose", [graph.node("MatMul", [weights, v])], perm=[0, 2, 1, 3])  # (N, T, H, D)
    context = graph.node("Reshape", [heads, graph.constant(np.array([0, 0, e], np.int64), "embed_shape")],
                         hint="context")
    out_bias = layer.params["out_proj_bias"] if layer.use_bias else None
    return project(np.asarray(devices.to_host(layer.params["out_proj_weight"])),
                   None if out_bias is None else devices.to_host(out_bias), context, "out")
def export_embedding(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """Embedding: ``Gather(weight, indices, axis=0)`` on the int64 indices."""
    return graph.node("Gather", [graph.weight(layer.params["weight"], "weight"), x], axis=0)


def export_positional_embedding(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """PositionalEmbedding: ``Add`` of the table's first T rows (T, the exported sequence length),
    stored as an initializer."""
    from ..runtime import devices

    rows = np.asarray(devices.to_host(layer.params["weight"]))[:input_shape[1]]
    return graph.node("Add", [x, graph.weight(rows, "positions")])


def export_globalavgpool1d(layer: Any, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """GlobalAvgPool1D: ``ReduceMean`` over axis 1 without keeping it (the axes an input from opset 18 on)."""
    if graph.opset >= 18:
        return graph.node("ReduceMean", [x, graph.constant(np.array([1], np.int64), "axes")], keepdims=0)
    return graph.node("ReduceMean", [x], axes=[1], keepdims=0)
