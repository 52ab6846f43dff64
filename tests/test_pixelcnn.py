"""PixelCNN, Gated PixelCNN, PixelRNN Row LSTM and Diagonal BiLSTM: causality, conditioning, sampling, training."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.pixelcnn import (DiagonalBiLSTM, GatedPixelCNN, PixelCNN, PixelRNNDiagonalBiLSTM,
                                      PixelRNNRowLSTM, diagonal_lstm_step, sample_images, skew, unskew)
from training.tasks_generative import PixelTrainer, quantize_images

pytestmark = pytest.mark.both

SMALL = {
    "pixelcnn": lambda shape: PixelCNN(2, 12, 30, input_shape=shape, levels=4),
    "gated_pixelcnn": lambda shape: GatedPixelCNN(2, 24, 3, 30, input_shape=shape, levels=4),
    "pixelrnn_row_lstm": lambda shape: PixelRNNRowLSTM(1, 12, 30, input_shape=shape, levels=4),
    "pixelrnn_diagonal_bilstm": lambda shape: PixelRNNDiagonalBiLSTM(1, 12, 30, input_shape=shape, levels=4),
}


def _jacobian(model, shape, seed=0, batch=4):
    """|d logits at sub-pixel o / d input sub-pixel i| summed over a batch of random images, (dims, dims).

    Logits are randomly projected over levels; the batch keeps ReLUs that happen to
    be off for one image from hiding a connection.
    """
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(0, 1, (batch, *shape)).astype("float32"))
    projection = tf.constant(rng.standard_normal((1, *shape, 4)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        per_subpixel = tf.reshape(tf.reduce_sum(model(x) * projection, axis=-1), [batch, -1])
        rows = [tf.reduce_sum(per_subpixel[:, o]) for o in range(per_subpixel.shape[1])]
    return np.stack([np.abs(np.asarray(tape.gradient(r, x))).reshape(batch, -1).sum(0) for r in rows])


@pytest.mark.parametrize("shape", [(3, 4, 3), (5, 4, 1)], ids=["rgb", "grey"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_no_output_sees_itself_or_the_future(name, shape):
    """Raster-and-colour order: logits at o have zero gradient w.r.t. every input sub-pixel i >= o."""
    jacobian = _jacobian(SMALL[name](shape), shape)
    order = np.arange(jacobian.shape[0])
    future = order[None, :] >= order[:, None]
    assert not np.any(jacobian[future]), f"{name}: an output depends on itself or a later sub-pixel"
    # ...while every sub-pixel but the first depends on earlier ones, G on R and B on G of its own pixel.
    assert np.all((jacobian[1:]).max(axis=1) > 0), f"{name}: an output ignores all its context"
    colors = shape[-1]
    same_pixel = order[1:][order[1:] % colors > 0]
    assert np.all((jacobian[same_pixel, same_pixel - 1]) > 0), f"{name}: a colour ignores the previous one"


def test_gated_pixelcnn_has_no_blind_spot():
    """The vertical stack lets pixel (i, j) see (i - 1, j + L) after L layers with 3x3 filters (1606.05328)."""
    shape = (5, 6, 1)
    jacobian = _jacobian(SMALL["gated_pixelcnn"](shape), shape).reshape(5, 6, 5, 6)
    assert abs(jacobian[3, 1, 2, 3]) > 0, "the pixel above and two to the right is not visible"
    assert abs(jacobian[3, 1, 1, 1]) > 0, "the pixel two rows above is not visible"


def test_one_diagonal_bilstm_layer_sees_every_earlier_pixel_but_one():
    """Sec. 3.2: one Diagonal BiLSTM layer sees the whole context, where the Row LSTM sees a triangle.

    The exception: the last pixel of the row above enters the current row only through
    the 7x7 mask-A stem (the shifted right-to-left map reads the row above up to the
    stem's output at its last pixel, which excludes that pixel), so (r, c) misses
    (r - 1, W - 1) when c < W - 4, at any depth.
    """
    height, width = 5, 8
    jacobian = _jacobian(SMALL["pixelrnn_diagonal_bilstm"]((height, width, 1)), (height, width, 1))
    out_row, out_col = np.divmod(np.arange(height * width), width)
    earlier = np.tril(np.ones_like(jacobian, bool), k=-1)
    last_above = (out_row[None, :] == out_row[:, None] - 1) & (out_col[None, :] == width - 1)
    beyond_stem = last_above & (out_col[:, None] < width - 4)
    assert np.all(jacobian[earlier & ~beyond_stem] > 0), "an earlier pixel is out of the receptive field"
    assert not np.any(jacobian[beyond_stem])
    row_lstm = _jacobian(SMALL["pixelrnn_row_lstm"]((height, width, 1)), (height, width, 1))
    assert row_lstm.reshape(height, width, height, width)[4, 0, 3, 6] == 0  # seen by the diagonal layer


def _numpy_skew(x):
    height, width = x.shape[1:3]
    out = np.zeros((x.shape[0], height, width + height - 1, x.shape[3]), x.dtype)
    for r in range(height):
        out[:, r, r:r + width] = x[:, r]
    return out


@pytest.mark.parametrize("height,width", [(4, 4), (3, 5), (5, 2), (1, 3)])
def test_skew_shifts_row_i_by_i_and_unskew_inverts_it(height, width):
    x = np.random.default_rng(0).standard_normal((2, height, width, 3)).astype("float32")
    skewed = np.asarray(skew(tf.constant(x)))
    np.testing.assert_array_equal(skewed, _numpy_skew(x))
    np.testing.assert_array_equal(np.asarray(unskew(tf.constant(skewed), width)), x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _numpy_lstm(gates, cell):
    """Eq. 3 of arXiv:1601.06759: gates in order o, f, i, g."""
    o, f, i, g = np.split(gates, 4, axis=-1)
    cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(cell), cell


def test_one_diagonal_lstm_step_matches_numpy():
    """Row r of the new column reads rows r - 1 (tap 0) and r (tap 1) of the previous column's state."""
    rng = np.random.default_rng(1)
    batch, height, units = 2, 4, 3
    gate_inputs = rng.standard_normal((batch, height, 4 * units)).astype("float32")
    hidden, cell = rng.standard_normal((2, batch, height, units)).astype("float32")
    kernel = rng.standard_normal((2, units, 4 * units)).astype("float32")
    got = diagonal_lstm_step(tf.constant(gate_inputs), (tf.constant(hidden), tf.constant(cell)), tf.constant(kernel))
    above = np.concatenate([np.zeros_like(hidden[:, :1]), hidden[:, :-1]], axis=1)
    expected = _numpy_lstm(gate_inputs + above @ kernel[0] + hidden @ kernel[1], cell)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e, atol=1e-5)


def _numpy_diagonal_lstm(x, input_kernel, state_kernel, bias):
    """One direction pixel by pixel: the state at (r, c) follows from (r - 1, c) and (r, c - 1)."""
    batch, height, width, _ = x.shape
    units = state_kernel.shape[1]
    gate_inputs = x @ input_kernel[0, 0] + bias
    hidden = np.zeros((batch, height + 1, width + 1, units))  # row 0 and column 0: the zero border
    cell = np.zeros_like(hidden)
    for r in range(height):
        for c in range(width):
            above, left = hidden[:, r, c + 1], hidden[:, r + 1, c]
            gates = gate_inputs[:, r, c] + above @ state_kernel[0] + left @ state_kernel[1]
            hidden[:, r + 1, c + 1], cell[:, r + 1, c + 1] = _numpy_lstm(gates, cell[:, r + 1, c])
    return hidden[:, 1:, 1:]


@pytest.mark.parametrize("colors", [1, 3])
def test_diagonal_bilstm_matches_the_numpy_recurrence(colors):
    """Left-to-right plus the mirrored right-to-left direction shifted down one row (Sec. 3.2)."""
    rng = np.random.default_rng(2)
    layer = DiagonalBiLSTM(6, colors)
    x = rng.standard_normal((2, 4, 5, 6)).astype("float32")
    layer.build(x.shape)
    for weight in layer.weights:  # non-zero biases, so the zero-border claim is exercised
        weight.assign(rng.standard_normal(weight.shape).astype("float32") * 0.5)
    y = np.asarray(layer(x))
    mask = np.asarray(layer.input_kernel_mask)
    k = {d: [np.asarray(v) for v in (layer.input_kernels[d], layer.state_kernels[d], layer.biases[d])]
         for d in DiagonalBiLSTM.DIRECTIONS}
    left = _numpy_diagonal_lstm(x, k["left_to_right"][0] * mask, *k["left_to_right"][1:])
    right = _numpy_diagonal_lstm(x[:, :, ::-1], k["right_to_left"][0] * mask, *k["right_to_left"][1:])[:, :, ::-1]
    expected = left.copy()
    expected[:, 1:] += right[:, :-1]
    assert y.shape == (2, 4, 5, 6)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_class_conditional_gated_pixelcnn_uses_the_label():
    model = GatedPixelCNN(2, 6, 3, 6, input_shape=(4, 4, 3), levels=4, num_classes=5)
    assert len(model.inputs) == 2
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype("float32")
    a = np.asarray(model([x, np.array([0, 0], "int32")]))
    b = np.asarray(model([x, np.array([3, 3], "int32")]))
    assert a.shape == (2, 4, 4, 3, 4)
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("call,match", [
    (lambda: PixelCNN(input_shape=(8, 8, 2)), r"1 \(grey\) or 3 \(RGB\).*Received: input_shape=\(8, 8, 2\)"),
    (lambda: PixelCNN(levels=1), "levels.*Received: levels=1"),
    (lambda: GatedPixelCNN(filters=10, input_shape=(8, 8, 3)), "multiple of the 3 colour.*Received: filters=10"),
    (lambda: GatedPixelCNN(kernel_size=4), "odd.*Received: kernel_size=4"),
    (lambda: PixelRNNRowLSTM(num_layers=0), "num_layers.*Received: num_layers=0"),
    (lambda: PixelRNNDiagonalBiLSTM(hidden=0), "hidden.*Received: hidden=0"),
    (lambda: DiagonalBiLSTM(2, color_channels=3), "one unit per colour.*Received: units=2"),
])
def test_bad_arguments_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_paper_configurations_build():
    """PixelCNN 15 layers, h=128 and Row LSTM 12 layers, h=128 (the CIFAR-10 models of arXiv:1601.06759)."""
    cnn = keras_zoo.create_model("pixelcnn", input_shape=(32, 32, 3))
    assert len([l for l in cnn.layers if l.name.endswith("_2_conv") and "block" in l.name]) == 15
    assert cnn.output_shape == (None, 32, 32, 3, 256)
    rnn = keras_zoo.create_model("pixelrnn_row_lstm")
    assert len([l for l in rnn.layers if l.name.endswith("_row_lstm")]) == 12
    assert rnn.get_layer("pixelrnn_row_lstm_layer1_row_lstm").units == 128
    diagonal = keras_zoo.create_model("pixelrnn_diagonal_bilstm", input_shape=(32, 32, 3))
    assert len([l for l in diagonal.layers if l.name.endswith("_diagonal_bilstm")]) == 12
    assert diagonal.get_layer("pixelrnn_diagonal_bilstm_layer12_diagonal_bilstm").units == 128
    assert diagonal.output_shape == (None, 32, 32, 3, 256)


def test_sampling_fills_every_subpixel_with_a_level():
    model = SMALL["pixelcnn"]((3, 3, 3))
    images = sample_images(model, 4, seed=1)
    assert images.shape == (4, 3, 3, 3)
    np.testing.assert_allclose(images * 3, np.round(images * 3), atol=1e-6)
    np.testing.assert_array_equal(images, sample_images(model, 4, seed=1))
    assert len(np.unique(images)) > 1


def test_sampling_draws_from_the_model_distribution():
    """A model whose logits ignore the input (zero kernels) samples levels at the bias softmax."""
    model = PixelCNN(1, 3, 3, input_shape=(2, 2, 1), levels=4)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    bias = np.log(np.array([0.1, 0.2, 0.3, 0.4], "float32"))
    model.get_layer("pixelcnn_out_2_conv").bias.assign(bias)
    draws = np.round(sample_images(model, 400, seed=0) * 3).astype(int).ravel()
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, [0.1, 0.2, 0.3, 0.4], atol=0.04)


def test_quantize_images():
    inputs, targets = quantize_images(np.array([0.0, 0.26, 0.5, 1.0, 1.2]), 5)
    np.testing.assert_array_equal(np.asarray(targets), [0, 1, 2, 4, 4])
    np.testing.assert_allclose(np.asarray(inputs), [0, 0.25, 0.5, 1, 1])


@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn", "pixelrnn_row_lstm", "pixelrnn_diagonal_bilstm"])
def test_tiny_model_learns_digits(name):
    from sklearn.datasets import load_digits

    images = (load_digits().images[:96, ..., None] / 16.0).astype("float32")
    labels = np.zeros(96, "int32")
    keras.utils.set_random_seed(0)
    trainer = PixelTrainer(keras_zoo.create_model(name, tiny=True))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = trainer.fit(images, labels, batch_size=32, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 0.3, history["loss"]
    np.testing.assert_allclose(history["bits_per_dim"], np.array(history["loss"]) / np.log(2), rtol=1e-4)


def _fake_run_dir(tmp_path, name, model, config):
    """A directory shaped like a training.train output (config.json + model.keras)."""
    import json

    from keras_zoo.backend import keras_major_version

    model.save(str(tmp_path / "model.keras"))
    (tmp_path / "config.json").write_text(json.dumps(
        {"model": name, "tiny": True, "builder_config": config, "keras_version": keras_major_version()}))
    return str(tmp_path)


def test_sample_program_writes_a_png_grid(tmp_path):
    from PIL import Image

    from training.sample import write_samples

    config = keras_zoo.model_info("gated_pixelcnn").resolved_config(tiny=True, num_classes=3)
    model_dir = _fake_run_dir(tmp_path, "gated_pixelcnn", GatedPixelCNN(**config), config)
    [path] = write_samples(model_dir, num=5, seed=3)
    assert path.endswith("samples.png")
    with Image.open(path) as image:
        assert image.size == (2 + 3 * (64 + 2), 2 + 2 * (64 + 2))  # 3 columns, 2 rows of 8x8 scaled by 8
    with pytest.raises(ValueError, match="--label must be in"):
        write_samples(model_dir, num=2, label=7)
