"""nkernels-gan: generative adversarial networks as a training scheme.

Registers the scheme ``gan`` (:class:`~nkernels_gan.scheme.GAN`): ``nk.train(discriminator, X,
scheme="gan", generator=G)`` trains both chains, and ``nk.sample(G, n, seed=...)`` draws samples.
:func:`~nkernels_gan.quality.quality` measures samples of digits against the real ones.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

from .quality import quality  # a submodule's name too, so not lazy (see lazy_attributes)

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"GAN": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The ``gan`` scheme."""
    return {"gan": Deferred("nkernels_gan.scheme:GAN")}


__all__ = ["GAN", "quality"]
