"""The nkernels asv suite. See README.md, "Benchmarks", for the commands.

In an environment asv builds per commit (``asv continuous``, ``asv run A..B``), Numba's cache and
nkernels' generated steps go to a folder of that commit inside the environment. asv reinstalls
nkernels at every switch between the two commits it compares (it interleaves their rounds), and
the uninstall removes the Numba cache files beside the modules (pip would otherwise leave folders
behind); with a cache per commit, each commit compiles its kernels once, and no compiled code
crosses from one commit to the other. This runs before any benchmark module imports Numba.
"""
import os

if os.environ.get("ASV_ENV_TYPE") == "virtualenv" and os.environ.get("ASV_COMMIT"):
    _commit_cache = os.path.join(os.environ["ASV_ENV_DIR"], "caches", os.environ["ASV_COMMIT"])
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_commit_cache, "numba"))
    os.environ.setdefault("NKERNELS_CACHE_DIR", os.path.join(_commit_cache, "nkernels"))
