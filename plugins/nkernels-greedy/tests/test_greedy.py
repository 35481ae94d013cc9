"""The greedy scheme: each stage's update against float64 references, hooks, defaults, discovery, errors."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import main as cli_main
from nkernels_greedy import Greedy

L = nk.layers


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {"sigmoid": (sigmoid, lambda h: h * (1.0 - h)), "tanh": (np.tanh, lambda h: 1.0 - h ** 2),
               None: (lambda a: a, lambda h: np.ones_like(h))}


def backprop_step(weights, activations, x, labels, lr):
    """One SGD step of softmax cross-entropy through Dense layers [(W, b), ...], by hand."""
    outputs = [x]
    for (W, b), act in zip(weights, activations):
        outputs.append(ACTIVATIONS[act][0](outputs[-1] @ W.T + b))
    logits = outputs[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = (p - np.eye(p.shape[1])[labels]) / len(x)          # gradient w.r.t. the logits
    new = []
    for i in reversed(range(len(weights))):
        W, b = weights[i]
        new.insert(0, (W - lr * d.T @ outputs[i], b - lr * d.sum(axis=0)))
        if i > 0:
            d = (d @ W) * ACTIVATIONS[activations[i - 1]][1](outputs[i])
    return new


def tied_sigmoid_autoencoder_step(x, W, b, lr):
    """One SGD step of a tied autoencoder with a sigmoid code, linear decoder and zero decoder bias."""
    h = sigmoid(x @ W.T + b)
    d_recon = 2.0 * (h @ W - x) / x.size
    d_pre = (d_recon @ W.T) * h * (1.0 - h)
    return W - lr * (d_pre.T @ x + h.T @ d_recon), b - lr * d_pre.sum(axis=0)


def dense(W, b):
    layer = L.Dense(W.shape[1], W.shape[0]).astype("float64")
    layer.params["weight"][...] = W
    layer.params["bias"][...] = b
    return layer


def toy(seed=0, n=5, sizes=(3, 4, 2)):
    rng = np.random.default_rng(seed)
    weights = [(rng.normal(0, 0.7, (o, i)), rng.normal(0, 0.1, o)) for i, o in zip(sizes, sizes[1:])]
    return rng.uniform(0, 1, (n, sizes[0])), rng.integers(0, sizes[-1], n), weights


def test_unsupervised_stages_each_take_the_step_computed_by_hand():
    X, y, [(W1, b1), (W2, b2)] = toy()
    model = nk.Sequential([dense(W1, b1), L.Sigmoid(), dense(W2, b2)])
    history = nk.train(model, X, y, scheme="greedy", epochs=1, batch_size=len(X), seed=0, optimizer="sgd", lr=0.5,
                       finetune_epochs=1, finetune_lr=0.2)
    assert history["stage"] == ["stage 1/3: autoencoder on layer 0", "stage 2/3: output layer 2",
                                "stage 3/3: fine-tuning"]
    W1, b1 = tied_sigmoid_autoencoder_step(X, W1, b1, lr=0.5)                       # stage 1: pretraining
    [(W2, b2)] = backprop_step([(W2, b2)], [None], sigmoid(X @ W1.T + b1), y, lr=0.5)  # stage 2: on frozen features
    [(W1, b1), (W2, b2)] = backprop_step([(W1, b1), (W2, b2)], ["sigmoid", None], X, y, lr=0.2)  # fine-tuning
    for key, value in {"0.weight": W1, "0.bias": b1, "2.weight": W2, "2.bias": b2}.items():
        np.testing.assert_allclose(model.params[key], value, rtol=1e-10, atol=1e-14, err_msg=key)


def test_supervised_stages_train_each_block_with_its_head_then_the_output_block():
    X, y, [(W1, b1), (W2, b2), (W3, b3)] = toy(1, sizes=(3, 4, 4, 2))
    Wh, bh = np.random.default_rng(2).normal(0, 0.5, (2, 4)), np.zeros(2)
    model = nk.Sequential([dense(W1, b1), L.Tanh(), dense(W2, b2), L.Tanh(), dense(W3, b3)])
    history = nk.train(model, X, y, scheme="greedy", mode="supervised", head=lambda shape, n: [dense(Wh, bh)],
                       epochs=1, batch_size=len(X), seed=0, optimizer="sgd", lr=0.5)
    assert history["stage"] == ["stage 1/2: layer 0 with its head", "stage 2/2: layers 2 and 4 (output)"]
    [(W1, b1), _] = backprop_step([(W1, b1), (Wh, bh)], ["tanh", None], X, y, lr=0.5)
    [(W2, b2), (W3, b3)] = backprop_step([(W2, b2), (W3, b3)], ["tanh", None], np.tanh(X @ W1.T + b1), y, lr=0.5)
    for key, value in {"0.weight": W1, "0.bias": b1, "2.weight": W2, "2.bias": b2, "4.weight": W3,
                       "4.bias": b3}.items():
        np.testing.assert_allclose(model.params[key], value, rtol=1e-10, atol=1e-14, err_msg=key)


def test_supervised_two_layer_net_is_one_backprop_stage():
    X, y, [(W1, b1), (W2, b2)] = toy(3)
    model = nk.Sequential([dense(W1, b1), L.Sigmoid(), dense(W2, b2)])
    history = nk.train(model, X, y, scheme="greedy", mode="supervised", epochs=1, batch_size=len(X), seed=0,
                       optimizer="sgd", lr=0.5)
    assert "stage" not in history  # a run of one stage: the toolkit logs stages when there are several
    [(W1, b1), (W2, b2)] = backprop_step([(W1, b1), (W2, b2)], ["sigmoid", None], X, y, lr=0.5)
    np.testing.assert_allclose(model.params["0.weight"], W1, rtol=1e-10)
    np.testing.assert_allclose(model.params["2.weight"], W2, rtol=1e-10)


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


class Recorder:
    """A plugin observing training events through the hooks."""

    def __init__(self):
        self.events = []

    @nk.hookimpl
    def nkernels_on_train_begin(self, model, scheme, params):
        self.events.append(("begin", params["epochs"]))

    @nk.hookimpl
    def nkernels_on_epoch_end(self, model, epoch, logs):
        self.events.append((epoch, logs["stage"]))

    @nk.hookimpl
    def nkernels_on_batch_end(self, model, batch, logs):
        self.events.append(("batch", logs["size"]))

    @nk.hookimpl
    def nkernels_on_train_end(self, model, history):
        self.events.append(("end", history.epochs))


@pytest.mark.parametrize("pretrain", ["autoencoder", "rbm"])
def test_observer_hooks_and_callbacks_fire_in_every_stage(digits, nk_register_plugin, pretrain):
    X, y, X_test, y_test = digits
    recorder = Recorder()
    nk_register_plugin(recorder)
    seen = []

    class Stages(nk.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append((logs["stage"], sorted(k for k in logs if k.startswith("val_"))))

    X, y = X[:200], y[:200]
    history = nk.train(mlp(), X, y, scheme="greedy", pretrain=pretrain, finetune_epochs=1, epochs=2, batch_size=100,
                       seed=0, callbacks=[Stages()], validation_data=(X_test, y_test))
    texts = [f"stage 1/4: {pretrain} on layer 0", f"stage 2/4: {pretrain} on layer 2", "stage 3/4: output layer 4",
             "stage 4/4: fine-tuning"]
    assert history["stage"] == [texts[0]] * 2 + [texts[1]] * 2 + [texts[2]] * 2 + [texts[3]]
    epochs = [e for e in recorder.events if isinstance(e[0], int)]
    assert epochs == list(enumerate(history["stage"]))
    assert recorder.events[0] == ("begin", 7) and recorder.events[-1] == ("end", 7)
    # batch events in every epoch of every stage: 200 samples in batches of 100
    assert [e[1] for e in recorder.events[1:-1] if e[0] == "batch"] == [100] * 14
    assert [s for s, _ in seen] == history["stage"]
    assert seen[0][1] == ["val_loss"] and seen[-1][1] == ["val_accuracy", "val_loss"]


def test_same_seed_same_weights_and_unlabelled_pretraining_of_every_block(digits):
    X = digits[0][:300]
    models = [mlp(), mlp()]
    for model in models:
        history = nk.train(model, X, scheme="greedy", corruption=0.2, tied=False, epochs=1, seed=4)
    assert history["stage"] == [f"stage {i + 1}/3: autoencoder on layer {2 * i}" for i in range(3)]
    for key, value in models[0].params.items():
        assert not np.array_equal(value, mlp().params[key])
        np.testing.assert_array_equal(value, models[1].params[key])


def test_supervised_mode_trains_any_block_with_heads(digits):
    X, y = nk.datasets.load("digits", flat=False)[:2]
    model = nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Conv2D(4, 4, 3, padding=1),
                           L.ReLU(), L.Flatten(), L.Dense(64, 10)], seed=0)
    history = nk.train(model, X[:64], y[:64], scheme="greedy", mode="supervised", head=16, epochs=1, batch_size=32,
                       seed=0, compiled=False)
    assert history["stage"] == ["stage 1/2: layer 0 with its head", "stage 2/2: layers 3 and 6 (output)"]


def test_unsupported_layers_and_bad_options_are_named():
    conv = nk.Sequential([L.Conv2D(1, 2, 3), L.ReLU(), L.Flatten(), L.Dense(72, 10)])
    X, y = np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=r"cannot train layer 0 \(Conv2D\).*mode='supervised'"):
        nk.train(conv, X, y, scheme="greedy")
    dropout = nk.Sequential([L.Dense(8, 4), L.ReLU(), L.Dropout(0.5), L.Dense(4, 2)])
    with pytest.raises(ValueError, match=r"layer 2 \(Dropout\) after the Dense at layer 0"):
        nk.train(dropout, np.zeros((4, 8)), np.zeros(4, np.int64), scheme="greedy")
    linear = nk.Sequential([L.Dense(8, 4), L.Dense(4, 2)])
    with pytest.raises(ValueError, match="rbm pretraining cannot train the Dense at layer 0"):
        nk.train(linear, np.zeros((4, 8)), np.zeros(4, np.int64), scheme="greedy", pretrain="rbm")
    with pytest.raises(ValueError, match="mode='supervised' needs labels y"):
        nk.train(linear, np.zeros((4, 8)), scheme="greedy", mode="supervised")
    with pytest.raises(ValueError, match="finetune_epochs needs labels y"):
        nk.train(linear, np.zeros((4, 8)), scheme="greedy", finetune_epochs=2)
    with pytest.raises(ValueError, match="mode must be one of 'unsupervised', 'supervised'"):
        Greedy(mode="layerwise")
    with pytest.raises(ValueError, match="pretrain must be one of"):
        Greedy(pretrain="pca")
    with pytest.raises(ValueError, match=r"corruption must be a finite number in \[0, 1\), got 2.0"):
        Greedy(corruption=2)
    with pytest.raises(TypeError, match="head must be None"):
        Greedy(head="big")
    with pytest.raises(ValueError, match="finetune_epochs must be at least 0"):
        Greedy(finetune_epochs=-1)
    with pytest.raises(TypeError, match="does not accept the option"):
        nk.train(linear, np.zeros((4, 8)), np.zeros(4, np.int64), scheme="greedy", sigma=0.1)


@pytest.mark.parametrize("options, message", [
    ({"mode": "supervised", "pretrain": "rbm"}, "pretrain configures unsupervised pretraining and has no effect in "
                                                "mode='supervised'; drop it or use mode='unsupervised'"),
    ({"mode": "supervised", "tied": False, "corruption": 0.2}, "tied, corruption configure unsupervised pretraining "
                                                               "and have no effect in mode='supervised'"),
    ({"mode": "supervised", "cd_k": 2}, "cd_k configures .* no effect in mode='supervised'"),
    ({"mode": "supervised", "visible": "gaussian"}, "visible configures .* no effect in mode='supervised'"),
    ({"head": 32}, "head is the auxiliary classifier of mode='supervised' and has no effect in "
                   "mode='unsupervised'; drop it or use mode='supervised'"),
    ({"head": 32, "mode": "unsupervised"}, "head .* no effect in mode='unsupervised'"),
    ({"pretrain": "rbm", "tied": False}, "tied applies to pretrain='autoencoder' and has no effect with "
                                         "pretrain='rbm' in mode='unsupervised'"),
    ({"corruption": 0.1, "cd_k": 3}, "cd_k applies to pretrain='rbm' and has no effect with "
                                     "pretrain='autoencoder'"),
    ({"finetune_lr": 1e-3, "finetune_epochs": 0}, r"finetune_lr has no effect without fine-tuning "
                                                  r"\(finetune_epochs=0, mode='unsupervised'\); set "
                                                  r"finetune_epochs or drop finetune_lr"),
    ({"mode": "supervised", "finetune_lr": 1e-3}, r"finetune_lr .* \(finetune_epochs=0, mode='supervised'\)"),
])
def test_options_without_effect_in_the_chosen_mode_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Greedy(**options)
    with pytest.raises(ValueError, match=message):
        nk.train(mlp(), np.zeros((4, 64)), np.zeros(4, np.int64), scheme="greedy", **options)


def test_options_with_effect_are_taken():
    scheme = Greedy(pretrain="rbm", cd_k=2, visible="gaussian", finetune_epochs=1, finetune_lr=1e-4)
    assert (scheme.pretrain, scheme.cd_k, scheme.visible, scheme.finetune_lr) == ("rbm", 2, "gaussian", 1e-4)
    scheme = Greedy(corruption=0.2, tied=False)
    assert (scheme.pretrain, scheme.tied, scheme.corruption) == ("autoencoder", False, 0.2)
    assert Greedy(mode="supervised", head=16).head == 16


@pytest.mark.parametrize("options", [{"finetune_epochs": 1}, {"pretrain": "rbm"}, {"mode": "supervised", "head": 8},
                                     {"optimizer": nk.optimizers.SGD(0.05, momentum=0.9), "finetune_epochs": 1}])
def test_a_reused_scheme_trains_a_fresh_model_as_a_new_scheme_does(digits, options):
    X, y = digits[0][:160], digits[1][:160]
    scheme = Greedy(**options)
    scheme.fit(mlp(), X, y, epochs=2, batch_size=32, seed=0)
    reused, new = mlp(), mlp()
    scheme.fit(reused, X, y, epochs=2, batch_size=32, seed=0)
    Greedy(**options).fit(new, X, y, epochs=2, batch_size=32, seed=0)
    for key, value in new.params.items():
        np.testing.assert_array_equal(reused.params[key], value)


class StopEveryEpoch(nk.callbacks.Callback):
    def on_epoch_end(self, epoch, logs):
        self.context.stop_training = True


def test_a_stop_ends_the_current_stage_and_the_later_stages_still_run(digits):
    X, y = digits[0][:160], digits[1][:160]
    history = nk.train(mlp(), X, y, scheme="greedy", finetune_epochs=3, epochs=3, batch_size=32, seed=0,
                       callbacks=[StopEveryEpoch()])
    assert history["stage"] == ["stage 1/4: autoencoder on layer 0", "stage 2/4: autoencoder on layer 2",
                                "stage 3/4: output layer 4", "stage 4/4: fine-tuning"]


class Snapshots(nk.callbacks.Callback):
    """Each epoch's stage, monitored value and weights."""

    def __init__(self, monitor):
        self.monitor, self.epochs = monitor, []

    def on_epoch_end(self, epoch, logs):
        weights = {k: v.copy() for k, v in self.context.model.params.items()}
        self.epochs.append((logs["stage"], logs[self.monitor], weights))


def test_early_stopping_watches_each_stages_own_loss_and_keeps_its_best_weights(digits):
    X, y, X_test, y_test = digits
    stopper, snapshots = nk.schedules.EarlyStopping(patience=2, min_delta=1e-3), Snapshots("val_loss")
    model = mlp()
    history = nk.train(model, X, y, scheme="greedy", epochs=20, finetune_epochs=0, seed=0,
                       validation_data=(X_test, y_test), callbacks=[snapshots, stopper])
    stages = sorted(set(history["stage"]))
    assert stages == ["stage 1/3: autoencoder on layer 0", "stage 2/3: autoencoder on layer 2",
                      "stage 3/3: output layer 4"]
    runs = {s: [e for e in snapshots.epochs if e[0] == s] for s in stages}
    assert all(1 < len(runs[s]) < 20 for s in stages[:2])  # the pretraining stages stopped early, each on its own
    assert len(runs[stages[2]]) > 2  # the output stage was not stopped by the pretraining stages' smaller losses
    for s, layer in zip(stages, ("0", "2", "4")):  # each stage left its layer at the stage's best epoch
        lowest, best = np.inf, None
        for _, value, weights in runs[s]:
            if value < lowest - 1e-3:  # an improvement by more than min_delta
                lowest, best = value, weights
        for name in ("weight", "bias"):
            np.testing.assert_array_equal(model.params[f"{layer}.{name}"], best[f"{layer}.{name}"])
    assert nk.evaluate(model, X_test, y_test)["accuracy"] > 0.9


def test_registered_through_the_entry_point_and_listed_by_nkernels_plugins(capsys):
    assert nk.registry.schemes["greedy"] is Greedy
    entry = nk.registry.schemes.provider("greedy")
    assert (entry.plugin, entry.distribution) == ("greedy", "nkernels-greedy")
    assert cli_main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    info = listed["greedy"]
    assert (info["distribution"], info["status"]) == ("nkernels-greedy", "active")
    assert sorted(info["registered"]["schemes"]) == ["autoencoder", "greedy"]
    assert sorted(info["registered"]["extractors"]) == ["autoencoder", "rbm"]


def test_command_line_runs_greedy_with_options(capsys):
    assert cli_main(["train", "--scheme", "greedy", "--epochs", "1", "--quiet", "--option", "mode=supervised",
                     "--lr", "0.003"]) == 0
    out = capsys.readouterr().out
    assert "greedy" in out and "test accuracy" in out


def test_defaults_fine_tune_after_unsupervised_pretraining_with_labels_at_a_learning_rate_of_3e_3(digits):
    X, y = digits[0][:64], digits[1][:64]
    history = nk.train(mlp(), X, y, scheme="greedy", epochs=1, seed=0)
    assert history["stage"] == ["stage 1/4: autoencoder on layer 0", "stage 2/4: autoencoder on layer 2",
                                "stage 3/4: output layer 4"] + ["stage 4/4: fine-tuning"] * 10
    assert history["lr"] == [3e-3] * 13
    assert nk.train(mlp(), X, y, scheme="greedy", mode="supervised", epochs=1, seed=0)["stage"] == [
        "stage 1/2: layer 0 with its head", "stage 2/2: layers 2 and 4 (output)"]
    assert len(nk.train(mlp(), X, scheme="greedy", epochs=1, seed=0)["loss"]) == 3  # no labels: no fine-tuning
    assert Greedy(optimizer="adamw").optimizer.lr == 3e-3
    assert Greedy(optimizer="sgd").optimizer.lr == nk.optimizers.SGD().lr  # another optimizer keeps its own
    with pytest.raises(ValueError, match="finetune_lr needs labels y"):
        nk.train(mlp(), X, scheme="greedy", finetune_lr=1e-4)


def test_augment_shift_reaches_the_stages_that_train_on_the_images():
    X, y = nk.datasets.load("digits", flat=False)[:2]
    X, y = X[:64], y[:64]

    def convnet():
        return nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(64, 16),
                              L.ReLU(), L.Dense(16, 10)], seed=0)

    plain, shifted = convnet(), convnet()
    for model, shift in ((plain, 0), (shifted, 1)):
        history = nk.train(model, X, y, scheme="greedy", mode="supervised", epochs=1, batch_size=32, seed=0,
                           compiled=False, augment_shift=shift)
    assert history["stage"] == ["stage 1/2: layer 0 with its head", "stage 2/2: layers 4 and 6 (output)"]
    assert not np.array_equal(plain.params["0.weight"], shifted.params["0.weight"])
    flat = nk.Sequential([L.Flatten(), L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)
    with pytest.raises(ValueError, match="augment_shift shifts the images of the stages that train on them.*"
                                         "this run has neither"):
        nk.train(flat, X, y, scheme="greedy", finetune_epochs=0, augment_shift=1)
    with pytest.raises(ValueError, match="this run has neither"):
        nk.train(flat, X, scheme="greedy", augment_shift=1)


def test_command_line_gives_greedy_the_toolkit_options(tmp_path, capsys):
    """--checkpoint-dir, --resume, --schedule and --augment-shift reach the scheme: a checkpoint of the greedy run,
    a step schedule over each stage's epochs, the augmentation saved with it, and a resume that continues it."""
    from nkernels.export.io import read_checkpoint

    ckpt, spec = tmp_path / "run", tmp_path / "convnet.json"
    convnet = nk.Sequential([L.Conv2D(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(32, 10)])
    spec.write_text(json.dumps(convnet.get_config()))
    command = ["train", "--scheme", "greedy", "--model", str(spec), "--quiet", "--epochs", "3", "--checkpoint-dir",
               str(ckpt), "--schedule", "step", "--augment-shift", "1", "--option", "mode=supervised",
               "--option", "finetune_epochs=1", "--option", "compiled=false"]
    assert cli_main(command) == 0
    extra = read_checkpoint(ckpt / "checkpoint.safetensors").extra
    assert extra["scheme"] == "greedy" and extra["augment"][0] == 1
    assert extra["history"]["lr"] == pytest.approx([3e-3, 3e-4, 3e-5, 3e-3])  # the schedule starts again
    capsys.readouterr()
    assert cli_main(command + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resuming the run in {ckpt} after epoch 4" in out and "fine-tuning" in out


def test_readme_code_without_a_figure_runs(digits):
    """The README's code that quotes no accuracy runs as shown (the figures are checked by test_figures.py)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    readme = readme[:readme.index("## The autoencoder scheme")]  # test_autoencoder_figures.py runs that section
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)[1:]  # the first is a figure test
    namespace = {"nk": nk, "L": L, "X": digits[0], "y": digits[1], "model": mlp()}
    for block in blocks:
        exec("\n".join(line for line in block.splitlines() if not re.search(r"\d%", line)), namespace)
    assert namespace["model"].predict(digits[2]).shape == (len(digits[2]), 10)
