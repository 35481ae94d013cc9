"""The ``sg`` scheme: decoupled neural interfaces with synthetic gradients (Jaderberg et al. 2017)."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import get_optimizer
from nkernels.schemes import Capabilities
from nkernels.validation import check_bool, check_int, check_number

from .chain import Block, read_blocks
from .runner import SyntheticRun

_PREDICTOR, _MOMENT = "predictor.", "predictor_state."


class SyntheticGradients(nk.schemes.Scheme):
    """Synthetic gradients (Jaderberg et al., "Decoupled Neural Interfaces using Synthetic Gradients",
    ICML 2017): every hidden block learns from a predicted gradient instead of waiting for backprop.

    A *block* is a Dense layer and the activation right after it (ReLU, Sigmoid or Tanh, or
    none); the last block is the output layer, the others are hidden blocks. After each hidden
    block ``l`` a small model predicts the gradient of the loss with respect to the block's output
    ``h_l``: ``P_l([h_l, onehot(y)])`` when ``conditioned`` (the default, the paper's cDNI) or
    ``P_l(h_l)``. ``P_l`` is linear (``predictor_hidden=0``, the default) or has one hidden ReLU
    layer of ``predictor_hidden`` units (drawn from the run's seed); its output layer starts at
    zero, as in the paper, so training starts from synthetic gradients of zero. Each mini-batch:

    - every hidden block updates at once from its prediction, as if it were the true gradient;
    - the output block gets the loss's true gradient;
    - predictor ``l`` learns, by mean squared error, the gradient that arrives for ``h_l`` from the
      block above: the output block's backprop of the loss for the last hidden block, the backprop
      of block ``l + 1``'s *synthetic* gradient for the others (the paper's bootstrapping).

    The blocks never wait for a full backward pass; the trained model is the ordinary chain (the
    predictors are used in training only), scored by ``nk.evaluate``. A predictor predicts one
    sample's gradient (``N`` times that of the batch's mean loss), so what it learns does not
    depend on the batch size.

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options (``betas``, ``momentum``, ``weight_decay`` ...) configure the blocks' updates;
    ``predictor_optimizer`` (default: the blocks' configuration) and ``predictor_lr`` the
    predictors'. Schedules change the blocks' learning rate; the predictors' stays as set. Each
    ``fit`` uses fresh copies of both. Every run of mini-batches is one compiled call when both
    optimizers are SGD, Adam or AdamW without ``clip_norm``/``max_norm``; otherwise each batch is
    one call and the optimizers step from Python (same numbers).

    Checkpoints hold the predictors and their optimizer's state, so a resumed run ends bit for bit
    where the uninterrupted one would. After ``fit``, ``predictors_`` maps ``"<i>.weight"`` and
    ``"<i>.bias"`` (``i`` the index of the hidden block's Dense layer) to the predictors' output
    layers, weight (width, inputs) with inputs = width + classes when conditioned, else width (or
    ``predictor_hidden``), and ``"<i>.hidden.weight"``/``"<i>.hidden.bias"`` to their hidden layers.

    The model must be a classifier chain of Dense layers, each followed by at most one ReLU,
    Sigmoid or Tanh (Flatten may appear anywhere), with at least one hidden block, trained on
    integer labels with softmax cross-entropy; anything else is a ValueError that says what to do.
    """

    name = "sg"
    capabilities = Capabilities(labels="required", yields=("classifier",))
    #: 60 epochs in batches of 32, as the PyTorch reference of issue 22
    default_epochs = 60
    default_batch_size = 32

    def __init__(self, conditioned: bool = True, optimizer: Any = "adam", lr: float | None = None,
                 predictor_optimizer: Any = None, predictor_lr: float | None = None, predictor_hidden: int = 0, *,
                 checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None, augment_shift: int = 0,
                 **optimizer_options: Any):
        if augment_shift:
            raise ValueError("sg does not apply random translations (its compiled epoch reads rows as they are); "
                             "drop augment_shift, or shift the images yourself before fit")
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule)
        self.conditioned = check_bool(conditioned, "conditioned")
        self.predictor_hidden = check_int(predictor_hidden, "predictor_hidden", minimum=0)
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        predictor_lr = check_number(predictor_lr, "predictor_lr", low=0, low_open=True, allow_none=True)
        chosen = self.optimizer if predictor_optimizer is None else get_optimizer(predictor_optimizer)
        self.predictor_optimizer = chosen.fresh(lr=predictor_lr)
        self.predictors_: dict[str, np.ndarray] = {}

    # -- the scheme's part of a run --------------------------------------------------------------
    def setup(self, run) -> None:
        if not isinstance(run.loss, SoftmaxCrossEntropy):
            raise ValueError(f"sg trains classifiers with softmax cross-entropy on integer labels (its predictors "
                             f"are conditioned on the class); got the {type(run.loss).__name__} loss for labels of "
                             f"dtype {np.asarray(run.y).dtype}. Pass integer class labels")
        blocks = read_blocks(run.model)
        dtype = run.model.dtype
        # the predictors' hidden layers come from a child of the seed: the shuffles stay those of a linear run
        self.predictors_ = self.make_predictors(blocks, dtype, np.random.default_rng(
            np.random.SeedSequence(run.seed).spawn(1)[0]))
        predictor_grads = {key: np.zeros_like(value) for key, value in self.predictors_.items()}
        run.optimizer = self.optimizer.fresh()
        self.predictor_optimizer_ = self.predictor_optimizer.fresh()
        for key, value in self.predictors_.items():  # its state exists from the start: checkpoints hold it
            self.predictor_optimizer_.state_for(key, value)
        self.runner = SyntheticRun(blocks, self.predictors_, predictor_grads, self.conditioned, self.predictor_hidden,
                                   run.optimizer, self.predictor_optimizer_, dtype)
        run.info["conditioned"] = self.conditioned

    def make_predictors(self, blocks: list[Block], dtype, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One predictor per hidden block, its output layer at zero (the paper's zero-initialised last
        layer: training starts from synthetic gradients of zero); a hidden layer, when there is one,
        drawn from ``rng`` as a Dense layer's weights, U(-1/sqrt(inputs), 1/sqrt(inputs))."""
        classes = blocks[-1].width if self.conditioned else 0
        predictors = {}
        for block in blocks[:-1]:
            inputs, key = block.width + classes, str(block.index)
            if self.predictor_hidden:
                bound = 1.0 / np.sqrt(inputs)
                shape = (self.predictor_hidden, inputs)
                predictors[key + ".hidden.weight"] = rng.uniform(-bound, bound, shape).astype(dtype)
                predictors[key + ".hidden.bias"] = rng.uniform(-bound, bound, shape[0]).astype(dtype)
                inputs = self.predictor_hidden
            predictors[key + ".weight"] = np.zeros((block.width, inputs), dtype)
            predictors[key + ".bias"] = np.zeros(block.width, dtype)
        return predictors

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        self.runner.take_predictor_loss()
        logs = run.train_batches(self.runner.run)
        logs["predictor_loss"] = self.runner.take_predictor_loss()
        return logs

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The predictors, and their optimizer's steps and state arrays."""
        optimizer = self.predictor_optimizer_
        arrays = {_PREDICTOR + key: value for key, value in self.predictors_.items()}
        for key, named in optimizer.state.items():
            arrays.update({f"{_MOMENT}{key}.{name}": array for name, array in named.items()})
        return {"predictor_steps": optimizer.steps}, arrays

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        optimizer = self.predictor_optimizer_
        expected = {_PREDICTOR + key: value.shape for key, value in self.predictors_.items()}
        for key, value in self.predictors_.items():
            expected.update({f"{_MOMENT}{key}.{name}": (value.size,) for name in optimizer.state_names})
        found = {key: np.shape(value) for key, value in arrays.items()}
        differ = [f"{key}: {found.get(key, 'absent')} there, {expected.get(key, 'absent')} here"
                  for key in sorted(set(found) | set(expected)) if found.get(key) != expected.get(key)]
        if differ or "predictor_steps" not in state:
            raise ValueError(f"the checkpoint's sg predictors do not fit this run ({'; '.join(differ[:3]) or 'no steps'}"
                             f"{' ...' if len(differ) > 3 else ''}); resume with the model, the conditioned and "
                             f"predictor_hidden options and the predictor optimizer the run was started with")
        for key, value in self.predictors_.items():  # in place: the runner holds these arrays
            value[...] = arrays[_PREDICTOR + key]
            for name, moment in optimizer.state_for(key, value).items():
                moment[...] = arrays[f"{_MOMENT}{key}.{name}"]
        optimizer.steps = int(state["predictor_steps"])

    def teardown(self, run) -> None:
        vars(self).pop("runner", None)  # a scheme object keeps its configuration and predictors_, not a run's buffers
