"""Process flags that compiled code reads at run time (:mod:`nkernels.kernels.cpu.process_flags`)."""
import ctypes

import llvmlite.binding as llvm
from numba import njit

from nkernels.kernels.cpu.process_flags import process_flag

flag, read_flag = process_flag("nkernels_test_process_flag", 1)


@njit
def _flag_in_compiled_code():
    return read_flag()


def test_compiled_code_reads_the_flag_each_time_it_runs():
    assert llvm.address_of_symbol("nkernels_test_process_flag") == ctypes.addressof(flag)
    assert _flag_in_compiled_code() is True
    flag.value = 0
    try:
        assert _flag_in_compiled_code() is False  # the same machine code, the flag changed
        flag.value = -3
        assert _flag_in_compiled_code() is True  # any value but 0 is set
    finally:
        flag.value = 1


def test_the_flags_of_blas_and_the_tiles_are_process_flags():
    from nkernels.kernels.cpu import avx512, blas

    for name, value in (("nkernels_blas_small_kernels", blas.small_kernels),
                        ("nkernels_avx512_tiles", avx512.tiles)):
        assert llvm.address_of_symbol(name) == ctypes.addressof(value)
