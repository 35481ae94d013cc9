"""The tiled CUDA GEMM (nkernels.kernels.cuda.gemm), which the dense, convolution and recurrent kernels
run on, against float64 NumPy products: every operand layout, bias mode, output layout and beta, several
tile configurations (the production ones too), sizes that leave partial tiles in every dimension.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run on a
real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1: see conftest.py.
"""
import numpy as np
import pytest

from nkernels.kernels.cuda import gemm as G

pytestmark = pytest.mark.cuda

#: Simulator-sized stand-ins for the skinny shapes (short M, short N, a 2-row micro-tile) first.
SKINNY = [G.GemmConfig(4, 16, 4, 2, 8), G.GemmConfig(16, 4, 4, 8, 2)]
CONFIGS = SKINNY + [G.GemmConfig(8, 8, 4, 2, 2), G.SIMULATOR, G.GemmConfig(16, 8, 8, 4, 2), G.MEDIUM, G.LARGE]


def _gemm_case(rng, cfg, m, n, k, a_kcontig, b_kcontig, dtype, dev, bias_mode=0, grp=0, beta=False,
               splits=1):
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    a = A if a_kcontig else np.ascontiguousarray(A.T)
    b = np.ascontiguousarray(B.T) if b_kcontig else B
    bias = rng.standard_normal(n if bias_mode == 1 else m).astype(dtype)
    c0 = rng.standard_normal(m * n).astype(dtype)
    ref = A.astype(np.float64) @ B
    if bias_mode == 1:
        ref = ref + bias
    elif bias_mode == 2:
        ref = ref + bias[:, None]
    if grp:  # (M, imgs*grp) product written as (imgs, M, grp)
        ref = ref.reshape(m, n // grp, grp).transpose(1, 0, 2)
    ref = ref.reshape(-1) + (c0 if beta else 0)
    d_c = dev(c0 if beta else np.full(m * n, np.nan, dtype))
    G.gemm(dev(a.reshape(-1)), dev(b.reshape(-1)), d_c, m, n, k, a_kcontig=a_kcontig,
           b_kcontig=b_kcontig, lda=k if a_kcontig else m, ldb=k if b_kcontig else n, ldc=n,
           bias=dev(bias), bias_mode=bias_mode, grp=grp, beta=beta, config=cfg,
           splits=splits)
    return d_c, ref


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "x".join(map(str, c[:5])))
def test_gemm_layouts_and_partial_tiles(cfg, dev, close, real_gpu):
    rng = np.random.default_rng(2)
    production = cfg.threads > 16  # 256 simulated threads a block: fewer, smaller cases
    for a_kc, b_kc in [(True, True), (False, False)] + ([] if production else [(True, False), (False, True)]):
        if real_gpu:
            m, n, k = 300, 257, 129
        elif production:
            m, n, k = 3, cfg.bn + 2, cfg.bk + 1
        else:
            m, n, k = cfg.bm + 3, cfg.bn + 5, 2 * cfg.bk + 1
        got, ref = _gemm_case(rng, cfg, m, n, k, a_kc, b_kc, np.float32, dev, bias_mode=1)
        close(got, ref)
    got, ref = _gemm_case(rng, cfg, 5, 3, 6, True, False, np.float64, dev, bias_mode=2, beta=True)
    close(got, ref)


@pytest.mark.parametrize("a_kc, b_kc", [(True, True), (False, False)])
def test_gemm_split_k(a_kc, b_kc, dev, close, real_gpu):
    """A long K cut into slices summed by a second kernel (weight gradients), every epilogue."""
    rng = np.random.default_rng(4)
    m, n, k = (5, 7, 29) if not real_gpu else (64, 28, 100_003)  # grp 7 below: n a multiple of 7
    for splits, bias_mode, grp, beta in [(3, 1, 0, False), (4, 2, 0, True), (2, 2, 7, False)]:
        got, ref = _gemm_case(rng, G.SIMULATOR, m, n, k, a_kc, b_kc, np.float32, dev,
                              bias_mode=bias_mode, grp=grp, beta=beta, splits=splits)
        close(got, ref, 1.0 if not real_gpu else 20.0)


@pytest.mark.parametrize("cfg", SKINNY, ids=lambda c: "x".join(map(str, c[:5])))
def test_gemm_interior_tiles_and_split_k(cfg, dtype, dev, close, real_gpu):
    """Sizes the tiles divide (every tile interior: the unchecked loads alone, K tiles all complete), then
    interior and edge tiles side by side with a partial last K tile, each also split along K."""
    rng = np.random.default_rng(5)
    whole = (2 * cfg.bm, 2 * cfg.bn, 3 * cfg.bk)
    mixed = (2 * cfg.bm + 1, cfg.bn + 3, 3 * cfg.bk + 2)
    if real_gpu:
        whole, mixed = (512, 384, 256), (515, 387, 259)
    for (m, n, k), a_kc, b_kc, splits in [(whole, True, True, 1), (whole, False, False, 3),
                                          (mixed, True, False, 1), (mixed, False, True, 3)]:
        got, ref = _gemm_case(rng, cfg, m, n, k, a_kc, b_kc, dtype, dev, bias_mode=1, beta=splits > 1,
                              splits=splits)
        close(got, ref)


def test_gemm_interior_loads_are_unchecked_and_edge_loads_checked():
    src = G.gemm_source(G.LARGE, True, True, False, real_gpu=True)
    fast = src[src.index("if interior & (t + 1 < kfull):"):src.index("elif t + 1 < ktiles:")]
    slow = src[src.index("elif t + 1 < ktiles:"):src.index("if t >= 0:", src.index("elif t + 1 < ktiles:"))]
    assert "ra0 = a[" in fast and " < M)" not in fast and " < K)" not in fast
    assert " < M)" in slow and " < K)" in slow


def test_default_config_follows_the_problem_shape(monkeypatch):
    """Skinny products get tiles as short as their short side (LeNet's conv1: a few output channels times
    every pixel of the batch), large float32 ones 128 x 128 tiles, the rest 64 x 64 (on a 132-SM GPU)."""
    monkeypatch.setattr(G, "simulator", lambda: False)
    monkeypatch.setattr(G, "sm_count", lambda: 132)
    f32, f64 = np.float32, np.float64
    assert G.default_config(f32, 32, 100_352) == G.SMALL_M      # LeNet-like conv1 forward, 32 channels
    assert G.default_config(f32, 6, 100_352) == G.TINY_M        # ... 6 channels
    assert G.default_config(f32, 4096, 10) == G.TINY_N          # a classifier head over a large batch
    assert G.default_config(f32, 50_000, 25) == G.SMALL_N       # conv's dcols (P x C*KH*KW)
    assert G.default_config(f64, 20, 5000) == G.SMALL_M64
    assert G.default_config(f64, 5000, 20) == G.SMALL_N64
    assert G.default_config(f32, 4096, 4096) == G.LARGE
    assert G.default_config(f32, 512, 512) == G.MEDIUM          # 16 large tiles: too few for 132 SMs
    assert G.default_config(f32, 32, 64) == G.MEDIUM            # short on both sides: not skinny
    assert G.default_config(f64, 4096, 4096) == G.MEDIUM


def test_gemm_conv_output_layout_and_empty_k(dev, close):
    rng = np.random.default_rng(3)
    got, ref = _gemm_case(rng, G.SIMULATOR, 7, 12, 5, True, True, np.float32, dev, bias_mode=2, grp=4)
    close(got, ref)
    got, ref = _gemm_case(rng, G.SIMULATOR, 3, 10, 0, True, False, np.float64, dev, bias_mode=1)
    close(got, ref)  # K = 0: the bias alone


def test_gemm_config_checks():
    with pytest.raises(ValueError):
        G.check_config(G.GemmConfig(16, 16, 4, 3, 3))
    src = G.gemm_source(G.LARGE, True, True, False, real_gpu=True)
    assert "alignment=16" in src and "for i in" not in src  # straight-line micro-tile code


def test_gemm_with_an_empty_output_writes_nothing(dev):
    c = dev(np.full(4, 7.0))
    G.gemm(dev(np.ones(4)), dev(np.ones(4)), c, 0, 4, 1, a_kcontig=True, b_kcontig=True, lda=1, ldb=1, ldc=4)
    np.testing.assert_array_equal(c.copy_to_host(), 7.0)


def test_default_configs_are_valid():
    configs = (G.LARGE, G.MEDIUM, G.SMALL_M, G.SMALL_N, G.TINY_M, G.TINY_N, G.SMALL_M64, G.SMALL_N64, G.SIMULATOR)
    for cfg in configs:
        G.check_config(cfg)
    for dtype in (np.float32, np.float64):
        for m, n in [(1, 1), (4096, 4096), (6, 4096), (4096, 6)]:
            assert G.default_config(dtype, m, n) in configs


@pytest.mark.parametrize("rows, cols, lda, a_off", [(5, 7, 9, 2), (1, 1, 1, 0), (4, 0, 1, 0)])
def test_column_and_row_sums_match_numpy(rows, cols, lda, a_off, dtype, dev, poison, close):
    """The bias gradients' sums, over a row-major matrix inside a larger flat buffer (``lda`` apart, from
    ``a_off``), accumulated in float64 and rounded once."""
    rng = np.random.default_rng(rows * 10 + cols)
    flat = rng.standard_normal(a_off + rows * lda + 3).astype(dtype)
    matrix = np.lib.stride_tricks.as_strided(flat[a_off:], (rows, cols), (lda * flat.itemsize, flat.itemsize))
    d_cols = poison(cols, dtype)
    G.column_sums(dev(flat), rows, cols, lda, d_cols, a_off=a_off)
    close(d_cols, matrix.astype(np.float64).sum(axis=0))
    dense = np.ascontiguousarray(matrix)
    d_rows = poison(rows, dtype) if cols else dev(np.full(rows, 0.0, dtype))
    G.row_sums(dev(dense.reshape(-1)), rows, cols, d_rows)
    close(d_rows, dense.astype(np.float64).sum(axis=1))


def test_a_registered_gemm_runs_the_layers_gemm_and_may_decline(monkeypatch, dev):
    """The layers' GEMM goes to the GEMM in force (a vendor GEMM registered above the tiled one); one that
    returns NotImplemented for a case leaves it to the tiled GEMM."""
    seen = []

    def declining(*args, **kwargs):
        seen.append(kwargs["grp"])
        return NotImplemented

    monkeypatch.setattr(G, "gemm_in_force", lambda: declining)
    c = dev(np.zeros(4))
    G.gemm(dev(np.ones(4)), dev(np.ones(4)), c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=2)
    assert seen == [0] and np.all(c.copy_to_host() == 2.0)  # declined: the tiled GEMM computed it
    monkeypatch.setattr(G, "gemm_in_force", lambda: lambda *a, **k: seen.append("vendor"))
    G.gemm(dev(np.ones(4)), dev(np.ones(4)), c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=2)
    assert seen == [0, "vendor"]


def test_the_tiled_gemm_is_the_registered_cuda_gemm():
    import nkernels as nk

    if not G.simulator():
        pytest.skip("on a GPU with CuPy the vendor GEMM plugin may be in force")
    record = nk.registry.kernels.record(("gemm", "cuda"))  # the vendor plugin never registers here
    assert record.priority == 0 and record.function.function is G.tiled_gemm


def test_time_gemm_runs_and_checks_the_product():
    """The device figure script's GEMM timing (4096^3 fp32 on the GPU), on a tiny product here: it runs the
    chosen GEMM and reports its error against NumPy (the times mean nothing under the simulator)."""
    result = G.time_gemm(9, 18, 5, np.float64, repeat=1, calls=1, config=G.SIMULATOR)
    assert result["config"] == tuple(G.SIMULATOR) and result["max_rel_error"] < 1e-12
    assert isinstance(result["seconds"], float) and (result["m"], result["n"], result["k"]) == (9, 18, 5)
    assert G.time_gemm(4, 4, 4, np.float32, repeat=1, calls=1, which="in_force")["max_rel_error"] < 1e-5
    with pytest.raises(ValueError, match="no effect"):
        G.time_gemm(4, 4, 4, which="in_force", config=G.SIMULATOR)


@pytest.mark.parametrize("activation", sorted(G.EPILOGUE_ACTIVATIONS))
def test_gemm_epilogue_activation_writes_what_gemm_then_activation_kernel_writes(activation, dev, real_gpu):
    """``activation=`` applies the activation after the bias (and beta's sum) as the GEMM stores, in one
    launch; split-K applies it in the reduce, after the slices' sum. Bit for bit the output of the plain GEMM
    followed by the activation's own forward kernel, in every epilogue (bias along n or m, NCHW layout, beta)."""
    from nkernels.kernels.cuda import activation as act_kernels

    forward = getattr(act_kernels, activation + "_forward")
    rng = np.random.default_rng(7)
    m, n, k = (5, 6, 9) if not real_gpu else (300, 258, 129)  # n holds whole groups of 3 and of 2
    for splits, bias_mode, grp, beta, dtype in [(1, 1, 0, False, np.float32), (1, 2, 3, True, np.float64),
                                                (2, 1, 0, True, np.float32), (3, 2, 2, False, np.float64)]:
        a = dev(rng.standard_normal(m * k).astype(dtype))
        b = dev(rng.standard_normal(k * n).astype(dtype))
        bias = dev(rng.standard_normal(max(m, n)).astype(dtype))
        c0 = rng.standard_normal(m * n).astype(dtype)
        common = dict(a_kcontig=True, b_kcontig=False, lda=k, ldb=n, ldc=n, bias=bias, bias_mode=bias_mode,
                      grp=grp, beta=beta, config=G.SIMULATOR, splits=splits)
        fused, plain = dev(c0), dev(c0)
        G.gemm(a, b, fused, m, n, k, activation=activation, **common)
        G.gemm(a, b, plain, m, n, k, **common)
        forward(plain, plain)
        np.testing.assert_array_equal(fused.copy_to_host(), plain.copy_to_host())
    assert f"activation={activation}" in G.gemm_source(G.LARGE, True, True, False, True, activation)


def test_gemm_refuses_a_group_that_does_not_divide_n(dev):
    """A grouped output (a convolution's NCHW) holds whole images of ``grp`` outputs: a partial last group
    would be stored past C's end (the H200, 2026-12-04: n = 257 in groups of 3 corrupted the next
    array), so it is refused before any launch, by the tiled GEMM and by the dispatcher alike."""
    c = dev(np.full(6, 7.0))
    for run in (G.gemm, G.tiled_gemm):
        for grp in (4, -1):
            with pytest.raises(ValueError, match=f"grp={grp} must be 0 .* or divide n=6"):
                run(dev(np.ones(2)), dev(np.ones(6)), c, 1, 6, 1, a_kcontig=True, b_kcontig=False, lda=1, ldb=6,
                    ldc=6, grp=grp)
    assert c.copy_to_host().tolist() == [7.0] * 6


def test_gemm_epilogue_activation_is_checked_and_follows_a_registered_gemm(monkeypatch, dev):
    """An activation the epilogue does not know is refused before any launch; with a registered GEMM in
    force, the activation's kernel follows its product where the product fills its ``m * n`` elements
    (a row-major C, or a grouped one: a convolution's), and the tiled GEMM takes a strided C."""
    c = dev(np.zeros(4))
    with pytest.raises(ValueError, match="no activation 'softplus'.*relu"):
        G.gemm(dev(np.ones(4)), dev(np.ones(4)), c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2,
               ldc=2, activation="softplus")
    seen = []

    def vendor(*args, **kwargs):
        seen.append(kwargs["grp"])
        return G.tiled_gemm(*args, **kwargs)

    monkeypatch.setattr(G, "gemm_in_force", lambda: vendor)
    a = dev(np.array([1.0, -1.0, 2.0, -3.0]))
    G.gemm(a, dev(np.eye(2).reshape(-1)), c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=2,
           activation="relu")
    assert seen == [0] and c.copy_to_host().tolist() == [1.0, 0.0, 2.0, 0.0]
    G.gemm(a, dev(np.eye(2).reshape(-1)), c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=2,
           grp=1, activation="relu")
    assert seen == [0, 1]  # the NCHW layout (here C's transpose) fills its 4 elements: the vendor, then ReLU
    assert c.copy_to_host().tolist() == [1.0, 2.0, 0.0, 0.0]
    strided = dev(np.full(6, -5.0))
    G.gemm(a, dev(np.eye(2).reshape(-1)), strided, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=3,
           activation="relu")
    assert seen == [0, 1]  # rows 3 apart: the tiled GEMM, its epilogue; the gap is left alone
    assert strided.copy_to_host().tolist() == [1.0, 0.0, -5.0, 2.0, 0.0, -5.0]
