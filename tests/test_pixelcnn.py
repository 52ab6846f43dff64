"""PixelCNN, Gated PixelCNN and PixelRNN Row LSTM: causality, conditioning, sampling, training."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.pixelcnn import GatedPixelCNN, PixelCNN, PixelRNNRowLSTM, sample_images
from training.tasks_generative import PixelTrainer, quantize_images

pytestmark = pytest.mark.both

SMALL = {
    "pixelcnn": lambda shape: PixelCNN(2, 12, 30, input_shape=shape, levels=4),
    "gated_pixelcnn": lambda shape: GatedPixelCNN(2, 24, 3, 30, input_shape=shape, levels=4),
    "pixelrnn_row_lstm": lambda shape: PixelRNNRowLSTM(1, 12, 30, input_shape=shape, levels=4),
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


@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn", "pixelrnn_row_lstm"])
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
