"""Generate the source of a Sequential's compiled training step from the pass descriptions.

:func:`generate` renders, for a model, a loss, an optimizer and a batch shape, five
``@njit(cache=True)`` functions over one argument list (the split mode's parts take only the
arguments they use: a call counts a reference to every array it passes, in and out):

``run_batches``
    ``n_batches`` consecutive mini-batches (gather, forward, loss, backward, update), stopping
    early when a loss stops being finite;
``half_batch_gradients``, ``join_halves`` and ``update_from_halves``
    the split mode's parts (see :class:`nkernels.trainers.compiled.CompiledTrainer`): one half's
    gradients, the join of both halves' gradients, and the update from both (from the joined
    gradients, or, where every update has a twin of :data:`UPDATES_OF_HALVES`, from the two
    halves' gradients, joined as the update reads them);
``run_split_batches``
    the split mode's loop over a run's batches, called on two threads at once, each on its own
    replica: role 0 computes the first halves, role 1 the second; then each updates its own copy
    of the parameters from both halves' gradients, the two handing each batch over through the
    control array (:mod:`nkernels.kernels.cpu.handoff`). Where the update joins the halves as it
    reads them, role 0 joins the last batch's halves once after the loop, so that the model's
    gradients are the whole batch's, as after a run of whole batches (a run stopped early by a
    loss that is not finite leaves them as they were). After the shared arguments come the
    arrays of a last, smaller batch (those of :data:`BATCH_SIZED_KINDS`, named ``last_`` and the
    shared argument's name; an epoch's last batch runs in the same call) and :data:`SPLIT_ARGS`.
    In role 1 it serves one run after another while the runs keep coming: it takes each run's
    :data:`PER_RUN_ARGS` from the control array (:func:`~nkernels.kernels.cpu.handoff.wait_for_post`;
    the arguments are not read) and returns when told to go or when no run comes within ``polls``
    polls. One function for both roles compiles once (a second function serving runs by calling
    it took 1.6 s more to compile: Numba optimizes a caller with its callees again).

Every kernel call comes from a layer's, the loss's or the optimizer's description
(:mod:`nkernels.passes`), rendered by :mod:`nkernels.compiled.render`, and calls the kernel by
address (:mod:`nkernels.kernels.calls`: the step's machine code holds only the step, so a
new step compiles only its own code once its kernels are cached); the arguments are listed
as :class:`~nkernels.compiled.render.Binding` records, from which the runtime builds them. Values
that change between runs (rates, seeds, counters) are arguments, so they never compile anything
new. The source is written into the cache directory under its content's hash and imported from
there, so Numba's on-disk cache holds across runs.
"""
from __future__ import annotations

import os
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..passes.ir import Call, LayerPasses, Local, Phase, Ref, calls_of
from .legacy import LegacyPasses, legacy_passes
from .render import Binding, Scope, accumulated_locals, literal, local_name, render_call, variable_name

#: the leading arguments of every generated function
FIXED_ARGS = ("X", "Y", "order", "start0", "n_batches", "step0", "scalars", "augment", "losses", "correct")

#: the trailing arguments of the split mode's loop: the threads' control array
#: (:mod:`nkernels.kernels.cpu.handoff`), the halves' losses and correct counts (2, SLOT), the
#: halves' sizes in the run's batches and in its last batch (both 0 when it has none), the
#: calling thread's role (0 or 1) and, in role 1, how many polls to wait for a run
SPLIT_ARGS = ("control", "halves_loss", "halves_correct", "first", "second", "last_first", "last_second", "role",
              "polls")

#: the arguments of ``run_split_batches`` that role 1 reads from the control array for each run
#: (at :data:`~nkernels.kernels.cpu.handoff.RUN` and the two words after it)
PER_RUN_ARGS = ("start0", "n_batches", "step0")

#: the kinds of arguments whose shape follows the batch size (a last, smaller batch has its own);
#: parameters, gradients and the optimizer's state are the same at every batch size
BATCH_SIZED_KINDS = ("act", "dact", "work", "buffer", "target", "raw")

#: the random-translation counter of a step starts at ``step * AUGMENT_STRIDE`` (batches stay below it)
AUGMENT_STRIDE = 1 << 20

#: optimizer updates with a twin that joins the split mode's two halves' gradients as it reads them,
#: defined beside the update: the twin takes the parameter, its half's gradient, the other half's,
#: the two halves' weights (:data:`HALF_WEIGHTS`), then the update's other operands. A split step
#: whose every gradient-reading call has one skips the join before its update (measured on the
#: digits MLP: one thread's join and Adam update 8.3 µs, the twin 6.2, the same bits; SGD with
#: momentum's twin saved 0.5-2.4 µs of the bench MLP's ~38 µs step, nothing measurable on the CNN)
UPDATES_OF_HALVES = {"adam_update": "adam_update_halves", "sgd_update": "sgd_update_halves"}
#: the halves' weights in those twins' calls: this thread's half and the other's, shares of the rows
HALF_WEIGHTS = (Local("half_weight"), Local("other_half_weight"))


@dataclass
class StepSource:
    """The generated source and what its arguments hold.

    ``bindings`` maps each argument after :data:`FIXED_ARGS` to its Binding, in order;
    ``scalar_slots`` lists, for each element of the ``scalars`` argument, its owner (``"layer"``
    with the layer's index, or ``"optimizer"``) and the scalar's name; ``grads`` the gradient
    variables in update order (the split mode joins them); ``passes`` each layer's description
    at the generating batch size.
    """

    source: str
    bindings: dict[str, Binding]
    scalar_slots: list[tuple[str, int, str]]
    grads: list[str]
    passes: list[Any]
    stateful: bool
    ops: set[str] = field(default_factory=set)

    @property
    def arg_names(self) -> list[str]:
        """The argument names after the fixed ones."""
        return list(self.bindings)


def describe(layer, input_shape: tuple[int, ...]) -> LayerPasses | LegacyPasses | None:
    """The layer's passes at ``input_shape``: its description, a deprecated template, or None."""
    if layer.described:
        return layer.passes(tuple(input_shape))
    return legacy_passes(layer, tuple(input_shape))


def _import_line(op: str) -> str | None:
    from ..plugins.kernels import kernel

    py_func = getattr(kernel(op, "cpu"), "py_func", None)
    if py_func is None:  # a plugin kernel that is not a Numba function cannot be called from one
        return None
    return f"from {py_func.__module__} import {py_func.__name__} as _{op}"


def kernel_fingerprint(modules) -> str:
    """A digest of the code a step depends on: all of nkernels' and its installed plugins' sources
    (:func:`~nkernels.runtime.cache_stamps.code_fingerprint`) plus the files of the named modules
    (kernels registered from elsewhere).

    The generated step is typed against its kernels' overloads and calls them by address
    (:mod:`~nkernels.kernels.calls`), and Numba's cache checks only the file that holds a
    function. The fingerprinted cache stamps already retire the step's stale machine code; the
    digest in the step's source also gives each code base its own step file, so two checkouts
    sharing one cache directory (a before/after benchmark) do not recompile each other's steps.
    """
    import numba

    from ..runtime.cache_stamps import code_fingerprint, serves, source_digest

    files = (getattr(sys.modules.get(name), "__file__", None) for name in modules)
    paths = [os.path.abspath(path) for path in files if path and not serves(path)]
    return f"{numba.__version__}-{source_digest(paths, code_fingerprint())}"


def updates_of_halves(phases: tuple[Phase, ...]) -> tuple[Phase, ...] | None:
    """``phases`` with each update call that reads a gradient replaced by its twin of
    :data:`UPDATES_OF_HALVES`, reading both halves' gradients; None when some call reads the
    joined gradients otherwise (clipping by their norm), has no twin, or is a plugin's kernel in
    place of the built-in the twin belongs with."""
    from ..plugins.kernels import kernel

    def module(op: str) -> str | None:
        found = kernel(op, "cpu")
        return getattr(getattr(found, "py_func", found), "__module__", None)

    folded = []
    for phase in phases:
        calls = []
        for c in phase.calls:
            grads = [i for i, a in enumerate(c.args) if isinstance(a, Ref) and a.role == "grad"]
            if not grads:
                calls.append(c)
                continue
            twin = UPDATES_OF_HALVES.get(c.op)
            if twin is None or not phase.per_parameter or grads != [1] or c.args[1].view != "flat" \
                    or module(c.op) != module(twin):
                return None
            calls.append(Call(twin, c.args[0], c.args[1], Ref("other_grad", view="flat"), *HALF_WEIGHTS,
                              *c.args[2:], result=c.result, accumulate=c.accumulate))
        folded.append(replace(phase, calls=tuple(calls)))
    return tuple(folded)


def _indent(lines: list[str], spaces: int) -> list[str]:
    return [" " * spaces + line for line in lines]


class _Namer:
    """Names of the generated function's variables, from positions rather than user-chosen names."""

    def __init__(self, model, passes, loss_workspaces):
        self.param_keys = [list(layer.params) for layer in model.layers]
        self.work_keys = {(l, "work"): list(p.workspaces) for l, p in enumerate(passes)}
        self.work_keys.update({(l, "buffer"): list(layer.buffers) + list(getattr(passes[l], "state", {}))
                               for l, layer in enumerate(model.layers)})
        self.work_keys[(-1, "work")] = list(loss_workspaces)

    def __call__(self, binding: Binding) -> str:
        return variable_name(binding, lambda l, key: self.param_keys[l].index(key),
                             lambda l, kind, name: self.work_keys[(l, kind)].index(name))


#: the steps generated in this process by their recipe (:func:`recipe`), the latest last
_GENERATED: OrderedDict[tuple, StepSource | None] = OrderedDict()
#: how many recipes' steps :data:`_GENERATED` keeps
GENERATED_KEPT = 64
_MISSING: Any = object()


def generate(model, loss, optimizer, batch_shape: tuple[int, ...], augment: bool = False,
             input_grad: bool = False, trainable_layers: Any = None) -> StepSource | None:
    """The step source for ``model`` on batches of ``batch_shape``, or None when some layer, the
    loss or a kernel has no compiled form.

    ``augment`` adds random translations of the input images (shift and seed are arguments).
    ``input_grad`` computes the first layer's input gradient too (a generator's step, a
    conformance check); otherwise only the layers from the first trainable one run backward.
    ``trainable_layers`` (indices of layers; None for all) limits the update to those layers'
    parameters: the others still pass gradients back but keep their values (a GAN's generator
    step through its discriminator).

    A step is rendered once per process for each :func:`recipe` (the last :data:`GENERATED_KEPT`
    are kept): a new trainer of a model like an earlier one's, as each ``nk.train`` of a sweep
    makes, takes the same step (the bench MLP's 0.52 ms of rendering a run less). Steps are
    read, never changed, by their users.
    """
    described = describe_layers(model, batch_shape)
    if described is None:
        return None
    passes, shapes = described
    key = recipe(model, loss, optimizer, passes, shapes, augment, input_grad, trainable_layers)
    if key is not None:  # (hashing the key takes ~6 µs for the bench MLP: once to find it, once to move it)
        step = _GENERATED.get(key, _MISSING)
        if step is not _MISSING:
            _GENERATED.move_to_end(key)
            return step
    step = _render(model, loss, optimizer, passes, shapes, augment, input_grad, trainable_layers)
    if key is not None:
        _GENERATED[key] = step
        while len(_GENERATED) > GENERATED_KEPT:
            _GENERATED.popitem(last=False)
    return step


def describe_layers(model, batch_shape: tuple[int, ...]) -> tuple[list[Any], list[tuple[int, ...]]] | None:
    """Each layer's passes at its input shape, and the shapes from the batch's to the output's; None
    when some layer has no compiled form."""
    shapes, passes = [tuple(batch_shape)], []
    for layer in model.layers:
        described = describe(layer, shapes[-1])
        if described is None:
            return None
        passes.append(described)
        shapes.append(tuple(layer.output_shape(shapes[-1])))
    return passes, shapes


def recipe(model, loss, optimizer, passes: list[Any], shapes: list[tuple[int, ...]], augment: bool = False,
           input_grad: bool = False, trainable_layers: Any = None) -> tuple | None:
    """Everything :func:`generate`'s step follows from, as a key: the arguments' flags and shapes,
    the dtypes, each layer's passes (:func:`describe_layers`), output shape, parameter names and
    dimensions and buffer names, the loss's passes and targets, the optimizer's phases, and the
    kernel in force for every op they may call (a plugin's in place of a built-in gives another
    step). None when some part has no such key (a layer described by a deprecated template, an
    operand that is not hashable)."""
    from ..plugins.kernels import kernel

    layers, ops = [], set(_FIXED_OPS)
    for layer, described, shape in zip(model.layers, passes, shapes[1:]):
        if not isinstance(described, LayerPasses):
            return None
        layers.append((described.forward, described.backward, described.inference,
                       tuple(described.workspaces.items()), shape,
                       tuple((name, param.ndim) for name, param in layer.params.items()), tuple(layer.buffers)))
        ops |= described.ops()
    loss_passes, phases = loss.passes(), optimizer.phases()
    if loss_passes is None:
        return None
    ops |= {c.op for c in loss_passes.forward + loss_passes.backward}
    ops |= {c.op for phase in phases for c in phase.calls}
    ops |= {UPDATES_OF_HALVES[op] for op in ops & set(UPDATES_OF_HALVES)}
    try:
        key = (shapes[0], bool(augment), bool(input_grad),
               None if trainable_layers is None else frozenset(trainable_layers),
               np.dtype(model.dtype).name, np.dtype(model.input_dtype).name, tuple(layers),
               (loss.target_kind, loss_passes.forward, loss_passes.backward, tuple(loss_passes.workspaces.items())),
               phases, tuple((op, kernel(op, "cpu")) for op in sorted(ops)))
        hash(key)
    except Exception:  # an unhashable operand, an op without a CPU kernel: no key (rendering says what is wrong)
        return None
    return key


#: the ops every step may call besides its layers', loss's and optimizer's
_FIXED_OPS = ("gather_rows", "gather_labels", "combine_halves", "random_translate")


def _render(model, loss, optimizer, passes: list[Any], shapes: list[tuple[int, ...]], augment: bool,
            input_grad: bool, trainable_layers: Any) -> StepSource | None:
    """:func:`generate`'s step, rendered from the layers' passes (:func:`describe_layers`)."""
    from ..optimizers import is_constrained

    layers = model.layers
    loss_passes = loss.passes()
    if loss_passes is None:
        return None
    n = len(layers)
    trainable = [l for l, layer in enumerate(layers)
                 if layer.params and (trainable_layers is None or l in trainable_layers)]
    first = 0 if input_grad else (trainable[0] if trainable else n)

    names: dict[str, Binding] = {}
    namer = _Namer(model, passes, loss_passes.workspaces)
    slots: list[tuple[str, int, str]] = []

    def scalar(owner: str, index: int):
        def slot(name: str) -> str:
            key = (owner, index, name)
            if key not in slots:
                slots.append(key)
            return f"scalars[{slots.index(key)}]"
        return slot

    def scope(table, specials=None, owner=("layer", -1)) -> Scope:
        values = {"step": "step", "fresh": literal(True, specialize=False), "index": "slot", **(specials or {})}
        return Scope(table, namer, names, values, scalar(*owner))

    def layer_scope(l: int) -> Scope:
        return scope({"x": lambda r: Binding("act", l, view=r.view), "y": lambda r: Binding("act", l + 1, view=r.view),
                      "dx": lambda r: Binding("dact", l, view=r.view), "dy": lambda r: Binding("dact", l + 1, view=r.view),
                      "param": lambda r: Binding("param", l, r.name, r.view),
                      "grad": lambda r: Binding("grad", l, r.name, r.view),
                      "work": lambda r: Binding("work", l, r.name, r.view),
                      "buffer": lambda r: Binding("buffer", l, r.name, r.view)},
                     {"need_dx": literal(l > first or bool(input_grad and l == 0), specialize=False)}, ("layer", l))

    forward: list[str] = []
    backward: list[str] = []
    for l, described in enumerate(passes):
        if isinstance(described, LegacyPasses):
            lines_f, lines_b = described.render(l, namer, names, need_dx=l > first or (input_grad and l == 0))
            forward += lines_f
            if l >= first:
                backward[:0] = lines_b
            continue
        s = layer_scope(l)
        forward += [render_call(c, s) for c in calls_of(described.forward)]
        if l >= first:
            backward[:0] = [render_call(c, s) for c in calls_of(described.backward)]

    loss_scope = scope({"x": lambda r: Binding("act", n, view=r.view), "dx": lambda r: Binding("dact", n, view=r.view),
                        "target": lambda r: Binding("target", view=r.view),
                        "work": lambda r: Binding("work", -1, r.name, r.view),
                        "losses": lambda r: Binding("fixed", name="losses"),
                        "counts": lambda r: Binding("fixed", name="correct")})
    loss_forward = [render_call(c, loss_scope) for c in loss_passes.forward]
    loss_backward = [render_call(c, loss_scope) for c in loss_passes.backward]

    params = [(l, key) for l in trainable for key in layers[l].params]
    grads = []
    for l, key in params:
        binding = Binding("grad", l, key, "flat")
        grads.append(namer(binding))
        names.setdefault(grads[-1], binding)

    def update_lines(phases: tuple[Phase, ...], grad_kind: str = "grad") -> list[str]:
        """The update of every parameter from the gradients of kind ``grad_kind``."""
        lines = [f"{name} = 0.0" for name in accumulated_locals(c for p in phases for c in p.calls)]
        global_scope = scope({}, owner=("optimizer", -1))
        for phase in phases:
            if not phase.per_parameter:
                lines += [render_call(c, global_scope) for c in phase.calls]
                continue
            for l, key in params:
                if phase.only == "constrained" and not is_constrained(f"{l}.{key}", layers[l].params[key]):
                    continue
                s = scope({"param": lambda r, l=l, key=key: Binding("param", l, key, r.view),
                           "grad": lambda r, l=l, key=key: Binding(grad_kind, l, key, r.view),
                           "other_grad": lambda r, l=l, key=key: Binding("other_grad", l, key, r.view),
                           "state": lambda r, l=l, key=key: Binding("state", l, key, slot=r.name)},
                          owner=("optimizer", -1))
                lines += [render_call(c, s) for c in phase.calls]
        return lines

    phases = optimizer.phases()
    updates = update_lines(phases)
    folded = updates_of_halves(phases)  # the split mode's update joining the halves as it reads them
    joins = []
    for (l, key), g in zip(params, grads):
        other, joined = Binding("other_grad", l, key, "flat"), Binding("joined", l, key, "flat")
        names.setdefault(namer(other), other)
        names.setdefault(namer(joined), joined)
        joins.append(f"combine_halves({g}, {namer(other)}, w0, w1, {namer(joined)})")

    names.setdefault("a0", Binding("act", 0))
    if augment:
        names.setdefault("raw_r", Binding("raw", view="rows"))
        names.setdefault("raw", Binding("raw"))
        gather_input = ["gather_rows(X, order, start, raw_r)",
                        f"random_translate(raw, augment[0], augment[1], step * {AUGMENT_STRIDE}, a0)"]
    else:
        names.setdefault("a0_r", Binding("act", 0, view="rows"))
        gather_input = ["gather_rows(X, order, start, a0_r)"]
    if loss.target_kind == "labels" and len(shapes[-1]) == 2:
        names.setdefault("t", Binding("target"))
        gather_target = "gather_labels(Y, order, start, t)"
    else:  # value targets, and a sequence's labels (N, T), gather as rows
        names.setdefault("t_r", Binding("target", view="rows"))
        gather_target = "gather_rows(Y, order, start, t_r)"

    ops = {"gather_rows", "gather_labels", "combine_halves"}
    if augment:
        ops.add("random_translate")
    for described in passes:
        ops |= described.ops()
    ops |= {c.op for c in loss_passes.forward + loss_passes.backward}
    ops |= {c.op for phase in phases + (folded or ()) for c in phase.calls}
    imports = []
    for op in sorted(ops):
        line = _import_line(op)
        if line is None:
            return None
        imports.append(line)

    from ..plugins.kernels import kernel

    body = [
        "bs = a0.shape[0]",
        "for b in range(n_batches):",
        "    start = start0 + b * bs",
        "    step = step0 + b + 1",
        "    slot = b",
        *_indent(gather_input + [gather_target] + forward + loss_forward, 4),
        "    if not math.isfinite(losses[slot]):",
        "        return b",
        *_indent(loss_backward + backward + updates, 4),
        "return n_batches",
    ]
    gradient_body = [
        "start = start0",
        "step = step0 + 1",
        "slot = 0",
        *gather_input, gather_target, *forward, *loss_forward,
        "if math.isfinite(losses[slot]):",
        *_indent(loss_backward + backward + ["pass"], 4),
        "return 0",
    ]
    join_body = [*joins, "return 0"]
    if folded is None:
        update_body = ["step = step0 + 1", *update_lines(phases, "joined"), "return 0"]
    else:
        weight_locals = ", ".join(local_name(w) for w in HALF_WEIGHTS)
        update_body = ["step = step0 + 1", f"{weight_locals} = w0, w1", *update_lines(folded), "return 0"]
    args = list(FIXED_ARGS) + [name for name in names if not _fixed(names[name])]
    own = args[len(FIXED_ARGS):]
    last_args = [f"last_{name}" for name in own if names[name].kind in BATCH_SIZED_KINDS]
    weight_params = ["w0", "w1"]
    gradient_params = _parameters(args, gradient_body)
    join_params = _parameters(args + weight_params, join_body)
    update_params = _parameters(args + weight_params, update_body)

    def call(function: str, params: list[str], row0: str, weights: tuple[str, ...] = (), last: bool = False,
             step: str = "step0 + batch") -> str:
        """A call of a split-mode part from ``run_split_batches``: a batch's rows from ``row0``,
        ``weights`` for the halves' weights, the last batch's own arrays where ``last``."""
        values = {"start0": row0, "n_batches": "int64(1)", "step0": step, "losses": "halves_loss[role]",
                  "correct": "halves_correct[role]", **dict(zip(weight_params, weights))}
        for name in own:
            values[name] = f"last_{name}" if last and names[name].kind in BATCH_SIZED_KINDS else name
        return f"{function}({', '.join(values.get(p, p) for p in params)})"

    half_weights = ("own_weight", "other_weight")
    signal_joined = "handoff.signal(control, handoff.JOINED + role * handoff.SLOT, batch + 1)"
    if folded is None:  # join, then update from the joined gradients
        update_batch = [call("join_halves", join_params, "row0", half_weights), signal_joined,
                        call("update_from_halves", update_params, "row0", half_weights)]
        after_loop = []
    else:  # the update reads both halves' gradients: the other thread may overwrite its own only after it
        update_batch = [call("update_from_halves", update_params, "row0", half_weights), signal_joined]
        after_loop = [  # the model's gradients: the last batch's joined, as a run of whole batches leaves them
            "if role == 0 and done == total and done > 0:",
            "    rows0, rows1 = (last_first, last_second) if done > n_batches else (first, second)",
            "    size = rows0 + rows1",
            "    " + call("join_halves", join_params, "start0", ("rows0 / size", "rows1 / size"),
                         step="step0 + done"),
        ]
    split_body = [  # both threads, role 0 on the first halves and role 1 on the second
        "other = 1 - role",
        "total = n_batches + (1 if last_first + last_second > 0 else 0)",
        "done = total",
        "for batch in range(total):",
        "    last = batch == n_batches",
        "    rows0, rows1 = (last_first, last_second) if last else (first, second)",
        "    size = rows0 + rows1",
        "    own_weight, other_weight = (rows0 / size, rows1 / size) if role == 0 else (rows1 / size, rows0 / size)",
        "    row0 = start0 + batch * (first + second)",
        # this half's gradients are written again only once the other thread has joined them
        "    if batch > 0 and not handoff.wait_until(control, handoff.JOINED + other * handoff.SLOT, batch):",
        "        done = batch",
        "        break",
        "    if last:",
        "        " + call("half_batch_gradients", gradient_params, "row0 + role * rows0", last=True),
        "    else:",
        "        " + call("half_batch_gradients", gradient_params, "row0 + role * rows0"),
        "    handoff.signal(control, handoff.HALVES + role * handoff.SLOT, batch + 1)",
        "    loss = math.nan",
        "    if handoff.wait_until(control, handoff.HALVES + other * handoff.SLOT, batch + 1):",
        "        loss = (rows0 * halves_loss[0, 0] + rows1 * halves_loss[1, 0]) / size",
        "    if not math.isfinite(loss):",
        "        done = batch",
        "        break",
        "    if role == 0:",
        "        losses[batch] = loss",
        "        correct[batch] = halves_correct[0, 0] + halves_correct[1, 0]",
        *_indent(update_batch, 4),
        *after_loop,
    ]
    per_run = ", ".join(f"control[handoff.RUN + {i}]" for i in range(len(PER_RUN_ARGS)))
    serving_body = [  # role 0 runs once; role 1 runs each run posted until it goes
        "runs = 0",
        "while role == 0 or handoff.wait_for_post(control, polls):",
        "    if role == 1:",
        "        runs += 1",
        f"        {', '.join(PER_RUN_ARGS)} = {per_run}",
        *_indent(split_body, 4),
        "    if role == 0:",
        "        return done",
        "    handoff.finish_run(control, runs)",
        "return runs",
    ]
    modules = {getattr(kernel(op, "cpu"), "py_func").__module__ for op in ops}
    source = "\n".join([
        '"""Generated by nkernels.compiled.step: one training run of a Sequential. Do not edit."""',
        f"# kernel sources: {kernel_fingerprint(modules)}",
        # One file per dtype: Numba's cache index is not safe against two processes adding
        # different specializations of one function at once (a mixed-up index segfaulted).
        f"# dtype: {np.dtype(model.dtype).name}, inputs {np.dtype(model.input_dtype).name}",
        "import math",
        "from numba import njit",
        "from numpy import bool_, int64",
        "from nkernels.kernels.calls import KernelByAddress",
        "from nkernels.kernels.cpu import handoff",
        *imports,
        *[f"{op} = KernelByAddress(_{op})" for op in sorted(ops)],
        "",
        "",
        '@njit(cache=True, error_model="numpy")',
        f"def run_batches({', '.join(args)}):",
        *_indent(body, 4),
        "",
        "",
        '@njit(cache=True, error_model="numpy", nogil=True)',
        f"def half_batch_gradients({', '.join(gradient_params)}):",
        *_indent(gradient_body, 4),
        "",
        "",
        '@njit(cache=True, error_model="numpy", nogil=True)',
        f"def join_halves({', '.join(join_params)}):",
        *_indent(join_body, 4),
        "",
        "",
        '@njit(cache=True, error_model="numpy", nogil=True)',
        f"def update_from_halves({', '.join(update_params)}):",
        *_indent(update_body, 4),
        "",
        "",
        '@njit(cache=True, error_model="numpy", nogil=True)',
        f"def run_split_batches({', '.join(args + last_args + list(SPLIT_ARGS))}):",
        *_indent(serving_body, 4),
        "",
    ])
    bindings = {name: names[name] for name in args[len(FIXED_ARGS):]}
    stateful = any(isinstance(p, LegacyPasses) and p.state or isinstance(p, LayerPasses) and p.stateful()
                   for p in passes)
    return StepSource(source, bindings, slots, grads, passes, stateful, ops)


def _parameters(args: list[str], body: list[str]) -> list[str]:
    """The names of ``args`` that the lines of ``body`` use, in order: a split-mode part takes only
    those, since a call counts a reference to each array argument in and out (~9 ns an array: a
    call passing the bench MLP's 119 arrays took ~1 µs, twice a half batch)."""
    used = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", "\n".join(body)))
    return [name for name in args if name in used]


def _fixed(binding: Binding) -> bool:
    return binding.kind == "fixed"
