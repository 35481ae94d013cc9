"""``nkernels compare`` and ``nk.compare``: one process per scheme, error rows, plugin schemes, JSON and plot.

One comparison runs once for the module (``ran``) on 200 digits with backprop and the schemes and
extractor of a throw-away plugin installed as a real distribution, so that the rows' own
processes find it through its entry point like any installed plugin.
"""
import contextlib
import io
import json

import pytest

import nkernels as nk
from nkernels.cli.commands import main
from plugin_dists import install_distribution

PLUGIN = '''
import os
import time

import numpy as np

import nkernels as nk
from nkernels.schemes import Capabilities, Scheme


class Linear(Scheme):
    """Trains a linear model of its own (adapt_model) by least squares on one-hot targets."""

    name = "t22-linear"
    capabilities = Capabilities(labels="required", yields=("classifier",), learning_rate=False, batches=False)

    def adapt_model(self, model, n_features, n_classes):
        return nk.Sequential([nk.layers.Dense(n_features, n_classes)], seed=0)

    def train_epoch(self, run, epoch):
        if len(run.model) != 1:
            raise AssertionError("compare did not train the model adapt_model returned")
        X = np.hstack([run.X, np.ones((len(run.X), 1), run.X.dtype)])
        W = np.linalg.lstsq(X, np.eye(10)[run.y], rcond=None)[0].astype(run.X.dtype)
        run.model.set_params({"0.weight": np.ascontiguousarray(W[:-1].T), "0.bias": np.ascontiguousarray(W[-1])})
        return {"loss": 0.0}


class Features(Scheme):
    """Yields an extractor only: its encoder is the untrained first block."""

    name = "t22-features"
    capabilities = Capabilities(labels="none", yields=("extractor",), learning_rate=False, batches=False)

    def train_epoch(self, run, epoch):
        return {"loss": 0.0}

    def encoder(self, model):
        return model[:2]


class Boom(Linear):
    name = "t22-boom"

    def train_epoch(self, run, epoch):
        raise RuntimeError("boom in epoch " + str(epoch))


class Crash(Linear):
    name = "t22-crash"

    def setup(self, run):
        os._exit(3)  # the interpreter dies without a word


class Sleepy(Linear):
    name = "t22-sleepy"

    def setup(self, run):
        time.sleep(600)


class Generator(Scheme):
    name = "t22-generator"
    capabilities = Capabilities(labels="none", yields=("generator",))


class Pixels:
    """The pixels themselves as features."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X).reshape(len(X), -1)


@nk.hookimpl
def nkernels_register_schemes():
    return {s.name: s for s in (Linear, Features, Boom, Crash, Sleepy, Generator)}


@nk.hookimpl
def nkernels_register_extractors():
    return {"t22-pixels": Pixels}
'''
SCHEMES = ["backprop", "t22-linear", "t22-features", "t22-boom", "t22-crash"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The throw-away plugin, installed for the module; plugins are discovered afresh before and after."""
    from nkernels.plugins import manager as plugins

    with pytest.MonkeyPatch.context() as monkeypatch:
        for var in ("NKERNELS_STRICT_PLUGINS", "NKERNELS_DISABLE_PLUGIN_AUTOLOAD", "NKERNELS_DISABLE_PLUGINS"):
            monkeypatch.delenv(var, raising=False)
        install_distribution(tmp_path_factory.mktemp("dist"), monkeypatch, "nk-t22-schemes", "nk_t22_schemes",
                             PLUGIN)
        plugins.reset()
        yield
    plugins.reset()


@pytest.fixture(scope="module")
def ran(plugin, tmp_path_factory):
    """``nkernels compare`` on 200 digits, 2 epochs: its exit code, printed table, JSON and plot paths."""
    pytest.importorskip("matplotlib")
    folder = tmp_path_factory.mktemp("compare")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(out):
        monkeypatch.setenv("COLUMNS", "250")  # the table on one line per row
        code = main(["compare", "--data", "digits", "--schemes", ",".join(SCHEMES), "--extractors", "t22-pixels",
                     "--epochs", "2", "--max-samples", "200", "--quiet", "--json", str(folder / "table.json"),
                     "--plot", str(folder / "curves.png"), "--option", "backprop.lr=0.01"])
    return code, out.getvalue(), json.loads((folder / "table.json").read_text()), folder / "curves.png"


def test_the_table_has_a_row_per_scheme_and_extractor_and_its_columns(ran):
    code, printed, _, _ = ran
    assert code == 0
    for column in ("scheme", "test acc", "best", "epochs", "warm-up s", "train s", "to 93% s", "peak MiB", "error"):
        assert column in printed
    for name in ["backprop", "t22-linear", "t22-features + head", "t22-boom", "t22-crash", "t22-pixels + head"]:
        assert name in printed


def test_the_json_holds_every_row_with_its_figures(ran):
    _, _, table, _ = ran
    assert (table["data"], table["model"], table["target"], table["seed"]) == ("digits", "mlp", 0.93, 0)
    assert (table["train_samples"], table["test_samples"]) == (200, 200)
    rows = {row["name"]: row for row in table["rows"]}
    assert list(rows) == ["backprop", "t22-linear", "t22-features + head", "t22-boom", "t22-crash",
                          "t22-pixels + head"]
    assert [rows[n]["kind"] for n in rows] == ["scheme", "scheme", "scheme + head", "scheme", "scheme",
                                               "extractor + head"]
    for name in ("backprop", "t22-linear"):
        row = rows[name]
        assert row["status"] == "ok" and row["error"] is None and row["epochs"] == 2
        assert len(row["curve"]) == 2 and row["accuracy"] == row["curve"][-1][1]
        assert row["best_accuracy"] == max(a for _, a in row["curve"])
        assert row["curve"][0][0] <= row["curve"][1][0] <= row["train_s"]
        assert row["warmup_s"] > 0 and row["peak_memory_mib"] > 0
        reached = [t for t, a in row["curve"] if a >= 0.93]
        assert row["time_to_target_s"] == (reached[0] if reached else None)
    # least squares on pixels separates 200 digits far better than chance: the plugin's own model was trained
    assert rows["t22-linear"]["accuracy"] > 0.5
    for name in ("t22-features + head", "t22-pixels + head"):  # scored once, by the head
        row = rows[name]
        assert row["status"] == "ok" and len(row["curve"]) == 1 and row["accuracy"] > 0.5
    assert rows["t22-features + head"]["epochs"] == 2 and rows["t22-pixels + head"]["epochs"] is None


def test_a_scheme_that_raises_or_dies_is_an_error_row(ran):
    _, printed, table, _ = ran
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["t22-boom"]["status"] == "error"
    assert rows["t22-boom"]["error"] == "RuntimeError: boom in epoch 0"
    assert rows["t22-crash"]["status"] == "error"
    assert "exit code 3" in rows["t22-crash"]["error"]
    assert rows["t22-boom"]["accuracy"] is None
    assert 'raise RuntimeError("boom in epoch "' in rows["t22-boom"]["traceback"]
    assert "boom in epoch 0" in printed


def test_the_plot_is_a_png(ran):
    _, _, _, png = ran
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_scheme_past_its_timeout_is_killed_and_is_a_timeout_row(plugin):
    result = nk.compare("mlp", "digits", ["t22-sleepy"], epochs=1, max_samples=50, timeout=0.5)
    assert [(row.name, row.status) for row in result.rows] == [("t22-sleepy", "timeout")]
    assert "0.5 s" in result.rows[0].error


def test_by_default_the_plugin_schemes_that_yield_a_classifier_or_an_extractor_take_part(plugin):
    rows = nk.leaderboard.plan()
    assert ("backprop", "scheme") in rows and ("t22-linear", "scheme") in rows
    assert ("t22-features", "scheme + head") in rows
    assert "t22-generator" not in [name for name, _ in rows]
    assert not [kind for _, kind in rows if kind == "extractor + head"]  # extractors only on request
    assert ("t22-pixels", "extractor + head") in nk.leaderboard.plan(["backprop"], "all")


def test_unknown_scheme_names_are_refused_with_the_known_ones(plugin, capsys):
    with pytest.raises(ValueError, match=r"unknown scheme\(s\) \['nope'\]; the installed schemes are .*backprop"):
        nk.compare("mlp", "digits", ["backprop", "nope"])
    assert main(["compare", "--schemes", "backprop,nope"]) == 2
    assert "unknown scheme(s) ['nope']" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"unknown extractor\(s\) \['nope'\]"):
        nk.leaderboard.plan(["backprop"], ["nope"])
    with pytest.raises(ValueError, match="yields generator: neither a classifier nor an extractor"):
        nk.leaderboard.plan(["t22-generator"])


def test_options_for_a_row_not_compared_and_malformed_options_are_refused(plugin, capsys):
    with pytest.raises(ValueError, match=r"options for \['es'\], which are not in this comparison"):
        nk.compare("mlp", "digits", ["backprop"], options={"es": {"sigma": 0.1}})
    with pytest.raises(ValueError, match=r"options \['epochs'\] for 'backprop': the comparison sets them itself"):
        nk.compare("mlp", "digits", ["backprop"], options={"backprop": {"epochs": 3, "lr": 0.1}})
    assert main(["compare", "--schemes", "backprop", "--option", "lr=0.1"]) == 2
    assert "--option takes NAME.KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model preset 'mlpp'"):
        nk.compare("mlpp", "digits", ["backprop"])


def test_the_row_options_are_parsed_per_name():
    from nkernels.cli.compare import parse_row_options

    assert parse_row_options(["es.sigma=0.05", "conv-kmeans.n_clusters=200", "es.optimizer=sgd"]) == \
        {"es": {"sigma": 0.05, "optimizer": "sgd"}, "conv-kmeans": {"n_clusters": 200}}


def test_a_scheme_keeps_the_common_model_and_has_no_encoder_by_default():
    from nkernels.schemes import Capabilities, Scheme

    model = nk.Sequential([nk.layers.Dense(4, 3)], seed=0)
    assert nk.schemes.Backprop().adapt_model(model, 4, 3) is model

    class Classifier(Scheme):
        name = "classifier"

    class Features(Scheme):
        name = "features"
        capabilities = Capabilities(yields=("extractor",))

    with pytest.raises(TypeError, match="scheme 'classifier' does not yield an extractor"):
        Classifier().encoder(model)
    with pytest.raises(NotImplementedError, match="'features' declares that it yields an extractor"):
        Features().encoder(model)
