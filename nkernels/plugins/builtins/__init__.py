"""The built-in plugins: nkernels registers its own layers, schemes, datasets, kernels and ONNX
exporters through the same hooks as any third-party plugin."""
