"""The kernel tests mirror the kernel families: tests/kernels/cpu/test_<family>.py for every module of
nkernels/kernels/cpu, tests/kernels/cuda/test_<family>.py for every module of nkernels/kernels/cuda, and no
test file there without its module."""
from pathlib import Path

import pytest

import nkernels.kernels

KERNELS = Path(nkernels.kernels.__file__).parent
TESTS = Path(__file__).parent


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_kernel_module_has_its_test_file(device):
    modules = {p.stem for p in (KERNELS / device).glob("*.py") if p.stem != "__init__"}
    tested = {p.stem.removeprefix("test_") for p in (TESTS / device).glob("test_*.py")}
    assert modules - tested == set(), f"kernel modules without tests/kernels/{device}/test_<module>.py"
    assert tested - modules == set(), f"test files in tests/kernels/{device} named after no kernel module"
