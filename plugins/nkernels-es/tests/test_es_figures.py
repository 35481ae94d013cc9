"""The accuracies the READMEs quote for ES, each reproduced by the exact code or command shown there.

The training runs are figure tests (``pytest -m slow``); the README example's model is trained once
per session. As in the main README's figure tests, each figure must come out at least as quoted, to
within 0.6 points (three test digits of 540): BLAS picks other kernels on other CPUs, which moves
the last bits and so a sample or two. The checks that the figures and the code are where these
tests read them run in the default suite.
"""
import pathlib
import re

import pytest

import nkernels as nk
from nkernels.cli import main

PLUGIN = pathlib.Path(__file__).resolve().parents[1]
ES_README = (PLUGIN / "README.md").read_text()
MAIN_README = (PLUGIN.parents[1] / "README.md").read_text()
SLACK = 0.6  # percentage points


def quoted(readme: str, pattern: str) -> tuple[str, ...]:
    """The groups of ``pattern`` in ``readme`` (the figures it quotes, and the command or count beside them)."""
    found = re.search(pattern, readme, re.S)
    assert found, f"the README no longer matches {pattern!r}"
    return found.groups()


def at_least(got: float, figure: float) -> None:
    assert got >= figure - SLACK, f"{got:.2f}% where the README quotes {figure}%"


#: the es README's example (its only Python block) and the accuracy its comment gives
ES_README_CODE, = re.findall(r"```python\n(.*?)```", ES_README, re.S)
#: the es README's prose figure for that example, and its command line and figure
PYTHON_FIGURE = r"ES reaches \*\*([\d.]+)%\*\*\s+held-out accuracy on digits with this MLP"
CLI_FIGURE = r"`(nkernels train --scheme es)` \(the `mlp` preset,\s+64-128-128-10\) reaches \*\*([\d.]+)%\*\*"
#: the main README's ES line, run on the MLP 64-128-64-10 its figure names: the es README's example
MAIN_README_LINE = r'\n(nk\.train\(model, X, y, scheme="es"[^)]*\))\s+# OpenAI-ES'
MAIN_FIGURE = r"On digits \(MLP 64-128-64-10, 30% held out\):.*?ES ([\d.]+)% after\s+(\d+) generations"


def test_the_figures_and_their_code_are_in_the_readmes():
    assert 'nk.presets.mlp((64,), 10, hidden=(128, 64), seed=0)' in ES_README_CODE
    (comment,) = re.findall(r"\)\[\"accuracy\"\]\s+# (0\.\d+)", ES_README_CODE)
    (python_figure,) = quoted(ES_README, PYTHON_FIGURE)
    assert f"{float(comment):.3f}" == f"{float(python_figure) / 100:.3f}"
    command, _ = quoted(ES_README, CLI_FIGURE)
    assert command.split()[:2] == ["nkernels", "train"]
    (line,) = quoted(MAIN_README, MAIN_README_LINE)
    assert f"history = {line}\n" in ES_README_CODE  # one run reproduces both READMEs' figures
    figure, generations = quoted(MAIN_README, MAIN_FIGURE)
    assert figure == python_figure and generations == "400"


@pytest.fixture(scope="session")
def es_readme_run():
    namespace: dict = {}
    exec(compile(ES_README_CODE, "es README example", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_the_readme_example_reaches_its_figures_after_400_generations(es_readme_run):
    model, X_test, y_test = es_readme_run["model"], es_readme_run["X_test"], es_readme_run["y_test"]
    got = 100 * nk.evaluate(model, X_test, y_test)["accuracy"]
    (python_figure,) = quoted(ES_README, PYTHON_FIGURE)
    main_figure, generations = quoted(MAIN_README, MAIN_FIGURE)
    at_least(got, float(python_figure))
    at_least(got, float(main_figure))
    history = es_readme_run["history"]
    assert history["generation"][-1] == int(generations) and len(history["loss"]) == 10  # the default epochs


@pytest.mark.slow
def test_the_command_line_defaults_reach_their_figure(capsys):
    command, figure = quoted(ES_README, CLI_FIGURE)
    assert main(command.split()[1:]) == 0
    found = re.search(r"test accuracy (\d+\.\d+)%", capsys.readouterr().out)
    assert found, "the command printed no test accuracy"
    at_least(float(found.group(1)), float(figure))
