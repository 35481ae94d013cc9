"""The ``es`` scheme: OpenAI evolution strategies (Salimans et al. 2017) on a shared noise table."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import get_loss
from nkernels.optimizers import Optimizer, get_optimizer
from nkernels.runtime import distributed
from nkernels.schemes import Capabilities, Diverged
from nkernels.validation import check_bool, check_choice, check_int, check_number

from .estimate import SHAPINGS, gradient_estimate, shape_fitness
from .noise import NoiseTable
from .population import (CudaDenseChainProblem, DenseChainProblem, evaluate_pairs, flat_parameters, make_problem,
                         parameter_views)


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
    - A model on ``"cuda"`` (``model.to("cuda")``, or ``device="cuda"`` in ``nk.train``) has its population
      evaluated on the GPU (:mod:`nkernels_es.cuda_kernels`) and keeps theta, the noise table, the fitness
      shaping and the optimizer's step on the device (:mod:`nkernels_es.cuda_update`): per generation only the
      minibatch's rows and the pairs' offsets go over, and the fitness statistics come back at the epoch's
      end (each generation's losses only when a per-batch callback asks); Dask workers are refused there.
    - ``compiled=False`` evaluates member by member through ``model.forward`` (same numbers up to
      float rounding; the automatic fallback for models other than Dense chains).

    A model holding a layer that couples the samples of a batch (``layer.couples_batch``: BatchNorm,
    also inside a Residual) is refused with a ValueError: the members are scored in evaluation mode,
    where such a layer would be a fixed affine map whose running statistics never move; train it
    with ``"backprop"``.

    A model made of Dense layers, each optionally followed by ReLU, Sigmoid or Tanh (Flatten
    anywhere), with softmax cross-entropy or MSE, is evaluated by one compiled call for the whole
    population; any other model, one member at a time. Each epoch's logs hold ``generation`` (the
    generations done), ``best_fitness`` and ``mean_fitness`` (the per-generation best and mean of
    the population's fitness, averaged over the epoch's generations), ``sigma``, and ``loss`` and
    ``accuracy`` of the current parameters on the whole training set.

    The options every scheme shares (:class:`~nkernels.schemes.Scheme`): ``checkpoint_dir`` and
    ``resume`` (a checkpoint after every epoch holds the weights, the optimizer's moments, the
    random generator, the noise table's seed and the generations done, so a resumed run ends
    with the uninterrupted run's weights bit for bit, with a seed or without one) and
    ``schedule`` (it changes the optimizer's learning rate). ``augment_shift`` is refused: the
    members are scored on the samples as they are. Between epochs the parameters live in the
    model: an epoch starts from ``model.params`` and writes them back at its end.
    """

    name = "es"
    capabilities = Capabilities(labels="required", yields=("classifier", "regressor"), learning_rate=True,
                                batches=True, devices=("cpu", "cuda"), distributed=True)
    #: 10 epochs of ceil(N / 32) generations: 400 generations on the digits training split
    default_epochs = 10
    default_batch_size = 32

    def __init__(self, population: int = 256, sigma: float = 0.03, optimizer: Any = "adam",
                 lr: float | None = None, weight_decay: float | None = None, fitness_shaping: str = "centered_rank",
                 generations_per_epoch: int | None = None, noise_size: int | None = None, loss: Any = None,
                 workers: int | None = None, scheduler: str | None = None, compiled: bool = True, *,
                 checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None, augment_shift: int = 0,
                 **optimizer_options: Any):
        if check_int(augment_shift, "augment_shift", minimum=0):
            raise ValueError("es has no augmentation: its members are scored on the training samples as they are, "
                             "so augment_shift would have no effect; drop it")
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule)
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

    def setup(self, run) -> None:
        """Draw the noise table's seed, build the population problem and the run's optimizer, and
        start the Dask cluster (or join one) and ship the problem to it."""
        _refuse_batch_coupling(run.model)
        if run.model.device == "cuda" and (self.workers is not None or self.scheduler is not None):
            raise ValueError("es on a model on 'cuda' evaluates the population on this process's GPU, so Dask "
                             "workers would have no effect; drop workers/scheduler, or move the model to 'cpu' "
                             "to spread the population over workers")
        theta, layout = flat_parameters(run.model)
        if theta.size == 0:
            raise ValueError("the model has no parameters to train")
        # the table's seed is the run's first draw; a resume replaces it with the checkpoint's (restore_state)
        noise = NoiseTable(int(run.rng.integers(2**62)), self.noise_size or max(2**23, 16 * theta.size),
                           run.model.dtype)
        noise.check_dim(theta.size)
        problem = make_problem(run.model, layout, run.X, run.targets, run.loss, self.compiled)
        run.optimizer = self.optimizer.fresh()
        state = self._run = _RunState(noise, layout, self.generations_per_epoch or -(-run.n_samples // run.batch_size))
        state.session = state.cluster.enter_context(distributed.connect(self.workers, self.scheduler))
        state.problem = state.session.scatter(problem)
        bounds = distributed.shard_bounds(self.population // 2, state.session.n_workers)
        state.bounds = [b for b in bounds if b[1] > b[0]]
        compiled = isinstance(problem, (DenseChainProblem, CudaDenseChainProblem))
        run.info.update(population=self.population, generations_per_epoch=state.per_epoch,
                        workers=len(state.bounds), compiled=compiled)

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        """``generations_per_epoch`` generations from the model's parameters, written back at the end."""
        state, events = self._run, run.events
        if isinstance(state.problem, CudaDenseChainProblem):
            return self._train_epoch_on_device(run)
        theta, _ = flat_parameters(run.model)  # the model holds theta between epochs
        best = mean = 0.0
        for g in range(state.per_epoch):
            rows = run.rng.choice(run.n_samples, run.batch_size, replace=False)
            offsets = state.noise.sample_offsets(run.rng, self.population // 2, theta.size)
            fitness = -np.concatenate(state.session.submit_each(evaluate_pairs, state.bounds, state.problem,
                                                                state.noise, theta, offsets, self.sigma, rows))
            if not np.all(np.isfinite(fitness)):
                raise Diverged(f"a member's loss became NaN or infinite in generation {state.generation + 1}")
            self.step(theta, state.layout, state.noise, offsets, fitness, run.optimizer)
            state.generation += 1
            best += float(fitness.max()) / state.per_epoch
            mean += float(fitness.mean()) / state.per_epoch
            if events.wants_batches:
                events.on_batch_end(g, {"generation": state.generation, "loss": -float(fitness.mean()),
                                        "best_fitness": float(fitness.max()), "size": run.batch_size})
        run.model.set_params(parameter_views(theta, state.layout))
        return {"generation": state.generation, "best_fitness": best, "mean_fitness": mean, "sigma": self.sigma,
                **nk.evaluate(run.model, run.X, run.y, loss=run.loss)}

    def _train_epoch_on_device(self, run) -> dict[str, Any]:
        """:meth:`train_epoch` with theta, the noise table and the update on the GPU: per generation one copy
        over (the rows and offsets), none back; the fitness statistics come back at the epoch's end, and the
        losses of each generation only when a callback asks for them."""
        from .cuda_update import BEST, FIRST_BAD, MEAN, DeviceGenerations

        state, events, problem = self._run, run.events, self._run.problem
        if state.device is None:
            state.device = DeviceGenerations(self.population // 2, sum(v.size for v in run.model.params.values()),
                                             run.model.dtype)
        dev = state.device
        dev.load(run.model, state.layout)  # the model holds theta between epochs
        dev.start_epoch()
        table = problem.device_table(state.noise)
        dim = dev.theta.shape[0]
        for g in range(state.per_epoch):
            rows = run.rng.choice(run.n_samples, run.batch_size, replace=False)
            offsets = state.noise.sample_offsets(run.rng, self.population // 2, dim)
            losses = problem.device_losses(dev.theta, state.noise, offsets, self.sigma, rows)
            state.generation += 1
            dev.step(losses, table, problem.workspace(len(offsets), len(rows), dim, dev.theta.dtype).offsets,
                     self.fitness_shaping == "centered_rank", state.per_epoch, state.generation, run.optimizer,
                     lambda flat: parameter_views(flat, state.layout))
            if events.wants_batches:
                fitness = -losses.copy_to_host()
                events.on_batch_end(g, {"generation": state.generation, "loss": -float(fitness.mean()),
                                        "best_fitness": float(fitness.max()), "size": run.batch_size})
        stats = dev.statistics()
        if stats[FIRST_BAD]:  # the toolkit restores the epoch's start (weights and optimizer state)
            state.generation = int(stats[FIRST_BAD]) - 1  # as on the host, which stops before that update
            raise Diverged(f"a member's loss became NaN or infinite in generation {int(stats[FIRST_BAD])}")
        run.model.set_params(parameter_views(dev.theta, state.layout))
        return {"generation": state.generation, "best_fitness": float(stats[BEST]),
                "mean_fitness": float(stats[MEAN]), "sigma": self.sigma,
                **nk.evaluate(run.model, run.X, run.y, loss=run.loss)}

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The noise table's seed and size and the generations done (the optimizer's moments the toolkit saves)."""
        state = self._run
        return {"noise_seed": state.noise.seed, "noise_size": state.noise.size, "generation": state.generation}, {}

    def restore_state(self, run, saved: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Take back the noise table's seed and the generations done (a table of another size is refused)."""
        state = self._run
        if saved["noise_size"] != state.noise.size:
            raise ValueError(f"the checkpoint was trained with a noise table of {saved['noise_size']} numbers, "
                             f"this run has {state.noise.size}; resume with the same noise_size")
        if saved["noise_seed"] != state.noise.seed:
            state.noise = NoiseTable(saved["noise_seed"], state.noise.size, state.noise.dtype)
        state.generation = int(saved["generation"])

    def divergence_hint(self, run) -> str:
        """A smaller learning rate or sigma."""
        return f"try a smaller learning rate (lr is {run.optimizer.lr:g}) or sigma (sigma is {self.sigma:g})"

    def teardown(self, run) -> None:
        """Close the Dask cluster and client the run started, and forget the run's state."""
        state = vars(self).pop("_run", None)  # a scheme object keeps its configuration, not a run's state
        if state is not None:
            state.cluster.close()  # the Dask cluster and client, when the run started one

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


@dataclass
class _RunState:
    """What one run of the scheme holds: the noise table, the parameter layout, the generations per
    epoch and done, and the Dask session with the problem shipped to it and each worker's pairs."""

    noise: NoiseTable
    layout: dict
    per_epoch: int
    generation: int = 0
    cluster: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    session: Any = None
    problem: Any = None
    bounds: list = field(default_factory=list)
    #: theta, the gradient and the statistics on the GPU (:class:`~nkernels_es.cuda_update.DeviceGenerations`)
    device: Any = None


def _batch_coupling_layers(layers: Any, prefix: str = "") -> list[str]:
    """The layers that couple the samples of a batch, named by their path (``"3.body.1 (BatchNorm2D)"``
    for a Residual's child, as the model's parameter names)."""
    found = []
    for i, layer in enumerate(layers):
        name = f"{prefix}{i}"
        if isinstance(layer, nk.layers.Residual):
            found += _batch_coupling_layers(layer.body, f"{name}.body.")
            found += _batch_coupling_layers(layer.shortcut or [], f"{name}.shortcut.")
        elif layer.couples_batch:
            found.append(f"{name} ({type(layer).__name__})")
    return found


def _refuse_batch_coupling(model: Any) -> None:
    """A ValueError for a model holding a layer that couples the batch: es scores members in evaluation mode."""
    coupled = _batch_coupling_layers(model.layers)
    if coupled:
        raise ValueError(f"es cannot train layer {', '.join(coupled)}: it couples the samples of a batch (as "
                         f"BatchNorm's batch statistics do), and es scores its members in evaluation mode, where "
                         f"such a layer is a fixed affine map whose running statistics never move; train this "
                         f"model with scheme=\"backprop\" (or drop the layer)")


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
