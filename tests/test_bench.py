"""The benchmark code runs (its figures are measured elsewhere: benchmarks never assert on time)."""
import dataclasses
import importlib
import io
import json
import sys
from pathlib import Path

import pytest

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
    assert calls == [(fw, case, 2, 1) for case in ("mlp", "cnn") for fw in ("torch", "jax", "nkernels")]
    monkeypatch.undo()
    assert bench._in_own_process("nkernels", "mlp", 2, 1) > 0
    # the child's report of a missing peer, run in this process (a monkeypatch does not reach a child)
    monkeypatch.setattr(bench, "_peer_step", lambda peer: (_ for _ in ()).throw(ImportError("no such peer")))
    child = io.StringIO()
    monkeypatch.setattr(sys, "stdout", child)
    bench._child(["jax", "mlp", "2", "1"])
    assert json.loads(child.getvalue()) == {"missing": "no such peer"}


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
    assert main(["bench", "--models", "mlp", "--repeat", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["case"] == "mlp" and row["nkernels_us"] > 0
    for peer in ("torch", "jax"):
        if row[f"{peer}_us"] is not None:
            assert row[f"{peer}_ratio"] == pytest.approx(row["nkernels_us"] / row[f"{peer}_us"])
            assert row[f"{peer}_speedup"] == pytest.approx(1 / row[f"{peer}_ratio"])


def test_a_missing_peer_gives_no_ratio_and_an_unknown_peer_an_error(monkeypatch):
    def not_installed(case, n_steps, repeat):
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
    monkeypatch.setattr(bench, "_peer_step", lambda peer: lambda case, n_steps, repeat: 1e-3)
    monkeypatch.setattr(bench, "nkernels_step", lambda case, n_steps, repeat: 1e-3)
    monkeypatch.setattr(bench, "_in_own_process", bench.step_seconds)
    assert main(["bench", "--models", "transformer", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "no JAX twin" in out and "1.00x" in out
