"""The ``es`` scheme: OpenAI evolution strategies (Salimans et al. 2017) on a shared noise table."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.runtime import distributed
from nkernels.callbacks import CallbackList
from nkernels.validation import (
    check_bool, check_choice, check_features, check_fit_arguments, check_int, check_model_input, check_number,
    check_same_length, check_validation_data)
from nkernels.errors import TrainingDivergedError
from nkernels.losses import get_loss
from nkernels.optimizers import Optimizer, get_optimizer

from .estimate import SHAPINGS, gradient_estimate, shape_fitness
from .noise import NoiseTable
from .population import DenseChainProblem, evaluate_pairs, flat_parameters, make_problem, parameter_views


class EvolutionStrategies(nk.schemes.Scheme):
    """OpenAI-ES: antithetic Gaussian perturbations scored on a minibatch, stepped by Adam or SGD.

    Each *generation* draws a minibatch of ``batch_size`` training samples and ``population / 2``
    noise vectors ``eps_i`` from a shared noise table, scores the members ``theta +- sigma * eps_i``
    by their fitness (the negative loss on that minibatch), turns the fitness into centered ranks
    in [-0.5, 0.5] (``fitness_shaping="centered_rank"``, or ``"none"`` for the raw fitness), and
    hands ``-g + weight_decay * theta`` to the optimizer, where ``g = sum_i (r+_i - r-_i) eps_i / (2n)``
    over the ``n`` pairs, exactly as the paper's code (no division by sigma).

    Options:

    - ``population``: members per generation, even (antithetic pairs); ``sigma``: the noise scale.
    - ``optimizer`` (``"adam"`` or ``"sgd"``; ``"adamw"`` too), ``lr`` (default 0.01),
      ``weight_decay`` (the paper's ``l2coeff``, default 0.005) and any other option of the
      optimizer (``momentum``, ``betas``, ...). ``optimizer`` may also be an
      :class:`~nkernels.optimizers.Optimizer` instance, which brings its own ``lr``,
      ``weight_decay`` and other options (giving them here too is a ValueError). Each ``fit``
      trains with a fresh copy of it (:meth:`~nkernels.optimizers.Optimizer.fresh`).
    - ``generations_per_epoch``: one *epoch* is this many generations; by default as many as
      minibatches in one pass over the training data (``ceil(N / batch_size)``).
    - ``noise_size``: numbers in the noise table (default ``max(2**23, 16 * parameters)``, drawn
      once per process from the run's seed); ``loss``: as backprop (default from ``y``).
    - ``workers=N`` starts a Dask LocalCluster of N processes on loopback and ``scheduler=ADDRESS``
      joins a cluster; workers evaluate slices of the population. With the same seed the updates
      are the same whatever the number of workers.
    - ``compiled=False`` evaluates member by member through ``model.forward`` (same numbers up to
      float rounding; the automatic fallback for models other than Dense chains).

    A model made of Dense layers, each optionally followed by ReLU, Sigmoid or Tanh (Flatten
    anywhere), with softmax cross-entropy or MSE, is evaluated by one compiled call for the whole
    population; any other model, one member at a time. Each epoch's logs hold ``generation`` (the
    generations done), ``best_fitness`` and ``mean_fitness`` (the per-generation best and mean of
    the population's fitness, averaged over the epoch's generations), and ``loss`` and
    ``accuracy`` of the current parameters on the whole training set.
    """

    def __init__(self, population: int = 256, sigma: float = 0.03, optimizer: Any = "adam",
                 lr: float | None = None, weight_decay: float | None = None, fitness_shaping: str = "centered_rank",
                 generations_per_epoch: int | None = None, noise_size: int | None = None, loss: Any = None,
                 workers: int | None = None, scheduler: str | None = None, compiled: bool = True,
                 **optimizer_options: Any):
        self.population = check_int(population, "population", 2)
        if self.population % 2:
            raise ValueError(f"population must be even (members come in antithetic pairs), got {population}")
        self.sigma = check_number(sigma, "sigma", low=0, low_open=True)
        self.optimizer = _optimizer(optimizer, lr, weight_decay, optimizer_options)
        self.fitness_shaping = check_choice(fitness_shaping, "fitness_shaping", SHAPINGS)
        self.generations_per_epoch = check_int(generations_per_epoch, "generations_per_epoch", allow_none=True)
        self.noise_size = check_int(noise_size, "noise_size", allow_none=True)
        self.loss = None if loss is None else get_loss(loss)
        self.workers, self.scheduler = distributed.check_options(workers, scheduler)
        self.compiled = check_bool(compiled, "compiled")

    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        epochs, batch_size = check_fit_arguments(epochs, batch_size)
        if model.device != "cpu":
            raise ValueError(f"the es scheme runs on the CPU; the model is on {model.device!r} "
                             f"(move it with model.to('cpu'))")
        X = check_features(X, dtype=model.dtype)
        check_same_length(X, y)
        loss = self.loss or nk.training.default_loss(y)
        targets = loss.prepare_targets(y, check_model_input(model, X), model.dtype)
        if validation_data is not None:
            validation_data = check_validation_data(validation_data, model, loss)
        theta, layout = flat_parameters(model)
        if theta.size == 0:
            raise ValueError("the model has no parameters to train")
        n = len(X)
        batch_size = min(batch_size, n)
        per_epoch = self.generations_per_epoch or -(-n // batch_size)
        rng = np.random.default_rng(seed)
        noise = NoiseTable(int(rng.integers(2**62)), self.noise_size or max(2**23, 16 * theta.size), model.dtype)
        noise.check_dim(theta.size)
        problem = make_problem(model, layout, X, targets, loss, self.compiled)
        optimizer = self.optimizer.fresh()
        events = CallbackList(callbacks, model, self, optimizer)
        history = nk.History()
        events.context.history = history
        generation = 0
        with distributed.connect(self.workers, self.scheduler) as session:
            shared = session.scatter(problem), session.scatter(noise)
            bounds = distributed.shard_bounds(self.population // 2, session.n_workers)
            bounds = [b for b in bounds if b[1] > b[0]]

            def run_epoch(epoch: int) -> dict[str, Any]:
                nonlocal generation
                snapshot = (theta.copy(), _copy_state(optimizer))
                best, mean = 0.0, 0.0
                for g in range(per_epoch):
                    rows = rng.choice(n, batch_size, replace=False)
                    offsets = noise.sample_offsets(rng, self.population // 2, theta.size)
                    fitness = -np.concatenate(session.submit_each(evaluate_pairs, bounds, *shared, theta,
                                                                  offsets, self.sigma, rows))
                    if not np.all(np.isfinite(fitness)):
                        self._diverged(model, optimizer, theta, snapshot, layout, epoch)
                    self.step(theta, layout, noise, offsets, fitness, optimizer)
                    generation += 1
                    best += float(fitness.max()) / per_epoch
                    mean += float(fitness.mean()) / per_epoch
                    if events.wants_batches:
                        events.on_batch_end(g, {"generation": generation, "loss": -float(fitness.mean()),
                                                "best_fitness": float(fitness.max()), "size": batch_size})
                if not np.all(np.isfinite(theta)):
                    self._diverged(model, optimizer, theta, snapshot, layout, epoch)
                model.set_params(parameter_views(theta, layout))
                return {"generation": generation, "best_fitness": best, "mean_fitness": mean,
                        **_scores(model, X, y, loss, validation_data), "lr": optimizer.lr}

            events.run_epochs(model, {"epochs": epochs, "batch_size": batch_size, "samples": n, "scheme": "es",
                                      "population": self.population, "generations_per_epoch": per_epoch,
                                      "workers": len(bounds), "compiled": isinstance(problem, DenseChainProblem),
                                      "device": "cpu"}, epochs, run_epoch)
        events.on_train_end(history)
        return history

    def step(self, theta: np.ndarray, layout: dict, noise: NoiseTable, offsets: np.ndarray,
             fitness: np.ndarray, optimizer: Optimizer | None = None) -> np.ndarray:
        """One update of ``theta`` (laid out as ``layout``) from the ``fitness`` (pairs, 2) of the
        members at ``offsets``, by ``optimizer`` (a run's own; the configured :attr:`optimizer`
        when None); returns the gradient estimate ``g`` (float64)."""
        optimizer = self.optimizer if optimizer is None else optimizer
        g = gradient_estimate(noise, offsets, shape_fitness(fitness, self.fitness_shaping), theta.size)
        grad = (-g).astype(theta.dtype)
        optimizer.step(parameter_views(theta, layout), parameter_views(grad, layout))
        return g

    def _diverged(self, model, optimizer, theta, snapshot, layout, epoch):
        theta[:] = snapshot[0]
        optimizer.load_state_dict(snapshot[1])
        model.set_params(parameter_views(theta, layout))
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch + 1}: a loss or a weight became NaN or infinite. The weights "
            f"from the start of that epoch were restored; try a smaller learning rate (lr is "
            f"{optimizer.lr:g}) or sigma (sigma is {self.sigma:g}).")


#: the learning rate and weight decay of an optimizer given by name (the paper's settings)
DEFAULT_LR, DEFAULT_WEIGHT_DECAY = 0.01, 0.005


def _optimizer(optimizer: Any, lr: float | None, weight_decay: float | None, options: dict[str, Any]) -> Optimizer:
    """The configured optimizer: a name with ``lr``, ``weight_decay`` (ES's defaults when None) and
    ``options``, or an Optimizer instance given alone (it carries its own settings)."""
    given = {**options, **{k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}}
    if isinstance(optimizer, Optimizer):
        if given:
            raise ValueError(f"es: {', '.join(sorted(given))} given together with an Optimizer instance, which "
                             f"carries its own settings; set them on the instance "
                             f"(e.g. {type(optimizer).__name__}(lr=..., weight_decay=...)) or pass the "
                             f"optimizer by name")
        return optimizer
    given.setdefault("lr", DEFAULT_LR)
    given.setdefault("weight_decay", DEFAULT_WEIGHT_DECAY)
    return get_optimizer(optimizer, **given)


def _scores(model, X, y, loss, validation_data) -> dict[str, float]:
    """The current model's loss (and accuracy) on the training data, and ``val_*`` on the validation data."""
    scores = nk.evaluate(model, X, y, loss=loss)
    if validation_data is not None:
        scores.update({f"val_{k}": v for k, v in nk.evaluate(model, *validation_data, loss=loss).items()})
    return scores


def _copy_state(optimizer) -> dict:
    """A copy of the optimizer's step count and state arrays, for :meth:`load_state_dict`."""
    state = optimizer.state_dict()
    return {"steps": state["steps"], "state": {k: {n: np.array(a) for n, a in v.items()}
                                               for k, v in state["state"].items()}}
