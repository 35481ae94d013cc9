"""Numba's cached machine code of nkernels' and its plugins' kernels goes stale with any kernel compiled
into it (nkernels.runtime.cache_stamps), in fresh interpreters as after an upgrade."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

INNER = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def value():
        return {value}
""")
OUTER = textwrap.dedent("""
    from numba import njit

    from nkernels.kernels.cpu.activation import RELU  # noqa: F401 (a plugin's kernels import nkernels' first)

    from .inner import value

    @njit(cache=True)
    def outer():
        return value() + 10
""")
CALL = ("import json, nkstamp_plugin.outer as m; r = m.outer(); "
        "print(json.dumps([r, m.outer.stats.cache_hits.most_common(), m.outer.stats.cache_misses.most_common()]))")


@pytest.fixture(autouse=True)
def numba_caches_beside_the_code(monkeypatch):
    """Numba's default place, beside the code (a NUMBA_CACHE_DIR of the environment would do as well)."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)


def _plugin(root, value):
    """An installed plugin package (entry point ``nkernels``) whose cached kernel calls another module's."""
    package = root / "nkstamp_plugin"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "inner.py").write_text(INNER.format(value=value))
    (package / "outer.py").write_text(OUTER)
    info = root / "nkstamp_plugin-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nkstamp-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nkernels]\nnkstamp = nkstamp_plugin\n")


def _call(root):
    """``outer()`` in a fresh interpreter: (result, cache hits, cache misses)."""
    done = subprocess.run([sys.executable, "-c", CALL], check=True, cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    result, hits, misses = json.loads(done.stdout.strip().splitlines()[-1])
    return result, len(hits), len(misses)


def test_a_cached_kernel_is_compiled_anew_when_a_kernel_it_calls_changes(tmp_path):
    _plugin(tmp_path, 1)
    assert _call(tmp_path) == (11, 0, 1)
    assert _call(tmp_path) == (11, 1, 0), "an unchanged code base must load from the cache"
    _plugin(tmp_path, 2)  # outer.py unchanged: Numba's own stamp (its file's hash) still matches
    assert _call(tmp_path) == (12, 0, 1)
    assert _call(tmp_path) == (12, 1, 0)


HELPER = textwrap.dedent("""
    from numba import njit

    from nkstamp_plugin.inner import value

    @njit(cache=True)
    def helper():
        return value() + 100
""")
CALL_HELPER = ("import json, sys; from nkernels.runtime.cache_stamps import serve_folder; "
               "serve_folder('suite') if sys.argv[1] == 'served' else None; sys.path.insert(0, 'suite'); "
               "import helper as m; r = m.helper(); print(json.dumps([r, len(m.helper.stats.cache_misses)]))")


@pytest.mark.parametrize("served", [True, False])
def test_a_served_folders_cached_helpers_follow_the_code_they_compiled_in(tmp_path, served):
    """A test suite's ``@njit(cache=True)`` helper compiles a kernel into its own machine code: in a
    folder given to serve_folder it is compiled anew when that kernel changes; elsewhere it keeps
    the old code (Numba stamps an entry with its own file's hash only)."""
    _plugin(tmp_path, 1)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "helper.py").write_text(HELPER)

    def call():
        done = subprocess.run([sys.executable, "-c", CALL_HELPER, "served" if served else "plain"], check=True,
                              cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
        return tuple(json.loads(done.stdout.strip().splitlines()[-1]))

    assert call() == (101, 1)
    assert call() == (101, 0)
    _plugin(tmp_path, 2)
    assert call() == ((102, 1) if served else (101, 0))


def test_serve_folder_takes_a_folder_and_its_child_processes_serve_it_too(tmp_path, monkeypatch):
    from nkernels.runtime import cache_stamps

    with pytest.raises(ValueError, match="folder"):
        cache_stamps.serve_folder(str(tmp_path / "missing"))
    assert cache_stamps.serves(__file__)  # the test suite's conftest serves its folder
    monkeypatch.setenv(cache_stamps.SERVED_FOLDERS_VARIABLE, os.environ[cache_stamps.SERVED_FOLDERS_VARIABLE])
    cache_stamps.serve_folder(str(tmp_path))
    cache_stamps.serve_folder(str(tmp_path))
    code = "import sys; from nkernels.runtime.cache_stamps import serves; print(serves(sys.argv[1]), serves(sys.argv[2]))"
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.py"), __file__], check=True,
                           capture_output=True, text=True)
    assert child.stdout.split() == ["True", "True"]
    assert os.environ[cache_stamps.SERVED_FOLDERS_VARIABLE].split(os.pathsep).count(str(tmp_path)) == 1


def test_only_the_code_of_nkernels_and_its_plugins_is_fingerprinted(tmp_path, monkeypatch):
    from nkernels.runtime import cache_stamps

    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path / "generated"))
    assert cache_stamps.serves(cache_stamps.__file__)
    assert cache_stamps.serves(str(tmp_path / "generated" / "steps" / "step_0123.py"))
    assert not cache_stamps.serves(str(tmp_path / "elsewhere.py"))
    assert not cache_stamps.serves(pytest.__file__)


def test_numba_cuda_kernels_are_fingerprinted_too():
    import nkernels.kernels.cuda  # noqa: F401 (installs the locators)
    from numba.cuda.core.caching import CacheImpl

    from nkernels.kernels.cuda import launch
    from nkernels.runtime import cache_stamps

    locator = next(filter(None, (c.from_function(launch.as_device_array, launch.__file__)
                                 for c in CacheImpl._locator_classes)))
    assert locator.get_source_stamp()[1] == cache_stamps.code_fingerprint()
