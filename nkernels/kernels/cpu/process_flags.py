"""Flags of the process that compiled code reads at run time, through LLVM symbols.

A kernel cached on disk keeps the machine code compiled in the process that wrote it; a setting
that differs between processes (which OpenBLAS kernels are loaded, whether the CPU has AVX-512)
therefore cannot be a constant in it. :func:`process_flag` gives an int64 of this process,
registered with LLVM under a symbol name when the defining module is imported, and an intrinsic
reading it: compiled code links the symbol by name in every process, as it links BLAS.
"""
import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import types
from numba.extending import intrinsic

__all__ = ["process_flag"]


def process_flag(symbol: str, value: int):
    """``(flag, read)``: a ``ctypes.c_int64`` holding ``value``, registered as the LLVM symbol
    ``symbol`` (tests may set ``flag.value``), and an intrinsic ``read()`` giving whether it is not 0,
    read each time compiled code runs it (in plain Python, ``NUMBA_DISABLE_JIT=1``, a function reading it)."""
    flag = ctypes.c_int64(value)
    llvm.add_symbol(symbol, ctypes.addressof(flag))
    if numba_config.DISABLE_JIT:
        return flag, lambda: flag.value != 0

    def read(typingctx):
        def codegen(context, builder, signature, args):
            int64 = ir.IntType(64)
            variable = builder.module.globals.get(symbol)
            if variable is None:
                variable = ir.GlobalVariable(builder.module, int64, symbol)
                variable.linkage = "external"
            return builder.icmp_signed("!=", builder.load(variable), ir.Constant(int64, 0))

        return types.boolean(), codegen

    read.__name__ = read.__qualname__ = f"read_{symbol}"
    return flag, intrinsic(read)
