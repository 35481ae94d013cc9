"""The held-out accuracies the README quotes for ff with its defaults, reproduced (``pytest -m slow``).

Each model is trained once per module. As in the other plugins' figure tests, a figure must come out
at least as quoted to within 0.6 points (three test digits of 540): BLAS picks other kernels on other
CPUs, which moves the last bits and so a sample or two. The check that the README still quotes them
runs in the default suite.
"""
import re
from pathlib import Path

import pytest

import nkernels as nk
from nkernels_ff import ForwardForward, ff_model, predict

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SLACK = 0.6  # percentage points
L = nk.layers

#: the README's figures: model name -> the pattern of its quoted accuracy
QUOTED = {"2x500": r"two 500-unit layers[^|]*\| hardest \| ([\d.]+)%",
          "compare": r"64-128-64-10's hidden layers[^|]*\| hardest \| ([\d.]+)%"}


def quoted(name: str) -> float:
    found = re.search(QUOTED[name], README)
    assert found, f"the README no longer quotes the {name} figure ({QUOTED[name]!r})"
    return float(found.group(1))


def test_the_readme_quotes_the_figures():
    assert quoted("2x500") >= 95.0 and quoted("compare") > 0


@pytest.fixture(scope="module")
def trained(digits):
    """ff with its defaults on the reference's two 500-unit layers and on the hidden layers of the MLP
    that ``nkernels compare`` hands it: (model, history) by name."""
    X, y, X_test, y_test = digits
    classifier = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)
    models = {"2x500": ff_model(64, 10, (500, 500), seed=0),
              "compare": ForwardForward().adapt_model(classifier, 64, 10)}
    return {name: (model, nk.train(model, X, y, scheme="ff", seed=0, validation_data=(X_test, y_test)))
            for name, model in models.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(QUOTED))
def test_ff_reaches_the_quoted_accuracy_with_its_defaults(name, trained, digits):
    model, history = trained[name]
    accuracy = 100 * history["val_accuracy"][-1]
    assert len(history["val_accuracy"]) == ForwardForward.default_epochs
    assert accuracy >= quoted(name) - SLACK
    if name == "2x500":  # issue 22's figure: >= 95% with the defaults (the reference's layers)
        assert accuracy >= 95.0
    assert accuracy == 100 * (predict(model, digits[2]) == digits[3]).mean()
