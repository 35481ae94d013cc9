"""Exceptions raised by nkernels. Each is a ``ValueError`` or ``TypeError`` where bad input caused it."""


class PluginError(Exception):
    """Base class for plugin-loading problems."""


class PluginLoadError(PluginError, ImportError):
    """A plugin failed to load and ``NKERNELS_STRICT_PLUGINS=1`` asked for an error."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to load; it was skipped and everything else loaded."""


class PluginConflictError(PluginError, ValueError):
    """Two plugins registered the same name in one registry."""


class NotFittedError(ValueError):
    """An operation needs state that an earlier call should have produced (e.g. backward before forward)."""


class TrainingDivergedError(ValueError):
    """The loss or a weight became NaN or inf; the last finite weights were restored."""


class CorruptFileError(ValueError):
    """A model file is corrupt, truncated or not an nkernels file."""


class DeviceUnavailableError(RuntimeError, ValueError):
    """The requested device (e.g. ``cuda``) cannot be used on this machine."""


class DistributedUnavailableError(ImportError, ValueError):
    """``workers``/``scheduler`` were given but Dask distributed is not installed."""
