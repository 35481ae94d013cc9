"""The device trainer: mini-batches on the GPU, with the data and the state kept there."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..compiled.step import AUGMENT_STRIDE
from ..plugins.kernels import kernel
from ..runtime import devices
from .layerwise import TrainerSettings, trained_parameters
from .step_plan import NotPlannable, ParameterStore, StepPlan


class DeviceTrainer(TrainerSettings):
    """Runs mini-batches on the GPU: the data, the parameters and the optimizer state stay there.

    ``run`` takes the same arguments as the other trainers, with ``X2d`` and ``Y`` already on the
    device (:meth:`put` moves them, once per run of a scheme); :meth:`run_epoch` runs a whole
    epoch (what :func:`nkernels.trainers.run_epoch_batches` calls for it).

    The steps follow a :class:`~nkernels.trainers.step_plan.StepPlan` built once per batch size:
    parameters, gradients and optimizer state in flat device buffers, every activation and
    workspace allocated once, the update one fused launch, BatchNorm's running statistics
    updated on the device. Inside an epoch nothing is allocated, copied or waited for: the
    shuffled order goes over once at its start, and the losses and correct counts come back
    once at its end, callbacks included (a per-batch callback's ``logs["loss"]`` is copied
    back only when it reads it). A loss that stops being finite ends the run at that batch, as
    on the CPU (the epoch's later batches ran on the device, but the scheme restores the
    state of the epoch's start).

    A model with a layer that codes its passes in Python (no pass description) trains one
    layer call at a time instead, which allocates per step.
    """

    def __init__(self, model, loss, optimizer, sample_shape, augment: tuple[int, int] | None = None,
                 input_grad: bool = False, trainable_layers: Any = None):
        super().__init__(model, loss, optimizer, sample_shape, augment, input_grad, trainable_layers)
        self._buffers: dict = {}
        self._plans: dict = {}
        self._store: ParameterStore | None = None
        self.plan_error: str | None = None

    @staticmethod
    def put(array: Any) -> Any:
        """``array`` on the GPU (a no-op for a GPU array)."""
        return devices.to_device(array)

    @property
    def gather(self):
        """The gather kernels (rows, labels) of a batch."""
        return kernel("gather_rows", "cuda"), kernel("gather_labels", "cuda")

    @property
    def translate(self):
        """The random-translation kernel."""
        return kernel("random_translate", "cuda")

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any):
        key = (name, shape, np.dtype(dtype).str)
        if key not in self._buffers:
            self._buffers[key] = devices.empty(shape, dtype, "cuda")
        return self._buffers[key]

    def _vector(self, name: str, size: int, dtype: Any):
        """The first ``size`` elements of a 1-D device array kept across calls (it grows, never shrinks)."""
        dtype = np.dtype(dtype)
        have = self._buffers.get(name)
        if have is None or have.dtype != dtype or have.size < size:
            self._buffers[name] = have = devices.empty(max(size, 1), dtype, "cuda")
        return have[:size]

    # -- the plan -------------------------------------------------------------------------------
    def plan(self, X2d, Y, batch_size: int) -> StepPlan | None:
        """The step plan at ``batch_size`` (built on first use), or None when the model cannot run
        as one (``plan_error`` says why)."""
        if self.plan_error is not None:
            return None
        try:
            if self._store is None or not self._store.matches():
                self._store = ParameterStore(self.model, self.optimizer, self.trainable_layers)
                self._plans = {}
            key = (batch_size, np.dtype(X2d.dtype).str, np.dtype(Y.dtype).str, tuple(Y.shape[1:]))
            if key not in self._plans:
                self._plans[key] = StepPlan(self, self._store, X2d, Y, batch_size)
        except NotPlannable as exc:
            self.plan_error = str(exc)
            return None
        return self._plans[key]

    def _begin(self, X2d, Y, order, n_results: int, plans: list[StepPlan]):
        """Before a run of steps: the order on the device, the results' arrays, the plans bound to them."""
        order_dev = self._vector("order", len(order), np.int64)
        devices.assign(order_dev, np.ascontiguousarray(order, dtype=np.int64))
        losses = self._vector("losses", n_results, np.float64)
        counts = self._vector("counts", n_results, np.int64)
        assert self._store is not None  # a plan exists
        self._store.adopt()
        self._store.upload_buffers()
        for plan in plans:
            plan.bind(losses, counts)
        return order_dev, losses, counts

    def _finish(self, losses, counts):
        """After a run of steps: the results and the device-updated buffers back on the host."""
        assert self._store is not None
        self._store.download_buffers()
        return losses.copy_to_host(), counts.copy_to_host()

    # -- runs -----------------------------------------------------------------------------------
    def run(self, X2d, Y, order, start, n_batches, batch_size):
        """Same contract as :meth:`nkernels.trainers.CompiledTrainer.run` (without ``last_batch``)."""
        start, n_batches, batch_size, _ = self.check_run(X2d, Y, order, start, n_batches, batch_size)
        plan = self.plan(X2d, Y, batch_size)
        if plan is None:
            return self._run_layer_by_layer(X2d, Y, order, start, n_batches, batch_size)
        order_dev, losses, counts = self._begin(X2d, Y, order, n_batches, [plan])
        for b in range(n_batches):
            plan.step(X2d, Y, order_dev, start + b * batch_size, b)
        return _until_not_finite(*self._finish(losses, counts), n_batches)

    def run_epoch(self, X2d, targets, order, batch_size: int, events, check, has_accuracy: bool) -> dict | None:
        """One epoch as :func:`nkernels.trainers.run_epoch_batches` runs it, the whole of it on the
        device (see the class's docstring); None when the model cannot run as a step plan."""
        from . import answers_per_sample

        n = len(X2d)
        full, rest = divmod(n, batch_size)
        runs: list[tuple[Any, int, int]] = []
        if full:
            plan = self.plan(X2d, targets, batch_size)
            runs += [(plan, b * batch_size, batch_size) for b in range(full)]
        if rest:
            runs.append((self.plan(X2d, targets, rest), full * batch_size, rest))
        plans = list({id(plan): plan for plan, _, _ in runs}.values())
        if any(plan is None for plan in plans):
            return None
        order_dev, losses, counts = self._begin(X2d, targets, order, len(runs), plans)
        for b, (plan, first, size) in enumerate(runs):
            plan.step(X2d, targets, order_dev, first, b)
            if events.wants_batches:
                events.on_batch_end(b, DeviceBatchLogs(losses, b, size))
        losses, counts = self._finish(losses, counts)
        sizes = np.array([size for _, _, size in runs], np.float64)
        _, _, done = _until_not_finite(losses, counts, len(runs))
        check(done, len(runs))
        logs = {"loss": float((losses * sizes).sum()) / n}
        if has_accuracy:
            logs["accuracy"] = int(counts.sum()) / (n * answers_per_sample(targets))
        return logs

    def _run_layer_by_layer(self, X2d, Y, order, start, n_batches, batch_size):
        """The steps of a model that cannot run as a plan: one layer call at a time (allocates)."""
        order = devices.to_device(np.ascontiguousarray(order, dtype=np.int64))
        losses = devices.zeros(n_batches, np.float64, "cuda")
        correct = devices.zeros(n_batches, np.int64, "cuda")
        xb = self._buffer("x", (batch_size, X2d.shape[1]), X2d.dtype)
        labels = Y.ndim == 1
        yb = self._buffer("y", (batch_size,) + tuple(Y.shape[1:]), Y.dtype)
        gather_rows, gather_labels = self.gather
        for b in range(n_batches):
            first = start + b * batch_size
            gather_rows(X2d, order, first, xb)
            (gather_labels if labels else gather_rows)(Y, order, first, yb)
            x = xb.reshape(batch_size, *self.sample_shape)
            if self.augment is not None:
                shifted = self._buffer("shifted", x.shape, x.dtype)
                offset = (self.optimizer.steps + 1) * AUGMENT_STRIDE
                self.translate(x, self.augment[0], self.augment[1], offset, shifted)
                x = shifted
            out = self.model.forward(x, training=True)
            self.loss.forward_into(out, yb, losses, correct, b)
            self.model.backward(self.loss.backward(), input_grad=self.input_grad)
            self.optimizer.step(*trained_parameters(self.model, self.trainable_layers))
        return _until_not_finite(losses.copy_to_host(), correct.copy_to_host(), n_batches)


def _until_not_finite(losses, correct, n_batches):
    """``(losses, correct, done)`` cut at the first loss that is not finite."""
    bad = np.flatnonzero(~np.isfinite(losses[:n_batches]))
    if bad.size:
        return losses[:bad[0]], correct[:bad[0]], int(bad[0])
    return losses[:n_batches], correct[:n_batches], n_batches


class DeviceBatchLogs(dict):
    """A per-batch callback's ``logs`` whose ``"loss"`` stays on the device until read: reading it
    (or listing the items) copies one float64 back, which waits for the device."""

    def __init__(self, losses, index: int, size: int):
        super().__init__(size=size)
        self._source: tuple[Any, int] | None = (losses, index)

    def _load(self) -> None:
        if self._source is not None:
            losses, index = self._source
            self._source = None
            dict.__setitem__(self, "loss", float(losses[index:index + 1].copy_to_host()[0]))
            # keep "loss" first, as the CPU's logs have it
            size = dict.pop(self, "size")
            dict.__setitem__(self, "size", size)

    def __getitem__(self, key):
        if key == "loss":
            self._load()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if key == "loss":
            self._load()
        return dict.get(self, key, default)

    def __contains__(self, key) -> bool:
        return key == "loss" or dict.__contains__(self, key)

    def __iter__(self):
        self._load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + (self._source is not None)

    def keys(self):
        self._load()
        return dict.keys(self)

    def items(self):
        self._load()
        return dict.items(self)

    def values(self):
        self._load()
        return dict.values(self)

    def copy(self) -> dict:
        self._load()
        return dict(self.items())

    def __eq__(self, other) -> bool:
        self._load()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._load()
        return dict.__repr__(self)


def step_counts(model, X, y, *, loss: Any = None, optimizer: Any = "adam", batch_size: int = 64,
                batches: int = 4, augment: tuple[int, int] | None = None, **optimizer_options: Any) -> dict:
    """Launches, allocations, copies and host waits of one training step of ``model`` on the GPU.

    Trains a copy of ``model`` (moved to the GPU) on the first ``batches * batch_size`` rows of
    ``X``, ``y`` with the device trainer: once to build the plan and compile, then a run of one
    batch and a run of ``batches`` batches under
    :func:`nkernels.runtime.counting.count_device_work`. Returns ``{"per_step": {...},
    "per_run": {...}, "planned": bool, "plan_error": str | None}``: ``per_step`` the counts each
    added step costs (what a step does: launches, and zero allocations, copies and waits when
    planned), ``per_run`` what a run of steps costs besides (the order copied over, the results
    copied back). For the device scripts (``benchmarks/gpu/``); works under the simulator too.
    """
    from ..losses import get_loss
    from ..optimizers import get_optimizer
    from ..runtime.counting import count_device_work

    X = np.asarray(X)
    n = batches * batch_size
    if len(X) < n:
        raise ValueError(f"step_counts needs {n} rows (batches * batch_size), got {len(X)}")
    model = model.copy()
    if model.device != "cuda":
        model.to("cuda")
    y = np.asarray(y)
    if loss is None:
        loss = "cross_entropy" if y.dtype.kind in "iu" else "mse"
    loss = get_loss(loss)
    opt = get_optimizer(optimizer, **optimizer_options).fresh()
    X = np.ascontiguousarray(X[:n], dtype=model.input_dtype)
    out_shape = model.output_shape(X.shape)
    targets = loss.prepare_targets(y[:n], out_shape, model.dtype)
    if loss.target_kind == "values":
        targets = targets.reshape(n, -1)
    trainer = DeviceTrainer(model, loss, opt, X.shape[1:], augment)
    X2d, Y = trainer.put(X.reshape(n, -1)), trainer.put(targets)
    order = np.arange(n)
    trainer.run(X2d, Y, order, 0, batches, batch_size)  # build the plan, compile every kernel
    with count_device_work() as one:
        trainer.run(X2d, Y, order, 0, 1, batch_size)
    with count_device_work() as many:
        trainer.run(X2d, Y, order, 0, batches, batch_size)
    one_d, many_d = one.as_dict(), many.as_dict()
    extra = max(batches - 1, 1)
    per_step = {k: (many_d[k] - one_d[k]) / extra for k in one_d}
    per_run = {k: one_d[k] - per_step[k] for k in one_d}
    return {"per_step": per_step, "per_run": per_run, "planned": trainer.plan_error is None,
            "plan_error": trainer.plan_error}
