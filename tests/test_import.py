"""``import nkernels`` compiles nothing, loads no plugin and stays cheap."""
import subprocess
import sys

CHECK = """
import sys, time
start = time.perf_counter()
import nkernels as nk
elapsed = time.perf_counter() - start
from nkernels.plugins import manager as plugins
assert plugins._state.manager is None, "plugins loaded at import"
assert "numba" not in sys.modules, "numba imported (and maybe compiled) at import"
assert callable(nk.hookimpl)
nk.layers.Dense(3, 2)  # building layers loads no plugins either
assert plugins._state.manager is None
print(elapsed)
"""


def test_import_compiles_nothing_and_loads_no_plugins():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) > 0


def test_public_names_of_the_contract():
    import nkernels as nk

    for name in ("Sequential", "train", "evaluate", "save", "load", "hookimpl", "layers", "losses", "schemes",
                 "registry", "History"):
        assert hasattr(nk, name), name
    for name in ("Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Flatten"):
        assert hasattr(nk.layers, name), name
    for name in ("layers", "schemes", "extractors", "datasets"):
        assert hasattr(nk.registry, name), name
    assert hasattr(nk.losses, "SoftmaxCrossEntropy") and hasattr(nk.losses, "MSE")
    assert hasattr(nk.schemes, "Scheme")
