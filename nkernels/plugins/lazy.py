"""Lazy public names for a plugin package, so that loading the plugin imports none of its modules.

A plugin's package is what its entry point loads, at the first use of any registry. With its
registrations made through :class:`~nkernels.plugins.Deferred` and its public names through
:func:`lazy_attributes`, that load imports the package's ``__init__`` alone::

    from nkernels.plugins import Deferred, lazy_attributes

    __getattr__ = lazy_attributes(__name__, {"SyntheticGradients": ".scheme"})
    __all__ = ["SyntheticGradients"]

    @nk.hookimpl
    def nkernels_register_schemes():
        return {"sg": Deferred("nkernels_sg.scheme:SyntheticGradients")}

``from nkernels_sg import SyntheticGradients`` still works: it imports ``nkernels_sg.scheme`` then.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: ``where`` maps each public name to the
    module that defines it (relative, like ``".scheme"``, or absolute), imported on first access;
    the value is then stored in the package, so the next access costs nothing.

    A name that is also one of the package's submodules is refused (import it eagerly instead):
    importing that submodule from anywhere would set the package's attribute to the module, and
    ``__getattr__`` would never be asked for the object.
    """
    for name in where:
        if _is_submodule(package, name):
            raise ValueError(f"{package}.{name} is a submodule, so a lazy attribute {name!r} would be shadowed by "
                             f"the module once anything imports it; import {name!r} eagerly in {package}")

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def _is_submodule(package: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except ModuleNotFoundError:  # ``package`` is a plain module: it has no submodules
        return False
