"""Optimizers. Each update is one fused kernel pass over a flat view of each parameter.

An optimizer keeps its state (momentum buffers, Adam moments, the step count) keyed by the
parameter's name in ``model.params``, so checkpoints can store and restore it.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np

from . import devices
from .kernel_registry import kernel


def _check_rate(value: Any, name: str, *, positive: bool = False, below_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0) or (below_one and value >= 1):
        bounds = "in [0, 1)" if below_one else ("above 0" if positive else "at least 0")
        raise ValueError(f"{name} must be a finite number {bounds}, got {value}")
    return value


def _optional_positive(value: Any, name: str) -> float | None:
    return None if value is None else _check_rate(value, name, positive=True)


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
    op = ""

    def __init__(self, lr: float, clip_norm: float | None = None, max_norm: float | None = None):
        self.lr = _check_rate(lr, "lr", positive=True)
        self.clip_norm = _optional_positive(clip_norm, "clip_norm")
        self.max_norm = _optional_positive(max_norm, "max_norm")
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
            optimizer.lr = _check_rate(lr, "lr", positive=True)
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

    def hyper(self) -> np.ndarray:
        """The hyperparameters the update kernel reads, as float64 (``lr`` first)."""
        raise NotImplementedError

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """One update of every parameter from its gradient (clipped and constrained as configured)."""
        self.steps += 1
        if not params:
            return
        device = devices.device_of(next(iter(params.values())))
        if self.clip_norm is not None:
            total = 0.0
            for key in params:
                total += kernel("sum_of_squares", device)(devices.flat_view(grads[key]))
            factor = kernel("clip_scale", device)(np.sqrt(total), self.clip_norm)
            for key in params:
                kernel("scale_inplace", device)(devices.flat_view(grads[key]), factor)
        update = kernel(self.op, device)
        for key, param in params.items():
            self._update(update, devices.flat_view(param), devices.flat_view(grads[key]),
                         self.state_for(key, param))
        if self.max_norm is not None:
            for key, param in params.items():
                if is_constrained(key, param):
                    kernel("max_norm_rows", device)(param.reshape(param.shape[0], param.size // param.shape[0]),
                                                    self.max_norm)

    def _update(self, update, param, grad, state) -> None:
        raise NotImplementedError

    def update_template(self) -> str:
        """Source calling the update kernel with ``{p}``, ``{g}``, ``{s[name]}``, ``{hyper}`` and ``{step}``."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this optimizer (without its state)."""
        raise NotImplementedError

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
    op = "sgd_update"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None):
        super().__init__(lr, clip_norm, max_norm)
        self.momentum = _check_rate(momentum, "momentum")
        self.weight_decay = _check_rate(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum above 0")

    def hyper(self):
        return np.array([self.lr, self.momentum, self.weight_decay])

    def _update(self, update, param, grad, state):
        update(param, grad, state["velocity"], self.lr, self.momentum, self.weight_decay, self.nesterov)

    def update_template(self):
        return (f"sgd_update({{p}}, {{g}}, {{s[velocity]}}, {{hyper}}[0], {{hyper}}[1], {{hyper}}[2], "
                f"{self.nesterov})")

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, **self._constraints()}


class Adam(Optimizer):
    """Adam (Kingma and Ba), with L2 weight decay added to the gradient as ``torch.optim.Adam``."""

    state_names = ("m", "v")
    op = "adam_update"
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None):
        super().__init__(lr, clip_norm, max_norm)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (_check_rate(betas[0], "betas[0]", below_one=True),
                      _check_rate(betas[1], "betas[1]", below_one=True))
        self.eps = _check_rate(eps, "eps", positive=True)
        self.weight_decay = _check_rate(weight_decay, "weight_decay")

    def hyper(self):
        return np.array([self.lr, self.betas[0], self.betas[1], self.eps, self.weight_decay])

    def _update(self, update, param, grad, state):
        update(param, grad, state["m"], state["v"], self.lr, self.betas[0], self.betas[1], self.eps,
               self.weight_decay, self.decoupled, self.steps)

    def update_template(self):
        return (f"adam_update({{p}}, {{g}}, {{s[m]}}, {{s[v]}}, {{hyper}}[0], {{hyper}}[1], {{hyper}}[2], "
                f"{{hyper}}[3], {{hyper}}[4], {self.decoupled}, {{step}})")

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
        accepted = [name for name in inspect.signature(cls).parameters]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"optimizer {optimizer!r} does not accept the option(s) {unknown}; "
                            f"it accepts {accepted}")
        return cls(**options)
    raise ValueError(f"unknown optimizer {optimizer!r}; available: {', '.join(sorted(OPTIMIZERS))}")


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer"]
