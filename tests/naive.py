"""Slow, readable NumPy references of the CPU kernels: the specification the kernel tests compare against.

One section per kernel family of ``nkernels/kernels/cpu``, in the order of its modules. Each reference
states the definition plainly (a formula, a loop over windows or time steps, Python integers for the
random generator) and computes in float64 unless it says otherwise, so a kernel in float32 or float64
is checked against one value. The CPU kernel tests (``tests/kernels/cpu``) compare the kernels with
these; the CUDA tests (``tests/kernels/cuda``) compare each twin with its CPU kernel.

Import with ``import naive`` or ``from naive import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""
import math

import numpy as np


def f64(a):
    """``a`` as a float64 array (a copy when it is float32)."""
    return np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# activation
# ----------------------------------------------------------------------------------------------


def relu(x):
    """``max(x, 0)``."""
    return np.maximum(f64(x), 0.0)


def relu_backward(y, dy):
    """``dy`` where the ReLU's output ``y`` is positive, else 0."""
    return np.where(f64(y) > 0, f64(dy), 0.0)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, written as ``exp(-log(1 + exp(-x)))`` with NumPy's ``logaddexp``: no overflow,
    and full relative precision in both tails."""
    return np.exp(-np.logaddexp(0.0, -f64(x)))


def sigmoid_backward(y, dy):
    """``dy * y * (1 - y)`` with ``y`` the sigmoid's output."""
    y = f64(y)
    return f64(dy) * y * (1.0 - y)


def tanh(x):
    """``tanh(x)``."""
    return np.tanh(f64(x))


def tanh_backward(y, dy):
    """``dy * (1 - y**2)`` with ``y`` the tanh's output."""
    return f64(dy) * (1.0 - f64(y) ** 2)


def silu(x):
    """``x * sigmoid(x)`` (SiLU, swish)."""
    return f64(x) * sigmoid(x)


def silu_backward(x, dy):
    """``d silu / dx = s + x * s * (1 - s)`` with ``s = sigmoid(x)``, ``x`` the forward's input, times ``dy``."""
    x, s = f64(x), sigmoid(x)
    return f64(dy) * (s + x * s * (1.0 - s))


# ----------------------------------------------------------------------------------------------
# random: splitmix64 on Python integers with explicit 64-bit masking
# ----------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
#: the splitmix64 gamma, 2**64 / golden ratio
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """The splitmix64 finaliser (Stafford's Mix13) on a Python int in ``[0, 2**64)``."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def hash_u64(seed, counter):
    """64 random bits for ``(seed, counter)``: ``mix64(mix64(seed + GOLDEN) + counter * GOLDEN)``, modulo 2**64."""
    key = mix64((seed + GOLDEN) & MASK64)
    return mix64((key + (counter & MASK64) * GOLDEN) & MASK64)


def hash_uniform(seed, counter):
    """The top 53 bits of :func:`hash_u64` as a float in ``[0, 1)``."""
    return (hash_u64(seed & MASK64, counter) >> 11) / 2.0**53


def hash_randint(seed, counter, low, high):
    """An integer in ``[low, high]``: Lemire's multiply-shift on the top 32 bits of :func:`hash_u64`."""
    top = hash_u64(seed & MASK64, counter) >> 32
    return low + ((top * (high - low + 1)) >> 32)


def hash_normal(seed, counter):
    """A standard normal draw (Box-Muller, cosine branch) from :func:`hash_u64` and a second draw
    ``mix64(first + GOLDEN)``; ``1 - u1`` keeps the logarithm finite."""
    z1 = hash_u64(seed & MASK64, counter)
    z2 = mix64((z1 + GOLDEN) & MASK64)
    u1 = 1.0 - (z1 >> 11) / 2.0**53
    u2 = (z2 >> 11) / 2.0**53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def uniform_fill(seed, offset, n, dtype=np.float64):
    """``[hash_uniform(seed, offset + i) for i < n]`` in ``dtype``; a float32 draw that rounds up to 1
    becomes the largest float32 below 1."""
    t = np.dtype(dtype).type
    u = np.array([hash_uniform(seed, offset + i) for i in range(n)]).astype(t)
    return np.minimum(u, np.nextafter(t(1), t(0)))


def normal_fill(seed, offset, mean, std, n):
    """``mean + std * hash_normal(seed, offset + i)`` for ``i < n``, float64."""
    return np.array([mean + std * hash_normal(seed, offset + i) for i in range(n)])


# ----------------------------------------------------------------------------------------------
# augment
# ----------------------------------------------------------------------------------------------


def translation_shift(seed, offset, n, max_shift):
    """``(dy, dx)`` for sample ``n`` from one :func:`hash_u64` draw: high 32 bits give dy, low 32 bits dx,
    each by multiply-shift onto ``[-max_shift, max_shift]``."""
    z = hash_u64(seed & MASK64, offset + n)
    span = 2 * max_shift + 1
    return ((z >> 32) * span >> 32) - max_shift, ((z & 0xFFFFFFFF) * span >> 32) - max_shift


def translate(x, shifts):
    """Each image ``x[n]`` (N, C, H, W) moved by ``shifts[n] = (dy, dx)``, zeros where nothing moved in:
    zero-pad by the largest shift and cut the shifted window out."""
    _, _, h, w = x.shape
    out = np.zeros_like(x)
    for n, (dy, dx) in enumerate(shifts):
        s = max(abs(dy), abs(dx))
        padded = np.pad(x[n], ((0, 0), (s, s), (s, s)))
        # out[i, j] = x[i - dy, j - dx] = padded[i - dy + s, j - dx + s]
        out[n] = padded[:, s - dy:s - dy + h, s - dx:s - dx + w]
    return out


# ----------------------------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------------------------


def gather(src, order, start, count):
    """The ``count`` rows (or labels) ``src[order[start]], src[order[start + 1]], ...``."""
    return np.stack([src[order[start + i]] for i in range(count)]) if count else src[:0]


# ----------------------------------------------------------------------------------------------
# conv
# ----------------------------------------------------------------------------------------------


def conv2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w):
    """Cross-correlation of zero-padded NCHW ``x`` with ``weight`` (O, C, KH, KW), one window at a time,
    plus ``bias`` (O,) unless it is empty."""
    n_size, c_size, h, w = x.shape
    o_size, _, kh, kw = weight.shape
    oh_size = (h + 2 * pad_h - kh) // stride_h + 1
    ow_size = (w + 2 * pad_w - kw) // stride_w + 1
    xp = np.zeros((n_size, c_size, h + 2 * pad_h, w + 2 * pad_w))
    xp[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    out = np.zeros((n_size, o_size, oh_size, ow_size))
    for n in range(n_size):
        for o in range(o_size):
            for i in range(oh_size):
                for j in range(ow_size):
                    patch = xp[n, :, i * stride_h:i * stride_h + kh, j * stride_w:j * stride_w + kw]
                    out[n, o, i, j] = np.sum(patch * weight[o])
                    if len(bias):
                        out[n, o, i, j] += bias[o]
    return out


def conv2d_backward(x, weight, dout, stride_h, stride_w, pad_h, pad_w):
    """``(dx, dweight, dbias)`` of :func:`conv2d_forward` for the upstream gradient ``dout``: each output
    element's gradient scattered back over its window."""
    n_size, c_size, h, w = x.shape
    o_size, _, kh, kw = weight.shape
    _, _, oh_size, ow_size = dout.shape
    xp = np.zeros((n_size, c_size, h + 2 * pad_h, w + 2 * pad_w))
    xp[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    dxp = np.zeros_like(xp)
    dweight = np.zeros(weight.shape)
    for n in range(n_size):
        for o in range(o_size):
            for i in range(oh_size):
                for j in range(ow_size):
                    hs = slice(i * stride_h, i * stride_h + kh)
                    ws = slice(j * stride_w, j * stride_w + kw)
                    g = dout[n, o, i, j]
                    dxp[n, :, hs, ws] += g * weight[o]
                    dweight[o] += g * xp[n, :, hs, ws]
    dx = dxp[:, :, pad_h:pad_h + h, pad_w:pad_w + w]
    dbias = f64(dout).sum(axis=(0, 2, 3))
    return dx, dweight, dbias


def conv1d_forward(x, weight, bias, stride, pad):
    """:func:`conv2d_forward` for (N, C, L) inputs and (O, C, K) weights."""
    n_size, c_size, length = x.shape
    o_size, _, k = weight.shape
    ol_size = (length + 2 * pad - k) // stride + 1
    xp = np.zeros((n_size, c_size, length + 2 * pad))
    xp[:, :, pad:pad + length] = x
    out = np.zeros((n_size, o_size, ol_size))
    for n in range(n_size):
        for o in range(o_size):
            for i in range(ol_size):
                out[n, o, i] = np.sum(xp[n, :, i * stride:i * stride + k] * weight[o])
                if len(bias):
                    out[n, o, i] += bias[o]
    return out


def conv1d_backward(x, weight, dout, stride, pad):
    """``(dx, dweight, dbias)`` of :func:`conv1d_forward`."""
    n_size, c_size, length = x.shape
    o_size, _, k = weight.shape
    xp = np.zeros((n_size, c_size, length + 2 * pad))
    xp[:, :, pad:pad + length] = x
    dxp = np.zeros_like(xp)
    dweight = np.zeros(weight.shape)
    for n in range(n_size):
        for o in range(o_size):
            for i in range(dout.shape[2]):
                s = slice(i * stride, i * stride + k)
                dxp[n, :, s] += dout[n, o, i] * weight[o]
                dweight[o] += dout[n, o, i] * xp[n, :, s]
    return dxp[:, :, pad:pad + length], dweight, f64(dout).sum(axis=(0, 2))


# ----------------------------------------------------------------------------------------------
# dense
# ----------------------------------------------------------------------------------------------


def dense_forward(x, weight, bias):
    """``out[n, o] = sum_i x[n, i] * weight[o, i] + bias[o]`` (no bias when ``bias`` is empty)."""
    out = np.einsum("ni,oi->no", f64(x), f64(weight))
    return out + f64(bias) if len(bias) else out


def dense_backward(x, dy, weight):
    """``(dx, dweight, dbias)`` of :func:`dense_forward`: ``dy @ weight``, ``dy^T @ x``, the column sums of ``dy``."""
    x, dy, weight = f64(x), f64(dy), f64(weight)
    return np.einsum("no,oi->ni", dy, weight), np.einsum("no,ni->oi", dy, x), dy.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------------------------


def attention(x, in_weight, in_bias, out_weight, out_bias, heads, causal, p, seed, counter):
    """``(out, attn, mask)`` of batch-first multi-head self-attention (``torch.nn.MultiheadAttention``):
    q, k, v = the thirds of ``x @ in_weight^T + in_bias``; per head ``attn = softmax(q k^T / sqrt(D))``
    (keys after the query left out when ``causal``); the weight ``(n, h, i, j)`` kept at ``1 / (1 - p)``
    when ``hash_uniform(seed, counter + ((n*H + h)*T + i)*T + j) >= p`` (all kept when ``p = 0``);
    the heads' ``(attn * mask) @ v`` side by side, then ``@ out_weight^T + out_bias``."""
    n_size, t_size, e = x.shape
    d = e // heads
    qkv = dense_forward(f64(x).reshape(-1, e), in_weight, in_bias).reshape(n_size, t_size, 3, heads, d)
    q, k, v = (qkv[:, :, part].transpose(0, 2, 1, 3) for part in range(3))  # (N, H, T, D)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
    if causal:
        scores = np.where(np.tril(np.ones((t_size, t_size), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    attn = weights / weights.sum(axis=-1, keepdims=True)
    mask = np.ones_like(attn)
    if p > 0:
        for index in range(attn.size):
            mask.flat[index] = 1.0 / (1.0 - p) if hash_uniform(seed, counter + index) >= p else 0.0
    ctx = ((attn * mask) @ v).transpose(0, 2, 1, 3).reshape(-1, e)
    return dense_forward(ctx, out_weight, out_bias).reshape(n_size, t_size, e), attn, mask


# ----------------------------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------------------------


def dropout(x, p, seed, offset):
    """Inverted dropout of a flat ``x``: ``(mask, x * mask)``, element ``i`` kept (at ``1 / (1 - p)``) when
    ``hash_uniform(seed, offset + i) >= p``; in ``x``'s dtype."""
    scale = x.dtype.type(1.0 / (1.0 - p)) if p < 1 else x.dtype.type(0)
    mask = np.zeros_like(x)
    for i in range(x.size):
        if hash_uniform(seed, offset + i) >= p:
            mask.flat[i] = scale
    return mask, x * mask


# ----------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------


def softmax_cross_entropy(logits, labels):
    """``(mean loss, probabilities)``: the softmax of each row, and the mean of ``-log p[label]`` computed
    as ``logsumexp(row) - row[label]``."""
    z = f64(logits)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    probs = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(len(z))
    losses = np.log(e.sum(axis=1)) - shifted[rows, labels]
    return float(losses.mean()), probs


def softmax_cross_entropy_backward(probs, labels):
    """``(probs - onehot(labels)) / N``: the gradient of the mean loss."""
    grad = f64(probs).copy()
    grad[np.arange(len(grad)), labels] -= 1.0
    return grad / len(grad)


def count_correct(logits, labels):
    """Rows whose arg-max (the first one on ties) is the label."""
    return int(np.sum(np.argmax(logits, axis=1) == labels))


def mse(pred, target):
    """``mean((pred - target)**2)`` over every element."""
    return float(np.mean((f64(pred) - f64(target)) ** 2))


def mse_backward(pred, target):
    """``2 * (pred - target) / numel``."""
    return 2.0 * (f64(pred) - f64(target)) / np.size(pred)


def bce_with_logits(logits, target):
    """``mean(-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)))`` over every element, via logaddexp."""
    x, t = f64(logits), f64(target)
    return float(np.mean(t * np.logaddexp(0.0, -x) + (1 - t) * np.logaddexp(0.0, x)))


def bce_with_logits_backward(logits, target):
    """``(sigmoid(x) - t) / numel``."""
    x = f64(logits)
    return (0.5 * (1 + np.tanh(x / 2)) - f64(target)) / np.size(x)


def count_binary_correct(logits, target):
    """Rows whose every ``logit > 0`` equals ``target >= 0.5``."""
    return int(np.all((f64(logits) > 0) == (f64(target) >= 0.5), axis=1).sum())


# ----------------------------------------------------------------------------------------------
# norms
# ----------------------------------------------------------------------------------------------


def clip_grad_norm(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_`` (p = 2) on NumPy arrays, in place; returns the total norm."""
    total = math.sqrt(sum(float(np.sum(f64(g) ** 2)) for g in grads))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def renorm(w, max_norm):
    """``torch.renorm(w, 2, 0, max_norm)``: rows (dim 0 slices) whose norm exceeds ``max_norm`` scaled
    by ``max_norm / (norm + 1e-7)``, the others untouched."""
    out = w.copy()
    for r in range(w.shape[0]):
        norm = math.sqrt(float(np.sum(f64(w[r]) ** 2)))
        if norm > max_norm:
            out[r] = w[r] * (max_norm / (norm + 1e-7))
    return out


# ----------------------------------------------------------------------------------------------
# optim: one step of torch.optim's SGD (no dampening), Adam and AdamW, in float64
# ----------------------------------------------------------------------------------------------


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step: ``(new param, new velocity)``. ``g = grad + wd * p``; with momentum
    ``v = mu * v + g`` and the step ``g + mu * v`` (Nesterov) or ``v``; without, the step ``g``."""
    p, g, v = f64(param), f64(grad), f64(velocity)
    g = g + weight_decay * p
    if momentum == 0.0:
        return p - lr * g, v
    v = momentum * v + g
    return p - lr * (g + momentum * v if nesterov else v), v


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step (AdamW when ``decoupled``) at ``step`` (from 1): ``(new param, new m, new v)``.
    AdamW shrinks ``p`` by ``1 - lr * wd`` first; Adam adds ``wd * p`` to the gradient."""
    p, g, m, v = f64(param), f64(grad), f64(m), f64(v)
    if decoupled:
        p = p * (1.0 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1 ** step)
    v_hat = v / (1.0 - beta2 ** step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


# ----------------------------------------------------------------------------------------------
# pool
# ----------------------------------------------------------------------------------------------


def window_argmax(window):
    """PyTorch's rule on a flattened window: the last NaN if there is one, else the first maximum
    (row-major order)."""
    nans = np.flatnonzero(np.isnan(window))
    return int(nans[-1]) if len(nans) else int(np.argmax(window))


def maxpool2d_forward(x, k, stride):
    """``(out, argmax)``: the maximum of each k x k window (:func:`window_argmax`), and its flat index
    ``ih * W + iw`` in the plane; in ``x``'s dtype."""
    n_size, c_size, h, w = x.shape
    oh_size, ow_size = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n_size, c_size, oh_size, ow_size), x.dtype)
    argmax = np.zeros(out.shape, np.int64)
    for n in range(n_size):
        for c in range(c_size):
            for i in range(oh_size):
                for j in range(ow_size):
                    window = x[n, c, i * stride:i * stride + k, j * stride:j * stride + k]
                    di, dj = divmod(window_argmax(window.ravel()), k)
                    out[n, c, i, j] = window[di, dj]
                    argmax[n, c, i, j] = (i * stride + di) * w + (j * stride + dj)
    return out, argmax


def maxpool2d_backward(x, k, stride, dout):
    """Each window's gradient added to its maximum's input element."""
    _, argmax = maxpool2d_forward(x, k, stride)
    n_size, c_size, h, w = x.shape
    dx = np.zeros(x.shape)
    for n in range(n_size):
        for c in range(c_size):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    ih, iw = divmod(int(argmax[n, c, i, j]), w)
                    dx[n, c, ih, iw] += dout[n, c, i, j]
    return dx


def maxpool1d_forward(x, k, stride):
    """:func:`maxpool2d_forward` for (N, C, L) inputs; argmax is the position along L."""
    n_size, c_size, length = x.shape
    ol_size = (length - k) // stride + 1
    out = np.zeros((n_size, c_size, ol_size), x.dtype)
    argmax = np.zeros(out.shape, np.int64)
    for n in range(n_size):
        for c in range(c_size):
            for i in range(ol_size):
                window = x[n, c, i * stride:i * stride + k]
                a = window_argmax(window)
                out[n, c, i] = window[a]
                argmax[n, c, i] = i * stride + a
    return out, argmax


def maxpool1d_backward(x, k, stride, dout):
    """:func:`maxpool2d_backward` for (N, C, L) inputs."""
    _, argmax = maxpool1d_forward(x, k, stride)
    dx = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                dx[n, c, argmax[n, c, i]] += dout[n, c, i]
    return dx


def avgpool2d_forward(x, k, stride):
    """The float64 mean of each k x k window."""
    n_size, c_size, h, w = x.shape
    oh_size, ow_size = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n_size, c_size, oh_size, ow_size))
    for n in range(n_size):
        for c in range(c_size):
            for i in range(oh_size):
                for j in range(ow_size):
                    window = x[n, c, i * stride:i * stride + k, j * stride:j * stride + k]
                    out[n, c, i, j] = np.mean(f64(window))
    return out


def avgpool2d_backward(x, k, stride, dout):
    """Each window's gradient spread evenly, ``dout / k**2``, over its elements."""
    dx = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    dx[n, c, i * stride:i * stride + k, j * stride:j * stride + k] += dout[n, c, i, j] / (k * k)
    return dx


# ----------------------------------------------------------------------------------------------
# recurrent: one step at a time, PyTorch's gate order and equations, batch-first, zero initial state
# ----------------------------------------------------------------------------------------------


def lstm(x, w_ih, w_hh, b_ih, b_hh, dhs):
    """``(hs, (dx, dw_ih, dw_hh, db_ih, db_hh))``: the LSTM's hidden states (N, T, H) and its gradients
    for the upstream gradient ``dhs`` of every step, by backpropagation through time. Gates i, f, g, o."""
    n, t, _ = x.shape
    hdim = w_hh.shape[1]
    h = np.zeros((n, hdim))
    c = np.zeros((n, hdim))
    hs, cache = [], []
    for s in range(t):
        z = x[:, s] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i = sigmoid(z[:, :hdim])
        f = sigmoid(z[:, hdim:2 * hdim])
        g = np.tanh(z[:, 2 * hdim:3 * hdim])
        o = sigmoid(z[:, 3 * hdim:])
        c_prev, h_prev = c, h
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        cache.append((h_prev, c_prev, i, f, g, o, c))
        hs.append(h)
    dx = np.zeros(x.shape)
    dw_ih, dw_hh = np.zeros(w_ih.shape), np.zeros(w_hh.shape)
    db = np.zeros(b_ih.shape)
    dh_next = np.zeros((n, hdim))
    dc_next = np.zeros((n, hdim))
    for s in reversed(range(t)):
        h_prev, c_prev, i, f, g, o, c = cache[s]
        dh = dhs[:, s] + dh_next
        do = dh * np.tanh(c)
        dc = dc_next + dh * o * (1 - np.tanh(c) ** 2)
        di, df, dg = dc * g, dc * c_prev, dc * i
        dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        dx[:, s] = dz @ w_ih
        dw_ih += dz.T @ x[:, s]
        dw_hh += dz.T @ h_prev
        db += dz.sum(axis=0)
        dh_next = dz @ w_hh
        dc_next = dc * f
    return np.stack(hs, axis=1), (dx, dw_ih, dw_hh, db, db.copy())


def gru(x, w_ih, w_hh, b_ih, b_hh, dhs):
    """``(hs, (dx, dw_ih, dw_hh, db_ih, db_hh))`` of the GRU, as :func:`lstm`. Gates r, z, n; the reset
    gate multiplies ``W_hn h + b_hn``."""
    n, t, _ = x.shape
    hd = w_hh.shape[1]
    h = np.zeros((n, hd))
    hs, cache = [], []
    for s in range(t):
        gi = x[:, s] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        r = sigmoid(gi[:, :hd] + gh[:, :hd])
        z = sigmoid(gi[:, hd:2 * hd] + gh[:, hd:2 * hd])
        nn = np.tanh(gi[:, 2 * hd:] + r * gh[:, 2 * hd:])
        h_prev = h
        h = (1 - z) * nn + z * h_prev
        cache.append((h_prev, r, z, nn, gh[:, 2 * hd:]))
        hs.append(h)
    dx = np.zeros(x.shape)
    dw_ih, dw_hh = np.zeros(w_ih.shape), np.zeros(w_hh.shape)
    db_ih, db_hh = np.zeros(b_ih.shape), np.zeros(b_hh.shape)
    dh_next = np.zeros((n, hd))
    for s in reversed(range(t)):
        h_prev, r, z, nn, ghn = cache[s]
        dh = dhs[:, s] + dh_next
        dn = dh * (1 - z) * (1 - nn ** 2)
        dr = dn * ghn * r * (1 - r)
        dz = dh * (h_prev - nn) * z * (1 - z)
        dgi = np.concatenate([dr, dz, dn], axis=1)
        dgh = np.concatenate([dr, dz, dn * r], axis=1)
        dx[:, s] = dgi @ w_ih
        dw_ih += dgi.T @ x[:, s]
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        dh_next = dh * z + dgh @ w_hh
    return np.stack(hs, axis=1), (dx, dw_ih, dw_hh, db_ih, db_hh)


# ----------------------------------------------------------------------------------------------
# reshape
# ----------------------------------------------------------------------------------------------


def last_step(hs):
    """The last step ``hs[:, -1]`` of a (N, T, H) sequence."""
    return hs[:, -1].copy()


def last_step_backward(dy, steps):
    """The gradient of :func:`last_step` over ``steps`` steps: zeros, ``dy`` at the last step."""
    dhs = np.zeros((dy.shape[0], steps, dy.shape[1]), dy.dtype)
    dhs[:, -1] = dy
    return dhs


def add(a, b):
    """``a + b`` elementwise, in the inputs' dtype (one rounding, as the kernel's)."""
    return np.asarray(a) + np.asarray(b)
