"""Figure tests of the autoencoder scheme (``pytest -m slow``): the README's digits example run as shown,
and the seed-0 column of its table (logistic-regression heads on raw pixels and on first-layer features),
each model trained once. The trained features' figures are met within 0.6 points (three test digits of
540): BLAS picks other kernels on other CPUs, which moves the last bits of the training."""
import re
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import nkernels as nk

pytestmark = pytest.mark.slow

L = nk.layers
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README[README.index("## The autoencoder scheme"):]
SLACK = 0.6  # percentage points


def quoted_row(label):
    """The seed-0 accuracy (in %) the README's table quotes on the row starting with ``label``."""
    return re.search(r"^\| " + re.escape(label) + r"[^|]*\| (\d+\.\d+)%", SECTION, re.MULTILINE).group(1)


def head_accuracy(features, digits):
    X, y, X_test, y_test = digits
    return LogisticRegression(max_iter=5000).fit(features(X), y).score(features(X_test), y_test)


@pytest.fixture(scope="module")
def readme_example():
    """The namespace of the README's example, run once as shown."""
    block = re.search(r"```python\n(.*?)```", SECTION, re.DOTALL).group(1)
    namespace: dict = {}
    exec(block, namespace)
    return block, namespace


def test_the_readme_example_reaches_97_percent_with_the_defaults(readme_example, digits):
    """Denoising autoencoder features (the defaults) and a logistic-regression head: the accuracy quoted, >= 97%."""
    block, namespace = readme_example
    quoted = re.search(r"head\.score\(encoder\.predict\(X_test\), y_test\)\s+# (0\.\d+)", block).group(1)
    accuracy = namespace["head"].score(namespace["encoder"].predict(namespace["X_test"]), namespace["y_test"])
    assert 100 * accuracy >= 100 * float(quoted) - SLACK and accuracy >= 0.97
    assert 100 * accuracy >= float(quoted_row("denoising autoencoder, the defaults")) - SLACK
    assert len(namespace["history"]["val_loss"]) == 30


@pytest.mark.parametrize("label, options", [("plain autoencoder", {"corruption": 0.0}),
                                            ("Gaussian noise", {"noise_std": 0.1}),
                                            ("binary cross-entropy", {"loss": "bce_with_logits"}),
                                            ("untrained Dense(64, 128) + ReLU", None)])
def test_the_table_figures_for_seed_0(digits, label, options):
    X = digits[0]
    model = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64)], seed=0)
    scheme = nk.registry.schemes["autoencoder"](**(options or {}))
    if options is not None:
        nk.train(model, X, scheme=scheme, seed=0)
    accuracy, quoted = 100 * head_accuracy(scheme.encoder(model).predict, digits), quoted_row(label)
    if options is None:  # untrained features: no training whose last bits BLAS could move
        assert f"{accuracy:.2f}" == quoted
    else:
        assert accuracy >= float(quoted) - SLACK, f"{accuracy:.2f}% where the README quotes {quoted}%"


def test_the_raw_pixel_figure(digits):
    assert f"{100 * head_accuracy(lambda A: A, digits):.2f}" == quoted_row("raw pixels")
