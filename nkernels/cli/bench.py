"""Training-step speed of nkernels against PyTorch (and JAX, when installed), each framework in a
process of its own.

The asv suite (``benchmarks/``) and ``nkernels bench`` share these measurements. Each case is one
model at one batch size with Adam; both sides run on the same data with the same thread count
(``torch.set_num_threads`` equal to Numba's). Times are the median over repeats of the mean
step time of a run of steps, after warm-up, so compilation stays out of them. The data is random
unless a :class:`BenchData` names a registered dataset (``nkernels bench --data mnist1d``): the
steps then run on batches of its training split.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import layers as L
from ..model import Sequential
from ..validation import check_int


@dataclass(frozen=True)
class Case:
    """One benchmark model: input sample shape, classes, batch size, and its builders on both sides."""

    name: str
    description: str
    sample_shape: tuple[int, ...]
    batch_size: int
    build: Callable[[], Sequential]
    build_torch: Callable[[Any], Any]
    n_classes: int = 10
    #: whether :mod:`nkernels.cli.bench_jax` builds a JAX twin of the model (its table has no ratio otherwise)
    jax: bool = True
    #: whether ``nkernels bench`` without ``--models`` or ``--data`` runs it (the MNIST-1D cases run with
    #: ``--data mnist1d`` or by name)
    default: bool = True


def _torch_recurrent(nn, cell: str, inputs: int, hidden: int):
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell)(inputs, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    return Recurrent()


def _recurrent_case(cell: str, inputs: int, hidden: int, steps: int, batch: int) -> Case:
    layer = L.LSTM if cell == "LSTM" else L.GRU
    return Case(f"{cell.lower()}-h{hidden}-t{steps}", f"{cell}({inputs}->{hidden}) + Dense(10), {steps} steps, "
                f"batch {batch}", (steps, inputs), batch,
                lambda: Sequential([layer(inputs, hidden), L.Dense(hidden, 10)], seed=0),
                lambda nn: _torch_recurrent(nn, cell, inputs, hidden))


def _torch_transformer(nn, tokens: int = 8, features: int = 8, width: int = 32, heads: int = 4, blocks: int = 2):
    """PyTorch's twin of the ``transformer`` preset (same parameters, pre-norm blocks, mean over tokens)."""
    import torch

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attention(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(features, width)
            self.position = nn.Parameter(torch.zeros(tokens, width))
            self.blocks = nn.Sequential(*[Block() for _ in range(blocks)])
            self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 10)

        def forward(self, x):
            return self.head(self.norm(self.blocks(self.project(x) + self.position)).mean(1))

    return Transformer()


def _torch_resnet(nn, width: int = 32):
    """PyTorch's twin of the ``resnet`` preset."""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))

        def forward(self, x):
            return x + self.body(x)

    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), Block(), nn.ReLU(),
                         nn.MaxPool2d(2), Block(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))


def _preset_case(name: str, description: str, sample_shape: tuple[int, ...], build_torch: Callable[[Any], Any]) -> Case:
    """A benchmark case of a command-line preset at its training batch size (32)."""
    from .presets import build

    return Case(name, description, sample_shape, 32, lambda: build(name, sample_shape, 10, seed=0), build_torch)


CASES = {case.name: case for case in [
    Case("mlp", "MLP 64-128-128-10, batch 64", (64,), 64,
         lambda: Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 128), L.ReLU(), L.Dense(128, 10)], seed=0),
         lambda nn: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                  nn.Linear(128, 10))),
    Case("cnn", "digits CNN: conv 16 3x3 pad 1, pool 2, dense 10, batch 64", (1, 8, 8), 64,
         lambda: Sequential([L.Conv2D(1, 16, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                             L.Dense(256, 10)], seed=0),
         lambda nn: nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(256, 10))),
    Case("lenet", "LeNet 28x28: conv 32 5x5, pool, conv 64 5x5, pool, dense 128, dense 10, batch 128",
         (1, 28, 28), 128,
         lambda: Sequential([L.Conv2D(1, 32, 5), L.ReLU(), L.MaxPool2D(2), L.Conv2D(32, 64, 5), L.ReLU(),
                             L.MaxPool2D(2), L.Flatten(), L.Dense(1024, 128), L.ReLU(), L.Dense(128, 10)], seed=0),
         lambda nn: nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                                  nn.Linear(128, 10))),
    _recurrent_case("LSTM", 8, 64, 8, 64),
    _recurrent_case("GRU", 8, 64, 8, 64),
    _recurrent_case("LSTM", 16, 32, 40, 64),
    _recurrent_case("LSTM", 16, 128, 40, 64),
    _recurrent_case("GRU", 16, 128, 40, 64),
    _preset_case("transformer", "the transformer preset: 8 tokens of 8, width 32, 2 pre-norm blocks of 4 heads, "
                 "batch 32", (8, 8), _torch_transformer),
    _preset_case("resnet", "the resnet preset: 8x8 images, width 32, 2 basic blocks with BatchNorm, batch 32",
                 (1, 8, 8), _torch_resnet),
    # the MLP and CNN baselines of the MNIST-1D paper's code (mnist1d's train.py: hidden 256, 25 channels, batch 100)
    Case("mnist1d-mlp", "MNIST-1D MLP 40-256-256-10, batch 100", (40,), 100,
         lambda: Sequential([L.Dense(40, 256), L.ReLU(), L.Dense(256, 256), L.ReLU(), L.Dense(256, 10)], seed=0),
         lambda nn: nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                  nn.Linear(256, 10)), default=False),
    Case("mnist1d-conv1d", "MNIST-1D CNN: 3 Conv1D of 25 (k 5, 3, 3; stride 2), dense 10, batch 100",
         (1, 40), 100,
         lambda: Sequential([L.Conv1D(1, 25, 5, stride=2, padding=1), L.ReLU(),
                             L.Conv1D(25, 25, 3, stride=2, padding=1), L.ReLU(),
                             L.Conv1D(25, 25, 3, stride=2, padding=1), L.ReLU(), L.Flatten(), L.Dense(125, 10)],
                            seed=0),
         lambda nn: nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(125, 10)), default=False),
]}


@dataclass(frozen=True)
class BenchData:
    """A registered dataset whose training split the benchmark steps run on: its name and, for one read
    from files (``mnist``, ``fashion-mnist``), the folder. Only names travel, so a process of its own
    loads the same data."""

    name: str
    path: str | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The training split: flat samples (N, features) as float32 and integer labels (loaded once)."""
        return _training_split(self.name, self.path)


@functools.lru_cache(maxsize=2)
def _training_split(name: str, path: str | None) -> tuple[np.ndarray, np.ndarray]:
    from .. import datasets

    X, y, _, _ = datasets.load(name, flat=True, **({"path": path} if path is not None else {}))
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
    X.flags.writeable = False  # shared by every case and peer of the run
    return X, np.asarray(y)


def default_cases() -> list[str]:
    """The cases ``nkernels bench`` runs without ``--models`` or ``--data``."""
    return [name for name, case in CASES.items() if case.default]


def cases_for(source: BenchData) -> list[str]:
    """The cases whose samples hold as many values as ``source``'s (a sample is reshaped to the
    case's shape: MNIST's 784 pixels to LeNet's (1, 28, 28)) and whose classes cover its labels."""
    return [name for name, case in CASES.items() if _fits(case, source)]


def _fits(case: Case, source: BenchData) -> bool:
    X, y = source.arrays()
    return int(np.prod(case.sample_shape)) == X.shape[1] and int(y.max()) < case.n_classes


def data(case: Case, n_batches: int, seed: int = 0, source: BenchData | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels for ``n_batches`` batches: random numbers (speed hardly depends on the values),
    or with ``source`` samples of its training split in a seeded random order (repeated when the
    batches need more samples than it has), reshaped to the case's sample shape."""
    rng = np.random.default_rng(seed)
    n = n_batches * case.batch_size
    if source is None:
        X = rng.standard_normal((n,) + case.sample_shape).astype(np.float32)
        return X, rng.integers(0, case.n_classes, n)
    X_all, y_all = source.arrays()
    if not _fits(case, source):
        raise ValueError(f"benchmark model {case.name!r} takes samples of shape {case.sample_shape} and "
                         f"{case.n_classes} classes; {source.name}'s samples have {X_all.shape[1]} values and "
                         f"{int(y_all.max()) + 1} classes. Models for {source.name}: "
                         f"{', '.join(cases_for(source)) or 'none'}")
    order = np.resize(rng.permutation(len(X_all)), n)
    return X_all[order].reshape((n,) + case.sample_shape), y_all[order].astype(np.int64)


def median_seconds(run: Callable[[], Any], repeat: int, n_steps: int = 1, warmup: int = 2) -> float:
    """The median over ``repeat`` timed calls of ``run`` (after ``warmup`` untimed ones), per step."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / n_steps)
    return float(np.median(times))


def nkernels_step(case: Case, n_steps: int = 20, repeat: int = 15, device: str = "cpu",
                  source: BenchData | None = None) -> float:
    """Seconds per training step of nkernels (Adam) on ``case`` (random data, or ``source``'s): the
    compiled path on the CPU, the device trainer on ``"cuda"`` (data on the GPU; each timed run ends
    with its losses copied back, which waits for the GPU)."""
    from ..losses import SoftmaxCrossEntropy
    from ..optimizers import Adam
    from ..trainers import DeviceTrainer, make_trainer

    X, y = data(case, n_steps, source=source)
    trainer = make_trainer(case.build().to(device), SoftmaxCrossEntropy(), Adam(lr=1e-3), case.sample_shape,
                           case.batch_size)
    X2d, order = X.reshape(len(X), -1), np.arange(len(X))
    if isinstance(trainer, DeviceTrainer):
        X2d, y = trainer.put(X2d), trainer.put(y)
    return median_seconds(lambda: trainer.run(X2d, y, order, 0, n_steps, case.batch_size), repeat, n_steps)


def torch_step(case: Case, n_steps: int = 20, repeat: int = 15, threads: int | None = None,
               device: str = "cpu", source: BenchData | None = None) -> float:
    """Seconds per training step of PyTorch eager (Adam) on ``case`` (random data, or ``source``'s),
    with ``threads`` CPU threads, on ``device`` (``"cuda"``: data on the GPU, synchronized at the end
    of each timed run)."""
    import numba
    import torch
    from torch import nn

    torch.set_num_threads(threads or numba.config.NUMBA_NUM_THREADS)
    X, y = data(case, n_steps, source=source)
    model = case.build_torch(nn).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(X[i:i + case.batch_size]).to(device),
                torch.from_numpy(y[i:i + case.batch_size]).to(device))
               for i in range(0, len(X), case.batch_size)]

    def run():
        for xb, yb in batches:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return median_seconds(run, repeat, n_steps)


#: the peers :func:`speedups` can measure
PEERS = ("torch", "jax")


def _peer_step(peer: str) -> Callable[..., float]:
    """The function timing one case on ``peer``: :func:`torch_step` or :func:`nkernels.cli.bench_jax.jax_step`."""
    if peer == "torch":
        return torch_step
    from .bench_jax import jax_step

    return jax_step


def step_seconds(framework: str, name: str, n_steps: int, repeat: int, source: BenchData | None = None) -> float:
    """Seconds per training step of ``framework`` (``"nkernels"`` or a peer of :data:`PEERS`) on the case
    ``name`` (random data, or ``source``'s), measured in this process."""
    if framework == "nkernels":
        return nkernels_step(CASES[name], n_steps, repeat, source=source)
    return _peer_step(framework)(CASES[name], n_steps, repeat=repeat, source=source)


def _in_own_process(framework: str, name: str, n_steps: int, repeat: int, source: BenchData | None = None) -> float:
    """:func:`step_seconds` in a fresh Python process (the same interpreter and environment).

    A peer's ImportError (not installed) comes back as an ImportError; any other failure as a
    RuntimeError carrying the end of the child's error output."""
    code = "import sys; from nkernels.cli.bench import _child; _child(sys.argv[1:])"
    data_args = [] if source is None else [source.name] + ([] if source.path is None else [source.path])
    done = subprocess.run([sys.executable, "-c", code, framework, name, str(n_steps), str(repeat)] + data_args,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"timing {framework} on {name} in its own process failed (exit {done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    if "missing" in result:
        raise ImportError(result["missing"])
    return float(result["seconds"])


def _child(argv: list[str]) -> None:
    """The child process of :func:`_in_own_process`: prints one JSON line, its result."""
    framework, name, n_steps, repeat, *data_args = argv
    source = BenchData(*data_args) if data_args else None
    try:
        seconds = step_seconds(framework, name, int(n_steps), int(repeat), source)
    except ImportError as exc:
        print(json.dumps({"missing": str(exc)}))
        return
    print(json.dumps({"seconds": seconds}))


def speedups(names: list[str] | None = None, n_steps: int = 20, repeat: int = 15,
             peers: tuple[str, ...] = ("torch",), source: BenchData | None = None,
             rounds: int = 1) -> list[dict[str, Any]]:
    """For each case: nkernels' step time, each peer's (``"torch"``, ``"jax"``) and the ratios.

    Every side times on random data, or with ``source`` on batches of that dataset; without
    ``names``, the cases of :func:`default_cases`, or with ``source`` those of :func:`cases_for`.
    A row's ``data`` names the dataset (``"random"`` without one).

    A row holds ``nkernels_us`` and, per peer, ``{peer}_us``, ``{peer}_ratio`` (nkernels time /
    peer time: lower is better, the figure the asv suite tracks) and ``{peer}_speedup`` (peer time /
    nkernels time: "x faster", for people), both ``None`` when the peer is not installed
    or has no twin of the case.
    ``speedup`` is the PyTorch speedup.

    Every measurement runs in a fresh process of its own: two OpenMP runtimes (PyTorch's and
    Numba's, and OpenBLAS's threads) in one process slow whichever starts later, by 10 to 100
    times for PyTorch after nkernels on two cores. Each process imports its framework and compiles
    (or loads from the caches) before its timed runs.

    ``rounds`` above 1 times every framework that many times, the frameworks taking turns round by
    round, and reports each one's median: a shared machine's speed drifts over minutes (the same
    step 30% slower for a while), and taking turns lets every side see the same drift.
    """
    rounds = check_int(rounds, "rounds", minimum=1)
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; available: {', '.join(PEERS)}")
    cases = [CASES[name] for name in (names or (cases_for(source) if source else default_cases()))]
    steps = {case.name: max(2, n_steps // 4) if case.name == "lenet" else n_steps for case in cases}
    rows: list[dict[str, Any]] = [{"case": case.name, "description": case.description,
                                   "data": source.name if source else "random"} for case in cases]
    for case, row in zip(cases, rows):
        times: dict[str, list[float]] = {}
        present = [peer for peer in peers if peer != "jax" or case.jax]
        for _ in range(rounds):
            for framework in [*present, "nkernels"]:
                try:
                    seconds = _in_own_process(framework, case.name, steps[case.name], repeat, source)
                except ImportError:
                    if framework == "nkernels":
                        raise
                    present.remove(framework)  # not installed: no later round asks again
                    continue
                times.setdefault(framework, []).append(seconds * 1e6)
        for framework in list(peers) + ["nkernels"]:
            row[f"{framework}_us"] = float(np.median(times[framework])) if framework in times else None
        for peer in peers:
            peer_us = row[f"{peer}_us"]
            row[f"{peer}_ratio"] = None if peer_us is None else row["nkernels_us"] / peer_us
            row[f"{peer}_speedup"] = None if peer_us is None else peer_us / row["nkernels_us"]
        row["speedup"] = row.get("torch_speedup")
    return rows
