"""The plugin system, in one package.

- :mod:`~nkernels.plugins.hookspecs`: the hooks a plugin implements, each with a worked example;
- :mod:`~nkernels.plugins.marker`: ``hookimpl``, the marker of their implementations;
- :mod:`~nkernels.plugins.manager`: discovery and loading (one plugin at a time, so a broken or
  clashing one never disables the rest), the merged registry tables, observer notifications;
- :mod:`~nkernels.plugins.lazy`: lazy public names for a plugin package (with
  :class:`~nkernels.plugins.manager.Deferred` registrations, loading a plugin imports none of its modules);
- :mod:`~nkernels.plugins.kernels`: kernel records (which function runs an op on a device);
- :mod:`~nkernels.plugins.builtins`: nkernels' own layers, schemes, datasets, kernels and
  exporters, registered through the same hooks as any plugin.

The user-facing registries are in :mod:`nkernels.registry`.
"""
from .manager import (ACTIVE, BUILTIN_PLUGINS, DISABLED, ENTRY_POINT_GROUP, FAILED, FIRST_PARTY_NAMES, PROJECT,
                      REGISTRY_HOOKS, Deferred, Entry, PluginInfo, RegistryTable, ensure_loaded, has_observers,
                      key_label, load_deferred, missing_name_hint, notify, plugin_infos, register_plugin, reset,
                      singular, table, unregister_plugin)
from .lazy import lazy_attributes
from .marker import hookimpl

__all__ = ["ACTIVE", "FAILED", "DISABLED", "PROJECT", "ENTRY_POINT_GROUP", "BUILTIN_PLUGINS", "REGISTRY_HOOKS",
           "FIRST_PARTY_NAMES", "Deferred", "Entry", "PluginInfo", "RegistryTable", "ensure_loaded", "reset",
           "register_plugin", "unregister_plugin", "plugin_infos", "load_deferred", "table", "singular", "key_label",
           "missing_name_hint", "notify", "has_observers", "hookimpl", "lazy_attributes"]
