"""The built-in ``backprop`` scheme: mini-batch gradient descent through the whole chain."""
from __future__ import annotations

from typing import Any

from ..losses import get_loss
from ..optimizers import get_optimizer
from ..trainers import DeviceTrainer, LayerwiseTrainer, make_trainer
from ..validation import check_bool
from .base import Capabilities, Scheme


class Backprop(Scheme):
    """Back-propagation with SGD (momentum, Nesterov), Adam or AdamW.

    ``optimizer`` is a name or an :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other
    optimizer options (``momentum``, ``nesterov``, ``weight_decay``, ``betas``, ``eps``,
    ``clip_norm``, ``max_norm``) go to it. Each ``fit`` trains with a fresh copy of it
    (:meth:`~nkernels.optimizers.Optimizer.fresh`: no moments, step 0), so a scheme object used
    again trains a new model exactly as a new one would; callbacks reach the run's optimizer
    as ``context.optimizer``. ``loss`` defaults to softmax cross-entropy for integer
    labels and MSE otherwise. ``compiled=False`` forces the layer-by-layer path (same numbers).
    ``split_batches`` chooses the compiled path's split mode (two threads, half a batch each;
    see :class:`~nkernels.trainers.CompiledTrainer`): None lets it decide from the size of a
    batch, False keeps whole batches (the layer path's numbers bit for bit), True asks for it.

    The options every scheme shares (:class:`~nkernels.schemes.Scheme`): ``schedule`` is
    ``"step"``, ``"cosine"``, ``"plateau"`` or a callback from :mod:`nkernels.schedules`;
    ``augment_shift`` shifts each training image by up to that many pixels; ``checkpoint_dir``
    saves a checkpoint after every epoch, and ``resume=True`` continues from it: the resumed run
    ends with the same weights as an uninterrupted one (with ``resume=True`` and no checkpoint
    yet, training starts afresh, so the same call can be repeated until the run is done). When
    the loss or a weight stops being finite, training stops with a
    :class:`~nkernels.TrainingDivergedError` and the weights, buffers and optimizer state are
    those of the start of that epoch. On a model moved to the GPU the data, the parameters and
    the optimizer state stay there for the whole run.
    """

    name = "backprop"
    default_epochs = 30  # the MLP preset's: 10 epochs left an MLP on digits at 96.5%, 30 reach 97.0-97.8%
    capabilities = Capabilities(labels="required", yields=("classifier", "regressor", "extractor"),
                                devices=("cpu", "cuda"))

    def __init__(self, optimizer: Any = "adam", lr: float | None = None, loss: Any = None, compiled: bool = True,
                 split_batches: bool | None = None, *, checkpoint_dir: Any = None, resume: bool = False,
                 schedule: Any = None, augment_shift: int = 0, **optimizer_options: Any):
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule,
                         augment_shift=augment_shift)
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = check_bool(compiled, "compiled")
        if split_batches and not self.compiled:
            raise ValueError("split_batches=True needs the compiled path (compiled=True)")
        self.split_batches = None if split_batches is None else check_bool(split_batches, "split_batches")

    def setup(self, run) -> None:
        run.optimizer = self.optimizer.fresh()
        trainer = self.trainer = make_trainer(run.model, run.loss, run.optimizer, run.X.shape[1:], run.batch_size,
                                              self.compiled, run.augment, self.split_batches)
        self.data = run.X.reshape(run.n_samples, -1), run.rows_of_targets()
        if isinstance(trainer, DeviceTrainer):  # the data moves to the GPU once, for the whole run
            self.data = trainer.put(self.data[0]), trainer.put(self.data[1])
        run.info.update(compiled=not isinstance(trainer, (LayerwiseTrainer, DeviceTrainer)),
                        split_batches=bool(getattr(trainer, "split", False)))

    def start_stage(self, run, stage) -> None:
        self.trainer.augment = run.augment  # a resume restores the run's augmentation seed after setup

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        return run.train_batches(self.trainer.run, *self.data)

    def teardown(self, run) -> None:
        for name in ("trainer", "data"):  # a scheme object keeps its configuration, not a run's buffers
            vars(self).pop(name, None)
