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

CONFIGS = [G.GemmConfig(8, 8, 4, 2, 2), G.SIMULATOR, G.GemmConfig(16, 8, 8, 4, 2), G.MEDIUM, G.LARGE]


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
    m, n, k = (5, 7, 29) if not real_gpu else (64, 25, 100_003)
    for splits, bias_mode, grp, beta in [(3, 1, 0, False), (4, 2, 0, True), (2, 2, 7, False)]:
        got, ref = _gemm_case(rng, G.SIMULATOR, m, n, k, a_kc, b_kc, np.float32, dev,
                              bias_mode=bias_mode, grp=grp, beta=beta, splits=splits)
        close(got, ref, 1.0 if not real_gpu else 20.0)


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
    for cfg in (G.LARGE, G.MEDIUM, G.SIMULATOR):
        G.check_config(cfg)
    for dtype in (np.float32, np.float64):
        for m, n in [(1, 1), (4096, 4096)]:
            assert G.default_config(dtype, m, n) in (G.LARGE, G.MEDIUM, G.SIMULATOR)


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
