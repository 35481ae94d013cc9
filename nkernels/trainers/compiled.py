"""The compiled trainer: whole runs of mini-batches in one compiled call, and its split mode."""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..compiled.step import BATCH_SIZED_KINDS, FIXED_ARGS, StepSource, describe, generate
from ..kernels.cpu import handoff
from ..passes.interpret import view
from ..passes.ir import VIEW, LayerPasses
from ..runtime import devices
from ..runtime.cache import load_generated_module
from .layerwise import TrainerSettings
from ..runtime.threads import (
    THREAD_SAFE_LAYER_HINT, THREAD_SAFE_LAYERS, blas_single_threaded, calls_parallel_code, threading_layer)

#: the least multiply-adds per batch for which the split mode is chosen by itself. Above it the two
#: halves on two cores beat the kernels' own two-thread regions, whose products and planes move
#: between the cores' caches at every pass; below it the half batches are too small to pay for the
#: join of their gradients. Measured on 2 cores (alternating whole and split in one process, µs a
#: step): MLP 64-32-10 at batch 64 (152K) 34 against 26, MLP 64-64-10 (303K) 40 against 35, MLP
#: 64-128-128-10 at batch 32 (827K) 78 against 78, the digits CNN (754K) 164-171 against 124-127, the
#: digits MLP (1.65M) 119-121 against 96-99, the transformer preset (4.3M) 999-1,043 against 834-903,
#: LSTM(8->64) over 8 steps (9.5M) 395-404 against 379-398; a 16-16-4 MLP at batch 32 (10K) 4.4
#: against 9.7.
SPLIT_MIN_MULTIPLY_ADDS = 500_000


def multiply_adds_per_sample(model, sample_shape) -> int:
    """A rough count of one sample's multiply-adds in the forward pass: each layer's weight
    matrices (parameters of 2 or more dimensions) once per position they are applied at (the
    time steps of a sequence, the pixels of an image, once for a flat vector)."""
    total, shape = 0, (1,) + tuple(sample_shape)
    for layer in model.layers:
        weights = sum(p.size for p in layer.params.values() if p.ndim >= 2)
        positions = shape[1] if len(shape) == 3 else int(np.prod(shape[2:])) if len(shape) == 4 else 1
        total += weights * positions
        shape = tuple(layer.output_shape(shape))
    return total


class CompiledTrainer(TrainerSettings):
    """Runs mini-batches of a Sequential's training in one compiled call per run of batches.

    Build it with :meth:`build`, which returns ``None`` when some layer, the loss or a kernel
    has no compiled form; the caller then drives the model layer by layer.

    **Split mode.** BLAS runs on one thread (:mod:`nkernels.runtime.threads`); the dense, recurrent,
    attention and conv kernels share a whole batch's work between Numba's threads themselves, which is
    the faster way up to :data:`SPLIT_MIN_MULTIPLY_ADDS` multiply-adds a batch. Above it, in split mode
    each batch is cut into two halves: a second thread computes one half's gradients while the calling
    thread computes the other's (both in a compiled ``nogil`` loop over the run's batches, each with
    its own workspaces and gradients, each running its ``prange`` kernels on one thread), then each
    thread updates parameters and optimizer state of its own from both, weighted by the halves' sizes
    (Adam's and SGD's updates join the two as they read them, 2-3 µs a batch less for the digits MLP
    with Adam than a join before it; clipping and plugins' update kernels join first): the model's on
    the calling thread, copies refreshed at the start of every run on the second. The two updates are
    the same operations on the same numbers, so the copies stay equal bit for bit, and neither thread
    reads parameters the other one has just written (those moved between the cores' caches at every
    step: the digits MLP's split step took ~85 µs with each thread updating half of the parameters, ~76
    µs with each updating all of its own; on a Zen 5 guest in 2026-12 Adam's update in parts took the
    bench MLP's batch the same 34-35 µs and the transformer preset's 3.5% longer). Within a run the two
    threads hand each batch over by polling a counter (waking a sleeping thread cost ~50 µs a batch
    here), yielding the CPU between reads so that a busy machine still runs its other threads
    (:mod:`nkernels.kernels.cpu.handoff`); between two runs of one trainer on the same data (an
    epoch and the next) the second thread waits for the next the same way for ~2 ms, then sleeps (one
    for every thread that runs trainers: :func:`second_thread_of_this_thread`). The numbers equal the whole-batch step's
    up to float rounding (the sums run in another order). It is chosen when no layer couples the
    samples of a batch (BatchNorm: ``Layer.couples_batch``), the layers keep no state between steps
    (dropout's counter), there is no augmentation, Numba has 2 or more threads, its threading layer
    lets two threads run parallel kernels at once (``omp`` or ``tbb``; on ``workqueue`` only steps
    without parallel kernels run split) and a batch holds at least :data:`SPLIT_MIN_MULTIPLY_ADDS`
    multiply-adds; ``split_batches`` forces it on or off.
    """

    def __init__(self, model, loss, optimizer, sample_shape, step: StepSource, module, augment=None,
                 split: bool = False, input_grad: bool = False, trainable_layers: Any = None):
        super().__init__(model, loss, optimizer, sample_shape, augment, input_grad, trainable_layers)
        self.step = step
        self.function = module.run_batches
        self._split_loop = module.run_split_batches
        self._serving: _Serving | None = None
        self.split = split
        self._buffers: dict[tuple[int, int], list] = {}
        self._sized_buffers: dict[tuple[int, int], list] = {}
        self._activations: dict[tuple[int, int], tuple[list, list]] = {}
        self._sized: dict[tuple[int, int], tuple] = {}  # each replica's workspaces, targets and raw input
        self._private_arrays: dict[tuple, np.ndarray] = {}
        self._split_runs: dict[tuple[int, int], tuple[list, list]] = {}
        self._copies: list[tuple[np.ndarray, np.ndarray]] = []
        self._layouts: dict[int, tuple[list, list[tuple[int, ...]]]] = {}
        self._loss_spaces: dict | None = None

    @classmethod
    def build(cls, model, loss, optimizer, sample_shape, batch_size: int,
              augment: tuple[int, int] | None = None, split_batches: bool | None = None,
              input_grad: bool = False, trainable_layers: Any = None) -> "CompiledTrainer | None":
        """A trainer for ``model`` on samples of ``sample_shape``, or None if it has no compiled form.

        ``augment`` is ``(max_shift, seed)`` for random translations of image batches.
        ``split_batches``: None chooses the split mode (see the class) by itself; True asks for
        it (a ValueError if the model cannot run split); False keeps whole batches.
        ``input_grad`` also computes the first layer's input gradient (:meth:`input_gradient`).
        ``trainable_layers`` (layer indices, None for all) updates only those layers' parameters.
        """
        step = generate(model, loss, optimizer, (batch_size,) + tuple(sample_shape), augment is not None,
                        input_grad, trainable_layers)
        if step is None:
            return None
        module = load_generated_module(step.source, "steps", "nkernels_step")
        why_not = cls._why_not_split(step, augment, module, model) if split_batches is not False else ""
        if split_batches and why_not:
            raise ValueError(f"split_batches=True: this step cannot run split, {why_not}")
        if split_batches is None:
            split_batches = not why_not and batch_size >= 2 and \
                batch_size * multiply_adds_per_sample(model, sample_shape) >= SPLIT_MIN_MULTIPLY_ADDS
        return cls(model, loss, optimizer, sample_shape, step, module, augment, bool(split_batches), input_grad,
                   trainable_layers)

    @staticmethod
    def _why_not_split(step: StepSource, augment, module, model) -> str:
        """Why the split mode cannot run this step ("" when it can)."""
        coupled = [(l, layer) for l, layer in enumerate(model.layers) if layer.couples_batch]
        if coupled:
            l, layer = coupled[0]
            more = f" (and {len(coupled) - 1} more layers)" if len(coupled) > 1 else ""
            return (f"layer {l}, {layer!r}{more}, couples the samples of a batch (as BatchNorm's batch statistics "
                    f"do), which two half batches computed apart would not; leave split_batches unset or False")
        if step.stateful:
            return "a layer keeps state between steps (both halves would update it)"
        if augment is not None:
            return "random translations count steps per whole batch"
        import numba

        if numba.config.NUMBA_NUM_THREADS < 2:
            return "Numba has one thread (NUMBA_NUM_THREADS)"
        layer = threading_layer()  # the layer in use, not the configured one
        if layer not in THREAD_SAFE_LAYERS and calls_parallel_code(module.half_batch_gradients):
            return (f"its kernels run parallel regions, and Numba's {layer!r} threading layer aborts the process "
                    f"when two threads run them at once; {THREAD_SAFE_LAYER_HINT}, or pass split_batches=False")
        return ""

    # -- arguments -----------------------------------------------------------------------------
    def _private(self, key: tuple, source: np.ndarray) -> np.ndarray:
        """An array of the split mode's own, shaped as ``source`` and kept under ``key``; with
        ``source`` recorded when it is a copy to refresh (:meth:`_refresh_copies`)."""
        if key not in self._private_arrays:  # (zeros_like keeps the order of a non-C-contiguous source)
            self._private_arrays[key] = devices.zeros(source.shape, source.dtype) if source.flags.c_contiguous \
                else np.zeros_like(source)
            if key[0] == "copy":
                self._copies.append((source, self._private_arrays[key]))
        return self._private_arrays[key]

    def _gradient(self, kind: str, replica: int, split: bool, l: int, name: str) -> np.ndarray:
        """The gradient array of ``kind`` for a replica. Whole batches compute into the model's own
        gradients. Split, each replica computes its half's gradient into an array of its own
        (``grad``; ``other_grad`` is the other replica's), and joins both into ``joined``: the
        model's gradients for replica 0, another array of its own for replica 1."""
        model_grad = self.model.layers[l].grads[name]
        if not split or kind == "joined" and replica == 0:
            return model_grad
        if kind == "joined":
            return self._private(("joined", l, name), model_grad)
        return self._private(("half", replica if kind == "grad" else 1 - replica, l, name), model_grad)

    def _splits(self, batch_size: int) -> bool:
        """Whether batches of ``batch_size`` run split (a batch of one row has no halves)."""
        return self.split and batch_size >= 2

    def _refresh_copies(self) -> None:
        """Copy the parameters and the optimizer's state into the second replica's own arrays:
        both threads update both, the same way, so that neither reads the other's writes."""
        for source, copy in self._copies:
            np.copyto(copy, source)

    def _arrays(self, batch_size: int, replica: int = 0, sized_only: bool = False) -> list:
        """The arguments after the fixed ones for one batch size, allocated on first use and kept;
        with ``sized_only``, only those of :data:`BATCH_SIZED_KINDS` (the same arrays).

        Replica 0 trains the model's own parameters; replica 1 (the split mode's second half) gets
        workspaces and copies of the parameters and the optimizer's state of its own, and shares
        the buffers. The split mode's gradients: :meth:`_gradient`.
        """
        kept = self._sized_buffers if sized_only else self._buffers
        if (batch_size, replica) in kept:
            return kept[batch_size, replica]
        model = self.model
        passes, _ = self._layout(batch_size)
        acts, dacts, workspace, target, raw = self._batch_sized(batch_size, replica)
        states: dict = {}

        def optimizer_state(l: int, name: str) -> dict:
            if (l, name) not in states:  # (each slot, Adam's m and v, of a parameter reads the same)
                states[l, name] = self.optimizer.state_for(f"{l}.{name}", model.layers[l].params[name])
            return states[l, name]

        split = self._splits(batch_size)
        own_copies = split and replica == 1  # the second replica's parameters and optimizer state
        arrays = []
        for b in self.step.bindings.values():
            if sized_only and b.kind not in BATCH_SIZED_KINDS:
                continue
            if b.kind == "act":
                array = acts[b.index]
            elif b.kind == "dact":
                array = dacts[b.index]
            elif b.kind == "param":
                array = model.layers[b.index].params[b.name]
                if own_copies:
                    array = self._private(("copy", "param", b.index, b.name), array)
            elif b.kind in ("grad", "other_grad", "joined"):
                array = self._gradient(b.kind, replica, split, b.index, b.name)
            elif b.kind == "work":
                array = workspace(b.index, b.name)
            elif b.kind == "buffer":
                layer, p = model.layers[b.index], passes[b.index]
                array = layer.buffers[b.name] if isinstance(p, LayerPasses) else p.state[b.name]
            elif b.kind == "state":
                array = optimizer_state(b.index, b.name)[b.slot]
                if own_copies:
                    array = self._private(("copy", "state", b.index, b.name, b.slot), array)
            elif b.kind == "target":
                array = target
            elif b.kind == "raw":
                array = raw
            else:
                raise AssertionError(f"unexpected binding {b}")
            arrays.append(view(array, b.view))
        kept[batch_size, replica] = arrays
        return arrays

    def _batch_sized(self, batch_size: int, replica: int) -> tuple[list, list, Any, np.ndarray, np.ndarray]:
        """A replica's arrays that follow the batch size, allocated once: the activations, their
        gradients, the workspaces (a function of the layer's index, -1 for the loss, and the
        name, allocating each on first use), the targets and the raw input."""
        key = (batch_size, replica)
        if key not in self._activations:
            model, dtype = self.model, self.model.dtype
            passes, shapes = self._layout(batch_size)
            acts: list[Any] = [devices.zeros(shapes[0], model.input_dtype)]  # indices stay integers
            for l, p in enumerate(passes):
                forward_view = isinstance(p, LayerPasses) and p.forward is VIEW
                acts.append(acts[l].reshape(shapes[l + 1]) if forward_view else devices.zeros(shapes[l + 1], dtype))
            dacts: list[Any] = [None] * len(shapes)
            dacts[-1] = devices.zeros(shapes[-1], dtype)
            for l in reversed(range(len(passes))):
                backward_view = isinstance(passes[l], LayerPasses) and passes[l].backward is VIEW
                dacts[l] = dacts[l + 1].reshape(shapes[l]) if backward_view else devices.zeros(shapes[l], dtype)
            loss_workspaces = self._loss_workspaces()
            works: dict = {}

            def workspace(l: int, name: str):
                if (l, name) not in works:
                    spec = loss_workspaces[name] if l < 0 else passes[l].workspaces[name]
                    shape = (shapes[-1] if l < 0 else shapes[l]) if spec.shape == "input" else spec.shape
                    works[l, name] = devices.zeros(shape, dtype if spec.dtype is None else spec.dtype)
                return works[l, name]

            labels = self.loss.target_kind == "labels"  # one per sample (N,), or per token (N, T) of (N, T, C)
            target = devices.zeros(shapes[-1][:-1], np.int64) if labels else devices.zeros(shapes[-1], dtype)
            self._activations[key] = acts, dacts
            self._sized[key] = workspace, target, devices.zeros(shapes[0], model.input_dtype)
        return (*self._activations[key], *self._sized[key])

    def _layout(self, batch_size: int) -> tuple[list, list[tuple[int, ...]]]:
        """Each layer's passes on batches of ``batch_size`` and the shapes from the batch's to the
        output's, checked against the step's once per batch size (both replicas take them)."""
        if batch_size not in self._layouts:
            shapes = [(batch_size,) + self.sample_shape]
            passes: list[Any] = []
            for l, layer in enumerate(self.model.layers):
                layer.check_training_shape(shapes[-1])  # before any kernel runs on this batch size
                passes.append(describe(layer, shapes[-1]))
                _check_same_calls(passes[-1], self.step.passes[l], layer)
                shapes.append(tuple(layer.output_shape(shapes[-1])))
            self._layouts[batch_size] = passes, shapes
        return self._layouts[batch_size]

    def _loss_workspaces(self) -> dict:
        """The loss's workspaces, as its passes (which the step was generated from) name them."""
        if self._loss_spaces is None:
            self._loss_spaces = self.loss.passes().workspaces
        return self._loss_spaces

    def _split_arrays(self, batch_size: int, last_batch: int) -> tuple[list, list]:
        """Each role's arguments of the split loop after the fixed ones: its replica's arrays for
        its half of ``batch_size`` rows, then those of :data:`BATCH_SIZED_KINDS` for its half of
        ``last_batch`` rows (a run without a last batch passes the first ones again)."""
        key = (batch_size, last_batch)
        if key not in self._split_runs:
            roles = []
            for role, (rows, last_rows) in enumerate(zip(_halves(batch_size), _halves(last_batch))):
                roles.append([*self._arrays(rows, role), *self._arrays(last_rows or rows, role, sized_only=True)])
            self._split_runs[key] = (roles[0], roles[1])
        return self._split_runs[key]

    def _scalars(self) -> np.ndarray:
        """The values of the ``scalars`` argument, read afresh each run (a schedule may change them)."""
        sources: dict[tuple[str, int], dict[str, float]] = {}  # each owner's scalars, read once
        values = []
        for owner, index, name in self.step.scalar_slots:
            if (owner, index) not in sources:
                sources[owner, index] = self.optimizer.scalars() if owner == "optimizer" else \
                    self.model.layers[index].scalars()
            values.append(sources[owner, index][name])
        return np.array(values, np.float64)

    def _augment(self) -> np.ndarray:
        return np.array([0, 0] if self.augment is None else [int(self.augment[0]), int(self.augment[1])], np.int64)

    def input_gradient(self, batch_size: int) -> np.ndarray:
        """The first layer's input gradient of the last batch of ``batch_size`` (built with ``input_grad``)."""
        self._arrays(batch_size)
        return self._activations[batch_size, 0][1][0]

    def output(self, batch_size: int) -> np.ndarray:
        """The model's output for the last batch of ``batch_size``."""
        self._arrays(batch_size)
        return self._activations[batch_size, 0][0][-1]

    # -- running -------------------------------------------------------------------------------
    def run(self, X2d: np.ndarray, Y: np.ndarray, order: np.ndarray, start: int, n_batches: int,
            batch_size: int, last_batch: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
        """Train on ``n_batches`` batches of ``batch_size`` rows of ``X2d[order[start:]]``, then on
        one batch of ``last_batch`` rows after them when it is not 0 (an epoch's last, smaller batch:
        in split mode it runs in the same call, which saves the second thread a wake-up).

        Returns the per-batch losses, the per-batch correct counts and how many batches ran
        (fewer than asked when a loss stopped being finite; that batch made no update). Arguments
        that would take a kernel outside the arrays raise first (:mod:`nkernels.trainers.arguments`).
        """
        start, n_batches, batch_size, last_batch = self.check_run(X2d, Y, order, start, n_batches, batch_size,
                                                                  last_batch)
        losses = np.zeros(n_batches + (last_batch > 0))
        correct = np.zeros(len(losses), np.int64)
        with blas_single_threaded():
            if last_batch and not (self._splits(batch_size) and self._splits(last_batch)):
                done = self._run(X2d, Y, order, start, n_batches, batch_size, 0, losses, correct)
                if done == n_batches:
                    done += self._run(X2d, Y, order, start + n_batches * batch_size, 1, last_batch, 0,
                                      losses[n_batches:], correct[n_batches:])
            else:
                done = self._run(X2d, Y, order, start, n_batches, batch_size, last_batch, losses, correct)
        return losses[:done], correct[:done], done

    def _run(self, X2d, Y, order, start, n_batches, batch_size, last_batch, losses, correct) -> int:
        """One compiled call: split (with the last batch when it is not 0), or whole (without)."""
        if self._splits(batch_size):
            return self._run_split(X2d, Y, order, start, n_batches, batch_size, last_batch, losses, correct)
        done = self.function(X2d, Y, order, start, n_batches, self.optimizer.steps, self._scalars(),
                             self._augment(), losses, correct, *self._arrays(batch_size))
        self.optimizer.steps += done
        return done

    def _run_split(self, X2d, Y, order, start, n_batches, batch_size, last_batch, losses, correct) -> int:
        """The split mode: the generated ``run_split_batches`` on the second thread in role 1,
        computing each batch's second half, beside the same on this one in role 0, computing the
        first halves; each joins both halves and updates its replica's parameters. The two hand
        each batch over through a control array (:mod:`nkernels.kernels.cpu.handoff`).

        In role 1 the loop serves runs: after one it waits in compiled code for this trainer's next
        run on the same data and batch sizes (:data:`SERVE_POLLS`), which this thread posts in the
        control array; a run it does not wait for (the first, another trainer's last, or one after
        a long pause) starts it afresh (:class:`SecondThread`).

        Both threads run Numba's ``prange`` kernels on one thread each (Numba's thread count is
        per thread), so every kernel of a half, BLAS included, keeps to one core. Whichever side
        stops first (a loss that is not finite, an exception) sets the control array's stop
        counter, which ends the other side's wait.
        """
        import numba

        rows = n_batches * batch_size + last_batch
        serving = self._serving_for(X2d, Y, rows, batch_size, last_batch)
        step = self.optimizer.steps
        arrays = self._split_arrays(batch_size, last_batch)
        sizes = (*_halves(batch_size), *_halves(last_batch))
        np.copyto(serving.order, np.asarray(order)[start:start + rows])  # the run's rows, from position 0
        serving.scalars[:] = self._scalars()
        self._refresh_copies()

        def arguments(role: int, losses: np.ndarray, correct: np.ndarray, polls: int) -> tuple:
            return (X2d, Y, serving.order, 0, n_batches, step, serving.scalars, serving.augment, losses, correct,
                    *arrays[role], serving.control, *serving.halves, *sizes, role, polls)

        second = second_thread_of_this_thread()
        if not second.post(serving, n_batches, step):
            second.start(serving, n_batches, step, self._split_loop,
                         lambda: arguments(1, serving.spare_losses, serving.spare_correct, SERVE_POLLS))
        control = serving.control
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        done = 0
        try:
            done = self._split_loop(*arguments(0, losses, correct, 0))
        finally:
            control[handoff.STOP] = 1
            numba.set_num_threads(threads)
            self.optimizer.steps += done  # the updates made, even when the second thread failed
            second.wait(serving)
        return done

    def _serving_for(self, X2d, Y, rows: int, batch_size: int, last_batch: int) -> "_Serving":
        """The :class:`_Serving` of runs of ``rows`` rows of ``X2d`` and ``Y`` in batches of
        ``batch_size`` (and one of ``last_batch``): the same as the last run's while the data are
        the same memory read the same way (the serving keeps the arrays it started with, so that
        memory cannot be another array's), so that a second thread waiting on it may take the run."""
        serving = self._serving
        if serving is None or not serving.reads(X2d, Y, rows, batch_size, last_batch):
            serving = self._serving = _Serving(X2d, Y, rows, batch_size, last_batch, self._scalars(), self._augment())
        return serving


#: how many times (each a yield of the CPU, ~0.4 µs when nothing else runs on this 2-core machine)
#: the split mode's second thread looks for its trainer's next run before it goes to sleep: ~2 ms,
#: several times the Python between two epochs' runs of ``nk.train`` (100-300 µs). Each run it
#: takes so saves ~70 µs: handing a sleeping thread a task (~20 µs), its start (~15 µs) and taking
#: the interpreter's lock back from it at the end (the bench MLP's 20 epochs of 20 batches 20.63
#: -> 19.37 ms against 0 polls, medians of 30 runs alternating in one process; the same numbers)
SERVE_POLLS = 5000


def _memory(array) -> tuple:
    """Where and how ``array``'s elements lie: two arrays alike here read the same numbers."""
    return (array.__array_interface__["data"][0], *_layout(array))


def _layout(array) -> tuple:
    """What of ``array``'s :func:`_memory` may change while the array lives: its shape, strides and
    dtype can be assigned, and a resize that moves the elements changes the shape (NumPy 2 refuses
    to assign ``data``). Reading them takes ~0.1 µs, :func:`_memory` ~1.1 µs."""
    return array.shape, array.strides, array.dtype


class _Serving:
    """The arrays of one trainer's split runs on a second thread that stay between runs (besides
    the data ``X2d`` and ``Y``, which it keeps): the run's order (its rows from position 0) and
    scalars, the control array and the halves' losses and counts; with ``runs``, the runs posted
    since the second thread started, and ``pending``, its task."""

    def __init__(self, X2d, Y, rows: int, batch_size: int, last_batch: int, scalars: np.ndarray,
                 augment: np.ndarray):
        self.data = X2d, Y
        self.sizes = rows, batch_size, last_batch
        self.memory = _memory(X2d), _memory(Y)
        self.scalars, self.augment = scalars, augment
        self.order = np.zeros(rows, np.int64)
        self.control, self.halves = _fresh_control()
        n_batches = rows // batch_size
        self.spare_losses, self.spare_correct = np.zeros(n_batches + 1), np.zeros(n_batches + 1, np.int64)  # role 1's
        self.runs = 0
        self.pending: Future | None = None

    def reads(self, X2d, Y, rows: int, batch_size: int, last_batch: int) -> bool:
        """Whether a run of ``rows`` rows of ``X2d`` and ``Y`` in these batches is one of these runs:
        the same arrays laid out as before (0.35 µs; 2.4 µs for :func:`_memory` of both), or others
        over the same memory read the same way."""
        if self.sizes != (rows, batch_size, last_batch):
            return False
        if X2d is self.data[0] and Y is self.data[1]:  # only the layout may have changed
            return self.memory[0][1:] == _layout(X2d) and self.memory[1][1:] == _layout(Y)
        return self.memory == (_memory(X2d), _memory(Y))

    def renew(self) -> None:
        """A control array and halves of their own for a second thread starting on these runs: a
        thread another calling thread started may still wait on the old ones (told to go), and
        only one thread may ever serve a control array."""
        handoff.retire(self.control)
        self.control, self.halves = _fresh_control()


def _fresh_control() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A control array that no second thread serves yet, and the halves' losses and counts."""
    control = np.zeros(handoff.CONTROL_SIZE, np.int64)
    control[handoff.STATE] = handoff.GONE
    # each half's loss and count 64 bytes from the other's: the two threads never write one cache line
    return control, (np.zeros((2, handoff.SLOT)), np.zeros((2, handoff.SLOT), np.int64))


class SecondThread:
    """The split mode's second thread for runs called from one thread: one for all of its trainers,
    started on first use (Numba's kernels on one thread there), so that a new trainer (each
    ``nk.train``) starts no thread: 0.2-0.4 ms a run less for the bench MLP (one epoch 3.22 -> 3.03
    ms, 20 epochs 28.8 -> 28.4 ms; medians of 15, alternating in one process). It serves one
    trainer's runs at a time: started on a run (:meth:`start`), it waits for the
    next run of the same trainer on the same data in compiled code (:meth:`post` hands it one) up
    to :data:`SERVE_POLLS` polls, and goes when another run starts it afresh."""

    def __init__(self):
        import numba

        self.executor = ThreadPoolExecutor(1, thread_name_prefix="nkernels-half-batch",
                                           initializer=numba.set_num_threads, initargs=(1,))
        self._control: np.ndarray | None = None  # the control array of the runs it may wait for

    def post(self, serving: _Serving, n_batches: int, step: int) -> bool:
        """Hand the run to the thread if it waits on ``serving`` (True); False when it does not."""
        control = serving.control
        if self._control is not control:
            return False
        control[:handoff.STATE] = 0  # the counters of a run
        if not handoff.post_run(control, 0, n_batches, step):
            return False
        serving.runs += 1
        return True

    def start(self, serving: _Serving, n_batches: int, step: int, serve_loop, arguments) -> None:
        """Tell the thread to stop waiting on the control array it may be waiting on, post the run
        on a new control array of ``serving`` (:meth:`_Serving.renew`), and start
        ``serve_loop(*arguments())`` on the thread to serve the runs posted there (``arguments``
        reads the new control array)."""
        if self._control is not None:
            handoff.retire(self._control)
        serving.renew()
        control = self._control = serving.control
        control[handoff.RUN:handoff.RUN + 3] = 0, n_batches, step
        control[handoff.DONE], control[handoff.STATE], serving.runs = 0, handoff.POSTED, 1
        args = arguments()

        def serve_here():
            try:
                return serve_loop(*args)
            except BaseException:
                control[handoff.STOP] = 1  # ends the first thread's waits for this run's halves
                control[handoff.STATE] = handoff.GONE
                raise

        serving.pending = self.executor.submit(serve_here)

    @staticmethod
    def wait(serving: _Serving) -> None:
        """Wait until the thread has finished the run last posted on ``serving``; raise its error if it failed."""
        if not handoff.wait_for_run(serving.control, serving.runs):
            assert serving.pending is not None
            serving.pending.result()  # raises what stopped it
            raise RuntimeError("the split mode's second thread stopped before it finished its run")


_second_threads = threading.local()


def second_thread_of_this_thread() -> SecondThread:
    """The split mode's :class:`SecondThread` for runs called from this thread (runs called from
    other threads at the same time get second threads of their own)."""
    second, pid = getattr(_second_threads, "second", None), getattr(_second_threads, "pid", 0)
    if second is None or pid != os.getpid():  # a forked child has no such thread
        second = SecondThread()
        _second_threads.second, _second_threads.pid = second, os.getpid()
    return second


def _halves(rows: int) -> tuple[int, int]:
    """The rows of a batch's first and second half (the first takes the odd row)."""
    return rows - rows // 2, rows // 2


def _check_same_calls(passes, reference, layer) -> None:
    """A layer's passes at another batch size must call the same kernels with the same operands
    (only workspace shapes may change), or the generated step would not fit them."""
    if isinstance(passes, LayerPasses) and isinstance(reference, LayerPasses):
        same = (passes.forward, passes.backward) == (reference.forward, reference.backward)
    else:
        same = getattr(passes, "op", None) is not None and \
            (passes.op.forward, passes.op.backward) == (reference.op.forward, reference.op.backward)
    if not same:
        raise ValueError(f"{layer!r} describes different passes at another batch size; the calls of "
                         f"Layer.passes() may depend on the sample shape only, not on the batch size")


__all__ = ["CompiledTrainer", "SPLIT_MIN_MULTIPLY_ADDS", "multiply_adds_per_sample", "FIXED_ARGS"]
