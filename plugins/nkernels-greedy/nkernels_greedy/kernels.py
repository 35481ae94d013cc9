"""Numba kernels of the greedy plugin: autoencoder and RBM (CD-k) training steps, input noise.

Every kernel takes preallocated outputs and returns at most a scalar. Each matrix product is one
``np.dot`` over the whole batch; the elementwise passes around them are plain loops.

Random numbers come from nkernels' counter-based generator (:mod:`nkernels.kernels.cpu.random`):
a pure function of ``(seed, counter)``, so a step is reproducible from its ``offset`` alone.
"""
import math

import numpy as np
from numba import njit

from nkernels.kernels.calls import by_address
from nkernels.kernels.cpu.batching import gather_rows
from nkernels.kernels.cpu.optim import apply_updates
from nkernels.kernels.cpu.random import hash_normal, hash_uniform

# Compiled on its own and called by address, not compiled again into every fused loop below
apply_updates = by_address(apply_updates)

#: activation codes (the encoder's, the RBM hidden units')
IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
#: RBM visible-unit codes
BERNOULLI, GAUSSIAN = 0, 1


@njit(cache=True, error_model="numpy")
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def add_bias_activate(pre, bias, activation, out):
    """``out = f(pre + bias)`` row by row (``pre`` gets the bias added in place); bias may be 0-length."""
    n, m = pre.shape
    has_bias = bias.shape[0] > 0
    for i in range(n):
        for j in range(m):
            v = pre[i, j] + bias[j] if has_bias else pre[i, j]
            pre[i, j] = v
            if activation == RELU:
                out[i, j] = v if v > 0 else 0.0
            elif activation == SIGMOID:
                out[i, j] = _sigmoid(v)
            elif activation == TANH:
                out[i, j] = math.tanh(v)
            else:
                out[i, j] = v


@njit(cache=True)
def noise_counters(size, corruption, noise_std):
    """How many random-number counters :func:`corrupt` consumes for ``size`` values."""
    return size * ((1 if corruption > 0 else 0) + (1 if noise_std > 0 else 0))


@njit(cache=True, error_model="numpy")
def corrupt(x, corruption, noise_std, seed, offset, out):
    """The input noise of a denoising autoencoder (Vincent et al. 2008): masking, then Gaussian noise.

    ``out[i] = 0`` with probability ``corruption`` (counter ``offset + i``), else ``x[i]``; then
    ``noise_std * N(0, 1)`` is added (counter ``offset + i``, or ``offset + size + i`` after
    masking), so a call consumes :func:`noise_counters` counters. x and out are 1-D of equal
    length; ``out`` may be ``x`` itself. The greedy plugin's ``autoencoder`` extractor and the
    ``autoencoder`` scheme both corrupt their inputs here.
    """
    base = np.uint64(offset)
    noise_base = base + np.uint64(x.shape[0] if corruption > 0 else 0)
    for i in range(x.shape[0]):
        v = x[i]
        if corruption > 0 and hash_uniform(seed, base + np.uint64(i)) < corruption:
            v = 0.0
        if noise_std > 0:
            v += noise_std * hash_normal(seed, noise_base + np.uint64(i))
        out[i] = v


@njit(cache=True, error_model="numpy")
def autoencoder_step(x, x_in, weight, bias, decoder_weight, decoder_bias, tied, activation,
                     pre, h, recon, drecon, dh, gweight, gbias, gdecoder_weight, gdecoder_bias):
    """Forward and backward pass of a one-hidden-layer autoencoder on a batch; returns the loss.

    Encoder ``h = f(x_in @ weight.T + bias)``; decoder ``recon = h @ weight + decoder_bias`` when
    ``tied``, else ``recon = h @ decoder_weight.T + decoder_bias``. The loss is the mean squared
    error against the clean ``x`` over every element (``x_in`` is ``x``, or ``x`` with noise for a
    denoising autoencoder).

    x, x_in, recon, drecon (N, F); weight, gweight (H, F); bias, gbias (H,) or 0-length for no
    bias; decoder_weight, gdecoder_weight (F, H) when untied, and when tied ``gdecoder_weight`` is
    an (H, F) scratch array (``decoder_weight`` is ignored); decoder_bias, gdecoder_bias (F,);
    pre, h, dh (N, H). Gradients are overwritten.
    """
    n, f = x.shape
    np.dot(x_in, weight.T, pre)
    add_bias_activate(pre, bias, activation, h)
    if tied:
        np.dot(h, weight, recon)
    else:
        np.dot(h, decoder_weight.T, recon)
    scale = 2.0 / (n * f)
    total = 0.0
    for j in range(f):
        gdecoder_bias[j] = 0.0
    for i in range(n):
        for j in range(f):
            r = recon[i, j] + decoder_bias[j]
            recon[i, j] = r
            d = r - x[i, j]
            total += d * d
            drecon[i, j] = d * scale
            gdecoder_bias[j] += d * scale
    # back through the decoder to the code, then through the activation
    if tied:
        np.dot(drecon, weight.T, dh)
    else:
        np.dot(drecon, decoder_weight, dh)
    hidden = h.shape[1]
    for i in range(n):
        for j in range(hidden):
            if activation == RELU:
                if h[i, j] <= 0:
                    dh[i, j] = 0.0
            elif activation == SIGMOID:
                dh[i, j] *= h[i, j] * (1.0 - h[i, j])
            elif activation == TANH:
                dh[i, j] *= 1.0 - h[i, j] * h[i, j]
    np.dot(dh.T, x_in, gweight)
    if tied:  # the weight also serves as the decoder: add that path's gradient
        np.dot(h.T, drecon, gdecoder_weight)
        for i in range(hidden):
            for j in range(f):
                gweight[i, j] += gdecoder_weight[i, j]
    else:
        np.dot(drecon.T, h, gdecoder_weight)
    if gbias.shape[0] > 0:
        for j in range(hidden):
            gbias[j] = 0.0
        for i in range(n):
            for j in range(hidden):
                gbias[j] += dh[i, j]
    return total / (n * f)


@njit(cache=True, error_model="numpy")
def _hidden_means(pre, hidden_bias, hidden, out):
    """``out = E[h | v]`` from ``pre = v @ weight.T`` (bias added in place): sigmoid or max(0, .)."""
    add_bias_activate(pre, hidden_bias, SIGMOID if hidden == SIGMOID else RELU, out)


@njit(cache=True, error_model="numpy")
def rbm_cd_step(v0, weight, hidden_bias, visible_bias, k, hidden, visible, seed, offset,
                pre, ph0, h, vk, phk, gweight, ghidden_bias, gvisible_bias, scratch):
    """One contrastive-divergence (CD-k) step of an RBM on a batch; returns the reconstruction error.

    Hidden units are binary (``hidden == SIGMOID``) or noisy rectified linear (``hidden == RELU``,
    Nair and Hinton 2010: ``max(0, a + N(0, sigmoid(a)))``); visible units are binary
    (``visible == BERNOULLI``, mean ``sigmoid``) or Gaussian with unit variance (``GAUSSIAN``,
    mean linear). The Gibbs chain samples the hidden units and uses the visible means, as
    Hinton's practical guide advises. The gradients (overwritten) are those of the negative
    log-likelihood as CD-k estimates it, ready for a minimizing optimizer::

        gweight        = (phk.T @ vk - ph0.T @ v0) / N
        ghidden_bias   = mean(phk - ph0)
        gvisible_bias  = mean(vk - v0)

    The hidden sample of Gibbs step ``t`` (from 0) at ``(i, j)`` uses counter
    ``offset + t * N * H + i * H + j``: a call consumes ``k * N * H`` counters. The returned error is
    the mean of ``(v0 - vk)**2``.

    v0, vk (N, V); weight, gweight, scratch (H, V); hidden_bias, ghidden_bias (H,), or both
    0-length for no hidden bias; visible_bias, gvisible_bias (V,); pre, ph0, h, phk (N, H).
    """
    n, nv = v0.shape
    nh = weight.shape[0]
    np.dot(v0, weight.T, pre)
    _hidden_means(pre, hidden_bias, hidden, ph0)
    means = ph0
    for t in range(k):
        base = np.uint64(offset) + np.uint64(t * n * nh)
        for i in range(n):
            for j in range(nh):
                c = base + np.uint64(i * nh + j)
                if hidden == SIGMOID:
                    h[i, j] = 1.0 if hash_uniform(seed, c) < means[i, j] else 0.0
                else:
                    a = pre[i, j]
                    v = a + math.sqrt(_sigmoid(a)) * hash_normal(seed, c)
                    h[i, j] = v if v > 0 else 0.0
        np.dot(h, weight, vk)
        for i in range(n):
            for j in range(nv):
                v = vk[i, j] + visible_bias[j]
                vk[i, j] = _sigmoid(v) if visible == BERNOULLI else v
        np.dot(vk, weight.T, pre)
        _hidden_means(pre, hidden_bias, hidden, phk)
        means = phk
    np.dot(phk.T, vk, gweight)
    np.dot(ph0.T, v0, scratch)
    inv = 1.0 / n
    for i in range(nh):
        for j in range(nv):
            gweight[i, j] = (gweight[i, j] - scratch[i, j]) * inv
    if ghidden_bias.shape[0] > 0:
        for j in range(nh):
            ghidden_bias[j] = 0.0
        for i in range(n):
            for j in range(nh):
                ghidden_bias[j] += (phk[i, j] - ph0[i, j]) * inv
    error = 0.0
    for j in range(nv):
        gvisible_bias[j] = 0.0
    for i in range(n):
        for j in range(nv):
            d = vk[i, j] - v0[i, j]
            gvisible_bias[j] += d * inv
            error += d * d
    return error / (n * nv)


@njit(cache=True, error_model="numpy")
def autoencoder_epoch(X, order, start, n_batches, corruption, noise_std, seed, counter0, tied, activation,
                      weight, bias, decoder_weight, decoder_bias, gweight, gbias, gdecoder_weight, gdecoder_bias,
                      xb, x_in, pre, h, recon, drecon, dh, optimizer, hyper, flag, params, grads, state_a,
                      state_b, step0, losses):
    """``n_batches`` autoencoder steps (:func:`autoencoder_step`), each followed by the update.

    Batch ``b`` holds rows ``order[start + b * B: start + (b + 1) * B]`` of ``X`` (B = ``len(xb)``);
    with ``corruption`` or ``noise_std`` > 0 its noise (:func:`corrupt`) uses counters from
    ``counter0 + b * noise_counters(B * F, corruption, noise_std)``.
    ``params``/``grads``/``state_a``/``state_b`` are tuples of flat views (weight, bias, decoder
    weight, decoder bias; 0-length where absent) for :func:`apply_updates`, at step
    ``step0 + b + 1``. Writes each batch's loss to ``losses[b]``; returns the number of batches
    done (fewer when a loss stops being finite, before that batch's update).
    """
    size = xb.shape[0]
    for b in range(n_batches):
        gather_rows(X, order, start + b * size, xb)
        if corruption > 0 or noise_std > 0:
            corrupt(xb.reshape(xb.size), corruption, noise_std, seed,
                    counter0 + b * noise_counters(xb.size, corruption, noise_std), x_in.reshape(x_in.size))
            source = x_in
        else:
            source = xb
        loss = autoencoder_step(xb, source, weight, bias, decoder_weight, decoder_bias, tied, activation, pre, h,
                                recon, drecon, dh, gweight, gbias, gdecoder_weight, gdecoder_bias)
        if not np.isfinite(loss):
            return b
        losses[b] = loss
        apply_updates(optimizer, params, grads, state_a, state_b, hyper, flag, step0 + b + 1)
    return n_batches


@njit(cache=True, error_model="numpy")
def rbm_epoch(X, order, start, n_batches, k, hidden, visible, seed, counter0, weight, hidden_bias, visible_bias,
              gweight, ghidden_bias, gvisible_bias, xb, pre, ph0, h, vk, phk, scratch, optimizer, hyper, flag,
              params, grads, state_a, state_b, step0, losses):
    """``n_batches`` CD-k steps (:func:`rbm_cd_step`), each followed by the update; as
    :func:`autoencoder_epoch`, with the Gibbs samples of batch ``b`` from counter
    ``counter0 + b * k * B * H`` and the parameters (weight, hidden bias, visible bias)."""
    size = xb.shape[0]
    per_batch = k * size * weight.shape[0]
    for b in range(n_batches):
        gather_rows(X, order, start + b * size, xb)
        error = rbm_cd_step(xb, weight, hidden_bias, visible_bias, k, hidden, visible, seed, counter0 + b * per_batch,
                            pre, ph0, h, vk, phk, gweight, ghidden_bias, gvisible_bias, scratch)
        if not np.isfinite(error):
            return b
        losses[b] = error
        apply_updates(optimizer, params, grads, state_a, state_b, hyper, flag, step0 + b + 1)
    return n_batches
