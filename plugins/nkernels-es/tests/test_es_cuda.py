"""The ES population on the GPU (under the CUDA simulator in CI: tiny models and populations): the CUDA
kernel against its CPU twin, and a run of the scheme on a model on "cuda" against the same run on the CPU."""
import numpy as np
import pytest
from nkernels_es.noise import NoiseTable
from nkernels_es.population import (CudaDenseChainProblem, DenseChainProblem, flat_parameters, make_problem)

import nkernels as nk
from nkernels.losses import MSE, SoftmaxCrossEntropy

pytestmark = pytest.mark.cuda
L = nk.layers


def chain(last_activation, dtype):
    layers = [L.Flatten(), L.Dense(6, 5), L.Tanh(), L.Dense(5, 4), L.ReLU(), L.Dense(4, 3, bias=False)]
    if last_activation is not None:
        layers.append(last_activation())
    return nk.Sequential(layers, seed=1).astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("loss, last", [(SoftmaxCrossEntropy(), None), (MSE(), L.Sigmoid)], ids=["ce", "mse"])
def test_the_cuda_population_matches_its_cpu_twin(dtype, rtol, loss, last):
    rng = np.random.default_rng(0)
    model = chain(last, dtype)
    X = rng.standard_normal((9, 2, 3)).astype(dtype)
    y = rng.integers(0, 3, 9) if isinstance(loss, SoftmaxCrossEntropy) else rng.uniform(0, 1, (9, 3))
    targets = loss.prepare_targets(y, (9, 3), np.dtype(dtype))
    theta, layout = flat_parameters(model)
    cpu = make_problem(model, layout, X, targets, loss)
    gpu = make_problem(model.copy().to("cuda"), layout, X, targets, loss)
    assert type(cpu) is DenseChainProblem and type(gpu) is CudaDenseChainProblem
    noise = NoiseTable(3, 200, dtype)
    for rows in (np.array([4, 0, 7]), np.array([8, 2, 3, 5])):  # a new batch size: a new workspace
        offsets = noise.sample_offsets(rng, 3, theta.size)
        expected = cpu.losses(theta, noise, offsets, 0.1, rows)
        got = gpu.losses(theta, noise, offsets, 0.1, rows)
        assert got.shape == (3, 2) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=rtol)
        assert not np.allclose(got[:, 0], got[:, 1])  # the two members of a pair differ


def test_es_trains_a_model_on_cuda_as_on_the_cpu():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 6)), rng.integers(0, 3, 12)
    runs = {}
    for device in ("cpu", "cuda"):
        model = nk.Sequential([L.Dense(6, 4), L.ReLU(), L.Dense(4, 3)], seed=0).astype(np.float64)
        history = nk.train(model, X, y, scheme="es", device=device, epochs=1, batch_size=4, seed=0, population=4,
                           generations_per_epoch=2, noise_size=500)
        assert model.device == device
        runs[device] = (history, {k: nk.runtime.devices.to_host(v) for k, v in model.params.items()})
    (h_cpu, p_cpu), (h_gpu, p_gpu) = runs["cpu"], runs["cuda"]
    for key in p_cpu:
        np.testing.assert_allclose(p_gpu[key], p_cpu[key], rtol=1e-10)
    np.testing.assert_allclose(h_gpu["mean_fitness"], h_cpu["mean_fitness"], rtol=1e-10)


def test_workers_are_refused_for_a_model_on_cuda():
    # asking for workers needs Dask (refused with the install command at construction, before this refusal)
    pytest.importorskip("dask.distributed", reason="workers need nkernels[distributed]")
    model = nk.Sequential([L.Dense(6, 3)], seed=0).to("cuda")
    with pytest.raises(ValueError, match="Dask workers would have no effect"):
        nk.train(model, np.zeros((4, 6)), np.zeros(4, np.int64), scheme="es", epochs=1, population=2, workers=2)


@pytest.mark.parametrize("shaping", ["centered_rank", "none"])
def test_the_device_update_matches_its_host_twin(shaping):
    from nkernels_es.cuda_update import BEST, FIRST_BAD, MEAN, negated_noise_sum, shape_weights
    from nkernels_es.estimate import gradient_estimate, shape_fitness
    from numba import cuda

    rng = np.random.default_rng(2)
    losses = rng.standard_normal((4, 2))
    losses[1, 1] = losses[3, 0]  # a tie: both share their average rank
    noise = NoiseTable(5, 60, np.float32)
    offsets = noise.sample_offsets(rng, 4, 7)
    weights, stats, grad = cuda.device_array(4), cuda.to_device(np.zeros(3)), cuda.device_array(7, np.float32)
    shape_weights(cuda.to_device(losses), shaping == "centered_rank", weights, stats, 2, 1)
    negated_noise_sum(cuda.to_device(noise.table), cuda.to_device(offsets), weights, grad)
    expected = gradient_estimate(noise, offsets, shape_fitness(-losses, shaping), 7)
    np.testing.assert_allclose(grad.copy_to_host(), (-expected).astype(np.float32), rtol=1e-6)
    got = stats.copy_to_host()
    np.testing.assert_allclose(got[[BEST, MEAN]], [(-losses).max() / 2, (-losses).mean() / 2], rtol=1e-12)
    assert got[FIRST_BAD] == 0
    losses[2, 1] = np.nan
    shape_weights(cuda.to_device(losses), True, weights, stats, 2, 3)
    assert stats.copy_to_host()[FIRST_BAD] == 3  # the first generation whose fitness was not finite


def test_an_es_generation_on_cuda_copies_only_its_picks_over():
    from nkernels.runtime.counting import count_device_work

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    counts = {}
    for generations in (1, 3):
        model = nk.Sequential([L.Dense(5, 3)], seed=0).astype(np.float64).to("cuda")
        with count_device_work() as counts[generations]:
            nk.train(model, X, y, scheme="es", epochs=1, batch_size=4, seed=0, population=4,
                     generations_per_epoch=generations, noise_size=100)
    extra = (counts[3] - counts[1]).as_dict()  # what two more generations cost
    assert extra["host_to_device"] == 2 and extra["device_to_host"] == 0 and extra["syncs"] == 0
    assert extra["allocations"] == 0 and extra["implicit_copies"] == 0
