"""The device step plan: an epoch on the GPU allocates nothing, copies nothing and never waits for
the device; its numbers are the CPU's. Under the CUDA simulator, on a tiny digits-like CNN (6x6 images)."""
import contextlib

import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import Callback
from nkernels.runtime import devices
from nkernels.runtime.counting import count_device_work

pytestmark = pytest.mark.cuda
L = nk.layers


def tiny_cnn(seed=0):
    return nk.Sequential([L.Conv2D(1, 2, 3), L.BatchNorm2D(2), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                          L.Dropout(0.25), L.Dense(2 * 2 * 2, 10)], seed=seed)


def images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6)).astype(np.float32), rng.integers(0, 10, n)


class CountSecondEpoch(Callback):
    """Counts what the device does from the second epoch's start to its last batch's end (the plan is
    built in the first), without reading the per-batch loss."""

    wants_batches = True

    def __init__(self, batches):
        self.batches, self.counts, self._open = batches, None, contextlib.ExitStack()

    def on_epoch_begin(self, epoch):
        if epoch == 1:
            self.counts = self._open.enter_context(count_device_work())

    def on_batch_end(self, batch, logs):
        assert "size" in logs
        if self.counts is not None and batch == self.batches - 1:
            self._open.close()


@pytest.mark.parametrize("optimizer, options", [("adam", {"clip_norm": 0.5}), ("sgd", {"momentum": 0.9})])
def test_an_epoch_on_the_gpu_allocates_copies_and_waits_for_nothing(optimizer, options):
    X, y = images()
    counter = CountSecondEpoch(batches=4)
    nk.train(tiny_cnn(), X, y, epochs=2, batch_size=2, optimizer=optimizer, lr=0.01, seed=0, device="cuda",
             callbacks=[counter], **options)
    counts = counter.counts
    assert counts is not None and counts.launches > 0
    assert counts.allocations == 0, counts
    assert counts.host_waits == 0, counts      # no sync, no device-to-host copy
    assert counts.implicit_copies == 0, counts
    assert counts.host_to_device <= 1, counts  # the epoch's shuffled order, once


def test_a_callback_that_reads_the_loss_gets_it_and_the_cpus_value():
    X, y = images()
    seen = {}

    class Reader(Callback):
        wants_batches = True

        def on_batch_end(self, batch, logs):
            seen.setdefault(self.context.model.device, []).append(dict(logs))

    for device in ("cpu", "cuda"):
        nk.train(tiny_cnn(), X, y, epochs=1, batch_size=4, optimizer="sgd", lr=0.05, seed=0, device=device,
                 callbacks=[Reader()], compiled=False)
    assert [sorted(logs) for logs in seen["cuda"]] == [sorted(logs) for logs in seen["cpu"]]
    np.testing.assert_allclose([logs["loss"] for logs in seen["cuda"]], [logs["loss"] for logs in seen["cpu"]],
                               rtol=1e-5)


def test_the_planned_step_matches_the_cpu_with_batchnorm_dropout_and_a_last_short_batch():
    """Parameters, BatchNorm's running statistics (updated on the device) and the optimizer state
    agree with the CPU's after an epoch whose last batch is smaller. (SGD: Adam would turn the
    conv bias's gradient, zero but for rounding under the BatchNorm after it, into full steps.)"""
    X, y = images(n=7)
    cpu, gpu = tiny_cnn(), tiny_cnn()
    kwargs = dict(epochs=1, batch_size=2, optimizer="sgd", momentum=0.9, lr=0.05, seed=0, clip_norm=1.0,
                  max_norm=2.0)
    h_cpu = nk.train(cpu, X, y, compiled=False, **kwargs)
    h_gpu = nk.train(gpu, X, y, device="cuda", **kwargs)
    np.testing.assert_allclose(h_gpu["loss"], h_cpu["loss"], rtol=1e-5)
    assert h_gpu["accuracy"] == h_cpu["accuracy"]
    for key, value in cpu.params.items():
        np.testing.assert_allclose(devices.to_host(gpu.params[key]), value, rtol=1e-4, atol=1e-6, err_msg=key)
    for key, value in cpu.buffers.items():
        np.testing.assert_allclose(gpu.buffers[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def test_step_counts_reports_a_planned_step():
    from nkernels.trainers.device import step_counts

    X, y = images(n=6)
    counts = step_counts(tiny_cnn(), X, y, batch_size=2, batches=3, optimizer="adam")
    assert counts["planned"] and counts["plan_error"] is None
    step = counts["per_step"]
    assert step["launches"] > 0
    assert step["allocations"] == step["host_waits"] == step["host_to_device"] == 0
    assert counts["per_run"]["device_to_host"] >= 1  # the results, once per run


def fusable_net(seed=0):
    """Three pairs that fuse: Dense-Sigmoid, Dense-Tanh and Dense-ReLU (the last the model's output)."""
    return nk.Sequential([L.Flatten(), L.Dense(36, 5), L.Sigmoid(), L.Dense(5, 4), L.Tanh(), L.Dense(4, 10),
                          L.ReLU()], seed=seed)


def test_activations_fused_into_the_gemm_epilogue_save_a_launch_each_and_change_no_number(monkeypatch):
    """The step plan fuses a Dense (or a convolution) with the activation after it, whose GEMM's epilogue
    applies it: one launch fewer per fused pair and per step (counted over the second epoch's one step), the
    losses and parameters after two steps bit for bit those of the unfused plan. nkernels' own GEMM is pinned:
    the epilogue is its (a registered vendor GEMM writes the product and the activation's kernel follows)."""
    from nkernels.kernels.cuda import gemm as G
    from nkernels.trainers.step_plan import StepPlan

    monkeypatch.setattr(G, "gemm_in_force", lambda: G.tiled_gemm)
    X, y = images(n=4)
    results = {}
    for fuse in (True, False):
        monkeypatch.setattr(StepPlan, "fuse_activations", fuse)
        model, counter = fusable_net(), CountSecondEpoch(batches=1)
        history = nk.train(model, X, y, epochs=2, batch_size=4, optimizer="sgd", momentum=0.9, lr=0.1, seed=0,
                           device="cuda", callbacks=[counter])
        results[fuse] = history["loss"], {k: devices.to_host(v) for k, v in model.params.items()}, counter.counts
    (loss_f, params_f, counts_f), (loss_u, params_u, counts_u) = results[True], results[False]
    assert loss_f == loss_u
    for key, value in params_u.items():
        np.testing.assert_array_equal(params_f[key], value, err_msg=key)
    assert counts_u.launches - counts_f.launches == 3
    assert counts_f.allocations == 0


def test_epilogue_activation_fuses_only_what_the_epilogue_computes():
    from nkernels.trainers.step_plan import epilogue_activation

    dense = L.Dense(3, 3).passes((2, 3))
    conv = L.Conv2D(1, 1, 3).passes((2, 1, 4, 4))
    assert epilogue_activation(dense, L.ReLU().passes((2, 3))) == "relu"
    assert epilogue_activation(conv, L.Tanh().passes((2, 1, 2, 2))) == "tanh"
    assert epilogue_activation(dense, L.GELU().passes((2, 3))) is None      # its backward reads the input
    assert epilogue_activation(dense, L.SiLU().passes((2, 3))) is None
    assert epilogue_activation(L.ReLU().passes((2, 3)), L.ReLU().passes((2, 3))) is None  # no GEMM
    assert epilogue_activation(dense, L.Dense(3, 3).passes((2, 3))) is None
