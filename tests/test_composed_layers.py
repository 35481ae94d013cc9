"""Layers composed of layers (Residual): their passes are their children's, renamed; both paths, both devices."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_cpu_cuda_agreement

L = nk.layers


def test_the_two_paths_of_a_residual_block_must_agree_in_shape():
    with pytest.raises(ValueError, match=r"body gives shape \(2, 3\) but the input gives \(2, 5\)"):
        L.Residual([L.Dense(5, 3)]).output_shape((2, 5))
    with pytest.raises(TypeError, match="Layer objects"):
        L.Residual([L.Dense(5, 5), "relu"])
    with pytest.raises(TypeError, match="codes its passes in Python"):
        L.Residual([L.Frozen(nk.Sequential([L.Dense(3, 3)]))]).passes((2, 3))


def test_a_residual_block_names_its_childrens_parameters_and_saves(tmp_path):
    block = L.Residual([L.Dense(4, 4), L.Dropout(0.5)], shortcut=[L.Dense(4, 4, bias=False)])
    assert sorted(block.params) == ["body.0.bias", "body.0.weight", "shortcut.0.weight"]
    assert sorted(block.buffers) == ["body.1.counter", "body.1.seed"]
    assert block.scalars() == {"body.1.p": 0.5}
    model = nk.Sequential([block, L.Dense(4, 2)], seed=0).astype("float64")
    assert block.params["body.0.weight"] is block.body[0].params["weight"] and block.dtype == np.float64
    nk.save(model, tmp_path / "m.safetensors")
    loaded = nk.load(tmp_path / "m.safetensors")
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(loaded(x), model(x))


def test_the_copy_and_add_kernels_agree_on_both_devices():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(37), rng.standard_normal(37)
    check_cpu_cuda_agreement("copy_flat", a, np.zeros(37))
    check_cpu_cuda_agreement("add_flat", a, b, np.zeros(37))
    out = np.zeros(37)
    nk.registry.kernels[("add_flat", "cpu")](a, b, out)
    np.testing.assert_array_equal(out, a + b)


@pytest.mark.cuda
def test_a_residual_block_trains_on_the_gpu_as_on_the_cpu():
    make = lambda: nk.Sequential([L.Residual([L.Dense(6, 6), L.Tanh(), L.Dense(6, 6)]), L.Dense(6, 3)],  # noqa: E731
                                 seed=0, dtype="float64")
    X = np.random.default_rng(1).standard_normal((16, 6))
    y = np.arange(16) % 3
    cpu, gpu = make(), make().to("cuda")
    nk.train(cpu, X, y, epochs=2, batch_size=8, seed=0, optimizer="sgd", lr=0.1)
    nk.train(gpu, X, y, epochs=2, batch_size=8, seed=0, optimizer="sgd", lr=0.1)
    for key, value in cpu.params.items():
        np.testing.assert_allclose(nk.runtime.devices.to_host(gpu.params[key]), value, rtol=1e-10, atol=1e-12)
