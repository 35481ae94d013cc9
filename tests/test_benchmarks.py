"""The asv suite works as asv runs it: discovery, one quick run of a benchmark of every file, honest
skip reasons, ratios that read lower-is-better, and allocation figures that see a bigger workspace.

No figure is asserted on: the runs only have to work (timing belongs to asv, not to the tests).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from plugin_dists import install_distribution

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

#: one quick benchmark of each file, as asv names it with its parameters; ratios first (a peer timed
#: after nkernels' thread pools start runs slower), the gate last (it puts the process on one thread)
QUICK_PICKS = {
    "bench_ratios": "bench_ratios.TimeRatioVsPyTorch.track_time_ratio('mlp')",
    "bench_layers": "bench_layers.LayerMemory.track_peak_bytes('relu', 'digits')",
    "bench_training": "bench_training.SchemeEpoch.time_epoch('backprop')",
    "bench_startup": "bench_startup.timeraw_import_nkernels",
    "bench_kmeans": "bench_kmeans.KMeansLloyd.time_lloyd_iteration('digits-k200')",
    "bench_extractor_pmi": "bench_extractor_pmi.PMIFit.time_cooccurrence",
    "bench_scheme_admm": "bench_scheme_admm.ADMMIteration.time_iteration",
    "bench_scheme_es": "bench_scheme_es.ESGeneration.time_population_evaluation(32)",
    "bench_scheme_ff": "bench_scheme_ff.FFEpoch.time_epoch('ff-hardest')",
    "bench_scheme_mac": "bench_scheme_mac.MACEpoch.time_epoch('mac')",
    "bench_schemes_greedy_feedback": "bench_schemes_greedy_feedback.GreedyFeedbackEpoch.time_epoch('dfa')",
    "bench_gpu": "bench_gpu.GPULayerForwardBackward.time_forward_backward('relu', 'digits')",
    "bench_gate": "bench_gate.GateEpoch.time_epoch('mlp')",
}

#: asv_runner's discovery and check (``asv check``), then each pick run as ``asv run --quick`` runs it:
#: setup, the benchmark once, teardown even after a skip; one JSON line per pick
DRIVER = textwrap.dedent("""
    import contextlib, io, itertools, json, sys
    from asv_runner.discovery import disc_benchmarks, get_benchmark_from_name
    from asv_runner._aux import update_sys_path

    root, picks = sys.argv[1], json.loads(sys.argv[2])
    update_sys_path(root)
    found = {}
    for benchmark in disc_benchmarks(root):
        if not benchmark.check(root):
            raise SystemExit(f"asv check failed for {benchmark.name}")
        combos = [f"({', '.join(c)})" for c in itertools.product(*benchmark.params)] if benchmark.params else [""]
        for index, combo in enumerate(combos):
            found[benchmark.name + combo] = (benchmark.name, index if benchmark.params else None)
    print(json.dumps({"discovered": sorted(found)}), flush=True)
    quick = {"number": 1, "repeat": 1, "warmup_time": 0, "rounds": 1}  # asv run --quick
    for pick in picks:
        name, index = found[pick]
        benchmark = get_benchmark_from_name(root, name if index is None else f"{name}-{index}", extra_params=quick)
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            skipped = benchmark.do_setup()
        try:
            result = None if skipped else benchmark.do_run()
        finally:
            benchmark.do_teardown()
        print(json.dumps({"pick": pick, "skipped": said.getvalue().strip() if skipped else None,
                          "result": result}), flush=True)
""")


def _run_suite(picks):
    """Discover the suite and run ``picks`` in one fresh interpreter, as asv's spawned runs do:
    the names discovered, and per pick its run."""
    pytest.importorskip("asv_runner", reason="asv is in the test extra: pip install -e '.[test]'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", DRIVER, str(BENCHMARKS), json.dumps(picks)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines[0]["discovered"], {line["pick"]: line for line in lines[1:]}


def test_every_benchmark_file_is_discovered_and_has_a_quick_pick():
    discovered, _ = _run_suite([])
    files = {p.stem for p in BENCHMARKS.glob("bench_*.py")}
    assert files == set(QUICK_PICKS), "give each benchmark file one quick pick here"
    for stem in files:
        assert any(name.startswith(f"{stem}.") for name in discovered), f"asv finds no benchmark in {stem}.py"
    assert set(QUICK_PICKS.values()) <= set(discovered)


@pytest.mark.slow  # about 1.5 minutes: every pick compiles its kernels and the ratios time the peers
def test_one_benchmark_of_every_file_runs():
    _, runs = _run_suite(list(QUICK_PICKS.values()))
    assert set(runs) == set(QUICK_PICKS.values())
    for pick, run in runs.items():
        if pick.startswith("bench_gpu.") and run["skipped"]:  # the CUDA simulator (tests/conftest.py)
            assert "no CUDA GPU" in run["skipped"], run
            continue
        assert run["skipped"] is None, f"{pick} was skipped: {run['skipped']}"
        result = run["result"]
        assert result is not None and (not isinstance(result, dict) or result["samples"]), (pick, result)
    assert runs[QUICK_PICKS["bench_layers"]]["result"] > 0  # relu's output and its gradient


def test_the_ratio_is_nkernels_time_over_the_peer_time(monkeypatch):
    from benchmarks import bench_ratios, common

    rows = [{"case": "mlp", "nkernels_us": 100.0, "torch_us": 400.0}]
    monkeypatch.setattr(common.bench(), "speedups", lambda *args, **kwargs: rows)
    ratio = bench_ratios.TimeRatioVsPyTorch()
    assert ratio.track_time_ratio("mlp") == 0.25  # four times faster: a small figure, lower is better
    assert "nkernels time / PyTorch time" in ratio.track_time_ratio.unit
    assert "lower is better" in ratio.track_time_ratio.unit


def test_the_gpu_ratio_is_nkernels_time_over_the_peer_time():
    from benchmarks import bench_gpu

    unit = bench_gpu.GPUTrainingStep.track_time_ratio_vs_torch_cuda.unit
    assert unit.startswith("nkernels CUDA time / PyTorch CUDA time") and "lower is better" in unit


def test_allocations_see_a_doubled_workspace_that_numba_allocates():
    from numba import njit

    from benchmarks.common import allocations

    @njit(cache=False)
    def work(n):
        scratch = np.empty(n)  # allocated by Numba's runtime, not by NumPy's Python API
        scratch[:] = 1.0
        return scratch.sum()

    n = 1_000_000
    work(10)  # compile outside the measurement
    single, single_count = allocations(lambda: work(n))
    double, double_count = allocations(lambda: work(2 * n))
    assert single >= 8 * n and double >= 16 * n  # float64 workspaces
    assert double - single >= 8 * n * 0.99
    assert single_count == double_count >= 1


def test_the_layer_memory_figure_is_the_pass_not_the_interpreter():
    from benchmarks.bench_layers import LayerMemory

    bench = LayerMemory()
    bench.setup("relu", "digits")
    try:
        peak = bench.track_peak_bytes("relu", "digits")
    finally:
        bench.teardown("relu", "digits")
    x = 64 * 128 * 4
    assert 2 * x <= peak < 20 * x  # output and input gradient (and a mask), not 100+ MB of interpreter


def test_a_plugin_that_failed_to_load_is_skipped_with_its_error(tmp_path, monkeypatch, fresh_plugins):
    from benchmarks import bench_scheme_admm

    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "admm")  # the working plugin; the broken copy loads
    install_distribution(tmp_path, monkeypatch, "nkernels-admm", "nk_admm_broken",
                         "raise ImportError('needs libadmm 2.0')\n", entry_point="admm-copy")
    with pytest.warns(Warning, match="needs libadmm"):
        fresh_plugins.ensure_loaded()
    benchmark = bench_scheme_admm.ADMMIteration()
    with pytest.raises(NotImplementedError, match=r"installed but failed to load.*needs libadmm 2\.0"):
        benchmark.setup()
    benchmark.teardown()  # asv tears down after a skipped setup too: nothing to close, no error


def test_a_plugin_that_is_not_installed_is_skipped_as_such(monkeypatch, fresh_plugins):
    from benchmarks import bench_kmeans

    monkeypatch.setenv("NKERNELS_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.raises(NotImplementedError, match="NKERNELS_DISABLE_PLUGIN_AUTOLOAD"):
        bench_kmeans.KMeansLloyd().setup("digits-k200")
    monkeypatch.delenv("NKERNELS_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **kwargs: [])  # nothing installed
    fresh_plugins.reset()
    with pytest.raises(NotImplementedError, match="nkernels-kmeans, which is not installed"):
        bench_kmeans.KMeansLloyd().setup("digits-k200")


def test_a_missing_or_broken_peer_is_skipped_saying_which(tmp_path, monkeypatch):
    from benchmarks.common import require_peer

    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(NotImplementedError, match=r"JAX is not installed: pip install 'jax\[cpu\]'"):
        require_peer("jax")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise OSError('libtorch_cpu.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    with pytest.raises(NotImplementedError, match="PyTorch is installed but failed to import.*libtorch_cpu"):
        require_peer("torch")


def test_each_commit_built_by_asv_gets_its_own_caches(tmp_path):
    env = dict(os.environ, ASV_ENV_TYPE="virtualenv", ASV_COMMIT="abc123", ASV_ENV_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NKERNELS_CACHE_DIR", None)
    code = "import os, benchmarks; print(os.environ['NUMBA_CACHE_DIR']); print(os.environ['NKERNELS_CACHE_DIR'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=True).stdout.split()
    assert out == [str(tmp_path / "caches" / "abc123" / "numba"), str(tmp_path / "caches" / "abc123" / "nkernels")]


def test_the_asv_configuration_builds_each_commit_with_its_plugins_and_peers():
    config = json.loads((ROOT / "asv.conf.json").read_text())
    assert config["environment_type"] == "virtualenv" and config["benchmark_dir"] == "benchmarks"
    assert "regressions_first_commits" not in config  # every figure is lower-is-better now
    helper = "{conf_dir}/benchmarks/scripts/asv_env.py"
    assert config["build_command"] == [f"python {helper} build {{build_dir}} {{build_cache_dir}}"]
    assert config["install_command"] == [
        f"in-dir={{env_dir}} python {helper} install {{wheel_file}} {{build_cache_dir}}"]
    assert config["uninstall_command"] == [f"in-dir={{env_dir}} python {helper} uninstall"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'bench = ["asv>=0.6.4", "torch==2.13.0"' in pyproject  # the peers the install step brings
