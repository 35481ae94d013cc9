"""Optimizers against torch.optim, gradient clipping, the max-norm constraint, on both training paths."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.optimizers import SGD, Adam, AdamW

torch = pytest.importorskip("torch")
L = nk.layers


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (lambda: SGD(lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (lambda: SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    (lambda: Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    (lambda: Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (lambda: AdamW(lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
])
def test_matches_torch_optim_over_steps(ours, theirs):
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    tparams = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in params.items()}
    optimizer, reference = ours(), theirs(list(tparams.values()))
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        optimizer.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.from_numpy(grads[k].copy())
        reference.step()
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_clip_norm_matches_torch_clip_grad_norm():
    rng = np.random.default_rng(1)
    params = {"0.weight": rng.standard_normal((4, 3)), "0.bias": rng.standard_normal(4)}
    grads = {k: rng.standard_normal(v.shape) * 10 for k, v in params.items()}
    tparams = [torch.from_numpy(v.copy()).requires_grad_() for v in params.values()]
    for t, g in zip(tparams, grads.values()):
        t.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_norm_(tparams, 1.5)
    reference = torch.optim.SGD(tparams, lr=0.1)
    reference.step()
    SGD(lr=0.1, clip_norm=1.5).step(params, grads)
    for ours, theirs in zip(params.values(), tparams):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12)


def test_max_norm_constrains_weight_rows_only():
    params = {"0.weight": np.full((2, 4), 3.0), "0.bias": np.full(2, 10.0)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    SGD(lr=0.1, max_norm=2.0).step(params, grads)
    np.testing.assert_allclose(np.linalg.norm(params["0.weight"], axis=1), 2.0, rtol=1e-6)
    reference = torch.renorm(torch.full((2, 4), 3.0, dtype=torch.float64), 2, 0, 2.0).numpy()
    np.testing.assert_allclose(params["0.weight"], reference, rtol=1e-12)
    np.testing.assert_array_equal(params["0.bias"], 10.0)


@pytest.mark.parametrize("options", [{"clip_norm": 0.5}, {"max_norm": 0.8}, {"clip_norm": 1.0, "max_norm": 1.0}])
def test_clipping_and_max_norm_give_the_same_numbers_on_both_paths(digits, options):
    X, y = digits[0][:160], digits[1][:160]
    runs = []
    for compiled in (True, False):
        model = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dropout(0.2), L.Dense(32, 10)], seed=0)
        history = nk.train(model, X, y, epochs=2, batch_size=32, seed=0, optimizer="sgd", lr=0.5,
                           momentum=0.9, compiled=compiled, **options)
        runs.append((history["loss"], model.params))
    assert runs[0][0] == runs[1][0]
    for key in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])
    if "max_norm" in options:
        assert np.linalg.norm(runs[0][1]["0.weight"], axis=1).max() <= options["max_norm"] * (1 + 1e-6)


def test_bad_optimizer_options():
    with pytest.raises(ValueError, match="clip_norm must be a finite number above 0"):
        SGD(clip_norm=0)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        SGD(nesterov=True)
    with pytest.raises(TypeError, match=r"betas must be a pair"):
        Adam(betas=0.9)
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        Adam(betas=(0.9, 0.99, 0.999))
    with pytest.raises(ValueError, match=r"betas\[1\] must be a finite number in \[0, 1\), got 1.0"):
        Adam(betas=(0.9, 1.0))


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(lr=0.05, momentum=0.9, nesterov=True, clip_norm=1.0, max_norm=0.7),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    (lambda: Adam(lr=0.05, clip_norm=1.0, max_norm=0.7), lambda p: torch.optim.Adam(p, lr=0.05)),
    (lambda: AdamW(lr=0.05, weight_decay=0.1, clip_norm=1.0, max_norm=0.7),
     lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
])
def test_clipping_then_update_then_max_norm_matches_torch(ours, theirs):
    """clip_grad_norm_ over all gradients, the optimizer step, then renorm of each weight's rows
    (a conv weight (out, in, k, k) by rows of its (out, -1) view; biases untouched)."""
    rng = np.random.default_rng(2)
    params = {"0.weight": rng.standard_normal((2, 3, 2, 2)) * 0.3, "0.bias": rng.standard_normal(2),
              "1.weight": rng.standard_normal((4, 8)) * 0.3, "1.bias": rng.standard_normal(4) * 3}
    tparams = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in params.items()}
    optimizer, reference = ours(), theirs(list(tparams.values()))
    for _ in range(4):
        grads = {k: rng.standard_normal(v.shape) * 5 for k, v in params.items()}
        for k, t in tparams.items():
            t.grad = torch.from_numpy(grads[k].copy())
        optimizer.step(params, grads)  # clips grads in place
        torch.nn.utils.clip_grad_norm_(list(tparams.values()), 1.0)
        reference.step()
        with torch.no_grad():
            for k in ("0.weight", "1.weight"):
                tparams[k].copy_(torch.renorm(tparams[k], 2, 0, 0.7))
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(params["1.bias"]).max() > 0.7  # biases are not constrained


def test_conv_clipping_max_norm_and_augmentation_give_the_same_numbers_on_both_paths():
    X, y = nk.datasets.load("digits", flat=False)[:2]
    runs = []
    for compiled in (True, False):
        model = nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                               L.Dropout(0.2), L.Dense(64, 10)], seed=1)
        history = nk.train(model, X[:96], y[:96], epochs=2, batch_size=32, seed=4, optimizer="sgd", lr=0.3,
                           momentum=0.9, nesterov=True, clip_norm=1.0, max_norm=0.5, augment_shift=2,
                           schedule="step", compiled=compiled)
        runs.append((history, model.params))
    assert runs[0][0]["loss"] == runs[1][0]["loss"] and runs[0][0]["lr"] == runs[1][0]["lr"]
    for key in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])
    conv_rows = runs[0][1]["0.weight"].reshape(4, -1)
    assert np.linalg.norm(conv_rows, axis=1).max() <= 0.5 * (1 + 1e-6)


CACHED_STEP = """
import numpy as np, nkernels as nk
L = nk.layers
X, y, _, _ = nk.datasets.load("digits")
model = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 10)], seed=0)
h = nk.train(model, X, y, epochs=2, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True,
             weight_decay=1e-4, clip_norm=5.0, max_norm=3.0, seed=0)
print(repr(h["loss"]))
"""


def test_a_step_with_clipping_loads_from_the_cache_and_runs(tmp_path):
    """The second process loads the compiled step from Numba's cache (it segfaulted with parallel norm kernels)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NKERNELS_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)  # Numba's index then sits beside the generated step, where we look
    runs = [subprocess.run([sys.executable, "-c", CACHED_STEP], env=env, capture_output=True, text=True)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
    assert list((tmp_path / "steps").glob("__pycache__/*.nbi"))


CACHED_CONV_STEP = """
import numpy as np, nkernels as nk
from nkernels import bench
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.trainers import make_trainer
case = bench.CASES["cnn"]
X, y = bench.data(case, 2)
trainer = make_trainer(case.build(), SoftmaxCrossEntropy(), Adam(lr=1e-3), case.sample_shape, case.batch_size)
losses, _, done = trainer.run(X.reshape(len(X), -1), y, np.arange(len(X)), 0, 2, case.batch_size)
print(done, repr(losses.tolist()))
"""


def test_a_cached_conv_step_runs_as_the_first_numba_call_of_a_process(tmp_path):
    """A cached step calling prange kernels segfaulted when nothing had started Numba's threads (numba#8578)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NKERNELS_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    runs = [subprocess.run([sys.executable, "-c", CACHED_CONV_STEP], env=env, capture_output=True, text=True)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.startswith("2 ")
