"""The issue's figure: digits from a GAN trained with the scheme's defaults, judged by a classifier
trained on the real digits (seeds 0 and 1; each pair trained once)."""
import pytest

import nkernels as nk
from nkernels_gan import quality


@pytest.fixture(scope="module", params=[0, 1])
def digits_quality(request, digits):
    X, y, X_test, y_test = digits
    G, D = nk.presets.gan(X.shape[1:], data_range=(float(X.min()), float(X.max())), seed=request.param)
    nk.train(D, X, scheme="gan", generator=G, seed=request.param)
    return quality(nk.sample(G, 1000, seed=request.param), X, y, X_test, y_test)


@pytest.mark.slow
def test_samples_cover_the_classes_confidently(digits_quality):
    assert digits_quality["classes"] >= 9, digits_quality
    assert digits_quality["confidence"] >= 0.7, digits_quality


@pytest.mark.slow
def test_samples_are_neither_few_modes_nor_copies(digits_quality):
    assert digits_quality["diversity"] >= 0.5, digits_quality
    assert digits_quality["novelty"] >= 0.5, digits_quality
