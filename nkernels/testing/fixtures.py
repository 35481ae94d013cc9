"""pytest fixtures for plugin authors, loaded automatically through the ``pytest11`` entry point."""
from __future__ import annotations

import itertools

import pytest

_names = itertools.count()


@pytest.fixture
def nk_register_plugin():
    """A function ``register(plugin, name=None)`` whose plugins are unregistered after the test."""
    from .. import plugins

    registered: list[str] = []

    def register(plugin: object, name: str | None = None, distribution: str = "(test)") -> str:
        name = name or f"fixture-plugin-{next(_names)}"
        plugins.register_plugin(plugin, name=name, distribution=distribution)
        registered.append(name)
        return name

    yield register
    for name in reversed(registered):
        plugins.unregister_plugin(name)


@pytest.fixture
def nk_small_kernels(request):
    """``nkernels.kernels.cpu.blas.small_kernels`` set to the test's parameter (``indirect=True``: 1 cuts
    products into pieces for OpenBLAS's small-matrix kernels, 0 keeps them whole), whatever this CPU's
    OpenBLAS runs, and restored after; compiled code reads the flag at run time. For kernels that call
    :func:`nkernels.kernels.cpu.blas.gemm_row_pieces` and its kin: test both ways on any machine."""
    from ..kernels.cpu import blas

    before = blas.small_kernels.value
    blas.small_kernels.value = request.param
    yield request.param
    blas.small_kernels.value = before


@pytest.fixture
def nk_tiles(request):
    """``nkernels.kernels.cpu.avx512.tiles`` set to the test's parameter (``indirect=True``: 1 hands the
    products they take to nkernels' AVX-512 tiles, 0 all products to BLAS), and restored after;
    compiled code reads the flag at run time. With 1 on a CPU without AVX-512 the tiles still compute
    the right numbers (LLVM splits their vectors), only slower: test both ways on any machine."""
    from ..kernels.cpu import avx512

    before = avx512.tiles.value
    avx512.tiles.value = request.param
    yield request.param
    avx512.tiles.value = before
