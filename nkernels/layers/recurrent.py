"""Recurrent layers: LSTM and GRU, batch-first, the whole sequence in one fused kernel call."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, NEED_DX, X, Y, Call, LayerPasses, grad, param, work
from ..validation import check_bool, check_int
from .base import Layer


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
        self.input_size = check_int(input_size, "input_size")
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.return_sequences = check_bool(return_sequences, "return_sequences")
        g, h = self.n_gates * self.hidden_size, self.hidden_size
        self.add_parameter("weight_ih", (g, self.input_size))
        self.add_parameter("weight_hh", (g, h))
        self.add_parameter("bias_ih", (g,))
        self.add_parameter("bias_hh", (g,))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, as PyTorch's recurrent layers."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self.hidden_size))

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.input_size:
            raise ValueError(f"{self!r} expects input of shape (N, T, {self.input_size}) (batch-first "
                             f"sequences), got {tuple(input_shape)}")
        n, t = input_shape[:2]
        return (n, t, self.hidden_size) if self.return_sequences else (n, self.hidden_size)

    def passes(self, input_shape):
        forward_names, backward_names, shapes = _workspace_spec(self.op)
        n, t, i = input_shape
        sizes = shapes(n, t, i, self.hidden_size)
        workspaces = {f"f_{name}": (sizes[name], None) for name in forward_names}
        workspaces.update({f"b_{name}": (sizes[name], None) for name in backward_names})
        forward_work = [work(f"f_{name}") for name in forward_names]
        backward_work = [work(f"b_{name}") for name in backward_names]
        weights = (param("weight_ih"), param("weight_hh"))
        grads = (grad("weight_ih"), grad("weight_hh"), grad("bias_ih"), grad("bias_hh"))
        if self.return_sequences:
            hs, dhs, last, first = Y, DY, (), ()
        else:
            workspaces.update(hs=((n, t, self.hidden_size), None), dhs=((n, t, self.hidden_size), None))
            hs, dhs = work("hs"), work("dhs")
            last = (Call("last_step_forward", hs, Y),)
            first = (Call("last_step_backward", DY, dhs),)
        return LayerPasses(
            forward=(Call(self.op + "_forward", X, *weights, param("bias_ih"), param("bias_hh"), *forward_work, hs),
                     *last),
            backward=(*first, Call(self.op + "_backward", X, *weights, *forward_work[:_SAVED], dhs, NEED_DX,
                                   *backward_work, DX, *grads)),
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
