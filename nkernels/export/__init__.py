"""Getting models out: safetensors model files and checkpoints (:mod:`~nkernels.export.io`) and
ONNX (:mod:`~nkernels.export.onnx_export`, with the built-in layers' exporters in
:mod:`~nkernels.export.onnx_layers`).
"""
