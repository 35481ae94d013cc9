"""make_trainer(trainable_layers=...): a chain trained through layers whose parameters stay put
(a GAN's generator through its discriminator), on the compiled and the layer-by-layer paths."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.losses import MSE
from nkernels.optimizers import Adam
from nkernels.trainers import CompiledTrainer, LayerwiseTrainer, make_trainer

L = nk.layers


def chain():
    return nk.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 6), L.Tanh(), L.Dense(6, 3)], seed=0, dtype="float64")


def data(n=24):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 4)), rng.standard_normal((n, 3))


def train(compiled, trainable_layers, batches=3, batch_size=8):
    model = chain()
    X, Y = data()
    trainer = make_trainer(model, MSE(), Adam(lr=0.01), X.shape[1:], batch_size, compiled=compiled,
                           trainable_layers=trainable_layers)
    assert isinstance(trainer, CompiledTrainer if compiled else LayerwiseTrainer)
    losses, _, done = trainer.run(X, Y, np.arange(len(X)), 0, batches, batch_size)
    assert done == batches
    return model, losses, trainer.optimizer


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("trainable", [(0,), (2, 4), (4,)])
def test_only_the_trainable_layers_change(compiled, trainable):
    start = chain().params
    model, _, optimizer = train(compiled, trainable)
    for key, value in model.params.items():
        changed = not np.array_equal(value, start[key])
        assert changed == (int(key.split(".")[0]) in trainable), key
    assert {key.split(".")[0] for key in optimizer.state} == {str(i) for i in trainable}


def test_both_paths_give_the_same_numbers():
    compiled, losses_c, _ = train(True, [0])
    layerwise, losses_l, _ = train(False, [0])
    np.testing.assert_allclose(losses_c, losses_l, rtol=1e-12)
    for key, value in compiled.params.items():
        np.testing.assert_allclose(value, layerwise.params[key], rtol=1e-10, atol=1e-13, err_msg=key)


def test_the_first_layer_learns_through_frozen_layers_as_it_does_with_all_layers_training():
    """One step: the first layer's update is the same whether the layers above it train or not."""
    alone, _, _ = train(True, [0], batches=1)
    everything, _, _ = train(True, None, batches=1)
    for key in ("0.weight", "0.bias"):
        np.testing.assert_allclose(alone.params[key], everything.params[key], rtol=1e-12)


@pytest.mark.parametrize("value, error, message", [
    ([5], ValueError, r"trainable_layers \[5\] are not layers of this model \(it has 5 layers"),
    ([-1], ValueError, r"trainable_layers \[-1\]"),
    ("0", TypeError, "collection of layer indices"),
    ([0.5], TypeError, "collection of layer indices"),
    (3, TypeError, "collection of layer indices"),
])
def test_bad_trainable_layers_are_refused(value, error, message):
    X, _ = data()
    with pytest.raises(error, match=message):
        make_trainer(chain(), MSE(), Adam(), X.shape[1:], 8, trainable_layers=value)


@pytest.mark.cuda
def test_the_device_trainer_updates_only_the_trainable_layers_as_the_cpu_does():
    from nkernels.runtime import devices
    from nkernels.trainers import DeviceTrainer

    X, Y = data()
    cpu, _, _ = train(False, [0], batches=1)
    model = chain().to("cuda")
    trainer = make_trainer(model, MSE(), Adam(lr=0.01), X.shape[1:], 8, trainable_layers=[0])
    assert isinstance(trainer, DeviceTrainer)
    trainer.run(trainer.put(X), trainer.put(Y), np.arange(len(X)), 0, 1, 8)
    start = chain().params
    for key, value in model.params.items():
        value = devices.to_host(value)
        np.testing.assert_allclose(value, cpu.params[key], rtol=1e-10, atol=1e-13, err_msg=key)
        assert np.array_equal(value, start[key]) == (not key.startswith("0.")), key
