"""A trainer's ``run`` refuses arguments that would take its kernels outside the arrays, before any kernel runs.

(The compiled steps gather rows and labels by index without bounds checks: an ``order`` too short for
the batches asked for segfaulted the interpreter.)
"""
import numpy as np
import pytest

import nkernels as nk
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.trainers import CompiledTrainer, LayerwiseTrainer

L = nk.layers
TRAINERS = ["compiled split", "compiled whole", "layerwise"]


def make(kind, loss=None):
    model = nk.Sequential([L.Dense(10, 16), L.ReLU(), L.Dense(16, 3)], seed=0)
    loss = loss or SoftmaxCrossEntropy()
    if kind == "layerwise":
        return LayerwiseTrainer(model, loss, Adam(), (10,))
    return CompiledTrainer.build(model, loss, Adam(), (10,), 8, split_batches=kind == "compiled split")


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 10)).astype(np.float32), rng.integers(0, 3, n)


def untouched(trainer, before):
    return trainer.optimizer.steps == 0 and all(np.array_equal(before[k], v) for k, v in trainer.model.params.items())


@pytest.mark.parametrize("kind", TRAINERS)
@pytest.mark.parametrize("change, error, match", [
    (dict(n_batches=1000), ValueError, "entries of order"),          # past the end of order
    (dict(start=35), ValueError, "entries of order"),
    (dict(order=np.arange(40) + 100), ValueError, "row indices of X2d"),
    (dict(order=-np.arange(40)), ValueError, "row indices of X2d"),
    (dict(order=np.arange(40.0)), TypeError, "row indices"),
    (dict(X2d="narrow"), ValueError, "one sample a row"),
    (dict(Y=np.full(40, 3)), ValueError, r"labels must lie in \[0, 2\]"),
    (dict(Y=-np.ones(40, np.int64)), ValueError, "labels must lie"),
    (dict(Y=np.zeros(40)), TypeError, "labels must be integers"),
    (dict(Y=np.zeros((40, 3), np.int64)), ValueError, "one class index per output row"),
    (dict(Y=np.zeros(39, np.int64)), ValueError, "one class index per output row"),
    (dict(start=-1), ValueError, "start must be at least 0"),
    (dict(batch_size=0), ValueError, "batch_size must be at least 1"),
    (dict(n_batches=2.0), TypeError, "n_batches must be an integer"),
])
def test_a_run_that_would_leave_the_arrays_is_refused_before_any_step(kind, change, error, match):
    trainer = make(kind)
    X, y = data()
    args = dict(X2d=X, Y=y, order=np.arange(40), start=0, n_batches=2, batch_size=8)
    if change.get("X2d") == "narrow":
        change = dict(X2d=np.ascontiguousarray(X[:, :5]))
    args.update(change)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    with pytest.raises(error, match=match):
        trainer.run(*args.values())
    assert untouched(trainer, before)


@pytest.mark.parametrize("kind", ["compiled split", "compiled whole"])
def test_the_last_batch_counts_in_the_rows_the_order_must_hold(kind):
    trainer = make(kind)
    X, y = data()
    with pytest.raises(ValueError, match="and one of 9 from position 0 need 41"):
        trainer.run(X, y, np.arange(40), 0, 4, 8, last_batch=9)
    with pytest.raises(ValueError, match="last_batch must be at least 0"):
        trainer.run(X, y, np.arange(40), 0, 1, 8, last_batch=-1)
    losses, _, done = trainer.run(X, y, np.arange(40), 0, 4, 8, last_batch=8)  # exactly all 40 rows
    assert done == 5 and np.isfinite(losses).all()


@pytest.mark.parametrize("kind", TRAINERS)
def test_value_targets_need_one_row_of_the_output_width(kind):
    trainer = make(kind, MSE())
    X, _ = data()
    targets = np.zeros((40, 3), np.float32)
    with pytest.raises(ValueError, match=r"one row per sample: shape \(40, 3\)"):
        trainer.run(X, targets[:, :2].copy(), np.arange(40), 0, 2, 8)
    losses, _, done = trainer.run(X, targets, np.arange(40), 0, 2, 8)
    assert done == 2 and np.isfinite(losses).all()
