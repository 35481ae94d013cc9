"""Evolution strategies (plugin ``nkernels-es``) on the digits MLP 64-128-64-10, population 256.

``time_generation`` is one whole generation: a minibatch and 128 noise offsets drawn, the 256
members evaluated by one compiled call, centered ranks, the gradient estimate and the Adam step.
``track_time_ratio`` is the time of a population evaluation over that of a vectorized PyTorch CPU
baseline written here (lower is better): the perturbed weights of the whole population
gathered from the same noise table, then batched matmuls (``torch.baddbmm``) over the population,
with ``torch.set_num_threads`` equal to Numba's thread count. Both run in one process, PyTorch
first, before Numba's threads start (see ``TimeRatioVsPyTorch.seconds``), each the fastest of 25
calls, and must agree on every member's loss.
"""
import time

import numpy as np

import nkernels as nk

from .common import require_peer, require_plugin_module

SIZES = (64, 128, 64, 10)
POPULATION = 256
SIGMA = 0.03


class _Setup:
    """The digits MLP, one minibatch and one generation's offsets (nothing run yet)."""

    def setup(self, batch_size):
        self.plugin = require_plugin_module("schemes", "es", "nkernels_es")
        from nkernels_es.noise import NoiseTable
        from nkernels_es.population import flat_parameters, make_problem

        X, y, _, _ = nk.datasets.load("digits")
        self.model = nk.presets.mlp((SIZES[0],), SIZES[-1], hidden=SIZES[1:-1], seed=0)
        self.theta, self.layout = flat_parameters(self.model)
        self.problem = make_problem(self.model, self.layout, X, y.astype(np.int64), nk.losses.SoftmaxCrossEntropy())
        self.noise = NoiseTable(seed=0, size=2**23)
        self.rng = np.random.default_rng(0)
        self.rows = self.rng.choice(len(X), batch_size, replace=False)
        self.offsets = self.noise.sample_offsets(self.rng, POPULATION // 2, self.theta.size)
        self.X, self.y = X, y

    def evaluate(self):
        return self.problem.losses(self.theta, self.noise, self.offsets, SIGMA, self.rows)


class ESGeneration(_Setup):
    """One generation of OpenAI-ES, population 256 (Adam, centered ranks)."""

    params = [32, 128]
    param_names = ["batch_size"]
    timeout = 300

    def setup(self, batch_size):
        super().setup(batch_size)
        self.scheme = self.plugin.EvolutionStrategies(population=POPULATION, sigma=SIGMA)
        self.time_generation(batch_size)  # compiles (or loads from the cache) outside the timing

    def time_generation(self, batch_size):
        rows = self.rng.choice(len(self.X), batch_size, replace=False)
        offsets = self.noise.sample_offsets(self.rng, POPULATION // 2, self.theta.size)
        fitness = -self.problem.losses(self.theta, self.noise, offsets, SIGMA, rows)
        self.scheme.step(self.theta, self.layout, self.noise, offsets, fitness)

    def time_population_evaluation(self, batch_size):
        self.evaluate()


def fastest_seconds(run, repeat, warmup=2):
    """The fastest of ``repeat`` timed calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_population_losses(torch, theta, table, offsets, sigma, X, y, sizes=SIZES):
    """A function returning the (P,) losses of the members theta + sigma eps_i (first half) and
    theta - sigma eps_i (second half), vectorized over the population with batched matmuls."""
    F = torch.nn.functional
    theta_t, X_t, y_t = torch.from_numpy(theta), torch.from_numpy(X), torch.from_numpy(y)
    windows = torch.from_numpy(np.array(table)).unfold(0, theta.size, 1)  # every window of the table, a view
    offsets_t = torch.from_numpy(offsets)
    P, B = 2 * len(offsets), len(X)
    starts, start = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        starts.append((start, start + n_in * n_out, n_in, n_out))
        start += n_in * n_out + n_out
    labels = y_t.repeat(P)

    def run():
        with torch.no_grad():
            eps = windows[offsets_t]                                    # (P/2, D) gathered noise
            pop = torch.cat([theta_t + sigma * eps, theta_t - sigma * eps])  # (P, D) perturbed parameters
            h = X_t.expand(P, B, sizes[0])
            for i, (w, b, n_in, n_out) in enumerate(starts):
                W = pop[:, w:w + n_in * n_out].view(P, n_out, n_in)
                h = torch.baddbmm(pop[:, b:b + n_out].unsqueeze(1), h, W.transpose(1, 2))
                if i < len(starts) - 1:
                    h = torch.relu(h)
            return F.cross_entropy(h.reshape(P * B, sizes[-1]), labels, reduction="none").view(P, B).mean(1)

    return run


class TimeRatioVsPyTorch(_Setup):
    """Population evaluation (256 members of the digits MLP on one minibatch): nkernels time / PyTorch time."""

    params = [32, 128]
    param_names = ["batch_size"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, batch_size):
        torch = require_peer("torch")
        super().setup(batch_size)
        import numba

        torch.set_num_threads(numba.get_num_threads())
        self.torch_run = torch_population_losses(torch, self.theta, self.noise.table, self.offsets, SIGMA,
                                                 self.X[self.rows], self.y[self.rows].astype(np.int64))

    def seconds(self, repeat=25):
        """(PyTorch, nkernels) seconds per population evaluation: the fastest of ``repeat`` calls each
        (the figure least disturbed by other processes on a shared machine). PyTorch runs first,
        before any of Numba's threads exist: started after them, its OpenMP pool ran 10 to 100 times
        slower here. Then both must agree on every member's loss."""
        theirs = fastest_seconds(self.torch_run, repeat)
        ours = fastest_seconds(self.evaluate, repeat)  # the warm-up calls compile or load the kernel
        losses = self.evaluate()
        np.testing.assert_allclose(np.concatenate([losses[:, 0], losses[:, 1]]), self.torch_run().numpy(),
                                   rtol=1e-4, atol=1e-5)
        return theirs, ours

    def track_time_ratio(self, batch_size):
        theirs, ours = self.seconds()
        return ours / theirs

    track_time_ratio.unit = "nkernels time / PyTorch time per population evaluation (lower is better)"
