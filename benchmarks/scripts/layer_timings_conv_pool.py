"""Layer timings of the Numba conv/pool CPU kernels against PyTorch, in one process.

Run from the repository root::

    python benchmarks/scripts/layer_timings_conv_pool.py [--threads 2] [--blas-threads 2]
        [--dtype float32] [--omp-wait-policy passive] [--rounds 15]

Conv rows time forward (``conv2d_forward``) and forward + backward (``conv2d_backward`` with
``need_dx=True`` and ``cols_ready=True``, as the layers call it; torch: autograd with
``x.requires_grad``). The "no dx" row is the first-layer case (``need_dx=False``; torch: x without
grad). Pool rows time ``maxpool2d_forward`` and forward + ``maxpool2d_backward``.

Timing: JIT compile excluded (warm-up calls first). Each round runs a variant for ~2 ms; the
figure is the median (or --stat min) over rounds, in microseconds per call. By default all torch
variants of a row are timed before the nkernels ones (see ``timings``); --order interleaved
alternates them round by round.
On a 2-core VM, absolute figures swing by 2x or more between runs; compare within one run.

Threads: NUMBA_NUM_THREADS, OMP_NUM_THREADS, torch.set_num_threads = --threads; OpenBLAS (both
NumPy's and SciPy's, which Numba's np.dot uses) = --blas-threads. nkernels' training loops run
BLAS single-threaded (nkernels.runtime.threads): --blas-threads 1 shows that configuration.
This file is a plain script, not an asv benchmark (no ``time_`` functions are collected).
"""
import argparse
import os
import sys
import time

# Everything heavy is imported in main(), after the thread variables are set, so that importing
# this module (asv discovery walks benchmarks/) neither needs torch nor changes any thread pool.
np = torch = F = conv = pool = None
DT = TDT = None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Numba conv/pool kernels vs PyTorch, µs per call")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--blas-threads", type=int, default=None, help="default: --threads")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--omp-wait-policy", default=None, choices=["active", "passive"],
                   help="set OMP_WAIT_POLICY (read once, when libgomp loads); default: inherited")
    p.add_argument("--only", default=None, help="run only rows whose name contains this text")
    p.add_argument("--order", default="torch-first", choices=["torch-first", "interleaved"])
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="statistic over rounds (min resists a noisy shared machine)")
    return p.parse_args(argv)


def timings(variants, rounds, stat="median", order="torch-first"):
    """{name: µs per call, the median (or min) over rounds}, each round ~2 ms of calls.

    order "interleaved" alternates the variants round by round, so that a noisy spell on a shared
    machine hits both alike; otherwise each variant's rounds run back to back. main() times every
    torch variant of every row before any nkernels one by default (as ``nkernels bench`` does:
    PyTorch timed right after Numba/OpenBLAS work runs slower, their idle threads still spinning).
    """
    inner = {}
    for name, fn in variants:
        for _ in range(3):
            fn()
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, int(2e-3 / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name, _ in variants}

    def one_round(group):
        for name, fn in group:
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner[name])

    if order == "interleaved":
        for _ in range(rounds):
            one_round(variants)
    else:
        torch_first = sorted(variants, key=lambda v: not v[0].startswith("torch"))
        for name_fn in torch_first:
            for _ in range(rounds):
                one_round([name_fn])
    reduce = np.median if stat == "median" else np.min
    return {name: 1e6 * float(reduce(s)) for name, s in samples.items()}


def conv_row(xs, ws, pad, need_dx=True):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(DT)
    w = (0.1 * rng.standard_normal(ws)).astype(DT)
    b = rng.standard_normal(ws[0]).astype(DT)
    opts = (1, 1, pad, pad)
    oshape = conv.conv2d_output_shape(x.shape, w.shape, *opts)
    cs, gs = conv.conv2d_workspace_shapes(x.shape, w.shape, *opts)
    cols, gemm = np.empty(cs, DT), np.empty(gs, DT)
    out = np.empty(oshape, DT)
    dout = rng.standard_normal(oshape).astype(DT)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)

    def nk_fwd():
        conv.conv2d_forward(x, w, b, *opts, cols, gemm, out)

    def nk_step():
        conv.conv2d_forward(x, w, b, *opts, cols, gemm, out)
        conv.conv2d_backward(x, w, dout, *opts, need_dx, True, cols, gemm, dx, dw, db)

    xt = torch.tensor(x, dtype=TDT, requires_grad=need_dx)
    wt = torch.tensor(w, dtype=TDT, requires_grad=True)
    bt = torch.tensor(b, dtype=TDT, requires_grad=True)
    dt_ = torch.tensor(dout, dtype=TDT)

    def t_fwd():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, padding=pad)

    def t_step():
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, padding=pad).backward(dt_)

    # Same numbers as torch before timing anything.
    nk_step()
    t_step()
    rtol = 1e-3 if DT == np.float32 else 1e-9
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=rtol, atol=rtol * np.abs(dw).max())
    return [("nk fwd", nk_fwd), ("torch fwd", t_fwd), ("nk fwd+bwd", nk_step),
            ("torch fwd+bwd", t_step)]


def maxpool_row(xs, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(DT)
    oshape = pool.pool2d_output_shape(x.shape, k, k)
    out = np.empty(oshape, DT)
    idx = np.empty(oshape, np.int64)
    dout = rng.standard_normal(oshape).astype(DT)
    dx = np.empty_like(x)

    def nk_fwd():
        pool.maxpool2d_forward(x, k, k, out, idx)

    def nk_step():
        pool.maxpool2d_forward(x, k, k, out, idx)
        pool.maxpool2d_backward(dout, idx, dx)

    xt = torch.tensor(x, dtype=TDT, requires_grad=True)
    dt_ = torch.tensor(dout, dtype=TDT)

    def t_fwd():
        with torch.no_grad():
            F.max_pool2d(xt, k)

    def t_step():
        xt.grad = None
        F.max_pool2d(xt, k).backward(dt_)

    return [("nk fwd", nk_fwd), ("torch fwd", t_fwd), ("nk fwd+bwd", nk_step),
            ("torch fwd+bwd", t_step)]


ROWS = [
    ("conv digits x(64,1,8,8) w(16,1,3,3) pad 1",
     lambda: conv_row((64, 1, 8, 8), (16, 1, 3, 3), 1)),
    ("conv LeNet1 x(128,1,28,28) w(32,1,5,5)",
     lambda: conv_row((128, 1, 28, 28), (32, 1, 5, 5), 0)),
    ("conv LeNet1 no dx",
     lambda: conv_row((128, 1, 28, 28), (32, 1, 5, 5), 0, need_dx=False)),
    ("conv LeNet2 x(128,32,12,12) w(64,32,5,5)",
     lambda: conv_row((128, 32, 12, 12), (64, 32, 5, 5), 0)),
    ("conv resnet x(32,32,8,8) w(32,32,3,3) pad 1",
     lambda: conv_row((32, 32, 8, 8), (32, 32, 3, 3), 1)),
    ("conv resnet x(32,32,4,4) w(32,32,3,3) pad 1",
     lambda: conv_row((32, 32, 4, 4), (32, 32, 3, 3), 1)),
    ("maxpool k2 (64,16,8,8)", lambda: maxpool_row((64, 16, 8, 8), 2)),
    ("maxpool k2 (128,32,24,24)", lambda: maxpool_row((128, 32, 24, 24), 2)),
]
COLUMNS = ["nk fwd", "torch fwd", "nk fwd+bwd", "torch fwd+bwd"]


def main(argv=None):
    global np, torch, F, conv, pool, DT, TDT
    args = parse_args(argv)
    blas_threads = args.blas_threads or args.threads
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    root = os.path.dirname(os.path.abspath(__file__))
    while root != os.path.dirname(root) and not os.path.isdir(os.path.join(root, "nkernels")):
        root = os.path.dirname(root)  # the checkout holding the nkernels package
    sys.path.insert(0, root)

    import numba
    import numpy
    import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot uses SciPy's OpenBLAS)
    import torch as _torch
    from threadpoolctl import threadpool_limits

    from nkernels.kernels.cpu import conv as _conv, pool as _pool

    np, torch, F, conv, pool = numpy, _torch, _torch.nn.functional, _conv, _pool
    DT = np.dtype(args.dtype)
    TDT = {"float32": torch.float32, "float64": torch.float64}[DT.name]
    torch.set_num_threads(args.threads)
    with threadpool_limits(blas_threads, user_api="blas"):
        rows = [(name, make()) for name, make in ROWS if not args.only or args.only in name]
        if args.order == "interleaved":
            results = [(name, timings(v, args.rounds, args.stat, args.order)) for name, v in rows]
        else:  # every torch variant of every row first, then the nkernels ones
            part = {}
            for prefix in ("torch", "nk"):
                for name, variants in rows:
                    mine = [v for v in variants if v[0].startswith(prefix)]
                    part.setdefault(name, {}).update(timings(mine, args.rounds, args.stat))
            results = [(name, part[name]) for name, _ in rows]
    print(f"dtype={DT.name} numba threads={numba.get_num_threads()} "
          f"layer={numba.threading_layer()} blas threads={blas_threads} "
          f"torch threads={torch.get_num_threads()} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"stat={args.stat} order={args.order}")
    print("| case | " + " | ".join(c + " (µs)" for c in COLUMNS)
          + " | torch/nk fwd | torch/nk fwd+bwd |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for name, r in results:
        print(f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in COLUMNS)
              + f" | {r['torch fwd'] / r['nk fwd']:.2f}x"
              + f" | {r['torch fwd+bwd'] / r['nk fwd+bwd']:.2f}x |")


if __name__ == "__main__":
    main()
