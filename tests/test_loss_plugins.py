"""A plugin adds a loss the way it adds a layer: nkernels_register_losses, nk.registry.losses, both paths."""
import numpy as np
import pytest
from numba import njit

import nkernels as nk
from nkernels.passes import DX, INDEX, LOSSES, TARGET, X, Call, LossPasses
from nkernels.plugins.kernels import KernelRecord
from nkernels.testing import check_loss_gradients


@njit(cache=True)
def mae_forward_into(pred, target, losses, index):
    total = 0.0
    for i in range(pred.shape[0]):
        total += abs(pred[i] - target[i])
    losses[index] = total / pred.shape[0]


@njit(cache=True)
def mae_backward(pred, target, dpred):
    scale = 1.0 / pred.shape[0]
    for i in range(pred.shape[0]):
        d = pred[i] - target[i]
        dpred[i] = scale if d > 0 else -scale if d < 0 else 0.0


class MAE(nk.losses.Loss):
    """Mean absolute error, as torch.nn.L1Loss."""

    def prepare_targets(self, targets, output_shape, dtype=np.float32):
        return nk.losses.MSE().prepare_targets(targets, output_shape, dtype)

    def passes(self):
        return LossPasses(forward=(Call("mae_forward_into", X.flat, TARGET.flat, LOSSES, INDEX),),
                          backward=(Call("mae_backward", X.flat, TARGET.flat, DX.flat),))


class Plugin:
    @nk.hookimpl
    def nkernels_register_losses(self):
        return {"mae": MAE}

    @nk.hookimpl
    def nkernels_register_kernels(self):
        return [KernelRecord("mae_forward_into", "cpu", mae_forward_into),
                KernelRecord("mae_backward", "cpu", mae_backward)]


def test_a_plugin_loss_is_registered_and_trains_on_both_paths(nk_register_plugin):
    nk_register_plugin(Plugin())
    assert nk.registry.losses["mae"] is MAE and nk.registry.losses["mse"] is nk.losses.MSE
    assert isinstance(nk.losses.get_loss("mae"), MAE)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((96, 5)).astype(np.float32), rng.standard_normal((96, 2)).astype(np.float32)
    results = []
    for compiled in (True, False):
        model = nk.Sequential([nk.layers.Dense(5, 8), nk.layers.Tanh(), nk.layers.Dense(8, 2)], seed=0)
        history = nk.train(model, X, y, loss="mae", epochs=3, batch_size=32, seed=0, lr=1e-2, compiled=compiled)
        results.append((history["loss"], model.params["2.weight"].copy()))
    assert results[0][0] == results[1][0] and results[0][0][-1] < results[0][0][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    check_loss_gradients(MAE(), rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))


def test_an_unknown_loss_names_the_registered_ones():
    with pytest.raises(KeyError, match="unknown loss 'hinge'; available: .*mse"):
        nk.losses.get_loss("hinge")
