"""Checkpoints: resuming gives bit-identical weights; a save killed midway leaves the old file intact."""
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import CorruptFileError
from nkernels.schedules import EarlyStopping, ReduceLROnPlateau

L = nk.layers


def model():
    return nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dropout(0.3),
                          L.Dense(64, 10)], seed=3)


@pytest.fixture(scope="module")
def images():
    X, y, Xv, yv = nk.datasets.load("digits", flat=False)
    return X[:160], y[:160], Xv[:60], yv[:60]


def train(m, data, epochs, **kw):
    X, y, Xv, yv = data
    return nk.train(m, X, y, epochs=epochs, batch_size=48, seed=9, validation_data=(Xv, yv), optimizer="adam",
                    lr=3e-3, augment_shift=1, **kw)


@pytest.mark.parametrize("compiled", [True, False])
def test_resumed_run_ends_bit_identical(tmp_path, images, compiled):
    straight = model()
    h_straight = train(straight, images, 4, compiled=compiled,
                       callbacks=[ReduceLROnPlateau(patience=1, monitor="loss")])
    interrupted = model()
    train(interrupted, images, 2, checkpoint_dir=tmp_path, compiled=compiled,
          callbacks=[ReduceLROnPlateau(patience=1, monitor="loss")])
    resumed = model()  # a fresh process would build the model again
    h_resumed = train(resumed, images, 4, checkpoint_dir=tmp_path, resume=True, compiled=compiled,
                      callbacks=[ReduceLROnPlateau(patience=1, monitor="loss")])
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    np.testing.assert_array_equal(straight.buffers["4.counter"], resumed.buffers["4.counter"])
    assert h_resumed["loss"] == h_straight["loss"] and h_resumed["lr"] == h_straight["lr"]


def test_resume_after_early_stopping_keeps_the_stopped_run(tmp_path, images):
    m = model()
    stopper = EarlyStopping(patience=1, monitor="loss", min_delta=10.0)
    history = train(m, images, 10, checkpoint_dir=tmp_path, callbacks=[stopper])
    assert len(history["loss"]) == 2
    again = model()
    resumed = train(again, images, 10, checkpoint_dir=tmp_path, resume=True,
                    callbacks=[EarlyStopping(patience=1, monitor="loss", min_delta=10.0)])
    assert len(resumed["loss"]) == 2
    for key in m.params:
        np.testing.assert_array_equal(m.params[key], again.params[key])


def test_resume_checks_what_it_continues(tmp_path, images):
    train(model(), images, 1, checkpoint_dir=tmp_path)
    other = nk.Sequential([L.Flatten(), L.Dense(64, 10)], seed=0)
    with pytest.raises(ValueError, match="different architecture"):
        train(other, images, 2, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        nk.schemes.Backprop(resume=True)
    nk.save(model(), tmp_path / "plain" / "checkpoint.safetensors")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        train(model(), images, 2, checkpoint_dir=tmp_path / "plain", resume=True)


KILLED_WRITER = """
import os, sys, time
import numpy as np
import nkernels as nk
path = sys.argv[1]
model = nk.Sequential([nk.layers.Dense(200, 300)], seed=0)
nk.save(model, path)
model.params["0.weight"][...] = 7.0
real_fsync = os.fsync
def stall(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = stall
nk.save(model, path)
"""


def test_a_save_killed_midway_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "model.safetensors"
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(path)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
    loaded = nk.load(path)
    reference = nk.Sequential([L.Dense(200, 300)], seed=0)
    np.testing.assert_array_equal(loaded.params["0.weight"], reference.params["0.weight"])
    assert not np.any(loaded.params["0.weight"] == 7.0)


def test_loading_never_executes_code_and_rejects_tampered_configs(tmp_path):
    import json

    from safetensors.numpy import save_file

    marker = tmp_path / "pwned"
    config = {"layers": [{"type": "dense", "config": {"in_features": 2, "out_features": 2,
                                                       "bias": f"__import__('os').system('touch {marker}')"}}]}
    save_file({"model.0.weight": np.zeros((2, 2), np.float32)}, str(tmp_path / "evil.safetensors"),
              metadata={"format": "nkernels", "format_version": "1", "model": json.dumps(config)})
    with pytest.raises((TypeError, ValueError, CorruptFileError)):
        nk.load(tmp_path / "evil.safetensors")
    assert not marker.exists()


def test_stateless_callbacks_may_differ_when_resuming(tmp_path, images):
    from nkernels.callbacks import Callback

    train(model(), images, 1, checkpoint_dir=tmp_path, schedule="cosine")
    history = train(model(), images, 2, checkpoint_dir=tmp_path, resume=True, schedule="cosine",
                    callbacks=[Callback()])
    assert len(history["loss"]) == 2
    with pytest.raises(ValueError, match=r"callbacks \['CosineLR'\] but this run has \[\]"):
        train(model(), images, 3, checkpoint_dir=tmp_path, resume=True)
