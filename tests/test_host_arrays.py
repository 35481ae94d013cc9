"""Host arrays start on a cache line: a layer's parameters, gradients and optimizer state, the compiled
trainer's activations and workspaces, allocated through ``nkernels.runtime.devices``."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.runtime import devices
from nkernels.trainers.compiled import CompiledTrainer


def starts_on_a_line(a: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] % devices.ALIGNMENT == 0


def large(arrays) -> list:
    return [a for a in arrays if a is not None and a.nbytes >= devices.ALIGN_MIN_BYTES]


@pytest.mark.parametrize("make", [devices.empty, devices.zeros])
@pytest.mark.parametrize("shape, dtype", [((64, 128), np.float32), ((3, 5, 700), np.float64), (5000, np.int64),
                                          ((4096,), np.float32)])
def test_large_host_arrays_start_on_a_cache_line(make, shape, dtype):
    a = make(shape, dtype)
    assert a.shape == ((shape,) if isinstance(shape, int) else shape) and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable and starts_on_a_line(a)
    if make is devices.zeros:
        assert not a.any()
    a[...] = 7  # the whole array is its own: writing it touches nothing past its end
    assert (a == 7).all()


@pytest.mark.parametrize("make", [devices.empty, devices.zeros])
@pytest.mark.parametrize("shape", [[64, 128], np.int64(8192), np.array(8192), np.array([64, 128]), (np.int32(64), 128)])
def test_host_arrays_take_every_form_of_shape_numpy_takes(make, shape):
    a = make(shape, np.float32)
    assert a.shape == np.empty(shape, np.float32).shape and starts_on_a_line(a)
    if make is devices.zeros:
        dirty = devices.empty(shape, np.float32)
        dirty[...] = 7  # memory a later array may get again
        del dirty
        assert not make(shape, np.float32).any()


@pytest.mark.parametrize("make", [devices.empty, devices.zeros])
def test_small_host_arrays_are_numpys_own(make):
    a = make((3, 4), np.float32)
    assert a.shape == (3, 4) and a.flags.c_contiguous and a.flags.owndata
    assert make((0, 9000), np.float32).shape == (0, 9000)


def test_a_model_and_its_compiled_trainer_keep_their_large_arrays_aligned():
    model = nk.Sequential([nk.layers.Dense(64, 128), nk.layers.ReLU(), nk.layers.Dense(128, 10)], seed=0)
    trainer = CompiledTrainer.build(model, SoftmaxCrossEntropy(), Adam(), (64,), 64)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((128, 64)).astype(np.float32), rng.integers(0, 10, 128)
    trainer.run(X, y, np.arange(128), 0, 2, 64)
    weights = large(model.params.values())
    assert weights and all(starts_on_a_line(a) for a in weights + large(model.grads.values()))
    state = large(s for per_param in trainer.optimizer.state.values() for s in per_param.values())
    assert state and all(starts_on_a_line(s) for s in state)
    acts, dacts, _, _, raw = trainer._batch_sized(64, 0)
    batch_arrays = large(list(acts) + list(dacts) + [raw])
    assert batch_arrays and all(starts_on_a_line(a) for a in batch_arrays)
