"""The conformance kit for plugin authors (and nkernels' own tests).

* :func:`check_layer_gradients` compares a layer's analytic gradients (input and every
  parameter) with central finite differences in float64.
* :func:`check_loss_gradients` does the same for a loss.
* :class:`LayerConformance` is a ready-made pytest suite for a layer type: subclass it.
* :class:`SchemeConformance` is the same for a training scheme: checkpoints and bit-identical
  resume, validation data, callbacks, early stopping, divergence, determinism.
* :func:`check_cpu_cuda_agreement` checks that a kernel's CUDA twin, or a layer on the GPU,
  gives the CPU's numbers (under ``NUMBA_ENABLE_CUDASIM=1`` without a GPU).
* :func:`check_onnx_export` checks that a model written by ``nk.export_onnx`` (a plugin's
  exporters included) gives ``model.forward``'s numbers in onnxruntime.
* :func:`registered_plugin` registers a throw-away plugin for the length of a ``with`` block.

With pytest, the fixtures in :mod:`nkernels.testing.fixtures` load automatically (entry point
``pytest11``): ``nk_register_plugin`` registers plugins that are removed after the test, and
``nk_small_kernels`` (an indirect parameter) runs products cut for OpenBLAS's small-matrix kernels or whole,
``nk_tiles`` (another) products by nkernels' AVX-512 tiles or by BLAS.
"""
from .agreement import check_cpu_cuda_agreement
from .conformance import LayerConformance
from .gradcheck import GradientMismatch, check_layer_gradients, check_loss_gradients
from .onnx_agreement import OnnxMismatch, check_onnx_export
from .plugins import registered_plugin
from .schemes import SchemeConformance

__all__ = ["check_cpu_cuda_agreement", "check_layer_gradients", "check_loss_gradients", "check_onnx_export",
           "GradientMismatch", "LayerConformance", "OnnxMismatch", "SchemeConformance", "registered_plugin"]
