"""Register a plugin for the length of a block, then take it away."""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Iterator

from .. import plugins

_names = itertools.count()


@contextmanager
def registered_plugin(plugin: object, name: str | None = None,
                      distribution: str = "(test)") -> Iterator[object]:
    """Register ``plugin`` (a module or an object with ``@nk.hookimpl`` methods) inside a block.

    Example::

        class Plugin:
            @nk.hookimpl
            def nkernels_register_layers(self):
                return {"square": Square}

        with registered_plugin(Plugin()):
            assert nk.registry.layers["square"] is Square
    """
    name = name or f"test-plugin-{next(_names)}"
    plugins.register_plugin(plugin, name=name, distribution=distribution)
    try:
        yield plugin
    finally:
        plugins.unregister_plugin(name)
