"""The accuracies the READMEs quote for ES, each reproduced by the exact code or command shown there.

The training runs are figure tests (``pytest -m slow``); each model is trained once per session.
The checks that the code below is the READMEs' code run in the default suite.
"""
import pathlib
import re

import pytest

import nkernels as nk
from nkernels.cli import main

PLUGIN = pathlib.Path(__file__).resolve().parents[1]
ES_README = (PLUGIN / "README.md").read_text()
MAIN_README = (PLUGIN.parents[1] / "README.md").read_text()

#: the es README's example: ES's defaults on the 64-128-64-10 MLP, 94.4% held out
ES_README_CODE = '''\
X, y, X_test, y_test = nk.datasets.load("digits")
model = nk.presets.mlp((64,), 10, hidden=(128, 64), seed=0)          # 64-128-64-10
history = nk.train(model, X, y, scheme="es", seed=0)
nk.evaluate(model, X_test, y_test)["accuracy"]                       # 0.944
'''
#: the main README's ES line, whose figure reads "On digits (MLP 64-128-64-10, 30% held out): ... ES 94.4%
#: after 400 generations": the es README's example runs it on that model, so one run checks both
MAIN_README_LINE = 'nk.train(model, X, y, scheme="es", seed=0)'
#: the es README's command line figure
CLI_COMMAND = "nkernels train --scheme es"


def test_the_figure_code_is_the_readmes():
    assert ES_README_CODE in ES_README and "reaches **94.4%**" in ES_README
    assert f"`{CLI_COMMAND}`" in ES_README and "reaches **93.3%**" in ES_README
    assert MAIN_README_LINE + " " in MAIN_README and "ES 94.4% after\n400 generations" in MAIN_README
    assert "history = " + MAIN_README_LINE + "\n" in ES_README_CODE


@pytest.fixture(scope="session")
def es_readme_run():
    namespace = {"nk": nk}
    exec(ES_README_CODE, namespace)
    return namespace


@pytest.mark.slow
def test_readme_es_figures_94_4_percent_after_400_generations(es_readme_run):
    model, X_test, y_test = es_readme_run["model"], es_readme_run["X_test"], es_readme_run["y_test"]
    assert f"{100 * nk.evaluate(model, X_test, y_test)['accuracy']:.1f}" == "94.4"
    history = es_readme_run["history"]
    assert history["generation"][-1] == 400 and len(history["loss"]) == 10  # the default epochs


@pytest.mark.slow
def test_command_line_defaults_reach_93_3_percent(capsys):
    assert main(CLI_COMMAND.split()[1:]) == 0
    found = re.search(r"test accuracy (\d+\.\d+)%", capsys.readouterr().out)
    assert found and f"{float(found.group(1)):.1f}" == "93.3"
