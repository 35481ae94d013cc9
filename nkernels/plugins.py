"""Plugin discovery and loading on pluggy.

The built-in plugin modules register first, then every entry point of the group ``nkernels``.
Nothing loads at ``import nkernels``: the first use of a registry calls :func:`ensure_loaded`.

Each plugin is loaded and each of its hooks called on its own, so a broken plugin is reported
(a :class:`~nkernels.errors.PluginLoadWarning` naming it and quoting its error) while the rest
still load. Environment switches:

* ``NKERNELS_STRICT_PLUGINS=1``: a broken plugin raises :class:`~nkernels.errors.PluginLoadError`.
* ``NKERNELS_DISABLE_PLUGIN_AUTOLOAD=1``: load the built-ins only.
* ``NKERNELS_DISABLE_PLUGINS=a,b``: skip the plugins (entry-point or distribution names) listed.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from ._version import __version__
from .errors import PluginConflictError, PluginLoadError, PluginLoadWarning

PROJECT = "nkernels"
ENTRY_POINT_GROUP = "nkernels"
BUILTIN_PLUGINS = (
    "nkernels.builtins.layers",
    "nkernels.builtins.schemes",
    "nkernels.builtins.datasets",
    "nkernels.builtins.kernels",
    "nkernels.builtins.exporters",
)
#: registry kind -> the hook that fills it
REGISTRY_HOOKS = {
    "layers": "nkernels_register_layers",
    "schemes": "nkernels_register_schemes",
    "extractors": "nkernels_register_extractors",
    "datasets": "nkernels_register_datasets",
    "kernels": "nkernels_register_kernels",
    "exporters": "nkernels_register_exporters",
}

ACTIVE, FAILED, DISABLED = "active", "failed", "disabled"


@dataclass
class PluginInfo:
    """What is known about one plugin: where it came from, its status and what it registered."""

    name: str
    distribution: str
    version: str
    status: str = ACTIVE
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view of this record."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "status": self.status, "error": self.error, "registered": self.registered,
                "builtin": self.builtin}


@dataclass(frozen=True)
class Entry:
    """One registry entry: the registered object and which plugin and distribution provided it."""

    value: Any
    plugin: str
    distribution: str
    version: str


class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.manager: pluggy.PluginManager | None = None
        self.infos: dict[str, PluginInfo] = {}
        self.tables: dict[str, dict] | None = None


_state = _State()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _disabled_names() -> set[str]:
    raw = os.environ.get("NKERNELS_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _report_failure(info: PluginInfo, exc: BaseException) -> None:
    info.status = FAILED
    info.error = f"{type(exc).__name__}: {exc}"
    message = (f"nkernels plugin {info.name!r} (distribution {info.distribution} {info.version}) "
               f"failed and was skipped: {info.error}")
    if _env_flag("NKERNELS_STRICT_PLUGINS"):
        raise PluginLoadError(message + " (NKERNELS_STRICT_PLUGINS=1 turns this into an error)") from exc
    warnings.warn(message, PluginLoadWarning, stacklevel=4)


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _load() -> None:
    import importlib

    pm = _new_manager()
    infos: dict[str, PluginInfo] = {}
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        infos[module_name] = PluginInfo(module_name, PROJECT, __version__, builtin=True)
    if not _env_flag("NKERNELS_DISABLE_PLUGIN_AUTOLOAD"):
        disabled = _disabled_names()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "unknown"
            info = infos[ep.name] = PluginInfo(ep.name, dist, version)
            if ep.name in disabled or dist in disabled:
                info.status = DISABLED
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a plugin may fail in any way; report it, load the rest
                _report_failure(info, exc)
    _state.manager, _state.infos, _state.tables = pm, infos, None


def ensure_loaded() -> pluggy.PluginManager:
    """Load the built-ins and the installed plugins once; return the plugin manager."""
    with _state.lock:
        if _state.manager is None:
            _load()
        manager = _state.manager
        assert manager is not None  # _load sets it
        if _state.tables is None:
            _state.tables = _collect(manager, _state.infos)
        return manager


def reset() -> None:
    """Forget every loaded plugin, so that the next registry use discovers them again."""
    with _state.lock:
        _state.manager, _state.infos, _state.tables = None, {}, None


def register_plugin(plugin: object, name: str, distribution: str = "(registered at run time)",
                    version: str = "") -> None:
    """Register a plugin object (a module or any object with hook implementations) at run time.

    Its registrations join the registries at once; :func:`unregister_plugin` takes it away.
    """
    with _state.lock:
        manager = ensure_loaded()
        if name in _state.infos:
            raise ValueError(f"a plugin named {name!r} is already registered")
        manager.register(plugin, name=name)
        _state.infos[name] = PluginInfo(name, distribution, version)
        _state.tables = None
        try:
            ensure_loaded()
        except Exception:
            unregister_plugin(name)
            raise


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    with _state.lock:
        if _state.manager is None or name not in _state.infos:
            return
        if _state.manager.get_plugin(name) is not None:
            _state.manager.unregister(name=name)
        del _state.infos[name]
        _state.tables = None


def plugin_infos() -> list[PluginInfo]:
    """Every known plugin, built-ins first, with status and registrations."""
    ensure_loaded()
    return list(_state.infos.values())


def table(kind: str) -> dict:
    """The merged table of one registry kind (``name -> Entry``; for kernels ``(op, device) -> Entry``)."""
    ensure_loaded()
    assert _state.tables is not None  # ensure_loaded collects them
    return _state.tables[kind]


def _validate(kind: str, plugin: str, result: Any) -> list[tuple[Any, Any]]:
    """Check one hook's return value and turn it into (key, value) pairs."""
    if kind == "kernels":
        from .kernel_registry import KernelRecord

        records = list(result or [])
        for record in records:
            if not isinstance(record, KernelRecord):
                raise TypeError(f"nkernels_register_kernels must return KernelRecord objects, got {record!r}")
        return [((r.op, r.device), r) for r in records]
    if not isinstance(result, Mapping):
        raise TypeError(f"{REGISTRY_HOOKS[kind]} must return a mapping from name to object, "
                        f"got {type(result).__name__}")
    pairs: list[tuple[Any, Any]] = []
    for name, value in result.items():
        if kind == "exporters" and isinstance(name, type):  # exporters may be keyed by class
            _check_value(kind, name.__qualname__, value)
            pairs.append((name, value))
            continue
        if not isinstance(name, str) or not name:
            raise TypeError(f"{REGISTRY_HOOKS[kind]} returned a non-string or empty name {name!r}"
                            + (" (exporters are keyed by a layer's registry name or its class)"
                               if kind == "exporters" else ""))
        _check_value(kind, name, value)
        pairs.append((name, value))
    return pairs


def _check_value(kind: str, name: str, value: Any) -> None:
    if kind == "layers":
        from .layers.base import Layer

        if not (isinstance(value, type) and issubclass(value, Layer)):
            raise TypeError(f"layer {name!r} must be a subclass of nkernels.layers.Layer, got {value!r}")
    elif kind == "schemes":
        from .schemes.base import Scheme

        if not (isinstance(value, type) and issubclass(value, Scheme)):
            raise TypeError(f"scheme {name!r} must be a subclass of nkernels.schemes.Scheme, got {value!r}")
    elif not callable(value):
        raise TypeError(f"{kind[:-1]} {name!r} must be a class or a callable, got {value!r}")


def key_label(kind: str, key: Any) -> str:
    """A registry key as text: ``op@device`` for kernels, ``module.Class`` for a class key, else the name."""
    if kind == "kernels":
        return f"{key[0]}@{key[1]}"
    if isinstance(key, type):
        return f"{key.__module__}.{key.__qualname__}"
    return str(key)


def _conflict(kind: str, key: Any, first: Entry, second: Entry) -> PluginConflictError:
    what = f"kernel {key[0]!r} on {key[1]} at priority {first.value.priority}" if kind == "kernels" \
        else f"{kind[:-1]} {key_label(kind, key)!r}"
    return PluginConflictError(
        f"{what} is registered by two plugins: {first.plugin!r} (distribution {first.distribution} "
        f"{first.version}) and {second.plugin!r} (distribution {second.distribution} {second.version}). "
        f"nkernels never overwrites one with the other. Resolve it by uninstalling one distribution "
        f"(pip uninstall {second.distribution}) or by skipping one plugin with "
        f"NKERNELS_DISABLE_PLUGINS={second.plugin}"
        + (", or give one kernel a higher priority." if kind == "kernels" else "."))


def _collect(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> dict[str, dict]:
    """Call every active plugin's registration hooks one plugin at a time and merge the results."""
    staged: dict[str, dict[str, list]] = {}
    for kind, hook_name in REGISTRY_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = infos.get(impl.plugin_name)
            if info is None or info.status != ACTIVE:
                continue
            try:
                pairs = _validate(kind, info.name, impl.function())
            except Exception as exc:
                _report_failure(info, exc)
                staged.pop(info.name, None)
                continue
            staged.setdefault(info.name, {})[kind] = pairs
    tables: dict[str, dict] = {kind: {} for kind in REGISTRY_HOOKS}
    for info in infos.values():  # built-ins first, then entry points, in discovery order
        info.registered = {}
        if info.status != ACTIVE:
            continue
        for kind, pairs in staged.get(info.name, {}).items():
            for key, value in pairs:
                entry = Entry(value, info.name, info.distribution, info.version)
                _merge(tables[kind], kind, key, entry)
                info.registered.setdefault(kind, []).append(key_label(kind, key))
    return tables


def _merge(target: dict, kind: str, key: Any, entry: Entry) -> None:
    previous = target.get(key)
    if previous is None:
        target[key] = entry
    elif kind != "kernels":
        raise _conflict(kind, key, previous, entry)
    elif entry.value.priority > previous.value.priority:
        target[key] = entry
    elif entry.value.priority == previous.value.priority:
        raise _conflict(kind, key, previous, entry)


def notify(hook_name: str, **kwargs: Any) -> None:
    """Call an observer hook on every plugin that implements it.

    Each implementation gets only the arguments it names. One that raises is reported as a
    warning and the others still run, so a broken logger never stops training.
    """
    pm = ensure_loaded()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            warnings.warn(f"nkernels plugin {impl.plugin_name!r} raised in {hook_name}: "
                          f"{type(exc).__name__}: {exc}", PluginLoadWarning, stacklevel=2)


def has_observers(hook_name: str) -> bool:
    """Whether any plugin implements the observer hook ``hook_name``."""
    return bool(getattr(ensure_loaded().hook, hook_name).get_hookimpls())
