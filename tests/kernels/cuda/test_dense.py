"""CUDA dense kernels and the tiled GEMM against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes, with small
GEMM tiles so that odd sizes cover several full and partial tiles. They also run on a real GPU
(without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1: see conftest.py.
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import dense as cpu
from nkernels.kernels.cuda import dense as gpu
from nkernels.kernels.cuda import gemm as G

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(N, in, out) cases: sizes that do not divide the tiles (16 under the simulator, 64/128 on a GPU)."""
    return pick([(3, 5, 4), (19, 7, 21)], [(3, 5, 4), (257, 300, 129), (1024, 784, 512)])


def test_dense_forward_and_backward_match_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for n, k_in, m_out in shapes:
        x = rng.standard_normal((n, k_in)).astype(dtype)
        w = rng.standard_normal((m_out, k_in)).astype(dtype)
        b = rng.standard_normal(m_out).astype(dtype)
        dy = rng.standard_normal((n, m_out)).astype(dtype)
        scale = max(1.0, np.sqrt(k_in) / 8)
        out = np.empty((n, m_out), dtype)
        cpu.dense_forward(x, w, b, out)
        d_out = poison((n, m_out), dtype)
        gpu.dense_forward(dev(x), dev(w), dev(b), d_out)
        close(d_out, out, scale)

        dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
        cpu.dense_backward(x, dy, w, True, dx, dw, db)
        d_dx, d_dw, d_db = poison(x.shape, dtype), poison(w.shape, dtype), poison(b.shape, dtype)
        gpu.dense_backward(dev(x), dev(dy), dev(w), True, d_dx, d_dw, d_db)
        close(d_dx, dx, scale)
        close(d_dw, dw, max(1.0, np.sqrt(n) / 8))
        close(d_db, db, max(1.0, np.sqrt(n) / 8))


def test_dense_without_bias_and_without_dx(dtype, dev, poison, close):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(dtype)
    w = rng.standard_normal((2, 3)).astype(dtype)
    dy = rng.standard_normal((5, 2)).astype(dtype)
    none = np.empty(0, dtype)
    d_out = poison((5, 2), dtype)
    gpu.dense_forward(dev(x), dev(w), dev(none), d_out)
    close(d_out, x @ w.T)
    d_dx = poison(x.shape, dtype)
    d_dw = poison(w.shape, dtype)
    gpu.dense_backward(dev(x), dev(dy), dev(w), False, d_dx, d_dw, dev(none))
    close(d_dw, dy.T @ x)
    assert np.isnan(d_dx.copy_to_host()).all()  # need_dx=False leaves dx untouched


def test_dense_rejects_numpy_arrays(dev):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="device arrays"):
        gpu.dense_forward(x, dev(np.zeros((4, 3), np.float32)), dev(np.zeros(4, np.float32)),
                          dev(np.zeros((2, 4), np.float32)))


# The GEMM itself: every operand layout, bias mode, output layout and beta, several tile
# configurations (the production ones too), sizes that leave partial tiles in every dimension.
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
