"""Checkpoints: resuming gives bit-identical weights; a save killed midway leaves the old file intact."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import CorruptFileError
from nkernels.schedules import EarlyStopping, ReduceLROnPlateau

L = nk.layers
ROOT = str(Path(__file__).resolve().parent.parent)


def child_env():
    """The environment of a child Python that imports this checkout's nkernels, wherever pytest runs."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}


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


def test_a_reused_scheme_still_resumes_the_saved_optimizer_state(tmp_path, images):
    """Each fit starts from a fresh optimizer, except that resume=True takes the checkpoint's moments."""
    X, y = images[0], images[1]
    straight = model()
    nk.train(straight, X, y, epochs=4, batch_size=48, seed=9, lr=3e-3)
    scheme = nk.schemes.Backprop(lr=3e-3, checkpoint_dir=tmp_path, resume=True)
    scheme.fit(model(), X, y, epochs=2, batch_size=48, seed=9)   # no checkpoint yet: starts afresh, saves
    scheme.fit(model(), X, y, epochs=4, batch_size=48, seed=9)   # the same object continues that run
    resumed = nk.load(tmp_path / "checkpoint.safetensors")
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    assert scheme.optimizer.steps == 0 and scheme.optimizer.state == {}


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
                               stdout=subprocess.PIPE, text=True, env=child_env())
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


def test_a_run_without_a_seed_resumes_exactly(tmp_path, images):
    """The augmentation seed travels in the checkpoint, so seed=None resumes exactly too."""
    import shutil

    X, y, Xv, yv = images
    nk.train(model(), X, y, epochs=1, batch_size=48, augment_shift=2, checkpoint_dir=tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    finished = []
    for run in ("a", "b"):
        m = model()
        nk.train(m, X, y, epochs=3, batch_size=48, augment_shift=2, checkpoint_dir=tmp_path / run, resume=True)
        finished.append(m.params)
    for key in finished[0]:
        np.testing.assert_array_equal(finished[0][key], finished[1][key])


def test_resume_with_no_checkpoint_yet_starts_afresh_and_csv_logs_carry_on(tmp_path, images):
    from nkernels.callbacks import CSVLogger

    log = tmp_path / "log.csv"
    straight = model()
    h_straight = train(straight, images, 3)
    resumed = model()
    train(resumed, images, 2, checkpoint_dir=tmp_path / "run", resume=True, callbacks=[CSVLogger(log)])
    h_resumed = train(resumed, images, 3, checkpoint_dir=tmp_path / "run", resume=True,
                      callbacks=[CSVLogger(log)])
    assert h_resumed["loss"] == h_straight["loss"]
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    lines = log.read_text().splitlines()
    assert lines[0].startswith("epoch,loss,") and [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]


def test_resuming_from_a_corrupt_checkpoint_is_a_clear_error(tmp_path, images):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CorruptFileError, match="not a readable safetensors file"):
        train(model(), images, 2, checkpoint_dir=tmp_path, resume=True)


KILLED_TRAINING = """
import os, sys, time
import nkernels as nk
from nkernels.export.io import read_checkpoint
directory = sys.argv[1]
X, y = nk.datasets.load("digits")[:2]
real_replace = os.replace
def replace(src, dst):
    if dst.endswith("checkpoint.safetensors") and os.path.exists(dst):  # the second checkpoint
        print("writing", flush=True)
        time.sleep(60)
    real_replace(src, dst)
os.replace = replace
model = nk.Sequential([nk.layers.Dense(64, 16), nk.layers.ReLU(), nk.layers.Dense(16, 10)], seed=0)
nk.train(model, X[:100], y[:100], epochs=3, batch_size=32, seed=1, checkpoint_dir=directory)
"""


def test_training_killed_while_checkpointing_resumes_to_the_same_weights(tmp_path):
    from nkernels.export.io import read_checkpoint

    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_TRAINING), str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert process.stdout.readline().strip() == "writing"  # the new file is whole, not yet renamed
    finally:
        process.kill()  # SIGKILL
        process.wait()
    assert read_checkpoint(tmp_path / "checkpoint.safetensors").extra["position"]["epoch"] == 1  # the previous one
    X, y = nk.datasets.load("digits")[:2]

    def mlp():
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)

    straight, resumed = mlp(), mlp()
    nk.train(straight, X[:100], y[:100], epochs=3, batch_size=32, seed=1)
    nk.train(resumed, X[:100], y[:100], epochs=3, batch_size=32, seed=1, checkpoint_dir=tmp_path, resume=True)
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])


def test_a_run_warming_up_resumes_bit_identical_and_refuses_another_warm_up(tmp_path, images):
    from nkernels.schedules import CosineLR

    def schedule(warmup=2):
        return CosineLR(total_epochs=5, warmup_epochs=warmup)

    straight = model()
    h_straight = train(straight, images, 5, schedule=schedule())
    train(model(), images, 1, checkpoint_dir=tmp_path, schedule=schedule())  # stopped inside the warm-up
    resumed = model()
    h_resumed = train(resumed, images, 5, checkpoint_dir=tmp_path, resume=True, schedule=schedule())
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    assert h_resumed["lr"] == h_straight["lr"] and h_resumed["lr"][0] < h_resumed["lr"][2]
    with pytest.raises(ValueError, match="warmed up for 2 epochs, this one for 1; resume with warmup_epochs=2"):
        train(model(), images, 5, checkpoint_dir=tmp_path, resume=True, schedule=schedule(1))
