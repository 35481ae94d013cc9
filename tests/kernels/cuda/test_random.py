"""CUDA counter-based random fills against their CPU twins: uniform draws agree bit for bit.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py),
where the bit-for-bit agreement of the uint64 hash compiled by NVVM is what is being checked.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nkernels.kernels.cpu import random as cpu
from nkernels.kernels.cuda import random as gpu

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def shapes(pick):
    return pick([1, 45], [10_000_019])


def test_uniform_and_normal_fill_match_cpu(shapes, dtype, dev, poison, close):
    for n in shapes:
        u = np.empty(n, dtype)
        cpu.uniform_fill(3, 99, u)
        d_u = poison(n, dtype)
        gpu.uniform_fill(3, 99, d_u)
        np.testing.assert_array_equal(d_u.copy_to_host(), u)
        z = np.empty(n, dtype)
        cpu.normal_fill(3, 99, 1.0, 2.0, z)
        d_z = poison(n, dtype)
        gpu.normal_fill(3, 99, 1.0, 2.0, d_z)
        close(d_z, z, 1e3 if dtype == np.float64 else 1.0)  # libdevice vs libm: last bits


def test_a_float32_draw_that_rounds_to_one_stays_below_one(dev):
    counter = 26683239  # seed 0 draws within 2**-25 of 1 here (tests/kernels/cpu/test_random.py)
    u, d_u = np.empty(1, np.float32), dev(np.zeros(1, np.float32))
    cpu.uniform_fill(0, counter, u)
    gpu.uniform_fill(0, counter, d_u)
    assert d_u.copy_to_host()[0] == u[0] == np.nextafter(np.float32(1), np.float32(0))


def test_scalar_helpers_are_shared():
    assert gpu.hash_uniform is cpu.hash_uniform


JIT_DISABLED = """
import numpy as np
from numba import cuda
from nkernels.kernels.cpu import augment as cpu_augment, random as cpu_random
from nkernels.kernels.cuda import augment, random
u, d_u = np.empty(5), cuda.to_device(np.zeros(5))
cpu_random.uniform_fill(3, 7, u)
random.uniform_fill(3, 7, d_u)
x = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
out, d_out = np.empty_like(x), cuda.to_device(np.zeros_like(x))
cpu_augment.random_translate(x, 1, 4, 0, out)
augment.random_translate(cuda.to_device(x), 1, 4, 0, d_out)
assert (d_u.copy_to_host() == u).all() and (d_out.copy_to_host() == out).all()
"""


def test_twins_of_the_generator_run_with_the_jit_disabled():
    """With NUMBA_DISABLE_JIT=1 (the kernel coverage run) ``@njit`` returns the plain function, which has no
    ``.py_func``: the CUDA modules that wrap the CPU helpers as device functions must still import and agree."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c", textwrap.dedent(JIT_DISABLED)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
