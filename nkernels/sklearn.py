"""scikit-learn estimators: :class:`NKClassifier`, :class:`NKRegressor` and :class:`NKTransformer`.

They pass scikit-learn's ``check_estimator``, so they work in ``Pipeline``, ``GridSearchCV`` and
``cross_val_score``, clone, and pickle with joblib::

    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from nkernels.sklearn import NKClassifier, NKTransformer

    pipe = make_pipeline(NKTransformer("kmeans", n_clusters=100), NKClassifier(epochs=20))
    search = GridSearchCV(pipe, {"nkclassifier__lr": [1e-3, 3e-3]}, cv=3).fit(X, y)

The classifier and the regressor train an nkernels model with ``nk.train``. ``model`` is

- a preset name (``"mlp"``, ``"cnn"``, ``"lstm"``; ``model_options`` go to the preset, e.g.
  ``{"hidden": (64,)}``), sized from the data: inputs from ``input_shape`` (or the number of
  features), outputs from the number of classes or targets;
- a layer spec: a :meth:`nkernels.Sequential.get_config` dict (``{"layers": [...]}``) or its list
  of layers, ``[{"type": "dense", "config": {"in_features": 64, "out_features": 10}}, ...]``.
  Inside a spec the strings ``"@in"`` and ``"@out"`` stand for the number of input features
  (the product of ``input_shape``) and of outputs, so one spec fits any data set;
- a :class:`~nkernels.Sequential`: ``fit`` trains a copy (:meth:`~nkernels.Sequential.copy`)
  whose trainable parameters are drawn afresh from ``random_state`` and leaves the given model
  alone; its :class:`~nkernels.layers.Frozen` layers keep their fitted extractors.

Rows of ``X`` are reshaped to ``input_shape`` before they reach the model, e.g. ``(1, 8, 8)``
for the ``cnn`` preset or ``(8, 8)`` for ``lstm`` on the 64 pixels of digits.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6
    def validate_data(estimator: Any, /, X: Any = "no_validation", y: Any = "no_validation",
                      **kwargs: Any) -> Any:
        """``estimator._validate_data`` under its newer name."""
        return estimator._validate_data(X, y, **kwargs)

__all__ = ["NKClassifier", "NKRegressor", "NKTransformer", "build_model"]

#: the placeholders a layer spec may use for the data's sizes
IN_PLACEHOLDER, OUT_PLACEHOLDER = "@in", "@out"
_FLOAT_DTYPES = (np.float32, np.float64)


def _seed(random_state: Any) -> int | None:
    """An integer seed for nkernels from a scikit-learn ``random_state`` (None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _substitute(value: Any, sizes: dict[str, int]) -> Any:
    """``value`` with every ``"@in"``/``"@out"`` string replaced by its size, through lists and dicts."""
    if isinstance(value, str) and value in sizes:
        return sizes[value]
    if isinstance(value, dict):
        return {k: _substitute(v, sizes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, sizes) for v in value)
    return value


def build_model(model: Any, input_shape: tuple[int, ...], n_outputs: int, seed: int | None = None,
                model_options: dict[str, Any] | None = None) -> Any:
    """A fresh :class:`~nkernels.Sequential` from a preset name, a layer spec or a Sequential.

    ``input_shape`` is the shape of one sample (no batch axis) and ``n_outputs`` the width of
    the output; ``seed`` draws the initial weights. A Sequential is copied with
    :meth:`~nkernels.Sequential.copy` (so Frozen layers keep their fitted extractors) and its
    parameters drawn afresh. A ValueError says what does not fit.
    """
    from .cli import presets
    from .model import Sequential

    options = dict(model_options or {})
    if isinstance(model, str):
        return presets.build(model, input_shape, n_outputs, seed=seed, **options)
    if options:
        raise ValueError("model_options apply only to a preset model ('mlp', 'cnn', 'lstm')")
    if isinstance(model, Sequential):
        net = model.copy()
    elif isinstance(model, (dict, list, tuple)):
        config = model if isinstance(model, dict) else {"layers": list(model)}
        sizes = {IN_PLACEHOLDER: int(np.prod(input_shape)), OUT_PLACEHOLDER: int(n_outputs)}
        net = Sequential.from_config(_substitute(config, sizes))
    else:
        raise TypeError(f"model must be a preset name, a layer spec (a dict with 'layers' or a list of layer "
                        f"dicts) or an nkernels Sequential, got {type(model).__name__}")
    net.reset_parameters(seed)
    try:  # one sample through the model: a ValueError names the layer that does not fit
        out_shape = net.forward(np.zeros((1,) + tuple(input_shape), net.dtype)).shape
    except ValueError as exc:
        raise ValueError(f"samples of shape {tuple(input_shape)} do not fit the model: {exc}") from None
    if tuple(out_shape) != (1, n_outputs):
        raise ValueError(f"the model's output for one sample has shape {tuple(out_shape[1:])}, but this data "
                         f"needs ({n_outputs},); make the last layer output {n_outputs} values (or use '@out')")
    return net


class _NKModel(BaseEstimator):
    """What the classifier and the regressor share: parameters, model building, training, prediction."""

    def __init__(self, model: Any = "mlp", scheme: Any = "backprop", epochs: int = 30, batch_size: int = 32,
                 lr: float | None = None, scheme_options: dict[str, Any] | None = None,
                 model_options: dict[str, Any] | None = None, input_shape: tuple[int, ...] | None = None,
                 random_state: Any = None):
        self.model = model
        self.scheme = scheme
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.scheme_options = scheme_options
        self.model_options = model_options
        self.input_shape = input_shape
        self.random_state = random_state

    def _sample_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(s) for s in self.input_shape)
        if int(np.prod(shape)) != n_features:
            raise ValueError(f"input_shape {shape} holds {int(np.prod(shape))} values but X has {n_features} "
                             f"features per row")
        return shape

    def _options(self) -> dict[str, Any]:
        options = dict(self.scheme_options or {})
        if self.lr is not None:
            if "lr" in options:
                raise ValueError("the learning rate is given twice, as lr and in scheme_options; give one")
            options["lr"] = self.lr
        if isinstance(self.model, str) and self.scheme == "backprop":  # a preset's learning rate and schedule
            from .cli.presets import TRAINING_DEFAULTS, training_options

            options.update(training_options(TRAINING_DEFAULTS.get(self.model, {}), options))
        return options

    def _fit_model(self, X: np.ndarray, targets: np.ndarray, n_outputs: int) -> None:
        """Build ``model_`` for ``X`` and train it on ``targets`` (labels or values)."""
        from .training import train

        rng = check_random_state(_seed(self.random_state))
        init_seed, train_seed = (int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2))
        shape = self._sample_shape(X.shape[1])
        model = build_model(self.model, shape, n_outputs, seed=init_seed, model_options=self.model_options)
        X = np.ascontiguousarray(X.reshape((len(X),) + shape), dtype=model.dtype)
        history = train(model, X, targets, scheme=self.scheme, epochs=self.epochs, batch_size=self.batch_size,
                        seed=train_seed, **self._options())
        self.model_ = model
        self.history_ = {k: list(v) for k, v in dict(history).items()}
        self.loss_curve_ = list(self.history_.get("loss", []))
        self.n_iter_ = len(self.loss_curve_)

    def _outputs(self, X: Any) -> np.ndarray:
        """The model's outputs for ``X`` (after the checks), computed in float64.

        A float32 GEMM may round a row differently depending on where it sits in the batch, so
        float32 outputs would change in the 7th digit with the order and the company of the rows.
        A float64 copy of the trained model answers the same for a row wherever it is, as
        scikit-learn expects of ``predict``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)
        shape = self._sample_shape(X.shape[1])
        model = self.model_ if self.model_.dtype == np.float64 else self.model_.copy().astype(np.float64)
        return model.predict(np.ascontiguousarray(X.reshape((len(X),) + shape), dtype=np.float64))



class NKClassifier(ClassifierMixin, _NKModel):
    """An nkernels model trained with softmax cross-entropy, as a scikit-learn classifier.

    Parameters
    ----------
    model : str, dict, list or Sequential, default "mlp"
        A preset, a layer spec or a model to copy (see :mod:`nkernels.sklearn`).
    scheme : str, default "backprop"
        A registered training scheme (``nk.registry.schemes``).
    epochs, batch_size : int
        Passed to the scheme's ``fit``.
    lr : float or None
        The learning rate; None takes the preset's tuned rate with backprop (mlp 1e-3, cnn 2e-3,
        lstm 1e-2) and the scheme's own default otherwise.
    scheme_options : dict or None
        More arguments of the scheme's constructor (``optimizer``, ``weight_decay``, ``schedule`` ...).
    model_options : dict or None
        Arguments of the preset builder (``hidden`` for mlp, ``channels`` for cnn ...).
    input_shape : tuple or None
        The shape each row of X is reshaped to before the model sees it.
    random_state : int, RandomState or None
        Seeds the initial weights and the shuffling; an int gives the same model every time.

    Attributes: ``classes_``, ``model_`` (the trained Sequential), ``history_`` (per-epoch
    metrics), ``loss_curve_``, ``n_iter_`` (epochs run), ``n_features_in_``.
    """

    def fit(self, X: Any, y: Any) -> "NKClassifier":
        """Train on ``X`` (n_samples, n_features) and class labels ``y`` of any kind; returns self."""
        X, y = validate_data(self, X, y, dtype=_FLOAT_DTYPES)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"NKClassifier needs samples of at least 2 classes in y; got only one class "
                             f"({self.classes_[0]!r})")
        self._fit_model(X, labels.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The probability of each class (columns in the order of ``classes_``): the softmax of the outputs."""
        logits = self._outputs(X)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of :meth:`predict_proba`, computed stably."""
        logits = self._outputs(X)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class of each row of ``X``."""
        outputs = self._outputs(X)
        return self.classes_[np.argmax(outputs, axis=1)]


class NKRegressor(RegressorMixin, _NKModel):
    """An nkernels model trained with mean squared error, as a scikit-learn regressor.

    Takes the parameters of :class:`NKClassifier`, and ``scale_targets``: with True (the
    default) the model learns each target standardized (zero mean, unit variance over the
    training rows) and :meth:`predict` maps its outputs back, which lets the default learning
    rate and epochs fit targets of any scale; ``loss_curve_`` is then in standardized units.
    ``y`` may be 1-D (one target, predictions of shape (n,)) or 2-D (several targets).

    Attributes: ``model_``, ``history_``, ``loss_curve_``, ``n_iter_``, ``n_features_in_``,
    ``target_mean_`` and ``target_scale_`` (0 and 1 without ``scale_targets``).
    """

    def __init__(self, model: Any = "mlp", scheme: Any = "backprop", epochs: int = 30, batch_size: int = 32,
                 lr: float | None = None, scheme_options: dict[str, Any] | None = None,
                 model_options: dict[str, Any] | None = None, input_shape: tuple[int, ...] | None = None,
                 scale_targets: bool = True, random_state: Any = None):
        super().__init__(model=model, scheme=scheme, epochs=epochs, batch_size=batch_size, lr=lr,
                         scheme_options=scheme_options, model_options=model_options, input_shape=input_shape,
                         random_state=random_state)
        self.scale_targets = scale_targets

    def fit(self, X: Any, y: Any) -> "NKRegressor":
        """Train on ``X`` (n_samples, n_features) and numeric targets ``y`` (n,) or (n, k); returns self."""
        X, y = validate_data(self, X, y, dtype=_FLOAT_DTYPES, y_numeric=True, multi_output=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_ndim = y.ndim
        targets = y.reshape(len(y), -1)
        if self.scale_targets:
            std = targets.std(axis=0)
            self.target_mean_, self.target_scale_ = targets.mean(axis=0), np.where(std > 0, std, 1.0)
        else:
            self.target_mean_, self.target_scale_ = np.zeros(targets.shape[1]), np.ones(targets.shape[1])
        self._fit_model(X, (targets - self.target_mean_) / self.target_scale_, targets.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted targets: shape (n,) when fitted on 1-D ``y``, else (n, k)."""
        out = self._outputs(X) * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class NKTransformer(TransformerMixin, BaseEstimator):
    """Any registered nkernels feature extractor (``nk.registry.extractors``) as a scikit-learn transformer.

    ``NKTransformer("kmeans", n_clusters=200)`` builds ``nk.registry.extractors["kmeans"](n_clusters=200)``
    at ``fit``. Every keyword besides ``extractor``, ``input_shape`` and ``random_state`` is an
    option of the extractor: ``get_params``/``set_params`` list and change them, so they can be
    grid-searched (``nktransformer__n_clusters``). ``random_state`` becomes the extractor's
    ``seed`` (or ``random_state``) unless an option sets that. ``input_shape`` reshapes each row
    before the extractor sees it (e.g. ``(1, 8, 8)`` for an extractor of images); the output is
    flattened to one row per sample, in the input's float dtype.

    Attributes: ``extractor_`` (the fitted extractor), ``n_features_in_``, ``n_features_out_``.
    """

    def __init__(self, extractor: str = "kmeans", input_shape: tuple[int, ...] | None = None,
                 random_state: Any = None, **options: Any):
        self.extractor = extractor
        self.input_shape = input_shape
        self.random_state = random_state
        self._options = dict(options)

    # -- parameters: the named ones plus the extractor's options ----------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The named parameters and every extractor option."""
        return {**super().get_params(deep), **self._options}

    def set_params(self, **params: Any) -> "NKTransformer":
        """Set named parameters or extractor options (a new keyword becomes a new option); returns self."""
        named = set(self._get_param_names())
        for key, value in params.items():
            if key in named:
                setattr(self, key, value)
            else:
                self._options[key] = value
        return self

    # -- fitting ---------------------------------------------------------------------------------
    def _reshape(self, X: np.ndarray) -> np.ndarray:
        if self.input_shape is None:
            return X
        shape = tuple(int(s) for s in self.input_shape)
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"input_shape {shape} holds {int(np.prod(shape))} values but X has {X.shape[1]} "
                             f"features per row")
        return X.reshape((len(X),) + shape)

    def _make_extractor(self) -> Any:
        import inspect

        from . import registry

        cls = registry.extractors[self.extractor]
        options = dict(self._options)
        accepted: Any
        try:
            accepted = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            accepted = {}
        for name in ("seed", "random_state"):
            if name in accepted:
                options.setdefault(name, _seed(self.random_state))
                break
        return cls(**options)

    def fit(self, X: Any, y: Any = None) -> "NKTransformer":
        """Fit the extractor on ``X`` (and ``y``, for a supervised extractor); returns self."""
        X = validate_data(self, X, dtype=_FLOAT_DTYPES)
        extractor = self._make_extractor()
        try:
            extractor.fit(self._reshape(X), y)
        except ValueError as exc:
            raise ValueError(f"extractor {self.extractor!r} could not be fitted on {X.shape[0]} sample(s) of "
                             f"{X.shape[1]} feature(s): {exc}") from exc
        self.extractor_ = extractor
        self.n_features_out_ = self._transform(X[:1]).shape[1]
        return self

    def _transform(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.extractor_.transform(self._reshape(X)))
        if out.ndim < 1 or out.shape[0] != X.shape[0]:
            raise ValueError(f"extractor {self.extractor!r} returned shape {out.shape} for {X.shape[0]} rows")
        return np.ascontiguousarray(out.reshape(len(out), -1), dtype=X.dtype)

    def transform(self, X: Any) -> np.ndarray:
        """The extractor's features of ``X``, one row per sample, in ``X``'s float dtype."""
        check_is_fitted(self)
        return self._transform(validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``nktransformer0``, ``nktransformer1``, ...: one name per output feature."""
        check_is_fitted(self)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
