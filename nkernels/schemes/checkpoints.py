"""Training checkpoints: everything that decides the numbers of the rest of a run, in one file.

A checkpoint is a model file (:mod:`nkernels.export.io`: weights, buffers, the optimizer's state)
whose extras hold where the run stands (stage, epoch), the random generator's state, the History,
every callback's state and the scheme's own (:meth:`~nkernels.schemes.Scheme.checkpoint_state`).
A run resumed from it ends bit for bit where the uninterrupted run would have.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..runtime import devices

CHECKPOINT_FILE = "checkpoint.safetensors"
_CALLBACK, _SCHEME = "callback.", "scheme."


@dataclass
class Position:
    """Where a run stands: the ``stage`` to run next and the epochs of it already done
    (``stage_epoch``), the epochs done in all (``epoch``) and, when loaded from a checkpoint,
    the saved optimizer (``type``, ``config`` and ``state``)."""

    stage: int = 0
    stage_epoch: int = 0
    epoch: int = 0
    optimizer: dict[str, Any] | None = None


def checkpoint_path(scheme: Any) -> str:
    """The checkpoint file of ``scheme``'s ``checkpoint_dir``."""
    return os.path.join(scheme.checkpoint_dir, CHECKPOINT_FILE)


def save_checkpoint(run: Any, position: Position) -> None:
    """Write the run's checkpoint (atomically: a crash leaves the previous one whole)."""
    from ..export.io import save

    states, callback_arrays = run.events.states()
    scheme_state, scheme_arrays = run.scheme.checkpoint_state(run)
    extra = {"scheme": run.scheme.name, "rng": run.rng.bit_generator.state, "history": run.history.as_dict(),
             "callbacks": states, "augment": None if run.augment is None else list(run.augment),
             "scheme_state": scheme_state,
             "position": {"stage": position.stage, "stage_epoch": position.stage_epoch, "epoch": position.epoch}}
    arrays = {**{_CALLBACK + k: v for k, v in callback_arrays.items()},
              **{_SCHEME + k: np.ascontiguousarray(devices.to_host(v)) for k, v in scheme_arrays.items()}}
    save(run.model, checkpoint_path(run.scheme), optimizer=run.optimizer, extra=extra, arrays=arrays)


def load_checkpoint(run: Any, stages: list) -> Position:
    """Restore the run from its checkpoint, if there is one (a fresh start otherwise) and return
    where it stands. The model, the random generator, the History, the callbacks and the scheme's
    own state are restored here; the optimizer's when its stage starts."""
    from ..export.io import read_checkpoint, restore_weights
    from ..history import History

    path = checkpoint_path(run.scheme)
    if not os.path.exists(path):
        return Position()
    checkpoint = read_checkpoint(path)
    extra = checkpoint.extra
    if extra is None or ("position" not in extra and "epoch" not in extra):
        raise ValueError(f"{path} is a saved model, not a training checkpoint")
    saved_scheme = extra.get("scheme", run.scheme.name)
    if saved_scheme != run.scheme.name:
        raise ValueError(f"{path} is a checkpoint of the {saved_scheme!r} scheme, not of {run.scheme.name!r}; "
                         f"resume with the same scheme or use another checkpoint_dir")
    if "position" in extra:
        position = Position(**extra["position"])
    else:  # a checkpoint of nkernels 0.1: one stage, the epochs done
        position = Position(0, int(extra["epoch"]), int(extra["epoch"]))
        if extra.get("stopped"):
            position = Position(1, 0, int(extra["epoch"]))
    if position.stage > len(stages) or (position.stage < len(stages) and
                                        position.stage_epoch > stages[position.stage].epochs):
        raise ValueError(f"{path} stands at stage {position.stage + 1}, epoch {position.stage_epoch}, beyond this "
                         f"run's plan ({len(stages)} stage(s)); resume with the same options and epochs")
    restore_weights(run.model, checkpoint, path)
    run.rng.bit_generator.state = extra["rng"]
    arrays = checkpoint.arrays
    callback_arrays = {k[len(_CALLBACK):]: v for k, v in arrays.items() if k.startswith(_CALLBACK)}
    if "position" not in extra:  # 0.1 stored the callbacks' arrays without a prefix
        callback_arrays = dict(arrays)
    run.events.load_states(extra["callbacks"], callback_arrays)
    run.history = History(extra["history"])
    run.events.context.history = run.history
    if extra.get("augment") is not None:
        run.augment = tuple(int(v) for v in extra["augment"])
    elif run.augment is not None and "augment_seed" in extra:
        run.augment = (run.augment[0], int(extra["augment_seed"]))
    run.scheme.restore_state(run, extra.get("scheme_state") or {},
                             {k[len(_SCHEME):]: v for k, v in arrays.items() if k.startswith(_SCHEME)})
    if checkpoint.optimizer is not None and position.stage_epoch > 0:
        position.optimizer = {"type": checkpoint.optimizer["type"], "config": checkpoint.optimizer["config"],
                              "state": checkpoint.optimizer_state()}
    return position
