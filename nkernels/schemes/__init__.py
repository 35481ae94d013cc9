"""Training schemes, and the toolkit every scheme is built on.

- :class:`Scheme`: the base class; a scheme writes its setup and its epoch (or its stages), and
  inherits the rest through :meth:`Scheme.fit`;
- :class:`Capabilities`: what a scheme declares it supports (labels, what it yields, a learning
  rate, mini-batches, devices, Dask);
- :class:`Stage`: a part of a run with an optimizer of its own;
- :class:`TrainingRun`: one ``fit``: the checked data, the run's state and the services
  (:meth:`TrainingRun.train_batches`), and the epoch loop with callbacks, validation,
  checkpoints, resume and the divergence guard; :class:`Diverged` signals divergence from
  inside an epoch;
- :class:`Backprop`: the built-in ``backprop`` scheme.

The checks schemes share are in :mod:`nkernels.validation`; the conformance class a new scheme
runs its tests with is :class:`nkernels.testing.SchemeConformance`.
"""
from .backprop import Backprop
from .base import Capabilities, Scheme, Stage
from .checkpoints import CHECKPOINT_FILE
from .run import Diverged, TrainingRun

__all__ = ["Scheme", "Capabilities", "Stage", "TrainingRun", "Diverged", "Backprop", "CHECKPOINT_FILE"]
