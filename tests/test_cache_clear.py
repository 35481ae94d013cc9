"""``nkernels cache clear``: Numba's cache files of nkernels and its plugins, the folders ``pip uninstall``
leaves of a plugin, and nkernels' generated modules, found where Numba and nkernels really put them."""
import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from nkernels.cli import main
from nkernels.runtime import cache

KERNEL = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def plus_one(x):
        return x + 1
""")


def _package(root, name):
    """A package ``name`` in ``root`` with a cached Numba kernel, as a plugin ships one."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "kernels.py").write_text(KERNEL)
    return root / name


def _compile_in_subprocess(root, module, **env):
    """Call the kernel in a fresh interpreter, so that Numba writes its cache files."""
    code = f"import {module}; assert {module}.plus_one(1) == 2"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env=dict(os.environ, PYTHONPATH=str(root), **env))


def test_the_numba_cache_beside_a_plugin_is_found_and_removed(tmp_path):
    package = _package(tmp_path, "nkfake_plugin")
    _compile_in_subprocess(tmp_path, "nkfake_plugin.kernels")
    written = sorted(p.name for p in (package / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc"))
    assert written, "Numba wrote no cache file beside the module"
    (removal,) = cache.numba_cache_removals([(str(package), None)])
    assert removal.path == str(package / "__pycache__") and removal.files == len(written)


def test_the_numba_cache_in_numba_cache_dir_is_found(tmp_path):
    package = _package(tmp_path, "nkfake_elsewhere")
    _compile_in_subprocess(tmp_path, "nkfake_elsewhere.kernels", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    assert not list(package.glob("__pycache__/*.nbi"))
    code = ("import json, nkernels.runtime.cache as c; "
            f"print(json.dumps([r.path for r in c.numba_cache_removals([({str(package)!r}, None)])]))")
    found = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                           env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))).stdout
    (path,) = json.loads(found)
    assert os.path.dirname(path) == str(tmp_path / "numba") and any(p.endswith(".nbi") for p in os.listdir(path))


def test_the_folder_pip_uninstall_leaves_is_found_and_no_longer_shadows(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    package = _package(site, "nkfake_gone")
    _compile_in_subprocess(site, "nkfake_gone.kernels")
    for source in package.rglob("*.py"):  # what pip uninstall removes: the recorded files and their .pyc
        source.unlink()
    for compiled in package.rglob("*.pyc"):
        compiled.unlink()
    kept = _package(site, "nkfake_kept")  # an installed package: left alone
    _compile_in_subprocess(site, "nkfake_kept.kernels")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    spec = importlib.util.find_spec("nkfake_gone")
    assert spec is not None and spec.origin is None  # a namespace package: it would shadow a reinstall
    (leftover,) = cache.leftover_removals([str(site)])
    assert leftover.path == str(package)
    monkeypatch.setattr(sys, "path", [str(site)])
    monkeypatch.setattr(cache, "package_sources", lambda: [])
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path / "empty"))
    assert [r.path for r in cache.clear()] == [str(package)]
    assert not package.exists() and (kept / "kernels.py").exists()
    assert list(kept.glob("__pycache__/*.nbi"))


def test_generated_modules_are_removed_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path))
    digest = "0123456789abcdef0123"  # as load_generated_module names its files
    module = cache.load_generated_module("def f():\n    return 1\n", "steps", "nkfake_step")
    assert module.f() == 1
    (tmp_path / "steps" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "steps" / "__pycache__" / f"nkernels_step_{digest}.step-3.py311.nbi").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("mine")
    found = cache.generated_removals()
    assert [r.path for r in found] == [str(tmp_path / "steps" / "__pycache__"), str(tmp_path / "steps")]
    assert found[1].files == 1  # the module; its __pycache__ holds the .nbi (and Python's .pyc)
    monkeypatch.setattr(cache, "package_sources", lambda: [])
    monkeypatch.setattr(sys, "path", [])
    cache.clear()
    assert not (tmp_path / "steps").exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_the_cache_command_lists_with_dry_run_and_clears(tmp_path, monkeypatch, capsys):
    package = _package(tmp_path, "nkfake_cli")
    _compile_in_subprocess(tmp_path, "nkfake_cli.kernels")
    monkeypatch.setattr(cache, "package_sources", lambda: [(str(package), None)])
    # none of this machine's leftovers; sys.path itself stays, the command imports its modules through it
    scan = cache.leftover_removals
    monkeypatch.setattr(cache, "leftover_removals", lambda: scan([]))
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path / "nk"))
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["cache", "clear", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and str(package / "__pycache__") in out and "(numba cache)" in out
    assert list(package.glob("__pycache__/*.nbi"))
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out and not list(package.glob("__pycache__/*.nb?"))
    assert main(["cache", "clear"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_the_cache_command_needs_an_action():
    with pytest.raises(SystemExit):
        main(["cache"])
