"""Winograd's minimal filtering F(2x2, 3x3) for Conv2D on the CPU (Lavin and Gray, 2016).

A 3x3 convolution of stride 1 computes each 2x2 tile of its output from a 4x4 tile of its input with
16 multiplications per channel pair where the direct form needs 36::

    Y = A^T [ sum_c (G g G^T) * (B^T d B) ] A        (* elementwise, per 4x4 tile of 16 entries e)

so the products of a convolution become 16 GEMMs, one per entry e, each 2.25x smaller than im2col's
single one. :func:`nkernels.kernels.cpu.conv.conv2d_forward` and ``conv2d_backward`` take this path
where :func:`winograd_applies` (3x3, stride 1, an even output size and enough channels: the resnet
preset's blocks); the results equal the direct form's up to rounding (the transforms' coefficients
are 0, 1 and 1/2).

Layouts, per chunk of ``nb`` samples (the chunks run side by side)::

    p   (OH+2, OW+2, nb*C)     the input, zero-padded, channels last: every transform below is an
                               elementwise sum of contiguous vectors of length nb*C (or nb*O)
    v   16 x (tiles, nb*C)     B^T d B per tile; v[e] is the (tiles*nb, C) left operand of GEMM e
    u   16 x (C, O)            G g G^T of the weights
    m   4 x (tiles, nb*O)      m[e] = v[e] @ u[e] for the four entries of one row i of the tile at a
                               time, each row's share of Y = A^T m A (+ the bias) added into the output
                               tiles y (tiles, 4, nb*O), then y into out (N, O, OH, OW)

and backward, a row i at a time again, from dm = A dY A^T (the output transform's adjoint):
du[e] = v[e]^T @ dm[e] (a partial sum per chunk), dv[e] = dm[e] @ u[e]^T written over the spent v[e];
then the input transform's adjoint scattered into the padded input gradient, and the weight gradient
G^T du G. The forward leaves every chunk's ``v`` in the convolution's ``cols`` workspace (4/9 of its
size) for the backward; all scratch lives in the two workspaces (:func:`_plan`).

Each "16 x" (or "4 x") array is the rows of a (16, stride) array, one per entry e (:func:`_entry`): for v
the rows are a whole batch long, each chunk's stretch at the same place in every row. The stride is
never a multiple of 4 KiB (:data:`ENTRY_PAD`): a tile's transform touches all its rows at once, and 16
streams 4 KiB apart share one set of the 8-way L1 cache (the weight transform ran 6x slower that way).
"""
import numpy as np
from numba import njit, prange

from ..calls import by_address
from .blas import gemm
from .threads import add_in_chunk_order, even_chunk_count

#: the fewest input and output channels for which :func:`winograd_applies`: with fewer, the 16 GEMMs
#: are too thin to gain on the transforms' cost (8 channels on 8x8 planes: forward and backward 1.7x slower
#: than im2col; 16: 1.25x faster)
WINOGRAD_MIN_CHANNELS = 16

#: the most entries the whole batch's transformed input may hold (4 * N * OH * OW * C): a larger one goes
#: out to memory between the forward and the backward, and there the im2col path, which then works in a
#: ring of cached stretches, did as well (128 x 32 x 16 x 16 and 64 x 64 x 32 x 32, 32 -> 32 and
#: 64 -> 64 channels: within a few percent either way)
WINOGRAD_KEPT_ENTRIES = 1 << 20

#: the most entries of one chunk's transformed input (or output) tiles, 16 * tiles * nb * max(C, O): a
#: chunk's products then take their operands from cache
WINOGRAD_CHUNK_ELEMENTS = 1 << 17

#: what each row of a (16, stride) array (see the module's docstring) has beyond its content, in entries:
#: 64 bytes of float32, so consecutive rows start in consecutive sets of the L1 cache
ENTRY_PAD = 16


@njit(cache=True, error_model="numpy")
def _plan(n_size, c_size, o_size, oh_size, ow_size):
    """How a batch runs: (tiles a sample, chunks, the kept input's row length, scratch entries a sample,
    scratch entries a chunk adds). Everything lives in the convolution's two workspaces (see
    :func:`winograd_applies`): in ``cols`` (N*OH*OW, 9*C) the transformed input, 16 rows of N*tiles*C
    (+ ENTRY_PAD), then each chunk's scratch; in ``gemm`` (O, N*OH*OW) each chunk's output tiles
    (forward) or output gradient (backward), channels last."""
    tiles = (oh_size // 2) * (ow_size // 2)
    n_chunks = even_chunk_count(n_size, 16 * tiles * max(c_size, o_size), WINOGRAD_CHUNK_ELEMENTS)
    padded = (oh_size + 2) * (ow_size + 2) * c_size + 4 * (ow_size + 2) * c_size  # p and the row transform
    per_sample = 8 * max(c_size, o_size) + max(padded, oh_size * ow_size * o_size)
    return tiles, n_chunks, n_size * tiles * c_size + ENTRY_PAD, per_sample, 4 * ENTRY_PAD


@njit(cache=True, error_model="numpy")
def winograd_applies(n_size, c_size, o_size, kh_size, kw_size, sh, sw, oh_size, ow_size):
    """Whether F(2x2, 3x3) computes this convolution: a 3x3 kernel, stride 1, an even output height and
    width (whole 2x2 tiles), at least :data:`WINOGRAD_MIN_CHANNELS` input and output channels, a
    transformed input within :data:`WINOGRAD_KEPT_ENTRIES`, and scratch that fits in the convolution's
    ``cols`` workspace (:func:`_plan`; not with many more output than input channels, nor on small
    batches of 4 x 4 outputs)."""
    if not (kh_size == 3 and kw_size == 3 and sh == 1 and sw == 1 and oh_size >= 2 and ow_size >= 2
            and oh_size % 2 == 0 and ow_size % 2 == 0
            and c_size >= WINOGRAD_MIN_CHANNELS and o_size >= WINOGRAD_MIN_CHANNELS and n_size > 0
            and 4 * n_size * oh_size * ow_size * c_size <= WINOGRAD_KEPT_ENTRIES):
        return False
    _, n_chunks, stride, per_sample, per_chunk = _plan(n_size, c_size, o_size, oh_size, ow_size)
    return 16 * stride + n_size * per_sample + n_chunks * per_chunk <= n_size * oh_size * ow_size * 9 * c_size


@njit(cache=True, error_model="numpy")
def _sizes(x, y):
    """N, C, O, OH, OW of a convolution of x (N, C, H, W) into y (N, O, OH, OW) (or of its gradient)."""
    return x.shape[0], x.shape[1], y.shape[1], y.shape[2], y.shape[3]


@njit(cache=True, error_model="numpy")
def _entries(size, dtype):
    """A (16, size + ENTRY_PAD) array: a row of ``size`` entries for each of the 16 tile entries."""
    return np.empty((16, size + ENTRY_PAD), dtype)


@njit(cache=True, error_model="numpy")
def _entry(a, e, start, rows, cols):
    """Row e of the (16, stride) array ``a`` from ``start`` on, as a (rows, cols) matrix."""
    return a[e, start:start + rows * cols].reshape(rows, cols)


@njit(cache=True, error_model="numpy")
def _transformed_column(g0, g1, g2):
    """G (g0, g1, g2): one column of a 3x3 filter to four values."""
    return g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2


@njit(cache=True, error_model="numpy")
def _store_column(u, j, k, t0, t1, t2):
    """u[j + 4i, k] = (G t)[i] for i in 0..3."""
    u0, u1, u2, u3 = _transformed_column(t0, t1, t2)
    u[j, k] = u0
    u[4 + j, k] = u1
    u[8 + j, k] = u2
    u[12 + j, k] = u3


@njit(cache=True, error_model="numpy")
def _weight_transform(weight, u, transposed):
    """u[e] = (G g G^T)[e] for every channel pair, u (16, stride): row e holds the (C, O) matrix, or the
    (O, C) one when ``transposed``, from its start (:func:`_entry`)."""
    o_size, c_size = weight.shape[0], weight.shape[1]
    outer, inner = (o_size, c_size) if transposed else (c_size, o_size)
    for a in range(outer):
        for b in range(inner):
            o, c = (a, b) if transposed else (b, a)
            k = a * inner + b
            # g G^T: row r of the filter to columns (r0, r1, r2, r3) (elements, not views: a view costs
            # two reference counts, more than the arithmetic)
            r00, r01, r02, r03 = _transformed_column(weight[o, c, 0, 0], weight[o, c, 0, 1], weight[o, c, 0, 2])
            r10, r11, r12, r13 = _transformed_column(weight[o, c, 1, 0], weight[o, c, 1, 1], weight[o, c, 1, 2])
            r20, r21, r22, r23 = _transformed_column(weight[o, c, 2, 0], weight[o, c, 2, 1], weight[o, c, 2, 2])
            _store_column(u, 0, k, r00, r10, r20)  # G (g G^T), down each column j
            _store_column(u, 1, k, r01, r11, r21)
            _store_column(u, 2, k, r02, r12, r22)
            _store_column(u, 3, k, r03, r13, r23)


@njit(cache=True, error_model="numpy")
def _adjoint_column(d0, d1, d2, d3):
    """G^T (d0, d1, d2, d3): four values to one column of a 3x3 filter's gradient."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3


@njit(cache=True, error_model="numpy")
def _weight_transform_adjoint(du, dweight):
    """dweight (O, C, 3, 3) = G^T du G for every channel pair; row e of du (16, stride) holds the (C, O)
    matrix of entry e."""
    o_size, c_size = dweight.shape[0], dweight.shape[1]
    for c in range(c_size):
        for o in range(o_size):
            k = c * o_size + o
            # G^T du, down each column j: rows (0j, 1j, 2j)
            b00, b10, b20 = _adjoint_column(du[0, k], du[4, k], du[8, k], du[12, k])
            b01, b11, b21 = _adjoint_column(du[1, k], du[5, k], du[9, k], du[13, k])
            b02, b12, b22 = _adjoint_column(du[2, k], du[6, k], du[10, k], du[14, k])
            b03, b13, b23 = _adjoint_column(du[3, k], du[7, k], du[11, k], du[15, k])
            dweight[o, c, 0, 0], dweight[o, c, 0, 1], dweight[o, c, 0, 2] = _adjoint_column(b00, b01, b02, b03)
            dweight[o, c, 1, 0], dweight[o, c, 1, 1], dweight[o, c, 1, 2] = _adjoint_column(b10, b11, b12, b13)
            dweight[o, c, 2, 0], dweight[o, c, 2, 1], dweight[o, c, 2, 2] = _adjoint_column(b20, b21, b22, b23)


@njit(cache=True, error_model="numpy")
def _pack(x, n0, nb, ph, pw, p):
    """p (H+2*ph, W+2*pw, nb*C) = samples n0..n0+nb-1 of x (N, C, H, W), zero-padded, channels last
    (pixel by pixel: stores in order, loads strided, 2.3x faster than the other way on 8x8 planes)."""
    c_size, h_size, w_size = x.shape[1], x.shape[2], x.shape[3]
    for r in range(p.shape[0]):
        for s in range(p.shape[1]):
            row = p[r, s]
            h, w = r - ph, s - pw
            if h < 0 or h >= h_size or w < 0 or w >= w_size:
                row.fill(0)
                continue
            for j in range(nb):
                for c in range(c_size):
                    row[j * c_size + c] = x[n0 + j, c, h, w]


@njit(cache=True, error_model="numpy")
def _unpack(dp, n0, nb, ph, pw, dx):
    """dx[n0:n0+nb] (N, C, H, W) = the unpadded part of dp (H+2*ph, W+2*pw, nb*C) (as :func:`_pack`)."""
    c_size, h_size, w_size = dx.shape[1], dx.shape[2], dx.shape[3]
    for h in range(h_size):
        for w in range(w_size):
            row = dp[ph + h, pw + w]
            for j in range(nb):
                for c in range(c_size):
                    dx[n0 + j, c, h, w] = row[j * c_size + c]


# The transforms below write one vector per loop: with one store and two or three loads LLVM's
# runtime alias checks stay few enough for it to vectorize the loop (it gives up beyond eight).


@njit(cache=True, error_model="numpy")
def _difference(a, b, out):
    """out = a - b (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] - b[i]


@njit(cache=True, error_model="numpy")
def _sum(a, b, out):
    """out = a + b (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] + b[i]


@njit(cache=True, error_model="numpy")
def _sum3(a, b, c, out):
    """out = a + b + c (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] + b[i] + c[i]


@njit(cache=True, error_model="numpy")
def _first_less_two(a, b, c, out):
    """out = a - b - c (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] - b[i] - c[i]


@njit(cache=True, error_model="numpy")
def _alternating(a, b, c, out):
    """out = a - b + c (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] - b[i] + c[i]


@njit(cache=True, error_model="numpy")
def _less_one(a, b, c, out):
    """out = a + b - c (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i] + b[i] - c[i]


@njit(cache=True, error_model="numpy")
def _add_into(a, out, sign):
    """out += sign * a (1-D; sign +-1)."""
    for i in range(out.shape[0]):
        out[i] += sign * a[i]


@njit(cache=True, error_model="numpy")
def _add_alternating(a, b, c, out, sign):
    """out += sign * (a - b + c) (1-D)."""
    for i in range(out.shape[0]):
        out[i] += sign * (a[i] - b[i] + c[i])


@njit(cache=True, error_model="numpy")
def _add_less_one(a, b, c, out, sign):
    """out += sign * (a + b - c) (1-D)."""
    for i in range(out.shape[0]):
        out[i] += sign * (a[i] + b[i] - c[i])


@njit(cache=True, error_model="numpy")
def _input_transform(p, tmp, v, start):
    """Row e of v (16, stride) from ``start`` on, tile t's vector at t * nb*C: (B^T d B)[e] for every 4x4
    tile d of p at (2*ty, 2*tx); tmp (4, OW+2, nb*C) holds B^T d of a row of tiles."""
    hp, wp, length = p.shape[0], p.shape[1], p.shape[2]
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    for ty in range(th):
        r = 2 * ty
        for s in range(wp):  # B^T d: down each column of the row of tiles
            _difference(p[r, s], p[r + 2, s], tmp[0, s])
            _sum(p[r + 1, s], p[r + 2, s], tmp[1, s])
            _difference(p[r + 2, s], p[r + 1, s], tmp[2, s])
            _difference(p[r + 1, s], p[r + 3, s], tmp[3, s])
        for tx in range(tw):  # (B^T d) B: along each row of a tile
            at = start + (ty * tw + tx) * length
            q = 2 * tx
            for i in range(4):
                row = tmp[i]
                _difference(row[q], row[q + 2], v[4 * i, at:at + length])
                _sum(row[q + 1], row[q + 2], v[4 * i + 1, at:at + length])
                _difference(row[q + 2], row[q + 1], v[4 * i + 2, at:at + length])
                _difference(row[q + 1], row[q + 3], v[4 * i + 3, at:at + length])


@njit(cache=True, error_model="numpy")
def _copy(a, out):
    """out = a (1-D)."""
    for i in range(out.shape[0]):
        out[i] = a[i]


@njit(cache=True, error_model="numpy")
def _output_rows(m, start, i, s, y):
    """Add row i of every tile's A^T m A into y (tiles, 4, nb*O): m (4, stride) holds m[4i + j] for the
    tile entries of row i from ``start`` on; s (2 or more, nb*O or longer) is scratch. Output row 0 sums m's rows 0, 1 and 2,
    row 1 is rows 1 - 2 - 3: row i adds into y's row 0 (i < 3) and row 1 (i > 0), y[t, 2q + p] being
    output (p, q)."""
    length = y.shape[2]
    s0, s1 = s[0][:length], s[1][:length]
    for t in range(y.shape[0]):
        lo = start + t * length
        hi = lo + length
        _sum3(m[0, lo:hi], m[1, lo:hi], m[2, lo:hi], s0)  # (m A) of row i: columns q = 0 and 1
        _first_less_two(m[1, lo:hi], m[2, lo:hi], m[3, lo:hi], s1)
        for q in range(2):
            sq = s0 if q == 0 else s1
            if i == 0:
                _copy(sq, y[t, 2 * q])
            elif i < 3:
                _add_into(sq, y[t, 2 * q], 1.0)
            if i == 1:
                _copy(sq, y[t, 2 * q + 1])
            elif i > 1:
                _add_into(sq, y[t, 2 * q + 1], -1.0)


@njit(cache=True, error_model="numpy")
def _scatter_output(y, bias, out, n0, nb):
    """out[n0:n0+nb] (N, O, OH, OW) = the output tiles y (tiles, 4, nb*O) (+ bias)."""
    o_size, ow_size = out.shape[1], out.shape[3]
    tw = ow_size // 2
    has_bias = bias.shape[0] > 0
    for t in range(y.shape[0]):
        ty = t // tw
        tx = t - ty * tw
        for j in range(nb):
            for o in range(o_size):
                b = bias[o] if has_bias else 0.0
                k = j * o_size + o
                plane = out[n0 + j, o]
                plane[2 * ty, 2 * tx] = y[t, 0, k] + b
                plane[2 * ty + 1, 2 * tx] = y[t, 1, k] + b
                plane[2 * ty, 2 * tx + 1] = y[t, 2, k] + b
                plane[2 * ty + 1, 2 * tx + 1] = y[t, 3, k] + b


@njit(cache=True, error_model="numpy")
def _pack_gradient(dout, n0, nb, g):
    """g (OH, OW, nb*O) = dout[n0:n0+nb] (N, O, OH, OW), channels last (as :func:`_pack`)."""
    o_size = dout.shape[1]
    for h in range(g.shape[0]):
        for w in range(g.shape[1]):
            row = g[h, w]
            for j in range(nb):
                for o in range(o_size):
                    row[j * o_size + o] = dout[n0 + j, o, h, w]


@njit(cache=True, error_model="numpy")
def _combination(a, b, c, d, out, ka, kb, kc, kd):
    """out = ka*a + kb*b + kc*c + kd*d (1-D; the coefficients are 0 or +-1)."""
    for i in range(out.shape[0]):
        out[i] = ka * a[i] + kb * b[i] + kc * c[i] + kd * d[i]


#: A^T's columns: (A^T[0, i], A^T[1, i]) for i in 0..3
_AT_COLUMNS = ((1.0, 0.0), (1.0, 1.0), (1.0, -1.0), (0.0, -1.0))


@njit(cache=True, error_model="numpy")
def _output_rows_adjoint(g, i, dm, start):
    """Row i of every tile's A dY A^T: dm (4, stride) from ``start`` on gets entries 4i..4i+3, each
    sum over (p, q) of A^T[p, i] A^T[q, j] dY[p, q], the tiles dY read from g (OH, OW, nb*O)."""
    tw, length = g.shape[1] // 2, g.shape[2]
    ki0, ki1 = _AT_COLUMNS[i]
    for t in range((g.shape[0] // 2) * tw):
        ty = t // tw
        tx = t - ty * tw
        r, q = 2 * ty, 2 * tx
        lo = start + t * length
        hi = lo + length
        for j in range(4):
            kj0, kj1 = _AT_COLUMNS[j]
            _combination(g[r, q], g[r, q + 1], g[r + 1, q], g[r + 1, q + 1], dm[j, lo:hi],
                         ki0 * kj0, ki0 * kj1, ki1 * kj0, ki1 * kj1)


@njit(cache=True, error_model="numpy")
def _add_column_adjoint(e0, e1, e2, e3, dp, r, s, sign):
    """dp[r:r+4, s] += sign * B (e0, e1, e2, e3): rows (e0, e1 - e2 + e3, e1 + e2 - e0, -e3)."""
    _add_into(e0, dp[r, s], sign)
    _add_alternating(e1, e2, e3, dp[r + 1, s], sign)
    _add_less_one(e1, e2, e0, dp[r + 2, s], sign)
    _add_into(e3, dp[r + 3, s], -sign)


@njit(cache=True, error_model="numpy")
def _input_transform_adjoint(dv, start, s, dp):
    """dp (OH+2, OW+2, nb*C) = the sum over tiles of B dV B^T, each at its place (the tiles overlap); dv
    (16, stride) from ``start`` on, tile t's vector at t * nb*C; s (8, nb*C or longer) is scratch."""
    tw, length = (dp.shape[1] - 2) // 2, dp.shape[2]
    dp[:] = 0
    s0, s1, s2, s3 = s[0][:length], s[1][:length], s[2][:length], s[3][:length]
    s4, s5, s6, s7 = s[4][:length], s[5][:length], s[6][:length], s[7][:length]
    for t in range(((dp.shape[0] - 2) // 2) * tw):
        ty = t // tw
        tx = t - ty * tw
        r, q = 2 * ty, 2 * tx
        lo = start + t * length
        hi = lo + length
        # dV B^T along each row i: columns (d0, d1 - d2 + d3, d1 + d2 - d0, -d3); the middle two into s
        for i, (column1, column2) in enumerate(((s0, s4), (s1, s5), (s2, s6), (s3, s7))):
            _alternating(dv[4 * i + 1, lo:hi], dv[4 * i + 2, lo:hi], dv[4 * i + 3, lo:hi], column1)
            _less_one(dv[4 * i + 1, lo:hi], dv[4 * i + 2, lo:hi], dv[4 * i, lo:hi], column2)
        # B (dV B^T) down each column b, added at the tile's place
        _add_column_adjoint(dv[0, lo:hi], dv[4, lo:hi], dv[8, lo:hi], dv[12, lo:hi], dp, r, q, 1.0)
        _add_column_adjoint(s0, s1, s2, s3, dp, r, q + 1, 1.0)
        _add_column_adjoint(s4, s5, s6, s7, dp, r, q + 2, 1.0)
        _add_column_adjoint(dv[3, lo:hi], dv[7, lo:hi], dv[11, lo:hi], dv[15, lo:hi], dp, r, q + 3, -1.0)


@njit(cache=True, error_model="numpy")
def _carve(buf, at, d0, d1, d2):
    """The (d0, d1, d2) array at offset ``at`` of the flat ``buf``, and the offset after it."""
    end = at + d0 * d1 * d2
    return buf[at:end].reshape(d0, d1, d2), end


@njit(cache=True, error_model="numpy")
def _workspaces(cols, gemm_ws, n_size, c_size, o_size, oh_size, ow_size):
    """The kept input v (16, stride) at the start of cols, the flat rest of cols (the chunks' scratch)
    and the flat gemm workspace (see :func:`_plan`)."""
    flat = cols.reshape(-1)
    stride = _plan(n_size, c_size, o_size, oh_size, ow_size)[2]
    return flat[:16 * stride].reshape(16, stride), flat[16 * stride:], gemm_ws.reshape(-1)


@njit(cache=True, error_model="numpy")
def _chunk(k, n_chunks, x_shape, o_size, oh_size, ow_size, spare, gflat):
    """Chunk k of n_chunks: its first sample n0, its nb samples (the batch split as evenly as it goes), its
    small vectors s (8, nb * max(C, O)), the rest of its scratch in ``spare`` (flat) and its stretch of the
    flat ``gemm`` workspace (nb*OH*OW*O entries), see :func:`_plan`."""
    n_size, c_size = x_shape[0], x_shape[1]
    _, _, _, per_sample, per_chunk = _plan(n_size, c_size, o_size, oh_size, ow_size)
    n0 = k * n_size // n_chunks
    nb = (k + 1) * n_size // n_chunks - n0
    buf = spare[n0 * per_sample + k * per_chunk:(n0 + nb) * per_sample + (k + 1) * per_chunk]
    s, at = _carve(buf, 0, 1, 8, nb * max(c_size, o_size))
    pixels = oh_size * ow_size * o_size
    return n0, nb, s[0], buf[at:], gflat[n0 * pixels:(n0 + nb) * pixels]


@njit(cache=True, error_model="numpy")
def _transformed_input(x, n0, nb, ph, pw, v, tiles, buf):
    """The chunk's stretch of v (16, stride): B^T d B of every tile of samples n0..n0+nb-1 of x; the padded
    copy and the row transform go into the flat buf."""
    c_size = x.shape[1]
    hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    p, at = _carve(buf, 0, hp, wp, nb * c_size)
    tmp, _ = _carve(buf, at, 4, wp, nb * c_size)
    _pack(x, n0, nb, ph, pw, p)
    _input_transform(p, tmp, v, n0 * tiles * c_size)


@njit(cache=True, error_model="numpy")
def _entry_rows(buf, rows, length):
    """Four rows of ``rows * length`` entries each, ENTRY_PAD apart, at the start of the flat buf."""
    return buf[:4 * (rows * length + ENTRY_PAD)].reshape(4, rows * length + ENTRY_PAD)


# No scratch is allocated per call: large blocks allocated afresh each call came back as fresh pages,
# and their page faults cost as much as the products (the resnet preset's 8x8 convolution backward
# 903 against 524 us). Everything lives in the convolution's workspaces (:func:`_plan`), and the 16
# entries' products run four at a time (a row i of the tile), so that one row of m or dm is in use.


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _forward_chunks(x, u, bias, ph, pw, cols, gemm_ws, out, n_chunks):
    """Every chunk side by side: its transformed input into its stretch of v, then per row i of the
    tile the four GEMMs m[4i + j] = v[4i + j] @ u[4i + j] and their part of the output tiles y; y into
    out with the bias."""
    n_size, c_size, o_size, oh_size, ow_size = _sizes(x, out)
    tiles = (oh_size // 2) * (ow_size // 2)
    v, spare, gflat = _workspaces(cols, gemm_ws, n_size, c_size, o_size, oh_size, ow_size)
    for k in prange(n_chunks):
        n0, nb, s, buf, gk = _chunk(k, n_chunks, x.shape, o_size, oh_size, ow_size, spare, gflat)
        _transformed_input(x, n0, nb, ph, pw, v, tiles, buf)
        m = _entry_rows(buf, tiles * nb, o_size)
        y = gk.reshape(tiles, 4, nb * o_size)
        rows = tiles * nb
        for i in range(4):
            for j in range(4):
                e = 4 * i + j
                gemm(False, False, 1.0, _entry(v, e, n0 * tiles * c_size, rows, c_size),
                     _entry(u, e, 0, c_size, o_size), 0.0, _entry(m, j, 0, rows, o_size))
            _output_rows(m, 0, i, s, y)
        _scatter_output(y, bias, out, n0, nb)


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _backward_chunks(x, ut, dout, ph, pw, need_dx, v_ready, cols, gemm_ws, dx, partial, n_chunks):
    """Every chunk side by side: its transformed input (unless ``v_ready``) and its output gradient, channels
    last; per row i of the tile dm[4i + j] = (A dY A^T)[4i + j], the weight gradient's partial sums
    partial[k][e] = v[e]^T @ dm[e] and (need_dx) dv[e] = dm[e] @ u[e]^T into v's place; then the input
    transform's adjoint into dx."""
    n_size, c_size, o_size, oh_size, ow_size = _sizes(x, dout)
    tiles = (oh_size // 2) * (ow_size // 2)
    v, spare, gflat = _workspaces(cols, gemm_ws, n_size, c_size, o_size, oh_size, ow_size)
    for k in prange(n_chunks):
        n0, nb, s, buf, gk = _chunk(k, n_chunks, x.shape, o_size, oh_size, ow_size, spare, gflat)
        if not v_ready:
            _transformed_input(x, n0, nb, ph, pw, v, tiles, buf)
        g = gk.reshape(oh_size, ow_size, nb * o_size)
        _pack_gradient(dout, n0, nb, g)
        dm = _entry_rows(buf, tiles * nb, o_size)
        rows = tiles * nb
        for i in range(4):
            _output_rows_adjoint(g, i, dm, 0)
            for j in range(4):
                e = 4 * i + j
                ve = _entry(v, e, n0 * tiles * c_size, rows, c_size)
                dme = _entry(dm, j, 0, rows, o_size)
                gemm(True, False, 1.0, ve, dme, 0.0, _entry(partial[k], e, 0, c_size, o_size))
                if need_dx:  # v[e] is spent: dv[e] takes its place
                    gemm(False, False, 1.0, dme, _entry(ut, e, 0, o_size, c_size), 0.0, ve)
        if need_dx:
            dp, _ = _carve(buf, 0, oh_size + 2, ow_size + 2, nb * c_size)
            _input_transform_adjoint(v, n0 * tiles * c_size, s, dp)
            _unpack(dp, n0, nb, ph, pw, dx)


@by_address
@njit(cache=True, error_model="numpy")
def winograd_forward(x, weight, bias, ph, pw, cols, gemm_ws, out):
    """Conv2D forward by F(2x2, 3x3) (where :func:`winograd_applies`), overwriting ``out``; leaves the
    transformed input in ``cols`` for :func:`winograd_backward`. Arguments as
    :func:`nkernels.kernels.cpu.conv.conv2d_forward`'s (stride 1)."""
    n_size, c_size, o_size, oh_size, ow_size = _sizes(x, out)
    u = _entries(c_size * o_size, x.dtype)
    _weight_transform(weight, u, False)
    n_chunks = _plan(n_size, c_size, o_size, oh_size, ow_size)[1]
    _forward_chunks(x, u, bias, ph, pw, cols, gemm_ws, out, n_chunks)


@by_address
@njit(cache=True, error_model="numpy")
def winograd_backward(x, weight, dout, ph, pw, need_dx, cols_ready, cols, gemm_ws, dx, dweight):
    """Conv2D backward by F(2x2, 3x3): overwrites ``dweight`` and (need_dx) ``dx``; ``cols_ready``: ``cols``
    still holds what :func:`winograd_forward` left there for this x. The bias gradient is the caller's."""
    n_size, c_size, o_size, oh_size, ow_size = _sizes(x, dout)
    ut = _entries(o_size * c_size, x.dtype)
    _weight_transform(weight, ut, True)
    n_chunks = _plan(n_size, c_size, o_size, oh_size, ow_size)[1]
    partial = np.empty((max(1, n_chunks), 16, c_size * o_size + ENTRY_PAD), x.dtype)
    partial[0].fill(0)  # no chunk at all: a zero gradient
    _backward_chunks(x, ut, dout, ph, pw, need_dx, cols_ready, cols, gemm_ws, dx, partial, n_chunks)
    add_in_chunk_order(partial)
    _weight_transform_adjoint(partial[0], dweight)
