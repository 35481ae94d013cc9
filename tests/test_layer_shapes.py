"""Hypothesis-driven shapes: random valid shapes never crash; invalid ones raise clear errors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nkernels as nk

L = nk.layers
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_pass(layer, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == layer.output_shape(shape)
    assert np.all(np.isfinite(y))
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))
    assert all(g.shape == layer.params[k].shape for k, g in layer.grads.items())


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), o=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2))
def test_conv2d_valid_shapes(n, c, o, h, w, k, s, p):
    layer = L.Conv2D(c, o, k, stride=s, padding=p)
    if h + 2 * p < k or w + 2 * p < k:
        with pytest.raises(ValueError, match="smaller than the kernel"):
            layer.forward(np.zeros((n, c, h, w)))
    else:
        run_pass(layer, (n, c, h, w))
        assert layer.output_shape((n, c, h, w))[2:] == ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), o=st.integers(1, 3), length=st.integers(1, 12),
       k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2))
def test_conv1d_valid_shapes(n, c, o, length, k, s, p):
    layer = L.Conv1D(c, o, k, stride=s, padding=p)
    if length + 2 * p < k:
        with pytest.raises(ValueError, match="smaller than the kernel"):
            layer.forward(np.zeros((n, c, length)))
    else:
        run_pass(layer, (n, c, length))


@SETTINGS
@given(kind=st.sampled_from(["max2d", "avg2d", "max1d"]), n=st.integers(1, 3), c=st.integers(1, 3),
       h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 4), s=st.one_of(st.none(), st.integers(1, 3)))
def test_pools_valid_shapes(kind, n, c, h, w, k, s):
    layer = {"max2d": L.MaxPool2D, "avg2d": L.AvgPool2D, "max1d": L.MaxPool1D}[kind](k, s)
    shape = (n, c, h) if kind == "max1d" else (n, c, h, w)
    if min(shape[2:]) < k:
        with pytest.raises(ValueError, match="larger than the input"):
            layer.forward(np.zeros(shape))
    else:
        run_pass(layer, shape)


@SETTINGS
@given(kind=st.sampled_from([L.LSTM, L.GRU]), n=st.integers(1, 3), t=st.integers(1, 6), i=st.integers(1, 5),
       h=st.integers(1, 6), seq=st.booleans())
def test_recurrent_valid_shapes(kind, n, t, i, h, seq):
    run_pass(kind(i, h, return_sequences=seq), (n, t, i))


@SETTINGS
@given(n=st.integers(1, 4), i=st.integers(1, 9), o=st.integers(1, 9), bias=st.booleans())
def test_dense_valid_shapes(n, i, o, bias):
    run_pass(L.Dense(i, o, bias=bias), (n, i))


@pytest.mark.parametrize("layer, shape, message", [
    (L.Conv2D(3, 4, 3), (2, 2, 5, 5), r"expects input of shape \(N, C, H, W\) with C=3"),
    (L.Conv2D(1, 4, 3), (2, 5, 5), r"expects input of shape"),
    (L.Conv1D(2, 4, 3), (2, 2, 5, 5), r"expects input of shape \(N, C, L\)"),
    (L.MaxPool2D(2), (2, 8, 8), r"expects input of shape"),
    (L.MaxPool1D(2), (2, 3, 4, 4), r"expects input of shape"),
    (L.LSTM(4, 3), (2, 5, 3), r"expects input of shape \(N, T, 4\)"),
    (L.GRU(4, 3), (2, 4), r"expects input of shape"),
    (L.Dense(4, 3), (2, 3), r"expects input of shape \(N, 4\)"),
])
def test_invalid_input_shapes_raise_clear_errors(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(np.zeros(shape))


@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv2D(1, 2, 0), "kernel_size must be at least 1"),
    (lambda: L.Conv2D(1, 2, 3, stride=0), "stride must be at least 1"),
    (lambda: L.Conv2D(1, 2, 3, padding=-1), "padding must be at least 0"),
    (lambda: L.Conv2D(1, 2, (3, 3, 3)), "an int or a pair"),
    (lambda: L.MaxPool2D(0), "kernel_size must be at least 1"),
    (lambda: L.Dropout(1.5), r"p must be a finite number in \[0, 1\], got 1.5"),
    (lambda: L.LSTM(0, 3), "input_size must be at least 1"),
    (lambda: L.GRU(3, 2, return_sequences="yes"), "return_sequences must be True or False"),
])
def test_invalid_layer_options_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_dense_output_shape_checks_the_features():
    import pytest

    import nkernels as nk

    with pytest.raises(ValueError, match=r"expects input of shape \(N, 4\)"):
        nk.Sequential([nk.layers.Dense(4, 2)]).output_shape((3, 5))


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), o=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), data=st.data())
def test_convtranspose2d_valid_shapes(n, c, o, h, w, k, s, p, data):
    op = data.draw(st.integers(0, s - 1))
    layer = L.ConvTranspose2D(c, o, k, stride=s, padding=p, output_padding=op)
    size = [(d - 1) * s - 2 * p + k + op for d in (h, w)]
    if min(size) < 1:
        with pytest.raises(ValueError, match="gives an output of size"):
            layer.forward(np.zeros((n, c, h, w)))
    else:
        run_pass(layer, (n, c, h, w))
        assert layer.output_shape((n, c, h, w)) == (n, o, *size)


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), s=st.integers(1, 4))
def test_upsample2d_and_globalavgpool2d_valid_shapes(n, c, h, w, s):
    run_pass(L.Upsample2D(s), (n, c, h, w))
    assert L.Upsample2D(s).output_shape((n, c, h, w)) == (n, c, h * s, w * s)
    run_pass(L.GlobalAvgPool2D(), (n, c, h, w))


@pytest.mark.parametrize("layer, shape, message", [
    (L.ConvTranspose2D(3, 4, 3), (2, 2, 5, 5), r"expects input of shape \(N, C, H, W\) with C=3"),
    (L.ConvTranspose2D(3, 4, 3), (2, 3, 5), r"expects input of shape \(N, C, H, W\)"),
    (L.ConvTranspose2D(1, 1, 1, padding=1), (1, 1, 2, 2), r"gives an output of size \(0, 0\)"),
    (L.Upsample2D(2), (2, 3, 4), r"expects input of shape \(N, C, H, W\)"),
    (L.GlobalAvgPool2D(), (2, 3), r"expects input of shape \(N, C, H, W\)"),
])
def test_issue21_layers_refuse_bad_input_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make, error, message", [
    (lambda: L.ConvTranspose2D(1, 2, 3, stride=2, output_padding=2), ValueError,
     "output_padding must be smaller than stride"),
    (lambda: L.ConvTranspose2D(1, 2, 3, stride=(2, 1), output_padding=(1, 1)), ValueError,
     "output_padding must be smaller than stride"),
    (lambda: L.ConvTranspose2D(1, 2, 3, output_padding=-1), ValueError, "output_padding must be at least 0"),
    (lambda: L.ConvTranspose2D(1, 2, 0), ValueError, "kernel_size must be at least 1"),
    (lambda: L.Upsample2D(0), ValueError, "scale_factor must be at least 1"),
    (lambda: L.Upsample2D(1.5), TypeError, "scale_factor must be an integer"),
])
def test_issue21_layer_options_raise_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
