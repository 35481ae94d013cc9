"""The table of built-in layers fills both registries, and every kernel a built-in layer calls has a CUDA twin.

(tests/test_layers.py checks that every built-in layer has test cases.)
"""
import pytest

import nkernels as nk
from nkernels.plugins.builtins.layers import BUILTIN_LAYERS

from layer_cases import CASES


def test_the_registries_are_filled_from_the_table():
    builtin = {name: cls for name, cls in nk.registry.layers.items()
               if nk.registry.layers.provider(name).distribution == "nkernels"}
    assert builtin == {row.name: row.layer for row in BUILTIN_LAYERS}
    for row in BUILTIN_LAYERS:
        assert nk.registry.exporters[row.name] is row.exporter
        assert row.layer.__doc__, f"{row.layer.__name__} has no docstring"


@pytest.mark.parametrize("name, make, shape", CASES, ids=[case[0] for case in CASES])
def test_every_kernel_a_built_in_layer_calls_has_a_cuda_twin(name, make, shape):
    """Each op the layer's passes call is registered on both devices, and the CUDA twin exists in its module."""
    layer = make()
    if not layer.described:  # Frozen codes its passes in Python; on the GPU it runs its extractor or model there
        assert layer.supported_devices == ("cpu", "cuda"), name  # (their agreement: tests/cuda/test_cuda_layers.py)
        return
    assert "cuda" in layer.supported_devices
    for op in sorted(layer.passes(shape).ops()):
        assert callable(nk.registry.kernels[(op, "cpu")]), op
        record = nk.registry.kernels.record((op, "cuda"))
        assert callable(getattr(record.function, "function", record.function)), f"{op} has no CUDA twin"
