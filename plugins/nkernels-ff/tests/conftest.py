import pytest


@pytest.fixture(scope="session")
def digits():
    """The digits split as flat vectors: (X_train, y_train, X_test, y_test)."""
    import nkernels as nk

    return nk.datasets.load("digits")
