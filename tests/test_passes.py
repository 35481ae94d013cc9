"""Pass descriptions: the vocabulary, both paths from one description, and what the compiled step takes as arguments."""
import warnings

import numpy as np
import pytest

import nkernels as nk
from nkernels.compiled import CompiledOp
from nkernels.compiled.step import generate
from nkernels.passes import NEED_DX, X, Y, Call, Const, LayerPasses, Scalar, param, work
from nkernels.testing import registered_plugin

L = nk.layers


def source(model, shape=(16, 64), loss=None, optimizer=None):
    return generate(model, loss or nk.losses.SoftmaxCrossEntropy(), optimizer or nk.optimizers.Adam(), shape).source


def test_operands_are_checked_when_described():
    assert Const(np.float32(0.25)).value == 0.25 and type(Const(np.float32(0.25)).value) is float
    assert type(Const(np.int64(3)).value) is int and Const(np.bool_(True)).value is True
    for bad in ("3", float("nan"), float("inf"), None, [1]):
        with pytest.raises(TypeError, match="a Const must be"):
            Const(bad)
    with pytest.raises(TypeError, match="wrap numbers in Const or Scalar"):
        Call("relu_forward", X, 0.5)
    with pytest.raises(ValueError, match="must be an identifier"):
        Call("relu forward", X)
    with pytest.raises(ValueError, match="workspace 'cols', which is not declared"):
        LayerPasses(forward=(Call("k", X, work("cols"), Y),), backward=())


def test_values_that_vary_between_runs_are_arguments_not_source():
    """Dropout seeds and rates, and a plugin's constants, compile nothing new (they were literals)."""
    from nkernels_activations import LeakyReLU

    def model(p, seed, slope):
        return nk.Sequential([L.Dense(64, 16), L.Dropout(p, seed=seed), LeakyReLU(slope), L.Dense(16, 10)], seed=0)

    assert source(model(0.1, 1, 0.01)) == source(model(0.5, 2, 0.3)) == source(model(0.2, None, 1e-5))


def test_constants_render_from_their_type_never_by_repr():
    from nkernels.compiled.render import literal

    assert literal(Const(np.float32(0.5)).value) == "0.5"  # repr of a NumPy scalar is np.float32(0.5)
    assert literal(Const(np.int64(7)).value) == "7" and literal(Const(np.bool_(False)).value) == "False"
    assert literal(7, specialize=False) == "int64(7)" and literal(False, specialize=False) == "bool_(False)"
    assert literal(Const(1e-300).value) == "1e-300"


def test_convolution_options_and_need_dx_reach_the_kernels_as_plain_values():
    """A bare ``2`` or ``True`` in the generated source is typed by Numba as ``Literal[int](2)``, and the
    kernel it reaches is compiled again for that value: every new stride or padding of a convolution
    cost 18-20 s of compiling instead of about 5, and ``need_dx`` compiled each backward twice. A pool's
    window is plain too (no step-time gain from the literal); a Const left to specialize (LayerNorm's
    width) stays literal."""
    import ast

    from numba import njit, types

    from nkernels.compiled.render import literal

    model = nk.Sequential([L.Conv2D(1, 4, 3, stride=2, padding=1), L.ReLU(),
                           L.Residual([L.Conv2D(4, 4, 3, padding=1), L.ReLU(), L.Conv2D(4, 4, 3, padding=1)]),
                           L.MaxPool2D(2), L.Flatten(), L.Dense(16, 10)], seed=0)
    calls = [node for node in ast.walk(ast.parse(source(model, (16, 1, 8, 8))))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]

    def bare(op):
        args = [arg for call in calls if call.func.id == op for arg in call.args]
        assert args, op
        return [arg.value for arg in args if isinstance(arg, ast.Constant) and not isinstance(arg.value, float)]

    assert bare("conv2d_forward") == bare("conv2d_backward") == bare("dense_backward") == []
    assert bare("maxpool2d_forward") == []
    calls = [node for node in ast.walk(ast.parse(source(nk.Sequential([L.Dense(4, 6), L.LayerNorm(6)], seed=0),
                                                         (8, 4))))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert bare("layernorm_affine_forward") == [6] * 2  # run_batches, half_batch_gradients
    with pytest.raises(TypeError, match="specialize must be a bool"):
        Const(2, specialize="no")
    assert Const(2, specialize=np.bool_(False)).specialize is False  # kept as Python's bool, as the value

    @njit
    def kernel(k, flag):
        return k if flag else -k

    namespace = {"kernel": kernel}
    exec(f"from numpy import bool_, int64\ndef call():\n    return kernel({literal(2, False)}, {literal(True, False)})",
         namespace)
    assert njit(namespace["call"])() == 2
    assert kernel.signatures == [(types.int64, types.boolean)]


def test_flatten_is_a_view_on_both_paths():
    model = nk.Sequential([L.Conv2D(1, 2, 3, padding=1), L.Flatten(), L.Dense(128, 10)], seed=0)
    assert "flatten" not in source(model, (16, 1, 8, 8))
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    assert np.shares_memory(L.Flatten().forward(x), x)


def test_the_first_layers_input_gradient_is_skipped_unless_asked_for(digits):
    """The layer-by-layer path computed the first layer's input gradient every step (nothing used it)."""
    from nkernels.plugins.kernels import KernelRecord, kernel

    dense_backward = kernel("dense_backward")
    seen = []

    def spy(x, dy, weight, need_dx, dx, dweight, dbias):
        seen.append((x.shape[1], bool(need_dx)))
        dense_backward(x, dy, weight, need_dx, dx, dweight, dbias)

    class Plugin:
        @nk.hookimpl
        def nkernels_register_kernels(self):
            return [KernelRecord("dense_backward", "cpu", spy, priority=1)]

    X, y = digits[0][:64], digits[1][:64]
    with registered_plugin(Plugin()):
        model = nk.Sequential([L.Dense(64, 8), L.ReLU(), L.Dense(8, 10)], seed=0)
        nk.train(model, X, y, epochs=1, batch_size=32)  # a Python kernel: the layer-by-layer path
        assert seen and all(need == (width == 8) for width, need in seen), seen
        seen.clear()
        out = model.forward(X[:4], training=True)
        dx = model.backward(np.ones_like(out))  # asked for: the public backward returns dx
        assert dx.shape == (4, 64) and (64, True) in seen


def test_layers_below_the_first_trainable_one_run_no_backward(digits):
    class Shift(nk.layers.Layer):  # a plugin layer with Python passes and no parameters
        calls = 0

        def forward(self, x, training=False):
            return np.asarray(x) + 1.0

        def backward(self, dy):
            Shift.calls += 1
            return dy

    model = nk.Sequential([Shift(), L.Dense(64, 10)], seed=0)
    nk.train(model, digits[0][:64], digits[1][:64], epochs=1, batch_size=32)
    assert Shift.calls == 0
    out = model.forward(digits[0][:4], training=True)
    model.backward(np.ones_like(out))
    assert Shift.calls == 1


def test_a_legacy_template_still_compiles_with_a_deprecation_warning(digits):
    class OldReLU(nk.layers.Layer):
        """A plugin layer of the previous release: Python passes plus a CompiledOp template."""

        def forward(self, x, training=False):
            self.y = np.maximum(np.asarray(x, np.float32), 0)
            return self.y

        def backward(self, dy):
            return np.where(self.y > 0, dy, 0).astype(np.float32)

        def output_shape(self, input_shape):
            return tuple(input_shape)

        def compiled_op(self, input_shape, dtype):
            return CompiledOp(forward="relu_forward({x_flat}, {y_flat})",
                              backward="relu_backward({y_flat}, {dy_flat}, {dx_flat})",
                              ops=("relu_forward", "relu_backward"))

    X, y = digits[0][:96], digits[1][:96]
    results = []
    for compiled in (True, False):
        model = nk.Sequential([L.Dense(64, 16), OldReLU(), L.Dense(16, 10)], seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = nk.train(model, X, y, epochs=2, batch_size=32, seed=0, compiled=compiled)
        results.append((history["loss"], model.params))
        if compiled:
            assert any(issubclass(w.category, DeprecationWarning) and "Layer.passes()" in str(w.message)
                       for w in caught)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    for key in results[0][1]:
        np.testing.assert_allclose(results[0][1][key], results[1][1][key], rtol=1e-5, atol=1e-6)


def test_hyperparameters_are_read_afresh_at_every_run(digits):
    """The compiled step takes the optimizer's scalars by name at each run: a changed lr applies at once."""
    from nkernels.trainers import CompiledTrainer, LayerwiseTrainer

    X, y = digits[0][:64].astype(np.float64), digits[1][:64].astype(np.int64)
    results = []
    for compiled in (True, False):
        model = nk.Sequential([L.Dense(64, 10)], seed=0, dtype="float64")
        optimizer = nk.optimizers.SGD(lr=0.1, momentum=0.9, clip_norm=0.5, max_norm=0.8)
        loss = nk.losses.SoftmaxCrossEntropy()
        trainer = (CompiledTrainer.build(model, loss, optimizer, (64,), 32, split_batches=False) if compiled
                   else LayerwiseTrainer(model, loss, optimizer, (64,)))
        trainer.run(X, y, np.arange(64), 0, 1, 32)
        optimizer.lr = 0.01
        trainer.run(X, y, np.arange(64), 32, 1, 32)
        results.append(model.params["0.weight"].copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_scalars_are_read_by_name():
    layer = L.Dropout(0.25, seed=1)
    assert layer.scalars() == {"p": 0.25}
    assert set(nk.optimizers.Adam(clip_norm=1.0).scalars()) == {"lr", "beta1", "beta2", "eps", "weight_decay",
                                                                  "clip_norm"}
    assert Scalar("p") in layer.passes((2, 3)).forward[0].args
    assert param("weight") in L.Dense(3, 2).passes((2, 3)).forward[0].args
    assert NEED_DX in L.Dense(3, 2).passes((2, 3)).backward[0].args


def test_a_generated_file_is_imported_only_when_it_holds_its_source(tmp_path, monkeypatch):
    """The cache imported whatever file stood at the hashed path; a cut-short or edited one is now rewritten."""
    import hashlib

    from nkernels.runtime.cache import load_generated_module

    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path))
    source = "VALUE = 42\n"
    name = f"nk_test_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    path = tmp_path / "tests" / f"{name}.py"
    path.parent.mkdir()
    path.write_text("raise RuntimeError('not the generated source')\n")
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    assert load_generated_module(source, "tests", "nk_test").VALUE == 42
    assert path.read_text() == source


def test_a_step_is_rendered_once_per_recipe_and_anything_that_shapes_it_makes_another(monkeypatch):
    """A second model like the first (each ``nk.train`` of a sweep) takes the step rendered for the
    first; another layer size or option, batch shape, optimizer, flag or kernel in force for an op
    takes a step of its own, the one a process that never saw the first would render."""
    from nkernels.compiled import step as step_module
    from nkernels.plugins import kernels as kernel_records

    def mlp(width=32, activation=L.ReLU):
        return nk.Sequential([L.Dense(64, width), activation(), L.Dense(width, 10)], seed=0)

    loss, adam = nk.losses.SoftmaxCrossEntropy(), nk.optimizers.Adam()
    first = generate(mlp(), loss, adam, (16, 64))
    assert generate(mlp(), loss, nk.optimizers.Adam(lr=0.5), (16, 64)) is first  # rates are arguments
    found = kernel_records.kernel

    def with_a_plugin_relu(op, device="cpu"):
        return found("tanh_forward" if op == "relu_forward" else op, device)

    recipes = [(mlp, (48,), adam, (16, 64), {}), (mlp, (32, L.Tanh), adam, (16, 64), {}),
               (mlp, (), adam, (8, 64), {}), (mlp, (), nk.optimizers.SGD(momentum=0.9), (16, 64), {}),
               (mlp, (), adam, (16, 64), {"input_grad": True}), (mlp, (), adam, (16, 64), {"trainable_layers": [2]}),
               (mlp, (), adam, (16, 64), {"plugin": True})]
    for build, args, optimizer, shape, options in recipes:
        if options.pop("plugin", False):
            monkeypatch.setattr(kernel_records, "kernel", with_a_plugin_relu)
        got = generate(build(*args), loss, optimizer, shape, **options)
        with monkeypatch.context() as fresh_process:
            fresh_process.setattr(step_module, "_GENERATED", type(step_module._GENERATED)())
            fresh = generate(build(*args), loss, optimizer, shape, **options)
        monkeypatch.undo()
        assert got is not first
        assert (got.source, got.bindings, got.passes, got.grads) == (fresh.source, fresh.bindings, fresh.passes,
                                                                     fresh.grads)
    assert "import tanh_forward as _relu_forward" in got.source
