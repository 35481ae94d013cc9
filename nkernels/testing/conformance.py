"""A ready-made conformance suite for layers: subclass it in a test file and pytest runs it all.

Example, in a plugin's ``tests/test_silu.py``::

    from nkernels.testing import LayerConformance
    from nk_silu import SiLU

    class TestSiLU(LayerConformance):
        make_layer = staticmethod(lambda: SiLU())
        input_shapes = [(4, 8), (1, 3, 5)]

pytest then checks, at every input shape: the float64 gradients against finite differences,
float32/float64 outputs, that ``astype`` casts every float array, the config round trip through
JSON, the error for ``backward`` before ``forward``, and that the compiled training step and the
layer-by-layer path compute the same output, input gradient, parameter gradients, update and
buffers. A layer meant to train layer by layer only says so with ``compiled_path = False``.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

import numpy as np

from .gradcheck import check_layer_gradients


class LayerConformance:
    """Mix-in test suite for one layer type; set ``make_layer`` and ``input_shapes``.

    ``inputs(shape, rng)`` may be overridden for layers that need inputs of a special kind
    (away from kinks, positive values, or integer indices for a layer with an ``input_dtype``,
    which must override it: indices stay integers through every check, and have no gradient).
    ``gradient_tolerance`` is the relative tolerance.
    """

    make_layer: Callable[[], Any]
    input_shapes: list[tuple[int, ...]] = []
    gradient_tolerance = 1e-5
    #: how many elements of the input and of each parameter the gradient check samples
    gradient_checks = 200

    def inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """The inputs used by the checks (standard normal by default)."""
        return rng.standard_normal(shape)

    def _cases(self):
        assert self.input_shapes, "set input_shapes to a list of input shapes (batch first)"
        rng = np.random.default_rng(0)
        for shape in self.input_shapes:
            yield shape, self.inputs(shape, rng)

    def test_gradients_float64(self):
        """Analytic gradients match finite differences in float64."""
        for shape, x in self._cases():
            report = check_layer_gradients(self.make_layer(), shape, inputs=x, rtol=self.gradient_tolerance,
                                           max_checks=self.gradient_checks)
            takes_floats = self.make_layer().input_dtype is None  # indices have no gradient
            assert set(report) == {*(["input"] if takes_floats else []), *self.make_layer().params}, \
                "every parameter's gradient is checked"

    def test_dtypes_are_kept(self):
        """float32 and float64 inputs give outputs of the layer's dtype."""
        for shape, x in self._cases():
            for dtype in (np.float32, np.float64):
                layer = self.make_layer().astype(dtype)
                y = layer.forward(_in_dtype(layer, x, dtype), training=True)
                assert np.asarray(y).dtype == dtype, f"forward in {np.dtype(dtype)} returned {np.asarray(y).dtype}"
                assert np.asarray(layer.backward(np.ones_like(y))).dtype == dtype

    def test_output_shape(self):
        """output_shape agrees with the shape forward returns."""
        for shape, x in self._cases():
            layer = self.make_layer()
            assert tuple(layer.output_shape(shape)) == layer.forward(x).shape

    def test_config_round_trip(self):
        """from_config(get_config()) rebuilds an equivalent layer."""
        layer = self.make_layer()
        config = json.loads(json.dumps(layer.get_config()))
        rebuilt = type(layer).from_config(config)
        assert rebuilt.get_config() == config
        assert {k: v.shape for k, v in rebuilt.params.items()} == {k: v.shape for k, v in layer.params.items()}

    def test_backward_before_forward_is_a_clear_error(self):
        """backward before a training forward raises a clear error."""
        layer = self.make_layer()
        shape = self.input_shapes[0]
        dy = np.zeros(layer.output_shape(shape))
        try:
            layer.backward(dy)
        except ValueError:
            return
        raise AssertionError("backward() before forward(training=True) must raise a ValueError")

    def test_astype_casts_every_float_array(self):
        """astype casts parameters, gradients and floating-point buffers; integer buffers keep their dtype."""
        layer = self.make_layer()
        before = {k: np.asarray(v).dtype for k, v in layer.buffers.items()}
        for dtype in (np.float64, np.float32):
            layer.astype(dtype)
            for table in (layer.params, layer.grads):
                for key, value in table.items():
                    assert np.asarray(value).dtype == dtype, f"{key} is {np.asarray(value).dtype} after astype({dtype})"
            for key, value in layer.buffers.items():
                want = np.dtype(dtype) if before[key].kind == "f" else before[key]
                assert np.asarray(value).dtype == want, f"buffer {key} is {np.asarray(value).dtype}, expected {want}"

    #: whether the layer offers the compiled path (a description of its passes, or a template);
    #: set it to False for a layer that is meant to train layer by layer only
    compiled_path = True

    def test_compiled_path_matches_layerwise(self):
        """The compiled training step and the layer-by-layer path compute the same forward output,
        input gradient, parameter gradients, updated parameters and buffers (float64)."""
        from ..compiled.step import describe
        from ..losses import MSE
        from ..model import Sequential
        from ..optimizers import SGD
        from ..trainers import CompiledTrainer

        for shape, x in self._cases():
            layer = self.make_layer().astype(np.float64)
            has_form = describe(layer, shape) is not None
            if not self.compiled_path:
                assert not has_form, (f"{type(layer).__name__} offers a compiled form; drop compiled_path = False "
                                      f"so that the kit checks it")
                return
            assert has_form, (f"{type(layer).__name__} has no compiled form (no passes() description): it trains "
                              f"layer by layer only. Describe its passes, or set compiled_path = False in the test "
                              f"class to say that this is intended")
            X = _in_dtype(layer, np.ascontiguousarray(np.concatenate([x, x[::-1]])), np.float64)
            n = len(X)
            compiled_model = Sequential([copy.deepcopy(layer)])
            reference = Sequential([copy.deepcopy(layer)])
            target = np.random.default_rng(1).standard_normal(reference.output_shape(X.shape))
            trainer = CompiledTrainer.build(compiled_model, MSE(), SGD(lr=0.01), X.shape[1:], n,
                                            split_batches=False, input_grad=True)
            assert trainer is not None, f"{type(layer).__name__}: a kernel of its description has no Numba form"
            trainer.run(X.reshape(n, -1), target.reshape(n, -1), np.arange(n), 0, 1, n)

            loss = MSE()
            out = reference.forward(X, training=True)
            loss.forward(out, target)
            dx = reference.backward(loss.backward())
            grads = {k: np.array(v) for k, v in reference.grads.items()}
            SGD(lr=0.01).step(reference.params, reference.grads)

            close = dict(rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(trainer.output(n), out, **close, err_msg="forward output")
            np.testing.assert_allclose(trainer.input_gradient(n), dx, **close, err_msg="input gradient")
            for key in grads:
                np.testing.assert_allclose(compiled_model.grads[key], grads[key], **close,
                                           err_msg=f"gradient of {key}")
                np.testing.assert_allclose(compiled_model.params[key], reference.params[key], **close,
                                           err_msg=f"updated {key}")
            for key, value in reference.buffers.items():  # running statistics, counters: the same updates
                np.testing.assert_allclose(compiled_model.buffers[key], value, **close, err_msg=f"buffer {key}")


def _in_dtype(layer: Any, x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` cast to the float ``dtype``, or as it is for a layer that takes integer indices."""
    return x if layer.input_dtype is not None else np.ascontiguousarray(x, dtype=dtype)
