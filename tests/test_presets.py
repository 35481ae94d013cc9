"""The command line's presets reach their accuracy on digits with their default training settings."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import presets
from nkernels.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("preset, target", [("mlp", 0.96), ("cnn", 0.98), ("lstm", 0.96)])
def test_preset_reaches_its_accuracy_from_the_cli(preset, target, tmp_path, capsys):
    path = tmp_path / f"{preset}.safetensors"
    assert main(["train", "--model", preset, "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0]) / 100
    assert accuracy >= target, out
    model = nk.load(path)
    form = presets.input_form(preset)
    _, _, X_test, y_test = nk.datasets.load("digits", flat=form == "flat")
    scores = nk.evaluate(model, presets.prepare_inputs(form, X_test), y_test)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=5e-5)


def test_presets_take_the_input_forms_they_declare():
    X, _, _, _ = nk.datasets.load("digits", flat=False)
    assert X.shape[1:] == (1, 8, 8)
    seq = presets.prepare_inputs("sequence", X[:5])
    np.testing.assert_array_equal(seq[:, 3], X[:5, 0, 3])  # step t is image row t
    assert presets.prepare_inputs("flat", X[:5]).shape == (5, 64)
    for name in presets.PRESETS:
        form = presets.input_form(name)
        sample = presets.prepare_inputs(form, X[:2])
        model = presets.build(name, sample.shape[1:], 10)
        assert model(sample).shape == (2, 10)


def test_unknown_preset_and_wrong_input_form():
    with pytest.raises(ValueError, match="unknown model preset 'vgg'; available: cnn, lstm, mlp, resnet, transformer"):
        presets.build("vgg", (64,), 10)
    with pytest.raises(ValueError, match="needs images"):
        presets.build("cnn", (64,), 10)
    with pytest.raises(ValueError, match="needs sequences"):
        presets.build("lstm", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="the transformer preset needs sequences"):
        presets.build("transformer", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="the resnet preset needs images"):
        presets.build("resnet", (8, 8), 10)


def test_input_form_of_a_spec_file(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text('{"layers": [{"type": "gru", "config": {"input_size": 8, "hidden_size": 4}}]}')
    assert presets.input_form(str(spec)) == "sequence"
    spec.write_text("not json")
    assert presets.input_form(str(spec)) == "flat"


@pytest.mark.parametrize("preset, start, form", [("transformer", 1, "sequence"), ("resnet", 1, "image"),
                                                 ("resnet", 3, "image")])
def test_input_form_of_spec_files_starting_with_the_new_layers(tmp_path, preset, start, form):
    """The presets' layers from ``start`` on, saved as a spec: a PositionalEmbedding wants sequences, a
    BatchNorm2D images, and a Residual block wants what its body's first layer (here a Conv2D) wants."""
    shape = (1, 8, 8) if form == "image" else (8, 8)
    config = presets.build(preset, shape, 10).get_config()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"layers": config["layers"][start:]}))
    assert presets.input_form(str(spec)) == form


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("preset, target", [("transformer", 96.5), ("resnet", 99.5)])
def test_the_transformer_and_resnet_presets_reach_their_targets_for_two_seeds(preset, target, seed,
                                                                               preset_accuracy):
    assert preset_accuracy(preset, seed) >= target


@pytest.mark.parametrize("preset", ["transformer", "resnet"])
def test_the_new_presets_train_a_step_from_the_command_line(preset, capsys, monkeypatch):
    """One epoch on a slice of digits, through the command line with the preset's own settings otherwise."""
    from nkernels import datasets

    full = datasets.load("digits", flat=False)
    monkeypatch.setattr(datasets, "load", lambda name, flat: tuple(a[:40] for a in full))
    assert main(["train", "--model", preset, "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out


@pytest.mark.parametrize("argv, schedule", [([], "cosine"), (["--schedule", "step"], "step"),
                                            (["--scheduler", "mymodule:schedule"], None),
                                            (["--scheme", "es"], None)])
def test_the_resnet_preset_decays_its_learning_rate_unless_told_otherwise(argv, schedule):
    """Its default cosine schedule goes to backprop from the command line (never to another scheme); a schedule
    given replaces it, and so does a custom scheduler."""
    from nkernels.cli.commands import _build_parser, _scheme_options

    args = _build_parser().parse_args(["train", "--model", "resnet", *argv])
    options = _scheme_options(args, presets.TRAINING_DEFAULTS["resnet"])
    assert options.get("schedule") == schedule
    assert options.get("lr") == (2e-3 if args.scheme == "backprop" else None)


def test_compare_and_the_estimator_train_a_preset_with_its_schedule(monkeypatch):
    """``nkernels compare``'s backprop row and ``NKClassifier`` take the preset's learning rate and schedule
    as the command line does."""
    from nkernels.leaderboard import runner
    from nkernels.sklearn import NKClassifier

    assert NKClassifier(model="resnet")._options() == {"lr": 2e-3, "schedule": "cosine"}
    assert NKClassifier(model="resnet", lr=0.01, scheme_options={"schedule": "step"})._options() == \
        {"lr": 0.01, "schedule": "step"}
    assert NKClassifier(model="mlp")._options() == {"lr": 1e-3}
    jobs = []
    monkeypatch.setattr(runner, "_run_row", lambda job, folder, timeout: jobs.append(job) or
                        runner.ComparisonRow(name=job["name"], kind=job["kind"]))
    nk.compare(model="resnet", schemes=["backprop"], max_samples=64)
    assert jobs[0]["options"] == {"lr": 2e-3, "schedule": "cosine"} and jobs[0]["epochs"] == 40
