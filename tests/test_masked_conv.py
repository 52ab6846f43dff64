"""MaskedConv2D, GroupedGate and RowLSTM (arXiv:1601.06759, 1606.05328) against NumPy transcriptions."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers.masked_conv import GroupedGate, MaskedConv2D, RowLSTM

pytestmark = pytest.mark.both


def _allowed(kh, kw, in_groups, out_groups, mask_type):
    """The paper's rule, written tap by tap: earlier pixels always, the current pixel by colour."""
    allowed = np.zeros((kh, kw, len(in_groups), len(out_groups)), bool)
    for dy in range(kh):
        for dx in range(kw):
            for i, gi in enumerate(in_groups):
                for o, go in enumerate(out_groups):
                    earlier = (dy, dx) < (kh // 2, kw // 2)
                    current = (dy, dx) == (kh // 2, kw // 2)
                    allowed[dy, dx, i, o] = earlier or (current and (gi < go if mask_type == "A" else gi <= go))
    return allowed


def _numpy_conv_same(x, kernel, bias):
    kh, kw = kernel.shape[:2]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.einsum("bhwc,hwco->bo", padded[:, i:i + kh, j:j + kw], kernel)
    return out + bias


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("colors,in_ch,out_ch", [(3, 3, 6), (3, 6, 9), (1, 1, 4)])
def test_masked_conv_matches_numpy(mask_type, colors, in_ch, out_ch):
    rng = np.random.default_rng(0)
    layer = MaskedConv2D(out_ch, (3, 5), mask_type, colors, bias_initializer="random_normal")
    x = rng.standard_normal((2, 4, 6, in_ch)).astype("float32")
    y = np.asarray(layer(x))
    kernel, bias = [np.asarray(w) for w in layer.get_weights()]
    groups = lambda n: np.repeat(np.arange(colors), n // colors)  # R block, G block, B block
    kernel = kernel * _allowed(3, 5, groups(in_ch), groups(out_ch), mask_type)
    np.testing.assert_allclose(y, _numpy_conv_same(x, kernel, bias), atol=1e-5)


def test_rgb_mask_a_colour_rules():
    """R sees nothing of the current pixel, G sees R, B sees R and G (mask A); mask B adds itself."""
    x = tf.Variable(np.random.default_rng(1).standard_normal((1, 3, 3, 3)).astype("float32"))
    for mask_type, expected in [("A", [[0, 1, 1], [0, 0, 1], [0, 0, 0]]),
                                ("B", [[1, 1, 1], [0, 1, 1], [0, 0, 1]])]:
        layer = MaskedConv2D(3, 3, mask_type, 3)
        seen = np.zeros((3, 3))
        for out_c in range(3):
            with tf.GradientTape() as tape:
                y = layer(x)[0, 1, 1, out_c]
            grad = np.asarray(tape.gradient(y, x))[0]
            seen[:, out_c] = np.abs(grad[1, 1]) > 0
            assert not np.any(grad[2]) and not np.any(grad[1, 2]), "a later pixel leaks in"
            assert np.all(np.abs(grad[0]) > 0), "the row above must be visible"
        np.testing.assert_array_equal(seen, expected)


def test_masked_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mask_type.*Received: mask_type='C'"):
        MaskedConv2D(6, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2D(6, 4, "A")
    with pytest.raises(ValueError, match="at least 3 feature maps.*Received: 2"):
        MaskedConv2D(2, 3, "B", 3)


def test_grouped_gate_matches_numpy():
    x = np.random.default_rng(2).standard_normal((2, 3, 3, 12)).astype("float32")
    y = np.asarray(GroupedGate(3)(x))
    groups = x.reshape(2, 3, 3, 3, 2, 2)  # (colour, a|b, maps)
    expected = (np.tanh(groups[..., 0, :]) / (1 + np.exp(-groups[..., 1, :]))).reshape(2, 3, 3, 6)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_row_lstm_matches_numpy_recurrence():
    rng = np.random.default_rng(3)
    layer = RowLSTM(4, 3, color_channels=1)
    x = rng.standard_normal((2, 3, 5, 2)).astype("float32")
    y = np.asarray(layer(x))
    k_is, k_ss, bias = [np.asarray(w) for w in layer.get_weights()]
    k_is = k_is * _allowed(1, 3, [0, 0], [0] * 16, "B")
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    h = c = np.zeros((2, 5, 4))
    for i in range(3):
        s = _numpy_conv_same(h[:, None], k_ss[None], 0)[:, 0]
        gates = _numpy_conv_same(x[:, i:i + 1], k_is, bias)[:, 0] + s
        o, f, ig, g = np.split(gates, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(ig) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        np.testing.assert_allclose(y[:, i], h, atol=1e-5)


@pytest.mark.parametrize("layer", [MaskedConv2D(6, 3, "A", 3, name="m"), GroupedGate(3, name="g"),
                                   RowLSTM(6, 3, 3, name="r")], ids=["masked", "gate", "row_lstm"])
def test_layers_round_trip_config(layer):
    x = np.random.default_rng(4).standard_normal((1, 3, 3, 6)).astype("float32")
    y = np.asarray(layer(x))
    clone = layer.__class__.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), y, atol=1e-6)
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(layer)), layer.__class__)
