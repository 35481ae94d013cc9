"""Runs of synthetic-gradient mini-batches: the buffers, the typed lists and the calls of the epoch kernel.

``SyntheticRun.run(X2d, labels, order, start, n_batches, batch_size) -> (losses, correct, done)`` is
the contract of nkernels' trainers. When both optimizers have a fused form (SGD, Adam or AdamW
without clip_norm or max_norm) a whole run of batches is one compiled call; otherwise each batch is
one call for the gradients and the optimizers step from Python. Both give the same numbers.
"""
from __future__ import annotations

import numpy as np

from nkernels.runtime.threads import blas_single_threaded

from .chain import Block


def parameter_keys(block: Block) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(key, param, grad)`` of a block's Dense layer, weight then bias, keyed as in ``model.params``."""
    dense = block.dense
    return [(f"{block.index}.{name}", dense.params[name], dense.grads[name]) for name in ("weight", "bias")
            if name in dense.params]


class SyntheticRun:
    """Mini-batches of synthetic-gradient training of ``blocks`` (see :func:`~nkernels_sg.kernels.sg_step`).

    ``predictors`` and ``predictor_grads`` map ``"<index>.weight"``/``"<index>.bias"`` (the output
    layer of the predictor of the hidden block whose Dense layer is at ``index``) and, when
    ``predictor_hidden`` is not 0, ``"<index>.hidden.weight"``/``"<index>.hidden.bias"`` (its hidden
    ReLU layer of that width) to the predictors' arrays; ``optimizer`` updates the blocks (its
    state is keyed like ``model.params``) and ``predictor_optimizer`` the predictors.
    """

    def __init__(self, blocks: list[Block], predictors: dict[str, np.ndarray], predictor_grads: dict[str, np.ndarray],
                 conditioned: bool, predictor_hidden: int, optimizer, predictor_optimizer, dtype):
        from numba.typed import List

        from .kernels import IDENTITY, RELU, SIGMOID, TANH

        self.List, self.blocks, self.conditioned, self.dtype = List, blocks, conditioned, np.dtype(dtype)
        self.predictor_hidden = predictor_hidden
        self.optimizer, self.predictor_optimizer = optimizer, predictor_optimizer
        self.predictors, self.predictor_grads = predictors, predictor_grads
        codes = {None: IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
        self.codes = np.array([codes[b.activation] for b in blocks], np.int64)
        self.no_bias, self.no_dx = np.empty(0, self.dtype), np.empty((0, 0), self.dtype)
        dense = [b.dense for b in blocks]
        self.weights = List([d.params["weight"] for d in dense])
        self.biases = List([d.params.get("bias", self.no_bias) for d in dense])
        self.gweights = List([d.grads["weight"] for d in dense])
        self.gbiases = List([d.grads.get("bias", self.no_bias) for d in dense])
        layers = [f"{b.index}.{part}" for b in blocks[:-1] for part in (("hidden.", "") if predictor_hidden else ("",))]
        self.pweights = List([predictors[key + "weight"] for key in layers])
        self.pbiases = List([predictors[key + "bias"] for key in layers])
        self.gpweights = List([predictor_grads[key + "weight"] for key in layers])
        self.gpbiases = List([predictor_grads[key + "bias"] for key in layers])
        self.block_params = {key: (param, grad) for b in blocks for key, param, grad in parameter_keys(b)}
        self._buffers: dict[int, tuple] = {}
        self._flat: dict[int, tuple] = {}
        self.predictor_loss_sum, self.predictor_batches = 0.0, 0

    def buffers(self, size: int) -> tuple:
        """The batch buffers for ``size`` rows, allocated once per size."""
        if size not in self._buffers:
            List, dtype = self.List, self.dtype
            widths = [b.width for b in self.blocks]
            classes = widths[-1]
            per_block = [List([np.empty((size, w), dtype) for w in widths]) for _ in range(3)]  # pre, post, delta
            per_hidden = [List([np.empty((size, w), dtype) for w in widths[:-1]]) for _ in range(2)]  # synth, truth
            pin = List([np.empty((size, w + classes) if self.conditioned else (0, 0), dtype) for w in widths[:-1]])
            inner = (size, self.predictor_hidden) if self.predictor_hidden else (0, 0)
            predictor_layers = [List([np.empty(inner, dtype) for _ in widths[:-1]]) for _ in range(2)]
            xb = np.empty((size, self.blocks[0].dense.in_features), dtype)
            self._buffers[size] = (xb, np.empty(size, np.int64), pin, *predictor_layers, *per_block, *per_hidden,
                                   np.empty((size, classes), dtype), np.empty((size, classes), dtype))
        return self._buffers[size]

    def update(self, optimizer, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple:
        """``optimizer``'s update in the kernel's form ``(code, hyper, flag, params, grads, state_a, state_b,
        step0)``, with flat views in the order of ``arrays``; code -1 when it has no fused form."""
        fused = optimizer.fused_form()
        key = id(optimizer)
        if key not in self._flat:  # built on the first run: a resumed optimizer has its loaded state by then
            flat = lambda a: a.reshape(a.size)  # noqa: E731
            params = self.List([flat(p) for p, _ in arrays.values()])
            grads = self.List([flat(g) for _, g in arrays.values()])
            if fused is None:
                self._flat[key] = (params, grads, params, params)
            else:
                names, state_a, state_b = optimizer.state_names, [], []
                for name, (param, _) in arrays.items():
                    state = optimizer.state_for(name, param)
                    state_a.append(state[names[0]])
                    state_b.append(state[names[1]] if len(names) > 1 else self.no_bias)
                self._flat[key] = (params, grads, self.List(state_a), self.List(state_b))
        if fused is None:
            return (-1, np.zeros(0), False, *self._flat[key], 0)
        code, hyper, flag = fused
        return (code, hyper, flag, *self._flat[key], optimizer.steps)

    def run(self, X2d, labels, order, start, n_batches, size):
        """``n_batches`` mini-batches of ``size`` rows from ``order[start:]``; returns (losses, correct, done)."""
        from .kernels import sg_epoch

        predictor_arrays = {k: (p, self.predictor_grads[k]) for k, p in self.predictors.items()}
        block_update = self.update(self.optimizer, self.block_params)
        predictor_update = self.update(self.predictor_optimizer, predictor_arrays)
        fused = block_update[0] >= 0 and predictor_update[0] >= 0
        losses, correct = np.zeros(n_batches), np.zeros(n_batches, np.int64)
        predictor_losses = np.zeros(n_batches)
        xb, yb, pin, phidden, dphidden, pre, post, delta, synth, truth, probs, dout = self.buffers(size)
        done = 0
        with blas_single_threaded():
            for first in ([0] if fused else range(n_batches)):
                count = n_batches if fused else 1
                ran = sg_epoch(X2d, labels, order, start + first * size, count, xb, yb, self.weights, self.biases,
                               self.gweights, self.gbiases, self.codes, self.pweights, self.pbiases, self.gpweights,
                               self.gpbiases, self.conditioned, pin, phidden, dphidden, pre, post, delta, synth,
                               truth, probs, dout, self.no_dx, block_update, predictor_update, losses[first:],
                               correct[first:], predictor_losses[first:])
                done += ran
                if ran < count:
                    break
                if not fused:
                    self.step_unfused(block_update, predictor_update)
                    block_update = self.update(self.optimizer, self.block_params)
                    predictor_update = self.update(self.predictor_optimizer, predictor_arrays)
        if fused:
            self.optimizer.steps += done
            self.predictor_optimizer.steps += done
        self.predictor_loss_sum += float(predictor_losses[:done].sum()) * size
        self.predictor_batches += done * size
        return losses[:done], correct[:done], done

    def step_unfused(self, block_update: tuple, predictor_update: tuple) -> None:
        """After one batch without fused updates: each optimizer steps (the kernel applied the fused one)."""
        for update, optimizer, arrays in ((block_update, self.optimizer, self.block_params),
                                          (predictor_update, self.predictor_optimizer, None)):
            if update[0] >= 0:
                optimizer.steps += 1
            elif arrays is None:
                optimizer.step(self.predictors, self.predictor_grads)
            else:
                optimizer.step({k: p for k, (p, _) in arrays.items()}, {k: g for k, (_, g) in arrays.items()})

    def take_predictor_loss(self) -> float:
        """The mean predictors' loss per sample since the last call (NaN before any batch), and a fresh count."""
        mean = self.predictor_loss_sum / self.predictor_batches if self.predictor_batches else float("nan")
        self.predictor_loss_sum, self.predictor_batches = 0.0, 0
        return mean
