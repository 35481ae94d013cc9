"""Registers the built-in losses."""
from ...losses import MSE, BCEWithLogits, SoftmaxCrossEntropy
from ..marker import hookimpl


@hookimpl
def nkernels_register_losses():
    """The built-in losses by name (``cross_entropy`` is the short name of the softmax one)."""
    return {"softmax_cross_entropy": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy, "mse": MSE,
            "bce_with_logits": BCEWithLogits}
