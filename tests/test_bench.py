"""The benchmark code runs (its figures are measured elsewhere: benchmarks never assert on time)."""
import dataclasses
import importlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nkernels as nk

from nkernels.cli import bench
from nkernels.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_model_matches_its_pytorch_twin_in_shape():
    torch = pytest.importorskip("torch")
    for case in bench.CASES.values():
        X, y = bench.data(case, 1)
        ours = case.build()(X)
        theirs = case.build_torch(torch.nn)(torch.from_numpy(X))
        assert ours.shape == tuple(theirs.shape) == (case.batch_size, 10), case.name
        assert sum(v.size for v in case.build().params.values()) == \
            sum(p.numel() for p in case.build_torch(torch.nn).parameters()), case.name


def test_each_framework_is_timed_in_a_process_of_its_own(monkeypatch):
    """speedups times every framework through a fresh process; the child reports a peer that is not
    installed as an ImportError, and nkernels' time for real."""
    calls = []
    monkeypatch.setattr(bench, "_in_own_process", lambda *args: calls.append(args) or 1e-3)
    bench.speedups(["mlp", "cnn"], n_steps=2, repeat=1, peers=("torch", "jax"))
    assert calls == [(fw, case, 2, 1, None) for case in ("mlp", "cnn") for fw in ("torch", "jax", "nkernels")]
    monkeypatch.undo()
    assert bench._in_own_process("nkernels", "mlp", 2, 1) > 0
    # the child's report of a missing peer, run in this process (a monkeypatch does not reach a child)
    monkeypatch.setattr(bench, "_peer_step", lambda peer: (_ for _ in ()).throw(ImportError("no such peer")))
    child = io.StringIO()
    monkeypatch.setattr(sys, "stdout", child)
    bench._child(["jax", "mlp", "2", "1"])
    assert json.loads(child.getvalue()) == {"missing": "no such peer"}


def test_rounds_take_turns_and_report_each_frameworks_median(monkeypatch):
    """With rounds, the frameworks take turns round by round (a drifting machine slows every side
    alike) and each one's median is reported; a peer that is not installed is asked once."""
    calls = []
    seconds = {"torch": iter([9e-6, 1e-6, 5e-6]), "nkernels": iter([4e-6, 2e-6, 3e-6])}

    def timed(framework, *args):
        calls.append(framework)
        if framework == "jax":
            raise ImportError("JAX is not installed")
        return next(seconds[framework])

    monkeypatch.setattr(bench, "_in_own_process", timed)
    (row,) = bench.speedups(["mlp"], n_steps=2, repeat=1, peers=("torch", "jax"), rounds=3)
    assert calls == ["torch", "jax", "nkernels", "torch", "nkernels", "torch", "nkernels"]
    assert row["torch_us"] == pytest.approx(5.0) and row["nkernels_us"] == pytest.approx(3.0)
    assert row["torch_speedup"] == pytest.approx(5 / 3) and row["jax_us"] is None and row["jax_ratio"] is None
    with pytest.raises(ValueError, match="rounds"):
        bench.speedups(["mlp"], rounds=0)


def test_speedups_and_the_bench_command(capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps cells to the terminal width
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)  # in this process: quicker
    (row,) = bench.speedups(["mlp"], n_steps=2, repeat=1)
    assert row["nkernels_us"] > 0 and row["torch_us"] > 0 and row["speedup"] == row["torch_us"] / row["nkernels_us"]
    assert row["torch_ratio"] == row["nkernels_us"] / row["torch_us"]  # what asv tracks: lower is better
    assert main(["bench", "--models", "mlp", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch / nkernels" in out and "JAX / nkernels" in out
    assert main(["bench", "--models", "resnet152"]) == 2


def test_the_bench_command_prints_json(capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)
    assert main(["bench", "--models", "mlp", "--repeat", "1", "--rounds", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["case"] == "mlp" and row["nkernels_us"] > 0
    for peer in ("torch", "jax"):
        if row[f"{peer}_us"] is not None:
            assert row[f"{peer}_ratio"] == pytest.approx(row["nkernels_us"] / row[f"{peer}_us"])
            assert row[f"{peer}_speedup"] == pytest.approx(1 / row[f"{peer}_ratio"])


def test_a_missing_peer_gives_no_ratio_and_an_unknown_peer_an_error(monkeypatch):
    def not_installed(case, n_steps, repeat, source=None):
        raise ImportError("JAX is not installed")

    monkeypatch.setattr(bench, "_peer_step", lambda peer: not_installed)
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)
    (row,) = bench.speedups(["mlp"], n_steps=2, repeat=1, peers=("jax",))
    assert row["jax_us"] is None and row["jax_speedup"] is None and row["nkernels_us"] > 0
    with pytest.raises(ValueError, match="unknown peer"):
        bench.speedups(["mlp"], peers=("tensorflow",))


def test_asv_suite_is_importable_and_configured():
    config = json.loads((ROOT / "asv.conf.json").read_text())
    assert config["benchmark_dir"] == "benchmarks"
    assert config["launch_method"] == "spawn" and config["results_dir"].startswith(".asv")
    names = [p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__"]
    assert {"bench_layers", "bench_training", "bench_startup", "bench_ratios"} <= set(names)
    for name in names:  # a module that fails to import breaks asv's discovery of the whole suite
        importlib.import_module(f"benchmarks.{name}")


def test_the_preset_cases_match_their_pytorch_twins_parameter_for_parameter():
    """The transformer and resnet twins hold tensors of the same shapes as the presets (as sorted lists)."""
    torch = pytest.importorskip("torch")
    for name in ("transformer", "resnet"):
        case = bench.CASES[name]
        ours = sorted(v.shape for v in case.build().params.values())
        theirs = sorted(tuple(p.shape) for p in case.build_torch(torch.nn).parameters())
        assert ours == theirs, name


def test_the_bench_table_says_when_a_case_has_no_jax_twin(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setitem(bench.CASES, "transformer", dataclasses.replace(bench.CASES["transformer"], jax=False))
    monkeypatch.setattr(bench, "_peer_step", lambda peer: lambda case, n_steps, repeat, source=None: 1e-3)
    monkeypatch.setattr(bench, "nkernels_step", lambda case, n_steps, repeat, source=None: 1e-3)
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)
    assert main(["bench", "--models", "transformer", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "no JAX twin" in out and "1.00x" in out


def test_the_default_cases_are_the_ones_before_the_mnist1d_cases():
    assert bench.default_cases() == [name for name in bench.CASES if not name.startswith("mnist1d-")]
    assert {"mnist1d-mlp", "mnist1d-conv1d"} < set(bench.CASES)


def test_bench_data_gives_batches_of_the_training_split_in_the_case_shape(tmp_path):
    from idx_files import write_mnist_folder

    images, labels = write_mnist_folder(tmp_path, n_train=30)["train"]
    source = bench.BenchData("mnist", str(tmp_path))
    assert bench.cases_for(source) == ["lenet"]
    X, y = bench.data(bench.CASES["lenet"], 2, source=source)  # 256 samples of 30: each repeated
    assert X.shape == (256, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    label_of = {row.tobytes(): label for row, label in zip(images.reshape(30, -1).astype(np.float32) / 255, labels)}
    assert [label_of[row.tobytes()] for row in X.reshape(256, -1)] == y.tolist()
    assert len({row.tobytes() for row in X.reshape(256, -1)}) == 30
    again, _ = bench.data(bench.CASES["lenet"], 2, source=source)
    np.testing.assert_array_equal(again, X)  # the same seeded order for every side
    with pytest.raises(ValueError, match=r"model 'mlp' takes samples of shape \(64,\).* 784 values .*"
                                         r"Models for mnist: lenet"):
        bench.data(bench.CASES["mlp"], 1, source=source)


class _Signals:
    """A throw-away dataset of 40-value signals, the shape of MNIST-1D."""

    @nk.hookimpl
    def nkernels_register_datasets(self):
        def load_signals(flat=True, seed=0):
            X = np.random.default_rng(seed).standard_normal((50, 40)).astype(np.float32)
            y = np.arange(50) % 10
            return (X, y, X, y) if flat else (X.reshape(50, 1, 40), y, X.reshape(50, 1, 40), y)

        return {"signals": load_signals}


def test_speedups_and_the_bench_command_time_on_a_dataset(nk_register_plugin, capsys, monkeypatch):
    pytest.importorskip("torch")
    nk_register_plugin(_Signals())
    bench._training_split.cache_clear()
    source = bench.BenchData("signals")
    assert bench.cases_for(source) == ["mnist1d-mlp", "mnist1d-conv1d"]
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)  # a child would not see the test's plugin
    (row,) = bench.speedups(["mnist1d-mlp"], n_steps=2, repeat=1, source=source)
    assert row["data"] == "signals" and row["nkernels_us"] > 0 and row["torch_us"] > 0
    calls = []
    monkeypatch.setattr(bench, "_peer_step", lambda peer: lambda case, n_steps, repeat, source=None: 1e-3)
    monkeypatch.setattr(bench, "nkernels_step",
                        lambda case, n_steps, repeat, source=None: calls.append((case.name, source)) or 1e-3)
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["bench", "--data", "signals", "--repeat", "1"]) == 0
    assert calls == [("mnist1d-mlp", source), ("mnist1d-conv1d", source)]
    assert "signals batches" in capsys.readouterr().out


def test_the_child_process_times_on_the_dataset_it_is_given(monkeypatch):
    commands = []

    def run(command, **kwargs):
        commands.append(command[3:])
        return subprocess.CompletedProcess(command, 0, stdout='{"seconds": 0.001}\n', stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    bench._in_own_process("torch", "lenet", 2, 1, bench.BenchData("mnist", "/data/mnist"))
    bench._in_own_process("jax", "mnist1d-mlp", 2, 1, bench.BenchData("mnist1d"))
    assert commands == [["torch", "lenet", "2", "1", "mnist", "/data/mnist"], ["jax", "mnist1d-mlp", "2", "1", "mnist1d"]]
    monkeypatch.undo()
    sources = []
    monkeypatch.setattr(bench, "step_seconds", lambda *args: sources.append(args[4]) or 1e-3)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    bench._child(["nkernels", "lenet", "2", "1", "mnist", "/data/mnist"])
    bench._child(["nkernels", "mnist1d-mlp", "2", "1", "mnist1d"])
    bench._child(["nkernels", "mlp", "2", "1"])
    assert sources == [bench.BenchData("mnist", "/data/mnist"), bench.BenchData("mnist1d"), None]


@pytest.mark.parametrize("argv, message", [
    (["bench", "--data-path", "/data"], "--data-path DIR is the folder of --data's files; name the dataset too"),
    (["bench", "--data", "mnist"], r"load\('mnist'\) needs path=DIR \(on the command line --data-path DIR\)"),
    (["bench", "--data", "mnist", "--data-path", "{folder}", "--models", "mlp", "lenet"],
     "benchmark model.s. mlp cannot take mnist's samples .784 values each.; models for it: lenet"),
    (["bench", "--data", "digits", "--data-path", "{folder}"], "dataset 'digits' takes no option path"),
])
def test_the_bench_command_refuses_bad_data_options(tmp_path, capsys, monkeypatch, argv, message):
    from idx_files import write_mnist_folder

    write_mnist_folder(tmp_path)
    monkeypatch.setattr(bench, "speedups", lambda *a, **k: pytest.fail("measured despite bad options"))
    assert main([arg.format(folder=tmp_path) for arg in argv]) == 2
    assert re.search(message, " ".join(capsys.readouterr().err.split()))
