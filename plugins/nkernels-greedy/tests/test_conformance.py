"""The greedy scheme passes the scheme conformance class in each kind of stage the kit can drive.

The kit counts a run's epochs as ``fit``'s ``epochs``, which is what a run of one stage does; each
class here is such a run: supervised training of the output block, and unsupervised pretraining of
a single block (an autoencoder, an RBM). Runs of several stages are checked in test_stages.py.
"""
import nkernels as nk
from nkernels.testing import SchemeConformance
from nkernels_greedy import Greedy

L = nk.layers


class TestGreedyConformance(SchemeConformance):
    """Supervised greedy training of a two-layer net: one stage, the output block with the layer below."""

    make_scheme = staticmethod(lambda **options: Greedy(mode="supervised", **options))
    fit_options = {"batch_size": 64}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dropout(0.2), L.Dense(16, 10)], seed=0)


class TestGreedyAutoencoderConformance(SchemeConformance):
    """Without labels: a denoising autoencoder with its own decoder pretrains the single block."""

    make_scheme = staticmethod(lambda **options: Greedy(corruption=0.2, tied=False, **options))
    fit_options = {"batch_size": 64}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.Sigmoid()], seed=0)

    def data(self):
        X, _, X_val, _ = super().data()
        return X, None, X_val, None


class TestGreedyRBMConformance(TestGreedyAutoencoderConformance):
    """Without labels: an RBM (CD-2, visible units decided on the first epoch) pretrains the single block."""

    make_scheme = staticmethod(lambda **options: Greedy(pretrain="rbm", cd_k=2, **options))
