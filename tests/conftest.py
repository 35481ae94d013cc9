"""Shared test setup. The CUDA simulator must be switched on before numba is imported."""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nkernels.runtime.cache_stamps import serve_folder  # noqa: E402

# the tests' own @njit(cache=True) helpers compile kernels into their machine code: their cache entries
# go stale with nkernels' code, as its own do (without this they ran a kernel's old code after an edit)
serve_folder(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Plugin discovery from scratch (after env changes), and a clean slate again afterwards."""
    from nkernels.plugins import manager as plugins

    for var in ("NKERNELS_STRICT_PLUGINS", "NKERNELS_DISABLE_PLUGIN_AUTOLOAD", "NKERNELS_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture(scope="session")
def digits():
    """The digits split as flat vectors: (X_train, y_train, X_test, y_test)."""
    import nkernels as nk

    return nk.datasets.load("digits")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def preset_accuracy():
    """``accuracy(preset, seed)``: the test accuracy (in %) the command line prints after training ``preset``
    with its default settings and ``--seed seed``; each pair is trained once per session (slow tests)."""
    import contextlib
    import io
    import re

    from nkernels.cli import main

    cache: dict[tuple[str, int], float] = {}

    def accuracy(preset: str, seed: int) -> float:
        if (preset, seed) not in cache:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(["train", "--model", preset, "--seed", str(seed), "--quiet"]) == 0
            cache[preset, seed] = float(re.search(r"test accuracy ([\d.]+)%", out.getvalue()).group(1))
        return cache[preset, seed]
    return accuracy
