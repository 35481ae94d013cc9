"""The README's Quick start, tour and plugin example are run, so they cannot rot."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import registered_plugin

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(ROOT / ".ci"))
from readme_commands import quick_start_commands  # noqa: E402

sys.path.pop(0)


def python_blocks(section_title: str) -> list[str]:
    section = README.split(f"\n## {section_title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    install_and_train, install_and_test = quick_start_commands(README)
    assert "pip install" in install_and_train and install_and_train.endswith("nkernels train")
    assert "./plugins/*/" in install_and_train
    assert '".[test]"' in install_and_test and install_and_test.endswith("python -m pytest -n auto")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py 1" in ci
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_commands.py"), "1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == install_and_test


def test_tour_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tour, options = python_blocks("A short tour")
    namespace: dict = {}
    exec(compile(tour, "README tour", "exec"), namespace)
    assert namespace["history"]["val_accuracy"][-1] > 0.9
    assert namespace["features"].shape == (540, 128)
    assert (tmp_path / "digits.safetensors").exists()
    exec(compile(options, "README training options", "exec"), namespace)
    assert namespace["history"]["val_accuracy"][-1] > 0.9
    assert (tmp_path / "log.csv").exists() and (tmp_path / "run1" / "checkpoint.safetensors").exists()


def test_write_a_plugin_example_registers_and_works(tmp_path, monkeypatch):
    plugin_source, check_source, conformance_source = python_blocks("Write a plugin")
    (tmp_path / "nk_softplus.py").write_text(plugin_source)  # a real file, as the README says, so cache=True works
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nk_softplus", raising=False)
    module = importlib.import_module("nk_softplus")
    assert 25 <= len(plugin_source.strip().splitlines()) <= 45
    with registered_plugin(module, name="softplus", distribution="nk-softplus"):
        Softplus = nk.registry.layers["softplus"]
        assert Softplus is module.Softplus
        exec(compile(check_source, "README gradient check", "exec"), dict(module.__dict__))
        namespace = dict(module.__dict__)
        exec(compile(conformance_source, "README conformance suite", "exec"), namespace)
        suite = namespace["TestSoftplus"]()
        for name in dir(suite):
            if name.startswith("test_"):
                getattr(suite, name)()
        torch = pytest.importorskip("torch")
        x = np.random.default_rng(0).standard_normal((3, 5))
        np.testing.assert_allclose(Softplus()(x), torch.nn.functional.softplus(torch.from_numpy(x)).numpy(),
                                   rtol=1e-12)
        model = nk.Sequential([nk.layers.Dense(4, 8), Softplus(), nk.layers.Dense(8, 2)], seed=0)
        rebuilt = nk.Sequential.from_config(model.get_config())
        assert isinstance(rebuilt[1], Softplus)
        X = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)
        history = nk.train(model, X, (X[:, 0] > 0).astype(int), epochs=5, batch_size=16, lr=0.01, seed=0)
        assert history["loss"][-1] < history["loss"][0]
