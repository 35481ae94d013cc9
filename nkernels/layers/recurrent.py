"""Recurrent layers: LSTM and GRU, batch-first, the whole sequence in one fused kernel call."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer, check_bool, check_positive_int


def _workspace_spec(op: str):
    """(forward workspace names, backward workspace names, shapes function) of the kernels of ``op``."""
    from ..kernels.cpu import recurrent

    if op == "lstm":
        return recurrent.LSTM_FORWARD_WORKSPACES, recurrent.LSTM_BACKWARD_WORKSPACES, recurrent.lstm_workspace_shapes
    return recurrent.GRU_FORWARD_WORKSPACES, recurrent.GRU_BACKWARD_WORKSPACES, recurrent.gru_workspace_shapes


#: the forward saves its first three workspaces for the backward
_SAVED = 3


class _Recurrent(Layer):
    """Shared by LSTM and GRU: PyTorch's parameters and initialization, sequence handling."""

    op = ""
    n_gates = 0
    supported_devices = ("cpu", "cuda")

    def __init__(self, input_size: int, hidden_size: int, return_sequences: bool = False):
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.return_sequences = check_bool(return_sequences, "return_sequences")
        g, h = self.n_gates * self.hidden_size, self.hidden_size
        self.params.update(weight_ih=np.empty((g, self.input_size), np.float32),
                           weight_hh=np.empty((g, h), np.float32),
                           bias_ih=np.empty(g, np.float32), bias_hh=np.empty(g, np.float32))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, as PyTorch's recurrent layers."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self.hidden_size))

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.input_size:
            raise ValueError(f"{self!r} expects batch-first sequences of shape (N, T, {self.input_size}), "
                             f"got {tuple(input_shape)}")
        n, t = input_shape[:2]
        return (n, t, self.hidden_size) if self.return_sequences else (n, self.hidden_size)

    def _workspaces(self, x_shape):
        forward_names, backward_names, shapes = _workspace_spec(self.op)
        n, t, i = x_shape
        return forward_names, backward_names, shapes(n, t, i, self.hidden_size)

    def forward(self, x, training=False):
        x = self.prepare_input(x, (None, self.input_size))
        forward_names, _, shapes = self._workspaces(x.shape)
        work = [self.empty(shapes[name], x.dtype) for name in forward_names]
        hs = self.empty(tuple(x.shape[:2]) + (self.hidden_size,), x.dtype)
        p = self.params
        self.kernel_of(self.op + "_forward")(x, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"],
                                             *work, hs)
        if training:
            self.save_for_backward(x=x, saved=work[:_SAVED], hs_shape=tuple(hs.shape))
        if self.return_sequences:
            return hs
        last = self.empty((hs.shape[0], self.hidden_size), x.dtype)
        self.kernel_of("last_step_forward")(hs, last)
        return last

    def backward(self, dy):
        state = self.saved_for_backward()
        x, hs_shape = state["x"], state["hs_shape"]
        dy = self.prepare_grad_output(dy, hs_shape if self.return_sequences else (hs_shape[0], hs_shape[2]))
        if self.return_sequences:
            dhs = dy
        else:
            dhs = self.empty(hs_shape, dy.dtype)
            self.kernel_of("last_step_backward")(dy, dhs)
        _, backward_names, shapes = self._workspaces(x.shape)
        scratch = [self.empty(shapes[name], x.dtype) for name in backward_names]
        dx = self.empty(x.shape, x.dtype)
        p, g = self.params, self.grads
        self.kernel_of(self.op + "_backward")(x, p["weight_ih"], p["weight_hh"], *state["saved"], dhs, *scratch, dx,
                                      g["weight_ih"], g["weight_hh"], g["bias_ih"], g["bias_hh"])
        return dx

    def compiled_op(self, input_shape, dtype):
        forward_names, backward_names, shapes = self._workspaces(input_shape)
        workspaces = {f"f_{name}": (shapes[name], None) for name in forward_names}
        workspaces.update({f"b_{name}": (shapes[name], None) for name in backward_names})
        n, t, _ = input_shape
        fwd = ", ".join(f"{{w[f_{name}]}}" for name in forward_names)
        saved = ", ".join(f"{{w[f_{name}]}}" for name in forward_names[:_SAVED])
        bwd = ", ".join(f"{{w[b_{name}]}}" for name in backward_names)
        ops = [self.op + "_forward", self.op + "_backward"]
        if self.return_sequences:
            hs, dhs, pre, post = "{y}", "{dy}", "", ""
        else:
            workspaces.update(hs=((n, t, self.hidden_size), None), dhs=((n, t, self.hidden_size), None))
            hs, dhs = "{w[hs]}", "{w[dhs]}"
            post = "\nlast_step_forward({w[hs]}, {y})"
            pre = "last_step_backward({dy}, {w[dhs]})\n"
            ops += ["last_step_forward", "last_step_backward"]
        params = "{p[weight_ih]}, {p[weight_hh]}"
        return CompiledOp(
            forward=f"{self.op}_forward({{x}}, {params}, {{p[bias_ih]}}, {{p[bias_hh]}}, {fwd}, {hs})" + post,
            backward=(pre + f"{self.op}_backward({{x}}, {params}, {saved}, {dhs}, {bwd}, {{dx}}, "
                      f"{{g[weight_ih]}}, {{g[weight_hh]}}, {{g[bias_ih]}}, {{g[bias_hh]}})"),
            ops=tuple(ops),
            workspaces=workspaces,
        )


class LSTM(_Recurrent):
    """Long short-term memory over (N, T, input_size) sequences, as ``torch.nn.LSTM(batch_first=True)``.

    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H), gates
    in order i, f, g, o; zero initial state. Returns the last hidden state (N, H), or every
    step's (N, T, H) with ``return_sequences=True``.
    """

    op = "lstm"
    n_gates = 4


class GRU(_Recurrent):
    """Gated recurrent unit, as ``torch.nn.GRU(batch_first=True)``: gates r, z, n with
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``; parameters (3H, ...) as PyTorch's.
    """

    op = "gru"
    n_gates = 3
