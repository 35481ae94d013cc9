"""The first-party activations plugin: discovery, gradients, PyTorch agreement, compiled path."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_layer_gradients
from nkernels_activations import ELU, LeakyReLU

torch = pytest.importorskip("torch")


def test_registered_through_the_entry_point():
    assert nk.registry.layers["leaky_relu"] is LeakyReLU
    assert nk.registry.layers["elu"] is ELU
    entry = nk.registry.layers.provider("elu")
    assert (entry.plugin, entry.distribution) == ("activations", "nkernels-activations")


@pytest.mark.parametrize("layer", [LeakyReLU(0.1), ELU(0.7)])
def test_gradients(layer):
    x = np.random.default_rng(0).choice([-1, 1], (3, 7)) * np.random.default_rng(1).uniform(0.1, 2, (3, 7))
    check_layer_gradients(layer, (3, 7), inputs=x)


@pytest.mark.parametrize("layer, ref", [(LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (ELU(1.3), torch.nn.ELU(1.3))])
def test_matches_torch(layer, ref):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 5)) * 3, rng.standard_normal((4, 5))
    tx = torch.from_numpy(x).requires_grad_()
    ty = ref(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.forward(x, training=True), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-12)


def test_plugin_layers_join_the_compiled_step_with_the_same_numbers():
    from nkernels.trainers import CompiledTrainer
    from nkernels.trainers import make_trainer

    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def model():
        L = nk.layers
        return nk.Sequential([L.Dense(6, 8), LeakyReLU(0.05), L.Dense(8, 8), ELU(), L.Dense(8, 2)], seed=0)

    m = model()
    assert isinstance(make_trainer(m, nk.losses.SoftmaxCrossEntropy(), nk.optimizers.SGD(), (6,), 32),
                      CompiledTrainer)
    h1 = nk.train(m, X, y, epochs=3, batch_size=32, seed=0)
    m2 = model()
    h2 = nk.train(m2, X, y, epochs=3, batch_size=32, seed=0, compiled=False)
    assert h1["loss"] == h2["loss"]
    for key in m.params:
        np.testing.assert_array_equal(m.params[key], m2.params[key])


def test_config_round_trip_and_bad_arguments():
    model = nk.Sequential([nk.layers.Dense(2, 2), LeakyReLU(0.3)])
    rebuilt = nk.Sequential.from_config(model.get_config())
    assert isinstance(rebuilt[1], LeakyReLU) and rebuilt[1].negative_slope == 0.3
    with pytest.raises(TypeError, match="negative_slope must be a number, got 'steep'"):
        LeakyReLU("steep")
    with pytest.raises(ValueError, match="alpha must be a finite number, got nan"):
        ELU(float("nan"))


def _away_from_zero(shape, rng):
    return rng.choice([-1, 1], shape) * rng.uniform(0.1, 2, shape)


class TestLeakyReLUConformance(nk.testing.LayerConformance):
    make_layer = staticmethod(lambda: LeakyReLU(0.1))
    input_shapes = [(3, 7), (1, 2, 3, 4)]

    def inputs(self, shape, rng):
        return _away_from_zero(shape, rng)


class TestELUConformance(nk.testing.LayerConformance):
    make_layer = staticmethod(lambda: ELU(0.5))
    input_shapes = [(2, 5)]

    def inputs(self, shape, rng):
        return _away_from_zero(shape, rng)
