"""ff passes the scheme conformance class: with hardest and with random negatives, and with an
optimizer that updates after each batch outside the compiled run."""
from typing import Any, ClassVar

import nkernels as nk
from nkernels_ff import ForwardForward, ff_model


class TestFFConformance(nk.testing.SchemeConformance):
    make_scheme = staticmethod(lambda **options: ForwardForward(**options))
    fit_options: ClassVar[dict[str, Any]] = {"batch_size": 64}

    def make_model(self):
        return ff_model(64, 10, (16, 12), seed=0)


class TestRandomNegativesConformance(TestFFConformance):
    """Random wrong labels come from the run's generator: resumes draw the same ones."""

    make_scheme = staticmethod(lambda **options: ForwardForward(negatives="random", **options))


class TestClippedSGDConformance(TestFFConformance):
    """clip_norm has no fused form: each batch's gradients, then the optimizer's step in Python."""

    make_scheme = staticmethod(lambda **options: ForwardForward(optimizer="sgd", lr=0.05, momentum=0.9,
                                                                clip_norm=1.0, negatives="random", **options))
