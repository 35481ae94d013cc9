"""The built-in plugins: nkernels registers its own layers, schemes, datasets and kernels
through the same hooks as any third-party plugin."""
