"""The guides in docs/ are run: their code is the documentation of the plugin API, so it cannot rot."""
import importlib
import json
import re
import sys
from pathlib import Path


import nkernels as nk
from nkernels.testing import registered_plugin

DOCS = Path(__file__).resolve().parent.parent / "docs"


def blocks(page: str, language: str = "python") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.S)


def run_suite(suite_class, tmp_path):
    """Every test method of a conformance class, as pytest would call them."""
    suite = suite_class()
    for name in dir(suite):
        if name.startswith("test_"):
            method = getattr(suite, name)
            needs_tmp = "tmp_path" in method.__code__.co_varnames[:method.__code__.co_argcount]
            (tmp_path / name).mkdir()
            method(tmp_path / name) if needs_tmp else method()


def test_write_a_layer_guide(tmp_path, monkeypatch):
    kernels, layer, conformance = blocks("write-a-layer.md")
    (tmp_path / "nk_feature_affine.py").write_text(kernels + layer)  # a real module: the compiled step imports it
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nk_feature_affine", raising=False)
    module = importlib.import_module("nk_feature_affine")
    with registered_plugin(module, name="feature-affine", distribution="nk-feature-affine"):
        assert nk.registry.layers["feature_affine"] is module.FeatureAffine
        namespace = dict(module.__dict__)
        exec(compile(conformance, "write-a-layer conformance", "exec"), namespace)
        run_suite(namespace["TestFeatureAffine"], tmp_path)
        X, y, _, _ = nk.datasets.load("digits")
        model = nk.Sequential([module.FeatureAffine(64), nk.layers.Dense(64, 10)], seed=0)
        assert nk.trainers.make_trainer(model, nk.losses.SoftmaxCrossEntropy(), nk.optimizers.Adam(), (64,),
                                        32).__class__.__name__ == "CompiledTrainer"
        history = nk.train(model, X[:256], y[:256], epochs=3, seed=0)
        assert history["loss"][-1] < history["loss"][0]


def test_the_json_model_spec_of_the_guide_builds_and_trains(tmp_path):
    (spec,) = blocks("write-a-layer.md", "json")
    path = tmp_path / "model.json"
    path.write_text(spec)
    model = nk.Sequential.from_config(json.loads(spec))
    assert [type(layer).__name__ for layer in model] == ["Dense", "ReLU", "Dropout", "Dense"]
    assert model.get_config() == json.loads(spec)
    from nkernels.cli import main

    assert main(["train", "--model", str(path), "--epochs", "1", "--quiet"]) == 0


def test_write_a_scheme_guide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scheme, usage, conformance = blocks("write-a-scheme.md")
    namespace: dict = {}
    exec(compile(scheme, "write-a-scheme scheme", "exec"), namespace)
    with registered_plugin(_plugin(namespace), name="spsa"):
        assert nk.registry.schemes["spsa"] is namespace["SPSA"]
        exec(compile(usage, "write-a-scheme usage", "exec"), namespace)
        history = namespace["history"]
        assert 1 <= len(history["loss"]) <= 6 and "val_accuracy" in history
        assert history["lr"][-1] < history["lr"][0]  # the cosine schedule reached a scheme that never mentions it
        assert (tmp_path / "spsa-run" / "checkpoint.safetensors").exists()
        assert history["val_accuracy"][-1] > 0.2  # far above chance (0.1) after a few epochs of two-point estimates
        exec(compile(conformance, "write-a-scheme conformance", "exec"), namespace)
        run_suite(namespace["TestSPSA"], tmp_path)


def _plugin(namespace):
    class Plugin:
        nkernels_register_schemes = staticmethod(namespace["nkernels_register_schemes"])

    return Plugin()
