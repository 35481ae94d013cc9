"""The nkernels command line: train, plugins and info."""
import json
from importlib import metadata

import pytest

import nkernels as nk
from nkernels.cli import main

from plugin_dists import install_distribution


def test_console_script_is_installed():
    (script,) = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "nkernels"]
    assert script.value == "nkernels.cli:main"


def test_train_prints_a_table_and_saves(tmp_path, capsys):
    path = tmp_path / "mlp.safetensors"
    assert main(["train", "--epochs", "2", "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    for heading in ("epoch", "loss", "train acc", "test acc", "time (s)"):
        assert heading in out
    assert "test accuracy" in out and "saved to" in out
    model = nk.load(path)
    assert [l["type"] for l in model.get_config()["layers"]] == ["dense", "relu", "dense", "relu", "dense"]


def test_train_from_a_json_spec(tmp_path, capsys):
    spec = nk.Sequential([nk.layers.Dense(64, 10)]).get_config()
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main(["train", "--model", str(path), "--epochs", "1", "--quiet", "--optimizer", "sgd",
                 "--lr", "0.1"]) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "cifar99"], "unknown dataset 'cifar99'; available: digits"),
    (["train", "--model", "perceiver"], "unknown model preset 'perceiver'"),
    (["train", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "--optimizer", "lion"], "unknown optimizer 'lion'"),
    (["train", "--scheme", "magic"], "unknown scheme 'magic'"),
])
def test_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


def test_train_on_mnist_files_from_data_path(tmp_path, capsys):
    from idx_files import write_mnist_folder

    write_mnist_folder(tmp_path, n_train=20)
    assert main(["train", "--data", "mnist", "--data-path", str(tmp_path), "--epochs", "1", "--quiet"]) == 0
    assert "mlp on mnist" in capsys.readouterr().out
    assert main(["train", "--data", "mnist", "--quiet"]) == 2
    assert "needs path=DIR (on the command line --data-path DIR)" in capsys.readouterr().err
    assert main(["train", "--data-path", str(tmp_path), "--quiet"]) == 2
    assert "dataset 'digits' takes no option path" in capsys.readouterr().err


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError):
        main(["--debug", "train", "--data", "cifar99", "--quiet"])


def test_plugins_json_lists_builtins_and_first_party_plugins(capsys, fresh_plugins):
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    builtin = rows["nkernels.plugins.builtins.layers"]
    assert builtin["status"] == "active" and "dense" in builtin["registered"]["layers"]
    assert rows["nkernels.plugins.builtins.schemes"]["registered"] == {"schemes": ["backprop"]}
    activations = rows["activations"]
    assert (activations["distribution"], activations["status"]) == ("nkernels-activations", "active")
    assert activations["version"] == metadata.version("nkernels-activations")


def test_plugins_table_shows_failed_and_disabled(tmp_path, monkeypatch, capsys, fresh_plugins):
    install_distribution(tmp_path / "a", monkeypatch, "nk-broken", "nk_broken", "raise ImportError('no libfoo')\n")
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "activations")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps cells to the terminal width
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "nk-broken" in out and "failed" in out and "no libfoo" in out
    assert "disabled" in out


def test_info_reports_versions_cuda_cache_and_blas(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("nkernels", "numba", "llvmlite", "numpy", "numba-cuda", "cuda", "numba cache", "threads", "blas",
                "OPENBLAS_CORETYPE"):
        assert key in out
    assert ("usable" in out) or ("not usable" in out)
    from threadpoolctl import threadpool_info

    architecture = next(info.get("architecture") for info in threadpool_info() if info["user_api"] == "blas")
    assert f"{architecture} kernels" in out  # the kernels OpenBLAS chose, which decide GEMM speed
    from nkernels.kernels.cpu.avx512 import tiles_in_use

    assert ("AVX-512 tiles for a training step's" in " ".join(out.split())) == tiles_in_use()


def test_train_with_schedule_plot_checkpoint_and_resume(tmp_path, capsys):
    plot, ckpt = tmp_path / "curves.png", tmp_path / "run"
    base = ["train", "--model", "cnn", "--quiet", "--checkpoint-dir", str(ckpt), "--schedule", "cosine",
            "--augment-shift", "1"]
    assert main(base + ["--epochs", "2"]) == 0
    assert (ckpt / "checkpoint.safetensors").exists()
    capsys.readouterr()
    assert main(base + ["--epochs", "3", "--resume", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert f"resuming the run in {ckpt} after epoch 2" in out
    assert "curves written to" in out and plot.read_bytes()[:4] == b"\x89PNG"
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "2", "3"]  # the history carries on


@pytest.mark.parametrize("argv, message", [
    (["train", "--resume"], "--resume continues the run in --checkpoint-dir"),
    (["train", "--schedule", "linear"], "unknown schedule 'linear'"),
    (["train", "--augment-shift", "2"], "need image inputs"),
    (["train", "--batch-size", "0"], "batch_size must be at least 1"),
    (["train", "--lr", "-1"], "lr must be a finite number above 0"),
    (["train", "--plot", "curves.pdf"], "give a path ending in .png"),
])
def test_more_errors_are_one_line(argv, message, capsys):
    assert main(argv + ["--quiet", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_debug_is_accepted_after_the_subcommand():
    with pytest.raises(ValueError):
        main(["train", "--data", "cifar99", "--debug", "--quiet"])


def test_plot_is_a_readable_png_even_in_a_new_directory(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from PIL import Image

    plot = tmp_path / "new" / "dir" / "curves.png"
    assert main(["train", "--epochs", "2", "--quiet", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(plot) as image:
        image.verify()
        assert image.format == "PNG"


def test_missing_matplotlib_is_reported_before_training(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["train", "--epochs", "1", "--quiet", "--plot", str(tmp_path / "c.png")]) == 2
    captured = capsys.readouterr()
    assert "pip install 'nkernels[plot]'" in captured.err and "Traceback" not in captured.err
    assert "epoch" not in captured.out  # no training ran


def test_progress_bar_is_on_by_default(capsys):
    assert main(["train", "--epochs", "2"]) == 0
    assert "backprop on digits" in capsys.readouterr().out
    assert main(["train", "--epochs", "2", "--quiet"]) == 0
    assert "backprop on digits" not in capsys.readouterr().out


def test_same_seed_same_model_and_other_seed_another(tmp_path):
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path, seed in zip(paths, ("3", "3", "4")):
        assert main(["train", "--epochs", "1", "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.1",
                     "--seed", seed, "--quiet", "--save", str(path)]) == 0
    a, b, c = (nk.load(p).params["0.weight"] for p in paths)
    assert (a == b).all() and not (a == c).all()


def test_early_stopping_watches_the_training_loss_and_keeps_the_best_weights(monkeypatch):
    seen = {}

    def record(model, X, y, **kwargs):
        seen.update(kwargs)
        return nk.History({"loss": [1.0], "time": [0.1]})

    monkeypatch.setattr(nk.training, "train", record)
    assert main(["train", "--quiet", "--scheme", "dfa", "--early-stopping", "3"]) == 0
    (stopper,) = seen["callbacks"]
    assert isinstance(stopper, nk.schedules.EarlyStopping)
    assert (stopper.monitor, stopper.patience, stopper.restore_best_weights) == ("loss", 3, True)
    assert main(["train", "--quiet", "--early-stopping", "-1"]) == 2  # refused before any training


@pytest.mark.parametrize("scheme", ["dfa", "greedy", "admm", "es"])
def test_every_scheme_takes_checkpoints_and_early_stopping_from_the_command_line(scheme, tmp_path):
    run = ["train", "--quiet", "--scheme", scheme, "--epochs", "1", "--checkpoint-dir", str(tmp_path),
           "--early-stopping", "1"]
    if scheme == "es":  # a small population for a quick epoch
        run += ["--option", "population=16", "--option", "generations_per_epoch=2"]
    assert main(run) == 0 and (tmp_path / nk.schemes.CHECKPOINT_FILE).exists()
    assert main(run + ["--resume"]) == 0


def test_interrupt_is_one_line_with_a_resume_hint(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nk.training, "train", interrupted)
    assert main(["train", "--quiet", "--checkpoint-dir", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == f"interrupted; continue with --checkpoint-dir {tmp_path} --resume"


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("something\ninternal")

    monkeypatch.setattr(nk.training, "train", broken)
    assert main(["train", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: RuntimeError: something internal (run again with --debug for the traceback)"
    with pytest.raises(RuntimeError):
        main(["train", "--quiet", "--debug"])


def test_options_another_scheme_does_not_take_are_errors(nk_register_plugin, capsys):
    class Fixed(nk.schemes.Scheme):
        """A scheme without options: one epoch of nothing."""

        def fit(self, model, X, y=None, *, epochs=1, batch_size=32, seed=None, callbacks=None,
                validation_data=None):
            history = nk.History()
            history.append(loss=0.0)
            return history

    class Plugin:
        @nk.hookimpl
        def nkernels_register_schemes(self):
            return {"fixed": Fixed}

    nk_register_plugin(Plugin())
    assert main(["train", "--scheme", "fixed", "--quiet", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--scheme", "fixed", "--quiet", "--schedule", "cosine"]) == 2
    assert "does not accept the option(s) ['schedule']" in capsys.readouterr().err


def test_train_on_cuda_without_a_gpu_says_why(monkeypatch, capsys):
    from nkernels.runtime import devices

    monkeypatch.setattr(devices, "cuda_status", lambda: (False, "no CUDA driver or GPU found"))
    assert main(["train", "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda' is not usable: no CUDA driver or GPU found" in err and "Traceback" not in err


def test_scheme_options_and_scale_out_flags_reach_the_scheme(nk_register_plugin):
    seen, batch_sizes = {}, []

    class Recording(nk.schemes.Scheme):
        """Records its constructor options, and the batch size fit gets."""

        def __init__(self, **options):
            seen.update(options)

        def fit(self, model, X, y=None, *, epochs=1, batch_size=17, seed=None, callbacks=None,
                validation_data=None):
            batch_sizes.append(batch_size)
            history = nk.History()
            history.append(loss=0.0)
            return history

    class Plugin:
        @nk.hookimpl
        def nkernels_register_schemes(self):
            return {"recording": Recording}

    nk_register_plugin(Plugin())
    assert main(["train", "--scheme", "recording", "--quiet", "--epochs", "1", "--workers", "2",
                 "--option", "sigma=0.05", "--option", "mode=supervised", "--option", "sizes=[1, 2]"]) == 0
    assert seen == {"workers": 2, "sigma": 0.05, "mode": "supervised", "sizes": [1, 2]}
    seen.clear()
    assert main(["train", "--scheme", "recording", "--quiet", "--epochs", "1",
                 "--scheduler", "tcp://127.0.0.1:8786"]) == 0
    assert seen == {"scheduler": "tcp://127.0.0.1:8786"}
    # --batch-size goes to fit when given, else the scheme keeps its own default
    assert main(["train", "--scheme", "recording", "--quiet", "--epochs", "1", "--batch-size", "8"]) == 0
    assert batch_sizes == [17, 17, 8]


def test_a_malformed_option_is_a_one_line_error(capsys):
    assert main(["train", "--quiet", "--option", "no-equals-sign"]) == 2
    assert "--option takes KEY=VALUE" in capsys.readouterr().err


def test_save_to_a_path_that_cannot_be_written_fails_before_training(tmp_path, monkeypatch, capsys):
    import nkernels.training

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(nkernels.training, "train", no_training)
    (tmp_path / "afile").write_text("not a folder")
    assert main(["train", "--quiet", "--save", str(tmp_path / "afile" / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "--save: cannot write" in err and "a file stands where a folder of the path should be" in err
    assert main(["train", "--quiet", "--save", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["missing.json", "models/mlp"])
def test_a_missing_model_file_is_reported_as_such(tmp_path, monkeypatch, capsys, spec):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--quiet", "--model", spec]) == 2
    err = capsys.readouterr().err
    assert f"model spec file not found: {tmp_path / spec}" in err and "unknown model preset" not in err


def test_a_spec_whose_plugin_is_missing_names_it(tmp_path, monkeypatch, capsys, fresh_plugins):
    spec = {"layers": [{"type": "dense", "config": {"in_features": 64, "out_features": 10}},
                       {"type": "elu", "config": {}}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["train", "--quiet", "--model", str(tmp_path / "spec.json")]) == 2
    err = capsys.readouterr().err
    assert ("layer 1 of the model config has the type 'elu', which no plugin installed here registers: "
            "unknown layer 'elu'; the layer 'elu' is provided by the plugin "
            "distribution nkernels-activations, and NKERNELS_DISABLE_PLUGIN_AUTOLOAD keeps every plugin from "
            "loading") in err


def test_batch_size_is_refused_by_a_scheme_without_batches(capsys):
    pytest.importorskip("nkernels_admm")
    for argv in (["--batch-size", "64"], ["--option", "batch_size=64"]):
        assert main(["train", "--quiet", "--scheme", "admm", "--epochs", "1"] + argv) == 2
        # the scheme's capabilities refuse it (no mini-batches), with the scheme named
        assert "admm trains on the whole training set each epoch, so batch_size has no effect" in \
            capsys.readouterr().err
    assert main(["train", "--quiet", "--scheme", "admm", "--epochs", "1"]) == 0


def test_plugins_shows_conflicts_and_refused_names(tmp_path, monkeypatch, capsys, fresh_plugins):
    source = """
import nkernels as nk

class Twice(nk.layers.ReLU):
    pass

@nk.hookimpl
def nkernels_register_layers():
    return {"twice": Twice, "relu": Twice}
"""
    install_distribution(tmp_path / "a", monkeypatch, "nk-twice-a", "nk_twice_a", source)
    install_distribution(tmp_path / "b", monkeypatch, "nk-twice-b", "nk_twice_b", source)
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["nk-twice-a"]["conflicts"] == ["layers twice (also registered by nk-twice-b)"]
    assert rows["nk-twice-b"]["conflicts"] == ["layers twice (also registered by nk-twice-a)"]
    assert rows["nk-twice-a"]["refused"] == ["layers relu"] and rows["nk-twice-a"]["status"] == "active"
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "conflict: layers twice (also registered by nk-twice-b)" in out
    assert "refused (a built-in name): layers relu" in out
