"""DCGAN and pix2pix: architectures, GAN losses, label tricks, image-pair data, training, sampling, export."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.data import load_dataset
from keras_zoo.data.image_pairs import sobel_edge_map
from keras_zoo.models.dcgan import DCGAN, DCGANDiscriminator
from keras_zoo.models.pix2pix import PatchGANDiscriminator, Pix2PixGenerator
from training import tasks
from training.loop import train_and_evaluate
from training.tasks_gan import (GANTrainer, discriminator_loss, discriminator_targets, generator_loss,
                                random_flips, sample_noise)

# Export tests run in the tf_keras pass only; everything else under both runtimes.
both = pytest.mark.both


# --- architectures -------------------------------------------------------------------------------

@both
@pytest.mark.parametrize("name", ["pix2pix_generator", "pix2pix_discriminator"])
def test_pix2pix_parameter_counts_match_the_tensorflow_tutorial(name):
    info = keras_zoo.model_info(name)
    assert info.reference_params in (54_425_859, 2_770_433)
    assert keras_zoo.create_model(name).count_params() == info.reference_params


def _dcgan_generator_params(z, base, channels, k=5):
    """Figure 1 of arXiv:1511.06434: project z to 4x4x1024 (no bias) + BN, then 5x5 deconvs 512-256-128-3."""
    widths = [base, base // 2, base // 4, base // 8]
    total = z * 16 * base + 4 * base
    for f_in, f_out in zip(widths, widths[1:]):
        total += k * k * f_in * f_out + 4 * f_out  # no bias before BN; BN: gamma, beta, mean, variance
    return total + k * k * widths[-1] * channels + channels  # output deconv with bias, no BN


def _dcgan_discriminator_params(base, channels, k=5):
    """The mirror: 5x5 stride-2 convs 128 (bias, no BN) -256-512-1024 (BN), flatten 4x4x1024 -> 1 logit."""
    widths = [channels, base // 8, base // 4, base // 2, base]
    total = k * k * channels * widths[1] + widths[1]
    for f_in, f_out in zip(widths[1:], widths[2:]):
        total += k * k * f_in * f_out + 4 * f_out
    return total + 16 * base + 1


@both
def test_dcgan_parameter_counts_follow_the_paper_architecture():
    """Built at a quarter of the paper's width (the full 18.9M + 17.2M take seconds to initialise)."""
    assert (_dcgan_generator_params(100, 1024, 3), _dcgan_discriminator_params(1024, 3)) == (18_858_883, 17_236_481)
    generator, discriminator = DCGAN(base_filters=256), DCGANDiscriminator(base_filters=256)
    assert generator.count_params() == _dcgan_generator_params(100, 256, 3)
    assert discriminator.count_params() == _dcgan_discriminator_params(256, 3)
    shapes = [tuple(generator.get_layer(n).output.shape[1:]) for n in
              ("dcgan_generator_reshape", "dcgan_generator_up1_conv", "dcgan_generator_up2_conv",
               "dcgan_generator_up3_conv", "dcgan_generator_to_unit")]
    assert shapes == [(4, 4, 256), (8, 8, 128), (16, 16, 64), (32, 32, 32), (64, 64, 3)]
    assert discriminator.output_shape == (None, 1)
    # N(0, 0.02) initialisation (arXiv:1511.06434, Sec. 4).
    kernel = np.asarray(generator.get_layer("dcgan_generator_up1_conv").kernel)
    assert abs(kernel.std() - 0.02) < 1e-3 and abs(kernel.mean()) < 1e-3


@both
def test_dcgan_validates_the_image_size():
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k.*Received: image_size=48"):
        DCGAN(image_size=48)


@both
def test_patchgan_sees_a_70x70_patch():
    """The receptive field of one logit (30x30 at 256; any size here) is 70x70 (arXiv:1611.07004, 6.1.2)."""
    model = PatchGANDiscriminator(input_shape=(96, 96, 1), target_channels=1)
    assert model.output_shape == (None, 10, 10, 1)
    source, target = (tf.Variable(np.random.default_rng(i).uniform(0, 1, (2, 96, 96, 1)).astype("float32"))
                      for i in range(2))
    with tf.GradientTape() as tape:
        logit = tf.reduce_sum(model([source, target], training=False)[:, 5, 5, 0])
    gradients = tape.gradient(logit, [source, target])
    seen = sum(np.abs(np.asarray(g)) for g in gradients).sum(axis=(0, 3)) > 0
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


@both
def test_pix2pix_generator_unet_has_skips_and_decoder_dropout():
    model = Pix2PixGenerator(input_shape=(32, 32, 1), output_channels=3, encoder_filters=(8, 16, 32, 32, 32))
    assert model.output_shape == (None, 32, 32, 3)
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [f"pix2pix_generator_up{i}_dropout" for i in (1, 2, 3)]
    assert model.get_layer("pix2pix_generator_up1_skip").output.shape[-1] == 32 + 32
    with pytest.raises(ValueError, match="divisible by 32.*Received: input_shape=\\(48, 40, 1\\)"):
        Pix2PixGenerator(input_shape=(48, 40, 1), encoder_filters=(8, 16, 32, 32, 32))


# --- losses and label tricks ---------------------------------------------------------------------

def _np_bce(targets, logits):
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, "float64")))
    return -(targets * np.log(p) + (1 - targets) * np.log(1 - p))


@both
def test_gan_losses_match_numpy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0, 2, (5, 3, 3, 1)).astype("float32"), rng.normal(0, 2, (5, 3, 3, 1)).astype("float32")
    t_real, t_fake = np.array([0.9, 0.9, 0.0, 0.9, 0.9], "float32"), np.array([0, 0, 0.9, 0, 0], "float32")
    expected_d = (_np_bce(t_real[:, None, None, None], real).mean(axis=(1, 2, 3))
                  + _np_bce(t_fake[:, None, None, None], fake).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(discriminator_loss(real, fake, t_real, t_fake), expected_d, atol=1e-5)
    # Non-saturating: -log D(G(z)), not log(1 - D(G(z))).
    expected_g = -np.log(1.0 / (1.0 + np.exp(-fake.astype("float64")))).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(generator_loss(fake), expected_g, atol=1e-5)
    np.testing.assert_allclose(generator_loss(fake[:, 0, 0]), _np_bce(1.0, fake[:, 0, 0]).mean(axis=1), atol=1e-5)


@both
def test_label_smoothing_is_one_sided_and_applies_after_flipping():
    is_real = np.array([True, True, False, False])
    flip = np.array([False, True, False, True])
    np.testing.assert_allclose(discriminator_targets(is_real, flip, 0.0), [1, 0, 0, 1])
    np.testing.assert_allclose(discriminator_targets(is_real, flip, 0.1), [0.9, 0, 0, 0.9])
    np.testing.assert_allclose(discriminator_targets(is_real, np.zeros(4, bool), 0.2), [0.8, 0.8, 0, 0])


@both
def test_label_flips_happen_at_the_requested_rate():
    tf.random.set_seed(0)
    flips = np.asarray(random_flips((2, 20_000), 0.1))
    assert abs(flips.mean() - 0.1) < 0.01
    assert not np.asarray(random_flips((2, 100), 0.0)).any()


def _constant_discriminator(logit, shape):
    image = keras.Input(shape=shape)
    flat = keras.layers.Flatten()(image)
    out = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(logit))(flat)
    return keras.Model(image, out)


@both
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_trainer_discriminator_loss_uses_the_smoothed_targets(smoothing):
    """D(x) = c everywhere: d_loss = BCE(1 - s, c) + BCE(0, c), g_loss = BCE(1, c)."""
    c = 0.7
    generator = DCGAN(image_size=8, channels=1, z_dim=4, base_filters=4)
    trainer = GANTrainer(generator, _constant_discriminator(c, (8, 8, 1)), label_smoothing=smoothing)
    logs = trainer.test_step((tf.zeros((6, 8, 8, 1)), tf.zeros((6,), tf.int32)))
    np.testing.assert_allclose(float(logs["d_loss"]), _np_bce(1 - smoothing, c) + _np_bce(0.0, c), rtol=1e-5)
    np.testing.assert_allclose(float(logs["g_loss"]), _np_bce(1.0, c), rtol=1e-5)


@both
def test_task_options_are_validated_and_reach_the_trainer():
    task = tasks.get_task("image_to_image", {"gan_label_smoothing": 0.1, "pix2pix_l1_weight": 10.0})
    config = keras_zoo.model_info("pix2pix_generator").resolved_config(tiny=True)
    trainer = task.prepare(keras_zoo.create_model("pix2pix_generator", tiny=True), config)
    assert (trainer.label_smoothing, trainer.l1_weight, trainer.discriminator_loss_scale) == (0.1, 10.0, 0.5)
    # The PatchGAN scales with the generator: C8-C16-C32-C64 for the tiny C8-... encoder.
    convs = [layer.filters for layer in trainer.discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [8, 16, 32, 64, 1]
    with pytest.raises(ValueError, match="gan_label_flip must be a number in \\[0, 0.5\\).*0.7"):
        tasks.get_task("gan", {"gan_label_flip": 0.7})
    with pytest.raises(ValueError, match="pix2pix_discriminator is trained with it"):
        task.prepare(keras_zoo.create_model("pix2pix_discriminator", tiny=True), config)


@both
def test_precise_bn_gives_the_generator_the_statistics_of_its_inputs():
    """After fit, the generator's BN moving variance is the variance of its pre-BN activations over
    fresh z (weights frozen by lr 0), not the 1-step moving average; a bad batch count is refused."""
    config = dict(image_size=8, channels=1, z_dim=4, base_filters=8)
    data = tf.data.Dataset.from_tensor_slices((np.zeros((32, 8, 8, 1), "float32"), np.zeros(32, "int32"))).batch(16)

    def moving_variance_error(batches):
        keras.utils.set_random_seed(0)
        task = tasks.get_task("gan", {"gan_precise_bn_batches": batches})
        trainer = task.prepare(DCGAN(**config), config)
        trainer.compile(*task.optimizer_pair(keras.optimizers.Adam(0.0)))
        task.fit(trainer, data.repeat(), epochs=1, steps_per_epoch=1, verbose=0)
        norm = trainer.generator.get_layer("dcgan_generator_project_bn")
        pre_bn = keras.Model(trainer.generator.inputs, norm.input)
        expected = np.asarray(pre_bn(sample_noise(4096, 4, seed=1), training=False)).reshape(-1, norm.input.shape[-1])
        return np.max(np.abs(np.asarray(norm.moving_variance) / expected.var(0) - 1))

    assert moving_variance_error(0) > 10 and moving_variance_error(30) < 0.2
    with pytest.raises(ValueError, match="gan_precise_bn_batches must be an int >= 0.*-1"):
        tasks.get_task("gan", {"gan_precise_bn_batches": -1})


@both
def test_discriminator_optimizer_is_a_separate_copy_with_beta1():
    task = tasks.get_task("gan", {"gan_adam_beta1": 0.5})
    g_opt, d_opt = task.optimizer_pair(keras.optimizers.Adam(learning_rate=2e-4))
    assert g_opt is not d_opt and type(g_opt) is type(d_opt)
    for opt in (g_opt, d_opt):
        assert float(opt.get_config()["beta_1"]) == 0.5
        assert abs(float(opt.get_config()["learning_rate"]) - 2e-4) < 1e-9
    sgd_g, sgd_d = task.optimizer_pair(keras.optimizers.SGD(learning_rate=0.01))
    assert sgd_g is not sgd_d and float(sgd_d.get_config()["learning_rate"]) == pytest.approx(0.01)


# --- data -----------------------------------------------------------------------------------------

def _np_sobel(image):
    """Sobel magnitude with reflect padding (as tf.image.sobel_edges), scaled to a maximum of 1."""
    padded = np.pad(image, 1, mode="reflect")
    gy_kernel = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "float64")
    gx, gy = np.zeros_like(image, "float64"), np.zeros_like(image, "float64")
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            window = padded[i:i + 3, j:j + 3]
            gy[i, j], gx[i, j] = (window * gy_kernel).sum(), (window * gy_kernel.T).sum()
    magnitude = np.hypot(gx, gy)
    return magnitude / magnitude.max()


@both
def test_digits_edges_pairs_are_sobel_maps_with_a_fixed_split():
    specs = keras_zoo.model_info("pix2pix_generator").inputs_for({"input_shape": (16, 16, 1)})
    first = load_dataset("digits_edges", task="image_to_image", input_specs=specs, batch_size=8, seed=0)
    second = load_dataset("digits_edges", task="image_to_image", input_specs=specs, batch_size=8, seed=5)
    assert first.info["sizes"] == {"train": 1257, "validation": 270, "test": 270}
    assert first.model_overrides == {"output_channels": 1}
    edges, digits = (np.asarray(t) for t in next(iter(first.test)))
    np.testing.assert_array_equal(edges, np.asarray(next(iter(second.test))[0]))
    assert edges.shape == digits.shape == (8, 16, 16, 1) and 0 <= digits.min() and digits.max() <= 1
    np.testing.assert_allclose(edges[3, ..., 0], _np_sobel(digits[3, ..., 0]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(sobel_edge_map(digits[3:4]))[0], edges[3], atol=1e-6)
    assert 0 < first.info["identity_baseline_l1"] < 1


def _write_pair(path, left, right, size=(12, 12)):
    from PIL import Image

    image = np.concatenate([np.full((*size, 3), left, "uint8"), np.full((*size, 3), right, "uint8")], axis=1)
    Image.fromarray(image).save(path)


@both
@pytest.mark.parametrize("direction", ["", ":AtoB", ":BtoA"])
def test_imagepairs_folder_splits_side_by_side_images(tmp_path, direction):
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        os.makedirs(tmp_path / split)
        for i in range(count):
            _write_pair(tmp_path / split / f"{i}.png", (255, 0, 0), (0, 0, 255))
    specs = keras_zoo.model_info("pix2pix_generator").inputs_for({"input_shape": (8, 8, 3)})
    bundle = load_dataset(f"imagepairs:{tmp_path}{direction}", task="image_to_image", input_specs=specs,
                          batch_size=2)
    assert bundle.info["sizes"] == {"train": 3, "validation": 2, "test": 2}
    source, target = (np.asarray(t) for t in next(iter(bundle.validation)))
    red, blue = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    expected_source = blue if direction == ":BtoA" else red
    np.testing.assert_allclose(source[0, 4, 4], expected_source, atol=1e-6)
    np.testing.assert_allclose(target[0, 4, 4], blue if direction != ":BtoA" else red, atol=1e-6)
    assert source.shape == target.shape == (2, 8, 8, 3)


@both
def test_imagepairs_without_subfolders_is_split_by_hash_and_bad_paths_name_the_fix(tmp_path):
    for i in range(40):
        _write_pair(tmp_path / f"pair_{i:02d}.jpg", (200, 200, 200), (10, 10, 10))
    specs = keras_zoo.model_info("pix2pix_generator").inputs_for({"input_shape": (8, 8, 1)})
    bundle = load_dataset(f"imagepairs:{tmp_path}", task="image_to_image", input_specs=specs, batch_size=1)
    sizes = bundle.info["sizes"]
    assert sum(sizes.values()) == 40 and min(sizes.values()) >= 1
    source, target = (np.asarray(t) for t in next(iter(bundle.train)))
    assert source.shape == (1, 8, 8, 1) and source.mean() > 0.7 and target.mean() < 0.1
    with pytest.raises(ValueError, match="does not exist.*imagepairs:PATH"):
        load_dataset(f"imagepairs:{tmp_path}/missing", task="image_to_image", input_specs=specs, batch_size=1)


# --- training through the shared loop, sampling ---------------------------------------------------

@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("dcgan"))
    config = dict(model="dcgan", tiny=True, epochs=1, steps_per_epoch=2,
                  validation_steps=1, batch_size=8, learning_rate=2e-4, verbose=0,
                  task_options={"gan_label_smoothing": 0.1, "gan_label_flip": 0.05})
    return model_dir, train_and_evaluate(config, model_dir)


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("pix2pix"))
    config = dict(model="pix2pix_generator", tiny=True, epochs=2, steps_per_epoch=3, validation_steps=2,
                  batch_size=8, learning_rate=2e-3, verbose=0)
    return model_dir, train_and_evaluate(config, model_dir)


@both
def test_dcgan_trains_through_the_loop_with_finite_losses(dcgan_run):
    model_dir, result = dcgan_run
    for key in ("d_loss", "g_loss", "val_d_loss", "val_g_loss"):
        assert all(np.isfinite(result["history"][key])), key
    assert np.isfinite(result["test"]["d_loss"]) and 0 < result["test"]["d_real"] < 1
    assert result["history"]["g_extra_loss"] == [0.0]  # DCGAN's generator adds no model.losses
    from PIL import Image

    grid = np.asarray(Image.open(result["task"]["samples_png"]))
    assert grid.ndim == 2 and grid.shape[0] > 8 * 16 and grid.std() > 0  # an 8x8 grid of 16x16 greys
    assert keras.models.load_model(os.path.join(model_dir, "model.keras")).output_shape == (None, 16, 16, 1)


@both
def test_pix2pix_l1_goes_down_through_the_loop(pix2pix_run):
    model_dir, result = pix2pix_run
    history = result["history"]
    for key in ("d_loss", "g_loss", "l1"):
        assert all(np.isfinite(history[key])), key
    assert history["val_l1"][-1] < history["val_l1"][0], history["val_l1"]
    assert history["l1"][-1] < history["l1"][0], history["l1"]
    assert os.path.isfile(os.path.join(model_dir, "best_model.keras"))  # kept by lowest val_l1
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["builder_config"]["output_channels"] == 1


@both
@pytest.mark.parametrize("run", ["dcgan_run", "pix2pix_run"])
def test_sample_cli_writes_a_grid(run, request, tmp_path):
    from training.sample import write_samples

    model_dir, _ = request.getfixturevalue(run)
    paths = write_samples(model_dir, num=4, output_dir=str(tmp_path), seed=1)
    from PIL import Image

    grid = np.asarray(Image.open(paths[0]))
    assert paths == [str(tmp_path / "samples.png")] and grid.std() > 0
    if run == "pix2pix_run":  # 4 rows of input | generated | target
        assert grid.shape[1] > grid.shape[0] * 0.6


# --- export ----------------------------------------------------------------------------------------

def _convert_and_compare(model, quantization, examples):
    from export import convert, verify

    signature = convert.input_signature(model, examples[0])
    content = convert.convert(model, quantization, signature, examples)
    result = verify.compare(model, content, examples, keras_zoo.model_info(
        "dcgan" if len(model.input_shape) == 2 else "pix2pix_generator").task, quantization)
    return content, result


@pytest.mark.tf_keras
def test_dcgan_generator_float_tflite_matches_keras():
    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("dcgan", tiny=True)
    examples = [[np.random.default_rng(i).uniform(-1, 1, (1, 16)).astype("float32")] for i in range(8)]
    _, result = _convert_and_compare(model, "float32", examples)
    assert result["passed"], result
    assert result["max_abs_diff"] < 1e-4


@pytest.mark.tf_keras
def test_pix2pix_generator_float_and_int8_tflite(pix2pix_run):
    from export.verify import TFLiteRunner, keras_outputs

    model_dir, _ = pix2pix_run
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    specs = keras_zoo.model_info("pix2pix_generator").inputs_for({"input_shape": (32, 32, 1)})
    bundle = load_dataset("digits_edges", task="image_to_image", input_specs=specs, batch_size=1)
    examples = [[np.asarray(x)] for x, _ in bundle.test.take(8)]
    _, result = _convert_and_compare(model, "float32", examples)
    assert result["passed"] and result["max_abs_diff"] < 1e-4, result

    calibration = [[np.asarray(x)] for x, _ in bundle.train.take(8)]
    from export import convert

    content = convert.convert(model, "int8", convert.input_signature(model, calibration[0]), calibration)
    assert {t.dtype for t in convert.read_graph(content).inputs} == {"int8"}
    runner = TFLiteRunner(content)
    lite = np.concatenate([runner(x)[0] for x in examples])
    l1_delta = float(np.mean(np.abs(lite - keras_outputs(model, examples))))
    assert l1_delta < 0.05, l1_delta  # in [0, 1] pixel units
