"""nk.export_onnx: every layer round-trips through onnxruntime; plugins export through their own hook."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import nkernels as nk
from nkernels.errors import PluginConflictError
from nkernels.export.onnx_export import NoExporterError
from nkernels.testing import OnnxMismatch, check_onnx_export, registered_plugin
from layer_cases import CASES, kink_free_input

L = nk.layers


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|, in float64."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30)


def assert_round_trip(model, input_shape, batches=(None,), rng=None):
    """Export ``model`` for ``input_shape`` and compare onnxruntime with ``model.forward`` at each batch size."""
    rng = rng or np.random.default_rng(0)
    inputs = [rng.standard_normal((batch or input_shape[0],) + tuple(input_shape[1:])) for batch in batches]
    check_onnx_export(model, input_shape, inputs, rtol=1e-5)


@pytest.mark.parametrize("make, shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_layer_round_trips(make, shape):
    """Each built-in layer alone: the same outputs, at the exported batch size and at another (dynamic batch)."""
    model = nk.Sequential([make()], seed=3)
    if model.layers[0].input_dtype is not None:  # indices (int64 in the graph) must be valid ones
        rng = np.random.default_rng(0)
        check_onnx_export(model, shape, [kink_free_input(model.layers[0], (batch,) + shape[1:], rng)
                                         for batch in (shape[0], shape[0] + 2)])
        return
    assert_round_trip(model, shape, batches=(None, shape[0] + 2))


@pytest.mark.parametrize("opset, ops", [(17, ["Sigmoid", "Mul"]), (24, ["Swish"])])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_exports_as_swish_where_the_opset_has_it(opset, ops, dtype):
    from nkernels.export.onnx_export import build_onnx

    model = nk.Sequential([L.SiLU()]).astype(dtype)
    assert [node.op_type for node in build_onnx(model, (None, 4), opset=opset).graph.node][:-1] == ops
    x = np.random.default_rng(0).standard_normal((3, 4)) * 10  # both tails of the sigmoid
    check_onnx_export(model, (None, 4), [x], opset=opset)


def test_recurrent_gates_are_reordered():
    """LSTM/GRU weights with every gate block different: a wrong gate order would change the outputs."""
    rng = np.random.default_rng(5)
    for layer in (L.LSTM(3, 4, return_sequences=True), L.GRU(3, 4, return_sequences=True)):
        for value in layer.params.values():
            value[...] = rng.uniform(-1.5, 1.5, value.shape)  # well beyond the default init's range
        assert_round_trip(nk.Sequential([layer]), (2, 6, 3), rng=rng)


@pytest.mark.parametrize("preset, sample", [("mlp", (64,)), ("cnn", (1, 8, 8)), ("lstm", (8, 8))])
def test_presets_export_with_a_dynamic_batch(preset, sample):
    model = nk.presets.build(preset, sample, 10, seed=0)
    assert_round_trip(model, (None,) + sample, batches=(1, 37))


def test_a_trained_model_predicts_the_same_classes(digits, tmp_path):
    X, y, X_test, y_test = digits
    model = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dropout(0.2), L.Dense(32, 10)], seed=0)
    nk.train(model, X, y, epochs=3, batch_size=64, seed=0)
    nk.export_onnx(model, tmp_path / "digits.onnx", (1, 64))
    logits = run_onnx(tmp_path / "digits.onnx", X_test)
    assert relative_error(logits, model.forward(X_test)) <= 1e-5
    np.testing.assert_array_equal(logits.argmax(1), model.predict(X_test).argmax(1))


def test_a_mixed_chain_round_trips():
    """Conv1D, pooling, GRU over the pooled sequence and Dense, in one graph."""

    class ToSequence(L.Layer):
        """(N, C, L) -> (N, L, C), exported as a Transpose by a test plugin."""

        def forward(self, x, training=False):
            return np.ascontiguousarray(self.prepare_input(x, ndim=3).transpose(0, 2, 1))

    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-to-sequence": ToSequence}

        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {ToSequence: lambda layer, graph, x, shape: graph.node("Transpose", [x], perm=[0, 2, 1])}

    with registered_plugin(Plugin()):
        model = nk.Sequential([L.Conv1D(2, 4, 3, padding=1), L.Tanh(), L.MaxPool1D(2), ToSequence(),
                               L.GRU(4, 5), L.Sigmoid(), L.Dense(5, 3)], seed=1)
        assert_round_trip(model, (3, 2, 9), batches=(3, 1))


def test_float64_models_export_as_double_or_as_float(tmp_path):
    dense = nk.Sequential([L.Dense(6, 4), L.Tanh(), L.Dense(4, 2)], seed=0, dtype="float64")
    proto = nk.export_onnx(dense, tmp_path / "d.onnx", (2, 6))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = np.random.default_rng(0).standard_normal((5, 6))
    assert relative_error(run_onnx(tmp_path / "d.onnx", x), dense.forward(x)) <= 1e-12
    lstm = nk.Sequential([L.LSTM(3, 4)], seed=0, dtype="float64")  # onnxruntime has no double LSTM
    nk.export_onnx(lstm, tmp_path / "l.onnx", (2, 5, 3), dtype="float32")
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    assert relative_error(run_onnx(tmp_path / "l.onnx", x.astype(np.float32)), lstm.forward(x)) <= 1e-5


def test_plugin_layers_export_through_the_activations_plugin():
    """nkernels-activations registers its exporters through the hook: LeakyReLU and ELU round-trip."""
    leaky, elu = nk.registry.layers["leaky_relu"], nk.registry.layers["elu"]
    assert nk.registry.exporters.provider("leaky_relu").distribution == "nkernels-activations"
    model = nk.Sequential([L.Dense(5, 6), leaky(0.2), L.Dense(6, 4), elu(0.7)], seed=0)
    assert_round_trip(model, (None, 5), batches=(4,))


class Square(L.Layer):
    """A plugin layer: x * x."""

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        return x * x


def export_square(layer, graph, x, input_shape):
    return graph.node("Mul", [x, x])


def test_a_plugin_layer_without_exporter_is_a_clear_error(tmp_path):
    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-square": Square}

    with registered_plugin(Plugin(), name="squares"):
        model = nk.Sequential([L.Dense(3, 3), Square()])
        with pytest.raises(NoExporterError, match=r"layer 1 \(Square, registered as 'test-square' by plugin "
                                                  r"'squares'.*has no ONNX exporter.*nkernels_register_exporters"):
            nk.export_onnx(model, tmp_path / "m.onnx", (1, 3))
    assert not (tmp_path / "m.onnx").exists()


def test_plugins_register_exporters_by_name_or_class():
    """The hook's worked example: one exporter by registry name, one by class."""

    class Scale(L.Layer):
        def __init__(self, n=3):
            self.params["scale"] = np.linspace(0.5, 2.0, n).astype(np.float32)
            self.grads["scale"] = np.zeros(n, np.float32)

        def forward(self, x, training=False):
            return self.prepare_input(x) * self.params["scale"]

    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-square": Square, "test-scale": Scale}

        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {"test-square": export_square,
                    Scale: lambda layer, graph, x, shape: graph.node("Mul", [x, graph.weight(layer.params["scale"])])}

    with registered_plugin(Plugin(), name="shapes"):
        assert nk.registry.exporters["test-square"] is export_square
        assert nk.registry.exporters.provider(Scale).plugin == "shapes"
        assert_round_trip(nk.Sequential([Square(), Scale(), L.Dense(3, 2)], seed=0), (4, 3))
        infos = {info.name: info for info in nk.plugins.plugin_infos()}
        assert infos["shapes"].registered["exporters"] == ["test-square", f"{__name__}.{Scale.__qualname__}"]


def test_two_exporters_for_one_layer_are_a_conflict(tmp_path):
    class ByName:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-square": Square}

        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {"test-square": export_square}

    class ByClass:
        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {Square: export_square}

    class SameName:
        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {"test-square": export_square}

    with registered_plugin(ByName(), name="by-name"):
        with registered_plugin(ByClass(), name="by-class"):
            with pytest.raises(PluginConflictError, match="by class from plugin 'by-class'.*'by-name'"):
                nk.export_onnx(nk.Sequential([Square()]), tmp_path / "m.onnx", (1, 2))
        with registered_plugin(SameName(), name="same-name"):  # only a lookup of the contested name raises
            with pytest.raises(PluginConflictError, match="exporter 'test-square' is registered by 2 plugins: "
                                                          "'by-name'.*'same-name'"):
                nk.export_onnx(nk.Sequential([Square()]), tmp_path / "m.onnx", (1, 2))


def test_bad_exporter_registrations_are_reported(fresh_plugins):
    from nkernels.errors import PluginLoadWarning

    class Bad:
        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {3: export_square}

    with pytest.warns(PluginLoadWarning, match="registry name or its class"):
        with registered_plugin(Bad(), name="bad-exporters"):
            assert "dense" in nk.registry.exporters


def test_the_onnx_check_can_fail():
    """check_onnx_export notices an exporter that is off by a little."""

    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-square": Square}

        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {"test-square": lambda layer, graph, x, shape: graph.node(
                "Mul", [export_square(layer, graph, x, shape), graph.weight(np.array(1.0001))])}

    with registered_plugin(Plugin()), pytest.raises(OnnxMismatch, match=r"differ by 0\.0001.*tolerance 1e-05"):
        check_onnx_export(nk.Sequential([Square()]), (3, 4))


def test_frozen_layers_export_what_they_wrap():
    body = nk.Sequential([L.Conv2D(1, 3, 3), L.ReLU(), L.Flatten()], seed=2)
    model = nk.Sequential([L.Frozen(body), L.Dense(3 * 6 * 6, 4)], seed=3)
    assert_round_trip(model, (2, 1, 8, 8), batches=(2, 5))


def test_a_frozen_extractor_without_exporter_is_named(tmp_path):
    class Halve:
        def transform(self, X):
            return np.asarray(X) / 2

    model = nk.Sequential([L.Frozen(Halve()), L.Dense(4, 2)])
    with pytest.raises(NoExporterError, match=r"layer 0/frozen \(Halve\) has no ONNX exporter"):
        nk.export_onnx(model, tmp_path / "m.onnx", (1, 4))

    class Plugin:
        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {Halve: lambda ext, graph, x, shape: graph.node("Mul", [x, graph.weight(np.array(0.5))])}

    with registered_plugin(Plugin()):
        assert_round_trip(model, (3, 4))


class Standardize:
    """The extractor of the nkernels_register_extractors example."""

    def fit(self, X, y=None):
        self.mean_, self.std_ = X.mean(0), X.std(0) + 1e-8
        return self

    def transform(self, X):
        return (X - self.mean_) / self.std_


def export_standardize(extractor, graph, x, input_shape):
    centered = graph.node("Sub", [x, graph.weight(extractor.mean_, "mean")])
    return graph.node("Div", [centered, graph.weight(extractor.std_, "std")])


def test_frozen_extractors_export_through_the_hook(tmp_path):
    """The hook's worked example for extractors: keyed by class, dispatched by Frozen's exporter, also
    inside a frozen Sequential; a registered extractor without one is named with its plugin."""
    X = np.random.default_rng(0).uniform(-3, 5, (20, 8)).astype(np.float32)
    model = nk.Sequential([L.Frozen(Standardize().fit(X)), L.Dense(8, 2)], seed=0)

    class Extractors:
        @nk.hookimpl
        def nkernels_register_extractors(self):
            return {"test-standardize": Standardize}

    class Exporters:
        @nk.hookimpl
        def nkernels_register_exporters(self):
            return {Standardize: export_standardize}

    with registered_plugin(Extractors(), name="scalers"):
        with pytest.raises(NoExporterError, match=r"layer 0/frozen \(Standardize, registered as extractor "
                                                  r"'test-standardize' by plugin 'scalers'.*provides the extractor, "
                                                  r"keyed by its class, can add one"):
            nk.export_onnx(model, tmp_path / "m.onnx", (1, 8))
        with registered_plugin(Exporters(), name="scaler-exporters"):
            assert nk.registry.exporters.provider(Standardize).plugin == "scaler-exporters"
            assert_round_trip(model, (None, 8), batches=(3, 1))
            assert_round_trip(nk.Sequential([L.Frozen(model), L.Tanh()]), (2, 8))


@pytest.mark.parametrize("shape, error, match", [
    ((64,), ValueError, "batch axis first"),
    ((0, 64), ValueError, r"input_shape\[0\] \(the batch size\) must be at least 1, got 0"),
    ((1, 63), ValueError, "Dense"),
    ((1, 64.0), TypeError, r"input_shape\[1\] must be an integer, got 64.0 \(float\)"),
])
def test_bad_input_shapes_are_refused(shape, error, match, tmp_path):
    model = nk.presets.build("mlp", (64,), 10)
    with pytest.raises(error, match=match):
        nk.export_onnx(model, tmp_path / "m.onnx", shape)


def test_bad_arguments_are_refused(tmp_path):
    model = nk.Sequential([L.Dense(2, 2)])
    with pytest.raises(TypeError, match="Sequential or Layer"):
        nk.export_onnx("model", tmp_path / "m.onnx", (1, 2))
    with pytest.raises(ValueError, match="opset must be at least 13, got 11"):
        nk.export_onnx(model, tmp_path / "m.onnx", (1, 2), opset=11)
    with pytest.raises(TypeError, match="float32 or float64"):
        nk.export_onnx(model, tmp_path / "m.onnx", (1, 2), dtype="float16")
    with pytest.raises(ValueError, match="no layers"):
        nk.export_onnx(nk.Sequential([]), tmp_path / "m.onnx", (1, 2))


def test_a_single_layer_exports_and_opset_is_kept(tmp_path):
    proto = nk.export_onnx(L.Dense(2, 3), tmp_path / "m.onnx", (1, 2), opset=13, dynamic_batch=False)
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["output"]
    assert proto.opset_import[0].version == 13
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_missing_onnx_is_a_clear_error(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "nkernels\[onnx\]"'):
        nk.export_onnx(nk.Sequential([L.Dense(2, 2)]), tmp_path / "m.onnx", (1, 2))


@pytest.mark.parametrize("opset, tail", [(17, None), (20, ["Gelu"])])
@pytest.mark.parametrize("approximate, op", [("none", "Erf"), ("tanh", "Tanh")])
def test_gelu_exports_with_erf_or_tanh_and_as_gelu_where_the_opset_has_it(opset, tail, approximate, op):
    from nkernels.export.onnx_export import build_onnx

    model = nk.Sequential([L.GELU(approximate)])  # float32: onnxruntime has no double Erf
    ops = [node.op_type for node in build_onnx(model, (None, 5), opset=opset).graph.node]
    assert ops[:-1] == tail if tail else (op in ops and "Gelu" not in ops)
    x = np.random.default_rng(0).standard_normal((3, 5)) * 4
    check_onnx_export(model, (None, 5), [x], opset=opset, rtol=1e-6)


def test_attention_exports_as_standard_ops():
    """A causal attention block with large weights (a wrong head split or mask would show) in a small
    transformer-style chain, at two batch sizes; only standard ops, no contrib Attention node."""
    from nkernels.export.onnx_export import build_onnx

    attention = L.MultiHeadAttention(8, 4, causal=True)
    rng = np.random.default_rng(2)
    for value in attention.params.values():
        value[...] = rng.uniform(-1.0, 1.0, value.shape)
    model = nk.Sequential([attention, L.GELU(), L.MultiHeadAttention(8, 2)], seed=0)
    ops = {node.op_type for node in build_onnx(model, (None, 5, 8)).graph.node}
    assert {"MatMul", "Softmax", "Reshape", "Transpose"} <= ops and "Attention" not in ops
    assert_round_trip(model, (None, 5, 8), batches=(3, 1), rng=rng)


@pytest.mark.parametrize("opset", [17, 18])
def test_a_token_model_exports_with_int64_inputs(opset):
    """Embedding (Gather), positions (Add of the table's first T rows), Dense on a sequence
    (MatMul, Add) and the mean over tokens (ReduceMean, whose axes became an input in opset 18)."""
    from nkernels.export.onnx_export import build_onnx

    model = nk.Sequential([L.Embedding(9, 4, padding_idx=0), L.PositionalEmbedding(8, 4), L.Dense(4, 6), L.ReLU(),
                           L.GlobalAvgPool1D(), L.Dense(6, 3)], seed=0)
    proto = build_onnx(model, (None, 5), opset=opset)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [n.op_type for n in proto.graph.node][:5] == ["Gather", "Add", "MatMul", "Add", "Relu"]
    tokens = np.random.default_rng(0).integers(0, 9, (7, 5))
    check_onnx_export(model, (None, 5), [tokens, tokens[:1]], opset=opset)
    with pytest.raises(ValueError, match="takes integer indices.*pass inputs"):
        check_onnx_export(model, (None, 5), opset=opset)
