"""Read-only registries of layers, schemes, extractors, datasets, kernels and ONNX exporters.

Each registry is a mapping from name to the registered class (or loader). The first use of
any registry loads the plugins. ``nk.registry.layers["dense"] is nk.layers.Dense``, and
``nk.registry.layers.provider("dense")`` says which plugin and distribution registered it.
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

    def _table(self) -> dict:
        return plugins.table(self.kind)

    def __getitem__(self, name: str) -> Any:
        table = self._table()
        try:
            return table[name].value
        except KeyError:
            available = ", ".join(sorted(plugins.key_label(self.kind, k) for k in table)) or "none"
            raise UnknownNameError(f"unknown {self.kind[:-1]} {name!r}; available: {available}") from None

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
        for name, entry in self._table().items():
            if entry.value is obj:
                return name
        raise UnknownNameError(f"{obj!r} is not registered as a {self.kind[:-1]}; register it through "
                               f"the {plugins.REGISTRY_HOOKS[self.kind]} hook")

    def __repr__(self) -> str:
        return f"<nkernels registry {self.kind}: {sorted(plugins.key_label(self.kind, k) for k in self._table())}>"


class KernelRegistry(Registry):
    """``(op, device) -> kernel function``, after priorities are applied; ``provider`` gives the record's origin."""

    def __getitem__(self, key):
        return super().__getitem__(key).function

    def record(self, key):
        """The winning :class:`~nkernels.kernel_registry.KernelRecord` for ``(op, device)``."""
        return super().__getitem__(key)


layers = Registry("layers")
schemes = Registry("schemes")
extractors = Registry("extractors")
datasets = Registry("datasets")
kernels = KernelRegistry("kernels")
#: ONNX exporters keyed by layer registry name or by class (see ``nkernels_register_exporters``)
exporters = Registry("exporters")

__all__ = ["Registry", "KernelRegistry", "UnknownNameError", "layers", "schemes", "extractors", "datasets", "kernels",
           "exporters"]
