"""The ``dfa`` and ``fa`` schemes: credit assignment through fixed random feedback instead of transposed weights."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import get_loss
from nkernels.optimizers import get_optimizer
from nkernels.schemes import Capabilities
from nkernels.validation import check_bool

from .chain import Block, read_chain
from .runs import FusedRun, LayerwiseRun


class FeedbackAlignment(nk.schemes.Scheme):
    """Base of the feedback-alignment schemes: the forward pass and the output layer's update are
    those of backprop, but hidden layers learn from errors sent down through fixed random matrices.

    ``optimizer`` is a name (``"adam"``, ``"sgd"``, ``"adamw"``) or an
    :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other optimizer options (``momentum``,
    ``weight_decay``, ``clip_norm``, ``max_norm`` ...) go to it. Each ``fit`` trains with a fresh
    copy of it (:meth:`~nkernels.optimizers.Optimizer.fresh`), so a scheme object used again
    trains a new model exactly as a new one would. ``loss`` defaults to softmax
    cross-entropy for integer labels and MSE otherwise. A ``fit`` without ``epochs`` trains for
    ``default_epochs``, in mini-batches of ``default_batch_size``.

    Each run of mini-batches is one compiled call (forward, loss, feedback, update) when the
    optimizer is SGD, Adam or AdamW without ``clip_norm``/``max_norm``, the loss is softmax
    cross-entropy or MSE and there is no ``augment_shift``; otherwise, or with ``compiled=False``,
    each batch runs kernel by kernel from Python. Both give the same numbers.

    The options every scheme shares (:class:`~nkernels.schemes.Scheme`) work as for backprop:
    ``schedule`` changes the optimizer's learning rate between epochs, ``augment_shift`` shifts
    each training image (N, C, H, W) by up to that many pixels (the model then starts with a
    Flatten), ``checkpoint_dir``/``resume`` continue a run bit for bit (the feedback matrices are
    in the checkpoint), and a loss or weight that stops being finite ends the run with a
    :class:`~nkernels.TrainingDivergedError` and the weights of the start of that epoch.

    The model must be a chain of Dense layers, each followed by at most one ReLU, Sigmoid or
    Tanh (Flatten may appear anywhere); anything else is a ValueError naming the layer and its
    position. After ``fit``, ``feedback_`` maps layer indices to the fixed random matrices used,
    drawn from ``seed`` at the start of the run (a fresh draw without one).
    """

    #: the scheme's registry name, used in messages
    name = ""
    capabilities = Capabilities(labels="required", yields=("classifier", "regressor"))
    #: 30 epochs of Adam (lr 1e-3) in batches of 32: 96.7% (dfa) and 96.7% (fa) on the digits test split
    #: with the README's MLP 64-128-64-10 (the former 10 epochs gave 94.3% and 94.4%)
    default_epochs = 30
    default_batch_size = 32
    #: True when hidden layers get the output error directly (dfa), False when it goes down layer by layer (fa)
    direct = True

    def __init__(self, optimizer: Any = "adam", lr: float | None = None, loss: Any = None, compiled: bool = True,
                 *, checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None, augment_shift: int = 0,
                 **optimizer_options: Any):
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule,
                         augment_shift=augment_shift)
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = check_bool(compiled, "compiled")
        self.feedback_: dict[int, np.ndarray] = {}

    def draw_feedback(self, blocks: list[Block], rng: np.random.Generator, dtype: np.dtype) -> dict[int, np.ndarray]:
        """The fixed random matrices, keyed by the index of the Dense layer they belong to."""
        raise NotImplementedError

    # -- the scheme's part of a run --------------------------------------------------------------
    def setup(self, run) -> None:
        blocks = read_chain(run.model, self.name)
        # the scheme's stream since before the toolkit, so that a seed gives the same weights as then: the
        # matrices and the shuffles come from two children of the seed (the run's generator becomes the
        # second; checkpoints save and restore it, and hold the matrices)
        feedback_seed, shuffle_seed = np.random.SeedSequence(run.seed).spawn(2)
        self.feedback_ = self.draw_feedback(blocks, np.random.default_rng(feedback_seed), run.model.dtype)
        run.rng = np.random.default_rng(shuffle_seed)
        run.optimizer = self.optimizer.fresh()
        # the fused run has no random translations: an augmented run goes layer by layer
        fused = self.compiled and run.augment is None and FusedRun.supports(run.optimizer, run.loss)
        if fused:
            self.runner = FusedRun(self, run.model, blocks, run.loss, run.optimizer)
        else:
            self.runner = LayerwiseRun(self, run.model, blocks, run.loss, run.optimizer, run.X.shape[1:])
        run.info["compiled"] = fused

    def start_stage(self, run, stage) -> None:
        self.runner.augment = run.augment  # a resume restores the run's augmentation seed after setup

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        return run.train_batches(self.runner.run)

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The feedback matrices (drawn at setup, so a resume must take them back), by layer index."""
        return {}, {str(index): matrix for index, matrix in self.feedback_.items()}

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        expected = {str(index): matrix.shape for index, matrix in self.feedback_.items()}
        found = {key: np.shape(value) for key, value in arrays.items()}
        if found != expected:
            raise ValueError(f"the checkpoint's {self.name} feedback matrices {found} do not fit this model, which "
                             f"needs {expected}; resume with the model the run was started with")
        for index, matrix in self.feedback_.items():
            matrix[...] = arrays[str(index)]  # in place: the runner holds these arrays

    def teardown(self, run) -> None:
        vars(self).pop("runner", None)  # a scheme object keeps its configuration and feedback_, not a run's buffers


class DFA(FeedbackAlignment):
    """Direct feedback alignment (Nøkland 2016): each hidden layer receives the output error through
    its own fixed random matrix, ``delta_l = (e @ B_l) * f'(a_l)``, with ``e`` the gradient of the
    loss with respect to the output layer's pre-activation and ``B_l`` of shape (outputs, width of
    layer l). The output layer gets its true gradient. ``feedback_[i]`` is ``B`` of the Dense at i.
    """

    name = "dfa"

    def draw_feedback(self, blocks, rng, dtype):
        n_out = blocks[-1].dense.out_features
        return {b.index: _uniform(rng, (n_out, b.dense.out_features), dtype) for b in blocks[:-1]}


class FA(FeedbackAlignment):
    """Feedback alignment (Lillicrap et al. 2016): the error goes down layer by layer as in backprop,
    ``delta_l = (delta_{l+1} @ B_{l+1}) * f'(a_l)``, but through a fixed random matrix ``B_{l+1}``
    shaped like the weight ``W_{l+1}`` it stands in for. ``feedback_[i]`` replaces the weight of the
    Dense at index i in the backward pass.
    """

    name = "fa"
    direct = False

    def draw_feedback(self, blocks, rng, dtype):
        return {b.index: _uniform(rng, b.dense.params["weight"].shape, dtype) for b in blocks[1:]}


def _uniform(rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    """U(-1/sqrt(cols), 1/sqrt(cols)): the scale of a Dense weight reading ``cols`` inputs."""
    bound = 1.0 / np.sqrt(shape[1])
    return np.ascontiguousarray(rng.uniform(-bound, bound, shape), dtype=dtype)
