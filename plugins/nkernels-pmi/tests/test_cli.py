"""``python -m nkernels_pmi``: bad options exit with code 2 and a message (the figures themselves: test_figures)."""
from nkernels_pmi.__main__ import main


def test_bad_options_exit_with_code_2(capsys):
    assert main(["--option", "stages=[64,0]"]) == 2
    assert "stage 1: n_components must be at least 1" in capsys.readouterr().err
