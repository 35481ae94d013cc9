"""The accuracies the plugin's README quotes, from the exact code and commands it shows (pytest -m slow)."""
import re
from pathlib import Path

import pytest

import nkernels as nk
from nkernels_kmeans.__main__ import main

pytestmark = pytest.mark.slow
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SLACK = 0.006  # three test digits of 540: other CPUs' BLAS kernels move the last bits


def test_the_python_example_and_raw_pixels():
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict = {}
    code = "\n".join(line for line in block.splitlines() if "nk.save" not in line and "export_onnx" not in line)
    exec(compile(code, "kmeans README", "exec"), namespace)
    figures = [float(v) for v in re.findall(r"# accuracy (0\.\d+)", block)]
    got = [nk.evaluate(namespace[name], namespace["X_test"], namespace["y_test"])["accuracy"] for name in ("model", "raw")]
    for value, figure in zip(got, figures, strict=True):
        assert value >= figure - SLACK, (got, figures)


@pytest.mark.parametrize("extractor", ["kmeans", "conv-kmeans", "stacked-kmeans"])
def test_the_command_line_figures(extractor, capsys):
    commands = dict(re.findall(r"--extractor (\S+) .*?(0\.\d+)\n", README))
    assert main(["--extractor", extractor, "--quiet"]) == 0
    got = float(re.search(r"held-out accuracy ([\d.]+)", capsys.readouterr().out).group(1))
    assert got >= float(commands[extractor]) - SLACK
