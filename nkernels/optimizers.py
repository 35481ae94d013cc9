"""Optimizers. Each update is one fused kernel pass over a flat view of each parameter.

An optimizer keeps its state (momentum buffers, Adam moments, the step count) keyed by the
parameter's name in ``model.params``, so checkpoints can store and restore it.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .runtime import devices
from .plugins.kernels import kernel
from .passes import STEP, Call, Const, Frame, Local, Phase, Ref, Scalar, run, state
from .validation import check_bool, check_number, constructor_signature

#: the parameter an optimizer phase updates, and its gradient
PARAM, GRAD = Ref("param"), Ref("grad")


def is_constrained(key: str, param: np.ndarray) -> bool:
    """Whether the max-norm constraint applies: Dense and convolution weights (``*.weight``, 2-D or more)."""
    return key.rsplit(".", 1)[-1] == "weight" and param.ndim >= 2


class Optimizer:
    """Base class: ``step(params, grads)`` updates the arrays of ``params`` in place.

    ``clip_norm`` rescales all gradients together when their global L2 norm exceeds it (as
    ``torch.nn.utils.clip_grad_norm_``). ``max_norm`` rescales, after each update, every row of
    a Dense or convolution weight (one output unit's incoming weights) whose L2 norm exceeds
    it, the constraint used with dropout (as ``torch.renorm(w, 2, 0, max_norm)``).
    """

    #: names of the per-parameter state arrays, each shaped like its parameter
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, clip_norm: float | None = None, max_norm: float | None = None):
        self.lr = check_number(lr, "lr", low=0, low_open=True)
        self.clip_norm = check_number(clip_norm, "clip_norm", low=0, low_open=True, allow_none=True)
        self.max_norm = check_number(max_norm, "max_norm", low=0, low_open=True, allow_none=True)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def fresh(self, lr: float | None = None) -> Optimizer:
        """A copy of this optimizer's configuration without its state, with learning rate ``lr`` when given.

        The copy starts at step 0, with no moments or velocities; this optimizer is left as it is.

        Every scheme's ``fit`` trains with a fresh copy of its configured optimizer, so a scheme
        object (or an optimizer instance) used for one run never carries state into the next.
        """
        optimizer = copy.copy(self)
        optimizer.steps, optimizer.state = 0, {}
        if lr is not None:
            optimizer.lr = check_number(lr, "lr", low=0, low_open=True)
        return optimizer

    def state_for(self, key: str, param: np.ndarray) -> dict[str, np.ndarray]:
        """The state arrays of parameter ``key`` (flat, created at zero on first use, on the
        parameter's device; state loaded on the other device moves with its values)."""
        device = devices.device_of(param)
        state = self.state.get(key)
        if state is None or any(tuple(s.shape) != (param.size,) or s.dtype != param.dtype
                                for s in state.values()):
            state = self.state[key] = {n: devices.zeros(param.size, param.dtype, device)
                                       for n in self.state_names}
        elif any(devices.device_of(s) != device for s in state.values()):
            state = self.state[key] = {n: devices.move(s, device) for n, s in state.items()}
        return state

    def scalars(self) -> dict[str, float]:
        """The hyperparameters the update reads, by name (the :class:`~nkernels.passes.Scalar`
        operands of :meth:`phases`): read afresh at every run, so a schedule's new ``lr`` applies."""
        values = {"lr": self.lr, **self._hyperparameters()}
        if self.clip_norm is not None:
            values["clip_norm"] = self.clip_norm
        if self.max_norm is not None:
            values["max_norm"] = self.max_norm
        return values

    def _hyperparameters(self) -> dict[str, float]:
        """The subclass's own hyperparameters besides ``lr``."""
        return {}

    def update_calls(self) -> tuple:
        """The calls that update one parameter (``param``, ``grad`` and ``state(name)`` refs of it)."""
        raise NotImplementedError

    def phases(self) -> tuple[Phase, ...]:
        """The whole update, described once: clipping by global norm (when ``clip_norm`` is set),
        the subclass's update of each parameter, and the max-norm constraint (when ``max_norm`` is
        set). :meth:`step` runs it; the compiled step renders it."""
        phases = []
        if self.clip_norm is not None:
            total, factor = Local("grad_sq_sum"), Local("clip_factor")
            phases += [Phase((Call("sum_of_squares", GRAD.flat, result=total, accumulate=True),)),
                       Phase((Call("clip_factor", total, Scalar("clip_norm"), result=factor),), per_parameter=False),
                       Phase((Call("scale_inplace", GRAD.flat, factor),))]
        phases.append(Phase(self.update_calls()))
        if self.max_norm is not None:
            phases.append(Phase((Call("max_norm_rows", PARAM.rows, Scalar("max_norm")),), only="constrained"))
        return tuple(phases)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """One update of every parameter from its gradient (clipped and constrained as configured)."""
        self.steps += 1
        if not params:
            return
        device = devices.device_of(next(iter(params.values())))
        frame = Frame({}, self.scalars(), {"step": self.steps}, {})
        for phase in self.phases():
            frame.locals.update({c.result.name: 0.0 for c in phase.calls
                                 if c.result is not None and c.accumulate and c.result.name not in frame.locals})
            if not phase.per_parameter:
                run(phase.calls, frame, lambda op: kernel(op, device))
                continue
            for key, param in params.items():
                if phase.only == "constrained" and not is_constrained(key, param):
                    continue
                frame.arrays = {"param": param, "grad": grads[key],
                                **{("state", n): a for n, a in self.state_for(key, param).items()}}
                run(phase.calls, frame, lambda op: kernel(op, device))

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this optimizer (without its state)."""
        raise NotImplementedError

    def fused_form(self) -> tuple[int, np.ndarray, bool] | None:
        """``(code, hyper, flag)`` for :func:`nkernels.kernels.cpu.optim.apply_updates`, which updates
        parameters inside a plugin's own compiled loop; None when this update needs more than that
        kernel does (clipping, a max-norm constraint, or another optimizer)."""
        return None

    def _fused(self, code: int, flag: bool) -> tuple[int, np.ndarray, bool] | None:
        from .kernels.cpu.optim import HYPERPARAMETERS

        if self.clip_norm is not None or self.max_norm is not None:
            return None
        scalars = self.scalars()
        return code, np.array([scalars[name] for name in HYPERPARAMETERS[code]]), bool(flag)

    def _constraints(self) -> dict[str, Any]:
        return {"clip_norm": self.clip_norm, "max_norm": self.max_norm}

    def state_dict(self) -> dict[str, Any]:
        """The step count and state arrays (NumPy, copied back from a GPU), for checkpoints."""
        return {"steps": self.steps,
                "state": {k: {n: devices.to_host(a) for n, a in v.items()} for k, v in self.state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.steps = int(state["steps"])
        self.state = {k: {n: np.array(a) for n, a in v.items()} for k, v in state["state"].items()}


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""

    state_names = ("velocity",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None):
        super().__init__(lr, clip_norm, max_norm)
        self.momentum = check_number(momentum, "momentum", low=0)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)
        self.nesterov = check_bool(nesterov, "nesterov")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum above 0")

    def _hyperparameters(self):
        return {"momentum": self.momentum, "weight_decay": self.weight_decay}

    def fused_form(self):
        from .kernels.cpu.optim import SGD as CODE

        return self._fused(CODE, self.nesterov) if type(self) is SGD else None

    def update_calls(self):
        return (Call("sgd_update", PARAM.flat, GRAD.flat, state("velocity"), Scalar("lr"), Scalar("momentum"),
                     Scalar("weight_decay"), Const(self.nesterov)),)

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, **self._constraints()}


class Adam(Optimizer):
    """Adam (Kingma and Ba), with L2 weight decay added to the gradient as ``torch.optim.Adam``."""

    state_names = ("m", "v")
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None):
        super().__init__(lr, clip_norm, max_norm)
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (check_number(betas[0], "betas[0]", low=0, high=1, high_open=True),
                      check_number(betas[1], "betas[1]", low=0, high=1, high_open=True))
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)

    def _hyperparameters(self):
        return {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps, "weight_decay": self.weight_decay}

    def fused_form(self):
        from .kernels.cpu.optim import ADAM as CODE

        return self._fused(CODE, self.decoupled) if type(self) in (Adam, AdamW) else None

    def update_calls(self):
        return (Call("adam_update", PARAM.flat, GRAD.flat, state("m"), state("v"), Scalar("lr"), Scalar("beta1"),
                     Scalar("beta2"), Scalar("eps"), Scalar("weight_decay"), Const(self.decoupled), STEP),)

    def get_config(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
                **self._constraints()}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``."""

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, clip_norm: float | None = None, max_norm: float | None = None):
        super().__init__(lr, betas, eps, weight_decay, clip_norm, max_norm)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get_optimizer(optimizer: Any, **options: Any) -> Optimizer:
    """An Optimizer from an instance or a name (``"sgd"``, ``"adam"``, ``"adamw"``) plus options."""
    if isinstance(optimizer, Optimizer):
        if options:
            raise ValueError(f"options {sorted(options)} given with an optimizer instance; set them on it")
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
        accepted = [name for name in constructor_signature(cls).parameters]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"optimizer {optimizer!r} does not accept the option(s) {unknown}; "
                            f"it accepts {accepted}")
        return cls(**options)
    raise ValueError(f"unknown optimizer {optimizer!r}; available: {', '.join(sorted(OPTIMIZERS))}")


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer"]
