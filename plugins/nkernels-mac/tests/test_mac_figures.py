"""The held-out accuracy the mac README quotes, by the README's own example (the scheme's defaults).

A figure test: marked slow, it runs in its own stage (``python -m pytest -m slow plugins/nkernels-mac``).
The model trains once, in a module fixture. The figure must come out at least as quoted, to within
0.6 points (three test digits of 540: other CPUs' BLAS kernels move the last bits), and at least the
issue's 95%. The time figures stay measured by the scripts.
"""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.fixture(scope="module")
def example():
    """The README's first Python example, run as it stands: its namespace."""
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "mac README", "exec"), namespace)
    return namespace


def test_the_defaults_reach_the_quoted_held_out_accuracy(example):
    quoted = float(re.search(r"reaches\s+\*\*([0-9.]+)%\*\*\s+held-out", README).group(1))
    accuracy = example["history"]["val_accuracy"][-1]
    assert 100 * accuracy >= max(95.0, quoted - 0.6), f"{100 * accuracy:.2f}% where the README quotes {quoted}%"


def test_the_coordinates_came_to_agree_with_the_forward_pass(example):
    violation = example["history"]["violation"]
    assert violation[-1] < violation[0] / 2 and example["history"]["mu"][-1] > 100 * example["history"]["mu"][0]
