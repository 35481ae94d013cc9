"""The toolkit's promises, kept by the gan scheme (the discriminator is the model given to fit)."""
import nkernels as nk
from nkernels.testing import SchemeConformance
from nkernels_gan import GAN

L = nk.layers


def small_generator():
    return nk.Sequential([L.Dense(4, 16), L.ReLU(), L.Dense(16, 64), L.Sigmoid()], seed=3)


class TestGAN(SchemeConformance):
    make_scheme = staticmethod(lambda **options: GAN(generator=small_generator(), steps_per_epoch=3, **options))
    fit_options = {"batch_size": 16}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 1)], seed=0)
