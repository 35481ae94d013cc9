"""A ready-made conformance suite for layers: subclass it in a test file and pytest runs it all.

Example, in a plugin's ``tests/test_silu.py``::

    from nkernels.testing import LayerConformance
    from nk_silu import SiLU

    class TestSiLU(LayerConformance):
        make_layer = staticmethod(lambda: SiLU())
        input_shapes = [(4, 8), (1, 3, 5)]

pytest then checks, at every input shape: the float64 gradients against finite differences,
float32/float64 outputs, the config round trip through JSON, the error for ``backward`` before
``forward``, and, where the layer offers a compiled path, that the compiled training step and
the layer-by-layer one give the same numbers.
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
    (away from kinks, positive values). ``gradient_tolerance`` is the relative tolerance.
    """

    make_layer: Callable[[], Any]
    input_shapes: list[tuple[int, ...]] = []
    gradient_tolerance = 1e-5

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
            check_layer_gradients(self.make_layer(), shape, inputs=x, rtol=self.gradient_tolerance)

    def test_dtypes_are_kept(self):
        """float32 and float64 inputs give outputs of the layer's dtype."""
        for shape, x in self._cases():
            for dtype in (np.float32, np.float64):
                layer = self.make_layer().astype(dtype)
                y = layer.forward(x.astype(dtype), training=True)
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

    def test_compiled_path_matches_layerwise(self):
        """A layer with a compiled path trains to the same numbers on both paths."""
        from ..compiled.step import CompiledTrainer
        from ..losses import MSE
        from ..model import Sequential
        from ..optimizers import SGD
        from ..training import LayerwiseTrainer

        for shape, x in self._cases():
            layer = self.make_layer()
            if layer.compiled_op(shape, layer.dtype) is None:
                return
            results = []
            for trainer_cls in (CompiledTrainer, LayerwiseTrainer):
                model = Sequential([copy.deepcopy(layer)])
                optimizer = SGD(lr=0.01)
                X = np.ascontiguousarray(np.concatenate([x, x[::-1]]), dtype=np.float32)
                target = np.ascontiguousarray(
                    np.random.default_rng(1).standard_normal(model.output_shape(X.shape)), dtype=np.float32)
                n = len(X)
                if trainer_cls is CompiledTrainer:
                    trainer = CompiledTrainer.build(model, MSE(), optimizer, X.shape[1:], n)
                else:
                    trainer = LayerwiseTrainer(model, MSE(), optimizer, X.shape[1:])
                losses, _, _ = trainer.run(X.reshape(n, -1), target.reshape(n, -1), np.arange(n), 0, 1, n)
                results.append((losses, {k: np.array(v) for k, v in model.params.items()}))
            (l1, p1), (l2, p2) = results
            np.testing.assert_allclose(l1, l2, rtol=1e-6)
            for key in p1:
                np.testing.assert_allclose(p1[key], p2[key], rtol=1e-6, atol=1e-7)
