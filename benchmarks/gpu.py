"""Time every CUDA kernel family on a real GPU and print one table (not run in CI).

    python benchmarks/gpu.py                      # every family, issue 6's sizes
    python benchmarks/gpu.py --families dense,activation --repeat 50
    python benchmarks/gpu.py --json results.json  # the rows as JSON too
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu.py --tiny   # smoke test of the code paths only

Sizes follow issue 6: memory-bound kernels (activations, dropout, losses, optimizer updates,
pooling, copies, gathers, norms, augmentation) run on arrays of at least ``--mem-mb`` (256) MB
and report GB/s, counting each input read once and each output written once, against the
measured device-to-device copy bandwidth of an H100 (3.0 TB/s; ``--peak-gbs``). The Dense
forward GEMM runs at fp32 4096 x 4096 x 4096 and reports TFLOP/s (cuBLAS fp32 without TF32:
51.5 TFLOP/s measured on the lent H100), for each GEMM tile configuration. Conv and LSTM/GRU
report TFLOP/s and milliseconds at LeNet / digits-LSTM sizes.

Timing: CUDA events around three back-to-back calls (the host's launch overhead overlaps the
GPU's work), after a warm-up call (compilation stays out); the median of ``--repeat`` such
samples; inputs are random (never zeros). Kernels returning a scalar (losses, norms) include
their one small device-to-host copy. Under the simulator the numbers mean
nothing (``--tiny`` only checks that every benchmark runs).

This file sits in the asv benchmark directory: it defines no ``time_``/``track_`` names and
imports numba only inside ``main``, so asv's discovery imports it harmlessly.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

FAMILIES = ("activation", "dropout", "loss", "optim", "reshape", "batching", "norms", "augment",
            "pool", "dense", "conv", "recurrent", "training")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated families to time (default: all): " + ", ".join(FAMILIES))
    p.add_argument("--repeat", type=int, default=20, help="timed calls per kernel (median reported)")
    p.add_argument("--mem-mb", type=float, default=256.0,
                   help="size of the main array of each memory-bound kernel, in MB (default 256)")
    p.add_argument("--gemm-size", type=int, default=4096, help="M = N = K of the Dense GEMM")
    p.add_argument("--peak-gbs", type=float, default=3000.0,
                   help="copy bandwidth the GB/s column is compared with (default 3000: H100)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--tiny", action="store_true",
                   help="tiny sizes and one repeat: a smoke test (e.g. under the simulator)")
    p.add_argument("--ptxas", action="store_true",
                   help="no GPU needed: compile every kernel the benchmarks launch for sm_90 "
                        "(NVVM + libdevice + ptxas of a CUDA toolkit) and report registers, "
                        "stack and spills instead of timing")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    return p.parse_args(argv)


class Bench:
    """Collects rows: (family, kernel, size, ms, GB/s, TFLOP/s)."""

    def __init__(self, args):
        import numpy as np
        from numba import cuda

        self.np, self.cuda, self.args = np, cuda, args
        self.dtype = np.dtype(args.dtype)
        self.rng = np.random.default_rng(0)
        self.rows = []
        self.repeat = 1 if args.tiny else args.repeat

    # -- helpers -----------------------------------------------------------------------------
    def elems(self, itemsize=None):
        """Elements of a ``--mem-mb`` array of the benchmark dtype."""
        if self.args.tiny:
            return 1000
        return int(self.args.mem_mb * 2**20) // (itemsize or self.dtype.itemsize)

    def dev(self, a):
        """A host array on the device (left on the host in --ptxas mode, where nothing runs)."""
        return a if self.args.ptxas else self.cuda.to_device(a)

    def rand(self, *shape, dtype=None):
        return self.dev(self.rng.standard_normal(shape, dtype=self.np.float32).astype(dtype or self.dtype))

    def empty(self, *shape, dtype=None):
        if self.args.ptxas:
            return self.np.zeros(shape, dtype=dtype or self.dtype)
        return self.cuda.device_array(shape, dtype=dtype or self.dtype)

    def measure(self, fn):
        """Median milliseconds of one call of ``fn``: CUDA events around ``inner`` back-to-back
        calls (so the host's launch overhead overlaps the GPU's work), after a warm-up call.

        Each sample launches one call before its start event: the GPU runs it while the host
        queues the event and the timed calls, so the first timed call does not wait for the
        host's launch (numba-cuda took 32-93 us a launch on the H200's host, 2026-12-04: 5-20%
        of three calls of a 256 MB kernel, counted in when the start event came first)."""
        fn()
        if self.args.ptxas:
            return float("nan")
        self.cuda.synchronize()
        inner = 1 if self.args.tiny else 3
        times = []
        for _ in range(self.repeat):
            start, stop = self.cuda.event(), self.cuda.event()
            fn()
            start.record()
            for _ in range(inner):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / inner)
        return statistics.median(times)

    def run(self, family, name, size, fn, nbytes=None, flops=None):
        ms = self.measure(fn)
        secs = ms / 1e3 if ms and ms > 0 else float("nan")
        gbs = nbytes / secs / 1e9 if nbytes else None
        tflops = flops / secs / 1e12 if flops else None
        self.rows.append(dict(family=family, kernel=name, size=size, dtype=self.dtype.name,
                              ms=ms, gbs=gbs, tflops=tflops))

    # -- memory-bound families ---------------------------------------------------------------
    def activation(self):
        from nkernels.kernels.cuda import activation as k

        n = self.elems()
        b = self.dtype.itemsize
        x, y, dy, dx = self.rand(n), self.empty(n), self.rand(n), self.empty(n)
        for f in ("relu", "sigmoid", "tanh", "silu"):
            fwd, bwd = getattr(k, f + "_forward"), getattr(k, f + "_backward")
            self.run("activation", f + "_forward", f"{n:,}", lambda: fwd(x, y), 2 * n * b)
            self.run("activation", f + "_backward", f"{n:,}", lambda: bwd(y, dy, dx), 3 * n * b)

    def dropout(self):
        from nkernels.kernels.cuda import dropout as k

        n = self.elems()
        b = self.dtype.itemsize
        x, mask, out, dx = self.rand(n), self.empty(n), self.empty(n), self.empty(n)
        seed, counter = self.np.array([7], self.np.int64), self.np.zeros(1, self.np.int64)  # host buffers
        self.run("dropout", "dropout_forward", f"{n:,}",
                 lambda: k.dropout_forward(x, 0.3, seed, counter, mask, out), 3 * n * b)
        self.run("dropout", "dropout_backward", f"{n:,}",
                 lambda: k.dropout_backward(x, mask, dx), 3 * n * b)

    def loss(self):
        from nkernels.kernels.cuda import loss as k

        np = self.np
        c = 10
        rows = max(1, self.elems() // c)
        b = self.dtype.itemsize
        logits, probs, dl = self.rand(rows, c), self.empty(rows, c), self.empty(rows, c)
        labels = self.dev(self.rng.integers(0, c, rows).astype(np.int64))
        size = f"{rows:,}x{c}"
        self.run("loss", "softmax_cross_entropy_forward", size,
                 lambda: k.softmax_cross_entropy_forward(logits, labels, probs), rows * (2 * c * b + 8))
        self.run("loss", "softmax_cross_entropy_backward", size,
                 lambda: k.softmax_cross_entropy_backward(probs, labels, dl), rows * (2 * c * b + 8))
        self.run("loss", "count_correct", size, lambda: k.count_correct(logits, labels),
                 rows * (c * b + 8))
        n = self.elems()
        p, t, d = self.rand(n), self.rand(n), self.empty(n)
        self.run("loss", "mse_forward", f"{n:,}", lambda: k.mse_forward(p, t), 2 * n * b)
        self.run("loss", "mse_backward", f"{n:,}", lambda: k.mse_backward(p, t, d), 3 * n * b)

    def optim(self):
        from nkernels.kernels.cuda import optim as k

        n = self.elems()
        b = self.dtype.itemsize
        p, g, v, m = self.rand(n), self.rand(n), self.rand(n), self.rand(n)
        v2 = self.dev(self.np.abs(self.rng.standard_normal(n)).astype(self.dtype))  # Adam's v >= 0
        self.run("optim", "sgd_update (momentum)", f"{n:,}",
                 lambda: k.sgd_update(p, g, v, 1e-6, 0.9, 0.0, False), 5 * n * b)
        self.run("optim", "adam_update", f"{n:,}",
                 lambda: k.adam_update(p, g, m, v2, 1e-6, 0.9, 0.999, 1e-8, 0.0, False, 10), 7 * n * b)

    def reshape(self):
        from nkernels.kernels.cuda import reshape as k

        n = self.elems()
        b = self.dtype.itemsize
        t, h = 28, 128
        nb = max(1, n // (t * h))
        hs, out = self.rand(nb, t, h), self.empty(nb, h)
        self.run("reshape", "last_step_forward", f"{nb}x{t}x{h}",
                 lambda: k.last_step_forward(hs, out), 2 * nb * h * b)
        self.run("reshape", "last_step_backward", f"{nb}x{t}x{h}",
                 lambda: k.last_step_backward(out, hs), (nb * t * h + nb * h) * b)

    def batching(self):
        from nkernels.kernels.cuda import batching as k

        np = self.np
        f = 784
        rows = max(2, self.elems() // f)
        b = self.dtype.itemsize
        src = self.rand(rows, f)
        order = self.dev(self.rng.permutation(rows).astype(np.int64))
        batch = max(1, rows // 2)
        out = self.empty(batch, f)
        self.run("batching", "gather_rows", f"{batch:,}x{f} of {rows:,}",
                 lambda: k.gather_rows(src, order, 0, out), 2 * batch * f * b + 8 * batch)

    def norms(self):
        from nkernels.kernels.cuda import norms as k

        n = self.elems()
        b = self.dtype.itemsize
        a = self.rand(n)
        self.run("norms", "sum_of_squares", f"{n:,}", lambda: k.sum_of_squares(a), n * b)
        self.run("norms", "scale_inplace", f"{n:,}", lambda: k.scale_inplace(a, 1.0), 2 * n * b)
        cols = 4096 if not self.args.tiny else 10
        rows = max(1, n // cols)
        w = self.rand(rows, cols)
        self.run("norms", "max_norm_rows (none clipped)", f"{rows}x{cols}",
                 lambda: k.max_norm_rows(w, 1e9), rows * cols * b)

    def augment(self):
        from nkernels.kernels.cuda import augment as k

        hw = 28
        n = max(1, self.elems() // (hw * hw))
        b = self.dtype.itemsize
        x, out = self.rand(n, 1, hw, hw), self.empty(n, 1, hw, hw)
        self.run("augment", "random_translate", f"{n:,}x1x{hw}x{hw}",
                 lambda: k.random_translate(x, 2, 1, 0, out), 2 * n * hw * hw * b)

    def pool(self):
        from nkernels.kernels.cuda import pool as k

        np = self.np
        c, hw = 32, 24
        n = max(1, self.elems() // (c * hw * hw))
        b = self.dtype.itemsize
        x, dx = self.rand(n, c, hw, hw), self.empty(n, c, hw, hw)
        oshape = (n, c, hw // 2, hw // 2)
        out, arg, dout = self.empty(*oshape), self.empty(*oshape, dtype=np.int64), self.rand(*oshape)
        nin, nout = n * c * hw * hw, n * c * (hw // 2) ** 2
        size = f"{n:,}x{c}x{hw}x{hw}"
        self.run("pool", "maxpool2d_forward k2", size,
                 lambda: k.maxpool2d_forward(x, 2, 2, out, arg), nin * b + nout * (b + 8))
        self.run("pool", "maxpool2d_backward k2 (gather)", size,
                 lambda: k.maxpool2d_backward(dout, arg, dx, 2, 2), nin * b + nout * (b + 8))
        self.run("pool", "maxpool2d_backward k2 (zero + atomic scatter)", size,
                 lambda: k.maxpool2d_backward(dout, arg, dx), 2 * nin * b + nout * (b + 8))
        self.run("pool", "avgpool2d_forward k2", size,
                 lambda: k.avgpool2d_forward(x, 2, 2, out), (nin + nout) * b)
        self.run("pool", "avgpool2d_backward k2", size,
                 lambda: k.avgpool2d_backward(dout, 2, 2, dx), (nin + nout) * b)

    # -- GEMM-bound families -----------------------------------------------------------------
    def dense(self):
        from nkernels.kernels.cuda import dense as k
        from nkernels.kernels.cuda import gemm as G

        s = 64 if self.args.tiny else self.args.gemm_size
        x, w, bias, out = self.rand(s, s), self.rand(s, s), self.rand(s), self.empty(s, s)
        flops = 2.0 * s * s * s
        size = f"{s}^3"
        configs = [("LARGE 128x128/8x8", G.LARGE),
                   ("LARGE, 2 blocks/SM", G.GemmConfig(*G.LARGE[:5], blocks_per_sm=2)),
                   ("MEDIUM 64x64/4x4", G.MEDIUM)]
        if self.args.tiny:
            configs = configs[:1]
        fx, fw, fo = x.reshape(s * s), w.reshape(s * s), out.reshape(s * s)
        for label, cfg in configs:
            self.run("dense", f"GEMM x@W.T+b [{label}]", size,
                     lambda cfg=cfg: G.gemm(fx, fw, fo, s, s, s, a_kcontig=True, b_kcontig=True,
                                            lda=s, ldb=s, ldc=s, bias=bias, bias_mode=1,
                                            config=cfg), flops=flops)
        # a skinny product: a LeNet-style conv1 forward, W (32 x 25) @ cols.T over 128 images of 28 x 28
        m, n, kk = (32, 128 * 28 * 28, 25) if not self.args.tiny else (8, 64, 5)
        sw, scols, sout = self.rand(m * kk), self.rand(n * kk), self.empty(m * n)
        for label, cfg in [("default (skinny) tiles", None), ("MEDIUM", G.MEDIUM), ("LARGE", G.LARGE)]:
            if self.args.tiny and cfg is not None:
                continue
            self.run("dense", f"GEMM {m}x{n}x{kk} conv1-like [{label}]", f"{m}x{n}x{kk}",
                     lambda cfg=cfg: G.tiled_gemm(sw, scols, sout, m, n, kk, a_kcontig=True, b_kcontig=True,
                                                  lda=kk, ldb=kk, ldc=n, config=cfg), flops=2.0 * m * n * kk)
        self.run("dense", "dense_forward (default tiles)", size,
                 lambda: k.dense_forward(x, w, bias, out), flops=flops)
        dy, dx, dw, db = self.rand(s, s), self.empty(s, s), self.empty(s, s), self.empty(s)
        self.run("dense", "dense_backward (dW, db, dx)", size,
                 lambda: k.dense_backward(x, dy, w, True, dx, dw, db), flops=2 * flops)

    def conv(self):
        from nkernels.kernels.cpu import conv as shapes
        from nkernels.kernels.cuda import conv as k

        cases = [(128, 1, 28, 32, 5), (128, 32, 12, 64, 5)]  # LeNet's two convs, batch 128
        if self.args.tiny:
            cases = [(2, 1, 6, 3, 3)]
        for n, c, hw, o, ks in cases:
            x, w, b = self.rand(n, c, hw, hw), self.rand(o, c, ks, ks), self.rand(o)
            oshape = shapes.conv2d_output_shape(x.shape, w.shape)
            cs, gs = shapes.conv2d_workspace_shapes(x.shape, w.shape)
            cols, gemm, out = self.empty(*cs), self.empty(*gs), self.empty(*oshape)
            dout, dx, dw, db = self.rand(*oshape), self.empty(*x.shape), self.empty(*w.shape), self.empty(o)
            flops = 2.0 * n * o * oshape[2] * oshape[3] * c * ks * ks
            size = f"{n}x{c}x{hw}x{hw} -> {o}, {ks}x{ks}"
            self.run("conv", "conv2d_forward", size,
                     lambda: k.conv2d_forward(x, w, b, 1, 1, 0, 0, cols, gemm, out), flops=flops)
            self.run("conv", "conv2d_backward", size,
                     lambda: k.conv2d_backward(x, w, dout, 1, 1, 0, 0, True, False, cols, gemm, dx,
                                               dw, db), flops=2 * flops)

    def recurrent(self):
        from nkernels.kernels.cpu import recurrent as shapes
        from nkernels.kernels.cuda import recurrent as k

        n, t, ni, h = (2, 3, 4, 5) if self.args.tiny else (128, 28, 28, 128)
        for kind, g in (("lstm", 4), ("gru", 3)):
            ws = {name: self.empty(*shape) for name, shape in
                  getattr(shapes, kind + "_workspace_shapes")(n, t, ni, h).items()}
            fwd = getattr(shapes, kind.upper() + "_FORWARD_WORKSPACES")
            bwd = getattr(shapes, kind.upper() + "_BACKWARD_WORKSPACES")
            x, wih, whh, bih, bhh = (self.rand(n, t, ni), self.rand(g * h, ni), self.rand(g * h, h),
                                     self.rand(g * h), self.rand(g * h))
            hs, dhs = self.empty(n, t, h), self.rand(n, t, h)
            grads = [self.empty(*a.shape) for a in (x, wih, whh, bih, bhh)]
            flops = 2.0 * n * t * g * h * (ni + h)
            size = f"N{n} T{t} I{ni} H{h}"
            f = getattr(k, kind + "_forward")
            bw = getattr(k, kind + "_backward")
            self.run("recurrent", kind + "_forward", size,
                     lambda: f(x, wih, whh, bih, bhh, *[ws[m] for m in fwd], hs), flops=flops)
            self.run("recurrent", kind + "_backward", size,
                     lambda: bw(x, wih, whh, *[ws[m] for m in fwd[:3]], dhs, *[ws[m] for m in bwd],
                                *grads), flops=2 * flops)

    # -- whole training steps against PyTorch eager on the same GPU -----------------------------
    def training(self):
        """A training step (Adam) of the digits CNN and of LeNet (batch 128): nkernels' device
        trainer and PyTorch eager on the same GPU; the row's name carries the ratio."""
        from nkernels.cli import bench

        steps, repeat = (1, 1) if self.args.tiny else (20, max(5, self.repeat // 2))
        for name in ("cnn",) if self.args.tiny else ("cnn", "lenet"):  # LeNet takes hours simulated
            case = bench.CASES[name]
            ours = bench.nkernels_step(case, steps, repeat, device="cuda") * 1e3
            try:
                theirs = bench.torch_step(case, steps, repeat, device="cuda") * 1e3
                label = f"step {name} (PyTorch {theirs:.3f} ms: {theirs / ours:.2f}x)"
            except Exception as exc:  # no torch, or a CPU-only torch
                label = f"step {name} (no PyTorch CUDA: {type(exc).__name__})"
            self.rows.append(dict(family="training", kernel=label, size=f"batch {case.batch_size}",
                                  dtype="float32", ms=ours, gbs=None, tflops=None))

    # -- report ------------------------------------------------------------------------------
    def table(self):
        peak = self.args.peak_gbs
        head = (f"{'family':<11} {'kernel':<38} {'size':<28} {'ms':>9} {'GB/s':>8} {'of peak':>8} "
                f"{'TFLOP/s':>8}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            gbs = f"{r['gbs']:8.0f}" if r["gbs"] else " " * 8
            pct = f"{100 * r['gbs'] / peak:7.0f}%" if r["gbs"] else " " * 8
            tfl = f"{r['tflops']:8.2f}" if r["tflops"] else " " * 8
            ms = f"{r['ms']:9.3f}" if r["ms"] is not None and not math.isnan(r["ms"]) else " " * 9
            lines.append(f"{r['family']:<11} {r['kernel'][:38]:<38} {r['size'][:28]:<28} "
                         f"{ms} {gbs} {pct} {tfl}")
        return "\n".join(lines)


def compile_without_gpu():
    """Let numba-cuda 0.30 compile kernels to PTX for sm_90 with no GPU and no NVRTC, given a CUDA
    toolkit's NVVM, libdevice and ptxas (on PATH or under /usr/local/cuda*): it looks for NVRTC
    only to list architectures, and a device function asks the current device for its compute
    capability. Returns the path of ``ptxas``. Relies on numba-cuda internals: a development aid."""
    import glob
    import shutil

    ptxas = shutil.which("ptxas") or next(iter(sorted(glob.glob("/usr/local/cuda*/bin/ptxas"))), None)
    if ptxas is None:
        raise SystemExit("compiling without a GPU needs a CUDA toolkit's ptxas (on PATH or /usr/local/cuda*/bin)")
    if "CUDA_HOME" not in os.environ:  # the toolkit holding ptxas, for NVVM's libdevice
        homes = [os.path.dirname(os.path.dirname(os.path.realpath(ptxas)))]
        homes += sorted(glob.glob("/usr/local/cuda*"))
        for home in homes:
            if glob.glob(os.path.join(home, "nvvm", "libdevice", "libdevice*.bc")):
                os.environ["CUDA_HOME"] = home
                break
    from numba.cuda import cuda_paths
    from numba.cuda import dispatcher as disp
    from numba.cuda.cudadrv import nvrtc

    cuda_paths._get_nvrtc_path = lambda: cuda_paths._env_path_tuple("nkernels-ptxas", None)
    nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (8, 9), (9, 0))

    class _Device:
        compute_capability = (9, 0)

    disp.get_current_device = lambda: _Device()
    return ptxas


def _ptxas_mode(rows):
    """Compile instead of launch, without a GPU (:func:`compile_without_gpu`): make the launchers
    accept host arrays, and replace every kernel launch by ``compile_ptx`` for sm_90 plus
    ``ptxas -v``. Relies on numba-cuda internals: a development aid, not an API."""
    import re
    import subprocess
    import tempfile

    import numpy as np

    ptxas = compile_without_gpu()
    import numba
    from numba import cuda
    from numba.cuda import dispatcher as disp

    from nkernels.kernels.cuda import launch

    launch._sm_count = 132
    launch.resident_blocks = lambda kernel, args, threads: launch.BLOCKS_PER_SM  # nothing to ask
    launch.as_device_array = lambda a, what="array": a
    launch.scratch = lambda name, size, dtype: np.zeros(max(size, 1), dtype)
    launch.read_scalar = lambda buf, index=0: 0.0
    seen = set()
    workdir = tempfile.mkdtemp(prefix="nkernels-ptxas-")

    def compile_instead(self, config):
        def launch_(*args):
            sig = tuple(numba.typeof(a) for a in args)
            key = (self.py_func.__module__, self.py_func.__qualname__, str(sig))
            if key in seen:
                return
            seen.add(key)
            module = self.py_func.__module__.rsplit(".", 1)[-1]
            name = f"{module}.{self.py_func.__name__}"
            arrays = [str(t.dtype) for t in sig if isinstance(t, numba.types.Array)]
            dtype = next((d for d in arrays if d.startswith("float")), arrays[0] if arrays else "-")
            ptx, _ = cuda.compile_ptx(self.py_func, sig, cc=(9, 0),
                                      launch_bounds=self.targetoptions.get("launch_bounds"))
            path = os.path.join(workdir, f"k{len(seen)}.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            out = subprocess.run([ptxas, "-arch=sm_90", "-v", path, "-o", path + ".cubin"],
                                 capture_output=True, text=True)
            regs = re.findall(r"Used (\d+) registers", out.stderr)
            frame = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores", out.stderr)
            rows.append(dict(kernel=name, dtype=dtype, registers=int(regs[0]) if regs else None,
                             stack=int(frame[0][0]) if frame else None,
                             spills=int(frame[0][1]) if frame else None,
                             ld_shared_v4=ptx.count("ld.shared.v4") + ptx.count("ld.shared.v2.f64"),
                             ok=out.returncode == 0))
        return launch_

    disp.CUDADispatcher.__getitem__ = compile_instead


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        print(f"unknown families: {', '.join(unknown)}", file=sys.stderr)
        return 2
    # run from a checkout: the repository's nkernels first
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from numba import config, cuda

    if args.ptxas:
        if config.ENABLE_CUDASIM:
            print("--ptxas compiles for a real GPU: unset NUMBA_ENABLE_CUDASIM", file=sys.stderr)
            return 2
        args.tiny = True
        ptx_rows = []
        _ptxas_mode(ptx_rows)
        bench = Bench(args)
        for family in families:
            getattr(bench, family)()
        head = f"{'kernel':<48} {'dtype':<8} {'regs':>5} {'stack':>6} {'spills':>7} {'ld.v4':>6}"
        print(head)
        print("-" * len(head))
        for r in ptx_rows:
            print(f"{r['kernel'][:48]:<48} {r['dtype']:<8} {r['registers']!s:>5} {r['stack']!s:>6} "
                  f"{r['spills']!s:>7} {r['ld_shared_v4']:>6}" + ("" if r["ok"] else "  PTXAS FAILED"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(ptx_rows, f, indent=1)
        return 0 if all(r["ok"] for r in ptx_rows) else 1
    if config.ENABLE_CUDASIM:
        print("CUDA simulator: the times below mean nothing (a smoke test of the code paths)")
    elif not cuda.is_available():
        print("no usable CUDA GPU (numba.cuda.is_available() is False)", file=sys.stderr)
        return 1
    else:
        dev = cuda.get_current_device()
        print(f"GPU: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
              f"{dev.MULTIPROCESSOR_COUNT} SMs, compute capability {dev.compute_capability}")
    bench = Bench(args)
    for family in families:
        getattr(bench, family)()
        print(f"  {family}: done", file=sys.stderr, flush=True)
    print(bench.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(bench.rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
