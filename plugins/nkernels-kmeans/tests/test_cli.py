"""``python -m nkernels_kmeans``: fit, train a head in one model, report, save."""
import numpy as np

import nkernels as nk
from nkernels_kmeans.__main__ import main


def test_fits_trains_reports_and_saves(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    assert main(["--option", "n_clusters=20", "--option", "encoding=hard", "--epochs", "2", "--quiet",
                 "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kmeans on digits: 20 features" in out and "held-out accuracy" in out
    model = nk.load(path)
    assert model[0].extractor.encoding == "hard"
    X = nk.datasets.load("digits")[2][:5]
    np.testing.assert_array_equal(model[0](X).sum(axis=1), np.ones(5))


def test_bad_options_exit_with_code_2(capsys):
    assert main(["--option", "n_clusters=0", "--quiet"]) == 2
    assert "n_clusters must be at least 1" in capsys.readouterr().err
