"""The accuracies the admm README and the main README's "More ways to train" quote, by the code shown there.

Figure tests: marked slow, they run in their own stage (``python -m pytest -m slow plugins/nkernels-admm``).
Each figure's model trains once, in a module fixture. The time figures stay measured by the scripts.
"""
import re

import pytest

import nkernels as nk

L = nk.layers
pytestmark = pytest.mark.slow


def percent(fraction):
    """A fraction as the READMEs print it: a percentage with one decimal."""
    return round(100 * fraction, 1)


def readme_model():
    """The README's model: MLP 64-128-64-10, seed 0."""
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


@pytest.fixture(scope="module")
def digits():
    return nk.datasets.load("digits")  # the 30% held-out split


@pytest.fixture(scope="module")
def default_run(digits):
    """The admm README's first run: the defaults, with validation data."""
    X, y, X_test, y_test = digits
    model = readme_model()
    history = nk.train(model, X, y, scheme="admm", seed=0, validation_data=(X_test, y_test))
    return model, history


def test_the_defaults_give_97_4_after_10_iterations_and_95_2_after_3(default_run, digits):
    model, history = default_run
    accuracy = [percent(value) for value in history["val_accuracy"]]
    assert len(accuracy) == 10
    assert (accuracy[2], accuracy[3], accuracy[9]) == (95.2, 96.9, 97.4)
    assert percent(nk.evaluate(model, *digits[2:])["accuracy"]) == 97.4


def test_thirty_iterations_give_98_0(digits):
    X, y, X_test, y_test = digits
    model = readme_model()
    history = nk.train(model, X, y, scheme="admm", epochs=30, validation_data=(X_test, y_test))
    accuracy = [percent(value) for value in history["val_accuracy"]]
    assert (accuracy[19], accuracy[29]) == (97.2, 98.0)


def test_the_logistic_regression_reference_gives_97_0(digits):
    from sklearn.linear_model import LogisticRegression

    X, y, X_test, y_test = digits
    assert percent(LogisticRegression(max_iter=1000).fit(X, y).score(X_test, y_test)) == 97.0


def test_the_command_line_defaults_give_97_4(capsys):
    from nkernels.cli import main

    assert main(["train", "--scheme", "admm"]) == 0
    summary = re.search(r"test accuracy ([\d.]+)%", capsys.readouterr().out)
    assert summary is not None and round(float(summary.group(1)), 1) == 97.4


def test_the_main_readme_line_on_two_workers(digits):
    """README.md: ``nk.train(model, X, y, scheme="admm", workers=2)`` on the MLP 64-128-64-10 gives 97.4% in
    10 iterations (95.2% after 3). ``validation_data`` only reads the accuracy after each iteration."""
    pytest.importorskip("dask.distributed")
    X, y, X_test, y_test = digits
    model = readme_model()
    history = nk.train(model, X, y, scheme="admm", workers=2, validation_data=(X_test, y_test))
    assert (percent(history["val_accuracy"][2]), percent(history["val_accuracy"][-1])) == (95.2, 97.4)
    assert percent(nk.evaluate(model, X_test, y_test)["accuracy"]) == 97.4
