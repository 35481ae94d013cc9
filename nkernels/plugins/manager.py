"""Plugin discovery and loading on pluggy.

The built-in plugin modules register first, then every entry point of the group ``nkernels``.
Nothing loads at ``import nkernels``: the first use of a registry calls :func:`ensure_loaded`.

Each plugin is loaded and each of its hooks called on its own, so a broken plugin is reported
(a :class:`~nkernels.errors.PluginLoadWarning` naming it and quoting its error) while the rest
still load. A plugin that implements no nkernels hook at all (typically a stale folder left by
``pip uninstall`` shadowing the real package) is reported the same way.

Names are merged so that no plugin can break another's or the core's:

* the built-ins' names are reserved: a plugin registering one (say ``"dense"``) is refused for
  that name with a warning, and keeps its other names;
* two plugins registering one name make only that name unusable: looking it up raises
  :class:`~nkernels.errors.PluginConflictError` naming both, everything else works, and
  ``nkernels plugins`` lists the conflict;
* kernels go by explicit priority: the highest wins, a plugin overrides a built-in only with a
  higher priority, and two plugins at the same highest priority conflict for that (op, device);
* two distributions with the same entry-point name both load (records are keyed by distribution too).

A hook may register a name without importing its object: ``{"sg": Deferred("nkernels_sg.scheme:SyntheticGradients")}``.
The name joins the registry (conflicts and refusals are settled on names alone) and the object is
imported on the first lookup of that name, so a plugin's package can load without its heavy
modules. A deferred object that fails to import (or is not of the registry's kind) is reported on
that lookup like any broken plugin: a warning naming the plugin, which is then skipped as a whole,
while every other plugin keeps working; :func:`plugin_infos` with ``load=True`` (``nkernels
plugins``) imports every deferred object so that such a failure shows before any lookup.

Environment switches:

* ``NKERNELS_STRICT_PLUGINS=1``: a broken plugin raises :class:`~nkernels.errors.PluginLoadError`.
* ``NKERNELS_DISABLE_PLUGIN_AUTOLOAD=1``: load the built-ins only.
* ``NKERNELS_DISABLE_PLUGINS=a,b``: skip the plugins (entry-point or distribution names) listed.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .._version import __version__
from ..errors import PluginConflictError, PluginLoadError, PluginLoadWarning

PROJECT = "nkernels"
ENTRY_POINT_GROUP = "nkernels"
BUILTIN_PLUGINS = (
    "nkernels.plugins.builtins.layers",
    "nkernels.plugins.builtins.schemes",
    "nkernels.plugins.builtins.datasets",
    "nkernels.plugins.builtins.kernels",
    "nkernels.plugins.builtins.losses",
)
#: registry kind -> the hook that fills it
REGISTRY_HOOKS = {
    "layers": "nkernels_register_layers",
    "schemes": "nkernels_register_schemes",
    "extractors": "nkernels_register_extractors",
    "datasets": "nkernels_register_datasets",
    "kernels": "nkernels_register_kernels",
    "exporters": "nkernels_register_exporters",
    "losses": "nkernels_register_losses",
}

ACTIVE, FAILED, DISABLED = "active", "failed", "disabled"


def singular(kind: str) -> str:
    """One entry of a registry kind, for messages: ``layers`` -> ``layer``, ``losses`` -> ``loss``."""
    return kind[:-2] if kind.endswith("sses") else kind[:-1]

#: the names the first-party plugin distributions register, so that a lookup of one whose
#: plugin is missing can say which distribution to install
FIRST_PARTY_NAMES = {
    "layers": {"leaky_relu": "nkernels-activations", "elu": "nkernels-activations", "ff_label_input": "nkernels-ff"},
    "schemes": {"admm": "nkernels-admm", "es": "nkernels-es", "dfa": "nkernels-feedback",
                "fa": "nkernels-feedback", "greedy": "nkernels-greedy", "mac": "nkernels-mac", "ff": "nkernels-ff",
                "sg": "nkernels-sg", "gan": "nkernels-gan", "autoencoder": "nkernels-greedy"},
    "extractors": {"kmeans": "nkernels-kmeans", "conv-kmeans": "nkernels-kmeans",
                   "stacked-kmeans": "nkernels-kmeans", "autoencoder": "nkernels-greedy", "rbm": "nkernels-greedy",
                   "pmi-factorization": "nkernels-pmi", "stacked-pmi": "nkernels-pmi"},
}


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
    #: names this plugin registered that another plugin registered too (unusable until one goes)
    conflicts: list[str] = field(default_factory=list)
    #: names refused because a built-in owns them
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view of this record."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "status": self.status, "error": self.error, "registered": self.registered,
                "builtin": self.builtin, "conflicts": self.conflicts, "refused": self.refused}


class Deferred:
    """A registration whose object is imported on first use: ``Deferred("package.module:Name")``.

    A plugin's hook returns it in place of the object (``{"sg": Deferred("nkernels_sg.scheme:
    SyntheticGradients")}``), so that loading the plugin imports none of its modules; the registry
    imports ``package.module`` and reads ``Name`` (dotted for a nested attribute) the first time
    the name is looked up, and checks it then as it checks any registration.
    """

    __slots__ = ("target",)

    def __init__(self, target: str):
        module, sep, attribute = target.partition(":") if isinstance(target, str) else ("", "", "")
        if not (sep and module and attribute):
            raise ValueError(f"Deferred takes 'package.module:Name', the module to import and the name to read "
                             f"in it, got {target!r}")
        self.target = target

    @property
    def module(self) -> str:
        """The module to import."""
        return self.target.partition(":")[0]

    def load(self) -> Any:
        """Import the module and return the object."""
        module, _, attribute = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj

    def __repr__(self) -> str:
        return f"Deferred({self.target!r})"


_NOT_LOADED = object()


@dataclass(frozen=True)
class Entry:
    """One registry entry: the registered object and which plugin and distribution provided it.

    ``target`` is what the hook returned: the object, or a :class:`Deferred` that ``value``
    imports on first access.
    """

    target: Any
    plugin: str
    distribution: str
    version: str
    builtin: bool = False
    kind: str = field(default="", compare=False)
    key: Any = field(default=None, compare=False)
    #: the plugin's record key in :func:`plugin_infos` (its entry-point name, or name and distribution)
    record: str = field(default="", compare=False)

    @property
    def value(self) -> Any:
        """The registered object (a deferred one is imported and checked now, once)."""
        if not isinstance(self.target, Deferred):
            return self.target
        loaded = self.__dict__.get("_loaded", _NOT_LOADED)
        if loaded is _NOT_LOADED:
            loaded = _load_deferred(self)
            object.__setattr__(self, "_loaded", loaded)
        return loaded

    def is_for(self, obj: Any, load: bool = True) -> bool:
        """Whether this entry holds ``obj``; a deferred entry not yet imported is imported only
        with ``load`` or when its module is imported already (so the answer costs no import)."""
        if isinstance(self.target, Deferred) and "_loaded" not in self.__dict__ \
                and not (load or self.target.module in sys.modules):
            return False
        return self.value is obj


class RegistryTable(dict):
    """One registry kind's merged table: ``key -> Entry`` for every usable name.

    A contested key (registered by two plugins) is not among the keys; looking it up
    (``table[key]`` or ``table.get(key)``) raises its :class:`~nkernels.errors.PluginConflictError`.
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        #: contested key -> the entries that claim it, in load order
        self.conflicts: dict[Any, tuple[Entry, ...]] = {}

    def conflict(self, key: Any) -> PluginConflictError:
        """The error for the contested ``key``, naming every plugin that claims it."""
        return _conflict(self.kind, key, self.conflicts[key])

    def __missing__(self, key: Any) -> Entry:
        if key in self.conflicts:
            raise self.conflict(key)
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        """The entry for ``key``, or ``default``; a contested key raises its conflict."""
        if key in self.conflicts:
            raise self.conflict(key)
        return super().get(key, default)


class _State:
    def __init__(self):
        self.lock = threading.RLock()
        self.manager: pluggy.PluginManager | None = None
        #: unique record key (the pluggy name) -> record
        self.infos: dict[str, PluginInfo] = {}
        self.tables: dict[str, RegistryTable] | None = None
        #: refusals already warned about since the last load (each is warned once)
        self.warned: set[tuple[str, str, str, str]] = set()


_state = _State()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _disabled_names() -> set[str]:
    raw = os.environ.get("NKERNELS_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _describe(info: PluginInfo) -> str:
    return f"nkernels plugin {info.name!r} (distribution {info.distribution} {info.version})"


def _report_failure(info: PluginInfo, exc: BaseException) -> None:
    info.status = FAILED
    info.error = f"{type(exc).__name__}: {exc}"
    message = f"{_describe(info)} failed and was skipped: {info.error}"
    if _env_flag("NKERNELS_STRICT_PLUGINS"):
        raise PluginLoadError(message + " (NKERNELS_STRICT_PLUGINS=1 turns this into an error)") from exc
    warnings.warn(message, PluginLoadWarning, stacklevel=4)


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class EmptyPluginError(Exception):
    """A plugin's entry point loaded an object that implements no nkernels hook."""


def _where(plugin: object) -> str:
    """Where a loaded plugin module came from: its file, or a namespace package's folders."""
    file = getattr(plugin, "__file__", None)
    if file:
        return str(file)
    path = getattr(plugin, "__path__", None)
    return ", ".join(map(str, path)) if path is not None else repr(plugin)


def _register_entry_point(pm: pluggy.PluginManager, key: str, plugin: object,
                          infos: dict[str, PluginInfo]) -> None:
    """Register one loaded entry point under ``key``; an object already registered, or one that
    implements no hook, is an error naming what happened."""
    owner = pm.get_name(plugin)
    if owner is not None:
        other = infos[owner]
        raise ValueError(f"it loads the very module {getattr(plugin, '__name__', plugin)!r} that plugin "
                         f"{other.name!r} (distribution {other.distribution} {other.version}) already loaded; "
                         f"two installations of one package? Uninstall one of the two distributions")
    pm.register(plugin, name=key)
    if not any(caller.spec is not None for caller in pm.get_hookcallers(plugin) or ()):
        pm.unregister(name=key)
        raise EmptyPluginError(
            f"its entry point loaded {getattr(plugin, '__name__', plugin)!r} from {_where(plugin)}, which "
            f"implements no nkernels hook, so it registers nothing. A stale folder (for example left in "
            f"site-packages by pip uninstall) may shadow the package: remove it and reinstall the plugin")


def _load() -> None:
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
            # two distributions may use one entry-point name: the second is keyed by its distribution
            key = ep.name if ep.name not in infos else f"{ep.name} ({dist})"
            info = infos[key] = PluginInfo(ep.name, dist, version)
            if ep.name in disabled or dist in disabled:
                info.status = DISABLED
                continue
            try:
                _register_entry_point(pm, key, ep.load(), infos)
            except Exception as exc:  # a plugin may fail in any way; report it, load the rest
                _report_failure(info, exc)
    _state.manager, _state.infos, _state.tables = pm, infos, None
    _state.warned = set()


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
        _state.warned = set()


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


def plugin_infos(load: bool = False) -> list[PluginInfo]:
    """Every known plugin, built-ins first, with status and registrations.

    With ``load``, every :class:`Deferred` registration is imported first, so that a plugin whose
    deferred module fails shows as failed (``nkernels plugins`` does this); without, nothing is imported.
    """
    ensure_loaded()
    if load:
        load_deferred()
    return list(_state.infos.values())


def load_deferred() -> None:
    """Import every :class:`Deferred` registration of every active plugin; one that fails is reported
    (a :class:`~nkernels.errors.PluginLoadWarning`) and its plugin skipped, as at a lookup."""
    for kind in REGISTRY_HOOKS:
        for entry in list(table(kind).values()):
            try:
                entry.value
            except PluginLoadError:
                if _env_flag("NKERNELS_STRICT_PLUGINS"):
                    raise
    ensure_loaded()


def _load_deferred(entry: Entry) -> Any:
    """Import a deferred entry's object and check it; on failure report its plugin (which is then
    skipped as a whole: the tables are collected again without it) and raise PluginLoadError."""
    label = key_label(entry.kind, entry.key)
    try:
        value = entry.target.load()
        _check_value(entry.kind, label, value)
        return value
    except Exception as exc:
        with _state.lock:
            info = _state.infos.get(entry.record)
            if info is not None and info.status == ACTIVE:
                _state.tables = None  # the next use collects the tables again, without this plugin
                _report_failure(info, exc)
        raise PluginLoadError(
            f"the {singular(entry.kind)} {label!r} of nkernels plugin {entry.plugin!r} (distribution "
            f"{entry.distribution} {entry.version}) is registered as {entry.target.target!r}, which failed to "
            f"load: {type(exc).__name__}: {exc}. The plugin was skipped; every other plugin still works. Fix or "
            f"reinstall it, or skip it with NKERNELS_DISABLE_PLUGINS={entry.plugin}") from exc


def _canonical(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


def missing_name_hint(kind: str, name: Any) -> str:
    """Why ``name``, unknown in the ``kind`` registry, is missing and how to get it: the first-party
    distribution that provides it and its state here (not installed, failed, disabled); "" when
    no known plugin provides it."""
    dist = FIRST_PARTY_NAMES.get(kind, {}).get(name) if isinstance(name, str) else None
    if dist is None:
        return ""
    what = f"the {singular(kind)} {name!r} is provided by the plugin distribution {dist}"
    for info in plugin_infos():
        if _canonical(info.distribution) != _canonical(dist):
            continue
        if info.status == FAILED:
            return f"{what}, which is installed but failed to load ({info.error}); fix or reinstall it"
        if info.status == DISABLED:
            return f"{what}, which NKERNELS_DISABLE_PLUGINS skips; remove it from that list"
        return f"{what}, installed here (version {info.version}) without it; upgrade it (pip install -U {dist})"
    if _env_flag("NKERNELS_DISABLE_PLUGIN_AUTOLOAD"):
        return f"{what}, and NKERNELS_DISABLE_PLUGIN_AUTOLOAD keeps every plugin from loading; unset it"
    return f"{what}, which is not installed: install it (pip install {dist}) and try again"


def table(kind: str) -> RegistryTable:
    """The merged table of one registry kind (``name -> Entry``; for kernels ``(op, device) -> Entry``)."""
    ensure_loaded()
    assert _state.tables is not None  # ensure_loaded collects them
    return _state.tables[kind]


def _validate(kind: str, plugin: str, result: Any) -> list[tuple[Any, Any]]:
    """Check one hook's return value and turn it into (key, value) pairs."""
    if kind == "kernels":
        from .kernels import KernelRecord

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
            if not isinstance(value, Deferred):
                _check_value(kind, name.__qualname__, value)
            pairs.append((name, value))
            continue
        if not isinstance(name, str) or not name:
            raise TypeError(f"{REGISTRY_HOOKS[kind]} returned a non-string or empty name {name!r}"
                            + (" (exporters are keyed by a layer's registry name or its class)"
                               if kind == "exporters" else ""))
        if not isinstance(value, Deferred):  # a deferred object is checked when it is imported
            _check_value(kind, name, value)
        pairs.append((name, value))
    return pairs


def _check_value(kind: str, name: str, value: Any) -> None:
    if kind == "layers":
        from ..layers.base import Layer

        if not (isinstance(value, type) and issubclass(value, Layer)):
            raise TypeError(f"layer {name!r} must be a subclass of nkernels.layers.Layer, got {value!r}")
    elif kind == "losses":
        from ..losses import Loss

        if not (isinstance(value, type) and issubclass(value, Loss)):
            raise TypeError(f"loss {name!r} must be a subclass of nkernels.losses.Loss, got {value!r}")
    elif kind == "schemes":
        from ..schemes.base import Scheme

        if not (isinstance(value, type) and issubclass(value, Scheme)):
            raise TypeError(f"scheme {name!r} must be a subclass of nkernels.schemes.Scheme, got {value!r}")
    elif not callable(value):
        raise TypeError(f"{singular(kind)} {name!r} must be a class or a callable, got {value!r}")


def key_label(kind: str, key: Any) -> str:
    """A registry key as text: ``op@device`` for kernels, ``module.Class`` for a class key, else the name."""
    if kind == "kernels":
        return f"{key[0]}@{key[1]}"
    if isinstance(key, type):
        return f"{key.__module__}.{key.__qualname__}"
    return str(key)


def _conflict(kind: str, key: Any, entries: tuple[Entry, ...]) -> PluginConflictError:
    what = f"kernel {key[0]!r} on {key[1]} at priority {entries[0].value.priority}" if kind == "kernels" \
        else f"{singular(kind)} {key_label(kind, key)!r}"
    providers = " and ".join(f"{e.plugin!r} (distribution {e.distribution} {e.version})" for e in entries)
    last = entries[-1]
    # the plugin name says which one to skip, unless two plugins share it: then the distribution does
    skip = last.plugin if sum(e.plugin == last.plugin for e in entries) == 1 else last.distribution
    return PluginConflictError(
        f"{what} is registered by {len(entries)} plugins: {providers}. nkernels never overwrites one with "
        f"another, so this name cannot be used until one goes (every other name works). Resolve it by "
        f"uninstalling one distribution (pip uninstall {last.distribution}) or by skipping one plugin with "
        f"NKERNELS_DISABLE_PLUGINS={skip}" + (", or give one kernel a higher priority." if kind == "kernels" else "."))


def _collect(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> dict[str, RegistryTable]:
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
                staged.pop(impl.plugin_name, None)
                continue
            staged.setdefault(impl.plugin_name, {})[kind] = pairs
    claims: dict[str, dict[Any, list[Entry]]] = {kind: {} for kind in REGISTRY_HOOKS}
    owners: dict[int, PluginInfo] = {}  # id(entry) -> its plugin
    for key_of_plugin, info in infos.items():  # built-ins first, then entry points, in discovery order
        info.registered, info.conflicts, info.refused = {}, [], []
        if info.status != ACTIVE:
            continue
        for kind, pairs in staged.get(key_of_plugin, {}).items():
            for key, value in pairs:
                entry = Entry(value, info.name, info.distribution, info.version, info.builtin, kind, key,
                              key_of_plugin)
                owners[id(entry)] = info
                claims[kind].setdefault(key, []).append(entry)
    tables = {kind: RegistryTable(kind) for kind in REGISTRY_HOOKS}
    for kind, by_key in claims.items():
        for key, entries in by_key.items():
            _settle(tables[kind], key, entries, owners)
    return tables


def _settle(target: RegistryTable, key: Any, entries: list[Entry], owners: dict[int, PluginInfo]) -> None:
    """Decide who owns ``key``: the built-in (a name) or the highest priority (a kernel); a tie
    between plugins makes the key contested, and a plugin refused in favour of a built-in is warned."""
    kind, label = target.kind, key_label(target.kind, key)
    if kind == "kernels":
        top = max(e.value.priority for e in entries)
        entries = [e for e in entries if e.value.priority == top]  # lower priorities give way silently
    builtins = [e for e in entries if e.builtin]
    if len(builtins) == 1:
        for entry in entries:
            if not entry.builtin:
                _refuse(kind, label, entry, owners[id(entry)])
        entries = builtins
    if len(entries) == 1:
        target[key] = entries[0]
        owners[id(entries[0])].registered.setdefault(kind, []).append(label)
        return
    target.conflicts[key] = tuple(entries)
    for entry in entries:
        others = ", ".join(e.distribution for e in entries if e is not entry)
        owners[id(entry)].conflicts.append(f"{kind} {label} (also registered by {others})")


def _refuse(kind: str, label: str, entry: Entry, info: PluginInfo) -> None:
    info.refused.append(f"{kind} {label}")
    once = (info.distribution, info.name, kind, label)
    if once in _state.warned:
        return
    _state.warned.add(once)
    if kind == "kernels":
        reason = (f"registers kernel {label} at priority {entry.value.priority}, the built-in's priority; the "
                  f"built-in kernel stays. A plugin kernel overrides a built-in only with a higher priority")
    else:
        reason = (f"registers the {singular(kind)} {label!r}, a name reserved for nkernels' built-in; that "
                  f"registration was refused and the built-in stays (the plugin's other names still load). "
                  f"The plugin must use another name")
    warnings.warn(f"{_describe(info)} {reason}.", PluginLoadWarning, stacklevel=5)


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
