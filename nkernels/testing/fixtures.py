"""pytest fixtures for plugin authors, loaded automatically through the ``pytest11`` entry point."""
from __future__ import annotations

import itertools

import pytest

_names = itertools.count()


@pytest.fixture
def nk_register_plugin():
    """A function ``register(plugin, name=None)`` whose plugins are unregistered after the test."""
    from .. import plugins

    registered: list[str] = []

    def register(plugin: object, name: str | None = None, distribution: str = "(test)") -> str:
        name = name or f"fixture-plugin-{next(_names)}"
        plugins.register_plugin(plugin, name=name, distribution=distribution)
        registered.append(name)
        return name

    yield register
    for name in reversed(registered):
        plugins.unregister_plugin(name)
