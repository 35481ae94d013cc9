"""Pooling kernels: MaxPool1D/2D and AvgPool2D, square window ``k``, ``stride``, no padding;
GlobalAvgPool2D (the mean of each plane), nearest Upsample2D, and GlobalAvgPool1D (the mean over the
tokens of a (N, T, D) sequence).

Layouts follow PyTorch: 2-D pools take (N, C, H, W), 1-D pools (N, C, L). Output size per
spatial dimension is ``(size - k) // stride + 1`` (floor mode, as PyTorch's default). Windows
may overlap (stride < k) or leave gaps (stride > k); backward kernels zero ``dx`` and then
accumulate, so both are handled. All loops run in ``prange`` over the N*C planes.

Max pooling saves, for each output element, the flat index of the winning input element
*within its own plane* (``ih * W + iw`` for 2-D, ``il`` for 1-D, as PyTorch's ``indices``) in a
caller-provided int64 array of the output's shape; backward scatters through it. As in
PyTorch: ties go to the first element in row-major window order, a NaN wins its window, and
of several NaNs the last one wins.

GlobalAvgPool2D maps (N, C, H, W) to (N, C), each plane's sum taken in float64 and scaled by
1/(H*W) once. Upsample2D repeats each pixel of (N, C, H, W) into a ``scale`` x ``scale`` block
(N, C, H*scale, W*scale), as ``torch.nn.Upsample(scale_factor=scale, mode="nearest")``; its
backward sums each block (in float64).

All float arrays of one call share one dtype (float32 or float64); ``argmax`` is int64.
"""
from numba import njit, prange


# ----------------------------------------------------------------------------------------------
# Pure-Python shape helpers (for the caller, never jitted)
# ----------------------------------------------------------------------------------------------


def pool_output_length(size, k, stride):
    """Output length of one dimension: ``(size - k) // stride + 1``."""
    return (size - k) // stride + 1


def pool2d_output_shape(x_shape, k, stride):
    """``(N, C, OH, OW)`` for ``x`` of shape (N, C, H, W); also the shape of ``argmax``."""
    n, c, h, w = x_shape
    return (n, c, pool_output_length(h, k, stride), pool_output_length(w, k, stride))


def pool1d_output_shape(x_shape, k, stride):
    """``(N, C, OL)`` for ``x`` of shape (N, C, L); also the shape of ``argmax``."""
    n, c, length = x_shape
    return (n, c, pool_output_length(length, k, stride))


def pool_workspace_size(x_shape, k, stride):
    """Pool kernels need no float workspace: always 0 (max pooling's int64 ``argmax`` array has
    the output's shape, see :func:`pool2d_output_shape` / :func:`pool1d_output_shape`)."""
    return 0


# ----------------------------------------------------------------------------------------------
# MaxPool2D
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _window_max_exact(plane, h0, w0, k, w_size):
    """PyTorch's rule for a k x k window: the first maximum in row-major order, except that a
    NaN wins, and among several NaNs the last one."""
    best = plane[h0, w0]
    bi = h0 * w_size + w0
    for i in range(h0, h0 + k):
        for j in range(w0, w0 + k):
            v = plane[i, j]
            if v > best or v != v:
                best = v
                bi = i * w_size + j
    return best, bi


@njit(cache=True, error_model="numpy")
def _plane_max_2x2(plane, oplane, iplane):
    """A plane's 2 x 2 windows at stride 2, without branches: each pair's first maximum, then the
    lower pair's where it is greater, so that a row's loop runs a vector of windows at a time (LeNet's
    first pool, (128, 32, 24, 24) float32 on 2 threads: 572 -> 339 µs; a call per row instead of per
    plane cost 160 µs of that); the windows of a row holding a NaN are scanned again by the exact rule."""
    w_size = plane.shape[1]
    for oh in range(oplane.shape[0]):
        h0 = 2 * oh
        r0, r1, orow, irow = plane[h0], plane[h0 + 1], oplane[oh], iplane[oh]
        i0 = h0 * w_size
        i1 = i0 + w_size
        bad = False
        for ow in range(orow.shape[0]):
            w0 = 2 * ow
            v0, v1, v2, v3 = r0[w0], r0[w0 + 1], r1[w0], r1[w0 + 1]
            right_top, right_bottom = v1 > v0, v3 > v2
            top = v1 if right_top else v0
            bottom = v3 if right_bottom else v2
            lower = bottom > top
            orow[ow] = bottom if lower else top
            irow[ow] = (i1 + w0 + right_bottom) if lower else (i0 + w0 + right_top)
            t = v0 + v1 + v2 + v3
            bad |= t != t
        if bad:
            for ow in range(orow.shape[0]):
                w0 = 2 * ow
                t = r0[w0] + r0[w0 + 1] + r1[w0] + r1[w0 + 1]
                if t != t:
                    orow[ow], irow[ow] = _window_max_exact(plane, h0, w0, 2, w_size)


@njit(cache=True, error_model="numpy", parallel=True)
def maxpool2d_forward(x, k, stride, out, argmax):
    """Max pooling over k x k windows, overwriting ``out`` and ``argmax``.

    x       (N, C, H, W)
    k >= 1, stride >= 1 (ints), with k <= H and k <= W
    out     (N, C, OH, OW), OH = (H - k)//stride + 1, OW = (W - k)//stride + 1
    argmax  (N, C, OH, OW) int64: flat index ``ih * W + iw`` of each maximum within its plane
    """
    n_size, c_size, _, w_size = x.shape
    oh_size = out.shape[2]
    ow_size = out.shape[3]
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        plane = x[n, c]
        oplane = out[n, c]
        iplane = argmax[n, c]
        if k == 2 and stride == 2:
            _plane_max_2x2(plane, oplane, iplane)
            continue
        for oh in range(oh_size):
            h0 = oh * stride
            orow = oplane[oh]
            irow = iplane[oh]
            # Fast path: a plain "v > best" scan (first maximum wins) plus the window's sum,
            # which is NaN whenever the window holds a NaN; only then is the window rescanned
            # with the exact NaN rule. The k == 2 case is unrolled (3x faster than the loop).
            if k == 2:
                r0 = plane[h0]
                r1 = plane[h0 + 1]
                i0 = h0 * w_size
                i1 = i0 + w_size
                for ow in range(ow_size):
                    w0 = ow * stride
                    v0 = r0[w0]
                    v1 = r0[w0 + 1]
                    v2 = r1[w0]
                    v3 = r1[w0 + 1]
                    best = v0
                    bi = i0 + w0
                    if v1 > best:
                        best = v1
                        bi = i0 + w0 + 1
                    if v2 > best:
                        best = v2
                        bi = i1 + w0
                    if v3 > best:
                        best = v3
                        bi = i1 + w0 + 1
                    t = v0 + v1 + v2 + v3
                    if t != t:
                        best, bi = _window_max_exact(plane, h0, w0, k, w_size)
                    orow[ow] = best
                    irow[ow] = bi
            else:
                for ow in range(ow_size):
                    w0 = ow * stride
                    best = plane[h0, w0]
                    bi = h0 * w_size + w0
                    t = best - best
                    for i in range(h0, h0 + k):
                        prow = plane[i]
                        for j in range(w0, w0 + k):
                            v = prow[j]
                            t += v
                            if v > best:
                                best = v
                                bi = i * w_size + j
                    if t != t:
                        best, bi = _window_max_exact(plane, h0, w0, k, w_size)
                    orow[ow] = best
                    irow[ow] = bi


@njit(cache=True, error_model="numpy", parallel=True)
def maxpool2d_backward(dout, argmax, dx, k=0, stride=0):
    """Gradient of :func:`maxpool2d_forward`, overwriting ``dx``.

    dout    (N, C, OH, OW)
    argmax  (N, C, OH, OW) int64, as saved by the forward
    dx      (N, C, H, W): zeroed, then dx[n, c].flat[argmax] += dout (overlaps accumulate)
    k, stride  the forward's window (0: unknown). Not needed here (each thread scatters within
            its own planes); the CUDA twin needs it for its gather form, which has no atomics.
    """
    n_size, c_size, h_size, w_size = dx.shape
    oh_size = dout.shape[2]
    ow_size = dout.shape[3]
    dx3 = dx.reshape(n_size, c_size, h_size * w_size)
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        dplane = dx3[n, c]
        gplane = dout[n, c]
        iplane = argmax[n, c]
        for p in range(h_size * w_size):
            dplane[p] = 0
        for oh in range(oh_size):
            for ow in range(ow_size):
                dplane[iplane[oh, ow]] += gplane[oh, ow]


# ----------------------------------------------------------------------------------------------
# MaxPool1D
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True)
def maxpool1d_forward(x, k, stride, out, argmax):
    """Max pooling over windows of length k, overwriting ``out`` and ``argmax``.

    x       (N, C, L)
    k >= 1, stride >= 1 (ints), with k <= L
    out     (N, C, OL), OL = (L - k)//stride + 1
    argmax  (N, C, OL) int64: index ``il`` of each maximum within its row
    """
    n_size, c_size, _ = x.shape
    ol_size = out.shape[2]
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        row = x[n, c]
        orow = out[n, c]
        irow = argmax[n, c]
        for ol in range(ol_size):
            l0 = ol * stride
            best = row[l0]
            bi = l0
            t = best - best  # NaN iff the window holds a NaN (or opposite infinities)
            for i in range(l0 + 1, l0 + k):
                v = row[i]
                t += v
                if v > best:
                    best = v
                    bi = i
            if t != t:  # exact rule, as PyTorch: a NaN wins, the last of several NaNs
                best = row[l0]
                bi = l0
                for i in range(l0, l0 + k):
                    v = row[i]
                    if v > best or v != v:
                        best = v
                        bi = i
            orow[ol] = best
            irow[ol] = bi


@njit(cache=True, error_model="numpy", parallel=True)
def maxpool1d_backward(dout, argmax, dx, k=0, stride=0):
    """Gradient of :func:`maxpool1d_forward`, overwriting ``dx``.

    dout (N, C, OL), argmax (N, C, OL) int64 as saved by the forward, dx (N, C, L); ``k``,
    ``stride``: the forward's window, as :func:`maxpool2d_backward` (unused here).
    """
    n_size, c_size, l_size = dx.shape
    ol_size = dout.shape[2]
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        drow = dx[n, c]
        grow = dout[n, c]
        irow = argmax[n, c]
        for i in range(l_size):
            drow[i] = 0
        for ol in range(ol_size):
            drow[irow[ol]] += grow[ol]


# ----------------------------------------------------------------------------------------------
# AvgPool2D
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True)
def avgpool2d_forward(x, k, stride, out):
    """Average pooling over k x k windows (divisor k*k, no padding), overwriting ``out``.

    x    (N, C, H, W)
    k >= 1, stride >= 1 (ints), with k <= H and k <= W
    out  (N, C, OH, OW), OH = (H - k)//stride + 1, OW = (W - k)//stride + 1
    """
    n_size, c_size, _, _ = x.shape
    oh_size = out.shape[2]
    ow_size = out.shape[3]
    scale = 1.0 / (k * k)
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        plane = x[n, c]
        oplane = out[n, c]
        for oh in range(oh_size):
            h0 = oh * stride
            orow = oplane[oh]
            if k == 2:
                r0 = plane[h0]
                r1 = plane[h0 + 1]
                for ow in range(ow_size):
                    w0 = ow * stride
                    # float64 sum: exact enough for float32 outputs too
                    s = (float(r0[w0]) + float(r0[w0 + 1])) + (float(r1[w0]) + float(r1[w0 + 1]))
                    orow[ow] = s * 0.25
            else:
                for ow in range(ow_size):
                    w0 = ow * stride
                    s = 0.0
                    for i in range(h0, h0 + k):
                        prow = plane[i]
                        for j in range(w0, w0 + k):
                            s += prow[j]
                    orow[ow] = s * scale


@njit(cache=True, error_model="numpy", parallel=True)
def avgpool2d_backward(dout, k, stride, dx):
    """Gradient of :func:`avgpool2d_forward`, overwriting ``dx``.

    dout (N, C, OH, OW); k, stride as in the forward; dx (N, C, H, W): zeroed, then each
    window gets dout / (k*k) added (overlapping windows accumulate).
    """
    n_size, c_size, h_size, w_size = dx.shape
    oh_size = dout.shape[2]
    ow_size = dout.shape[3]
    scale = 1.0 / (k * k)
    for nc in prange(n_size * c_size):
        n = nc // c_size
        c = nc - n * c_size
        dplane = dx[n, c]
        gplane = dout[n, c]
        for i in range(h_size):
            drow = dplane[i]
            for j in range(w_size):
                drow[j] = 0
        for oh in range(oh_size):
            h0 = oh * stride
            grow = gplane[oh]
            if k == 2:
                d0 = dplane[h0]
                d1 = dplane[h0 + 1]
                for ow in range(ow_size):
                    w0 = ow * stride
                    g = grow[ow] * 0.25
                    d0[w0] += g
                    d0[w0 + 1] += g
                    d1[w0] += g
                    d1[w0 + 1] += g
            else:
                for ow in range(ow_size):
                    w0 = ow * stride
                    g = grow[ow] * scale
                    for i in range(h0, h0 + k):
                        drow = dplane[i]
                        for j in range(w0, w0 + k):
                            drow[j] += g


# ----------------------------------------------------------------------------------------------
# GlobalAvgPool2D
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True, fastmath={"reassoc"})
def globalavgpool2d_forward(x, out):
    """The mean of every plane, overwriting ``out``: x (N, C, H, W), out (N, C).

    Each sum is accumulated in float64 (``reassoc`` lets it vectorize) and scaled once."""
    n_size, c_size, h_size, w_size = x.shape
    hw = h_size * w_size
    planes = x.reshape(n_size * c_size, hw)
    of = out.reshape(-1)
    scale = 1.0 / hw
    for q in prange(n_size * c_size):
        row = planes[q]
        s = 0.0
        for p in range(hw):
            s += row[p]
        of[q] = s * scale


@njit(cache=True, error_model="numpy", parallel=True)
def globalavgpool2d_backward(dout, dx):
    """Gradient of :func:`globalavgpool2d_forward`, overwriting ``dx`` (N, C, H, W): every
    element of plane (n, c) gets dout[n, c] / (H*W). dout (N, C)."""
    n_size, c_size, h_size, w_size = dx.shape
    hw = h_size * w_size
    planes = dx.reshape(n_size * c_size, hw)
    gf = dout.reshape(-1)
    scale = 1.0 / hw
    for q in prange(n_size * c_size):
        row = planes[q]
        g = gf[q] * scale
        for p in range(hw):
            row[p] = g


# ----------------------------------------------------------------------------------------------
# Upsample2D (nearest, integer scale)
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True)
def upsample2d_forward(x, scale, out):
    """Nearest upsampling by an integer ``scale`` >= 1, overwriting ``out``:
    out[n, c, i, j] = x[n, c, i // scale, j // scale].

    x (N, C, H, W), out (N, C, H*scale, W*scale). Parallel over the N*C planes: each input row
    is widened into the first of its output rows, which is then copied scale - 1 times."""
    n_size, c_size, h_size, w_size = x.shape
    planes = x.reshape(n_size * c_size, h_size, w_size)
    oplanes = out.reshape(n_size * c_size, h_size * scale, w_size * scale)
    for q in prange(n_size * c_size):
        plane = planes[q]
        oplane = oplanes[q]
        for i in range(h_size):
            src = plane[i]
            first = oplane[i * scale]
            for j in range(w_size):
                v = src[j]
                for b in range(scale):
                    first[j * scale + b] = v
            for a in range(1, scale):
                oplane[i * scale + a][:] = first


@njit(cache=True, error_model="numpy", parallel=True)
def upsample2d_backward(dout, scale, dx):
    """Gradient of :func:`upsample2d_forward`, overwriting ``dx``: each dx element is the sum
    (in float64) of the ``scale`` x ``scale`` block of dout it was copied to.

    dout (N, C, H*scale, W*scale), dx (N, C, H, W)."""
    n_size, c_size, h_size, w_size = dx.shape
    planes = dx.reshape(n_size * c_size, h_size, w_size)
    gplanes = dout.reshape(n_size * c_size, h_size * scale, w_size * scale)
    for q in prange(n_size * c_size):
        plane = planes[q]
        gplane = gplanes[q]
        for i in range(h_size):
            drow = plane[i]
            for j in range(w_size):
                acc = 0.0
                for a in range(scale):
                    grow = gplane[i * scale + a]
                    for b in range(scale):
                        acc += grow[j * scale + b]
                drow[j] = acc


# ----------------------------------------------------------------------------------------------
# GlobalAvgPool1D: the mean over the tokens of (N, T, D)
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True)
def globalavgpool1d_forward(x, out):
    """``out[n, j] = mean over t of x[n, t, j]``: x (N, T, D), out (N, D); the sum in float64,
    in the order of t."""
    n_size, t_size, d = x.shape
    for n in prange(n_size):
        for j in range(d):
            s = 0.0
            for t in range(t_size):
                s += x[n, t, j]
            out[n, j] = s / t_size


@njit(cache=True, error_model="numpy", parallel=True)
def globalavgpool1d_backward(dout, dx):
    """Gradient of :func:`globalavgpool1d_forward`: ``dx[n, t] = dout[n] / T``, overwriting dx."""
    n_size, t_size, d = dx.shape
    scale = 1.0 / t_size
    for n in prange(n_size):
        for t in range(t_size):
            for j in range(d):
                dx[n, t, j] = dout[n, j] * scale
