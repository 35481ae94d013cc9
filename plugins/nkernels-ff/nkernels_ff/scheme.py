"""The ``ff`` scheme: forward-forward (Hinton 2022), every layer trained on its own goodness objective."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import Loss
from nkernels.optimizers import get_optimizer
from nkernels.schemes import Capabilities
from nkernels.validation import as_numeric_array, check_bool, check_choice, check_number

from .chain import ff_model, hidden_widths, read_chain
from .predict import goodness
from .runs import FFRun


class ClassLabels(Loss):
    """The targets forward-forward learns from: integer class labels (N,). Not a loss of the model's
    outputs (ff has none): the toolkit checks the labels through it, and ``has_accuracy`` says whether
    an epoch's logs count the samples the goodness classified right (with hardest negatives, which
    score every label anyway)."""

    target_kind = "labels"

    def __init__(self, has_accuracy: bool = True):
        self.has_accuracy = has_accuracy

    def prepare_targets(self, targets, output_shape, dtype=None):
        y = as_numeric_array(targets, "labels")
        if y.ndim != 1:
            raise ValueError(f"ff learns from class labels, a 1-D array of class indices; got shape {y.shape}")
        if y.dtype.kind == "f" and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
            raise ValueError("labels must be whole numbers (class indices), got non-integer values")
        if y.size and y.min() < 0:
            raise ValueError(f"labels must be class indices from 0, got {y.min()}")
        return np.ascontiguousarray(y, dtype=np.int64)


class ForwardForward(nk.schemes.Scheme):
    """Forward-forward (Hinton, "The Forward-Forward Algorithm: Some Preliminary Investigations", 2022).

    No backward pass through the network: every Dense + ReLU layer learns on its own to give
    positive data (a sample with its true label joined) a high goodness and negative data (the
    same sample with a wrong label) a low one. A layer's goodness is the sum of its squared
    outputs, and its loss the logistic ``softplus(-(g - threshold))`` on positive rows and
    ``softplus(g - threshold)`` on negative ones, averaged over both. Each layer reads its input
    length-normalised, so only the direction of the layer below's output reaches it. Every layer
    updates on every mini-batch from the same forward pass (no gradient crosses between layers).

    ``negatives``: ``"hardest"`` (the default) joins the wrong label the current model scores
    highest, ``"random"`` one drawn uniformly from the wrong labels (from the run's generator, so a
    resumed run draws the same). A model predicts the label with the highest total goodness
    (:func:`~nkernels_ff.predict`), summed over the layers, from the second when ``skip_first``;
    ``val_accuracy`` and ``val_loss`` (the cross-entropy of the softmax of the goodness) score
    that classifier. With hardest negatives an epoch's ``accuracy`` is the goodness classifier's on
    each batch just before its update.

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options work as for backprop; SGD, Adam and AdamW without clip_norm/max_norm update
    inside the compiled epoch, any other optimizer after each batch. The model must be
    :class:`~nkernels_ff.LabelInput` then Dense + ReLU pairs (:func:`~nkernels_ff.ff_model`;
    :meth:`adapt_model` builds it from a classifier's hidden widths). ``schedule``,
    ``checkpoint_dir`` and ``resume`` work as for every scheme. Defaults: 40 epochs of Adam (lr
    3e-3) in batches of 64, threshold 2, hardest negatives.
    """

    name = "ff"
    capabilities = Capabilities(labels="required", yields=("classifier",))
    #: LabelInput(10), Dense(74, 500), ReLU, Dense(500, 500), ReLU: 97-98% on the digits test split in 40
    #: epochs with these defaults (the README's table)
    default_epochs = 40
    default_batch_size = 64

    def __init__(self, threshold: float = 2.0, negatives: str = "hardest", skip_first: bool = False,
                 optimizer: Any = "adam", lr: float | None = 3e-3, loss: Any = None, *, checkpoint_dir: Any = None,
                 resume: bool = False, schedule: Any = None, augment_shift: int = 0, **optimizer_options: Any):
        if loss is not None:
            raise ValueError("ff trains each layer on its own goodness objective, not on a loss of the model's "
                             "outputs, so loss has no effect; drop it (threshold and negatives shape the objective)")
        if augment_shift:
            raise ValueError("ff joins a label to flat feature vectors, so augment_shift (random translations of "
                             "images) has no effect; drop it")
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule)
        self.threshold = check_number(threshold, "threshold", low=0, low_open=True)
        self.negatives = check_choice(negatives, "negatives", ("hardest", "random"))
        self.skip_first = check_bool(skip_first, "skip_first")
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        #: the toolkit checks the labels through it (see :class:`ClassLabels`)
        self.loss = ClassLabels(has_accuracy=self.negatives == "hardest")

    def adapt_model(self, model, n_features: int, n_classes: int) -> nk.Sequential:
        """The forward-forward model with the hidden widths of the classifier chain ``model``:
        Dense(64,128)-ReLU-Dense(128,64)-ReLU-Dense(64,10) gives LabelInput(10), Dense(74,128), ReLU,
        Dense(128,64), ReLU, its weights drawn from seed 0 in ``model``'s dtype."""
        return ff_model(n_features, n_classes, hidden_widths(model), seed=0, dtype=model.dtype)

    # -- the scheme's part of a run --------------------------------------------------------------
    def setup(self, run) -> None:
        chain = read_chain(run.model)
        for name, labels in (("y", run.targets),
                             ("y_val", None if run.validation_data is None else run.validation_data[1])):
            if labels is not None and len(labels) and int(np.max(labels)) >= chain.n_classes:
                raise ValueError(f"{name} holds label {int(np.max(labels))} but the model's LabelInput has "
                                 f"{chain.n_classes} classes (0 to {chain.n_classes - 1}); build the model for "
                                 f"more classes")
        run.optimizer = self.optimizer.fresh()
        self.runner = FFRun(run.model, chain, run.optimizer, lambda: run.rng, hardest=self.negatives == "hardest",
                            skip_first=self.skip_first, theta=self.threshold)

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        return run.train_batches(self.runner.run)

    def validation_metrics(self, run, X_val, y_val) -> dict[str, float]:
        """The goodness classifier's ``accuracy`` and ``loss`` (the cross-entropy of the softmax of the goodness)."""
        scores = goodness(run.model, X_val, self.skip_first)
        labels = np.asarray(y_val, np.int64)
        top = scores.max(axis=1)
        log_norm = top + np.log(np.exp(scores - top[:, None]).sum(axis=1))
        loss = float(np.mean(log_norm - scores[np.arange(len(labels)), labels]))
        return {"loss": loss, "accuracy": float(np.mean(scores.argmax(axis=1) == labels))}

    def divergence_hint(self, run) -> str:
        return f"try a smaller learning rate (lr is {run.optimizer.lr:g}) or a smaller threshold"

    def teardown(self, run) -> None:
        vars(self).pop("runner", None)  # a scheme object keeps its configuration, not a run's buffers
