"""Read-only registries of layers, schemes, extractors, datasets, losses, kernels and ONNX exporters.

Each registry is a mapping from name to the registered class (or loader). The first use of
any registry loads the plugins. ``nk.registry.layers["dense"] is nk.layers.Dense``, and
``nk.registry.layers.provider("dense")`` says which plugin and distribution registered it.
A name that two plugins registered is left out of the mapping, and looking it up raises
:class:`~nkernels.errors.PluginConflictError` naming both; every other name works.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import plugins


class UnknownNameError(KeyError, ValueError):
    """A name that no plugin registered; the message lists the names that are available."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping):
    """A read-only, lazily loaded mapping from registered name to object."""

    def __init__(self, kind: str):
        self.kind = kind

    def _table(self) -> plugins.RegistryTable:
        return plugins.table(self.kind)

    def __getitem__(self, name: str) -> Any:
        table = self._table()
        try:
            return table[name].value  # a name two plugins registered raises PluginConflictError
        except KeyError:
            available = ", ".join(sorted(plugins.key_label(self.kind, k) for k in table)) or "none"
            hint = plugins.missing_name_hint(self.kind, name)
            raise UnknownNameError(f"unknown {plugins.singular(self.kind)} {name!r}; " + (f"{hint}. Available: " if hint
                                   else "available: ") + available) from None

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` can be looked up (a name two plugins registered cannot, until one goes)."""
        return name in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def provider(self, name: str) -> plugins.Entry:
        """The :class:`~nkernels.plugins.Entry` for ``name``: its plugin, distribution and version."""
        self[name]
        return self._table()[name]

    def name_of(self, obj: Any) -> str:
        """The name under which ``obj`` (a class or loader) is registered."""
        table = self._table()
        for load in (False, True):  # first without importing any deferred registration's module
            for name, entry in table.items():
                if entry.is_for(obj, load):
                    return name
            for name, entries in table.conflicts.items():
                if any(entry.is_for(obj, load) for entry in entries):
                    raise table.conflict(name)  # registered, but under a name that cannot be used
        raise UnknownNameError(f"{obj!r} is not registered as a {plugins.singular(self.kind)}; register it through "
                               f"the {plugins.REGISTRY_HOOKS[self.kind]} hook")

    def __repr__(self) -> str:
        return f"<nkernels registry {self.kind}: {sorted(plugins.key_label(self.kind, k) for k in self._table())}>"


class KernelRegistry(Registry):
    """``(op, device) -> kernel function``, after priorities are applied; ``provider`` gives the record's origin."""

    def __getitem__(self, key):
        return super().__getitem__(key).function

    def record(self, key):
        """The winning :class:`~nkernels.plugins.kernels.KernelRecord` for ``(op, device)``."""
        return super().__getitem__(key)


layers = Registry("layers")
schemes = Registry("schemes")
extractors = Registry("extractors")
datasets = Registry("datasets")
kernels = KernelRegistry("kernels")
#: ONNX exporters keyed by layer registry name or by class (see ``nkernels_register_exporters``)
exporters = Registry("exporters")
losses = Registry("losses")

__all__ = ["Registry", "KernelRegistry", "UnknownNameError", "layers", "schemes", "extractors", "datasets", "kernels",
           "exporters", "losses"]
