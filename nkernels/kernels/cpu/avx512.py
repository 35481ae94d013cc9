"""nkernels' own matrix product for CPUs with AVX-512: a register tile written in LLVM IR.

:func:`tiles_gemm` computes ``c = alpha * op(a) @ b + beta * c`` for row-major operands (``op(a)``
is ``a`` or ``a.T``; ``b`` is never transposed) tile by tile: each tile holds :data:`ROWS` rows by
:data:`VECTORS` vectors of 512 bits of ``c`` (8 by 32 float32 or 8 by 16 float64 entries) in 16
vector registers, and for each step of the inner dimension loads a row of ``b``'s tile once,
broadcasts one entry of each of ``op(a)``'s rows, and adds their products with fused multiply-adds.
Nothing is packed: on the products a training step makes (a few dozen to a few hundred rows, inner
dimensions up to a few hundred), every operand's tile stays in the first-level cache, and one core
runs at ~245-265 GFLOP/s (float32) on this project's Zen 5 machine, where OpenBLAS's AVX-512 kernels
give 135-250 and its AVX2 ones (``OPENBLAS_CORETYPE=Haswell``) 65-110. The tile's last rows and
columns are masked: rows past ``c``'s read the last row of ``op(a)`` again and are never stored, and
columns past ``c``'s are neither loaded nor stored (AVX-512 masked moves), so no kernel reads or
writes outside the arrays.

Each entry of ``c`` is one chain of fused multiply-adds over the inner dimension in order, wherever
its tile lies, so a product cut into pieces of rows or columns gives the same bits as the whole.

:mod:`.blas`'s ``gemm`` takes this path where :func:`tiles_in_use` says so: the CPU has AVX-512 and
Numba compiles for it (:data:`tiles`, read by compiled code at run time, so a cached kernel follows
the process it runs in; tests set it to compare both ways).
"""
import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["tiles_gemm", "tiles_take", "tiles_in_use", "tiles", "ROWS", "VECTORS", "TILES_MAX_INNER", "TILES_MAX_A"]

#: the rows of ``c`` in a tile
ROWS = 8
#: the vectors of 512 bits across a tile's row of ``c``
VECTORS = 2
#: the longest inner dimension and the most entries of ``op(a)`` of a product taken by tiles: a tile
#: reads its panel of ``b`` (inner dimension by 32 columns) from the first-level cache, and every
#: panel reads all of ``op(a)`` from the second-level cache; larger products go to BLAS, which packs
#: its operands (measured on one core, float32, GFLOP/s tiles against OpenBLAS's AVX-512 kernels:
#: (rows, inner, columns) (64, 1024, 128) 249 against 176, (256, 512, 512) 247 against 236 and 215
#: against 230 with ``a`` transposed, (1024, 1024, 1024) 168 against 243)
TILES_MAX_INNER = 1024
TILES_MAX_A = 1 << 17


def _cpu_has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512 (its host CPU, the default, having ``avx512f``)."""
    if numba_config.CPU_NAME not in (None, "host"):
        return False
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f"))
    except RuntimeError:  # features unknown on this platform
        return False


#: 1 while :func:`tiles_gemm` computes the products :mod:`.blas` hands it, read by compiled code at run
#: time through the LLVM symbol ``nkernels_avx512_tiles``
tiles = ctypes.c_int64(int(_cpu_has_avx512()))
llvm.add_symbol("nkernels_avx512_tiles", ctypes.addressof(tiles))


@intrinsic
def _read_tiles(typingctx):
    def codegen(context, builder, signature, args):
        int64 = ir.IntType(64)
        flag = builder.module.globals.get("nkernels_avx512_tiles")
        if flag is None:
            flag = ir.GlobalVariable(builder.module, int64, "nkernels_avx512_tiles")
            flag.linkage = "external"
        return builder.icmp_signed("!=", builder.load(flag), ir.Constant(int64, 0))

    return types.boolean(), codegen


@njit(cache=True)
def tiles_in_use():
    """Whether :mod:`.blas`'s ``gemm`` hands products to :func:`tiles_gemm` (:data:`tiles`)."""
    return _read_tiles()


def _tile_of(tile_rows: int, tile_vectors: int):
    """The intrinsic computing one tile of ``tile_rows`` rows by ``tile_vectors`` vectors of ``c``:
    ``c[i, j] = alpha * sum_p a[i, p] * b[p, j] + beta * c[i, j]`` (``beta * c`` left out when beta
    is 0) for ``rows`` rows (at most ``tile_rows``) and ``columns`` columns, with offsets and steps in
    elements from each array's first element: ``a[i, p]`` at ``a_offset + i * a_row_step + p *
    a_inner_step``, ``b[p, j]`` at ``b_offset + p * b_row_step + j``, ``c[i, j]`` at ``c_offset + i *
    c_row_step + j``."""
    def tile(typingctx, a, a_offset, a_row_step, a_inner_step, rows, b, b_offset, b_row_step, c, c_offset,
             c_row_step, columns, k, alpha, beta):
        return _tile_codegen(tile_rows, tile_vectors, a, a_offset, a_row_step, a_inner_step, rows, b, b_offset,
                             b_row_step, c, c_offset, c_row_step, columns, k, alpha, beta)

    tile.__name__ = tile.__qualname__ = f"tile_{tile_rows}x{tile_vectors}"
    return intrinsic(tile)


def _tile_codegen(ROWS, VECTORS, a, a_offset, a_row_step, a_inner_step, rows, b, b_offset, b_row_step, c, c_offset,
                  c_row_step, columns, k, alpha, beta):
    """The signature and code generator of :func:`_tile_of`'s tile (``ROWS`` and ``VECTORS`` its own)."""
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    sig = types.void(a, a_offset, a_row_step, a_inner_step, rows, b, b_offset, b_row_step, c, c_offset,
                     c_row_step, columns, k, alpha, beta)

    def codegen(context, builder, signature, args):
        real = context.get_value_type(dtype)
        lanes = 512 // dtype.bitwidth
        vec, int32, int64 = ir.VectorType(real, lanes), ir.IntType(32), ir.IntType(64)
        bits, wide = ir.VectorType(ir.IntType(1), lanes), ir.VectorType(int64, lanes)
        suffix = f"v{lanes}f{dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.{suffix}")
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec.as_pointer(), int32, bits, vec]), f"llvm.masked.load.{suffix}.p0")
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), int32, bits]),
            f"llvm.masked.store.{suffix}.p0")
        align = ir.Constant(int32, dtype.bitwidth // 8)

        def data(index):
            return context.make_array(signature.args[index])(context, builder, args[index]).data

        def integer(index):
            return context.cast(builder, args[index], signature.args[index], types.int64)

        def constant(value):
            return ir.Constant(int64, value)

        def splat(value, vector_type):
            undefined = ir.Constant(vector_type, ir.Undefined)
            first = builder.insert_element(undefined, value, ir.Constant(int32, 0))
            return builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(int32, lanes), [0] * lanes))

        def address(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vec.as_pointer())

        A, B, C = data(0), data(5), data(8)
        a_offset, a_row_step, a_inner_step, rows = (integer(i) for i in (1, 2, 3, 4))
        b_offset, b_row_step, c_offset, c_row_step, columns, k = (integer(i) for i in (6, 7, 9, 10, 11, 12))
        alpha, beta = (context.cast(builder, args[i], signature.args[i], dtype) for i in (13, 14))
        zero = ir.Constant(vec, [0.0] * lanes)
        lane = ir.Constant(wide, list(range(lanes)))
        masks = [builder.icmp_signed("<", builder.add(lane, splat(constant(h * lanes), wide)), splat(columns, wide))
                 for h in range(VECTORS)]
        # rows past c's read op(a)'s last row again (in bounds) and are never stored
        a_rows = []
        for r in range(ROWS):
            row = builder.select(builder.icmp_signed("<", constant(r), rows), constant(r),
                                 builder.sub(rows, constant(1)))
            a_rows.append(builder.add(a_offset, builder.mul(row, a_row_step)))

        entry = builder.block
        loop = builder.append_basic_block("tile_inner")
        done = builder.append_basic_block("tile_store")
        builder.cbranch(builder.icmp_signed(">", k, constant(0)), loop, done)
        builder.position_at_end(loop)
        p = builder.phi(int64)
        sums = [[builder.phi(vec) for _ in range(VECTORS)] for _ in range(ROWS)]
        b_row = builder.add(b_offset, builder.mul(p, b_row_step))
        b_vectors = [builder.call(masked_load, [address(B, builder.add(b_row, constant(h * lanes))), align,
                                                masks[h], zero]) for h in range(VECTORS)]
        a_step = builder.mul(p, a_inner_step)
        added = []
        for r in range(ROWS):
            a_value = builder.load(builder.gep(A, [builder.add(a_rows[r], a_step)]))
            broadcast = splat(a_value, vec)
            added.append([builder.call(fma, [broadcast, b_vectors[h], sums[r][h]]) for h in range(VECTORS)])
        following = builder.add(p, constant(1))
        last = builder.block
        p.add_incoming(constant(0), entry)
        p.add_incoming(following, last)
        for r in range(ROWS):
            for h in range(VECTORS):
                sums[r][h].add_incoming(zero, entry)
                sums[r][h].add_incoming(added[r][h], last)
        builder.cbranch(builder.icmp_signed("<", following, k), loop, done)

        builder.position_at_end(done)
        totals = []
        for r in range(ROWS):
            row = []
            for h in range(VECTORS):
                total = builder.phi(vec)
                total.add_incoming(zero, entry)
                total.add_incoming(added[r][h], last)
                row.append(total)
            totals.append(row)
        alphas, betas = splat(alpha, vec), splat(beta, vec)
        read_c = builder.fcmp_unordered("!=", beta, ir.Constant(real, 0.0))  # beta 0: c is never read (NaN included)
        for r in range(ROWS):
            with cgutils.if_likely(builder, builder.icmp_signed("<", constant(r), rows)):
                c_row = builder.add(c_offset, builder.mul(constant(r), c_row_step))
                for h in range(VECTORS):
                    target = address(C, builder.add(c_row, constant(h * lanes)))
                    scaled = builder.fmul(alphas, totals[r][h])
                    with builder.if_then(read_c):
                        old = builder.call(masked_load, [target, align, masks[h], zero])
                        builder.call(masked_store, [builder.call(fma, [betas, old, scaled]), target, align, masks[h]])
                    with builder.if_then(builder.not_(read_c)):
                        builder.call(masked_store, [scaled, target, align, masks[h]])
        return context.get_dummy_value()

    return sig, codegen


#: the tiles: 8 rows by 2 vectors (the most of the product), 16 rows by 1 vector (a c of one vector's
#: columns or fewer) and 4 rows by 4 vectors (the last rows when they are 4 or fewer); each holds 16
#: vector registers of sums
_tile = _tile_of(ROWS, VECTORS)
_narrow_tile = _tile_of(2 * ROWS, VECTORS // 2)
_short_tile = _tile_of(ROWS // 2, 2 * VECTORS)


@njit(cache=True)
def tiles_take(transb, m, k):
    """Whether :mod:`.blas`'s ``gemm`` hands a product with ``m`` rows and inner dimension ``k`` to
    :func:`tiles_gemm`: tiles in use (:func:`tiles_in_use`), ``b`` not transposed and within
    :data:`TILES_MAX_INNER` and :data:`TILES_MAX_A`."""
    return not transb and k <= TILES_MAX_INNER and m * k <= TILES_MAX_A and tiles_in_use()


@njit(cache=True)
def tiles_gemm(transa, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``c = alpha * op(a) @ b + beta * c`` by tiles (see the module), with the checks of
    :mod:`.blas`'s ``gemm`` made: ``op(a)`` (m, k), ``b`` (k, n), ``c`` (m, n), row-major with
    row strides ``lda``, ``ldb``, ``ldc`` in elements."""
    lanes = 64 // c.itemsize
    a_row_step, a_inner_step = (1, lda) if transa else (lda, 1)
    if n <= lanes:
        for i in range(0, m, 2 * ROWS):
            _narrow_tile(a, i * a_row_step, a_row_step, a_inner_step, min(2 * ROWS, m - i), b, 0, ldb, c, i * ldc,
                         ldc, n, k, alpha, beta)
        return
    tall = m - m % ROWS if m % ROWS <= ROWS // 2 else m  # the rows of the 8-row tiles
    width = VECTORS * lanes
    for j in range(0, n, width):  # a column panel of b stays in the first-level cache for every tile of it
        for i in range(0, tall, ROWS):
            _tile(a, i * a_row_step, a_row_step, a_inner_step, min(ROWS, tall - i), b, j, ldb, c, i * ldc + j, ldc,
                  min(width, n - j), k, alpha, beta)
    if tall < m:
        for j in range(0, n, 2 * width):
            _short_tile(a, tall * a_row_step, a_row_step, a_inner_step, m - tall, b, j, ldb, c, tall * ldc + j, ldc,
                        min(2 * width, n - j), k, alpha, beta)


if numba_config.DISABLE_JIT:  # plain Python (the kernel coverage run, a debugger): no intrinsics
    def _read_tiles():  # noqa: F811
        return tiles.value != 0

    def tiles_gemm(transa, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # noqa: F811
        product = alpha * ((a.T if transa else a) @ b)
        c[...] = product if beta == 0 else product + beta * c
