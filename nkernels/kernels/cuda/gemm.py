"""Register-blocked, shared-memory tiled GEMM for the CUDA kernels (Dense, Conv, LSTM/GRU).

One kernel computes ``C = A @ B`` (optionally ``C += A @ B``, plus a bias) on flat 1-D device
arrays with leading dimensions and offsets, so every caller (``x @ W.T``, ``dy.T @ x``,
``dy @ W``, im2col GEMMs, per-timestep recurrent GEMMs on slices) uses it without copies::

    A[m, k] = a[a_off + m * lda + k]     if a_kcontig   (row-major M x K: x, dy, W)
            = a[a_off + k * lda + m]     otherwise      (the transpose of a row-major K x M)
    B[k, n] = b[b_off + n * ldb + k]     if b_kcontig   (the transpose of a row-major N x K: W in x @ W.T)
            = b[b_off + k * ldb + n]     otherwise      (row-major K x N)

The output element ``(m, n)`` goes to ``c[c_off + m * ldc + n]`` (``grp == 0``) or, for a
convolution's ``(O, N*OH*OW)`` product written straight into NCHW, to
``c[c_off + (n // grp) * M * grp + m * grp + n % grp]`` (``grp = OH*OW``). The epilogue adds
``bias[n]`` (``bias_mode == 1``, Dense) or ``bias[m]`` (``bias_mode == 2``, Conv), with
``beta == 1`` the value already in ``c``, and last applies an ``activation`` (ReLU, Sigmoid, Tanh,
GELU: :data:`EPILOGUE_ACTIVATIONS`), so that a layer and the activation after it are one launch.

Tiling (one thread block computes a ``BM x BN`` tile of C)::

    block tile   BM x BN          128 x 128 (float32), 64 x 64 (float64, or small float32 problems)
    K tile       BK = 8           staged in shared memory, two buffers, one barrier per K tile
    micro-tile   TM x TN          8 x 8 (or 4 x 4) accumulators in registers per thread
    threads      (BM/TM)*(BN/TN)  256

While tile ``t`` is multiplied out of shared memory, tile ``t + 1`` is already on its way from
global memory into registers (register prefetch); it is stored into the other shared buffer
next iteration. Shared tiles are k-major (``As[k][m]``, ``Bs[k][n]``), each k-row padded by 4
elements, so the transposing stores are free of bank conflicts. A thread's micro-tile rows are
``ty*4 + i`` and ``BM/2 + ty*4 + i`` (two chunks of 4, the columns likewise): each k step reads
its 8 A and 8 B values as four 16-byte aligned runs (``ld.shared.v4.f32``, ``v2.f64``), and a
warp's accesses are broadcasts or consecutive words, free of bank conflicts. Blocks run in
groups of ``GROUP_M`` row tiles so that blocks resident together share A and B tiles in L2.
Sizes need not divide the tiles. Interior tiles (the whole ``BM x BN`` tile inside C) load
every complete K tile with no bounds check (one uniform branch per K tile); edge tiles, and
every tile's last partial K tile, take the checked loads, which read zeros outside the
matrix. Stores are bounds-checked in every tile (once per tile; unchecked, they cost the
128 x 128 kernel 52 more registers). The tile shape follows the
problem's (:func:`default_config`): 128 x 128 for large float32 products, 64 x 64 for smaller
ones and float64, and short tiles (16 or 32 along the short side) for skinny products such as
LeNet's conv1 (M = its few output channels, N = every output pixel of the batch).
When the output has too few tiles to fill the GPU and K is long (weight gradients: ``dy.T @ x``
over a large batch, conv's ``dout @ cols`` over N*OH*OW pixels), K is split into slices run
by one launch into a cached workspace and summed by a second kernel, one thread per output
element adding the slices in a fixed order (split-K: the reduction parallel over the outputs,
deterministic: no atomics).

**Which GEMM runs.** The layers call :func:`gemm`, which runs the GEMM registered for
``("gemm", "cuda")``: :func:`tiled_gemm` (this module's kernel, priority 0) unless a plugin
registers another above it (``plugins/nkernels-vendor-gemm``: cuBLAS through CuPy or PyTorch).
:func:`time_gemm` times either, for the device figures (4096^3 fp32 by default).

The kernel is generated Python (:func:`gemm_source`): every loop over the micro-tile and the K
tile is unrolled into straight-line code on scalar variables, written into the nkernels cache
directory and imported from there, so Numba's on-disk cache holds across runs. Compiled for
sm_90 by NVVM/ptxas from CUDA 13.0 (``python benchmarks/gpu.py --ptxas``, no GPU needed), the
128 x 128 float32 kernel uses 160 registers, no stack frame or spills, and per K tile 512 FFMA
and 32 ``ld.shared.v4``. 160 registers allow one 256-thread block per multiprocessor;
``GemmConfig(..., blocks_per_sm=2)`` caps them at 128 for two, at the cost of ~170 bytes of
spills: which is faster is for a timing on the GPU to say (``benchmarks/gpu.py`` times both).
Under the simulator a 16 x 16 tile with a 4-thread block is the default: the same code paths
(two micro-tile chunks per thread, partial tiles) at a speed the simulator can bear.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import cuda

from ...runtime.cache import load_generated_module
from .launch import dtype_of, launch, scalar, scratch, simulator, sm_count

#: Row tiles per group of the block ordering (L2 reuse between neighbouring blocks).
GROUP_M = 8
#: Padding (elements) of each k-row of the shared tiles.
PAD = 4


class GemmConfig(NamedTuple):
    """Compile-time tile sizes of the GEMM kernel."""

    bm: int  # block tile rows (M)
    bn: int  # block tile columns (N)
    bk: int  # K tile
    tm: int  # micro-tile rows per thread
    tn: int  # micro-tile columns per thread
    #: resident blocks a multiprocessor should hold: above 1, the kernel gets launch bounds that
    #: cap its registers at 65536 / (threads * blocks_per_sm), spilling if it needs more
    blocks_per_sm: int = 1

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)


#: float32, enough tiles to fill the GPU.
LARGE = GemmConfig(128, 128, 8, 8, 8)
#: float64, or float32 problems too small to give every multiprocessor a 128 x 128 tile.
MEDIUM = GemmConfig(64, 64, 8, 4, 4)
#: Skinny products, float32: M <= 32 (a convolution's few output channels times N*OH*OW
#: pixels: LeNet's conv1) or N <= 32 (a classifier's few outputs, conv's dcols over R = C*KH*KW).
#: A 128 x 128 tile would compute 4x (or more) the useful outputs; these tiles span the short
#: side once, so B (or A) is streamed from global memory exactly once. 128 threads.
SMALL_M = GemmConfig(32, 128, 8, 4, 8)
SMALL_N = GemmConfig(128, 32, 8, 8, 4)
#: ... and M or N <= 16 (float32).
TINY_M = GemmConfig(16, 128, 8, 2, 8)
TINY_N = GemmConfig(128, 16, 8, 8, 2)
#: Skinny products in float64 (half the accumulators per register budget).
SMALL_M64 = GemmConfig(32, 64, 8, 4, 4)
SMALL_N64 = GemmConfig(64, 32, 8, 4, 4)
#: Under the simulator: 4 threads per block, still two 4-wide micro-tile chunks per thread.
SIMULATOR = GemmConfig(16, 16, 4, 8, 8)
#: A product is skinny when its short side fits one small tile and its long side is at least
#: this many times longer.
SKINNY_RATIO = 4

#: Activations the epilogue can apply to each output after the bias (and after ``beta``'s sum):
#: the statements turning ``v`` into ``f(v)``, the arithmetic of the forward kernels of
#: :mod:`.activation` (same expressions, same association, constants of the output's dtype), so
#: that a GEMM with ``activation="relu"`` writes what the GEMM and ``relu_forward`` write.
EPILOGUE_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "relu": ("v = v if v > zero else zero",),
    "sigmoid": ("e = math.exp(-abs(v))", "v = one / (one + e) if v >= zero else e / (one + e)"),
    "tanh": ("v = math.tanh(v)",),
    "gelu": ("v = half * v * (one + math.erf(v * sqrt_half))",),
    "gelu_tanh": ("t = math.tanh(sqrt_2_over_pi * (v + cubic * v * v * v))", "v = half * v * (one + t)"),
}
#: the constants of :data:`EPILOGUE_ACTIVATIONS`, made in the output's dtype at the kernel's start
EPILOGUE_CONSTANTS = {"zero": 0.0, "one": 1.0, "half": 0.5, "sqrt_half": 0.7071067811865476,
                      "sqrt_2_over_pi": 0.7978845608028654, "cubic": 0.044715}


def check_activation(activation: str | None) -> str | None:
    """``activation`` if the epilogue applies it (None: none); ValueError naming the choices otherwise."""
    if activation is not None and activation not in EPILOGUE_ACTIVATIONS:
        raise ValueError(f"the GEMM epilogue applies no activation {activation!r}: choose one of "
                         f"{', '.join(EPILOGUE_ACTIVATIONS)}, or None and a separate activation kernel")
    return activation


def check_grouping(n: int, grp: int) -> None:
    """ValueError unless ``grp`` (0: row-major ``C``) divides ``n``: the grouped layout stores ``n``
    as ``n // grp`` images of ``grp`` outputs each, and a partial last group would be written past ``C``."""
    if grp < 0 or (grp and n % grp):
        raise ValueError(f"grp={grp} must be 0 (a row-major C) or divide n={n}: the grouped (NCHW) output "
                         f"holds n // grp images of grp = OH*OW outputs each")


def _epilogue_constants(activation: str | None, out: str, indent: str) -> list[str]:
    """Lines defining the constants ``activation``'s statements use, in the dtype of array ``out``."""
    if activation is None:
        return []
    return [f"{indent}_dt = {out}.dtype.type"] + [f"{indent}{name} = _dt({value!r})"
                                                  for name, value in EPILOGUE_CONSTANTS.items()]


def _epilogue_store(activation: str | None, value: str, target: str, beta: bool, indent: str) -> list[str]:
    """Lines storing ``value`` into ``target`` (adding to it with ``beta``), ``activation`` applied last."""
    if activation is None:
        return [f"{indent}{target} {'+=' if beta else '='} {value}"]
    first = f"{indent}v = {target} + ({value})" if beta else f"{indent}v = {value}"
    return [first] + [indent + line for line in EPILOGUE_ACTIVATIONS[activation]] + [f"{indent}{target} = v"]


def check_config(cfg: GemmConfig) -> None:
    """Raise ValueError if the tile sizes do not fit together."""
    bm, bn, bk, tm, tn = cfg[:5]
    if min(cfg) < 1 or bm % tm or bn % tn:
        raise ValueError(f"bad GEMM tile sizes {cfg}: tm must divide bm and tn divide bn")
    nt = cfg.threads
    if nt > 1024:
        raise ValueError(f"bad GEMM tile sizes {cfg}: {nt} threads per block")
    if (bm * bk) % nt or (bn * bk) % nt:
        raise ValueError(f"bad GEMM tile sizes {cfg}: the {nt} threads must split the "
                         f"{bm}x{bk} and {bk}x{bn} tiles evenly")
    for d in (bk, bm, bn):
        if nt % d and d % nt:
            raise ValueError(f"bad GEMM tile sizes {cfg}: the {nt} threads and each of "
                             f"bm, bn, bk must divide one another")
    for t in (tm, tn):
        if t > 4 and t % 4:
            raise ValueError(f"bad GEMM tile sizes {cfg}: micro-tiles above 4 must be multiples of 4")


def default_config(dtype, m: int, n: int) -> GemmConfig:
    """The tile configuration used for an ``m x n`` output of ``dtype``, chosen by its shape.

    * skinny (``min(m, n) <= 32`` and the other side at least :data:`SKINNY_RATIO` times longer):
      a tile as short as that side (:data:`TINY_M`/:data:`SMALL_M`, their ``_N`` transposes, or
      :data:`SMALL_M64`/:data:`SMALL_N64` in float64);
    * float32 with at least one 128 x 128 tile per multiprocessor: :data:`LARGE`;
    * otherwise :data:`MEDIUM` (64 x 64: four times the blocks to spread over the GPU).

    Under the simulator always :data:`SIMULATOR` (tests pass their configuration explicitly).
    The thresholds are from the tile arithmetic, not from timings: ``time_gemm`` measures them.
    """
    if simulator():
        return SIMULATOR
    f32 = np.dtype(dtype) == np.float32
    short, long_ = min(m, n), max(m, n)
    if short <= 32 and long_ >= SKINNY_RATIO * short:
        if f32:
            cfg_m, cfg_n = (TINY_M, TINY_N) if short <= 16 else (SMALL_M, SMALL_N)
        else:
            cfg_m, cfg_n = SMALL_M64, SMALL_N64
        return cfg_m if m <= n else cfg_n
    if f32:
        tiles = math.ceil(m / LARGE.bm) * math.ceil(n / LARGE.bn)
        if tiles >= sm_count():
            return LARGE
    return MEDIUM


def gemm_source(cfg: GemmConfig, a_kcontig: bool, b_kcontig: bool, beta: bool, real_gpu: bool,
                activation: str | None = None) -> str:
    """Python source of the GEMM kernel for one configuration, with every loop over the
    micro-tile and the K tile unrolled into straight-line code; ``activation`` (a key of
    :data:`EPILOGUE_ACTIVATIONS`) is applied to each output as it is stored.

    Written with loops over ``cuda.local.array`` accumulators, the kernel kept them in a
    256-byte stack frame (NVVM turned the zeroing loop into a memset and did not unroll the
    epilogue), with local-memory traffic every K tile (numba-cuda 0.30, CUDA 13.0). Straight-line
    code on scalar variables leaves no choice: the ``TM*TN`` accumulators and the operands are
    SSA values, so registers, and each k step's shared loads have constant offsets from a
    16-byte aligned base, which the load/store vectorizer merges into ``ld.shared.v4``.
    """
    check_config(cfg)
    check_activation(activation)
    BM, BN, BK, TM, TN = (int(v) for v in cfg[:5])
    TX = BN // TN
    NT = (BM // TM) * TX
    LA = BM * BK // NT
    LB = BN * BK // NT
    VM, VN = min(4, TM), min(4, TN)
    SMC, SNC = BM // (TM // VM), BN // (TN // VN)
    BMP, BNP = BM + PAD, BN + PAD
    rows = [(i // VM) * SMC + i % VM for i in range(TM)]   # micro-tile row offsets from ty*VM
    cols = [(j // VN) * SNC + j % VN for j in range(TN)]   # micro-tile column offsets from tx*VN
    align = ", alignment=16" if real_gpu else ""  # the simulator refuses alignment=
    bounds = (f", launch_bounds=({NT}, {cfg.blocks_per_sm})"
              if real_gpu and cfg.blocks_per_sm > 1 else "")
    L: list[str] = []
    w = L.append
    w(f'"""Generated by nkernels.kernels.cuda.gemm for {tuple(cfg)}, a_kcontig={a_kcontig}, '
      f'b_kcontig={b_kcontig}, beta={beta}, activation={activation}. Do not edit."""')
    w("import math")
    w("")
    w("from numba import cuda")
    w("")
    w("")
    w(f"@cuda.jit(cache=True{bounds})")
    w("def gemm(M, N, K, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, grp, bias, bias_mode, zero,")
    w("         ksplit, csplit):")
    w(f"    As = cuda.shared.array({2 * BK * BMP}, dtype=a.dtype{align})")
    w(f"    Bs = cuda.shared.array({2 * BK * BNP}, dtype=a.dtype{align})")
    w("    tid = cuda.threadIdx.x & 1023")  # known non-negative: cheap // and %, no wraparound
    w(f"    tx = tid % {TX}")
    w(f"    ty = tid // {TX}")
    w(f"    num_m = (M + {BM - 1}) // {BM}")
    w(f"    num_n = (N + {BN - 1}) // {BN}")
    # split-K: blocks [s * tiles, (s + 1) * tiles) sum k in [s * ksplit, (s + 1) * ksplit)
    # into the s-th slice (csplit elements further on) of c
    w("    tiles = num_m * num_n")
    w("    split = cuda.blockIdx.x // tiles")
    w("    pid = cuda.blockIdx.x - split * tiles")
    w("    kbeg = split * ksplit")
    w("    K = min(K - kbeg, ksplit)")
    w("    a_off += kbeg" + ("" if a_kcontig else " * lda"))
    w("    b_off += kbeg" + ("" if b_kcontig else " * ldb"))
    w("    c_off += split * csplit")
    w(f"    in_group = {GROUP_M} * num_n")
    w(f"    first_m = (pid // in_group) * {GROUP_M}")
    w(f"    gsize = min(num_m - first_m, {GROUP_M})")
    w("    pm = first_m + (pid % in_group) % gsize")
    w("    pn = (pid % in_group) // gsize")
    w(f"    m0 = pm * {BM}")
    w(f"    n0 = pn * {BN}")
    w("    if m0 >= M or n0 >= N:")
    w("        return")
    # interior tiles (the whole BM x BN tile inside C) load their complete K tiles without a
    # bounds check; edge tiles, and the last partial K tile, keep the checked loads
    w(f"    interior = (m0 + {BM} <= M) & (n0 + {BN} <= N)")
    w(f"    kfull = K // {BK}")

    # Staging: thread tid moves element q = tid + e*NT (e < LA) of the operand tile, whose
    # coordinates are (q // D, q % D) with D the tile's contiguous extent. check_config makes
    # NT and D divide one another, so both are tid's coordinates plus compile-time offsets.
    def staging(op, kcontig, extent_mn, ld, off, count, pad):
        d = BK if kcontig else extent_mn
        offs = [((e * NT) // d, (e * NT) % d) for e in range(count)]
        mn0 = "m0" if op == "a" else "n0"
        w(f"    {op}q0 = tid // {d}")
        w(f"    {op}q1 = tid % {d}")
        if kcontig:   # q // d: row (m or n), q % d: k
            w(f"    {op}mn = {mn0} + {op}q0")
            w(f"    {op}k = {op}q1")
            w(f"    {op}g = {off} + {op}mn * {ld} + {op}q1")
            w(f"    {op}sh = {op}q1 * {pad} + {op}q0")
            # (global offset, mn offset, k offset, shared offset) of each staged element
            terms = [(f"{r} * {ld} + {c}" if r else f"{c}", r, c, c * pad + r) for r, c in offs]
        else:         # q // d: k, q % d: row (m or n)
            w(f"    {op}mn = {mn0} + {op}q1")
            w(f"    {op}k = {op}q0")
            w(f"    {op}g = {off} + {op}q0 * {ld} + {op}mn")
            w(f"    {op}sh = {op}q0 * {pad} + {op}q1")
            terms = [(f"{r} * {ld} + {c}" if r else f"{c}", c, r, r * pad + c) for r, c in offs]
        for e in range(count):
            w(f"    r{op}{e} = zero")
        return terms

    a_terms = staging("a", a_kcontig, BM, "lda", "a_off", LA, BMP)
    b_terms = staging("b", b_kcontig, BN, "ldb", "b_off", LB, BNP)
    for i in range(TM):
        for j in range(TN):
            w(f"    c{i}_{j} = zero")
    w(f"    ktiles = (K + {BK - 1}) // {BK}")
    w("    for t in range(-1, ktiles):")
    # 1. the registers holding tile t go to shared buffer t & 1
    w("        if t >= 0:")
    w(f"            sa = (t & 1) * {BK * BMP} + ash")
    w(f"            sb = (t & 1) * {BK * BNP} + bsh")
    for e, (_, _, _, sh) in enumerate(a_terms):
        w(f"            As[sa + {sh}] = ra{e}")
    for e, (_, _, _, sh) in enumerate(b_terms):
        w(f"            Bs[sb + {sh}] = rb{e}")
    w("            cuda.syncthreads()")
    # 2. tile t + 1 leaves global memory for the registers (in flight during step 3)
    w("        if interior & (t + 1 < kfull):")
    w(f"            k0 = (t + 1) * {BK}")
    for op, terms, kc, ld in (("a", a_terms, a_kcontig, "lda"), ("b", b_terms, b_kcontig, "ldb")):
        w(f"            {op}gg = {op}g + " + ("k0" if kc else f"k0 * {ld}"))
        for e, (g, _, _, _) in enumerate(terms):
            w(f"            r{op}{e} = {op}[{op}gg + {g}]")
    w("        elif t + 1 < ktiles:")
    w(f"            k0 = (t + 1) * {BK}")
    for op, terms, kc, lim, ld in (("a", a_terms, a_kcontig, "M", "lda"),
                                   ("b", b_terms, b_kcontig, "N", "ldb")):
        w(f"            {op}kk = k0 + {op}k")
        w(f"            {op}gg = {op}g + " + ("k0" if kc else f"k0 * {ld}"))
        for e, (g, dmn, dk, _) in enumerate(terms):
            w(f"            if ({op}mn + {dmn} < {lim}) & ({op}kk + {dk} < K):")
            w(f"                r{op}{e} = {op}[{op}gg + {g}]")
            w("            else:")
            w(f"                r{op}{e} = zero")
    # 3. multiply tile t out of shared memory: BK rank-1 updates of the micro-tile
    w("        if t >= 0:")
    w(f"            pa = (t & 1) * {BK * BMP} + ty * {VM}")
    w(f"            pb = (t & 1) * {BK * BNP} + tx * {VN}")
    for kk in range(BK):
        for i in range(TM):
            w(f"            x{i} = As[pa + {kk * BMP + rows[i]}]")
        for j in range(TN):
            w(f"            y{j} = Bs[pb + {kk * BNP + cols[j]}]")
        for i in range(TM):
            for j in range(TN):
                w(f"            c{i}_{j} += x{i} * y{j}")
    # epilogue: bias, output layout, activation, bounds-checked stores
    for line in _epilogue_constants(activation, "c", "    "):
        w(line)
    w("    rowmul = ldc if grp == 0 else grp")
    w("    bias_m = bias_mode == 2")
    w("    bias_n = bias_mode == 1")
    for i in range(TM):
        w(f"    mm{i} = m0 + ty * {VM} + {rows[i]}")
        w(f"    mv{i} = mm{i} < M")
        w(f"    mo{i} = c_off + mm{i} * rowmul")
        w(f"    mb{i} = zero")
        w(f"    if bias_m & mv{i}:")
        w(f"        mb{i} = bias[mm{i}]")
    for j in range(TN):
        w(f"    nn{j} = n0 + tx * {VN} + {cols[j]}")
        w(f"    nv{j} = nn{j} < N")
        w(f"    no{j} = nn{j}")
        w("    if grp != 0:")
        w(f"        no{j} = (nn{j} // grp) * (M * grp) + nn{j} % grp")
        w(f"    nb{j} = zero")
        w(f"    if bias_n & nv{j}:")
        w(f"        nb{j} = bias[nn{j}]")
    # the stores keep their checks even in interior tiles: unchecked, ptxas (sm_90) scheduled all
    # 64 of LARGE's stores together and its registers rose from 160 to 212; checked, they cost
    # one predicate each, once per tile
    for i in range(TM):
        for j in range(TN):
            w(f"    if mv{i} & nv{j}:")
            for line in _epilogue_store(activation, f"c{i}_{j} + mb{i} + nb{j}", f"c[mo{i} + no{j}]", beta,
                                        "        "):
                w(line)
    w("")
    return "\n".join(L)


def _load_generated(source: str, tag: str):
    return load_generated_module(source, "cuda", f"nkernels_cuda_{tag}")


@lru_cache(maxsize=None)
def gemm_kernel(cfg: GemmConfig, a_kcontig: bool, b_kcontig: bool, beta: bool = False,
                activation: str | None = None):
    """The GEMM kernel for one tile configuration, operand layout, ``beta`` (``C +=``) and epilogue
    activation, generated and imported on first use (nothing is compiled before its first launch)."""
    source = gemm_source(GemmConfig(*cfg), bool(a_kcontig), bool(b_kcontig), bool(beta),
                         real_gpu=not simulator(), activation=activation)
    return _load_generated(source, "gemm").gemm


def split_count(cfg: GemmConfig, m: int, n: int, k: int) -> int:
    """How many K slices to run in parallel: enough blocks for every multiprocessor twice over
    when the output has few tiles (a weight gradient: small M x N, a long K), each slice at least
    32 K tiles long. 1 under the simulator (tests ask for splits explicitly)."""
    if simulator():
        return 1
    tiles = math.ceil(m / cfg.bm) * math.ceil(n / cfg.bn)
    want = math.ceil(2 * sm_count() / tiles)
    return max(1, min(want, k // (32 * cfg.bk)))


#: The registry op of the GEMM: ``kernels[("gemm", "cuda")]`` is :func:`tiled_gemm` at priority 0;
#: a plugin may register a vendor GEMM (cuBLAS through CuPy, nvmath-python) above it.
GEMM_OP = "gemm"


def gemm_in_force():
    """The GEMM registered for ``("gemm", "cuda")`` with the highest priority (:func:`tiled_gemm`
    unless a plugin offers another)."""
    from ... import registry

    return registry.kernels[(GEMM_OP, "cuda")]


def gemm(a, b, c, m: int, n: int, k: int, *, a_kcontig: bool, b_kcontig: bool, lda: int,
         ldb: int, ldc: int = 0, a_off: int = 0, b_off: int = 0, c_off: int = 0, bias=None,
         bias_mode: int = 0, grp: int = 0, beta: bool = False, config: GemmConfig | None = None,
         splits: int | None = None, activation: str | None = None):
    """``C (m x n) [+]= A (m x k) @ B (k x n)`` on flat 1-D device arrays (module doc), by the
    GEMM in force (:func:`gemm_in_force`): the layers' GEMM.

    A registered GEMM takes these arguments (no ``config``/``splits``/``activation``) and may
    return ``NotImplemented`` for a case it does not handle; :func:`tiled_gemm` then runs it.
    Asking for a ``config`` or ``splits`` asks for :func:`tiled_gemm` itself. With an
    ``activation``, a registered GEMM writes the product and the activation's kernel follows it
    over the ``m * n`` elements from ``c_off`` (a second launch), where the product fills them
    all: a row-major ``C`` (``ldc == n``) or a grouped one (``grp``: a convolution's outputs);
    otherwise :func:`tiled_gemm` applies it in its epilogue. So a plan that fuses an activation
    computes the same numbers as one that does not, whichever GEMM is in force.
    """
    check_activation(activation)
    check_grouping(n, grp)
    if config is None and splits is None:
        chosen = gemm_in_force()
        fills_its_block = grp != 0 or ldc == n  # the product covers the m * n elements from c_off
        if getattr(chosen, "function", chosen) is not tiled_gemm and (activation is None or fills_its_block):
            done = chosen(a, b, c, m, n, k, a_kcontig=a_kcontig, b_kcontig=b_kcontig, lda=lda, ldb=ldb,
                          ldc=ldc, a_off=a_off, b_off=b_off, c_off=c_off, bias=bias, bias_mode=bias_mode,
                          grp=grp, beta=beta)
            if done is not NotImplemented:
                if activation is not None and m > 0 and n > 0:
                    from . import activation as kernels

                    out = c[c_off:c_off + m * n]
                    getattr(kernels, activation + "_forward")(out, out)
                return
    tiled_gemm(a, b, c, m, n, k, a_kcontig=a_kcontig, b_kcontig=b_kcontig, lda=lda, ldb=ldb, ldc=ldc,
               a_off=a_off, b_off=b_off, c_off=c_off, bias=bias, bias_mode=bias_mode, grp=grp, beta=beta,
               config=config, splits=splits, activation=activation)


def tiled_gemm(a, b, c, m: int, n: int, k: int, *, a_kcontig: bool, b_kcontig: bool, lda: int,
               ldb: int, ldc: int = 0, a_off: int = 0, b_off: int = 0, c_off: int = 0, bias=None,
               bias_mode: int = 0, grp: int = 0, beta: bool = False, config: GemmConfig | None = None,
               splits: int | None = None, activation: str | None = None):
    """Launch ``C (m x n) [+]= A (m x k) @ B (k x n)`` on flat 1-D device arrays (module doc), by
    nkernels' own tiled kernel.

    ``bias`` is a 1-D device array, added along n (``bias_mode=1``) or m (``bias_mode=2``);
    ``beta`` accumulates into ``c``; ``activation`` (a key of :data:`EPILOGUE_ACTIVATIONS`, or
    None) is applied to each output last, after the bias and ``beta``'s sum, as it is stored (with
    split-K, by the reduce kernel after the sum): ``Dense -> ReLU`` in one launch;
    ``config`` picks the tiles (default:
    :func:`default_config`); ``splits`` the number of K slices (default: :func:`split_count`),
    which above 1 go to a cached workspace and are summed by :func:`splitk_reduce` in a fixed
    order (deterministic). Asynchronous, like every launch.
    """
    check_activation(activation)
    check_grouping(n, grp)
    if m <= 0 or n <= 0:
        return
    dt = dtype_of(c)
    cfg = GemmConfig(*config) if config is not None else default_config(dt, m, n)
    if splits is None:
        splits = split_count(cfg, m, n, k)
    splits = max(1, min(int(splits), math.ceil(k / cfg.bk)))
    tiles = math.ceil(m / cfg.bm) * math.ceil(n / cfg.bn)
    if bias is None or bias_mode == 0:
        bias, bias_mode = c, 0
    zero = scalar(dt, 0)
    if splits == 1:
        kern = gemm_kernel(cfg, bool(a_kcontig), bool(b_kcontig), bool(beta), activation)
        kern[tiles, cfg.threads](m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, grp, bias,
                                 bias_mode, zero, max(k, 1), 0)
        return
    ksplit = math.ceil(math.ceil(k / splits) / cfg.bk) * cfg.bk
    splits = math.ceil(k / ksplit)
    work = scratch("splitk", splits * m * n, dt)
    kern = gemm_kernel(cfg, bool(a_kcontig), bool(b_kcontig), False)
    kern[tiles * splits, cfg.threads](m, n, k, a, a_off, lda, b, b_off, ldb, work, 0, n, 0, work, 0,
                                      zero, ksplit, m * n)
    splitk_reduce(work, splits, m, n, c, c_off, ldc, grp, bias, bias_mode, beta, activation)


def splitk_reduce_source(beta: bool, activation: str | None) -> str:
    """Python source of the split-K reduce kernel: one thread per output element sums the slices
    in order, adds the bias, then ``c``'s value (``beta``), then applies ``activation``."""
    check_activation(activation)
    lines = [f'"""Generated by nkernels.kernels.cuda.gemm: split-K reduce, beta={beta}, activation={activation}. '
             'Do not edit."""', "import math", "", "from numba import cuda", "", "",
             "@cuda.jit(cache=True)",
             "def splitk_reduce(work, splits, M, N, c, c_off, ldc, grp, bias, bias_mode):"]
    lines += _epilogue_constants(activation, "c", "    ")
    lines += ["    mn = M * N",
              "    for q in range(cuda.grid(1), mn, cuda.gridsize(1)):",
              "        w = work[q]",
              "        for s in range(1, splits):",
              "            w += work[s * mn + q]",
              "        mm = q // N",
              "        nn = q - mm * N",
              "        if bias_mode == 1:",
              "            w += bias[nn]",
              "        elif bias_mode == 2:",
              "            w += bias[mm]",
              "        if grp == 0:",
              "            idx = c_off + mm * ldc + nn",
              "        else:",
              "            g = nn // grp",
              "            idx = c_off + g * (M * grp) + mm * grp + (nn - g * grp)"]
    lines += _epilogue_store(activation, "w", "c[idx]", beta, "        ")
    return "\n".join(lines + [""])


@lru_cache(maxsize=None)
def splitk_reduce_kernel(beta: bool, activation: str | None):
    """The split-K reduce kernel for ``beta`` and an epilogue activation (generated on first use)."""
    return _load_generated(splitk_reduce_source(bool(beta), activation), "splitk_reduce").splitk_reduce


def splitk_reduce(work, splits, m, n, c, c_off, ldc, grp, bias, bias_mode, beta, activation=None):
    """``C = f(sum_s work[s] + bias [+ C])`` (output layout, beta and activation ``f`` as
    :func:`tiled_gemm`), the slices summed in order."""
    launch(splitk_reduce_kernel(bool(beta), activation), m * n, work, splits, m, n, c, c_off, ldc, grp, bias,
           bias_mode)


def time_gemm(m: int = 4096, n: int = 4096, k: int = 4096, dtype=np.float32, *, repeat: int = 10,
              calls: int = 3, config: GemmConfig | None = None, splits: int | None = None,
              which: str = "tiled", check: bool = True, seed: int = 0) -> dict:
    """Time ``C = A @ B.T`` (Dense's forward layout, row-major ``A`` m x k and ``B`` n x k) for the
    device figures: the median over ``repeat`` samples of CUDA events around ``calls`` back-to-back
    GEMMs (the host's launch overhead overlaps the GPU's work), after one warm-up call (which
    compiles). ``which``: ``"tiled"`` (nkernels' own kernel, ``config``/``splits`` as
    :func:`tiled_gemm`, default by the shape) or ``"in_force"`` (the registered GEMM: a vendor
    GEMM plugin's where one is in force). Inputs are random normals.

    Returns ``seconds`` (per GEMM), ``tflops``, ``config`` (the tiles used, for ``"tiled"``),
    ``registers`` (per thread, of the compiled tiled kernel; None under the simulator or for
    ``"in_force"``) and, with ``check``, ``max_rel_error``: the largest error against a float64
    NumPy product over the largest of it (a copy to the host; outside the timing).
    """
    import statistics

    if which not in ("tiled", "in_force"):
        raise ValueError(f"which must be 'tiled' or 'in_force', got {which!r}")
    if which == "in_force" and (config is not None or splits is not None):
        raise ValueError("config and splits choose the tiled GEMM's tiles; with which='in_force' they have no "
                         "effect: leave them out or use which='tiled'")
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    a_host = rng.standard_normal((m, k), dtype=np.float32).astype(dt)
    b_host = rng.standard_normal((n, k), dtype=np.float32).astype(dt)
    a, b = cuda.to_device(a_host.reshape(-1)), cuda.to_device(b_host.reshape(-1))
    c = cuda.device_array(m * n, dtype=dt)
    cfg = (GemmConfig(*config) if config is not None else default_config(dt, m, n)) if which == "tiled" else None
    run = tiled_gemm if which == "tiled" else gemm
    options = dict(config=cfg, splits=splits) if which == "tiled" else {}

    def once():
        run(a, b, c, m, n, k, a_kcontig=True, b_kcontig=True, lda=k, ldb=k, ldc=n, **options)

    once()
    cuda.synchronize()
    samples = []
    for _ in range(max(1, int(repeat))):
        start, stop = cuda.event(), cuda.event()
        start.record()
        for _ in range(max(1, int(calls))):
            once()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / 1000.0 / max(1, int(calls)))
    seconds = statistics.median(samples)
    result = dict(m=m, n=n, k=k, dtype=dt.name, which=which, seconds=seconds,
                  tflops=2.0 * m * n * k / seconds / 1e12 if seconds > 0 else float("nan"),
                  config=tuple(cfg) if cfg is not None else None, registers=None)
    if cfg is not None and not simulator():
        kern = gemm_kernel(cfg, True, True, False)
        result["registers"] = next(iter(kern.get_regs_per_thread().values()), None)
    if check:
        ref = a_host.astype(np.float64) @ b_host.astype(np.float64).T
        err = np.abs(c.copy_to_host().reshape(m, n) - ref).max()
        result["max_rel_error"] = float(err / max(np.abs(ref).max(), 1e-300))
    return result


# ----------------------------------------------------------------------------------------------
# Row and column sums (bias gradients)
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _column_sums_kernel(cx: int, cy: int):
    CX, CY = int(cx), int(cy)

    @cuda.jit(cache=True)
    def _column_sums(a, a_off, rows, cols, lda, out):
        """out[j] = sum_i a[a_off + i*lda + j]: CX columns per block, CY row slices, float64 sums."""
        part = cuda.shared.array((CY, CX), dtype=np.float64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        for cb in range(cuda.blockIdx.x * CX, cols, cuda.gridDim.x * CX):
            j = cb + tx
            s = np.float64(0.0)
            if j < cols:
                for i in range(ty, rows, CY):
                    s += a[a_off + i * lda + j]
            part[ty, tx] = s
            cuda.syncthreads()
            if ty == 0 and j < cols:
                for r in range(1, CY):
                    s += part[r, tx]
                out[j] = s
            cuda.syncthreads()

    return _column_sums


def column_sums(a, rows: int, cols: int, lda: int, out, a_off: int = 0):
    """``out[j] = sum_i A[i, j]`` for the row-major ``rows x cols`` matrix in flat ``a``
    (accumulated in float64, rounded once)."""
    if cols <= 0:
        return
    if simulator():
        cx, cy, cap = 4, 2, 2
    else:
        cx, cy, cap = 32, 8, sm_count() * 8
    blocks = max(1, min(math.ceil(cols / cx), cap))
    _column_sums_kernel(cx, cy)[blocks, (cx, cy)](a, a_off, rows, cols, lda, out)


@lru_cache(maxsize=None)
def _row_sums_kernel(threads: int):
    NTH = int(threads)

    @cuda.jit(cache=True)
    def _row_sums(a, rows, cols, scale, out):
        """out[r] = scale * sum_j a[r*cols + j]: one block per row (grid-stride over rows), float64 sums."""
        part = cuda.shared.array(NTH, dtype=np.float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            s = np.float64(0.0)
            base = r * cols
            for j in range(tid, cols, NTH):
                s += a[base + j]
            part[tid] = s
            cuda.syncthreads()
            step = NTH // 2
            while step > 0:
                if tid < step:
                    part[tid] += part[tid + step]
                cuda.syncthreads()
                step //= 2
            if tid == 0:
                out[r] = part[0] * scale
            cuda.syncthreads()

    return _row_sums


def row_sums(a, rows: int, cols: int, out, scale: float = 1.0):
    """``out[r] = scale * sum_j A[r, j]`` for the row-major ``rows x cols`` matrix in flat ``a``
    (accumulated in float64, scaled in float64, rounded once)."""
    if rows <= 0:
        return
    threads = 4 if simulator() else 256
    blocks = max(1, min(rows, 2 if simulator() else sm_count() * 8))
    _row_sums_kernel(threads)[blocks, threads](a, rows, cols, np.float64(scale), out)
