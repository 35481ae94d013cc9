"""Generate and run the compiled training step of a Sequential.

The source of one ``@njit(cache=True)`` function is generated from the layers' templates,
written into the cache directory under a name derived from its content, and imported from
there, so that Numba's on-disk cache holds across runs. The function runs ``n_batches``
consecutive mini-batches (gather, forward, loss, backward, update) with every buffer
preallocated, and stops early when the loss stops being finite.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import load_generated_module
from ..kernel_registry import kernel
from ..threads import (THREAD_SAFE_LAYER_HINT, THREAD_SAFE_LAYERS, blas_single_threaded, calls_parallel_code,
                       threading_layer)

#: ``limits`` is ``[clip_norm, max_norm]`` (0 where unused) and ``augment_seed`` the translations' seed:
#: arguments rather than constants in the source, so that new values compile nothing new
_FIXED_ARGS = ("X", "Y", "order", "start0", "n_batches", "step0", "hyper", "limits", "augment_seed", "losses",
               "correct")


@dataclass
class _Plan:
    """Everything the generated functions need besides the batch-sized buffers."""

    source: str
    arg_names: list[str]
    layer_ops: list[Any]
    grad_names: list[str]


def _indent(block: str, spaces: int = 8) -> str:
    return "\n".join(" " * spaces + line for line in block.strip("\n").splitlines())


def _import_line(op: str) -> str | None:
    fn = kernel(op, "cpu")
    py_func = getattr(fn, "py_func", None)
    if py_func is None:  # a plugin kernel that is not a Numba function cannot be called from one
        return None
    return f"from {py_func.__module__} import {py_func.__name__} as {op}"


def source_digest(paths) -> str:
    """A digest of the contents of the files at ``paths`` (in sorted order; missing files count as empty)."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(path.encode())
        try:
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()[:20]


def kernel_fingerprint(modules) -> str:
    """A digest of the kernel sources a step calls: every module in ``nkernels/kernels/cpu`` (the
    built-in kernels call each other across modules) plus the named modules (plugin kernels).

    Numba's cache checks only the timestamp of the file that holds a function, not of the
    functions it calls, and the generated step inlines its kernels. So the digest goes into the
    step's source, and a changed kernel (an upgrade, a plugin update, a developer's edit) gives a
    new step file and a fresh compile instead of stale machine code.
    """
    from ..kernels import cpu

    directory = os.path.dirname(os.path.abspath(cpu.__file__))
    paths = [os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(".py")]
    for name in modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            paths.append(os.path.abspath(path))
    import numba

    return numba.__version__ + "-" + source_digest(paths)


#: the random-translation counter of a step starts at ``step * AUGMENT_STRIDE`` (batches stay below it)
AUGMENT_STRIDE = 1 << 20


def _optimizer_code(optimizer, grads: list[str], params: list[tuple[str, str, bool]]) -> tuple[list, list]:
    """Source lines for gradient clipping and the max-norm constraint; ``params`` holds (flat, rows, constrained)."""
    clip, constrain = [], []
    if optimizer.clip_norm is not None:
        clip = ["total_ = 0.0"] + [f"total_ += sum_of_squares({g})" for g in grads]
        clip.append("factor_ = clip_scale(math.sqrt(total_), limits[0])")
        clip += [f"scale_inplace({g}, factor_)" for g in grads]
    if optimizer.max_norm is not None:
        constrain = [f"max_norm_rows({rows}, limits[1])" for _, rows, constrained in params
                     if constrained]
    return clip, constrain


def _plan(model, loss, optimizer, batch_shape: tuple[int, ...], augment: tuple[int, int] | None) -> _Plan | None:
    from ..optimizers import is_constrained

    dtype = model.dtype
    shapes = [tuple(batch_shape)]
    layer_ops = []
    for layer in model.layers:
        op = layer.compiled_op(shapes[-1], dtype)
        if op is None:
            return None
        layer_ops.append(op)
        shapes.append(tuple(layer.output_shape(shapes[-1])))
    loss_template = loss.compiled_template()
    if loss_template is None:
        return None
    loss_source, loss_ops, loss_workspaces = loss_template
    update = optimizer.update_template()

    n = len(model.layers)
    args = list(_FIXED_ARGS)
    for i in range(n + 1):
        args += [f"a{i}", f"a{i}_f", f"d{i}", f"d{i}_f"]
    args += ["a0_rows", "t", "t_rows", "t_f"]
    forward: list[str] = []
    backward: list[str] = []
    updates: list[str] = []
    grads: list[str] = []
    params: list[tuple[str, str, bool]] = []
    for l, (layer, op) in enumerate(zip(model.layers, layer_ops)):
        keys = list(layer.params)
        p = {k: f"p{l}_{j}" for j, k in enumerate(keys)}
        g = {k: f"g{l}_{j}" for j, k in enumerate(keys)}
        w = {k: f"w{l}_{j}" for j, k in enumerate(op.workspaces)}
        s = {k: f"s{l}_{j}" for j, k in enumerate(op.state)}
        args += list(p.values()) + list(g.values()) + list(w.values()) + list(s.values())
        names = dict(x=f"a{l}", y=f"a{l + 1}", x_flat=f"a{l}_f", y_flat=f"a{l + 1}_f",
                     dx=f"d{l}", dy=f"d{l + 1}", dx_flat=f"d{l}_f", dy_flat=f"d{l + 1}_f",
                     p=p, g=g, w=w, s=s, need_dx=str(l > 0), step="step")
        forward.append(op.forward.format(**names))
        backward.insert(0, op.backward.format(**names))
        for j, key in enumerate(keys):
            opt_state = {name: f"o{l}_{j}_{name}" for name in optimizer.state_names}
            args += [f"p{l}_{j}_f", f"g{l}_{j}_f", f"p{l}_{j}_r"] + list(opt_state.values())
            updates.append(update.format(p=f"p{l}_{j}_f", g=f"g{l}_{j}_f", s=opt_state,
                                         hyper="hyper", step="step"))
            grads.append(f"g{l}_{j}_f")
            params.append((f"p{l}_{j}_f", f"p{l}_{j}_r", is_constrained(f"{l}.{key}", layer.params[key])))
    clip, constrain = _optimizer_code(optimizer, grads, params)
    norm_ops = (["sum_of_squares", "clip_scale", "scale_inplace"] if clip else []) + \
        (["max_norm_rows"] if constrain else [])
    lw = {k: f"lw_{j}" for j, k in enumerate(loss_workspaces)}
    args += list(lw.values())
    loss_code = loss_source.format(out=f"a{n}", out_flat=f"a{n}_f", dout=f"d{n}", dout_flat=f"d{n}_f",
                                   target="t", target_flat="t_f", w=lw)
    gather_target = ("gather_labels(Y, order, start, t)" if loss.target_kind == "labels"
                     else "gather_rows(Y, order, start, t_rows)")
    if augment is None:
        gather_input = ["gather_rows(X, order, start, a0_rows)"]
    else:
        args += ["raw", "raw_rows"]
        gather_input = ["gather_rows(X, order, start, raw_rows)",
                        f"random_translate(raw, {augment[0]}, augment_seed, step * {AUGMENT_STRIDE}, a0)"]

    ops = {"gather_rows", "gather_labels", "combine_halves", optimizer.op, *loss_ops, *norm_ops}
    ops.update(*(op.ops for op in layer_ops))
    if augment is not None:
        ops.add("random_translate")
    imports = []
    for op in sorted(ops):
        line = _import_line(op)
        if line is None:
            return None
        imports.append(line)

    body = [
        "bs = a0.shape[0]",
        "for b in range(n_batches):",
        "    start = start0 + b * bs",
        "    step = step0 + b + 1",
        _indent("\n".join(gather_input), 4),
        f"    {gather_target}",
        _indent("\n".join(forward), 4),
        _indent(loss_code, 4),
        "    if not math.isfinite(loss):",
        "        return b",
        "    losses[b] = loss",
        "    correct[b] = correct_",
        _indent("\n".join(backward), 4),
        _indent("\n".join(clip + updates + constrain), 4),
        "return n_batches",
    ]
    # The split mode (see CompiledTrainer): one half batch's gradients, and the update from two halves.
    other_grads = [f"G{name[1:]}" for name in grads]
    gradient_body = [
        "start = start0",
        "step = step0 + 1",
        *gather_input,
        gather_target,
        *forward,
        *loss_code.strip("\n").splitlines(),
        "if math.isfinite(loss):",
        _indent("\n".join(backward), 4),
        "return loss, correct_",
    ]
    combine = [f"combine_halves({g}, {other}, w0, w1)" for g, other in zip(grads, other_grads)]
    update_body = ["step = step0 + 1", *combine, *clip, *updates, *constrain]
    modules = {getattr(kernel(op, "cpu"), "py_func").__module__ for op in ops}  # Numba dispatchers
    source = "\n".join([
        '"""Generated by nkernels.compiled.step: one training run of a Sequential. Do not edit."""',
        f"# kernel sources: {kernel_fingerprint(modules)}",
        # One file per dtype: Numba's cache index is not safe against two processes adding
        # different specializations of one function at once (a mixed-up index segfaulted).
        f"# dtype: {np.dtype(dtype).name}",
        "import math",
        "from numba import njit",
        *imports,
        "",
        "",
        "@njit(cache=True, error_model=\"numpy\")",
        f"def run_batches({', '.join(args)}):",
        _indent("\n".join(body), 4),
        "",
        "",
        "@njit(cache=True, error_model=\"numpy\", nogil=True)",
        f"def half_batch_gradients({', '.join(args)}):",
        _indent("\n".join(gradient_body), 4),
        "",
        "",
        "@njit(cache=True, error_model=\"numpy\", nogil=True)",
        f"def update_from_halves({', '.join(args + other_grads + ['w0', 'w1'])}):",
        _indent("\n".join(update_body), 4),
        "",
    ])
    return _Plan(source, args, layer_ops, grads)


def _load_module(source: str):
    return load_generated_module(source, "steps", "nkernels_step")


#: the least multiply-adds per batch for which the split mode pays for its per-step thread handoff
#: (about 50 µs here) and its half-height GEMMs: measured on 2 cores, the lstm preset at batch 32
#: (4.7M) ran 10% slower split, GRU(8->64) over 8 steps at batch 64 (7.1M) 30% faster
SPLIT_MIN_MULTIPLY_ADDS = 6_000_000


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


class CompiledTrainer:
    """Runs mini-batches of a Sequential's training in one compiled call per run of batches.

    Build it with :meth:`build`, which returns ``None`` when some layer, the loss or a kernel
    has no compiled form; the caller then drives the model layer by layer.

    **Split mode.** BLAS runs on one thread (:mod:`nkernels.threads`), so the GEMMs of a step,
    most of its time, leave the other cores idle. In split mode each batch is cut into two
    halves: a second thread computes one half's gradients while the calling thread computes the
    other's (both compiled with ``nogil``, each with its own buffers and gradients, each running
    its ``prange`` kernels on one thread), then one compiled call joins them, weighted by the
    halves' sizes, and updates the parameters. The threads block rather than spin while they
    wait, so a busy machine slows them down without stalling them. The numbers equal the
    whole-batch step's up to float rounding (the sums run in another order). It is chosen when
    the layers keep no state between steps (dropout's counter), there is no augmentation, Numba
    has 2 or more threads, its threading layer lets two threads run parallel kernels at once
    (``omp`` or ``tbb``; on ``workqueue`` only steps without parallel kernels run split) and a
    batch holds at least :data:`SPLIT_MIN_MULTIPLY_ADDS` multiply-adds; ``split_batches``
    forces it on or off.
    """

    def __init__(self, model, loss, optimizer, sample_shape, plan: _Plan, module, augment=None,
                 split: bool = False):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)
        self.plan = plan
        self.function = module.run_batches
        self._half_gradients = module.half_batch_gradients
        self._update_from_halves = module.update_from_halves
        self.split = split
        self._buffers: dict[tuple[int, int], list] = {}
        self._worker: Any = None  # the ThreadPoolExecutor of the split mode's second thread
        self._worker_pid = 0

    @classmethod
    def build(cls, model, loss, optimizer, sample_shape, batch_size: int,
              augment: tuple[int, int] | None = None,
              split_batches: bool | None = None) -> "CompiledTrainer | None":
        """A trainer for ``model`` on samples of ``sample_shape``, or None if it has no compiled form.

        ``augment`` is ``(max_shift, seed)`` for random translations of image batches.
        ``split_batches``: None chooses the split mode (see the class) by itself; True asks for
        it (a ValueError if the model cannot run split); False keeps whole batches.
        """
        plan = _plan(model, loss, optimizer, (batch_size,) + tuple(sample_shape), augment)
        if plan is None:
            return None
        module = _load_module(plan.source)
        why_not = cls._why_not_split(plan, augment, module) if split_batches is not False else ""
        if split_batches and why_not:
            raise ValueError(f"split_batches=True: this step cannot run split, {why_not}")
        if split_batches is None:
            split_batches = not why_not and batch_size >= 2 and \
                batch_size * multiply_adds_per_sample(model, sample_shape) >= SPLIT_MIN_MULTIPLY_ADDS
        return cls(model, loss, optimizer, sample_shape, plan, module, augment, bool(split_batches))

    @staticmethod
    def _why_not_split(plan: _Plan, augment, module) -> str:
        """Why the split mode cannot run this step ("" when it can)."""
        if any(op.state for op in plan.layer_ops):
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

    def _arrays(self, batch_size: int, replica: int = 0) -> list:
        """The buffers for one batch size, allocated on first use and kept for the run.

        Replica 0 computes into the model's own gradients; replica 1 (the split mode's second
        half) gets gradients and workspaces of its own and shares the parameters and the
        optimizer state.
        """
        if (batch_size, replica) in self._buffers:
            return self._buffers[batch_size, replica]
        model, dtype = self.model, self.model.dtype
        shapes = [(batch_size,) + self.sample_shape]
        ops = []
        for layer in model.layers:
            ops.append(layer.compiled_op(shapes[-1], dtype))
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        named: dict[str, Any] = {}
        for i, shape in enumerate(shapes):
            named[f"a{i}"] = a = np.zeros(shape, dtype)
            named[f"d{i}"] = d = np.zeros(shape, dtype)
            named[f"a{i}_f"], named[f"d{i}_f"] = a.reshape(-1), d.reshape(-1)
        named["a0_rows"] = named["a0"].reshape(batch_size, -1)
        if self.augment is not None:
            named["raw"] = np.zeros(shapes[0], dtype)
            named["raw_rows"] = named["raw"].reshape(batch_size, -1)
        if self.loss.target_kind == "labels":
            named["t"] = np.zeros(batch_size, np.int64)
            named["t_rows"] = np.zeros((0, 0), dtype)
            named["t_f"] = np.zeros(0, dtype)
        else:
            named["t"] = np.zeros(shapes[-1], dtype)
            named["t_rows"] = named["t"].reshape(batch_size, -1)
            named["t_f"] = named["t"].reshape(-1)
        for l, (layer, op) in enumerate(zip(model.layers, ops)):
            for j, key in enumerate(layer.params):
                param, grad = layer.params[key], layer.grads[key]
                if replica:
                    grad = np.zeros_like(grad)
                named[f"p{l}_{j}"], named[f"g{l}_{j}"] = param, grad
                named[f"p{l}_{j}_f"], named[f"g{l}_{j}_f"] = param.reshape(-1), grad.reshape(-1)
                named[f"p{l}_{j}_r"] = param.reshape(param.shape[0], -1)
                state = self.optimizer.state_for(f"{l}.{key}", param)
                for name in self.optimizer.state_names:
                    named[f"o{l}_{j}_{name}"] = state[name]
            for j, (shape, wdtype) in enumerate(op.workspaces.values()):
                named[f"w{l}_{j}"] = np.zeros(shape, dtype if wdtype is None else wdtype)
            for j, array in enumerate(op.state.values()):
                named[f"s{l}_{j}"] = array
        _, _, loss_workspaces = self.loss.compiled_template()
        for j, spec in enumerate(loss_workspaces.values()):
            named[f"lw_{j}"] = np.zeros(shapes[-1] if spec == "output" else spec, dtype)
        arrays = [named[name] for name in self.plan.arg_names[len(_FIXED_ARGS):]]
        self._buffers[batch_size, replica] = arrays
        return arrays

    def run(self, X2d: np.ndarray, Y: np.ndarray, order: np.ndarray, start: int, n_batches: int,
            batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Train on ``n_batches`` batches of ``batch_size`` rows of ``X2d[order[start:]]``.

        Returns the per-batch losses, the per-batch correct counts and how many batches ran
        (fewer than asked when a loss stopped being finite; that batch made no update).
        """
        losses = np.zeros(n_batches)
        correct = np.zeros(n_batches, np.int64)
        optimizer = self.optimizer
        limits = np.array([optimizer.clip_norm or 0.0, optimizer.max_norm or 0.0])
        augment_seed = 0 if self.augment is None else int(self.augment[1])
        with blas_single_threaded():
            if self.split and batch_size >= 2:
                done = self._run_split(X2d, Y, order, start, n_batches, batch_size, limits, losses, correct)
            else:
                done = self.function(X2d, Y, order, start, n_batches, optimizer.steps, optimizer.hyper(), limits,
                                     augment_seed, losses, correct, *self._arrays(batch_size))
                self.optimizer.steps += done
        return losses[:done], correct[:done], done

    def _run_split(self, X2d, Y, order, start, n_batches, batch_size, limits, losses, correct) -> int:
        """The split mode's loop: per batch, two half-batch gradient calls on two threads, then the update.

        Both threads run Numba's ``prange`` kernels on one thread each (Numba's thread count is
        per thread), so every kernel of a half, BLAS included, keeps to one core.
        """
        import numba

        if self._worker is None or self._worker_pid != os.getpid():  # a forked child has no such thread
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(1, thread_name_prefix="nkernels-half-batch",
                                              initializer=numba.set_num_threads, initargs=(1,))
            self._worker_pid = os.getpid()
        first, second = batch_size - batch_size // 2, batch_size // 2
        arrays0, arrays1 = self._arrays(first, 0), self._arrays(second, 1)
        grads1 = [arrays1[self.plan.arg_names.index(name) - len(_FIXED_ARGS)] for name in self.plan.grad_names]
        optimizer, hyper = self.optimizer, self.optimizer.hyper()
        no_losses, no_correct = np.zeros(0), np.zeros(0, np.int64)

        def fixed_args(row0):  # the leading arguments every generated function takes (_FIXED_ARGS)
            return (X2d, Y, order, row0, 1, optimizer.steps, hyper, limits, 0, no_losses, no_correct)

        def half(row0, arrays):
            return self._half_gradients(*fixed_args(row0), *arrays)

        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            for b in range(n_batches):
                row0 = start + b * batch_size
                pending = self._worker.submit(half, row0 + first, arrays1)
                loss0, correct0 = half(row0, arrays0)
                loss1, correct1 = pending.result()
                loss = (first * loss0 + second * loss1) / batch_size
                if not np.isfinite(loss):
                    return b
                losses[b], correct[b] = loss, correct0 + correct1
                self._update_from_halves(*fixed_args(row0), *arrays0, *grads1, first / batch_size,
                                         second / batch_size)
                optimizer.steps += 1
        finally:
            numba.set_num_threads(threads)
        return n_batches
