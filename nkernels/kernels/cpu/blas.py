"""Matrix products from ``@njit`` code: transposes, ``beta`` accumulation, no temporaries.

:func:`gemm` writes ``c = alpha * op(a) @ op(b) + beta * c`` for row-major 2-D arrays of one float
dtype (float32 or float64), where ``op(x)`` is ``x`` or ``x.T``. Each operand is C-contiguous or a view
whose rows are strided with a unit inner stride (``x[:, 2:5]``, ``x[1::2]``); a transposed operand is
given through its flag (``gemm(False, True, 1.0, x, w, 0.0, y)`` is ``y = x @ w.T``), never as a
transposed view. It is callable from Python and from ``@njit`` code (``cache=True`` included).

On a CPU with AVX-512, a training step's products go to nkernels' own register tiles (:mod:`.avx512`:
faster than OpenBLAS's kernels on them, and untouched by ``OPENBLAS_CORETYPE``): those with ``b`` not
transposed always, those with ``b`` transposed when they have the rows and columns to pack ``a``
(:func:`nkernels.kernels.cpu.avx512.by_packing`) or where OpenBLAS runs kernels without AVX-512
(:func:`tiles_take`). The rest go to BLAS ``sgemm``/``dgemm``, called directly.

How it stays cacheable: the addresses of SciPy's ``cython_blas`` ``sgemm``/``dgemm`` are registered
with LLVM as the symbols ``nkernels_scipy_sgemm``/``nkernels_scipy_dgemm`` when this module is imported,
and compiled code calls them by name. A cached function therefore links by symbol in every new
process (any module whose kernels call :func:`gemm` imports this one first), where a ctypes function
pointer held as a global would make its callers uncacheable ("dynamic globals").

Row-major through column-major BLAS: a row-major ``(r, k)`` array with row stride ``ld`` is, to
Fortran, its ``(k, r)`` transpose with leading dimension ``ld``; so ``C = op(A) op(B)`` is computed as
``C^T = op(B)^T op(A)^T``: the operands and their flags swapped, ``m`` and ``n`` swapped.
"""

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import get_cython_function_address, intrinsic, overload

from .avx512 import by_packing, by_swapping, tiles_fit, tiles_gemm, tiles_rows
from .process_flags import process_flag

__all__ = ["gemm", "gemm_row_pieces", "gemm_column_pieces", "gemm_inner_pieces", "gemm_transposed_tiles",
           "small_piece", "small_kernels_in_use", "tiles_take", "openblas_cores",
           "SPLIT_MULTIPLY_ADDS", "SMALL_PRODUCT", "SMALL_KERNEL_CORES"]

#: the LLVM symbol of SciPy's Fortran-ABI gemm per numba dtype
_SYMBOLS = {types.float32: "nkernels_scipy_sgemm", types.float64: "nkernels_scipy_dgemm"}
for _dtype, _symbol in _SYMBOLS.items():
    _blas_name = "sgemm" if _dtype == types.float32 else "dgemm"
    llvm.add_symbol(_symbol, get_cython_function_address("scipy.linalg.cython_blas", _blas_name))

_INT_MAX = 2 ** 31 - 1  # SciPy's cython_blas takes 32-bit Fortran integers

#: the kernels that share their products between two threads (each a single-threaded BLAS call) run
#: smaller ones whole on one thread: handing half of a product to a second thread costs about 2-3 µs
SPLIT_MULTIPLY_ADDS = 1 << 17


@intrinsic
def _fortran_gemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the Fortran ``xgemm`` on the data of the arrays ``a``, ``b``, ``c``: every scalar goes by
    pointer (a stack slot in the caller's entry block), the flags as the characters ``'N'``/``'T'``."""
    dtype = c.dtype
    if dtype not in _SYMBOLS or a.dtype != dtype or b.dtype != dtype:
        return None
    sig = types.void(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        char, int32 = ir.IntType(8), ir.IntType(32)
        real = context.get_value_type(dtype)
        fnty = ir.FunctionType(ir.VoidType(), [char.as_pointer()] * 2 + [int32.as_pointer()] * 3 + [
            real.as_pointer(), real.as_pointer(), int32.as_pointer(), real.as_pointer(), int32.as_pointer(),
            real.as_pointer(), real.as_pointer(), int32.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[dtype])

        def slot(index, to_type, llvm_type):
            ptr = cgutils.alloca_once(builder, llvm_type)
            builder.store(context.cast(builder, args[index], signature.args[index], to_type), ptr)
            return ptr

        def data(index):
            return context.make_array(signature.args[index])(context, builder, args[index]).data

        builder.call(fn, [slot(0, types.int8, char), slot(1, types.int8, char), slot(2, types.int32, int32),
                          slot(3, types.int32, int32), slot(4, types.int32, int32), slot(5, dtype, real), data(6),
                          slot(7, types.int32, int32), data(8), slot(9, types.int32, int32), slot(10, dtype, real),
                          data(11), slot(12, types.int32, int32)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def runtime_flag(typingctx, flag):
    """``flag`` as a plain ``bool``, never a literal: a function called with the literal ``True`` or
    ``False`` is compiled once for each literal (Numba tries literal types first), and every function
    calling those copies links and optimizes each of them again; through this, one copy serves all."""
    if not isinstance(flag, types.Boolean):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], types.boolean)

    return types.boolean(flag), codegen


@njit(cache=True)
def _row_major_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``c = alpha op(a) op(b) + beta c`` row-major, as ``c^T = alpha op(b)^T op(a)^T + beta c^T`` column-major:
    b first, with its flag, and n before m."""
    _fortran_gemm(np.uint8(84) if transb else np.uint8(78), np.uint8(84) if transa else np.uint8(78),
                  n, m, k, alpha, b, ldb, a, lda, beta, c, ldc)


if numba_config.DISABLE_JIT:  # plain Python (the kernel coverage run, a debugger): no intrinsics; NumPy computes the same
    def _row_major_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # noqa: F811
        product = alpha * ((a.T if transa else a) @ (b.T if transb else b))
        c[...] = product if beta == 0 else product + beta * c

    def runtime_flag(flag):  # noqa: F811
        return bool(flag)


@njit(cache=True)
def _leading_dim(x):
    """The row stride of ``x`` in elements (BLAS's leading dimension), after checking that its inner
    stride is one element and its rows do not overlap; ValueError otherwise."""
    rows, cols = x.shape
    size = x.itemsize
    if rows == 0 or cols == 0:  # nothing is read or written (NumPy may give any strides)
        return max(cols, 1)
    if cols > 1 and x.strides[1] != size:
        raise ValueError("gemm: an operand's inner (column) stride must be one element; pass a transposed "
                         "operand through its trans flag, or copy it with np.ascontiguousarray")
    if rows == 1:  # the row stride is never used (NumPy may give any)
        return max(cols, 1)
    if x.strides[0] % size != 0 or x.strides[0] < max(cols, 1) * size:
        raise ValueError("gemm: an operand's rows overlap or run backwards (row stride below its width); "
                         "copy it with np.ascontiguousarray")
    return x.strides[0] // size


@njit(cache=True)
def _extent(x):
    """The first and one-past-last byte addresses of the elements of a row-strided 2-D array."""
    start = x.ctypes.data
    if x.size == 0:
        return start, start
    return start, start + (x.shape[0] - 1) * x.strides[0] + x.shape[1] * x.itemsize


@njit(cache=True)
def _overlaps(x, y):
    x0, x1 = _extent(x)
    y0, y1 = _extent(y)
    return x0 < y1 and y0 < x1


@njit(cache=True)
def _gemm(transa, transb, alpha, a, b, beta, c):
    """The checked call (see :func:`gemm`)."""
    m, n = c.shape
    k = a.shape[0] if transa else a.shape[1]
    if (a.shape[1] if transa else a.shape[0]) != m or (b.shape[1] if transb else b.shape[0]) != k \
            or (b.shape[0] if transb else b.shape[1]) != n:
        raise ValueError("gemm: shapes do not match: op(a) must be (M, K), op(b) (K, N) and c (M, N)")
    if max(m, n, k) > _INT_MAX:
        raise ValueError("gemm: a dimension exceeds BLAS's 32-bit limit; split the product")
    lda, ldb, ldc = _leading_dim(a), _leading_dim(b), _leading_dim(c)
    if max(lda, ldb, ldc) > _INT_MAX:
        raise ValueError("gemm: a row stride exceeds BLAS's 32-bit limit; copy the operand")
    if _overlaps(c, a) or _overlaps(c, b):
        raise ValueError("gemm: c shares memory with a or b; write into a separate array")
    if m == 0 or n == 0:
        return
    if tiles_take(transa, transb, m, n, k):
        tiles_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        _row_major_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


def _check_types(a, b, c):
    """TypeError unless a, b and c are 2-D NumPy arrays of one float dtype (float32 or float64)."""
    for name, x in (("a", a), ("b", b), ("c", c)):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"gemm: {name} must be a NumPy array, got {type(x).__name__}")
        if x.ndim != 2:
            raise TypeError(f"gemm: {name} must be 2-D, got {x.ndim}-D; reshape it to (rows, columns)")
    if c.dtype not in (np.float32, np.float64) or a.dtype != c.dtype or b.dtype != c.dtype:
        raise TypeError(f"gemm: a, b and c must share one dtype, float32 or float64; got {a.dtype}, {b.dtype}, "
                        f"{c.dtype} (convert with .astype)")
    if not c.flags.writeable:
        raise ValueError("gemm: c is read-only; pass a writeable array")


def gemm(transa, transb, alpha, a, b, beta, c):
    """Write ``c = alpha * op(a) @ op(b) + beta * c`` in place, no temporaries: by nkernels' AVX-512 tiles
    where they take the product (:func:`tiles_take`), else BLAS ``sgemm``/``dgemm``.

    ``op(x)`` is ``x.T`` when the flag (``transa`` for ``a``, ``transb`` for ``b``) is true, else ``x``.
    a, b, c: 2-D arrays of one dtype, float32 or float64, each C-contiguous or a view of rows with a
    unit inner stride (a slice such as ``x[:, 2:5]`` is fine; express ``w.T`` as ``w`` with its flag);
    ``op(a)`` is (M, K), ``op(b)`` (K, N), ``c`` (M, N) and must not share memory with ``a`` or ``b``.
    With ``beta == 0`` the old contents of ``c`` are ignored (never read, NaN included).
    Callable from Python (types checked: TypeError) and from ``@njit(cache=True)`` code; shape,
    stride or overlap errors raise ValueError before anything is read. BLAS's own threading
    applies to its products (limit it with threadpoolctl); the tiles run on the calling thread.
    """
    _check_types(a, b, c)
    _gemm(bool(transa), bool(transb), float(alpha), a, b, float(beta), c)


@overload(gemm)
def _gemm_in_njit(transa, transb, alpha, a, b, beta, c):
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) and x.ndim == 2 for x in arrays):
        raise TypingError("gemm: a, b and c must be 2-D arrays")
    if c.dtype not in _SYMBOLS or a.dtype != c.dtype or b.dtype != c.dtype:
        raise TypingError(f"gemm: a, b and c must share one dtype, float32 or float64; got {a.dtype}, "
                          f"{b.dtype}, {c.dtype}")
    if not c.mutable:
        raise TypingError("gemm: c is read-only")

    def impl(transa, transb, alpha, a, b, beta, c):
        _gemm(runtime_flag(transa), runtime_flag(transb), alpha, a, b, beta, c)

    return impl


#: OpenBLAS's AVX-512 kernels ("SkylakeX" and the cores that reuse them) multiply a product of at most
#: this many multiply-adds without packing its operands first (its ``gemm_small_kernel_permit``), except a
#: row-major ``a @ b.T`` with more than 1200 entries in ``c``. Products made again and again with one
#: operand the same (a convolution's per sample, a recurrent cell's per time step) are cut into pieces
#: this small where those kernels are in use (:func:`small_kernels_in_use`): LeNet's second convolution's
#: forward and column gradient 79 -> 57 µs a sample, LSTM(16->128)'s recurrent products 25-35% faster.
#: Elsewhere a piece packs the shared operand again (LeNet's conv2 forward 1.7x slower with OpenBLAS's
#: Haswell kernels), so products stay whole.
SMALL_PRODUCT = 1_000_000

#: the most entries of ``c`` for which those kernels take a row-major ``a @ b.T`` (see :data:`SMALL_PRODUCT`)
SMALL_TRANSPOSED_OUTPUTS = 1200

#: the most rows of ``a`` for which a row-major ``a @ b.T`` is cut into tiles of ``c`` of
#: :data:`TRANSPOSED_TILE` x :data:`TRANSPOSED_TILE` for those kernels (:func:`gemm_transposed_tiles`).
#: A whole product packs all of ``b`` first, which few rows cannot pay for: measured with one thread,
#: (rows, inner, columns) (32, 128, 128) 15.1 -> 11.2 µs, (32, 64, 128) 7.8 -> 6.8, (64, 128, 128) 25.0
#: -> 22.6, (32, 128, 512) 58.7 -> 44.6; at 128 rows tiles gained nothing, at (128, 64, 512) they lost 18%
SMALL_TRANSPOSED_ROWS = 64
#: the side of those tiles (1,024 entries, within :data:`SMALL_TRANSPOSED_OUTPUTS`)
TRANSPOSED_TILE = 32
#: the least inner dimension for which those tiles pay (with an inner dimension of 10 they lost 55%)
TRANSPOSED_TILE_MIN_INNER = 32

#: the OpenBLAS core types whose kernels include the small-matrix ones
SMALL_KERNEL_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")


def openblas_cores() -> list[str]:
    """The core type ("SkylakeX", "Haswell", ...) whose kernels each loaded OpenBLAS runs: the one it
    chose for this CPU, or ``OPENBLAS_CORETYPE``'s ("?" where it does not say)."""
    from threadpoolctl import threadpool_info

    return [info.get("architecture") or "?" for info in threadpool_info() if info.get("internal_api") == "openblas"]


def _openblas_small_kernels() -> bool:
    """Whether every OpenBLAS loaded (SciPy's, whose gemm :func:`gemm` calls, and NumPy's) runs kernels
    of :data:`SMALL_KERNEL_CORES`."""
    cores = openblas_cores()
    return bool(cores) and all(core in SMALL_KERNEL_CORES for core in cores)


#: 1 while products are cut into pieces (see :data:`SMALL_PRODUCT`), read by compiled code at run time
#: through the LLVM symbol ``nkernels_blas_small_kernels`` (so a cached kernel follows the process it runs
#: in); tests set it to compare both ways
small_kernels, _read_small_kernels = process_flag("nkernels_blas_small_kernels", int(_openblas_small_kernels()))


@njit(cache=True)
def small_kernels_in_use():
    """Whether products are cut for OpenBLAS's small-matrix kernels (:data:`small_kernels`)."""
    return _read_small_kernels()


@njit(cache=True)
def tiles_take(transa, transb, m, n, k):
    """Whether :func:`gemm` hands a product of ``m`` rows, ``n`` columns and inner dimension ``k`` to
    nkernels' AVX-512 tiles where they fit (:func:`nkernels.kernels.cpu.avx512.tiles_fit`): those of
    ``op(a) @ b`` run faster than OpenBLAS's kernels on a training step's sizes. Those of ``a @ b.T`` by
    packed tiles (:func:`nkernels.kernels.cpu.avx512.by_packing`) do too; by dot tiles they are faster than
    OpenBLAS's AVX2 kernels but slower than its AVX-512 ones, so they take those only where OpenBLAS runs
    other kernels than :data:`SMALL_KERNEL_CORES` (:func:`small_kernels_in_use`). A narrow ``a.T @ b`` they
    compute swapped (:func:`nkernels.kernels.cpu.avx512.by_swapping`) takes ``n`` rows of ``op(a)``."""
    if transa and not transb and by_swapping(m, n):
        return tiles_fit(True, False, n, k)
    return tiles_fit(transa, transb, m, k) and not (transb and small_kernels_in_use() and not by_packing(m, n))


@njit(cache=True)
def small_piece(m, n, k):
    """The length of the pieces that cut ``n`` so that an (m, k) by (k, piece) product stays within
    :data:`SMALL_PRODUCT`: ``n`` itself when the whole product does, when pieces would be narrower
    than 8 or when OpenBLAS's small-matrix kernels are not in use, else the longest power of two
    that does."""
    if m * n * k <= SMALL_PRODUCT or not small_kernels_in_use():
        return max(1, n)
    piece = 8
    if piece * m * k > SMALL_PRODUCT:
        return n
    while 2 * piece * m * k <= SMALL_PRODUCT:
        piece *= 2
    return piece


@njit(cache=True)
def gemm_row_pieces(transa, alpha, a, b, beta, c):
    """``c = alpha * op(a) @ b + beta * c`` as products of pieces of the rows of ``c`` (:func:`small_piece`);
    each entry of ``c`` is still one dot product of the same operands. Products the tiles take stay whole;
    an ``a.T @ b`` too tall for them runs in pieces they take (:func:`nkernels.kernels.cpu.avx512.tiles_rows`:
    a recurrent layer's ``W_hh`` gradient over all its steps, (512, 128) from 1,280 rows, 650 µs in pieces
    of 256 rows against 800 (OpenBLAS's AVX-512 kernels) and 1,430 (its Haswell ones) whole, one thread)."""
    m, n = c.shape
    k = b.shape[0]
    if tiles_take(transa, False, m, n, k):
        piece = max(1, m)
    elif transa and m > tiles_rows(k) and tiles_take(True, False, tiles_rows(k), n, k):
        piece = tiles_rows(k)
    else:
        piece = small_piece(n, m, k)
    for i in range(0, m, piece):
        gemm(transa, False, alpha, a[:, i:i + piece] if transa else a[i:i + piece], b, beta, c[i:i + piece])


@njit(cache=True)
def gemm_column_pieces(alpha, a, b, beta, c):
    """``c = alpha * a @ b + beta * c`` as products of pieces of the columns of ``b`` and ``c``
    (:func:`small_piece`); each entry of ``c`` is still one dot product of the same operands. Products
    the tiles take stay whole."""
    m, n = c.shape
    k = a.shape[1]
    piece = max(1, n) if tiles_take(False, False, m, n, k) else small_piece(m, n, k)
    for j in range(0, n, piece):
        gemm(False, False, alpha, a, b[:, j:j + piece], beta, c[:, j:j + piece])


@njit(cache=True)
def gemm_transposed_tiles(alpha, a, b, beta, c):
    """``c = alpha * a @ b.T + beta * c``, row-major, as products of tiles of ``c`` of
    :data:`TRANSPOSED_TILE` x :data:`TRANSPOSED_TILE` where OpenBLAS's small-matrix kernels are in use,
    ``a`` has at most :data:`SMALL_TRANSPOSED_ROWS` rows and ``c`` more entries than those kernels take
    whole (:data:`SMALL_TRANSPOSED_OUTPUTS`); one product otherwise (and where the tiles take it). Each
    entry of ``c`` is still one dot product of the same operands."""
    m, n = c.shape
    k = a.shape[1]
    if tiles_take(False, True, m, n, k) or m > SMALL_TRANSPOSED_ROWS or m * n <= SMALL_TRANSPOSED_OUTPUTS \
            or k < TRANSPOSED_TILE_MIN_INNER or not small_kernels_in_use():
        gemm(False, True, alpha, a, b, beta, c)
        return
    tile = TRANSPOSED_TILE
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            gemm(False, True, alpha, a[i:i + tile], b[j:j + tile], beta, c[i:i + tile, j:j + tile])


@njit(cache=True)
def gemm_inner_pieces(alpha, a, b, c):
    """``c = alpha * a @ b`` summed over pieces of the inner dimension (:func:`small_piece`), each piece's
    product added to the ones before it (so the sums run in another order than one product's). Products
    the tiles take stay whole."""
    m, n = c.shape
    k = a.shape[1]
    piece = max(1, k) if tiles_take(False, False, m, n, k) else small_piece(m, k, n)
    for p in range(0, k, piece):
        gemm(False, False, alpha, a[:, p:p + piece], b[p:p + piece, :], 0.0 if p == 0 else 1.0, c)
