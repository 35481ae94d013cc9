"""nkernels' own matrix product for CPUs with AVX-512: register tiles written in LLVM IR.

:func:`tiles_gemm` computes ``c = alpha * op(a) @ op(b) + beta * c`` for row-major operands, at most
one of them transposed, tile by tile. For ``op(a) @ b`` a tile holds :data:`ROWS` rows by
:data:`VECTORS` vectors of 512 bits of ``c`` (8 by 32 float32 or 8 by 16 float64 entries) in 16
vector registers, and each step of the inner dimension loads a row of ``b``'s tile once, broadcasts
one entry of each of ``op(a)``'s rows, and adds their products with fused multiply-adds. Operands are
read where they lie: on the products a training step makes (a few dozen to a few hundred rows, inner
dimensions up to a few hundred) every operand's tile stays in the first-level cache, unless its rows lie
a multiple of 4 KiB apart and share cache sets (:data:`PACK_STRIDE`: those are copied first). One core runs at
~245-265 GFLOP/s (float32) on this project's Zen 5 machine, where OpenBLAS's AVX-512 kernels give
135-255 and its AVX2 ones (``OPENBLAS_CORETYPE=Haswell``) 65-110. For ``a @ b.T`` both operands run
along the inner dimension. With enough rows and columns (:func:`by_packing`) the same tiles compute
``c.T = b @ a.T``: blocks of ``a``'s rows are transposed into a buffer in registers (16 by 16 float32
at a time), ``b``'s rows are broadcast, and each tile's vectors are transposed back in registers into
rows of ``c`` as they are stored (225-260 GFLOP/s). Smaller ones run by dot tiles of :data:`DOT_SIDE`
by :data:`DOT_SIDE` entries, which sum a vector of the inner dimension at a time and add the lanes at
the end (125-205 GFLOP/s). An ``a.T @ b`` narrower than a tile and tall enough (:func:`by_swapping`: a
recurrent layer's input weight gradient, 16 columns by 512 rows) runs as the transpose of ``b.T @ a``
through a buffer. Longer inner dimensions run in blocks of :data:`INNER_BLOCK`, each block's products
added to ``c``.

Edges are masked: rows (and ``b.T``'s columns) past ``c``'s read the last ones again and are never
stored; columns and inner steps past the arrays are neither loaded nor stored (AVX-512 masked
moves). No tile reads or writes outside the arrays. Each entry of ``c`` is one chain of fused
multiply-adds over each block of the inner dimension in order (by dot tiles, one per lane, then the
lanes' sums added), wherever its tile lies, so a product cut into pieces of rows or columns gives the
same bits as the whole when the pieces run by the same kind of tiles.

:mod:`.blas`'s ``gemm`` takes this path where its ``tiles_take`` says so, and only where
:func:`tiles_in_use`: the CPU has AVX-512 and Numba compiles for it (:data:`tiles`, read by
compiled code at run time, so a cached kernel follows the process it runs in; tests set it to
compare both ways).
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .buffers import aligned_empty
from .process_flags import process_flag

__all__ = ["tiles_gemm", "tiles_fit", "tiles_rows", "tiles_in_use", "by_packing", "by_swapping", "transposed", "tiles", "ROWS",
           "VECTORS", "DOT_SIDE", "DOT_MIN_INNER", "PACK_MIN_ROWS", "PACK_MIN_COLUMNS", "SWAP_MAX_COLUMNS",
           "SWAP_MIN_ROWS", "PACK_STRIDE", "PACK_A_ENTRIES", "PANEL_MIN_ROWS", "INNER_BLOCK", "TILES_MAX_A"]

#: the rows of ``c`` in a tile
ROWS = 8
#: the vectors of 512 bits across a tile's row of ``c``
VECTORS = 2
#: the inner dimension's blocks: a product runs a block at a time, each block's products added to ``c``,
#: so that a tile's panel of ``b`` (a block by 32 columns) stays in the first two cache levels
INNER_BLOCK = 512
#: the most entries of ``op(a)``'s block (rows by :data:`INNER_BLOCK`) of a product taken by tiles:
#: every column panel reads all of it again, from the second-level cache while it fits there; larger
#: products go to BLAS, which packs its operands (measured on one core, float32, GFLOP/s tiles against
#: OpenBLAS's AVX-512 kernels: (rows, inner, columns) (64, 1024, 128) 249 against 176, (256, 512, 512)
#: 247 against 236 and 215 against 230 with ``a`` transposed, (1024, 1024, 1024) 168 against 243)
TILES_MAX_A = 1 << 17
#: the side of the tiles of ``a @ b.T`` (4 by 4 entries)
DOT_SIDE = 4
#: the shortest inner dimension of an ``a @ b.T`` taken by tiles: its tiles sum a vector of it at a time
DOT_MIN_INNER = 16
#: ``a @ b.T`` with at least :data:`PACK_MIN_ROWS` rows and :data:`PACK_MIN_COLUMNS` columns runs by
#: packed tiles (:func:`by_packing`): blocks of ``a``'s rows transposed into a buffer, and tiles of ``c.T``
#: (``b``'s rows broadcast, the buffer's rows as vectors) stored transposed. µs, float32, one core,
#: (rows, columns, inner), packed tiles against dot tiles: (32, 128, 64) 2.5 against 4.2, (32, 64, 64)
#: 1.5 against 2.1, (32, 32, 128) 1.6 against 1.6, (21, 128, 128) 4.6 against 4.8, (32, 16, 128) 1.1
#: against 0.8; against OpenBLAS's AVX-512 kernels cut as :mod:`.blas` cuts them: (32, 128, 64) 2.5 against
#: 3.6, (64, 128, 128) 9.1 against 11.5, (32, 32, 128) 1.6 against 1.4, (20, 128, 64) 2.7 against 2.5
PACK_MIN_ROWS = 32
PACK_MIN_COLUMNS = 64
#: ``a.T @ b`` with at most :data:`SWAP_MAX_COLUMNS` columns and at least :data:`SWAP_MIN_ROWS` rows runs as
#: the transpose of ``b.T @ a`` (:func:`by_swapping`), whose tiles fill their vectors and whose ``op(a)``
#: fits :data:`TILES_MAX_A`. GFLOP/s on one core, direct (tiles, or OpenBLAS's Haswell kernels where
#: ``op(a)`` is too large) against swapped, (rows, columns, inner): float32 (512, 16, 1280) BLAS 138
#: against 227, (512, 8, 1280) BLAS 92 against 204, (512, 24, 1280) BLAS 163 against 241, (256, 8, 256)
#: 89 against 236, (128, 16, 256) 183 against 244, (64, 16, 64) 163 against 168; float64 (512, 8, 1280)
#: BLAS 50 against 92, (256, 8, 256) 91 against 125
SWAP_MAX_COLUMNS = 31
SWAP_MIN_ROWS = 128
#: operands whose rows lie at least this many bytes apart are copied before tiles read them a column (of
#: ``a`` for ``a.T @ b``) or a panel (of ``b``) at a time: rows a multiple of 4 KiB apart share a cache set.
#: ``a.T``'s rows are copied row-major, :data:`PACK_A_ENTRIES` at a time, ``b``'s column panels one at a time.
#: A recurrent layer's per-step slices of ``(N, T, 4H)`` gate gradients and ``(N, T, H)`` states are such
#: operands: float32 ``a.T @ b`` (512, 128, 32) with ``a``'s rows 80 KiB apart and ``b``'s 20 KiB, 21.1 µs
#: against 18.0 µs for nearby rows
PACK_STRIDE = 4096
PACK_A_ENTRIES = 1 << 14
#: the fewest rows of ``c`` for which ``b``'s far-apart rows are copied (each panel's copy then serves 8 tiles)
PANEL_MIN_ROWS = 8 * ROWS


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
tiles, _read_tiles = process_flag("nkernels_avx512_tiles", int(_cpu_has_avx512()))


@njit(cache=True)
def tiles_in_use():
    """Whether :mod:`.blas`'s ``gemm`` hands products to :func:`tiles_gemm` (:data:`tiles`)."""
    return _read_tiles()


class _Vectors:
    """LLVM IR for vectors of 512 bits of ``dtype`` (float32 or float64) in one code generator: constants,
    broadcasts, masked loads and stores (the lanes a mask leaves out are never touched), fused
    multiply-adds, and loops summing vectors."""

    def __init__(self, context, builder, dtype):
        self.context, self.builder, self.dtype = context, builder, dtype
        self.real = context.get_value_type(dtype)
        self.lanes = 512 // dtype.bitwidth
        self.vector = ir.VectorType(self.real, self.lanes)
        self.int32, self.int64 = ir.IntType(32), ir.IntType(64)
        self.zero = ir.Constant(self.vector, [0.0] * self.lanes)
        self.lane = ir.Constant(ir.VectorType(self.int64, self.lanes), list(range(self.lanes)))

    def _intrinsic(self, name: str, result, arguments, width: int):
        suffix = f"v{width}f{self.dtype.bitwidth}"
        return cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(result, arguments),
                                              name.format(suffix))

    def constant(self, value: int):
        """An int64 constant."""
        return ir.Constant(self.int64, value)

    def splat(self, value, vector_type=None):
        """``value`` in every lane of a vector of ``vector_type`` (this dtype's by default)."""
        vector_type = vector_type or self.vector
        undefined = ir.Constant(vector_type, ir.Undefined)
        first = self.builder.insert_element(undefined, value, ir.Constant(self.int32, 0))
        return self.builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(self.int32, vector_type.count),
                                                                         [0] * vector_type.count))

    def below(self, start, end):
        """The mask of the lanes ``l`` with ``start + l < end`` (int64 values)."""
        wide = ir.VectorType(self.int64, self.lanes)
        return self.builder.icmp_signed("<", self.builder.add(self.lane, self.splat(start, wide)),
                                        self.splat(end, wide))

    def fma(self, x, y, z):
        """``x * y + z``, lane by lane, rounded once."""
        width = x.type.count
        vector = ir.VectorType(self.real, width)
        return self.builder.call(self._intrinsic("llvm.fma.{}", vector, [vector] * 3, width), [x, y, z])

    def load(self, base, offset, mask, width=None):
        """The vector of ``width`` lanes at ``base[offset]``, zero where ``mask`` is off."""
        width = width or self.lanes
        vector, bits = ir.VectorType(self.real, width), ir.VectorType(ir.IntType(1), width)
        load = self._intrinsic("llvm.masked.load.{}.p0", vector, [vector.as_pointer(), self.int32, bits, vector], width)
        return self.builder.call(load, [self._address(base, offset, vector), self._align(), mask,
                                        ir.Constant(vector, [0.0] * width)])

    def store(self, value, base, offset, mask):
        """Store the lanes of ``value`` where ``mask`` is on at ``base[offset]``."""
        width = value.type.count
        vector, bits = ir.VectorType(self.real, width), ir.VectorType(ir.IntType(1), width)
        store = self._intrinsic("llvm.masked.store.{}.p0", ir.VoidType(), [vector, vector.as_pointer(), self.int32, bits],
                                width)
        self.builder.call(store, [value, self._address(base, offset, vector), self._align(), mask])

    def store_scaled(self, total, base, offset, mask, alpha, beta):
        """``base[offset:] = alpha * total + beta * base[offset:]`` where ``mask`` is on; with beta 0 the old
        values are never read (NaN included)."""
        builder, width = self.builder, total.type.count
        vector = ir.VectorType(self.real, width)
        scaled = builder.fmul(self.splat(alpha, vector), total)
        with builder.if_else(builder.fcmp_unordered("!=", beta, ir.Constant(self.real, 0.0))) as (read_c, ignore_c):
            with read_c:
                old = self.load(base, offset, mask, width)
                self.store(self.fma(self.splat(beta, vector), old, scaled), base, offset, mask)
            with ignore_c:
                self.store(scaled, base, offset, mask)

    def clamped_rows(self, offset, row_step, count: int, rows):
        """The offsets of ``count`` rows from ``offset``: rows from ``rows`` on read row ``rows - 1`` again."""
        builder, offsets = self.builder, []
        for r in range(count):
            row = builder.select(builder.icmp_signed("<", self.constant(r), rows), self.constant(r),
                                 builder.sub(rows, self.constant(1)))
            offsets.append(builder.add(offset, builder.mul(row, row_step)))
        return offsets

    def summing_loop(self, end, step: int, count: int, body):
        """``for p in range(0, end, step): sums = body(p, sums)`` over ``count`` vectors of sums starting
        at zero; returns the final sums."""
        builder = self.builder
        entry = builder.block
        loop, done = builder.append_basic_block("sum_step"), builder.append_basic_block("sum_done")
        builder.cbranch(builder.icmp_signed(">", end, self.constant(0)), loop, done)
        builder.position_at_end(loop)
        p = builder.phi(self.int64)
        sums = [builder.phi(self.vector) for _ in range(count)]
        added = body(p, sums)
        following = builder.add(p, self.constant(step))
        last = builder.block
        p.add_incoming(self.constant(0), entry)
        p.add_incoming(following, last)
        for phi, value in zip(sums, added):
            phi.add_incoming(self.zero, entry)
            phi.add_incoming(value, last)
        builder.cbranch(builder.icmp_signed("<", following, end), loop, done)
        builder.position_at_end(done)
        totals = []
        for value in added:
            total = builder.phi(self.vector)
            total.add_incoming(self.zero, entry)
            total.add_incoming(value, last)
            totals.append(total)
        return totals

    def lane_sums(self, vectors):
        """The sum of each vector's lanes, as ``(vectors, where)``: fewer vectors holding the sums and, for
        each vector given, the (vector, lane) of its sum. Pairs of vectors fold halves of their lanes
        into one vector until each lane holds one sum (a transposing reduction: no lane is wasted)."""
        builder, lanes = self.builder, self.lanes
        groups = [[v] for v in range(len(vectors))]  # per vector, whose partial sums its groups of lanes hold
        size = lanes
        while size > 1:
            half = size // 2
            folded, folded_groups = [], []
            for x, y, x_groups, y_groups in zip(vectors[::2], vectors[1::2], groups[::2], groups[1::2]):
                low, high, owners = [], [], []
                for g, (x_owner, y_owner) in enumerate(zip(x_groups, y_groups)):
                    for source, owner in ((0, x_owner), (lanes, y_owner)):
                        low += [source + g * size + t for t in range(half)]
                        high += [source + g * size + half + t for t in range(half)]
                        owners.append(owner)
                mask = lambda indices: ir.Constant(ir.VectorType(self.int32, lanes), indices)  # noqa: E731
                folded.append(builder.fadd(builder.shuffle_vector(x, y, mask(low)), builder.shuffle_vector(x, y, mask(high))))
                folded_groups.append(owners)
            vectors, groups, size = folded, folded_groups, half
        where = {owner: (v, lane) for v, owners in enumerate(groups) for lane, owner in enumerate(owners)}
        return vectors, [where[v] for v in range(len(where))]

    def gather_lanes(self, vectors, places):
        """A vector of the lanes at ``places`` ((vector, lane) pairs, within two vectors of ``vectors``)."""
        used = sorted({v for v, _ in places})
        first, second = vectors[used[0]], vectors[used[-1]]
        indices = [lane if v == used[0] else self.lanes + lane for v, lane in places]
        return self.builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(self.int32, len(indices)), indices))

    def transpose(self, vectors):
        """The lanes of ``vectors`` (a power of 2 of them, at most :attr:`lanes`) transposed: a list of
        ``(vector, first)``, each vector holding lanes ``first`` to ``first + lanes // len(vectors) - 1``
        of the ones given, each lane's entries of all of them in a run (the entry of vector ``r``'s lane
        ``l`` at ``(l - first) * len(vectors) + r``). Each level shuffles pairs of vectors into runs twice
        as long, and the last puts each run in order (any two-vector shuffle is one instruction)."""
        builder, lanes, count = self.builder, self.lanes, len(vectors)
        labels = [[(r, lane) for lane in range(lanes)] for r in range(count)]  # (vector, lane) of each entry
        values, run = list(vectors), 1
        while run < count:
            half, last = len(values) // 2, 2 * run >= count
            shuffled, shuffled_labels = [], []
            for x in range(half):
                both = labels[x] + labels[x + half]
                runs = lanes // run
                for part in (0, 1):
                    indices = [side + q * run + t for q in range(part * runs // 2, (part + 1) * runs // 2)
                               for side in (0, lanes) for t in range(run)]
                    if last:  # lanes in order, and each lane's entries in the order of the vectors given
                        indices = sorted(indices, key=lambda i: both[i][::-1])
                    mask = ir.Constant(ir.VectorType(self.int32, lanes), indices)
                    shuffled.append(builder.shuffle_vector(values[x], values[x + half], mask))
                    shuffled_labels.append([both[i] for i in indices])
            values, labels, run = shuffled, shuffled_labels, 2 * run
        return sorted(((value, lab[0][1]) for value, lab in zip(values, labels)), key=lambda pair: pair[1])

    def segment(self, vector, start: int, width: int):
        """Lanes ``start`` to ``start + width - 1`` of ``vector``, as a vector of ``width`` lanes."""
        indices = ir.Constant(ir.VectorType(self.int32, width), list(range(start, start + width)))
        return self.builder.shuffle_vector(vector, vector, indices)

    def _address(self, base, offset, vector):
        return self.builder.bitcast(self.builder.gep(base, [offset]), vector.as_pointer())

    def _align(self):
        return ir.Constant(self.int32, self.dtype.bitwidth // 8)


def _pointers_of(context, builder, signature, args, *indices):
    """The data pointers of the arguments at ``indices``: pointers as they are, arrays' first elements."""
    return [args[i] if isinstance(signature.args[i], types.CPointer)
            else context.make_array(signature.args[i])(context, builder, args[i]).data for i in indices]


def _integers_of(context, builder, signature, args, *indices):
    return [context.cast(builder, args[i], signature.args[i], types.int64) for i in indices]


def _same_float_dtype(*arrays):
    dtype = arrays[-1].dtype
    return dtype if dtype in (types.float32, types.float64) and all(x.dtype == dtype for x in arrays) else None


def _tile_of(tile_rows: int, tile_vectors: int, transposed: bool = False):
    """The intrinsic computing one tile of ``tile_rows`` rows by ``tile_vectors`` vectors of ``c``:
    ``c[i, j] = alpha * sum_p a[i, p] * b[p, j] + beta * c[i, j]`` (``beta * c`` left out when beta
    is 0) for ``rows`` rows (at most ``tile_rows``) and ``columns`` columns, with offsets and steps in
    elements from each array's first element: ``a[i, p]`` at ``a_offset + i * a_row_step + p *
    a_inner_step``, ``b[p, j]`` at ``b_offset + p * b_row_step + j``, ``c[i, j]`` at ``c_offset + i *
    c_row_step + j``. Each step of ``p`` loads a row of ``b``'s tile and broadcasts an entry of each
    row of ``a``'s. ``transposed``: the tile is ``c.T``'s, stored transposed (``c[j, i]`` at ``c_offset
    + j * c_row_step + i``), each vector's lanes turned into rows of ``c`` in registers
    (:meth:`_Vectors.transpose`)."""
    def tile(typingctx, a, a_offset, a_row_step, a_inner_step, rows, b, b_offset, b_row_step, c, c_offset,
             c_row_step, columns, k, alpha, beta):
        dtype = _same_float_dtype(a, b, c)
        if dtype is None:
            return None
        sig = types.void(a, a_offset, a_row_step, a_inner_step, rows, b, b_offset, b_row_step, c, c_offset,
                         c_row_step, columns, k, alpha, beta)

        def codegen(context, builder, signature, args):
            v = _Vectors(context, builder, dtype)
            A, B, C = _pointers_of(context, builder, signature, args, 0, 5, 8)
            a_offset, a_row_step, a_inner_step, rows, b_offset, b_row_step, c_offset, c_row_step, columns, k = \
                _integers_of(context, builder, signature, args, 1, 2, 3, 4, 6, 7, 9, 10, 11, 12)
            alpha, beta = (context.cast(builder, args[i], signature.args[i], dtype) for i in (13, 14))
            masks = [v.below(v.constant(h * v.lanes), columns) for h in range(tile_vectors)]
            a_rows = v.clamped_rows(a_offset, a_row_step, tile_rows, rows)

            def step(p, sums):
                b_row = builder.add(b_offset, builder.mul(p, b_row_step))
                b_vectors = [v.load(B, builder.add(b_row, v.constant(h * v.lanes)), masks[h])
                             for h in range(tile_vectors)]
                a_step = builder.mul(p, a_inner_step)
                added = []
                for r in range(tile_rows):
                    broadcast = v.splat(builder.load(builder.gep(A, [builder.add(a_rows[r], a_step)])))
                    added += [v.fma(broadcast, b_vectors[h], sums[r * tile_vectors + h]) for h in range(tile_vectors)]
                return added

            totals = v.summing_loop(k, 1, tile_rows * tile_vectors, step)
            if transposed:
                _store_transposed(v, totals, tile_rows, tile_vectors, rows, columns, C, c_offset, c_row_step, alpha,
                                  beta)
                return context.get_dummy_value()
            for r in range(tile_rows):
                with cgutils.if_likely(builder, builder.icmp_signed("<", v.constant(r), rows)):
                    c_row = builder.add(c_offset, builder.mul(v.constant(r), c_row_step))
                    for h in range(tile_vectors):
                        v.store_scaled(totals[r * tile_vectors + h], C, builder.add(c_row, v.constant(h * v.lanes)),
                                       masks[h], alpha, beta)
            return context.get_dummy_value()

        return sig, codegen

    tile.__name__ = tile.__qualname__ = f"{'transposed_' * transposed}tile_{tile_rows}x{tile_vectors}"
    return intrinsic(tile)


def _store_transposed(v, totals, tile_rows, tile_vectors, rows, columns, C, c_offset, c_row_step, alpha, beta):
    """Store a tile's sums (``totals[r * tile_vectors + h]``: row ``r``, vector ``h``) into ``c``
    transposed: lane ``l`` of vector ``h`` becomes row ``h * lanes + l`` (stored for those below
    ``columns``), the tile's rows its entries (stored for those below ``rows``)."""
    builder = v.builder
    wide = ir.VectorType(v.int64, tile_rows)
    row_mask = builder.icmp_signed("<", ir.Constant(wide, list(range(tile_rows))), v.splat(rows, wide))
    for h in range(tile_vectors):
        for value, first in v.transpose([totals[r * tile_vectors + h] for r in range(tile_rows)]):
            for e in range(v.lanes // tile_rows):
                column = h * v.lanes + first + e
                with cgutils.if_likely(builder, builder.icmp_signed("<", v.constant(column), columns)):
                    v.store_scaled(v.segment(value, e * tile_rows, tile_rows), C,
                                   builder.add(c_offset, builder.mul(v.constant(column), c_row_step)), row_mask,
                                   alpha, beta)


@intrinsic
def _copy_row(typingctx, b, b_offset, columns, panel, panel_offset):
    """``panel[panel_offset + j] = b[b_offset + j]`` for ``j`` below ``columns`` (at most :data:`VECTORS`
    vectors' lanes), by masked vector moves."""
    dtype = _same_float_dtype(b, panel)
    if dtype is None:
        return None
    sig = types.void(b, b_offset, columns, panel, panel_offset)

    def codegen(context, builder, signature, args):
        v = _Vectors(context, builder, dtype)
        B, P = _pointers_of(context, builder, signature, args, 0, 3)
        b_offset, columns, panel_offset = _integers_of(context, builder, signature, args, 1, 2, 4)
        for h in range(VECTORS):
            mask = v.below(v.constant(h * v.lanes), columns)
            part = v.constant(h * v.lanes)
            v.store(v.load(B, builder.add(b_offset, part), mask), P, builder.add(panel_offset, part), mask)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pack_transposed(typingctx, a, a_offset, a_row_step, rows, k, packed, packed_offset, packed_row_step):
    """A block of ``lanes`` rows by ``lanes`` steps of the inner dimension of ``a`` (``a[i, p]`` at
    ``a_offset + i * a_row_step + p``) transposed into ``packed`` (``a[i, p]`` at ``packed_offset + p *
    packed_row_step + i``), zero for rows from ``rows`` on and steps from ``k`` on, which are not read."""
    dtype = _same_float_dtype(a, packed)
    if dtype is None:
        return None
    sig = types.void(a, a_offset, a_row_step, rows, k, packed, packed_offset, packed_row_step)

    def codegen(context, builder, signature, args):
        v = _Vectors(context, builder, dtype)
        A, P = _pointers_of(context, builder, signature, args, 0, 5)
        a_offset, a_row_step, rows, k, packed_offset, packed_row_step = _integers_of(
            context, builder, signature, args, 1, 2, 3, 4, 6, 7)
        inner = v.below(v.constant(0), k)
        nothing, every = (ir.Constant(inner.type, [bit] * v.lanes) for bit in (0, 1))
        loaded = [v.load(A, builder.add(a_offset, builder.mul(v.constant(i), a_row_step)),
                         builder.select(builder.icmp_signed("<", v.constant(i), rows), inner, nothing))
                  for i in range(v.lanes)]
        for value, p in v.transpose(loaded):
            v.store(value, P, builder.add(packed_offset, builder.mul(v.constant(p), packed_row_step)), every)
        return context.get_dummy_value()

    return sig, codegen


def _dot_tile_of(tile_rows: int, tile_columns: int):
    """The intrinsic computing one tile of ``tile_rows`` by ``tile_columns`` entries of ``c = alpha * a @
    b.T + beta * c`` (``beta * c`` left out when beta is 0), for ``rows`` rows and ``columns`` columns:
    ``a[i, p]`` at ``a_offset + i * a_row_step + p``, ``b[j, p]`` at ``b_offset + j * b_row_step + p``,
    ``c[i, j]`` at ``c_offset + i * c_row_step + j``. Both operands run along the inner dimension, so
    each entry's products are summed a vector of ``p`` at a time and the lanes added at the end
    (:meth:`_Vectors.lane_sums`); ``p`` past ``k`` is masked, rows and columns past ``c``'s read the last
    ones again and are never stored."""
    def tile(typingctx, a, a_offset, a_row_step, rows, b, b_offset, b_row_step, columns, c, c_offset, c_row_step,
             k, alpha, beta):
        dtype = _same_float_dtype(a, b, c)
        if dtype is None:
            return None
        sig = types.void(a, a_offset, a_row_step, rows, b, b_offset, b_row_step, columns, c, c_offset, c_row_step,
                         k, alpha, beta)

        def codegen(context, builder, signature, args):
            v = _Vectors(context, builder, dtype)
            A, B, C = _pointers_of(context, builder, signature, args, 0, 4, 8)
            a_offset, a_row_step, rows, b_offset, b_row_step, columns, c_offset, c_row_step, k = \
                _integers_of(context, builder, signature, args, 1, 2, 3, 5, 6, 7, 9, 10, 11)
            alpha, beta = (context.cast(builder, args[i], signature.args[i], dtype) for i in (12, 13))
            a_rows = v.clamped_rows(a_offset, a_row_step, tile_rows, rows)
            b_rows = v.clamped_rows(b_offset, b_row_step, tile_columns, columns)

            def step(p, sums):
                inner = v.below(p, k)
                a_vectors = [v.load(A, builder.add(row, p), inner) for row in a_rows]
                b_vectors = [v.load(B, builder.add(row, p), inner) for row in b_rows]
                return [v.fma(a_vectors[r], b_vectors[q], sums[r * tile_columns + q])
                        for r in range(tile_rows) for q in range(tile_columns)]

            totals = v.summing_loop(k, v.lanes, tile_rows * tile_columns, step)
            folded, places = v.lane_sums(totals)
            column_mask = ir.Constant(ir.VectorType(v.int64, tile_columns), list(range(tile_columns)))
            column_mask = builder.icmp_signed("<", column_mask, v.splat(columns, ir.VectorType(v.int64, tile_columns)))
            for r in range(tile_rows):
                with cgutils.if_likely(builder, builder.icmp_signed("<", v.constant(r), rows)):
                    row = v.gather_lanes(folded, places[r * tile_columns:(r + 1) * tile_columns])
                    v.store_scaled(row, C, builder.add(c_offset, builder.mul(v.constant(r), c_row_step)), column_mask,
                                   alpha, beta)
            return context.get_dummy_value()

        return sig, codegen

    tile.__name__ = tile.__qualname__ = f"dot_tile_{tile_rows}x{tile_columns}"
    return intrinsic(tile)


#: the tiles of ``op(a) @ b``: 8 rows by 2 vectors (the most of the product), 16 rows by 1 vector (a c
#: of one vector's columns or fewer) and 4 rows by 4 vectors (the last rows when they are 4 or fewer);
#: and of ``a @ b.T``: 8 rows of ``b`` by 2 vectors of packed rows of ``a``, stored transposed, and 4 by 4
#: entries by dot tiles. Each holds 16 vector registers of sums
_tile = _tile_of(ROWS, VECTORS)
_narrow_tile = _tile_of(2 * ROWS, VECTORS // 2)
_short_tile = _tile_of(ROWS // 2, 2 * VECTORS)
_transposed_tile = _tile_of(ROWS, VECTORS, transposed=True)
_dot_tile = _dot_tile_of(DOT_SIDE, DOT_SIDE)


@njit(cache=True)
def tiles_rows(k):
    """The most rows of ``op(a)`` with inner dimension ``k`` whose blocks stay within :data:`TILES_MAX_A`, a
    multiple of :data:`ROWS`: the pieces in which a taller product still runs by tiles (256 for ``k`` of
    :data:`INNER_BLOCK` or more)."""
    return TILES_MAX_A // max(1, min(k, INNER_BLOCK)) // ROWS * ROWS


@njit(cache=True)
def tiles_fit(transa, transb, m, k):
    """Whether :func:`tiles_gemm` may take a product with ``m`` rows and inner dimension ``k``: tiles
    in use (:func:`tiles_in_use`), not both operands transposed, ``op(a)``'s blocks within
    :data:`TILES_MAX_A`, and with ``b`` transposed an inner dimension of at least :data:`DOT_MIN_INNER`
    (:mod:`.blas`'s ``tiles_take`` decides which of these it hands them)."""
    if transa and transb or m * min(k, INNER_BLOCK) > TILES_MAX_A or transb and k < DOT_MIN_INNER:
        return False
    return tiles_in_use()


def _product_by_tiles(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, lanes):
    """:func:`tiles_gemm` on the data pointers of ``a``, ``b`` and ``c``, vectors of ``lanes`` entries:
    a block of :data:`INNER_BLOCK` of the inner dimension at a time (one pass for ``k`` 0, scaling ``c``)."""
    a_row_step, a_inner_step = (1, lda) if transa else (lda, 1)
    packed = carray(c, 0)  # a's rows transposed (a @ b.T by packed tiles), or a.T's rows (a's rows far apart)
    steps = -(-min(k, INNER_BLOCK) // lanes) * lanes
    entry = 64 // lanes  # bytes
    packs_a = transa and lda * entry >= PACK_STRIDE
    panel = carray(c, 0)  # b's column panel, where b's rows lie far apart
    if transb and by_packing(m, n):
        packed = aligned_empty(steps * VECTORS * lanes, packed)
    elif packs_a:
        packed = aligned_empty(_packed_a_rows(steps, lanes) * steps, packed)
    if not transb and ldb * entry >= PACK_STRIDE and n > lanes and m >= PANEL_MIN_ROWS:
        panel = aligned_empty(min(k, INNER_BLOCK) * VECTORS * lanes, panel)
    for p in range(0, max(k, 1), INNER_BLOCK):
        block, scale = min(INNER_BLOCK, k - p), beta if p == 0 else 1.0
        if transb:
            _block_with_b_transposed(m, n, block, alpha, a, p, lda, b, p, ldb, scale, c, ldc, lanes, packed)
        elif packs_a:
            _block_of_packed_a(m, n, block, alpha, a, p * lda, lda, b, p * ldb, ldb, scale, c, ldc, lanes, packed, panel)
        else:
            _block(m, n, block, alpha, a, p * a_inner_step, a_row_step, a_inner_step, b, p * ldb, ldb, scale, c, 0,
                   ldc, lanes, panel)


@njit(cache=True)
def by_packing(m, n):
    """Whether the tiles compute ``a @ b.T`` of ``m`` rows and ``n`` columns by packed tiles (at least
    :data:`PACK_MIN_ROWS` and :data:`PACK_MIN_COLUMNS`; dot tiles otherwise)."""
    return m >= PACK_MIN_ROWS and n >= PACK_MIN_COLUMNS


@njit(cache=True)
def _block_with_b_transposed(m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c, ldc, lanes, packed):
    """``c = alpha * a @ b.T + beta * c`` over ``k`` steps of the inner dimension from the offsets: by packed
    tiles where :func:`by_packing` (``packed`` holding a block of rows of ``a`` transposed), else by dot tiles."""
    if not by_packing(m, n):
        for j in range(0, n, DOT_SIDE):  # b's rows stay in the first-level cache for every tile of them
            for i in range(0, m, DOT_SIDE):
                _dot_tile(a, a_offset + i * lda, lda, min(DOT_SIDE, m - i), b, b_offset + j * ldb, ldb,
                          min(DOT_SIDE, n - j), c, i * ldc + j, ldc, k, alpha, beta)
        return
    width = VECTORS * lanes
    for i in range(0, m, width):  # c.T's tiles: b's rows broadcast, a's rows as vectors of packed
        rows = min(width, m - i)
        _transpose_into(a, a_offset + i * lda, lda, rows, k, packed, width, lanes)
        for j in range(0, n, ROWS):
            _transposed_tile(b, b_offset + j * ldb, ldb, 1, min(ROWS, n - j), packed, 0, width, c, i * ldc + j, ldc,
                             rows, k, alpha, beta)


@njit(cache=True)
def _block_of_packed_a(m, n, k, alpha, a, a_offset, lda, b, b_offset, ldb, beta, c, ldc, lanes, packed, panel):
    """``c = alpha * a.T @ b + beta * c`` over ``k`` steps of the inner dimension from the offsets, by tiles on
    rows of ``a.T`` copied row-major into ``packed`` (transposed a block of ``lanes`` by ``lanes`` at a time in
    registers), :data:`PACK_A_ENTRIES` entries at a time."""
    steps = -(-k // lanes) * lanes
    chunk = _packed_a_rows(steps, lanes)
    for i in range(0, m, chunk):
        rows = min(chunk, m - i)
        _transpose_into(a, a_offset + i, lda, k, rows, packed, steps, lanes)
        _block(rows, n, k, alpha, packed, 0, steps, 1, b, b_offset, ldb, beta, c, i * ldc, ldc, lanes, panel)


@njit(cache=True)
def _transpose_into(a, a_offset, lda, rows, columns, packed, packed_row_step, lanes):
    """``packed[j * packed_row_step + i] = a[a_offset + i * lda + j]`` for ``rows`` rows ``i`` and ``columns``
    columns ``j`` of ``a``, a block of ``lanes`` by ``lanes`` at a time in registers (:func:`_pack_transposed`)."""
    for i in range(0, rows, lanes):
        for j in range(0, columns, lanes):
            _pack_transposed(a, a_offset + i * lda + j, lda, rows - i, columns - j, packed, j * packed_row_step + i,
                             packed_row_step)


@njit(cache=True)
def _transpose_copy(source, target):
    """``target[j, i] = source[i, j]``."""
    for i in range(source.shape[0]):
        for j in range(source.shape[1]):
            target[j, i] = source[i, j]


@njit(cache=True)
def transposed(a):
    """``a.T`` as a new C-contiguous array starting on a cache line (:mod:`.buffers`), for a 2-D float
    array: blocks of 16 by 16 (float32) entries transposed in registers where the tiles are in use and the
    rows have a unit stride, the edges entry by entry. A recurrent layer's (512, 128) float32 weights:
    17 µs, where ``np.ascontiguousarray(a.T)`` took 40 and a plain loop over the entries 35-250."""
    rows, columns = a.shape
    out = aligned_empty(rows * columns, a).reshape((columns, rows))
    lanes = 64 // a.itemsize
    by_blocks = tiles_in_use() and a.strides[1] == a.itemsize
    blocked_rows = rows - rows % lanes if by_blocks else 0
    blocked_columns = columns - columns % lanes if by_blocks else 0
    lda = a.strides[0] // a.itemsize
    for i in range(0, blocked_rows, lanes):
        for j in range(0, blocked_columns, lanes):
            _pack_transposed(a, i * lda + j, lda, lanes, lanes, out, j * rows + i, rows)
    _transpose_copy(a[:, blocked_columns:], out[blocked_columns:])
    _transpose_copy(a[blocked_rows:, :blocked_columns], out[:blocked_columns, blocked_rows:])
    return out


@njit(cache=True)
def _packed_a_rows(steps, lanes):
    """The rows of ``a.T`` packed at a time, ``steps`` entries each: :data:`PACK_A_ENTRIES` in all, a whole
    number of vectors' lanes of rows."""
    return max(lanes, PACK_A_ENTRIES // max(steps, 1) // lanes * lanes)


@njit(cache=True)
def _tiles_of_panel(rows, k, alpha, a, a_offset, a_row_step, a_inner_step, b, b_offset, ldb, beta, c, c_offset, ldc,
                    columns):
    """The 8-row tiles of ``rows`` rows of ``c`` over one column panel of ``b`` (``columns`` wide)."""
    for i in range(0, rows, ROWS):
        _tile(a, a_offset + i * a_row_step, a_row_step, a_inner_step, min(ROWS, rows - i), b, b_offset, ldb, c,
              c_offset + i * ldc, ldc, columns, k, alpha, beta)


@njit(cache=True)
def _block(m, n, k, alpha, a, a_offset, a_row_step, a_inner_step, b, b_offset, ldb, beta, c, c_offset, ldc, lanes,
           panel):
    """``c = alpha * op(a) @ b + beta * c`` over ``k`` steps of the inner dimension from the offsets, by tiles;
    each column panel of ``b`` copied into ``panel`` first unless ``panel`` is empty."""
    if n <= lanes:
        for i in range(0, m, 2 * ROWS):
            _narrow_tile(a, a_offset + i * a_row_step, a_row_step, a_inner_step, min(2 * ROWS, m - i), b, b_offset,
                         ldb, c, c_offset + i * ldc, ldc, n, k, alpha, beta)
        return
    tall = m - m % ROWS if m % ROWS <= ROWS // 2 else m  # the rows of the 8-row tiles
    width = VECTORS * lanes
    for j in range(0, n, width):  # a column panel of b stays in the first-level cache for every tile of it
        columns = min(width, n - j)
        if panel.shape[0] == 0:
            _tiles_of_panel(tall, k, alpha, a, a_offset, a_row_step, a_inner_step, b, b_offset + j, ldb, beta, c,
                            c_offset + j, ldc, columns)
        else:  # b's rows lie far apart: the panel's rows would share cache sets
            for p in range(k):
                _copy_row(b, b_offset + p * ldb + j, columns, panel, p * width)
            _tiles_of_panel(tall, k, alpha, a, a_offset, a_row_step, a_inner_step, panel, 0, width, beta, c,
                            c_offset + j, ldc, columns)
    if tall < m:
        for j in range(0, n, 2 * width):
            _short_tile(a, a_offset + tall * a_row_step, a_row_step, a_inner_step, m - tall, b, b_offset + j, ldb, c,
                        c_offset + tall * ldc + j, ldc, min(2 * width, n - j), k, alpha, beta)


#: the LLVM symbols of :func:`_product_by_tiles` compiled for each dtype: compiled code calls it by name,
#: so the tiles are compiled once (and cached) rather than optimized again inside every kernel calling
#: :mod:`.blas`'s ``gemm`` (as :mod:`.blas` calls BLAS), which doubled the test suite's cold compile time
_SYMBOLS = {types.float32: "nkernels_tiles_float32", types.float64: "nkernels_tiles_float64"}


def _signature(dtype):
    pointer, integer, real = types.CPointer(dtype), types.int64, types.float64
    return types.void(integer, integer, integer, integer, integer, real, pointer, integer, pointer, integer, real,
                      pointer, integer, integer)  # the flags as integers: a C function's booleans are no plain i1


@intrinsic
def _call_tiles(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the compiled :func:`_product_by_tiles` of ``c``'s dtype by its symbol, on the arrays' data."""
    dtype = _same_float_dtype(a, b, c)
    if dtype is None:
        return None
    sig = types.void(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    target = _signature(dtype)

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.VoidType(), [context.get_value_type(t) for t in target.args])
        function = cgutils.get_or_insert_function(builder.module, function_type, _SYMBOLS[dtype])
        values = [context.cast(builder, value, given, wanted)
                  for value, given, wanted in zip(args[:6], signature.args[:6], target.args[:6])]
        a_data, b_data, c_data = _pointers_of(context, builder, signature, args, 6, 8, 11)
        steps = [context.cast(builder, args[i], signature.args[i], types.int64) for i in (7, 9, 12)]
        beta_value = context.cast(builder, args[10], signature.args[10], types.float64)
        lanes = ir.Constant(ir.IntType(64), 512 // dtype.bitwidth)
        builder.call(function, [*values, a_data, steps[0], b_data, steps[1], beta_value, c_data, steps[2], lanes])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def by_swapping(m, n):
    """Whether the tiles compute ``a.T @ b`` of ``m`` rows and ``n`` columns as the transpose of ``b.T @ a``:
    ``c`` narrower than a float32 tile (:data:`SWAP_MAX_COLUMNS`) and at least :data:`SWAP_MIN_ROWS` tall."""
    return n <= SWAP_MAX_COLUMNS and m >= SWAP_MIN_ROWS


@njit(cache=True)
def tiles_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``c = alpha * op(a) @ op(b) + beta * c`` by tiles (see the module), with the checks of
    :mod:`.blas`'s ``gemm`` made and at most one operand transposed: ``op(a)`` (m, k), ``op(b)`` (k,
    n), ``c`` (m, n), row-major with row strides ``lda``, ``ldb``, ``ldc`` in elements."""
    if transa and not transb and by_swapping(m, n):
        # c.T = b.T @ a, in a buffer holding c.T (when beta reads it): each entry is the same chain of
        # operations on the same numbers as c's own tiles would make, so the bits are the same
        swapped = aligned_empty(n * m, c).reshape((n, m))
        if beta != 0:
            _transpose_copy(c, swapped)
        _call_tiles(True, False, n, m, k, alpha, b, ldb, a, lda, beta, swapped, m)
        _transpose_copy(swapped, c)
        return
    _call_tiles(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


if not numba_config.DISABLE_JIT:
    #: the compiled products, kept alive while their symbols are registered
    _COMPILED = {dtype: cfunc(_signature(dtype), cache=True)(_product_by_tiles) for dtype in _SYMBOLS}
    for _dtype, _compiled in _COMPILED.items():
        llvm.add_symbol(_SYMBOLS[_dtype], _compiled.address)
else:  # plain Python (the kernel coverage run, a debugger): no intrinsics
    def tiles_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # noqa: F811
        product = alpha * ((a.T if transa else a) @ (b.T if transb else b))
        c[...] = product if beta == 0 else product + beta * c
