"""What nk.load, load_optimizer and nk.save check: every array of a file against the model, and file modes."""
import os
import stat

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import nkernels as nk
from nkernels.errors import CorruptFileError
from nkernels.export.io import load_optimizer

L = nk.layers


def rewrite(path, change):
    """Apply ``change`` to the file's arrays (a dict, edited in place) and write them back with the same header."""
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


@pytest.fixture
def saved(tmp_path):
    """A saved model with a parameter, a Dropout counter and a frozen Sequential's arrays as buffers."""
    trunk = nk.Sequential([L.Dense(4, 3)], seed=0)
    model = nk.Sequential([L.Frozen(trunk), L.Dropout(0.5, seed=1), L.Dense(3, 2)], seed=0)
    model.buffers["1.counter"][0] = 7
    path = tmp_path / "model.safetensors"
    nk.save(model, path)
    return model, path


def test_the_fixture_file_round_trips(saved):
    model, path = saved
    loaded = nk.load(path)
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(loaded.buffers[key], value)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("buffer.1.counter"), r"lacks the buffer\(s\) '1.counter' \(int64 of shape \(1,\)\)"),
    (lambda t: t.update({"buffer.2.running_mean": np.zeros(2, np.float32)}),
     r"holds the buffer\(s\) '2.running_mean' \(float32 of shape \(2,\)\), which the model does not have"),
    # one value would broadcast into the whole (3, 4) weight of the frozen trunk
    (lambda t: t.update({"buffer.0.state.params.0.weight": np.full(1, 5.0, np.float32)}),
     r"buffer '0.state.params.0.weight' should be float32 of shape \(3, 4\), the file holds float32 of shape \(1,\)"),
    (lambda t: t.update({"buffer.1.counter": np.array([7.0])}),
     r"buffer '1.counter' should be int64 of shape \(1,\), the file holds float64 of shape \(1,\)"),
    (lambda t: t.update({"model.2.weight": t["model.2.weight"].astype(np.float64)}),
     r"parameter '2.weight' should be float32 of shape \(2, 3\), the file holds float64 of shape \(2, 3\)"),
    (lambda t: t.update({"model.2.bias": np.zeros(1, np.float32)}),
     r"parameter '2.bias' should be float32 of shape \(2,\), the file holds float32 of shape \(1,\)"),
])
def test_every_buffer_and_parameter_is_checked_against_the_model(saved, change, message):
    _, path = saved
    rewrite(path, change)
    with pytest.raises(CorruptFileError, match=message):
        nk.load(path)


def test_a_resume_into_a_model_of_another_dtype_is_refused(saved):
    from nkernels.export.io import read_checkpoint, restore_weights

    model, path = saved
    model.astype(np.float64)
    with pytest.raises(ValueError, match="holds a float32 model, the model given is float64"):
        restore_weights(model, read_checkpoint(path), path)


@pytest.fixture
def saved_with_adam(tmp_path, digits):
    model = nk.Sequential([L.Dense(64, 10)], seed=0)
    optimizer = nk.optimizers.Adam(1e-3)  # stepped by hand: nk.train trains with a fresh copy of it
    loss = nk.losses.SoftmaxCrossEntropy()
    loss.forward(model.forward(digits[0][:32], training=True), digits[1][:32])
    model.backward(loss.backward())
    optimizer.step(model.params, model.grads)
    path = tmp_path / "adam.safetensors"
    nk.save(model, path, optimizer=optimizer)
    return optimizer, path


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update({"optimizer.0.weight.m": np.zeros(3, np.float32)}),
     (r"optimizer state 'm' of parameter '0.weight' should be float32 of shape \(640,\), the file holds float32 "
      r"of shape \(3,\)")),
    (lambda t: t.update({"optimizer.0.bias.v": t["optimizer.0.bias.v"].astype(np.float64)}),
     r"optimizer state 'v' of parameter '0.bias' should be float32 of shape \(10,\), the file holds float64"),
    (lambda t: t.pop("optimizer.0.bias.v"),
     r"adam state of parameter '0.bias' should hold \['m', 'v'\], the file holds \['m'\]"),
    (lambda t: t.update({"optimizer.3.weight.m": np.zeros(3, np.float32)}),
     r"optimizer state for '3.weight', which is not a parameter of the model"),
])
def test_optimizer_state_is_checked_against_the_parameters(saved_with_adam, change, message):
    optimizer, path = saved_with_adam
    restored = load_optimizer(path)
    assert restored.steps == optimizer.steps
    np.testing.assert_array_equal(restored.state["0.weight"]["m"], optimizer.state["0.weight"]["m"])
    rewrite(path, change)
    with pytest.raises(CorruptFileError, match=message):
        load_optimizer(path)


@pytest.fixture
def umask():
    """Set the process umask for a test, and put the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_saved_model_honours_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "m.safetensors"
    nk.save(nk.Sequential([L.Dense(2, 2)], seed=0), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert not list(tmp_path.glob("*.tmp"))


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "m.safetensors"
    nk.save(nk.Sequential([L.Dense(2, 2)], seed=0), path)
    os.chmod(path, 0o640)
    nk.save(nk.Sequential([L.Dense(2, 2)], seed=1), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_check_writable_fails_before_anything_is_written(tmp_path):
    from nkernels.export.io import check_writable

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OSError, match="cannot write .*afile/m.safetensors: a file stands where a folder"):
        check_writable(tmp_path / "afile" / "m.safetensors")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "m.safetensors")  # creates the folder, as a save would, and leaves no file
    assert list((tmp_path / "new").iterdir()) == []
