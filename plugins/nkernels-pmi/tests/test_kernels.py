"""The kernels against plain NumPy references written out here (float64)."""
import numpy as np
import pytest

from nkernels_pmi import statistics


def ref_activations(X, scale, threshold):
    A = X / scale
    return (A > threshold).astype(float) if threshold > 0 else A


def ref_pmi(A, smoothing, shift, positive):
    n = len(A)
    joint = (A.T @ A + smoothing) / (n + smoothing)
    single = (A.sum(axis=0) + smoothing) / (n + smoothing)
    P = np.log(joint / np.outer(single, single)) - shift
    return np.maximum(P, 0) if positive else P


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_cooccurrence_matches_numpy(threshold):
    rng = np.random.default_rng(0)
    X = np.maximum(rng.standard_normal((57, 9)), 0)  # about half the entries are exact zeros
    X[:, 3] = 0.0  # a silent location
    scale = statistics.location_scale(X)
    assert scale[3] == 1.0
    counts, marginals = statistics.cooccurrence(X, scale, threshold)
    A = ref_activations(X, scale, threshold)
    np.testing.assert_allclose(counts, A.T @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(marginals, A.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(counts, counts.T)


@pytest.mark.parametrize("smoothing, shift, positive", [(1.0, 0.0, True), (0.1, 0.7, True), (2.0, 0.0, False)])
def test_pmi_matrix_matches_numpy(smoothing, shift, positive):
    X = np.random.default_rng(1).uniform(0, 3, (40, 7)) * (np.random.default_rng(2).random((40, 7)) > 0.4)
    scale = statistics.location_scale(X)
    counts, marginals = statistics.cooccurrence(X, scale, 0.0)
    P = statistics.pmi(counts, marginals, len(X), smoothing, shift, positive)
    np.testing.assert_allclose(P, ref_pmi(ref_activations(X, scale, 0.0), smoothing, shift, positive),
                               rtol=1e-12, atol=1e-12)
    assert (P.min() >= 0) == positive


def test_independent_locations_have_no_mutual_information():
    """Two locations that co-activate exactly as often as chance predicts: PMI 0 without smoothing's bias."""
    X = np.array([[1, 1], [1, 0], [0, 1], [0, 0]] * 25, float)
    counts, marginals = statistics.cooccurrence(X, statistics.location_scale(X), 0.5)
    P = statistics.pmi(counts, marginals, len(X), 1e-9, 0.0, False)
    assert abs(P[0, 1]) < 1e-8 and P[0, 0] == pytest.approx(np.log(2), rel=1e-8)
