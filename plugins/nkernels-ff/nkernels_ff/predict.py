"""Prediction by goodness: each label joined to the input in turn, the label whose data the layers find best wins."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.runtime.threads import blas_single_threaded
from nkernels.validation import check_bool, check_int, check_model_data

from .chain import Chain, read_chain


def typed_layers(chain: Chain):
    """The chain's weights and biases as Numba typed lists (0-length biases for layers without one)."""
    from numba.typed import List

    dtype = chain.denses[0].dtype
    no_bias = np.empty(0, dtype)
    return (List([d.params["weight"] for d in chain.denses]),
            List([d.params.get("bias", no_bias) for d in chain.denses]))


def layer_buffers(chain: Chain, rows: int):
    """Each layer's normalised input and output for ``rows`` rows (typed lists), and the goodness (layers, rows)."""
    from numba.typed import List

    dtype = chain.denses[0].dtype
    normed = List([np.empty((rows, d.in_features), dtype) for d in chain.denses])
    acts = List([np.empty((rows, d.out_features), dtype) for d in chain.denses])
    return normed, acts, np.empty((len(chain.denses), rows))


def scoring_buffers(chain: Chain, samples: int) -> tuple:
    """The buffers of :func:`~nkernels_ff.kernels.score_labels` for ``samples`` samples: the first layer's
    feature weights and product, the layers' buffers for every sample with every label, the scores."""
    dtype, width = chain.denses[0].dtype, chain.widths[0]
    return (np.empty((width, chain.n_features), dtype), np.empty((samples, width), dtype),
            *layer_buffers(chain, samples * chain.n_classes), np.empty((samples, chain.n_classes)))


def goodness(model, X: Any, skip_first: bool = False, batch_size: int = 256) -> np.ndarray:
    """The total goodness of each sample of ``X`` (N, n_features) with each label joined: (N, n_classes).

    ``model`` is a forward-forward model (see :func:`~nkernels_ff.ff_model`). The goodness sums
    over the layers, from the second when ``skip_first`` (Hinton's choice for deeper nets, whose
    first layer mostly sees the label); ``batch_size`` samples (times n_classes rows) go through
    the layers at once.
    """
    chain = read_chain(model)
    skip_first = check_bool(skip_first, "skip_first")
    batch_size = check_int(batch_size, "batch_size")
    X = check_model_data(model, X)
    if X.ndim != 2 or X.shape[1] != chain.n_features:
        raise ValueError(f"X must have shape (N, {chain.n_features}), the features the model was built for, "
                         f"got {X.shape}")
    from .kernels import score_labels

    weights, biases = typed_layers(chain)
    C = chain.n_classes
    scores = np.empty((len(X), C))
    buffers: dict[int, tuple] = {}
    with blas_single_threaded():
        for start in range(0, len(X), batch_size):
            rows = X[start:start + batch_size]
            if len(rows) not in buffers:
                buffers[len(rows)] = scoring_buffers(chain, len(rows))
            score_labels(rows, C, skip_first, weights, biases, *buffers[len(rows)])
            scores[start:start + len(rows)] = buffers[len(rows)][-1]
    return scores


def predict(model, X: Any, skip_first: bool = False) -> np.ndarray:
    """The label with the highest total goodness for each sample of ``X``: (N,) int64."""
    return goodness(model, X, skip_first).argmax(axis=1)


def predict_proba(model, X: Any, skip_first: bool = False) -> np.ndarray:
    """The softmax of the total goodness over the labels: (N, n_classes), rows summing to 1.

    Goodness is a log-odds-like score (each layer's logistic objective reads ``goodness - theta``),
    so its softmax ranks the labels as :func:`predict` does and gives the validation loss a
    cross-entropy."""
    scores = goodness(model, X, skip_first)
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)
