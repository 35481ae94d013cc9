"""Make real installed distributions (a module plus a ``*.dist-info``) on ``sys.path`` for plugin tests."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path


def install_distribution(root: Path, monkeypatch, dist: str, module: str, source: str,
                         entry_point: str | None = None, version: str = "1.0") -> None:
    """Install distribution ``dist`` with module ``module`` and an ``nkernels`` entry point into ``root``.

    ``root`` is put on ``sys.path`` for the test (monkeypatch undoes it), which is how
    ``importlib.metadata`` finds any installed distribution.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[nkernels]\n{entry_point or dist} = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    importlib.invalidate_caches()
