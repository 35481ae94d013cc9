"""The ``nkernels`` command (:mod:`~nkernels.cli.commands`) and what only it uses: the model presets
(:mod:`~nkernels.cli.presets`), plotting (:mod:`~nkernels.cli.plotting`) and the speed comparisons
against PyTorch and JAX (:mod:`~nkernels.cli.bench`, :mod:`~nkernels.cli.bench_jax`).
"""
from typing import Any


def main(argv: Any = None) -> int:
    """Run the ``nkernels`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    from .commands import main as run

    return run(argv)


__all__ = ["main"]
