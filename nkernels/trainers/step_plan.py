"""The device step plan: every buffer of a GPU training step allocated once, the step a list of launches.

:class:`ParameterStore` holds a model's parameters, gradients and optimizer state in flat device
buffers (one each; the optimizer's state one flat buffer per state name) and makes the layers'
``params`` and ``grads`` and the optimizer's ``state`` views of them, so that an update is one
launch over the flat buffer (:func:`nkernels.kernels.cuda.optim.adam_update_flat`) and clipping
by global norm reduces one buffer on the device. It also mirrors on the device the buffers of
the kernels that can update them there (BatchNorm's running statistics), copied back to the
layers' host buffers when a run of steps ends.

:class:`StepPlan` is the step at one batch size: it reads the layers' and the loss's pass
descriptions (:mod:`nkernels.passes`, the compiled path's description), allocates every
activation, gradient and workspace once, and binds each kernel call to its arrays. A step is then
the gather of a batch, the bound forward calls, the loss (softmax cross-entropy's loss, gradient
and correct count in one launch), the bound backward calls and the fused update: launches only,
no allocation, no copy and no host sync.

**Epilogue fusion.** A Dense, Conv1D or Conv2D whose forward ends in the GEMM's store, followed by
an activation that the GEMM's epilogue computes and whose backward reads its output (ReLU,
Sigmoid, Tanh: :func:`epilogue_activation`), runs as one launch: the GEMM writes the activation's
output into the one buffer the two layers share, and the activation's forward is not launched.
The backward is unchanged (the layer's backward never reads its own output, the activation's
reads only that one), and the numbers are those of the two launches, bit for bit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..compiled.step import AUGMENT_STRIDE
from ..optimizers import SGD, Adam, AdamW, is_constrained
from ..passes import VIEW, X, Y, Frame
from ..passes.interpret import view
from ..passes.ir import INDEX, Local, Ref, calls_of
from ..plugins.kernels import kernel
from ..runtime import devices

#: elements each parameter's segment of the flat buffers is aligned to (256 bytes of float32)
ALIGN = 64
#: kernel ops that update their buffers on the device when handed device arrays
DEVICE_BUFFER_OPS = frozenset({"batchnorm_forward_train"})
#: the optimizers the fused update reproduces (their subclasses may change the update)
FUSED_OPTIMIZERS = (SGD, Adam, AdamW)
#: forward ops whose output the GEMM writes last -> (module, the CUDA form with an epilogue
#: activation: the same arguments, then the activation's name)
EPILOGUE_FORWARDS = {"dense_forward": ("nkernels.kernels.cuda.dense", "dense_forward_activation"),
                     "conv2d_forward": ("nkernels.kernels.cuda.conv", "conv2d_forward_activation"),
                     "conv1d_forward": ("nkernels.kernels.cuda.conv", "conv1d_forward_activation")}


class NotPlannable(Exception):
    """The model cannot run as a device step plan (a layer codes its passes in Python, say)."""


class ParameterStore:
    """Flat device buffers of the parameters, gradients and optimizer state, the model's arrays views of them.

    The trained parameters (``trainable_layers``, None for all) come first, so the fused update
    covers ``[0, n_trained)``. :meth:`adopt` (called before each run of steps) copies in any
    array that something else replaced (a load, an ``astype``, a restored optimizer state) and
    puts the view back.
    """

    def __init__(self, model, optimizer, trainable_layers):
        self.model, self.optimizer = model, optimizer
        entries = [(i, name) for i, layer in enumerate(model.layers) for name in layer.params]
        trained = [e for e in entries if trainable_layers is None or e[0] in trainable_layers]
        self.entries = trained + [e for e in entries if e not in trained]
        dtypes = {np.dtype(model.layers[i].params[name].dtype) for i, name in entries}
        if len(dtypes) > 1:
            raise NotPlannable(f"the parameters have several dtypes ({sorted(map(str, dtypes))})")
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self.offsets, total = {}, 0
        for i, name in self.entries:
            self.offsets[(i, name)] = total
            total += -(-model.layers[i].params[name].size // ALIGN) * ALIGN
            if (i, name) == (trained[-1] if trained else None):
                self.n_trained = total
        if not trained:
            self.n_trained = 0
        self.params = devices.zeros(max(total, 1), self.dtype, "cuda")
        self.grads = devices.zeros(max(total, 1), self.dtype, "cuda")
        self.fused = type(optimizer) in FUSED_OPTIMIZERS
        self.state = {n: devices.zeros(max(total, 1), self.dtype, "cuda") for n in optimizer.state_names} \
            if self.fused else {}
        self.scale = devices.zeros(1, np.float64, "cuda")  # the clipping factor, on the device
        self.trained = [(f"{i}.{name}", i, name) for i, name in trained]
        self.mirrors: dict = {}     # (layer index, buffer name) -> device array
        self._synced: dict = {}     # (layer index, buffer name) -> host values last copied back
        self._views = {key: self._view_set(key) for key in self.entries}
        self.adopt()

    def _segment(self, flat, key):
        layer = self.model.layers[key[0]]
        shape = tuple(layer.params[key[1]].shape)
        size = int(np.prod(shape))
        start = self.offsets[key]
        return flat[start:start + size], shape

    def _view_set(self, key):
        p, shape = self._segment(self.params, key)
        g, _ = self._segment(self.grads, key)
        state = {n: self._segment(flat, key)[0] for n, flat in self.state.items()}
        return p.reshape(shape), g.reshape(shape), state

    def matches(self) -> bool:
        """Whether the model still has the parameters this store was built for (names, shapes, dtype)."""
        entries = [(i, name) for i, layer in enumerate(self.model.layers) for name in layer.params]
        if sorted(entries) != sorted(self.entries):
            return False
        return all(tuple(self.model.layers[i].params[n].shape) == tuple(self._views[(i, n)][0].shape)
                   and np.dtype(self.model.layers[i].params[n].dtype) == self.dtype for i, n in entries)

    def adopt(self) -> None:
        """Make every parameter, gradient and optimizer state array a view of the flat buffers,
        copying in the values of any array that replaced one (nothing to do in a steady run)."""
        trained_keys = {(i, n) for _, i, n in self.trained}
        for key, (p, g, state) in self._views.items():
            layer = self.model.layers[key[0]]
            name = key[1]
            if layer.params[name] is not p:
                devices.assign(p, layer.params[name])
                layer.params[name] = p
            if layer.grads[name] is not g:
                devices.assign(g, layer.grads[name])
                layer.grads[name] = g
            if not self.fused or key not in trained_keys:
                continue
            qualified = f"{key[0]}.{name}"
            current = self.optimizer.state.get(qualified)
            if current is not None and all(current.get(n) is v for n, v in state.items()):
                continue
            for n, v in state.items():
                old = None if current is None else current.get(n)
                if old is not None and tuple(old.shape) == tuple(v.shape):
                    devices.assign(v, old)
                else:
                    devices.assign(v, np.zeros(v.shape, self.dtype))
            self.optimizer.state[qualified] = dict(state)

    # -- buffers updated on the device ----------------------------------------------------------
    def mirror(self, layer_index: int, name: str):
        """The device mirror of buffer ``name`` of layer ``layer_index`` (made on first use)."""
        key = (layer_index, name)
        if key not in self.mirrors:
            host = self.model.layers[layer_index].buffers[name]
            self.mirrors[key] = devices.to_device(np.ascontiguousarray(host))
            self._synced[key] = np.array(host, copy=True)
        return self.mirrors[key]

    def upload_buffers(self) -> None:
        """Copy over the host buffers that changed since they were last copied back (a restore)."""
        for (i, name), mirror in self.mirrors.items():
            host = self.model.layers[i].buffers[name]
            if not np.array_equal(host, self._synced[(i, name)]):
                devices.assign(mirror, host)
                self._synced[(i, name)] = np.array(host, copy=True)

    def download_buffers(self) -> None:
        """Copy the mirrors back into the layers' host buffers (in place)."""
        for (i, name), mirror in self.mirrors.items():
            host = self.model.layers[i].buffers[name]
            mirror.copy_to_host(host)
            self._synced[(i, name)] = np.array(host, copy=True)

    # -- the update -----------------------------------------------------------------------------
    def update(self, trainable_layers) -> None:
        """One optimizer step: fused over the flat buffers (one launch, two more for clipping,
        one per constrained weight for max-norm), or the optimizer's own per-parameter step."""
        from ..kernels.cuda.optim import adam_update_flat, clip_factor_into, sgd_update_flat
        from .layerwise import trained_parameters

        opt = self.optimizer
        if not self.fused:
            opt.step(*trained_parameters(self.model, trainable_layers))
            return
        opt.steps += 1
        n = self.n_trained
        if n == 0:
            return
        p, g = self.params[:n], self.grads[:n]
        scale = None
        if opt.clip_norm is not None:
            clip_factor_into(g, opt.clip_norm, self.scale)
            scale = self.scale
        s = opt.scalars()
        if isinstance(opt, Adam):
            adam_update_flat(p, g, self.state["m"][:n], self.state["v"][:n], s["lr"], s["beta1"], s["beta2"],
                             s["eps"], s["weight_decay"], opt.decoupled, opt.steps, scale)
        else:
            sgd_update_flat(p, g, self.state["velocity"][:n], s["lr"], s["momentum"], s["weight_decay"],
                            opt.nesterov, scale)
        if opt.max_norm is not None:
            renorm = kernel("max_norm_rows", "cuda")
            for qualified, i, name in self.trained:
                param = self.model.layers[i].params[name]
                if is_constrained(qualified, param):
                    renorm(view(param, "rows"), opt.max_norm)


def bind(calls: tuple, frame: Frame) -> list:
    """Each call as ``(kernel, args, index_positions)``: its CUDA kernel and its operands resolved in
    ``frame`` once (views made, scalars read); ``INDEX`` operands are filled in per step."""
    bound = []
    for call in calls:
        args, at = [], []
        for k, arg in enumerate(call.args):
            if arg == INDEX:
                at.append(k)
                args.append(0)
            elif isinstance(arg, Local):
                raise NotPlannable(f"{call.op} reads the local {arg.name!r}, which a device step does not keep")
            else:
                args.append(frame.value(arg))
        if call.result is not None:
            raise NotPlannable(f"{call.op} returns a value to the host")
        bound.append((kernel(call.op, "cuda"), args, tuple(at)))
    return bound


def launch(bound: list, index: int = 0) -> None:
    """Run bound calls in order (``index`` for the calls that take ``INDEX``)."""
    for fn, args, at in bound:
        if at:
            args = list(args)
            for k in at:
                args[k] = index
        fn(*args)


def _reads(args, role: str) -> bool:
    """Whether any of ``args`` is an array of ``role``."""
    return any(isinstance(a, Ref) and a.role == role for a in args)


def _builtin(op: str, module: str) -> bool:
    """Whether the CUDA kernel in force for ``op`` is nkernels' own, from ``module`` (not a plugin's)."""
    import importlib

    chosen = kernel(op, "cuda")
    return getattr(chosen, "function", chosen) is getattr(importlib.import_module(module), op, None)


def epilogue_activation(producer, activation) -> str | None:
    """The activation (a key of :data:`~nkernels.kernels.cuda.gemm.EPILOGUE_ACTIVATIONS`) that the GEMM
    epilogue of the layer whose passes are ``producer`` can apply for the next layer, whose passes are
    ``activation``; None when the pair cannot fuse.

    They fuse when the producer's forward is one call of :data:`EPILOGUE_FORWARDS` writing ``Y``
    last and its backward does not read ``Y``; the activation's forward is one
    ``<name>_forward(X.flat, Y.flat)`` with ``<name>`` an epilogue activation and its backward does
    not read ``X`` (the pre-activation, which the fused forward never writes: SiLU and GELU read it);
    and the kernels in force for both forwards are nkernels' own.
    """
    from ..kernels.cuda.gemm import EPILOGUE_ACTIVATIONS

    if VIEW in (producer.forward, producer.backward, activation.forward, activation.backward):
        return None
    calls, acts = calls_of(producer.forward), calls_of(activation.forward)
    if len(calls) != 1 or len(acts) != 1 or calls[0].op not in EPILOGUE_FORWARDS:
        return None
    call, act = calls[0], acts[0]
    name = act.op[:-len("_forward")] if act.op.endswith("_forward") else ""
    out = call.args[-1] if call.args else None
    if name not in EPILOGUE_ACTIVATIONS or act.args != (X.flat, Y.flat) or act.result is not None \
            or call.result is not None or call.accumulate or act.accumulate:
        return None
    if not isinstance(out, Ref) or out.role != "y" or _reads(call.args[:-1], "y"):
        return None
    if any(_reads(c.args, "y") for c in calls_of(producer.backward)) \
            or any(_reads(c.args, "x") for c in calls_of(activation.backward)):
        return None
    if not (_builtin(call.op, EPILOGUE_FORWARDS[call.op][0])
            and _builtin(act.op, "nkernels.kernels.cuda.activation")):
        return None
    return name


class StepPlan:
    """Every array of one training step at ``batch_size`` allocated once, and the step's calls bound to them.

    ``fuse_activations`` (true by default) fuses each layer with the activation after it where the
    GEMM's epilogue can compute it (module doc); ``epilogues`` maps the fused layers' indices to
    their activations.
    """

    fuse_activations = True

    def __init__(self, trainer, store: ParameterStore, X2d, Y, batch_size: int):
        self.trainer, self.store, self.batch_size = trainer, store, batch_size
        model, loss = trainer.model, trainer.loss
        b = batch_size
        self.xb = devices.empty((b, X2d.shape[1]), X2d.dtype, "cuda")
        self.yb = devices.empty((b,) + tuple(Y.shape[1:]), Y.dtype, "cuda")
        self.labels = Y.ndim == 1
        x = self.xb.reshape(b, *trainer.sample_shape)
        self.shifted = devices.empty(x.shape, x.dtype, "cuda") if trainer.augment is not None else None
        self.input = x if self.shifted is None else self.shifted
        self.layers = []  # (layer index, passes, frame)
        self.epilogues: dict[int, str] = {}  # fused layer index -> the activation its GEMM applies
        x = self.input
        for i, layer in enumerate(model.layers):
            if not layer.described:
                raise NotPlannable(f"layer {i} ({type(layer).__name__}) codes its passes in Python")
            x = layer.prepare_input(x)
            shape = tuple(x.shape)
            layer.check_training_shape(shape)
            passes = layer.passes(shape)
            out_shape = tuple(layer.output_shape(shape))
            dtype = layer._compute_dtype(x)
            arrays: dict[Any, Any] = {"x": x}
            arrays.update({("param", k): v for k, v in layer.params.items()})
            arrays.update({("grad", k): v for k, v in layer.grads.items()})
            device_buffers = {a.name for c in calls_of(passes.forward) if c.op in DEVICE_BUFFER_OPS
                              for a in c.args if isinstance(a, Ref) and a.role == "buffer"}
            arrays.update({("buffer", k): store.mirror(i, k) if k in device_buffers else v
                           for k, v in layer.buffers.items()})
            for name, space in passes.workspaces.items():
                wshape = shape if space.shape == "input" else space.shape
                arrays[("work", name)] = devices.empty(wshape, dtype if space.dtype is None else space.dtype, "cuda")
            fused = self._fuse(passes)
            if fused is not None:  # the previous layer's GEMM writes this activation's output into x
                self.epilogues[i - 1] = fused
                y = x
            else:
                y = x.reshape(out_shape) if passes.forward is VIEW else devices.empty(out_shape, dtype, "cuda")
            arrays["y"] = y
            self.layers.append((i, passes, Frame(arrays, layer.scalars(), {"step": 0, "need_dx": True,
                                                                          "fresh": True, "index": 0})))
            x = y
        self.output = x
        self.target = self.yb if loss.target_kind != "values" else self.yb.reshape(*x.shape)
        self.dout = devices.empty(x.shape, x.dtype, "cuda")
        self.fused_loss = _fused_softmax_cross_entropy(loss)
        trainable = [i for i, layer in enumerate(model.layers) if layer.params]
        first = 0 if trainer.input_grad else (trainable[0] if trainable else len(model.layers))
        dy = self.dout
        self.backward_frames = []
        for i, passes, frame in reversed(self.layers):
            if i < first:
                break
            x = frame.arrays["x"]
            dx = dy.reshape(x.shape) if passes.backward is VIEW else \
                devices.empty(x.shape, model.layers[i]._compute_dtype(x), "cuda")
            frame.arrays.update(dy=dy, dx=dx)
            frame.specials.update(need_dx=trainer.input_grad or i > first)
            self.backward_frames.append((passes, frame))
            dy = dx
        self.loss_frame: Frame | None = None
        self.bound: tuple = ()

    def _fuse(self, passes) -> str | None:
        """The activation the previous layer's GEMM can apply in place of this layer's forward (whose passes
        are ``passes``), or None (no previous layer, not fusable, or fusion off)."""
        if not self.fuse_activations or not self.layers:
            return None
        return epilogue_activation(self.layers[-1][1], passes)

    def _forward_calls(self, i: int, passes, frame) -> list:
        """Layer ``i``'s bound forward calls: none for an activation fused into the layer before, the fused
        kernel for a layer whose GEMM applies the next one's activation."""
        if i - 1 in self.epilogues:
            return []
        calls = bind(calls_of(passes.forward), frame)
        if i in self.epilogues:
            import importlib

            (_, args, at), = calls
            module, name = EPILOGUE_FORWARDS[calls_of(passes.forward)[0].op]
            calls = [(getattr(importlib.import_module(module), name), list(args) + [self.epilogues[i]], at)]
        return calls

    def bind(self, losses, counts) -> None:
        """Bind every call to its arrays and the run's ``losses`` and ``counts`` (read the scalars afresh)."""
        loss = self.trainer.loss
        for i, passes, frame in self.layers:
            frame.scalars = self.trainer.model.layers[i].scalars()
        forward = [c for i, passes, frame in self.layers for c in self._forward_calls(i, passes, frame)]
        backward = [c for passes, frame in self.backward_frames for c in bind(calls_of(passes.backward), frame)]
        if self.fused_loss:
            from ..kernels.cuda.loss import softmax_cross_entropy_step

            out = view(self.output, "vectors")
            loss_calls = [(softmax_cross_entropy_step, [out, view(self.target, "flat"), view(self.dout, "vectors"),
                                                        losses, counts, 0], (5,))]
            loss_backward: list = []
        else:
            passes = loss._passes()
            arrays: dict[Any, Any] = {"x": self.output, "target": self.target, "losses": losses, "counts": counts,
                      "dx": self.dout}
            for name, space in passes.workspaces.items():
                key = ("work", name)
                if self.loss_frame is None or key not in self.loss_frame.arrays:
                    shape = tuple(self.output.shape) if space.shape == "input" else space.shape
                    arrays[key] = devices.empty(shape, self.output.dtype if space.dtype is None else space.dtype,
                                                "cuda")
                else:
                    arrays[key] = self.loss_frame.arrays[key]
            self.loss_frame = Frame(arrays, {}, {"index": 0})
            loss_calls = bind(passes.forward, self.loss_frame)
            loss_backward = bind(passes.backward, self.loss_frame)
        self.bound = (forward, loss_calls, loss_backward, backward)

    def step(self, X2d, Y, order, first: int, index: int) -> None:
        """One training step on rows ``order[first:first + batch_size]`` of the device data, its loss
        and correct count to ``index`` of the bound arrays: launches only."""
        trainer = self.trainer
        gather_rows, gather_labels = trainer.gather
        gather_rows(X2d, order, first, self.xb)
        (gather_labels if self.labels else gather_rows)(Y, order, first, self.yb)
        if self.shifted is not None:
            offset = (trainer.optimizer.steps + 1) * AUGMENT_STRIDE
            trainer.translate(self.xb.reshape(self.shifted.shape), trainer.augment[0], trainer.augment[1], offset,
                              self.shifted)
        forward, loss_calls, loss_backward, backward = self.bound
        launch(forward)
        launch(loss_calls, index)
        launch(loss_backward, index)
        launch(backward)
        self.store.update(trainer.trainable_layers)


def _fused_softmax_cross_entropy(loss) -> bool:
    """Whether ``loss`` is the plain softmax cross-entropy, whose fused kernel the step may use."""
    from ..losses import SoftmaxCrossEntropy

    if type(loss) is not SoftmaxCrossEntropy:
        return False
    passes = loss.passes()
    return [c.op for c in passes.forward + passes.backward] == [
        "softmax_cross_entropy_forward_into", "count_correct_into", "softmax_cross_entropy_backward"]


__all__ = ["ParameterStore", "StepPlan", "NotPlannable", "bind", "launch", "epilogue_activation", "ALIGN"]
