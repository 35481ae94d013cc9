"""nkernels-gan: generative adversarial networks as a training scheme.

Registers the scheme ``gan`` (:class:`~nkernels_gan.scheme.GAN`): ``nk.train(discriminator, X,
scheme="gan", generator=G)`` trains both chains, and ``nk.sample(G, n, seed=...)`` draws samples.
:func:`~nkernels_gan.quality.quality` measures samples of digits against the real ones.
"""
import nkernels as nk

from .quality import quality
from .scheme import GAN


@nk.hookimpl
def nkernels_register_schemes():
    """The ``gan`` scheme."""
    return {"gan": GAN}


__all__ = ["GAN", "quality"]
