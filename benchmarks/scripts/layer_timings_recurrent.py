"""Layer timings of the fused Numba LSTM/GRU kernels against torch.nn.LSTM/GRU (CPU, 2 threads).

Run from the repository root:  python benchmarks/scripts/layer_timings_recurrent.py [--threads 2] [--dtype float32]

Each row: median over many runs, after warm-up (JIT compile excluded), in microseconds, of
forward+backward through the whole sequence (dx, dW_ih, dW_hh, db_ih, db_hh on both sides;
torch with x.requires_grad and an upstream gradient on every step), plus the forward alone.
"""
import argparse
import os
import sys

_p = argparse.ArgumentParser()
_p.add_argument("--threads", type=int, default=2)
_p.add_argument("--dtype", default="float32")
_p.add_argument("--repeat", type=int, default=60)
ARGS = _p.parse_args()
for _v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from nkernels.kernels.cpu import recurrent as rk  # noqa: E402

torch.set_num_threads(ARGS.threads)
DT = np.dtype(ARGS.dtype)
TDT = {np.float32: torch.float32, np.float64: torch.float64}[DT.type]

# (cell, batch, T, input, hidden): the digits LSTM (8x8 image rows as a sequence), then longer ones.
CASES = [
    ("lstm", 64, 8, 8, 64),
    ("lstm", 64, 40, 16, 32),
    ("lstm", 64, 40, 16, 128),
    ("gru", 64, 8, 8, 64),
    ("gru", 64, 40, 16, 32),
    ("gru", 64, 40, 16, 128),
]


def median_us(fn, repeat):
    """Median time of fn in microseconds after warm-up.

    Functions are timed one after the other, never interleaved: PyTorch's OpenMP threads spin
    for a while after each call, and interleaved with OpenBLAS's threads on two cores both
    stall (this was seen here: 100x slower samples). A pause before each block lets them sleep.
    """
    time.sleep(0.5)
    for _ in range(5):
        fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    inner = max(1, int(2e-3 / max(one, 1e-7)))  # one sample lasts >= ~2 ms
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return 1e6 * float(np.median(samples))


def bench(cell, n, t, i, h, repeat):
    ng = 4 if cell == "lstm" else 3
    shapes_fn, fwd, bwd, fwd_names, bwd_names, saved = {
        "lstm": (rk.lstm_workspace_shapes, rk.lstm_forward, rk.lstm_backward,
                 rk.LSTM_FORWARD_WORKSPACES, rk.LSTM_BACKWARD_WORKSPACES, ("gates", "cells", "hprev")),
        "gru": (rk.gru_workspace_shapes, rk.gru_forward, rk.gru_backward,
                rk.GRU_FORWARD_WORKSPACES, rk.GRU_BACKWARD_WORKSPACES, ("gates", "hn", "hprev")),
    }[cell]
    rng = np.random.default_rng(0)
    k = 1.0 / np.sqrt(h)
    x = rng.standard_normal((n, t, i)).astype(DT)
    params = [rng.uniform(-k, k, s).astype(DT) for s in ((ng * h, i), (ng * h, h), (ng * h,), (ng * h,))]
    dhs = rng.standard_normal((n, t, h)).astype(DT)
    ws = {name: np.empty(s, DT) for name, s in shapes_fn(n, t, i, h).items()}
    hs = np.empty((n, t, h), DT)
    grads = [np.empty_like(x)] + [np.empty_like(p) for p in params]
    fwd_ws = [ws[name] for name in fwd_names]
    bwd_ins = [ws[name] for name in saved]
    bwd_ws = [ws[name] for name in bwd_names]

    def nk_fwd():
        fwd(x, *params, *fwd_ws, hs)

    def nk_fwdbwd():
        fwd(x, *params, *fwd_ws, hs)
        bwd(x, params[0], params[1], *bwd_ins, dhs, True, *bwd_ws, *grads)

    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(i, h, batch_first=True).to(TDT)
    with torch.no_grad():
        for p, v in zip((module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0), params):
            p.copy_(torch.from_numpy(v))
    xt = torch.from_numpy(x).requires_grad_(True)
    dt_ = torch.from_numpy(dhs)

    def t_fwd():
        with torch.no_grad():
            module(xt)

    def t_fwdbwd():
        xt.grad = None
        for p in module.parameters():
            p.grad = None
        module(xt)[0].backward(dt_)

    row = {}  # PyTorch first, as `nkernels bench` does
    row["t_fb"] = median_us(t_fwdbwd, repeat)
    row["nk_fb"] = median_us(nk_fwdbwd, repeat)
    row["t_f"] = median_us(t_fwd, repeat)
    row["nk_f"] = median_us(nk_fwd, repeat)
    return row


def main():
    print(f"threads={ARGS.threads} dtype={DT} torch={torch.__version__}")
    print(f"{'case':32s} {'nk f+b':>9s} {'torch f+b':>10s} {'ratio':>6s} {'nk fwd':>8s} {'torch fwd':>10s} {'ratio':>6s}")
    with threadpool_limits(ARGS.threads):
        for cell, n, t, i, h in CASES:
            r = bench(cell, n, t, i, h, ARGS.repeat)
            name = f"{cell.upper()}({i}->{h}) N={n} T={t}"
            print(f"{name:32s} {r['nk_fb']:9.0f} {r['t_fb']:10.0f} {r['t_fb'] / r['nk_fb']:5.2f}x "
                  f"{r['nk_f']:8.0f} {r['t_f']:10.0f} {r['t_f'] / r['nk_f']:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
