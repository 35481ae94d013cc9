"""Layer timings of the Numba conv/pool kernels against PyTorch (CPU, 2 threads).

Run from the repository root:  python benchmarks/layer_timings_conv_pool.py [--threads 2] [--dtype float32]

Each row: median over many runs, after warm-up (JIT compile excluded), in microseconds.
Forward+backward for conv computes dx, dweight and dbias on both sides (torch: x.requires_grad).
"""
import argparse
import os
import sys

_p = argparse.ArgumentParser()
_p.add_argument("--threads", type=int, default=2)
_p.add_argument("--dtype", default="float32")
_p.add_argument("--repeat", type=int, default=50)
ARGS = _p.parse_args()
for _v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from nkernels.kernels.cpu import conv, pool  # noqa: E402

torch.set_num_threads(ARGS.threads)
DT = np.dtype(ARGS.dtype)
TDT = {np.float32: torch.float32, np.float64: torch.float64}[DT.type]


def median_us(fn, repeat):
    for _ in range(3):
        fn()
    # Pick a number of inner calls so that one sample lasts >= ~2 ms.
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    inner = max(1, int(2e-3 / max(one, 1e-7)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return 1e6 * float(np.median(samples))


def bench_conv(name, xs, ws, pad, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(DT)
    w = (0.1 * rng.standard_normal(ws)).astype(DT)
    b = rng.standard_normal(ws[0]).astype(DT)
    oshape = conv.conv2d_output_shape(x.shape, w.shape, 1, 1, pad, pad)
    cs, gs = conv.conv2d_workspace_shapes(x.shape, w.shape, 1, 1, pad, pad)
    cols, gemm = np.empty(cs, DT), np.empty(gs, DT)
    out = np.empty(oshape, DT)
    dout = rng.standard_normal(oshape).astype(DT)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)

    def nk_fwd():
        conv.conv2d_forward(x, w, b, 1, 1, pad, pad, cols, gemm, out)

    def nk_fwdbwd():
        conv.conv2d_forward(x, w, b, 1, 1, pad, pad, cols, gemm, out)
        conv.conv2d_backward(x, w, dout, 1, 1, pad, pad, True, cols, gemm, dx, dw, db)

    xt = torch.tensor(x, dtype=TDT, requires_grad=True)
    wt = torch.tensor(w, dtype=TDT, requires_grad=True)
    bt = torch.tensor(b, dtype=TDT, requires_grad=True)
    dt_ = torch.tensor(dout, dtype=TDT)

    def t_fwd():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, padding=pad)

    def t_fwdbwd():
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, padding=pad).backward(dt_)

    res = {k: median_us(f, repeat) for k, f in
           [("nk fwd", nk_fwd), ("torch fwd", t_fwd), ("nk fwd+bwd", nk_fwdbwd),
            ("torch fwd+bwd", t_fwdbwd)]}
    return name, res


def bench_pool(name, xs, k, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(DT)
    oshape = pool.pool2d_output_shape(x.shape, k, k)
    out = np.empty(oshape, DT)
    idx = np.empty(oshape, np.int64)
    dout = rng.standard_normal(oshape).astype(DT)
    dx = np.empty_like(x)

    def nk_fwd():
        pool.maxpool2d_forward(x, k, k, out, idx)

    def nk_fwdbwd():
        pool.maxpool2d_forward(x, k, k, out, idx)
        pool.maxpool2d_backward(dout, idx, dx)

    xt = torch.tensor(x, dtype=TDT, requires_grad=True)
    dt_ = torch.tensor(dout, dtype=TDT)

    def t_fwd():
        with torch.no_grad():
            F.max_pool2d(xt, k)

    def t_fwdbwd():
        xt.grad = None
        F.max_pool2d(xt, k).backward(dt_)

    res = {k_: median_us(f, repeat) for k_, f in
           [("nk fwd", nk_fwd), ("torch fwd", t_fwd), ("nk fwd+bwd", nk_fwdbwd),
            ("torch fwd+bwd", t_fwdbwd)]}
    return name, res


def main():
    rows = []
    with threadpool_limits(ARGS.threads):
        rows.append(bench_conv("conv digits x(64,1,8,8) w(16,1,3,3) p1", (64, 1, 8, 8),
                               (16, 1, 3, 3), 1, ARGS.repeat))
        rows.append(bench_conv("conv LeNet1 x(128,1,28,28) w(32,1,5,5)", (128, 1, 28, 28),
                               (32, 1, 5, 5), 0, ARGS.repeat))
        rows.append(bench_conv("conv LeNet2 x(128,32,12,12) w(64,32,5,5)", (128, 32, 12, 12),
                               (64, 32, 5, 5), 0, ARGS.repeat))
        rows.append(bench_pool("maxpool2 (64,16,8,8)", (64, 16, 8, 8), 2, ARGS.repeat))
        rows.append(bench_pool("maxpool2 (128,32,24,24)", (128, 32, 24, 24), 2, ARGS.repeat))
    print(f"dtype={DT.name} threads={ARGS.threads} numba_threading_layer=", end="")
    import numba
    print(numba.threading_layer())
    cols = ["nk fwd", "torch fwd", "nk fwd+bwd", "torch fwd+bwd"]
    print(f"| case | {' | '.join(c + ' (µs)' for c in cols)} | speedup fwd | speedup fwd+bwd |")
    print("|---" * (len(cols) + 3) + "|")
    for name, r in rows:
        vals = " | ".join(f"{r[c]:.0f}" for c in cols)
        print(f"| {name} | {vals} | {r['torch fwd'] / r['nk fwd']:.2f}x | "
              f"{r['torch fwd+bwd'] / r['nk fwd+bwd']:.2f}x |")


if __name__ == "__main__":
    main()
