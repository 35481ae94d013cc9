"""nkernels train --scheme gan --model gan: the preset pair, the sample grid and the saved generator."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import main


def test_the_command_line_trains_the_pair_and_writes_a_sample_grid(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    grid, saved = tmp_path / "grid.png", tmp_path / "generator.safetensors"
    assert main(["train", "--scheme", "gan", "--model", "gan", "--epochs", "2", "--option", "steps_per_epoch=2",
                 "--quiet", "--plot", str(grid), "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "generator_loss" in out and "100 samples written" in out
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    generator = nk.load(saved)
    samples = nk.sample(generator, 5, seed=0)
    assert samples.shape == (5, 64) and ((0 <= samples) & (samples <= 1)).all()  # the preset's Sigmoid


@pytest.mark.parametrize("argv, message", [
    (["--model", "gan"], "--model gan and --scheme gan go together"),
    (["--scheme", "gan"], "'mlp' does not pair with it"),
    (["--scheme", "gan", "--model", "gan", "--device", "cuda"], "runs on the CPU"),
])
def test_a_pair_preset_and_another_scheme_are_refused(argv, message, capsys):
    assert main(["train", "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("data_range, output", [((0.0, 1.0), "Sigmoid"), ((-1.0, 1.0), "Tanh")])
def test_the_preset_generator_ends_in_the_datas_range(data_range, output):
    generator, discriminator = nk.presets.gan((64,), data_range=data_range, seed=0)
    assert type(generator[-1]).__name__ == output
    assert [layer.out_features for layer in (generator[0], generator[2], discriminator[0], discriminator[2])] == \
        [128, 64, 128, 1]
    assert generator[0].in_features == 16


def test_the_preset_refuses_data_no_output_can_reach():
    with pytest.raises(ValueError, match="scale them first"):
        nk.presets.gan((64,), data_range=(0.0, 16.0))


def test_the_preset_pair_is_not_a_single_model():
    with pytest.raises(ValueError, match="--scheme gan --model gan"):
        nk.presets.build("gan", (64,), 10)


def test_a_seed_gives_the_same_pair():
    a, b = nk.presets.gan((64,), seed=2), nk.presets.gan((64,), seed=2)
    for left, right in zip(a, b):
        for key, value in left.params.items():
            np.testing.assert_array_equal(value, right.params[key])
