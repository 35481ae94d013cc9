"""The compiled trainer's split mode: two half batches on two threads, then one update."""
import re

import numpy as np
import pytest

import nkernels as nk
from nkernels.trainers.compiled import SPLIT_MIN_MULTIPLY_ADDS, CompiledTrainer, multiply_adds_per_sample
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.optimizers import SGD, Adam

L = nk.layers


def recurrent_model(cell=L.LSTM, seed=0):
    return nk.Sequential([cell(3, 6), L.Dense(6, 4)], seed=seed, dtype="float64")


def sequences(n=40, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, 3))
    return X, rng.integers(0, 4, n)


def train(model, X, y, batch_size, n_batches, split, optimizer=None, loss=None):
    trainer = CompiledTrainer.build(model, loss or SoftmaxCrossEntropy(), optimizer or Adam(lr=1e-2),
                                    X.shape[1:], batch_size, split_batches=split)
    assert trainer.split is split
    losses, correct, done = trainer.run(X.reshape(len(X), -1), y, np.arange(len(X)), 0, n_batches, batch_size)
    return losses, correct, done, trainer


@pytest.mark.parametrize("cell, batch_size", [(L.LSTM, 8), (L.GRU, 7)])  # 7 rows: halves of 4 and 3
def test_split_batches_give_the_whole_batch_numbers(cell, batch_size):
    X, y = sequences()
    runs = []
    for split in (False, True):
        model = recurrent_model(cell)
        optimizer = SGD(lr=0.1, momentum=0.9, nesterov=True, clip_norm=0.5, max_norm=1.5)
        losses, correct, done, trainer = train(model, X, y, batch_size, 5, split, optimizer)
        runs.append((losses, correct, model.params, trainer.optimizer.steps))
    (l0, c0, p0, s0), (l1, c1, p1, s1) = runs
    assert s0 == s1 == 5
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    np.testing.assert_array_equal(c1, c0)
    for key in p0:
        np.testing.assert_allclose(p1[key], p0[key], rtol=1e-10, atol=1e-13)
    assert not np.array_equal(p0["0.weight_hh"], recurrent_model(cell).params["0.weight_hh"])  # it trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_thread_updates_its_own_identical_copy_and_the_model_gets_the_whole_batch_gradient(dtype):
    """Both threads join the halves' gradients and update parameters and optimizer state of their
    own: the copies stay equal bit for bit, follow parameters changed between runs, and the model's
    gradients are the whole batch's, as without the split."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((48, 10)), rng.integers(0, 3, 48)
    models = [nk.Sequential([L.Dense(10, 16), L.ReLU(), L.Dense(16, 3)], seed=1, dtype=dtype) for _ in range(2)]
    trainers = [CompiledTrainer.build(m, SoftmaxCrossEntropy(), Adam(lr=1e-2), (10,), 12, split_batches=split)
                for m, split in zip(models, (False, True))]
    close = dict(rtol=2e-4, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-13)
    for run in range(2):
        for trainer in trainers:
            trainer.run(X.astype(dtype), y, np.arange(48), 0, 4, 12)
        assert trainers[1]._copies and all(np.array_equal(copy, source) for source, copy in trainers[1]._copies)
        for key in models[0].params:
            np.testing.assert_allclose(models[1].params[key], models[0].params[key], **close)
            np.testing.assert_allclose(models[1].grads[key], models[0].grads[key], **close)
        for model in models:  # changed between runs: the second thread must start from these
            model.set_params({k: v * 0.5 for k, v in model.params.items()})


def counting_loop_calls(trainer) -> list:
    """Wrap the trainer's split loop (called on this thread in role 0 for each run, on the second
    thread in role 1 when it starts serving runs); the returned list gets each call's role."""
    loop, roles = trainer._split_loop, []

    def counted(*args):
        roles.append(args[-2])  # (the role, then the polls of role 1)
        return loop(*args)

    trainer._split_loop = counted
    return roles


@pytest.mark.parametrize("split, last", [(True, 5), (True, 1), (False, 5)])
def test_a_last_smaller_batch_in_the_same_call_gives_the_numbers_of_its_own_call(split, last):
    """``run(..., last_batch=k)`` trains one more batch of k rows after the full ones; split, both
    threads run it in the same call (a batch of one row has no halves: it runs whole after them)."""
    X, y = sequences(n=40)
    X2d, order = X.reshape(len(X), -1), np.random.default_rng(1).permutation(len(X))
    runs = []
    for together in (True, False):
        model = recurrent_model()
        trainer = CompiledTrainer.build(model, SoftmaxCrossEntropy(), Adam(lr=1e-2), X.shape[1:], 8,
                                        split_batches=split)
        roles = counting_loop_calls(trainer)
        if together:
            losses, correct, done = trainer.run(X2d, y, order, 0, 4, 8, last_batch=last)
        else:
            parts = [trainer.run(X2d, y, order, 0, 4, 8), trainer.run(X2d, y, order, 32, 1, last)]
            losses, correct = (np.concatenate([part[i] for part in parts]) for i in (0, 1))
            done = sum(part[2] for part in parts)
        runs.append((losses, correct, done, model.params, trainer.optimizer.steps))
        if split and together:
            assert sorted(roles) == [0, 1]  # one split call (and for one row, a whole batch after it)
        if split and together and last > 1:  # (a whole batch leaves the copies to the next split run)
            assert all(np.array_equal(copy, source) for source, copy in trainer._copies)
    (l0, c0, d0, p0, s0), (l1, c1, d1, p1, s1) = runs
    assert d0 == d1 == s0 == s1 == 5 and len(l0) == len(c0) == 5
    np.testing.assert_array_equal(l0, l1)
    np.testing.assert_array_equal(c0, c1)
    for key in p0:
        np.testing.assert_array_equal(p0[key], p1[key])
    with pytest.raises(ValueError, match="last_batch"):
        trainer.run(X2d, y, order, 0, 1, 8, last_batch=-1)


def test_an_epoch_of_a_split_trainer_is_one_call_of_its_loop():
    from types import SimpleNamespace

    from nkernels.trainers import run_epoch_batches

    X, y = sequences(n=45)  # 5 batches of 8, then 5 rows
    trainer = CompiledTrainer.build(recurrent_model(), SoftmaxCrossEntropy(), Adam(lr=1e-2), X.shape[1:], 8,
                                    split_batches=True)
    roles = counting_loop_calls(trainer)
    checked = []
    logs = run_epoch_batches(trainer.run, X.reshape(len(X), -1), y, np.arange(len(X)), 8,
                             SimpleNamespace(wants_batches=False), lambda done, count: checked.append((done, count)),
                             True)
    assert sorted(roles) == [0, 1] and checked == [(6, 6)] and trainer.optimizer.steps == 6
    assert np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1


def test_the_trainers_of_one_thread_share_one_second_thread():
    """Every split run called from one thread computes its second halves on the same second thread
    (no new thread for a new trainer); runs called from another thread get one of their own."""
    import threading

    X, y = sequences()
    trainers = []  # kept alive, so that no thread of theirs ends and passes its identity on

    def second_thread_of_a_new_trainer() -> int:
        trainer = CompiledTrainer.build(recurrent_model(), SoftmaxCrossEntropy(), Adam(lr=1e-2), X.shape[1:], 8,
                                        split_batches=True)
        loop, threads = trainer._split_loop, {}

        def recorded(*args):
            threads[args[-2]] = threading.get_ident()
            return loop(*args)

        trainer._split_loop = recorded
        trainer.run(X.reshape(len(X), -1), y, np.arange(len(X)), 0, 2, 8)
        trainers.append(trainer)
        assert threads[0] == threading.get_ident() != threads[1]
        return threads[1]

    first, second = second_thread_of_a_new_trainer(), second_thread_of_a_new_trainer()
    assert first == second
    elsewhere = []
    caller = threading.Thread(target=lambda: elsewhere.append(second_thread_of_a_new_trainer()))
    caller.start()
    caller.join()
    assert elsewhere and elsewhere[0] != first


def serving_scenario(monkeypatch, polls: int):
    """Split runs of two trainers from one thread, with the second thread waiting ``polls`` polls
    for the next run: three of trainer A on the same rows (the epochs of a run), one of B, A again
    after its data changed in place, A on a new view of that memory, A on a copy of its data.
    Returns the runs' losses, the models' parameters and how many times the second thread started
    serving."""
    from nkernels.kernels.cpu import handoff
    from nkernels.trainers import compiled

    monkeypatch.setattr(compiled, "SERVE_POLLS", polls)
    X, y = sequences(n=40)
    X2d = X.reshape(len(X), -1).copy()
    models = [recurrent_model(seed=0), recurrent_model(seed=1)]
    a, b = (CompiledTrainer.build(m, SoftmaxCrossEntropy(), Adam(lr=1e-2), X.shape[1:], 8, split_batches=True)
            for m in models)
    roles_a, roles_b = counting_loop_calls(a), counting_loop_calls(b)
    rng = np.random.default_rng(0)
    losses = []
    runs = [(a, X2d), (a, X2d), (a, X2d), (b, X2d), ("scale", None), (a, X2d), (a, X2d[:]), (a, X2d.copy())]
    for trainer, data in runs:
        if trainer == "scale":
            X2d *= 0.5  # in place: the same memory, read by the waiting thread as it is now
            continue
        losses.append(trainer.run(data, y, rng.permutation(40), 0, 4, 8, last_batch=5)[0])
    for trainer in (a, b):
        handoff.retire(trainer._serving.control)  # a thread still waiting goes now
    return losses, [m.params for m in models], roles_a.count(1) + roles_b.count(1)


def test_the_second_thread_takes_the_next_runs_of_its_trainer_while_it_waits(monkeypatch):
    """After a run the second thread waits for its trainer's next run on the same data and takes it
    (without starting again); a run of another trainer or on other memory starts it afresh; every
    run gives the numbers of runs that each start it afresh."""
    waiting = serving_scenario(monkeypatch, 10**7)  # ~4 s: much longer than the test between two runs
    afresh = serving_scenario(monkeypatch, 0)
    assert waiting[2] == 4 and afresh[2] == 7  # A; B; A (and on a view of its data); A's copy, against every run
    for got, expected in zip(waiting[0], afresh[0]):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(waiting[1], afresh[1]):
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_a_serving_takes_runs_on_its_data_as_laid_out_when_it_started():
    """The runs one second thread may serve: on the same arrays, or others over the same memory read
    the same way, in the same batches; not on arrays whose layout was changed in place since (a
    shape or dtype assigned), nor on other memory."""
    from nkernels.trainers.compiled import _Serving

    X2d, y = np.zeros((40, 6)), np.zeros(40, np.int64)
    serving = _Serving(X2d, y, 40, 8, 0, np.zeros(5), np.zeros(2, np.int64))
    assert serving.reads(X2d, y, 40, 8, 0) and serving.reads(X2d[:], y.view(), 40, 8, 0)
    assert not serving.reads(X2d, y, 40, 4, 0) and not serving.reads(X2d, y, 40, 8, 5)
    assert not serving.reads(X2d.copy(), y, 40, 8, 0) and not serving.reads(X2d, y.copy(), 40, 8, 0)
    y.dtype = np.float64  # the same array, read as other numbers
    assert not serving.reads(X2d, y, 40, 8, 0)
    y.dtype = np.int64
    X2d.shape = (80, 3)
    assert not serving.reads(X2d, y, 40, 8, 0)


def runs_from_two_threads(monkeypatch, polls: int):
    """One split trainer's runs called from this thread, another thread, this thread, the other
    again (each a new thread), with the second threads waiting ``polls`` polls for the next run;
    returns the runs' losses and the model's parameters."""
    import threading

    from nkernels.kernels.cpu import handoff
    from nkernels.trainers import compiled

    monkeypatch.setattr(compiled, "SERVE_POLLS", polls)
    X, y = sequences(n=40)
    X2d, model = X.reshape(len(X), -1), recurrent_model()
    trainer = CompiledTrainer.build(model, SoftmaxCrossEntropy(), Adam(lr=1e-2), X.shape[1:], 8, split_batches=True)
    orders = [np.random.default_rng(seed).permutation(40) for seed in range(4)]
    losses = [None] * 4

    def run(i):
        losses[i] = trainer.run(X2d, y, orders[i], 0, 4, 8, last_batch=5)[0]

    for i in range(4):
        if i % 2 == 0:
            run(i)
        else:
            caller = threading.Thread(target=run, args=(i,), daemon=True)
            caller.start()
            caller.join(timeout=120)
            assert not caller.is_alive(), "a run called from another thread did not end"
    handoff.retire(trainer._serving.control)
    return losses, model.params


def test_a_run_called_from_another_thread_is_not_taken_by_the_waiting_thread(monkeypatch):
    """The second thread waiting for a trainer's next run takes none called from another thread:
    that one starts a second thread of its own on a control array of its own (two second threads
    on one control array would both compute the second halves)."""
    waiting = runs_from_two_threads(monkeypatch, 10**7)  # ~4 s: much longer than the test between two runs
    afresh = runs_from_two_threads(monkeypatch, 0)
    for got, expected in zip(waiting[0], afresh[0]):
        np.testing.assert_array_equal(got, expected)
    for key in afresh[1]:
        np.testing.assert_array_equal(waiting[1][key], afresh[1][key])


def test_a_split_batch_whose_loss_is_not_finite_stops_before_its_update():
    X, y = sequences()
    model = recurrent_model()
    _, _, done, trainer = train(model, X, y, 8, 2, True)
    before = {k: v.copy() for k, v in model.params.items()}
    X_bad = X.copy()
    X_bad[8 * 2 + 6] = np.inf  # in the second half of the third batch
    losses, _, done, _ = train(model, X_bad, y, 8, 5, True)
    assert done == 2 and len(losses) == 2 and np.isfinite(losses).all()
    assert all(np.isfinite(v).all() for v in model.params.values())
    assert any(not np.array_equal(before[k], model.params[k]) for k in before)  # two batches ran


def test_an_error_on_the_second_thread_ends_the_run_and_reaches_the_caller():
    import threading

    X, y = sequences()
    trainer = train(recurrent_model(), X, y, 8, 1, True)[3]
    loop = trainer._split_loop

    def failing_on_the_second_thread(*args):
        if args[-2] == 1:
            raise RuntimeError("the second half failed")
        return loop(*args)

    trainer._split_loop = failing_on_the_second_thread
    outcome = []

    def run():
        try:
            trainer.run(X.reshape(len(X), -1), y, np.arange(len(X)), 0, 4, 8)
        except RuntimeError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the first thread kept waiting for the failed second one"
    assert outcome == ["the second half failed"]
    assert trainer.optimizer.steps == 1  # the failed run made no update


def test_split_regression_with_mse():
    X, _ = sequences()
    target = np.tanh(X.sum(axis=(1, 2)))[:, None].repeat(4, axis=1)
    runs = [train(recurrent_model(L.GRU), X, target, 10, 4, split, loss=MSE())[0] for split in (False, True)]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-12)


def test_split_mode_is_chosen_for_wide_serial_steps_only():
    lstm = nk.Sequential([L.LSTM(16, 128), L.Dense(128, 10)], seed=0)
    assert multiply_adds_per_sample(lstm, (40, 16)) == 40 * 4 * 128 * (16 + 128) + 128 * 10
    assert CompiledTrainer.build(lstm, SoftmaxCrossEntropy(), Adam(), (40, 16), 64).split
    mlp = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dense(32, 10)], seed=0)
    assert 64 * multiply_adds_per_sample(mlp, (64,)) < SPLIT_MIN_MULTIPLY_ADDS
    assert not CompiledTrainer.build(mlp, SoftmaxCrossEntropy(), Adam(), (64,), 64).split
    cnn = nk.Sequential([L.Conv2D(1, 4, 3), L.ReLU(), L.Flatten(), L.Dense(144, 10)], seed=0)
    assert multiply_adds_per_sample(cnn, (1, 8, 8)) == 4 * 9 * 64 + 144 * 10
    below = SPLIT_MIN_MULTIPLY_ADDS // (4 * 9 * 64 + 144 * 10)  # the largest batch under the threshold
    assert not CompiledTrainer.build(cnn, SoftmaxCrossEntropy(), Adam(), (1, 8, 8), below).split
    assert CompiledTrainer.build(cnn, SoftmaxCrossEntropy(), Adam(), (1, 8, 8), below + 1).split
    dropout = nk.Sequential([L.LSTM(16, 128), L.Dropout(0.5), L.Dense(128, 10)], seed=0)
    assert not CompiledTrainer.build(dropout, SoftmaxCrossEntropy(), Adam(), (40, 16), 64).split
    with pytest.raises(ValueError, match="keeps state"):
        CompiledTrainer.build(dropout, SoftmaxCrossEntropy(), Adam(), (40, 16), 64, split_batches=True)


def test_split_conv_steps_run_their_prange_kernels_one_thread_per_half():
    import numba

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 1, 12, 12)), rng.integers(0, 10, 60)
    runs = []
    for split in (False, True):
        model = nk.Sequential([L.Conv2D(1, 4, 3), L.ReLU(), L.MaxPool2D(2), L.Conv2D(4, 6, 3, padding=1), L.ReLU(),
                               L.Flatten(), L.Dense(150, 10)], seed=0, dtype="float64")
        losses, _, _, _ = train(model, X, y, 10, 6, split, SGD(lr=0.05, momentum=0.9))
        runs.append((losses, model.params))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-12)
    for key in runs[0][1]:
        np.testing.assert_allclose(runs[1][1][key], runs[0][1][key], rtol=1e-10, atol=1e-13)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # the caller's thread count is back


def test_nk_train_runs_a_recurrent_model_split_and_learns():
    X, y = sequences(n=256, steps=12)
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)  # learnable: the sign of a sum
    model = nk.Sequential([L.GRU(3, 96), L.Dense(96, 2)], seed=0)
    assert 64 * multiply_adds_per_sample(model, (12, 3)) >= SPLIT_MIN_MULTIPLY_ADDS  # nk.train splits it
    history = nk.train(model, X.astype(np.float32), y, epochs=8, batch_size=64, lr=1e-2, seed=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.85


def test_nk_train_reports_the_split_and_split_batches_false_gives_the_layer_path_numbers():
    class Record(nk.callbacks.Callback):
        def on_train_begin(self, model, logs=None):
            self.logs = dict(logs or {})

    X, y = sequences(n=128, steps=12)
    runs = []
    for options in ({}, {"split_batches": False}, {"compiled": False}):
        model = nk.Sequential([L.GRU(3, 96), L.Dense(96, 4)], seed=0)
        record = Record()
        history = nk.train(model, X.astype(np.float32), y, epochs=2, batch_size=64, seed=0, callbacks=[record],
                           **options)
        runs.append((record.logs["split_batches"], history["loss"], model.params))
    assert [split for split, _, _ in runs] == [True, False, False]
    assert runs[1][1] == runs[2][1]
    for key in runs[1][2]:
        np.testing.assert_array_equal(runs[1][2][key], runs[2][2][key])
        np.testing.assert_allclose(runs[0][2][key], runs[1][2][key], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="compiled path"):
        nk.schemes.Backprop(compiled=False, split_batches=True)


@pytest.mark.parametrize("split", [True, False])
def test_a_split_run_evaluates_its_validation_data_on_one_kernel_thread(split):
    """Parallel kernels between split runs wake Numba's OpenMP threads, which spin on and take a core
    from the next run's halves; a whole-batch run keeps every thread for its evaluation."""
    import numba

    class Recording(nk.schemes.Backprop):
        threads: list[int] = []

        def validation_metrics(self, run, X_val, y_val):
            self.threads.append(numba.get_num_threads())
            return super().validation_metrics(run, X_val, y_val)

    X, y = sequences(n=64)
    before = numba.get_num_threads()
    scheme = Recording(split_batches=split)
    history = nk.train(recurrent_model(), X, y, scheme, epochs=2, batch_size=16, seed=0, validation_data=(X, y))
    assert scheme.threads == ([1, 1] if split else [before, before]) and len(history["val_loss"]) == 2
    assert numba.get_num_threads() == before


def test_the_shape_check_before_training_runs_its_sample_on_one_kernel_thread(monkeypatch):
    """``nk.train`` first runs one sample through the model; on two kernel threads that woke Numba's
    OpenMP thread, which then spun on through the first split run's halves."""
    import numba

    X, y = sequences(n=32)
    model, threads = recurrent_model(), []
    forward = model.forward

    def recorded(*args, **kwargs):
        threads.append(numba.get_num_threads())
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recorded)
    before = numba.get_num_threads()
    assert before >= 2  # (the split mode needs two)
    nk.train(model, X, y, epochs=1, batch_size=16, seed=0)
    assert threads[0] == 1 and numba.get_num_threads() == before


def test_the_split_update_joins_the_halves_as_it_reads_them():
    """With Adam or SGD the split step has no join before its update: the update reads both halves'
    gradients (``adam_update_halves``, ``sgd_update_halves``); with clipping (which needs the joined
    gradients' norm) or with a plugin's own Adam kernel it joins first, as before."""
    from nkernels.compiled import step as step_module

    folded = step_module.updates_of_halves(Adam(lr=1e-2, max_norm=2.0).phases())
    assert [c.op for phase in folded for c in phase.calls] == ["adam_update_halves", "max_norm_rows"]
    assert step_module.updates_of_halves(nk.optimizers.AdamW(lr=1e-2).phases()) is not None
    folded = step_module.updates_of_halves(SGD(lr=0.1, momentum=0.9).phases())
    assert [c.op for phase in folded for c in phase.calls] == ["sgd_update_halves"]
    assert step_module.updates_of_halves(Adam(lr=1e-2, clip_norm=1.0).phases()) is None
    assert step_module.updates_of_halves(SGD(lr=0.1, clip_norm=1.0).phases()) is None


@pytest.mark.parametrize("optimizer", [Adam(lr=1e-2), Adam(lr=1e-2, clip_norm=1.0)])
def test_the_split_steps_parts_take_only_the_arrays_they_use(optimizer):
    """Each part of the split step (one half's gradients, the join, the update) takes only the
    arguments its body reads: a call counts a reference to every array it passes, in and out, ~1 µs
    for the 119 arrays of the bench MLP's step."""
    import ast

    model = nk.Sequential([nk.layers.Dense(10, 16), nk.layers.ReLU(), nk.layers.Dense(16, 3)], seed=1)
    source = CompiledTrainer.build(model, SoftmaxCrossEntropy(), optimizer, (10,), 12, split_batches=True).step.source
    functions = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    for name in ("half_batch_gradients", "join_halves", "update_from_halves"):
        params = [arg.arg for arg in functions[name].args.args]
        read = {node.id for statement in functions[name].body for node in ast.walk(statement)
                if isinstance(node, ast.Name)}
        assert params and set(params) <= read, (name, sorted(set(params) - read))
    calls = [node for node in ast.walk(functions["run_split_batches"]) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") in ("half_batch_gradients", "join_halves", "update_from_halves")]
    assert calls and all(len(c.args) == len(functions[c.func.id].args.args) for c in calls)


def test_a_plugin_kernel_for_adam_keeps_the_join(monkeypatch):
    from nkernels.compiled import step as step_module
    from nkernels.plugins import kernels as kernel_records

    found = kernel_records.kernel

    def with_a_plugin_adam(op, device="cpu"):
        if op == "adam_update":
            return counting_loop_calls  # any function defined outside nkernels.kernels.cpu.optim
        return found(op, device)

    monkeypatch.setattr(kernel_records, "kernel", with_a_plugin_adam)
    assert step_module.updates_of_halves(Adam(lr=1e-2).phases()) is None


@pytest.mark.parametrize("last, kind", [(0, "adam"), (5, "adam"), (5, "sgd"), (0, "nesterov")])
def test_the_folded_update_gives_the_joined_update_bit_for_bit(monkeypatch, last, kind):
    """The split step with the join folded into Adam's or SGD's update against the same step joining
    first (no twins): parameters, both copies, optimizer state, the model's gradients and the losses,
    bit for bit, over two runs (the second starting from parameters changed in between)."""
    from nkernels.compiled import step as step_module

    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((53, 10)).astype(np.float32), rng.integers(0, 3, 53)
    results = []
    for twins in (dict(step_module.UPDATES_OF_HALVES), {}):
        monkeypatch.setattr(step_module, "UPDATES_OF_HALVES", twins)
        model = nk.Sequential([L.Dense(10, 16), L.ReLU(), L.Dense(16, 3)], seed=1, dtype="float32")
        optimizer = Adam(lr=1e-2, weight_decay=0.01) if kind == "adam" else \
            SGD(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=kind == "nesterov")
        trainer = CompiledTrainer.build(model, SoftmaxCrossEntropy(), optimizer, (10,), 12, split_batches=True)
        joins_in_loop = re.search(r"join_halves\([^)]*own_weight, other_weight\)", trainer.step.source)
        assert bool(joins_in_loop) is (not twins)
        runs = []
        for run in range(2):
            runs.append(trainer.run(X, y, np.arange(53), 0, 4, 12, last_batch=last)[0])
            assert all(np.array_equal(copy, source) for source, copy in trainer._copies)
            if run == 0:
                model.set_params({k: v * 0.5 for k, v in model.params.items()})
        results.append((runs, model.params, model.grads, {k: dict(v) for k, v in optimizer.state.items()}))
    (runs0, params0, grads0, state0), (runs1, params1, grads1, state1) = results
    for a, b in zip(runs0, runs1):
        np.testing.assert_array_equal(a, b)
    for key in params0:
        np.testing.assert_array_equal(params0[key], params1[key])
        np.testing.assert_array_equal(grads0[key], grads1[key])
        for name in state0[key]:
            np.testing.assert_array_equal(state0[key][name], state1[key][name])
    assert any(np.abs(g).max() > 0 for g in grads0.values())
