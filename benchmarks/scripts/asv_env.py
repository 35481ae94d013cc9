"""Build, install and uninstall nkernels and its first-party plugins in one of asv's environments.

asv.conf.json runs this (the copy in the checkout asv runs from, ``{conf_dir}``, for every commit,
so that an older commit is built the same way) with the environment's Python:

    python asv_env.py build BUILD_DIR CACHE_DIR   # wheels: nkernels into CACHE_DIR (the one wheel asv
                                                  # looks for there), each plugins/*/ into CACHE_DIR/plugins
    python asv_env.py install WHEEL CACHE_DIR     # nkernels with its "bench" extra (asv's peers: the pinned
                                                  # PyTorch CPU build and JAX; pip keeps them between commits)
                                                  # and every plugin wheel
    python asv_env.py uninstall                   # every nkernels distribution, with the Numba cache files
                                                  # pip would leave behind

Standard library only: it runs before the commit's nkernels is installed.
"""
import glob
import os
import subprocess
import sys
from importlib import metadata

PLUGIN_WHEELS = "plugins"
NUMBA_CACHE_SUFFIXES = (".nbi", ".nbc")


def pip(*args):
    """Run pip in this environment; a failure stops asv's build or install with pip's message."""
    command = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def build(build_dir, cache_dir):
    """Wheels of the commit's nkernels and of each of its plugins (``plugins/*/pyproject.toml``)."""
    options = ["wheel", "--no-deps", "--no-build-isolation"]  # asv installed the build requirements
    pip(*options, "-w", cache_dir, build_dir)
    plugins = sorted(glob.glob(os.path.join(build_dir, "plugins", "*", "pyproject.toml")))
    for project in plugins:
        pip(*options, "-w", os.path.join(cache_dir, PLUGIN_WHEELS), os.path.dirname(project))


def install(wheel, cache_dir):
    """nkernels with its peers, and the plugins, in one resolution (so that the plugins' requirement
    on nkernels is met by this wheel, never by an index)."""
    plugins = sorted(glob.glob(os.path.join(cache_dir, PLUGIN_WHEELS, "*.whl")))
    pip("install", f"{wheel}[bench]", *plugins)


def _nkernels_distributions():
    """The installed distributions named nkernels or nkernels-*."""
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name == "nkernels" or name.startswith("nkernels-"):
            found[name] = dist
    return found


def _remove_numba_cache(dist):
    """Delete the Numba cache files beside the distribution's modules: no installer's record lists
    them, so pip would leave the package folders behind with only them inside."""
    folders = {os.path.dirname(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".py")}
    for folder in folders:
        cache = os.path.join(folder, "__pycache__")
        for name in os.listdir(cache) if os.path.isdir(cache) else ():
            if name.endswith(NUMBA_CACHE_SUFFIXES):
                os.remove(os.path.join(cache, name))


def uninstall():
    """Every nkernels distribution (the previous commit's nkernels and plugins)."""
    dists = _nkernels_distributions()
    for dist in dists.values():
        _remove_numba_cache(dist)
    if dists:
        pip("uninstall", "-y", *sorted(dists))


def main(argv):
    commands = {"build": (build, 2), "install": (install, 2), "uninstall": (uninstall, 0)}
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        raise SystemExit(__doc__)
    function, _ = commands[argv[0]]
    function(*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
