"""Runs of forward-forward mini-batches: one compiled call per run of batches, buffers allocated once per size."""
from __future__ import annotations

import numpy as np

from nkernels.runtime.threads import blas_single_threaded

from .chain import Chain
from .predict import layer_buffers, scoring_buffers, typed_layers


class FFRun:
    """``run(X2d, labels, order, start, n_batches, size) -> (losses, correct, done)``, the contract of
    nkernels' trainers, through :func:`~nkernels_ff.kernels.ff_batches`.

    With an optimizer the kernel implements (``Optimizer.fused_form()``: SGD, Adam, AdamW without
    clip_norm or max_norm) the updates run inside the kernel; with any other, each batch is one
    call that fills the gradients and the optimizer's ``step`` follows in Python. Random negative
    labels are drawn from ``rng`` (the run's generator, so a resumed run draws the same ones).
    """

    def __init__(self, model, chain: Chain, optimizer, rng_of, *, hardest: bool, skip_first: bool, theta: float):
        from numba.typed import List

        self.model, self.chain, self.optimizer, self.rng_of = model, chain, optimizer, rng_of
        self.hardest, self.skip_first, self.theta = hardest, skip_first, float(theta)
        self.List = List
        self.dtype = chain.denses[0].dtype
        no_bias = np.empty(0, self.dtype)
        self.weights, self.biases = typed_layers(chain)
        self.gweights = List([d.grads["weight"] for d in chain.denses])
        self.gbiases = List([d.grads.get("bias", no_bias) for d in chain.denses])
        self.no_dx = np.empty((0, 0), self.dtype)
        self._buffers: dict[int, tuple] = {}
        self._optimizer_lists: tuple | None = None

    def buffers(self, size: int) -> tuple:
        """The kernel's buffers for batches of ``size`` (see ``ff_batches``)."""
        if size not in self._buffers:
            chain, C = self.chain, self.chain.n_classes
            normed, acts, good = layer_buffers(chain, 2 * size)
            dz = self.List([np.empty((2 * size, w), self.dtype) for w in chain.widths])
            self._buffers[size] = (
                np.empty((size, chain.n_features), self.dtype), np.empty(size, np.int64), np.empty(size, np.int64),
                np.empty((2 * size, chain.n_features + C), self.dtype), normed, acts, dz, good,
                *scoring_buffers(chain, size if self.hardest else 1))  # random negatives score nothing
        return self._buffers[size]

    def optimizer_arrays(self) -> tuple:
        """The flat parameters, gradients and optimizer states in the kernel's order (typed lists, built on
        the first run, after a resume has loaded the optimizer's state)."""
        if self._optimizer_lists is None:
            optimizer, names = self.optimizer, self.optimizer.state_names
            flat = lambda a: a.reshape(a.size)  # noqa: E731
            empty = np.empty(0, self.dtype)
            lists: tuple[list, list, list, list] = ([], [], [], [])
            for key, param in self.model.params.items():
                state = optimizer.state_for(key, param)
                for target, value in zip(lists, (flat(param), flat(self.model.grads[key]), state[names[0]],
                                                 state[names[1]] if len(names) > 1 else empty)):
                    target.append(value)
            self._optimizer_lists = tuple(self.List(x) for x in lists)
        return self._optimizer_lists

    def run(self, X2d, labels, order, start, n_batches, size):
        """``n_batches`` mini-batches of ``size`` rows from ``order[start:]``; returns (losses, correct, done)."""
        from .kernels import ff_batches

        optimizer, C = self.optimizer, self.chain.n_classes
        fused = optimizer.fused_form()
        calls = [(start, n_batches)] if fused is not None else [(start + b * size, 1) for b in range(n_batches)]
        buffers = self.buffers(size)
        losses, correct = np.zeros(n_batches), np.zeros(n_batches, np.int64)
        offsets = (np.zeros(0, np.int64) if self.hardest else
                   self.rng_of().integers(1, C, n_batches * size))
        with blas_single_threaded():
            for first, count in calls:
                b = (first - start) // size
                if fused is not None:
                    code, hyper, flag = fused
                    params, grads, state_a, state_b = self.optimizer_arrays()
                else:
                    code, hyper, flag = 0, np.zeros(3), False
                    params = grads = state_a = state_b = self.List([np.empty(0, self.dtype)])
                done = ff_batches(X2d, labels, order, first, count, offsets[b * size:], C, self.hardest,
                                  self.skip_first, self.theta, self.weights, self.biases, self.gweights,
                                  self.gbiases, *buffers, self.no_dx, fused is not None, params, grads, code, hyper,
                                  flag, state_a, state_b, optimizer.steps, losses[b:], correct[b:])
                if fused is not None:
                    optimizer.steps += done
                elif done:
                    optimizer.step(self.model.params, self.model.grads)
                if done < count:
                    return losses[:b + done], correct[:b + done], b + done
        return losses, correct, n_batches
