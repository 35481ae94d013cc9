"""JAX (CPU, ``jax.jit``) as a second peer of nkernels' speed comparisons (see :mod:`nkernels.cli.bench`).

Each benchmark case is rebuilt in ``jax.numpy`` from the nkernels model's own layers, with
PyTorch's semantics: Dense ``x @ W.T + b``; Conv1D NCL/OIL and Conv2D NCHW/OIHW with zero padding
(``lax.conv_general_dilated``); max pooling, 1-D and 2-D (``lax.reduce_window``); Flatten in C, H, W order;
LSTM (gates i, f, g, o) and GRU (gates r, z, n, with ``n = tanh(W_in x + b_in + r * (W_hn h +
b_hn))``), both biases, zero initial state, run by ``lax.scan`` after one input projection for all
steps. The loss is the mean softmax cross-entropy and the optimizer Adam written in
``jax.numpy`` with PyTorch's update (no optax or flax). One ``jax.jit`` step
``(params, state, step, x, y) -> (params, state, loss)`` donates the parameters and the state.
:func:`jax_loss` and :func:`jax_adam_steps` take an nkernels model's ``params``, so a test can
check that the twin is the same model.

JAX is optional (``pip install "jax[cpu]"``); it is imported inside the functions, which raise
ImportError without it, as :func:`nkernels.cli.bench.speedups` expects of a missing peer.

Threads: XLA's CPU client has no supported setting for its thread count. It sizes its thread
pool from the CPUs the process may run on (its affinity mask, ``sched_getaffinity``), which is
what JAX's maintainers give as the way to limit it (jax-ml/jax#1539); ``taskset -c 0 python ...``
(or ``os.sched_setaffinity`` before JAX's first computation) pins it. The ``XLA_FLAGS``
often suggested do not do it: ``--xla_cpu_multi_thread_eigen=false`` only makes XLA's calls
into Eigen (matmul, convolution) single-threaded, and ``intra_op_parallelism_threads`` is no
XLA flag at all (jaxlib 0.10.2 lists no such flag in ``XLA_FLAGS=--help``; jax-ml/jax#16215
reports many threads despite both; an unknown flag such as ``--intra_op_parallelism_threads=1``
aborts the process). Nothing here sets any of them: on a 2-core machine XLA's compute pool is
sized for the 2 cores, the thread count nkernels and PyTorch get in :mod:`nkernels.cli.bench` (the
process holds more threads, which XLA's runtime and compiler use, not for the computation).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import layers as L
from .bench import BenchData, Case, data, median_seconds

#: a JAX layer: (params, x) -> y, params being the whole model's dict of arrays
JaxLayer = Callable[[dict[str, Any], Any], Any]


def _jax() -> Any:
    """The ``jax`` module; an ImportError that says how to install it when it is missing."""
    try:
        import jax
    except ImportError as exc:
        raise ImportError("JAX is not installed: pip install 'jax[cpu]'") from exc
    return jax


def _dense(i: str, layer: Any) -> JaxLayer:
    def apply(p, x):
        y = x @ p[f"{i}.weight"].T
        return y + p[f"{i}.bias"] if layer.use_bias else y
    return apply


def _conv(i: str, layer: Any) -> JaxLayer:
    """Conv1D (NCL/OIL) or Conv2D (NCHW/OIHW), by the layer's number of spatial dimensions."""
    from jax import lax

    padding = [(p, p) for p in layer.paddings]
    spatial = "HW"[-layer.spatial:]
    numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    bias_shape = (1, -1) + (1,) * layer.spatial

    def apply(p, x):
        y = lax.conv_general_dilated(x, p[f"{i}.weight"], window_strides=layer.strides, padding=padding,
                                     dimension_numbers=numbers)
        return y + p[f"{i}.bias"].reshape(bias_shape) if layer.use_bias else y
    return apply


def _max_pool(i: str, layer: Any) -> JaxLayer:
    """MaxPool1D or MaxPool2D, by the layer's number of spatial dimensions."""
    from jax import lax
    import jax.numpy as jnp

    window = (1, 1) + (layer.kernel_size,) * layer.spatial
    strides = (1, 1) + (layer.stride,) * layer.spatial

    def apply(p, x):
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
    return apply


def _elementwise(fn_name: str) -> Callable[[str, Any], JaxLayer]:
    def build(i: str, layer: Any) -> JaxLayer:
        import jax
        import jax.numpy as jnp

        fn = {"relu": lambda x: jnp.maximum(x, 0), "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
              "gelu": lambda x: jax.nn.gelu(x, approximate=False)}[fn_name]
        return lambda p, x: fn(x)
    return build


def _flatten(i: str, layer: Any) -> JaxLayer:
    return lambda p, x: x.reshape(x.shape[0], -1)


def _lstm_cell(h_size: int) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    import jax
    import jax.numpy as jnp

    def cell(carry, gates_x, hidden_proj):
        h, c = carry
        gates = gates_x + hidden_proj(h)
        i, f, g, o = (gates[:, k * h_size:(k + 1) * h_size] for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    return cell


def _gru_cell(h_size: int) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    import jax
    import jax.numpy as jnp

    def cell(h, gates_x, hidden_proj):
        gates_h = hidden_proj(h)
        xr, xz, xn = (gates_x[:, k * h_size:(k + 1) * h_size] for k in range(3))
        hr, hz, hn = (gates_h[:, k * h_size:(k + 1) * h_size] for k in range(3))
        r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)  # b_hn sits inside hn, so it is scaled by r as in PyTorch
        h = (1 - z) * n + z * h
        return h, h
    return cell


def _recurrent(i: str, layer: Any) -> JaxLayer:
    from jax import lax
    import jax.numpy as jnp

    h_size, lstm = layer.hidden_size, isinstance(layer, L.LSTM)
    cell = _lstm_cell(h_size) if lstm else _gru_cell(h_size)

    def apply(p, x):
        n = x.shape[0]
        # one projection of every step's input (a single GEMM), time-major for the scan
        gates_x = jnp.swapaxes(x @ p[f"{i}.weight_ih"].T + p[f"{i}.bias_ih"], 0, 1)
        w_hh, b_hh = p[f"{i}.weight_hh"].T, p[f"{i}.bias_hh"]
        h0 = jnp.zeros((n, h_size), x.dtype)
        init = (h0, h0) if lstm else h0
        _, hs = lax.scan(lambda carry, g: cell(carry, g, lambda h: h @ w_hh + b_hh), init, gates_x)
        return jnp.swapaxes(hs, 0, 1) if layer.return_sequences else hs[-1]
    return apply


def _layer_norm(i: str, layer: Any) -> JaxLayer:
    import jax.numpy as jnp

    axes = tuple(range(-len(layer.normalized_shape), 0))

    def apply(p, x):
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mean) / jnp.sqrt(var + layer.eps)
        if layer.elementwise_affine:
            y = y * p[f"{i}.weight"]
        return y + p[f"{i}.bias"] if layer.use_bias else y
    return apply


def _batch_norm2d(i: str, layer: Any) -> JaxLayer:
    """Training mode (what a training step computes): the batch's mean and biased variance per channel.
    The running statistics do not enter the loss, so the twin does not keep them."""
    import jax.numpy as jnp

    def apply(p, x):
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        var = ((x - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
        y = (x - mean) / jnp.sqrt(var + layer.eps)
        return y * p[f"{i}.weight"][None, :, None, None] + p[f"{i}.bias"][None, :, None, None]
    return apply


def _attention(i: str, layer: Any) -> JaxLayer:
    import jax
    import jax.numpy as jnp

    if layer.dropout:
        raise TypeError(f"{layer!r}: the JAX twin computes attention without dropout")
    heads, width = layer.num_heads, layer.embed_dim
    head_dim = width // heads

    def apply(p, x):
        n, t, _ = x.shape
        qkv = x @ p[f"{i}.in_proj_weight"].T
        if layer.use_bias:
            qkv = qkv + p[f"{i}.in_proj_bias"]
        q, k, v = (qkv[..., j * width:(j + 1) * width].reshape(n, t, heads, head_dim).transpose(0, 2, 1, 3)
                   for j in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        if layer.causal:
            scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
        out = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(n, t, width)
        out = out @ p[f"{i}.out_proj_weight"].T
        return out + p[f"{i}.out_proj_bias"] if layer.use_bias else out
    return apply


def _positional_embedding(i: str, layer: Any) -> JaxLayer:
    return lambda p, x: x + p[f"{i}.weight"][:x.shape[1]]


def _global_avg_pool(axes: tuple[int, ...]) -> Callable[[str, Any], JaxLayer]:
    return lambda i, layer: (lambda p, x: x.mean(axis=axes))


def _residual(i: str, layer: Any) -> JaxLayer:
    body = _chain(layer.body, f"{i}.body.")
    shortcut = None if layer.shortcut is None else _chain(layer.shortcut, f"{i}.shortcut.")

    def apply(p, x):
        return body(p, x) + (x if shortcut is None else shortcut(p, x))
    return apply


#: nkernels layer type -> builder of its JAX twin (exact types: a subclass may compute something else)
_BUILDERS: dict[type, Callable[[str, Any], JaxLayer]] = {
    L.Dense: _dense, L.Conv1D: _conv, L.Conv2D: _conv, L.MaxPool1D: _max_pool, L.MaxPool2D: _max_pool,
    L.Flatten: _flatten,
    L.ReLU: _elementwise("relu"), L.Sigmoid: _elementwise("sigmoid"), L.Tanh: _elementwise("tanh"),
    L.LSTM: _recurrent, L.GRU: _recurrent, L.GELU: _elementwise("gelu"), L.LayerNorm: _layer_norm,
    L.BatchNorm2D: _batch_norm2d, L.MultiHeadAttention: _attention, L.PositionalEmbedding: _positional_embedding,
    L.GlobalAvgPool1D: _global_avg_pool((1,)), L.GlobalAvgPool2D: _global_avg_pool((2, 3)), L.Residual: _residual,
}


def _chain(layers: Any, prefix: str) -> JaxLayer:
    """The JAX twin of a list of nkernels layers whose parameters are named ``f"{prefix}{index}.<name>"``."""
    applies = []
    for j, layer in enumerate(layers):
        builder = _BUILDERS.get(type(layer))
        if builder is None:
            raise TypeError(f"layer {prefix}{j} ({type(layer).__name__}) has no JAX twin; "
                            f"supported: {', '.join(sorted(t.__name__ for t in _BUILDERS))}")
        applies.append(builder(f"{prefix}{j}", layer))

    def forward(params, x):
        for apply in applies:
            x = apply(params, x)
        return x
    return forward


def _forward(case: Case) -> Callable[[dict[str, Any], Any], Any]:
    """The JAX forward pass of ``case``'s model, built from its nkernels layers."""
    try:
        return _chain(case.build().layers, "")
    except TypeError as exc:
        raise TypeError(f"case {case.name!r}: {exc}") from None


def _loss_fn(case: Case) -> Callable[[dict[str, Any], Any, Any], Any]:
    """(params, x, labels) -> the mean softmax cross-entropy of ``case``'s JAX model."""
    import jax
    import jax.numpy as jnp

    forward = _forward(case)

    def loss(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    return loss


def _train_step(case: Case, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                eps: float = 1e-8) -> Callable[..., Any]:
    """The jitted ``(params, (m, v), step, x, y) -> (params, (m, v), loss)``: one Adam step with
    PyTorch's update ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, where ``step``
    is t, counted from 1. Parameters and state are donated (updated in place by XLA)."""
    jax = _jax()
    import jax.numpy as jnp

    value_and_grad = jax.value_and_grad(_loss_fn(case))
    b1, b2 = betas
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def step_fn(params, state, step, x, y):
        loss, grads = value_and_grad(params, x, y)
        m, v = state
        t = jnp.asarray(step, loss.dtype)
        # 1 - b^t as -expm1(t log b): exact to the dtype's precision, where 1 - 0.999**t in float32 is not
        correction1, correction2 = -jnp.expm1(t * log_b1), -jnp.expm1(t * log_b2)
        m = {k: b1 * m[k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * v[k] + (1 - b2) * g * g for k, g in grads.items()}
        step_size, inv_root2 = lr / correction1, 1 / jnp.sqrt(correction2)
        params = {k: p - step_size * m[k] / (jnp.sqrt(v[k]) * inv_root2 + eps) for k, p in params.items()}
        return params, (m, v), loss

    return jax.jit(step_fn, donate_argnums=(0, 1))


def _checked(case: Case, params: dict[str, Any], X: Any, y: Any) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                                           np.ndarray]:
    """``params``, ``X`` and ``y`` as NumPy arrays checked against ``case``'s model; ValueError/TypeError if not."""
    expected = case.build().params
    if not isinstance(params, dict) or set(params) != set(expected):
        names = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"params of case {case.name!r} must be named {sorted(expected)}, got {names}")
    arrays = {k: np.asarray(v) for k, v in params.items()}
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
        raise TypeError(f"params must all be float32 or all float64, got {sorted(map(str, dtypes))}")
    for k, a in arrays.items():
        if a.shape != expected[k].shape:
            raise ValueError(f"parameter {k} of case {case.name!r} has shape {expected[k].shape}, got {a.shape}")
    dtype = next(iter(dtypes))
    X = np.asarray(X)
    if X.dtype.kind != "f" or X.ndim != len(case.sample_shape) + 1 or X.shape[1:] != case.sample_shape \
            or len(X) == 0:
        raise ValueError(f"X of case {case.name!r} must be a non-empty float array of shape "
                         f"(N,) + {case.sample_shape}, got {X.dtype} {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X holds NaN or infinite values")
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (len(X),):
        raise ValueError(f"y must be {len(X)} integer class labels (shape ({len(X)},)), got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= case.n_classes:
        raise ValueError(f"labels must lie in [0, {case.n_classes - 1}], got values from {y.min()} to {y.max()}")
    return arrays, X.astype(dtype), y.astype(np.int32)


def jax_loss(case: Case, params: dict[str, Any], X: Any, y: Any) -> float:
    """The mean softmax cross-entropy of ``case``'s JAX model with ``params`` (an nkernels model's
    ``params``: names ``"<layer>.<name>"``, PyTorch layouts) on ``X`` (shaped ``(N,) + case.sample_shape``)
    and labels ``y``. Computes in the parameters' dtype (float64 runs under ``jax.enable_x64``)."""
    jax = _jax()
    arrays, X, y = _checked(case, params, X, y)
    with jax.enable_x64(X.dtype == np.float64):
        return float(jax.jit(_loss_fn(case))(arrays, X, y))


def jax_adam_steps(case: Case, params: dict[str, Any], X: Any, y: Any, n_steps: int = 1) -> dict[str, np.ndarray]:
    """The parameters after ``n_steps`` steps of the JAX train step that :func:`jax_step` times
    (Adam, lr 1e-3, fresh state), each on the whole of ``X``, ``y``; ``params`` as in :func:`jax_loss`,
    which is left unchanged."""
    jax = _jax()
    import jax.numpy as jnp

    arrays, X, y = _checked(case, params, X, y)
    with jax.enable_x64(X.dtype == np.float64):
        step = _train_step(case)
        p = {k: jnp.array(a) for k, a in arrays.items()}
        state = ({k: jnp.zeros_like(a) for k, a in p.items()}, {k: jnp.zeros_like(a) for k, a in p.items()})
        for t in range(1, n_steps + 1):
            p, state, _ = step(p, state, t, X, y)
        return {k: np.asarray(a) for k, a in p.items()}


def jax_step(case: Case, n_steps: int = 20, repeat: int = 15, source: BenchData | None = None) -> float:
    """Seconds per training step of JAX (``jax.jit``, CPU, float32, Adam) on ``case``: the same
    initial weights, data (random, or ``source``'s) and batch size as
    :func:`nkernels.cli.bench.nkernels_step`, batches placed on the device beforehand, each timed run
    ending with ``jax.block_until_ready``; compilation and warm-up are not timed. Raises ImportError
    when JAX is not installed."""
    jax = _jax()
    import jax.numpy as jnp

    X, y = data(case, n_steps, source=source)
    step = _train_step(case)
    batches = [(jax.device_put(X[i:i + case.batch_size]), jax.device_put(y[i:i + case.batch_size].astype(np.int32)))
               for i in range(0, len(X), case.batch_size)]
    params = {k: jnp.array(v) for k, v in case.build().params.items()}
    state = ({k: jnp.zeros_like(a) for k, a in params.items()}, {k: jnp.zeros_like(a) for k, a in params.items()})
    t = 0  # Adam's step count goes on across runs (a Python int: traced, so no recompilation)

    def run() -> None:
        nonlocal params, state, t
        for xb, yb in batches:
            t += 1
            params, state, loss = step(params, state, t, xb, yb)
        jax.block_until_ready((params, state, loss))

    return median_seconds(run, repeat, n_steps)
