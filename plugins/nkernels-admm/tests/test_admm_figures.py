"""The accuracies the admm README and the main README's "More ways to train" quote, by the code shown there.

Figure tests: marked slow, they run in their own stage (``python -m pytest -m slow plugins/nkernels-admm``).
Each figure is read from the README and each run is the code or command the README shows; each
figure's model trains once, in a module fixture. A figure must come out at least as quoted, to
within 0.6 points (three test digits of 540: other CPUs' BLAS kernels move the last bits). The
time figures stay measured by the scripts.
"""
import re
from pathlib import Path

import pytest

import nkernels as nk

pytestmark = pytest.mark.slow
PLUGIN_README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
MAIN_README = (Path(__file__).resolve().parents[3] / "README.md").read_text()
SLACK = 0.6  # percentage points


def quoted(pattern: str, readme: str = PLUGIN_README) -> tuple[str, ...]:
    """The groups of ``pattern`` in ``readme`` (whitespace in the pattern matches a line break too)."""
    found = re.search(pattern.replace(" ", r"\s+"), readme, re.S)
    assert found is not None, f"the README no longer says {pattern!r}"
    return found.groups()


def at_least(fraction: float, figure: str) -> None:
    assert 100 * fraction >= float(figure) - SLACK, f"{100 * fraction:.2f}% where the README quotes {figure}%"


def first_example() -> str:
    """The plugin README's Python example up to its first training run (the later lines show other options)."""
    lines = re.search(r"```python\n(.*?)```", PLUGIN_README, re.S).group(1).splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("history = "))
    return "\n".join(lines[:end + 1])


def readme_model(namespace: dict) -> None:
    """Run the example's model line in ``namespace``: a fresh MLP 64-128-64-10 with the example's seed."""
    line = re.search(r"^model = .*$", first_example(), re.M).group(0)
    exec(compile(line, "admm README model", "exec"), namespace)


@pytest.fixture(scope="module")
def example():
    """The plugin README's first run (the defaults, with validation data): its namespace."""
    namespace: dict = {}
    exec(compile(first_example(), "admm README", "exec"), namespace)
    return namespace


def test_the_defaults(example):
    final, after_3, after_4 = quoted(r"([\d.]+)% after its 10 iterations, ([\d.]+)% after 3 and ([\d.]+)% after 4")
    accuracy = example["history"]["val_accuracy"]
    assert len(accuracy) == 10
    for got, figure in zip((accuracy[9], accuracy[2], accuracy[3]), (final, after_3, after_4)):
        at_least(got, figure)
    at_least(nk.evaluate(example["model"], example["X_test"], example["y_test"])["accuracy"], final)


def test_thirty_iterations_from_a_fresh_model(example):
    code, after_20, after_30 = quoted(r"`(nk\.train\(model, X, y, scheme=\"admm\", epochs=30[^`]*)` reaches "
                                      r"([\d.]+)% after 20 iterations and ([\d.]+)% after 30")
    namespace = dict(example)
    readme_model(namespace)
    exec(compile(f"history = {code}", "admm README, 30 iterations", "exec"), namespace)
    accuracy = namespace["history"]["val_accuracy"]
    at_least(accuracy[19], after_20)
    at_least(accuracy[29], after_30)


def test_the_logistic_regression_reference(example):
    from sklearn.linear_model import LogisticRegression

    code, figure = quoted(r"`(LogisticRegression\([^`]*\))`: ([\d.]+)%")
    classifier = eval(code, {"LogisticRegression": LogisticRegression})
    at_least(classifier.fit(example["X"], example["y"]).score(example["X_test"], example["y_test"]), figure)


def test_the_command_line_defaults(capsys):
    from nkernels.cli import main

    command, figure = quoted(r"`(nkernels train --scheme admm)` \(the mlp preset, 64-128-128-10\): ([\d.]+)%")
    assert main(command.split()[1:]) == 0
    summary = re.search(r"test accuracy ([\d.]+)%", capsys.readouterr().out)
    assert summary is not None
    at_least(float(summary.group(1)) / 100, figure)


def test_the_main_readme_line_on_two_workers(example):
    """README.md's line ``nk.train(model, X, y, scheme="admm", workers=2)`` on the MLP 64-128-64-10 of its
    figures. ``validation_data`` only reads the accuracy after each iteration."""
    pytest.importorskip("dask.distributed")
    assert 'nk.train(model, X, y, scheme="admm", workers=2)' in MAIN_README
    final, iterations, early, early_iterations = quoted(
        r"ADMM ([\d.]+)% in (\d+) iterations \(([\d.]+)% after (\d+)\)", MAIN_README)
    namespace = dict(example)
    readme_model(namespace)
    model, X_test, y_test = namespace["model"], example["X_test"], example["y_test"]
    history = nk.train(model, example["X"], example["y"], scheme="admm", workers=2, validation_data=(X_test, y_test))
    assert history.epochs == int(iterations)
    at_least(history["val_accuracy"][int(early_iterations) - 1], early)
    at_least(nk.evaluate(model, X_test, y_test)["accuracy"], final)
