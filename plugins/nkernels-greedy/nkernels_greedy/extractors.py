"""The ``autoencoder`` and ``rbm`` feature extractors: scikit-learn's ``fit``/``transform`` shape.

Each learns one layer ``h = f(x @ weight.T + bias)`` (the shape of a Dense layer followed by its
activation), so extractors stack (each fitted on the previous one's output) and convert to
nkernels layers with :meth:`to_layers` (which is also how ``nk.export_onnx`` writes them inside
``nk.layers.Frozen``: :func:`export_layer_extractor`). The training steps are Numba kernels
(:mod:`nkernels_greedy.kernels`); the parameter updates use nkernels' optimizers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

import nkernels as nk
from nkernels.errors import NotFittedError
from nkernels.plugins.kernels import kernel
from nkernels.optimizers import Optimizer, get_optimizer
from nkernels.runtime.threads import blas_single_threaded
from nkernels.validation import (
    check_bool, check_choice, check_features, check_float_dtype, check_int, check_number, check_rows)

from .optimizer_state import load_optimizer, optimizer_arrays

if TYPE_CHECKING:
    from nkernels.export.onnx_export import OnnxGraph

#: activation names and their codes in the kernels
ACTIVATION_CODES = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
ACTIVATION_LAYERS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class LayerExtractor:
    """Base of the extractors: one layer ``f(x @ weight.T + bias)`` trained without labels.

    Fitted attributes: ``weight_`` (n_components, n_features), ``bias_`` (n_components,),
    ``n_features_in_``, ``params_`` and ``grads_`` (dicts of arrays by name, what the optimizer
    updates), and ``noise_seed_``, the seed of the counter-based random numbers (corruption,
    Gibbs sampling), drawn from ``seed``; the counters start at 0 and advance by what each
    mini-batch consumes.

    A run of mini-batches is one compiled call (steps and optimizer updates) when the optimizer is
    SGD, Adam or AdamW without ``clip_norm``/``max_norm``; otherwise, or with ``compiled=False``,
    each step and update is its own call. Both give the same numbers.

    Subclasses set ``_param_names`` (the constructor's arguments) and ``_slots``, and implement
    :meth:`_init_model_params`, :meth:`_batch_step`, :meth:`_fused_run` and :meth:`_reconstruct`.
    """

    _param_names: tuple[str, ...] = ()
    #: the activations this extractor can learn
    activations: tuple[str, ...] = tuple(ACTIVATION_CODES)

    def _check_common(self) -> None:
        self.n_components = check_int(self.n_components, "n_components")
        check_choice(self.activation, "activation", self.activations)
        self.epochs = check_int(self.epochs, "epochs")
        self.batch_size = check_int(self.batch_size, "batch_size")
        self.shuffle = check_bool(self.shuffle, "shuffle")
        self.compiled = check_bool(self.compiled, "compiled")
        self.dtype = check_float_dtype(self.dtype)
        if isinstance(self.optimizer, Optimizer):
            if self.lr is not None:
                raise ValueError("lr was given with an optimizer instance; set it on the optimizer")
        else:
            self._make_optimizer()  # fail on a bad name or lr now, not after the data is checked

    # -- scikit-learn's estimator protocol ----------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments (so that ``sklearn.base.clone`` and pipelines work)."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params: Any) -> "LayerExtractor":
        """Change constructor arguments (takes effect at the next ``fit``); returns self."""
        unknown = sorted(set(params) - set(self._param_names))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {unknown}; it has {list(self._param_names)}")
        for name, value in params.items():
            setattr(self, name, value)
        self._check_common()
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- training ------------------------------------------------------------------------------
    def _make_optimizer(self) -> Optimizer:
        if isinstance(self.optimizer, Optimizer):  # a fresh copy: no state carried over from another fit
            return self.optimizer.fresh()
        return get_optimizer(self.optimizer, **({} if self.lr is None else {"lr": self.lr}))

    def initialize(self, n_features: int, weight: np.ndarray | None = None,
                   bias: np.ndarray | None = None) -> "LayerExtractor":
        """Create the parameters for ``n_features`` inputs and reset the training state.

        With ``weight`` (n_components, n_features) and ``bias`` (n_components,), those arrays are
        trained in place instead of fresh ones: this is how the greedy scheme pretrains a Dense
        layer. ``weight`` given with ``bias=None`` means a layer without bias.
        """
        self._check_common()
        n_features = check_int(n_features, "n_features")
        shape = (self.n_components, n_features)
        self._rng = np.random.default_rng(self.seed)
        if weight is None:
            bound = 1.0 / np.sqrt(n_features)
            weight = self._rng.uniform(-bound, bound, shape).astype(self.dtype)
            bias = np.zeros(self.n_components, self.dtype)
        else:
            if not isinstance(weight, np.ndarray) or weight.shape != shape or weight.dtype != self.dtype \
                    or not weight.flags.c_contiguous:
                raise ValueError(f"weight must be a C-contiguous {self.dtype} array of shape {shape}")
            if bias is not None and (not isinstance(bias, np.ndarray) or bias.shape != (self.n_components,)
                                     or bias.dtype != self.dtype):
                raise ValueError(f"bias must be a {self.dtype} array of shape ({self.n_components},) or None")
        self.n_features_in_ = n_features
        self.weight_ = weight
        self.bias_ = np.zeros(0, self.dtype) if bias is None else bias
        self.params_ = {"weight": self.weight_}
        if bias is not None:
            self.params_["bias"] = self.bias_
        self._init_model_params()
        self.grads_ = {k: np.zeros_like(v) for k, v in self.params_.items()}
        if "bias" not in self.params_:
            self.grads_bias_ = np.zeros(0, self.dtype)
        self.optimizer_ = self._make_optimizer()
        self.noise_seed_ = int(self._rng.integers(2**62))
        self._counter = 0
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        return self

    def training_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What decides the rest of a training run after :meth:`initialize`, for checkpoints: the
        random generator, the noise counter and the optimizer's step count (JSON values), and the
        parameters and the optimizer's state (arrays, not copied)."""
        if not hasattr(self, "weight_"):
            raise NotFittedError(f"{type(self).__name__}: call initialize() or fit() before training_state()")
        state = {"rng": self._rng.bit_generator.state, "counter": self._counter, "steps": self.optimizer_.steps}
        return state, {**{f"param.{k}": v for k, v in self.params_.items()}, **optimizer_arrays(self.optimizer_)}

    def load_training_state(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Take back what :meth:`training_state` returned (after :meth:`initialize` with the same
        shapes), writing into the arrays in place."""
        self._rng.bit_generator.state = state["rng"]
        self._counter = int(state["counter"])
        for key, param in self.params_.items():
            param[...] = arrays[f"param.{key}"]
        load_optimizer(self.optimizer_, self.params_, state["steps"], arrays)

    def _grad_bias(self) -> np.ndarray:
        return self.grads_["bias"] if "bias" in self.grads_ else self.grads_bias_

    def _init_model_params(self) -> None:
        raise NotImplementedError

    def _batch_step(self, xb: np.ndarray) -> float:
        raise NotImplementedError

    def _check_X(self, X: Any) -> np.ndarray:
        return check_rows(X, getattr(self, "n_features_in_", None), dtype=self.dtype)

    def fit(self, X: Any, y: Any = None) -> "LayerExtractor":
        """Train for ``epochs`` passes over ``X`` (N, features) in mini-batches; ``y`` is ignored."""
        X = self._check_X_fresh(X)
        self.initialize(X.shape[1])
        self.loss_curve_ = [self.fit_epoch(X) for _ in range(self.epochs)]
        return self

    def _check_X_fresh(self, X: Any) -> np.ndarray:
        self._check_common()
        self.n_features_in_ = None
        return self._check_X(X)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, y).transform(X)

    def fit_epoch(self, X: Any, on_batch: Callable[[int, float, int], None] | None = None) -> float:
        """One pass over ``X`` in mini-batches, shuffled unless ``shuffle=False`` (after :meth:`initialize`);
        returns the mean loss (NaN or inf as soon as a batch's loss stops being finite, before its update).

        ``on_batch(batch, loss, size)`` is called after each mini-batch when given.
        """
        if not hasattr(self, "weight_"):
            raise NotFittedError(f"{type(self).__name__}: call initialize() or fit() before fit_epoch()")
        X = self._check_X(X)
        n = len(X)
        size = min(self.batch_size, n)
        full, rest = divmod(n, size)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        runs = [(b * size, 1, size) for b in range(full)] if on_batch is not None else [(0, full, size)]
        if rest:
            runs.append((full * size, 1, rest))
        total = 0.0
        with blas_single_threaded():
            for batch, (start, count, rows) in enumerate(runs):
                losses, bad = self._run(X, order, start, count, rows)
                if bad is not None:
                    return bad
                total += float(losses.sum()) * rows
                if on_batch is not None:
                    on_batch(batch, float(losses[-1]), rows)
        return total / n

    def _run(self, X, order, start, n_batches, size) -> tuple[np.ndarray, float | None]:
        """``n_batches`` steps and updates on rows ``order[start:]``: their losses, and the first
        non-finite loss (None if every one was finite)."""
        fused = self._fused_optimizer() if self.compiled else None
        if fused is not None:
            losses = np.zeros(n_batches)
            done = self._fused_run(X, order, start, n_batches, size, fused, losses)
            self.optimizer_.steps += done
            return (losses, None) if done == n_batches else (losses[:done], float("nan"))
        losses = np.zeros(n_batches)
        for b in range(n_batches):
            value = self._batch_step(X[order[start + b * size: start + (b + 1) * size]])
            if not np.isfinite(value):
                return losses[:b], float(value)
            losses[b] = value
            self.optimizer_.step(self.params_, self.grads_)
        return losses, None

    #: the parameter names in the order of the epoch kernels' tuples
    _slots: tuple[str, ...] = ()

    def _fused_optimizer(self):
        """``(code, hyper, flag, params, grads, state_a, state_b)`` for the epoch kernels, or None when
        the optimizer's update does not fit :func:`nkernels.kernels.cpu.optim.apply_updates`
        (clip_norm and max_norm run step by step)."""
        optimizer = self.optimizer_
        fused = optimizer.fused_form()
        if fused is None:
            return None
        empty = np.zeros(0, self.dtype)
        params, grads, state_a, state_b = [], [], [], []
        names = optimizer.state_names
        for name in self._slots:
            if name not in self.params_:
                params.append(empty), grads.append(empty), state_a.append(empty), state_b.append(empty)
                continue
            state = optimizer.state_for(name, self.params_[name])
            params.append(self.params_[name].reshape(-1))
            grads.append(self.grads_[name].reshape(-1))
            state_a.append(state[names[0]])
            state_b.append(state[names[1]] if len(names) > 1 else empty)
        return (*fused, tuple(params), tuple(grads), tuple(state_a), tuple(state_b))

    def _fused_run(self, X, order, start, n_batches, size, fused, losses) -> int:
        raise NotImplementedError

    def _buffer(self, n: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
        buffers = self._buffers.setdefault(n, {})
        if name not in buffers:
            buffers[name] = np.empty(shape, self.dtype)
        return buffers[name]

    # -- use -----------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """The features ``f(X @ weight.T + bias)``, (N, n_components)."""
        if not hasattr(self, "weight_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X) first")
        X = self._check_X(X)
        out = np.empty((len(X), self.n_components), self.dtype)
        with blas_single_threaded():
            kernel("dense_forward")(X, self.weight_, self.bias_, out)
            if self.activation != "identity":
                kernel(self.activation + "_forward")(out.reshape(-1), out.reshape(-1))
        return out

    def reconstruction_error(self, X: Any) -> float:
        """The mean squared error of reconstructing ``X`` from its features (deterministically)."""
        X = self._check_X(X)
        return float(np.mean((self._reconstruct(self.transform(X)) - X) ** 2))

    def _reconstruct(self, H: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_layers(self) -> list:
        """A Dense layer holding copies of the learned weights, and its activation layer if any."""
        if not hasattr(self, "weight_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X) first")
        dense = nk.layers.Dense(self.n_features_in_, self.n_components, bias=self.bias_.shape[0] > 0)
        dense.astype(self.dtype)
        dense.params["weight"][...] = self.weight_
        if self.bias_.shape[0]:
            dense.params["bias"][...] = self.bias_
        if self.activation == "identity":
            return [dense]
        return [dense, getattr(nk.layers, ACTIVATION_LAYERS[self.activation])()]


class Autoencoder(LayerExtractor):
    """A one-hidden-layer autoencoder: ``h = f(x @ weight.T + bias)``, ``x_hat = h @ D + c``.

    ``tied=True`` decodes with the encoder's own weight (``D = weight``), otherwise with a separate
    ``decoder_weight_`` (n_features, n_components). ``corruption`` > 0 trains a denoising
    autoencoder (Vincent et al. 2008): each input value is set to 0 with that probability, and
    the clean input is reconstructed; ``noise_std`` > 0 adds Gaussian noise of that standard
    deviation to the inputs (after the masking, when both are set). The noise is the kernel
    :func:`nkernels_greedy.kernels.corrupt`, which the ``autoencoder`` scheme uses too. The loss is the mean squared reconstruction error.
    ``activation`` is ``"relu"``, ``"sigmoid"``, ``"tanh"`` or ``"identity"``. ``optimizer`` is a
    name or an :class:`~nkernels.optimizers.Optimizer` (``lr`` goes with a name).

    Example::

        ae = Autoencoder(128, corruption=0.2, epochs=20, seed=0).fit(X)
        features = ae.transform(X)
    """

    _param_names = ("n_components", "activation", "tied", "corruption", "noise_std", "epochs", "batch_size",
                    "shuffle", "optimizer", "lr", "seed", "dtype", "compiled")
    _slots = ("weight", "bias", "decoder_weight", "decoder_bias")

    def __init__(self, n_components: int = 64, activation: str = "relu", tied: bool = True, corruption: float = 0.0,
                 noise_std: float = 0.0, epochs: int = 10, batch_size: int = 32, shuffle: bool = True,
                 optimizer: Any = "adam", lr: float | None = None, seed: int | None = None, dtype: Any = "float32",
                 compiled: bool = True):
        self.n_components, self.activation, self.tied, self.corruption = n_components, activation, tied, corruption
        self.noise_std = noise_std
        self.epochs, self.batch_size, self.shuffle, self.optimizer, self.lr = epochs, batch_size, shuffle, optimizer, lr
        self.seed, self.dtype, self.compiled = seed, dtype, compiled
        self._check_common()

    def _check_common(self) -> None:
        super()._check_common()
        self.tied = check_bool(self.tied, "tied")
        self.corruption = check_number(self.corruption, "corruption", low=0, high=1, high_open=True)
        self.noise_std = check_number(self.noise_std, "noise_std", low=0)

    def _init_model_params(self) -> None:
        f, h = self.n_features_in_, self.n_components
        if not self.tied:
            bound = 1.0 / np.sqrt(h)
            self.decoder_weight_ = self.params_["decoder_weight"] = \
                self._rng.uniform(-bound, bound, (f, h)).astype(self.dtype)
        self.decoder_bias_ = self.params_["decoder_bias"] = np.zeros(f, self.dtype)

    def _batch_step(self, xb):
        from .kernels import autoencoder_step, corrupt, noise_counters

        n, f = xb.shape
        h = self.n_components
        x_in = xb
        if self.corruption > 0 or self.noise_std > 0:
            x_in = self._buffer(n, "x_in", xb.shape)
            corrupt(xb.reshape(-1), self.corruption, self.noise_std, self.noise_seed_, self._counter,
                    x_in.reshape(-1))
            self._counter += noise_counters(xb.size, self.corruption, self.noise_std)
        if self.tied:
            scratch = self._buffer(n, "scratch", (h, f))
            decoder, gdecoder = scratch, scratch
        else:
            decoder, gdecoder = self.decoder_weight_, self.grads_["decoder_weight"]
        return autoencoder_step(xb, x_in, self.weight_, self.bias_, decoder, self.decoder_bias_, self.tied,
                                ACTIVATION_CODES[self.activation], self._buffer(n, "pre", (n, h)),
                                self._buffer(n, "h", (n, h)), self._buffer(n, "recon", (n, f)),
                                self._buffer(n, "drecon", (n, f)), self._buffer(n, "dh", (n, h)),
                                self.grads_["weight"], self._grad_bias(), gdecoder, self.grads_["decoder_bias"])

    def _fused_run(self, X, order, start, n_batches, size, fused, losses):
        from .kernels import autoencoder_epoch, noise_counters

        f, h = self.n_features_in_, self.n_components
        code, hyper, flag, params, grads, state_a, state_b = fused
        if self.tied:
            decoder = gdecoder = self._buffer(size, "scratch", (h, f))
        else:
            decoder, gdecoder = self.decoder_weight_, self.grads_["decoder_weight"]
        done = autoencoder_epoch(X, order, start, n_batches, self.corruption, self.noise_std, self.noise_seed_,
                                 self._counter, self.tied, ACTIVATION_CODES[self.activation], self.weight_, self.bias_,
                                 decoder,
                                 self.decoder_bias_, self.grads_["weight"], self._grad_bias(), gdecoder,
                                 self.grads_["decoder_bias"], self._buffer(size, "xb", (size, f)),
                                 self._buffer(size, "x_in", (size, f)), self._buffer(size, "pre", (size, h)),
                                 self._buffer(size, "h", (size, h)), self._buffer(size, "recon", (size, f)),
                                 self._buffer(size, "drecon", (size, f)), self._buffer(size, "dh", (size, h)),
                                 code, hyper, flag, params, grads, state_a, state_b, self.optimizer_.steps, losses)
        self._counter += done * noise_counters(size * f, self.corruption, self.noise_std)
        return done

    def inverse_transform(self, H: Any) -> np.ndarray:
        """The decoder's reconstruction of inputs from features ``H`` (N, n_components)."""
        if not hasattr(self, "weight_"):
            raise NotFittedError("Autoencoder is not fitted yet; call fit(X) first")
        H = check_features(H, "H", dtype=self.dtype)
        if H.shape[1:] != (self.n_components,):
            raise ValueError(f"H must have shape (N, {self.n_components}), got {H.shape}")
        return self._reconstruct(H)

    def _reconstruct(self, H):
        decoder = self.weight_.T if self.tied else self.decoder_weight_
        out = np.empty((len(H), self.n_features_in_), self.dtype)
        with blas_single_threaded():
            kernel("dense_forward")(H, np.ascontiguousarray(decoder), self.decoder_bias_, out)
        return out


class RBM(LayerExtractor):
    """A restricted Boltzmann machine trained by contrastive divergence (CD-k, Hinton 2002).

    ``activation="sigmoid"`` gives binary hidden units; ``"relu"`` noisy rectified linear ones
    (Nair and Hinton 2010). ``visible`` is ``"bernoulli"`` (inputs in [0, 1]), ``"gaussian"``
    (unit variance: standardize the inputs) or ``"auto"``, which picks bernoulli when every
    input of the first epoch lies in [0, 1]. ``k`` is the number of Gibbs steps. The features
    are the hidden units' means, ``f(x @ weight.T + bias)``; the loss reported per epoch is the
    mean squared reconstruction error of the chain's last visible means.

    Example::

        rbm = RBM(128, k=1, epochs=20, seed=0).fit(X)
        features = rbm.transform(X)
    """

    _param_names = ("n_components", "activation", "visible", "k", "epochs", "batch_size", "shuffle", "optimizer", "lr",
                    "seed", "dtype", "compiled")
    _slots = ("weight", "bias", "visible_bias")
    activations = ("sigmoid", "relu")

    def __init__(self, n_components: int = 64, activation: str = "sigmoid", visible: str = "auto", k: int = 1,
                 epochs: int = 10, batch_size: int = 32, shuffle: bool = True, optimizer: Any = "adam",
                 lr: float | None = None, seed: int | None = None, dtype: Any = "float32", compiled: bool = True):
        self.n_components, self.activation, self.visible, self.k = n_components, activation, visible, k
        self.epochs, self.batch_size, self.shuffle, self.optimizer, self.lr = epochs, batch_size, shuffle, optimizer, lr
        self.seed, self.dtype, self.compiled = seed, dtype, compiled
        self._check_common()

    def _check_common(self) -> None:
        super()._check_common()
        check_choice(self.visible, "visible", ("auto", "bernoulli", "gaussian"))
        self.k = check_int(self.k, "k")

    def _init_model_params(self) -> None:
        self.visible_bias_ = self.params_["visible_bias"] = np.zeros(self.n_features_in_, self.dtype)
        self.visible_ = None if self.visible == "auto" else self.visible

    def fit_epoch(self, X, on_batch=None):
        if getattr(self, "visible_", "unset") is None:  # "auto", decided on the first data seen
            X = self._check_X(X)
            self.visible_ = "bernoulli" if X.min() >= 0 and X.max() <= 1 else "gaussian"
        return super().fit_epoch(X, on_batch)

    def training_state(self):
        state, arrays = super().training_state()
        return {**state, "visible": self.visible_}, arrays

    def load_training_state(self, state, arrays):
        super().load_training_state(state, arrays)
        self.visible_ = state["visible"]

    def _reconstruct(self, H):
        """The visible means given hidden values ``H``: one mean-field step down."""
        out = np.empty((len(H), self.n_features_in_), self.dtype)
        with blas_single_threaded():
            kernel("dense_forward")(H, np.ascontiguousarray(self.weight_.T), self.visible_bias_, out)
            if (self.visible_ or self.visible) == "bernoulli":
                kernel("sigmoid_forward")(out.reshape(-1), out.reshape(-1))
        return out

    def _fused_run(self, X, order, start, n_batches, size, fused, losses):
        from .kernels import BERNOULLI, GAUSSIAN, rbm_epoch

        f, h = self.n_features_in_, self.n_components
        code, hyper, flag, params, grads, state_a, state_b = fused
        done = rbm_epoch(X, order, start, n_batches, self.k, ACTIVATION_CODES[self.activation],
                         BERNOULLI if self.visible_ == "bernoulli" else GAUSSIAN, self.noise_seed_, self._counter,
                         self.weight_, self.bias_, self.visible_bias_, self.grads_["weight"], self._grad_bias(),
                         self.grads_["visible_bias"], self._buffer(size, "xb", (size, f)),
                         self._buffer(size, "pre", (size, h)), self._buffer(size, "ph0", (size, h)),
                         self._buffer(size, "h", (size, h)), self._buffer(size, "vk", (size, f)),
                         self._buffer(size, "phk", (size, h)), self._buffer(size, "scratch", (h, f)),
                         code, hyper, flag, params, grads, state_a, state_b, self.optimizer_.steps, losses)
        self._counter += done * self.k * size * h
        return done

    def _batch_step(self, xb):
        from .kernels import BERNOULLI, GAUSSIAN, rbm_cd_step

        n, f = xb.shape
        h = self.n_components
        error = rbm_cd_step(xb, self.weight_, self.bias_, self.visible_bias_, self.k, ACTIVATION_CODES[self.activation],
                            BERNOULLI if self.visible_ == "bernoulli" else GAUSSIAN, self.noise_seed_, self._counter,
                            self._buffer(n, "pre", (n, h)), self._buffer(n, "ph0", (n, h)),
                            self._buffer(n, "h", (n, h)), self._buffer(n, "vk", (n, f)),
                            self._buffer(n, "phk", (n, h)), self.grads_["weight"], self._grad_bias(),
                            self.grads_["visible_bias"], self._buffer(n, "scratch", (h, f)))
        self._counter += self.k * n * h
        return error


def export_layer_extractor(extractor: LayerExtractor, graph: OnnxGraph, x: str, input_shape: tuple) -> str:
    """The ONNX exporter of the ``autoencoder`` and ``rbm`` extractors (registered by class, used by
    ``nk.export_onnx`` for ``nk.layers.Frozen(extractor)``): their ``transform``,
    ``f(x @ weight.T + bias)``, as the Dense and activation layers of :meth:`LayerExtractor.to_layers`,
    written by those layers' own exporters."""
    layers = nk.Sequential(extractor.to_layers())
    return graph.export(layers, x, input_shape, scope=graph.fresh(type(extractor).__name__.lower()) + "/")


EXTRACTORS = {"autoencoder": Autoencoder, "rbm": RBM}
#: the ONNX exporters of the extractors, by class
EXPORTERS = {Autoencoder: export_layer_extractor, RBM: export_layer_extractor}
