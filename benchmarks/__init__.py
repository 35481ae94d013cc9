"""The nkernels asv suite. See README.md, "Benchmarks", for the commands."""
