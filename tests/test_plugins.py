"""Plugin discovery, failures, switches, conflicts and the registries."""
import json
import warnings

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import PluginConflictError, PluginLoadError, PluginLoadWarning
from nkernels.plugins.kernels import KernelRecord
from nkernels.testing import registered_plugin

from plugin_dists import install_distribution

SQUARE_PLUGIN = """
import nkernels as nk

class Square(nk.layers.Layer):
    def forward(self, x, training=False):
        x = self.prepare_input(x)
        if training:
            self.save_for_backward(x=x)
        return x * x

    def backward(self, dy):
        return 2 * self.saved_for_backward()["x"] * dy

@nk.hookimpl
def nkernels_register_layers():
    return {"square": Square}
"""


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-square", "nk_square", SQUARE_PLUGIN, entry_point="square")
    layer_cls = nk.registry.layers["square"]
    assert layer_cls.__name__ == "Square"
    entry = nk.registry.layers.provider("square")
    assert (entry.plugin, entry.distribution, entry.version) == ("square", "nk-square", "1.0")
    assert nk.registry.layers.provider("dense").distribution == "nkernels"
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["square"]
    assert info.status == "active" and info.registered == {"layers": ["square"]}
    # a plugin layer round-trips through a config by its registry name
    model = nk.Sequential([nk.layers.Dense(3, 2), layer_cls()], seed=0)
    rebuilt = nk.Sequential.from_config(json.loads(json.dumps(model.get_config())))
    assert type(rebuilt[1]) is layer_cls


def test_plugins_load_lazily(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-lazy", "nk_lazy", SQUARE_PLUGIN)
    import sys

    assert "nk_lazy" not in sys.modules
    nk.Sequential([nk.layers.Dense(2, 2)])  # building a model needs no plugins
    assert "nk_lazy" not in sys.modules
    assert "square" in nk.registry.layers
    assert "nk_lazy" in sys.modules


def test_broken_plugin_warns_and_the_rest_loads(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path / "a", monkeypatch, "nk-broken", "nk_broken",
                         "raise ImportError('needs libfoo 2.0')\n")
    install_distribution(tmp_path / "b", monkeypatch, "nk-square", "nk_square", SQUARE_PLUGIN)
    with pytest.warns(PluginLoadWarning, match=r"nk-broken.*ImportError: needs libfoo 2.0"):
        assert "square" in nk.registry.layers
    assert "dense" in nk.registry.layers
    status = {i.name: (i.status, i.error) for i in fresh_plugins.plugin_infos()}
    assert status["nk-broken"] == ("failed", "ImportError: needs libfoo 2.0")
    assert status["nk-square"] == ("active", None)


def test_plugin_whose_hook_raises_is_reported(tmp_path, monkeypatch, fresh_plugins):
    source = SQUARE_PLUGIN + """
@nk.hookimpl
def nkernels_register_schemes():
    raise RuntimeError("scheme table is broken")
"""
    install_distribution(tmp_path, monkeypatch, "nk-halfbroken", "nk_halfbroken", source)
    with pytest.warns(PluginLoadWarning, match="scheme table is broken"):
        layers = dict(nk.registry.layers)
    assert "square" not in layers  # a failed plugin contributes nothing
    assert "backprop" in nk.registry.schemes


def test_plugin_returning_a_non_layer_is_reported(tmp_path, monkeypatch, fresh_plugins):
    source = "import nkernels as nk\n\n@nk.hookimpl\ndef nkernels_register_layers():\n    return {'bad': int}\n"
    install_distribution(tmp_path, monkeypatch, "nk-notlayer", "nk_notlayer", source)
    with pytest.warns(PluginLoadWarning, match="subclass of nkernels.layers.Layer"):
        assert "bad" not in nk.registry.layers


def test_strict_plugins_turn_the_warning_into_an_error(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-broken", "nk_broken", "raise ImportError('boom')\n")
    monkeypatch.setenv("NKERNELS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="nk-broken.*boom"):
        nk.registry.layers["dense"]


def test_disable_autoload_loads_builtins_only(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-square", "nk_square", SQUARE_PLUGIN)
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "square" not in nk.registry.layers
    assert "dense" in nk.registry.layers
    assert all(info.builtin for info in fresh_plugins.plugin_infos())


@pytest.mark.parametrize("disable", ["square", "nk-square", "other,square"])
def test_disable_named_plugins(tmp_path, monkeypatch, fresh_plugins, disable):
    install_distribution(tmp_path, monkeypatch, "nk-square", "nk_square", SQUARE_PLUGIN, entry_point="square")
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", disable)
    assert "square" not in nk.registry.layers
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["square"]
    assert info.status == "disabled"


def test_two_plugins_with_one_name_conflict(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path / "a", monkeypatch, "nk-square-a", "nk_square_a", SQUARE_PLUGIN)
    install_distribution(tmp_path / "b", monkeypatch, "nk-square-b", "nk_square_b", SQUARE_PLUGIN)
    with pytest.raises(PluginConflictError) as info:
        nk.registry.layers["square"]
    message = str(info.value)
    assert "nk-square-a" in message and "nk-square-b" in message
    assert "NKERNELS_DISABLE_PLUGINS=" in message and "pip uninstall" in message
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "nk-square-b")
    fresh_plugins.reset()
    assert nk.registry.layers.provider("square").distribution == "nk-square-a"


SQUARE_AND_CUBE_PLUGIN = SQUARE_PLUGIN.replace('return {"square": Square}',
                                               'return {"square": Square, "{other}": Cube}') + """

class Cube(Square):
    pass
"""


def test_a_conflict_makes_only_the_contested_name_unusable(tmp_path, monkeypatch, fresh_plugins, digits):
    install_distribution(tmp_path / "a", monkeypatch, "nk-square-a", "nk_square_a",
                         SQUARE_AND_CUBE_PLUGIN.replace("{other}", "cube_a"))
    install_distribution(tmp_path / "b", monkeypatch, "nk-square-b", "nk_square_b",
                         SQUARE_AND_CUBE_PLUGIN.replace("{other}", "cube_b"))
    # the built-ins, and each plugin's uncontested names, all work
    assert nk.registry.layers["dense"] is nk.layers.Dense
    assert nk.registry.schemes["backprop"] is nk.schemes.Backprop
    assert nk.registry.layers.provider("cube_a").distribution == "nk-square-a"
    assert nk.registry.layers.provider("cube_b").distribution == "nk-square-b"
    assert "square" not in nk.registry.layers and "square" not in set(nk.registry.layers)
    model = nk.Sequential([nk.layers.Dense(64, 10)], seed=0)
    nk.train(model, digits[0][:64], digits[1][:64], epochs=1, batch_size=32)
    nk.save(model, tmp_path / "m.safetensors")
    np.testing.assert_array_equal(nk.load(tmp_path / "m.safetensors").params["0.weight"], model.params["0.weight"])
    # only the contested name raises, naming both distributions
    for lookup in (lambda: nk.registry.layers["square"], lambda: nk.registry.layers.provider("square"),
                   lambda: nk.Sequential.from_config({"layers": [{"type": "square", "config": {}}]})):
        with pytest.raises(PluginConflictError, match="layer 'square' is registered by 2 plugins") as info:
            lookup()
        assert "distribution nk-square-a" in str(info.value) and "distribution nk-square-b" in str(info.value)
    square_a = nk.registry.layers["cube_a"].__mro__[1]
    with pytest.raises(PluginConflictError, match="'square'"):  # saving a contested layer cannot name it
        nk.Sequential([square_a()]).get_config()
    infos = {i.name: i for i in fresh_plugins.plugin_infos()}
    assert infos["nk-square-a"].conflicts == ["layers square (also registered by nk-square-b)"]
    assert infos["nk-square-a"].registered == {"layers": ["cube_a"]}


def test_a_plugin_is_refused_a_builtin_name_and_keeps_its_others(tmp_path, monkeypatch, fresh_plugins):
    source = SQUARE_PLUGIN.replace('return {"square": Square}', 'return {"dense": Square, "square": Square}')
    install_distribution(tmp_path, monkeypatch, "nk-greedy-names", "nk_greedy_names", source, entry_point="grabby")
    with pytest.warns(PluginLoadWarning, match=r"'grabby' \(distribution nk-greedy-names 1.0\) registers the "
                                               r"layer 'dense', a name reserved"):
        assert nk.registry.layers["dense"] is nk.layers.Dense
    assert nk.registry.layers.provider("square").plugin == "grabby"
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["grabby"]
    assert info.status == "active" and info.refused == ["layers dense"] and info.registered == {"layers": ["square"]}


def test_a_runtime_plugin_cannot_replace_a_builtin_either(fresh_plugins):
    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"dense": nk.layers.ReLU}

    with pytest.warns(PluginLoadWarning, match="'dense'"):
        with registered_plugin(Plugin()):
            assert nk.registry.layers["dense"] is nk.layers.Dense
    assert nk.registry.layers["dense"] is nk.layers.Dense


def test_two_distributions_with_one_entry_point_name_both_load(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path / "a", monkeypatch, "nk-one", "nk_one",
                         SQUARE_PLUGIN.replace('"square"', '"one"'), entry_point="shared")
    install_distribution(tmp_path / "b", monkeypatch, "nk-two", "nk_two",
                         SQUARE_PLUGIN.replace('"square"', '"two"'), entry_point="shared")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nk.registry.layers.provider("one").distribution == "nk-one"
        assert nk.registry.layers.provider("two").distribution == "nk-two"
    shared = [(i.distribution, i.status) for i in fresh_plugins.plugin_infos() if i.name == "shared"]
    assert sorted(shared) == [("nk-one", "active"), ("nk-two", "active")]


@pytest.mark.parametrize("stale", ["namespace folder", "empty module"])
def test_a_plugin_that_registers_nothing_is_reported(tmp_path, monkeypatch, fresh_plugins, stale):
    install_distribution(tmp_path, monkeypatch, "nk-stale", "nk_stale", "# no hooks here\n", entry_point="stale")
    if stale == "namespace folder":  # what pip uninstall leaves behind: a folder holding only caches
        (tmp_path / "nk_stale.py").unlink()
        (tmp_path / "nk_stale" / "__pycache__").mkdir(parents=True)
        (tmp_path / "nk_stale" / "__pycache__" / "core.cpython-312.nbi").write_bytes(b"")
    with pytest.warns(PluginLoadWarning, match=r"'stale' \(distribution nk-stale 1.0\).*implements no nkernels "
                                               r"hook, so it registers nothing"):
        assert "dense" in nk.registry.layers
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["stale"]
    assert info.status == "failed" and "stale folder" in info.error


def test_a_plugin_with_only_observer_hooks_is_not_reported(tmp_path, monkeypatch, fresh_plugins):
    source = "import nkernels as nk\n\n@nk.hookimpl\ndef nkernels_on_epoch_end(epoch):\n    pass\n"
    install_distribution(tmp_path, monkeypatch, "nk-logger", "nk_logger", source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "dense" in nk.registry.layers
    assert {i.name: i for i in fresh_plugins.plugin_infos()}["nk-logger"].status == "active"


def test_registries_are_read_only_mappings(fresh_plugins):
    assert nk.registry.layers["dense"] is nk.layers.Dense
    assert nk.registry.schemes["backprop"] is nk.schemes.Backprop
    with pytest.raises(TypeError):
        nk.registry.layers["dense"] = nk.layers.ReLU
    with pytest.raises(KeyError, match="unknown layer 'nope'; available: .*dense"):
        nk.registry.layers["nope"]
    with pytest.raises(ValueError):  # unknown names are ValueErrors too
        nk.registry.schemes["nope"]


def test_registered_plugin_context_manager_cleans_up(fresh_plugins):
    class Plugin:
        @nk.hookimpl
        def nkernels_register_extractors(self):
            return {"identity": IdentityExtractor}

    class IdentityExtractor:
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return X

    with registered_plugin(Plugin(), name="throwaway"):
        assert nk.registry.extractors["identity"] is IdentityExtractor
        assert nk.registry.extractors.provider("identity").plugin == "throwaway"
    assert "identity" not in nk.registry.extractors
    assert "throwaway" not in {i.name for i in fresh_plugins.plugin_infos()}


class _DatasetPlugin:
    @nk.hookimpl
    def nkernels_register_datasets(self):
        def load_xor(flat=True, seed=0):
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 8, dtype=np.float32)
            y = np.array([0, 1, 1, 0] * 8)
            return X, y, X, y

        return {"xor": load_xor}


def test_fixture_registers_a_throwaway_plugin(nk_register_plugin, fresh_plugins):
    name = nk_register_plugin(_DatasetPlugin())
    X, y, _, _ = nk.datasets.load("xor")
    assert X.shape == (32, 2) and nk.registry.datasets.provider("xor").plugin == name


def test_fixture_unregistered_it_afterwards(fresh_plugins):
    assert "xor" not in nk.registry.datasets


class KernelPlugin:
    """A throw-away plugin that registers the given kernel records."""

    def __init__(self, *records):
        self.records = list(records)

    @nk.hookimpl
    def nkernels_register_kernels(self):
        return self.records


def test_kernel_override_needs_a_higher_priority(fresh_plugins):
    calls = []

    def relu_forward_traced(x, out):
        calls.append(x.shape)
        np.maximum(x, 0, out=out)

    with pytest.warns(PluginLoadWarning, match="kernel relu_forward@cpu at priority 0, the built-in's priority"):
        with registered_plugin(KernelPlugin(KernelRecord("relu_forward", "cpu", relu_forward_traced, priority=0))):
            assert nk.registry.kernels[("relu_forward", "cpu")].py_func.__name__ == "relu_forward"
    with registered_plugin(KernelPlugin(KernelRecord("relu_forward", "cpu", relu_forward_traced, priority=10))):
        assert nk.registry.kernels[("relu_forward", "cpu")] is relu_forward_traced
        x = np.array([[-1.0, 2.0]], dtype=np.float32)
        np.testing.assert_array_equal(nk.layers.ReLU()(x), [[0.0, 2.0]])
        assert calls == [(2,)]
        # a plain-Python kernel cannot run inside the compiled step: training falls back, correctly
        model = nk.Sequential([nk.layers.Dense(2, 4), nk.layers.ReLU(), nk.layers.Dense(4, 2)], seed=0)
        nk.train(model, np.tile(x, (4, 1)), np.array([0, 1, 0, 1]), epochs=1, batch_size=2)
        assert len(calls) > 1
    assert nk.registry.kernels[("relu_forward", "cpu")].py_func.__name__ == "relu_forward"


def test_two_plugin_kernels_at_one_priority_conflict_for_that_op_only(fresh_plugins):
    def relu_forward_a(x, out):
        np.maximum(x, 0, out=out)

    def relu_forward_b(x, out):
        np.maximum(x, 0, out=out)

    with registered_plugin(KernelPlugin(KernelRecord("relu_forward", "cpu", relu_forward_a, priority=5)),
                           name="kernels-a"), \
            registered_plugin(KernelPlugin(KernelRecord("relu_forward", "cpu", relu_forward_b, priority=5)),
                              name="kernels-b"):
        with pytest.raises(PluginConflictError, match="kernel 'relu_forward' on cpu at priority 5.*'kernels-a'.*"
                                                      "'kernels-b'.*higher priority"):
            nk.registry.kernels[("relu_forward", "cpu")]
        assert nk.registry.kernels[("dense_forward", "cpu")].py_func.__name__ == "dense_forward"
        assert ("relu_forward", "cuda") in nk.registry.kernels


def test_observer_hooks_fire_during_training(fresh_plugins, digits):
    events = []

    class Logger:
        @nk.hookimpl
        def nkernels_on_train_begin(self, model, scheme, params):
            events.append(("begin", params["epochs"], type(scheme).__name__))

        @nk.hookimpl
        def nkernels_on_batch_end(self, batch, logs):
            events.append(("batch", batch))

        @nk.hookimpl
        def nkernels_on_epoch_end(self, model, epoch, logs):
            events.append(("epoch", epoch, sorted(logs)))

        @nk.hookimpl
        def nkernels_on_train_end(self, history):
            events.append(("end", len(history["loss"])))

    X, y = digits[0][:100], digits[1][:100]
    model = nk.Sequential([nk.layers.Dense(64, 10)], seed=0)
    with registered_plugin(Logger()):
        nk.train(model, X, y, epochs=2, batch_size=50)
    assert events[0] == ("begin", 2, "Backprop")
    assert events[1:3] == [("batch", 0), ("batch", 1)]
    assert events[3] == ("epoch", 0, ["accuracy", "loss", "lr", "time"])
    assert events[-1] == ("end", 2)
    assert len(events) == 8


def test_a_raising_observer_does_not_stop_training(fresh_plugins, digits):
    class Broken:
        @nk.hookimpl
        def nkernels_on_epoch_end(self, epoch):
            raise RuntimeError("disk full")

    model = nk.Sequential([nk.layers.Dense(64, 10)], seed=0)
    with registered_plugin(Broken()):
        with pytest.warns(PluginLoadWarning, match="disk full"):
            history = nk.train(model, digits[0][:64], digits[1][:64], epochs=2, batch_size=32)
    assert len(history["loss"]) == 2


def test_every_hookspec_has_a_test():
    """Each hook in nkernels.plugins.hookspecs must be exercised by name in some test file besides this check."""
    import inspect
    from pathlib import Path

    from nkernels.plugins import hookspecs

    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("nkernels_")]
    assert len(specs) >= 9
    here = Path(__file__)
    sources = {p: p.read_text() for p in here.parent.rglob("test_*.py")}
    own = sources.pop(here)
    own = own[:own.index("def test_every_hookspec_has_a_test")]
    sources[here] = own
    untested = [name for name in specs if not any(f"def {name}(" in text for text in sources.values())]
    assert not untested, f"hookspecs without a test implementing them: {untested}"


def test_hookspec_docstrings_have_worked_examples():
    import inspect

    from nkernels.plugins import hookspecs

    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("nkernels_"):
            assert "Example::" in (fn.__doc__ or ""), name
            assert "@nk.hookimpl" in fn.__doc__, name


def test_warning_names_plugin_only_once_per_load(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-broken", "nk_broken", "raise ImportError('x')\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nk.registry.layers["dense"]
        nk.registry.schemes["backprop"]
    assert sum("nk-broken" in str(w.message) for w in caught) == 1


def test_every_builtin_layer_and_kernel_module_is_registered(fresh_plugins):
    import inspect

    layer_classes = {cls for name, cls in inspect.getmembers(nk.layers, inspect.isclass)
                     if issubclass(cls, nk.layers.Layer) and cls is not nk.layers.Layer}
    assert layer_classes <= set(nk.registry.layers.values())
    from nkernels.plugins.builtins.kernels import CPU_KERNEL_MODULES
    from pathlib import Path

    modules = {p.stem for p in Path(nk.kernels.__file__).parent.joinpath("cpu").glob("*.py") if p.stem != "__init__"}
    # called by the kernels or the compiled steps, never looked up by a layer (no CUDA twin)
    building_blocks = {"avx512", "blas", "buffers", "handoff", "process_flags", "threads", "vecmath", "winograd"}
    assert modules - building_blocks == set(CPU_KERNEL_MODULES)
    assert ("lstm_backward", "cpu") in nk.registry.kernels


# -- deferred registrations: a plugin's module is imported when one of its names is asked for ----------------
SQUARE_CLASS = SQUARE_PLUGIN[:SQUARE_PLUGIN.index("@nk.hookimpl")]


def deferred_plugin(impl: str, name: str = "square") -> str:
    """A plugin package that registers ``name`` as a Deferred ``impl`` and exports ``Square`` lazily."""
    return f"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

__getattr__ = lazy_attributes(__name__, {{"Square": "{impl.partition(':')[0]}"}})

@nk.hookimpl
def nkernels_register_layers():
    return {{"{name}": Deferred("{impl}")}}
"""


def test_a_deferred_registration_imports_its_module_only_when_asked(tmp_path, monkeypatch, fresh_plugins):
    import sys

    install_distribution(tmp_path, monkeypatch, "nk-deferred", "nk_deferred", deferred_plugin("nk_deferred_impl:Square"))
    (tmp_path / "nk_deferred_impl.py").write_text(SQUARE_CLASS)
    monkeypatch.delitem(sys.modules, "nk_deferred_impl", raising=False)
    assert "square" in nk.registry.layers  # the plugin loaded and registered the name...
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["nk-deferred"]
    assert info.status == "active" and info.registered == {"layers": ["square"]}
    nk.registry.layers["dense"]
    assert "nk_deferred" in sys.modules and "nk_deferred_impl" not in sys.modules  # ...importing nothing else
    layer_cls = nk.registry.layers["square"]
    assert "nk_deferred_impl" in sys.modules and layer_cls.__name__ == "Square"
    from nk_deferred import Square

    assert Square is layer_cls and nk.registry.layers.name_of(layer_cls) == "square"
    model = nk.Sequential([nk.layers.Dense(3, 2), layer_cls()], seed=0)
    assert type(nk.Sequential.from_config(json.loads(json.dumps(model.get_config())))[1]) is layer_cls


@pytest.mark.parametrize("impl, error", [("nk_nowhere_impl:Square", "No module named 'nk_nowhere_impl'"),
                                         ("nk_deferred_int:Square", "subclass of nkernels.layers.Layer")])
def test_a_broken_deferred_registration_is_reported_and_the_rest_loads(tmp_path, monkeypatch, fresh_plugins,
                                                                          impl, error):
    install_distribution(tmp_path / "a", monkeypatch, "nk-lazybroken", "nk_lazybroken",
                         deferred_plugin(impl, "broken_square") + "\n@nk.hookimpl\ndef nkernels_register_schemes():\n"
                         "    return {'broken_scheme': Deferred('nk_deferred_int:Square')}\n")
    (tmp_path / "a" / "nk_deferred_int.py").write_text("Square = int\n")
    install_distribution(tmp_path / "b", monkeypatch, "nk-square", "nk_square", SQUARE_PLUGIN)
    assert "broken_square" in nk.registry.layers and "broken_scheme" in nk.registry.schemes  # not imported yet
    with pytest.warns(PluginLoadWarning, match=f"nk-lazybroken.*{error}"):
        with pytest.raises(PluginLoadError, match=f"layer 'broken_square' of nkernels plugin 'nk-lazybroken'.*{error}"
                                                  ".*every other plugin still works"):
            nk.registry.layers["broken_square"]
    # the failed plugin is skipped as a whole; the built-ins and the other plugin still work
    assert "broken_square" not in nk.registry.layers and "broken_scheme" not in nk.registry.schemes
    assert nk.registry.layers["square"].__name__ == "Square" and "dense" in nk.registry.layers
    status = {i.name: (i.status, i.error) for i in fresh_plugins.plugin_infos()}
    assert status["nk-lazybroken"][0] == "failed" and error in status["nk-lazybroken"][1]
    assert status["nk-square"] == ("active", None)


def test_listing_plugins_imports_deferred_registrations_so_failures_show(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-lazybroken", "nk_lazybroken",
                         deferred_plugin("nk_nowhere_impl:Square"))
    assert {i.name: i.status for i in fresh_plugins.plugin_infos()}["nk-lazybroken"] == "active"  # nothing imported
    with pytest.warns(PluginLoadWarning, match="nk-lazybroken.*No module named 'nk_nowhere_impl'"):
        infos = {i.name: i for i in fresh_plugins.plugin_infos(load=True)}
    assert infos["nk-lazybroken"].status == "failed"


def test_strict_plugins_raise_for_a_broken_deferred_registration(tmp_path, monkeypatch, fresh_plugins):
    install_distribution(tmp_path, monkeypatch, "nk-lazybroken", "nk_lazybroken",
                         deferred_plugin("nk_nowhere_impl:Square"))
    monkeypatch.setenv("NKERNELS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="nk-lazybroken.*NKERNELS_STRICT_PLUGINS"):
        nk.registry.layers["square"]


@pytest.mark.parametrize("target", ["nk_module_only", "nk_module:", ":Square", 3])
def test_a_deferred_target_must_name_a_module_and_an_object(target):
    with pytest.raises(ValueError, match="'package.module:Name'"):
        nk.plugins.Deferred(target)


def test_a_lazy_attribute_may_not_share_a_submodule_name():
    with pytest.raises(ValueError, match="submodule"):
        nk.plugins.lazy_attributes("nkernels", {"registry": ".registry"})


def test_first_party_plugins_load_without_their_scheme_modules():
    """In a fresh process: every first-party scheme registered through Deferred is in the registry
    before its module is imported."""
    import subprocess
    import sys

    code = """
import json, sys
import nkernels as nk
from nkernels.plugins import Deferred, table
nk.registry.schemes["backprop"]
deferred = {k: e.target.module for k, e in table("schemes").items() if isinstance(e.target, Deferred)}
print(json.dumps({k: [m, m in sys.modules] for k, m in deferred.items()}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    deferred = json.loads(done.stdout.strip().splitlines()[-1])
    installed = {n for n, dist in fresh_dist_names().items() if dist in installed_distributions()}
    expected = installed & {"admm", "es", "dfa", "fa", "gan", "mac", "sg", "ff"}
    assert expected <= set(deferred), (expected, deferred)
    assert not [k for k, (module, imported) in deferred.items() if imported], deferred


def fresh_dist_names() -> dict[str, str]:
    from nkernels.plugins import FIRST_PARTY_NAMES

    return FIRST_PARTY_NAMES["schemes"]


def installed_distributions() -> set[str]:
    from importlib import metadata

    return {ep.dist.name for ep in metadata.entry_points(group="nkernels") if ep.dist is not None}
