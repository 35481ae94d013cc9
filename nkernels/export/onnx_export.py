"""``nk.export_onnx``: write a Sequential as an ONNX model that onnxruntime runs with the same outputs.

Each layer is written by the exporter registered for it through the
``nkernels_register_exporters`` hook (the built-in layers' exporters are in
:mod:`nkernels.export.onnx_layers`). An exporter receives an :class:`OnnxGraph`, adds nodes and
weights to it and returns the name of its output. The ``onnx`` package is an optional extra
(``pip install "nkernels[onnx]"``) imported only when a model is exported.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..validation import check_bool, check_float_dtype, check_int

#: the opset written unless told otherwise (onnxruntime >= 1.14 runs it)
DEFAULT_OPSET = 17
#: the lowest opset the built-in exporters support (Squeeze takes its axes as an input from 13 on)
MIN_OPSET = 13

#: an exporter: ``(layer, graph, x, input_shape) -> output name``
Exporter = Callable[[Any, "OnnxGraph", str, tuple], str]


class NoExporterError(TypeError):
    """A layer (or a frozen extractor) that no plugin registered an ONNX exporter for."""


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f'ONNX export needs the onnx package ({exc}); install the extra: '
                          f'pip install "nkernels[onnx]"') from None
    return onnx


class OnnxGraph:
    """The graph an export builds: exporters add nodes and weights to it.

    ``dtype`` is the model's float dtype (float32 or float64); :meth:`weight` stores arrays in it.
    Names are made unique by the graph, so an exporter only gives hints.
    """

    def __init__(self, dtype: Any, opset: int):
        self.dtype = np.dtype(dtype)
        self.opset = int(opset)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()
        self._scope = ""

    def fresh(self, hint: str) -> str:
        """A name not used yet in this graph, derived from ``hint`` and the current layer's scope."""
        base = f"{self._scope}{hint}" if self._scope else hint
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def weight(self, array: Any, hint: str = "weight") -> str:
        """Add ``array`` as an initializer in the model's float dtype; returns its name."""
        from ..runtime import devices

        return self.constant(np.asarray(devices.to_host(array), dtype=self.dtype), hint)

    def constant(self, array: Any, hint: str = "constant") -> str:
        """Add ``array`` as an initializer in its own dtype (int64 axes, shapes ...); returns its name."""
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, hint: str | None = None,
             **attributes: Any) -> Any:
        """Add one node; returns its output's name (a list of names when ``outputs`` is a count above 1
        or a list). An empty string in ``outputs`` leaves that optional output unused."""
        from onnx import helper

        if isinstance(outputs, int):
            names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        else:
            names = [self.fresh(o) if o else "" for o in outputs]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(f"{op_type}_node"),
                                           **attributes))
        return names[0] if isinstance(outputs, int) and outputs == 1 else names

    def export(self, obj: Any, x: str, input_shape: tuple[int, ...], scope: str = "") -> str:
        """Export ``obj`` (a layer, a Sequential, or an extractor with an exporter) applied to ``x``."""
        from ..model import Sequential

        if isinstance(obj, Sequential):
            return self.export_sequential(obj, x, input_shape, scope)
        exporter = find_exporter(obj, where=scope.rstrip("/") or None)
        outer, self._scope = self._scope, scope
        try:
            return exporter(obj, self, x, tuple(input_shape))
        finally:
            self._scope = outer

    def export_sequential(self, model: Any, x: str, input_shape: tuple[int, ...], scope: str = "") -> str:
        """Export every layer of ``model`` in order, starting from ``x``; returns the last output's name."""
        shape = tuple(input_shape)
        for i, layer in enumerate(model.layers):
            x = self.export(layer, x, shape, scope=f"{scope}{i}/")
            shape = tuple(layer.output_shape(shape))
        return x


def _describe(obj: Any) -> str:
    """``obj``'s class, and the layer or extractor name and plugin it is registered under, if any."""
    from .. import registry
    from ..layers.base import Layer

    text = type(obj).__name__
    table, kind = (registry.layers, "") if isinstance(obj, Layer) else (registry.extractors, "extractor ")
    try:
        name = table.name_of(type(obj))
        entry = table.provider(name)
    except KeyError:
        return text
    return text + f", registered as {kind}{name!r} by plugin {entry.plugin!r} (distribution {entry.distribution})"


def find_exporter(obj: Any, where: str | None = None) -> Exporter:
    """The exporter for ``obj``: registered for its exact class, or for its layer registry name
    (an extractor, which ``Frozen`` exports, by its class only).

    A :class:`NoExporterError` names the layer and says how a plugin adds one; two plugins
    registering exporters for the same layer, one by class and one by name, are a
    :class:`~nkernels.errors.PluginConflictError`.
    """
    from .. import plugins, registry
    from ..errors import PluginConflictError
    from ..layers.base import Layer

    table = plugins.table("exporters")
    by_class = table.get(type(obj))
    by_name = None
    try:
        name = registry.layers.name_of(type(obj))
    except KeyError:
        name = None
    if name is not None:
        by_name = table.get(name)
    if by_class is not None and by_name is not None and by_class.plugin != by_name.plugin:
        raise PluginConflictError(
            f"two ONNX exporters are registered for {type(obj).__name__}: by class from plugin {by_class.plugin!r} "
            f"(distribution {by_class.distribution}) and by name {name!r} from plugin {by_name.plugin!r} "
            f"(distribution {by_name.distribution}); uninstall or disable one "
            f"(NKERNELS_DISABLE_PLUGINS={by_name.plugin})")
    entry = by_class or by_name
    if entry is None:
        at = f"layer {where} " if where else ""
        what = "layer" if isinstance(obj, Layer) else "extractor, keyed by its class,"
        raise NoExporterError(
            f"{at}({_describe(obj)}) has no ONNX exporter, so the model cannot be exported. Exporters exist for: "
            f"{', '.join(sorted(plugins.key_label('exporters', k) for k in table)) or 'none'}. The plugin that "
            f"provides the {what} can add one through the nkernels_register_exporters hook "
            f"(see nkernels.plugins.hookspecs).")
    return entry.value


def _check_input_shape(input_shape: Any) -> tuple[int | None, ...]:
    expected = "input_shape must be the shape of an input batch, batch axis first (e.g. (1, 64))"
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"{expected}, got {input_shape!r}")
    if len(input_shape) < 2:
        raise ValueError(f"{expected}, got {input_shape!r}")
    batch = check_int(input_shape[0], "input_shape[0] (the batch size)", allow_none=True)
    return (batch,) + tuple(check_int(v, f"input_shape[{i}]") for i, v in enumerate(input_shape) if i)


def build_onnx(model: Any, input_shape: Any, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
               dtype: Any = None, input_name: str = "input", output_name: str = "output") -> Any:
    """The ``onnx.ModelProto`` of ``model`` for inputs of ``input_shape`` (see :func:`export_onnx`)."""
    from ..runtime import devices
    from ..layers.base import Layer
    from ..model import Sequential

    onnx = _require_onnx()
    from onnx import TensorProto, helper

    if isinstance(model, Layer):
        model = Sequential([model])
    if not isinstance(model, Sequential):
        raise TypeError(f"export_onnx expects an nkernels Sequential or Layer, got {type(model).__name__}")
    if not model.layers:
        raise ValueError("the model has no layers")
    shape = _check_input_shape(input_shape)
    opset = check_int(opset, "opset", MIN_OPSET)
    dynamic_batch = check_bool(dynamic_batch, "dynamic_batch") or shape[0] is None
    concrete: tuple[int, ...] = (shape[0] or 1,) + tuple(int(d) for d in shape[1:])  # type: ignore[arg-type]
    dtype = check_float_dtype(model.dtype if dtype is None else dtype)
    try:  # one sample through the model: a ValueError names the first layer the shape does not fit
        probe = devices.to_host(model.forward(np.zeros((1,) + shape[1:], model.input_dtype)))
    except ValueError as exc:
        raise ValueError(f"input_shape {tuple(input_shape)} does not fit the model: {exc}") from None
    out_shape = (concrete[0],) + tuple(probe.shape[1:])
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[dtype]
    graph = OnnxGraph(dtype, opset)
    graph._names.update({input_name, output_name})
    out = graph.export_sequential(model, input_name, concrete)
    graph.nodes.append(helper.make_node("Identity", [out], [output_name], name=graph.fresh("output_node")))
    batch = "N" if dynamic_batch else concrete[0]
    indices = np.dtype(model.input_dtype).kind in "iu"  # an Embedding's int64 indices stay integers
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.INT64 if indices else elem, [batch, *concrete[1:]])]
    outputs = [helper.make_tensor_value_info(output_name, elem, [batch, *out_shape[1:]])]
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(helper.make_graph(graph.nodes, "nkernels", inputs, outputs, graph.initializers),
                              opset_imports=opsets, producer_name="nkernels",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, path: str | os.PathLike, input_shape: Any, *, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, dtype: Any = None, input_name: str = "input",
                output_name: str = "output") -> Any:
    """Write ``model`` (a Sequential or a Layer) to ``path`` as an ONNX model; returns the ``onnx.ModelProto``.

    ``input_shape`` is the shape of an input batch, batch axis first, e.g. ``(1, 64)`` for the
    digits MLP or ``(1, 1, 8, 8)`` for the CNN; a batch of ``None`` (or ``dynamic_batch=True``,
    the default) exports a dynamic batch axis named ``"N"``. The graph computes inference
    (``training=False``): Dropout is the identity. The graph's float type is ``dtype``, by
    default the model's: ONNX ``float`` for float32, ``double`` for float64 (onnxruntime's CPU
    provider has no double Conv, AveragePool, LSTM or GRU: pass ``dtype="float32"`` to export a
    float64 model for it). A model whose first layer takes indices (an Embedding) takes int64
    inputs. ``opset`` is the ONNX opset (13 or later). The write is atomic.

    Every layer needs an exporter (``nk.registry.exporters``); a plugin layer without one raises
    :class:`NoExporterError` naming it. Needs the ``onnx`` extra: ``pip install "nkernels[onnx]"``.

    Example::

        nk.export_onnx(model, "digits.onnx", input_shape=(1, 64))
        import onnxruntime as ort
        session = ort.InferenceSession("digits.onnx")
        logits = session.run(None, {"input": X_test})[0]    # model.forward(X_test), to float rounding
    """
    from .io import atomic_write_bytes

    proto = build_onnx(model, input_shape, opset=opset, dynamic_batch=dynamic_batch, dtype=dtype,
                       input_name=input_name, output_name=output_name)
    atomic_write_bytes(path, proto.SerializeToString())
    return proto


__all__ = ["export_onnx", "build_onnx", "find_exporter", "OnnxGraph", "NoExporterError", "Exporter"]
