"""The hook-implementation marker plugins use: ``@nkernels.hookimpl``."""
import pluggy

hookimpl = pluggy.HookimplMarker("nkernels")
