"""nk.sample: a generator's outputs for latent vectors drawn from N(0, 1)."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.sampling import latent_dim

L = nk.layers


def generator(dtype="float32"):
    return nk.Sequential([L.Dense(3, 8), L.ReLU(), L.Dense(8, 5), L.Sigmoid()], seed=0, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_samples_are_the_generator_on_standard_normal_latents(dtype):
    G = generator(dtype)
    samples = nk.sample(G, 7, seed=4)
    z = np.random.default_rng(4).standard_normal((7, 3)).astype(dtype)
    assert samples.shape == (7, 5) and samples.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(samples, G.forward(z))


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    G = generator()
    np.testing.assert_array_equal(nk.sample(G, 4, seed=1), nk.sample(G, 4, seed=1))
    assert not np.array_equal(nk.sample(G, 4, seed=1), nk.sample(G, 4, seed=2))


def test_the_latent_width_is_the_first_layers_input():
    assert latent_dim(generator()) == 3


@pytest.mark.parametrize("G, n, error, message", [
    (generator(), 0, ValueError, "n must be"),
    (generator(), 2.0, TypeError, "n must be"),
    (nk.Sequential([L.ReLU(), L.Dense(3, 5)]), 2, TypeError, "does not say its input width"),
    ("model", 2, TypeError, "nk.Sequential with layers"),
])
def test_bad_arguments_are_refused(G, n, error, message):
    with pytest.raises(error, match=message):
        nk.sample(G, n, seed=0)
