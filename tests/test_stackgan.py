"""StackGAN (arXiv:1612.03242): conditioning augmentation, the two stages, parameter counts, conditional training."""
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.stackgan import (ConditioningAugmentation, StackGANStage1, StackGANStage1Discriminator,
                                       StackGANStage2, StackGANStage2Discriminator)
from training import tasks
from training.loop import train_and_evaluate
from training.tasks_gan import GANTrainer, mismatched_conditions

both = pytest.mark.both


# --- conditioning augmentation ---------------------------------------------------------------------

def _np_kl(mu, log_sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, as stageI/trainer.py's KL_loss (before its mean)."""
    return -log_sigma + 0.5 * (-1.0 + np.exp(2.0 * log_sigma) + mu ** 2)


@both
def test_conditioning_augmentation_kl_matches_numpy():
    rng = np.random.default_rng(0)
    mu, log_sigma = rng.normal(0, 1, (6, 5)), rng.normal(0, 0.5, (6, 5))
    layer = ConditioningAugmentation(kl_weight=2.0)
    out = layer(tf.constant(np.concatenate([mu, log_sigma], -1), tf.float32), training=False)
    np.testing.assert_allclose(np.asarray(out), mu, atol=1e-6)  # inference: c = mu
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 2.0 * _np_kl(mu, log_sigma).mean(), atol=1e-5)
    assert ConditioningAugmentation.from_config(layer.get_config()).kl_weight == 2.0


@both
def test_conditioning_augmentation_samples_n_mu_sigma_squared():
    mu, log_sigma = np.array([0.5, -1.0, 2.0]), np.array([0.0, -1.0, 0.7])
    n = 40_000
    inputs = tf.constant(np.tile(np.concatenate([mu, log_sigma]), (n, 1)), tf.float32)
    tf.random.set_seed(0)
    c = np.asarray(ConditioningAugmentation()(inputs, training=True)).astype("float64")
    sigma = np.exp(log_sigma)
    np.testing.assert_allclose(c.mean(axis=0), mu, atol=4 * sigma.max() / np.sqrt(n))
    np.testing.assert_allclose(c.std(axis=0), sigma, rtol=0.02)
    assert abs(np.corrcoef(c.T)[0, 1]) < 0.03  # independent eps per dimension


# --- architectures ---------------------------------------------------------------------------------

@both
def test_shapes_at_the_paper_resolutions():
    """64x64 Stage-I, 256x256 Stage-II (narrow widths: the shapes do not depend on them)."""
    kw = dict(channels=3, condition_dim=8, embedding_dim=12)
    g1, g2 = StackGANStage1(gf_dim=4, z_dim=10, **kw), StackGANStage2(gf_dim=4, num_residual_blocks=1, **kw)
    d1, d2 = StackGANStage1Discriminator(df_dim=2, **kw), StackGANStage2Discriminator(df_dim=2, **kw)
    assert g1.output_shape == (None, 64, 64, 3) and g1.get_layer("stackgan_stage1_reshape").output.shape[1:] == \
        (4, 4, 32)
    assert g2.output_shape == (None, 256, 256, 3)
    assert tuple(g2.get_layer("stackgan_stage2_image_text").output.shape[1:]) == (16, 16, 16 + 8)  # 4 gf + Ng
    assert d1.output_shape == d2.output_shape == (None, 1)
    assert tuple(d2.get_layer("stackgan_stage2_discriminator_res_add").output.shape[1:]) == (4, 4, 16)  # Md = 4
    assert [tuple(t.shape[1:]) for t in g1.inputs] == [(10,), (12,)]
    label_model = StackGANStage1(image_size=16, gf_dim=2, z_dim=4, num_classes=10, **kw)
    assert label_model.inputs[1].shape[1:] == () and tf.as_dtype(label_model.inputs[1].dtype) == tf.int32


@both
def test_stage2_output_depends_on_the_stage1_image_and_the_condition():
    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("stackgan_stage2", tiny=True)
    rng = np.random.default_rng(0)
    # He-scaled weights: at the N(0, 0.02) initialisation the untrained output is 0.5 to float precision.
    for weight in model.weights:
        if len(weight.shape) > 1:
            fan_in = int(np.prod(weight.shape[:-1]))
            weight.assign(rng.normal(0, np.sqrt(2.0 / fan_in), weight.shape).astype("float32"))
    low = rng.uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    labels = np.array([3, 3], "int32")
    base = np.asarray(model([low, labels], training=False))
    other_image = np.asarray(model([low[::-1], labels], training=False))
    other_label = np.asarray(model([low, np.array([7, 7], "int32")], training=False))
    assert np.abs(base[0] - other_image[0]).max() > 1e-4
    assert np.abs(base - other_label).max() > 1e-4
    # Deterministic at inference (c = mu), and the image gradient reaches every pixel's neighbourhood.
    np.testing.assert_array_equal(base, np.asarray(model([low, labels], training=False)))
    image = tf.Variable(low)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model([image, tf.constant(labels)], training=False))
    assert np.count_nonzero(np.asarray(tape.gradient(out, image))) > 0.9 * low.size


@both
def test_invalid_sizes_name_the_rule():
    with pytest.raises(ValueError, match="multiple of 16.*Received: image_size=40"):
        StackGANStage1(image_size=40)
    with pytest.raises(ValueError, match="multiple of 64.*Received: image_size=96"):
        StackGANStage2Discriminator(image_size=96)
    with pytest.raises(ValueError, match="num_classes.*Received: num_classes=1"):
        StackGANStage1(image_size=16, gf_dim=2, num_classes=1)


# --- parameter counts: hand formulas from the reference architecture --------------------------------

def _conv(k, c_in, c_out, bn=True):
    """k x k convolution without bias (the reference's custom_conv2d), BatchNorm: gamma, beta, mean, variance."""
    return k * k * c_in * c_out + (4 * c_out if bn else 0)


def _stage1_g(E=1024, ng=128, z=100, gf=128, c=3, size=64):
    b2 = (size // 16) ** 2
    return (E * 2 * ng + 2 * ng                                        # CA: FC to [mu | log sigma]
            + (ng + z) * b2 * 8 * gf + b2 * 8 * gf + 4 * b2 * 8 * gf   # FC (bias) + 1-D BatchNorm
            + _conv(1, 8 * gf, 2 * gf) + _conv(3, 2 * gf, 2 * gf) + _conv(3, 2 * gf, 8 * gf)
            + _conv(3, 8 * gf, 4 * gf)
            + _conv(1, 4 * gf, gf) + _conv(3, gf, gf) + _conv(3, gf, 4 * gf)
            + _conv(3, 4 * gf, 2 * gf) + _conv(3, 2 * gf, gf) + _conv(3, gf, c, bn=False))


def _stage2_g(E=1024, ng=128, gf=128, c=3, blocks=4):
    return (E * 2 * ng + 2 * ng
            + _conv(3, c, gf, bn=False) + _conv(4, gf, 2 * gf) + _conv(4, 2 * gf, 4 * gf)
            + _conv(3, 4 * gf + ng, 4 * gf) + blocks * 2 * _conv(3, 4 * gf, 4 * gf)
            + _conv(3, 4 * gf, 2 * gf) + _conv(3, 2 * gf, gf) + _conv(3, gf, gf // 2) + _conv(3, gf // 2, gf // 4)
            + _conv(3, gf // 4, c, bn=False))


def _logits(E, ng, df, code_size):
    return E * ng + ng + _conv(1, 8 * df + ng, 8 * df) + _conv(code_size, 8 * df, 1, bn=False)


def _stage1_d(E=1024, ng=128, df=64, c=3, size=64):
    return (_conv(4, c, df, bn=False) + _conv(4, df, 2 * df) + _conv(4, 2 * df, 4 * df) + _conv(4, 4 * df, 8 * df)
            + _conv(1, 8 * df, 2 * df) + _conv(3, 2 * df, 2 * df) + _conv(3, 2 * df, 8 * df)
            + _logits(E, ng, df, size // 16))


def _stage2_d(E=1024, ng=128, df=64, c=3, size=256):
    widths = [df * 2 ** i for i in range(6)]
    return (_conv(4, c, df, bn=False) + sum(_conv(4, a, b) for a, b in zip(widths, widths[1:]))
            + _conv(1, 32 * df, 16 * df) + _conv(1, 16 * df, 8 * df)
            + _conv(1, 8 * df, 2 * df) + _conv(3, 2 * df, 2 * df) + _conv(3, 2 * df, 8 * df)
            + _logits(E, ng, df, size // 64))


@both
def test_parameter_counts_follow_the_reference_architecture():
    """The paper configs (Ng 128, z 100, gf 128, df 64, phi_t 1024, 4 residual blocks) counted by hand.

    Stage-I is built at full size; Stage-II at a quarter of the width (its 26M + 49M
    take seconds to initialise), against the same formulas.
    """
    assert (_stage1_g(), _stage1_d(), _stage2_g(), _stage2_d()) == (14_303_360, 4_034_176, 26_301_792, 48_617_088)
    assert keras_zoo.create_model("stackgan_stage1").count_params() == _stage1_g()
    assert keras_zoo.create_model("stackgan_stage1_discriminator").count_params() == _stage1_d()
    assert StackGANStage2(gf_dim=32).count_params() == _stage2_g(gf=32)
    assert StackGANStage2Discriminator(df_dim=16).count_params() == _stage2_d(df=16)
    # The class-conditioned variant adds its label Embedding (classes x embedding_dim).
    assert keras_zoo.create_model("stackgan_stage1", tiny=True).count_params() == \
        10 * 1024 + _stage1_g(E=1024, ng=8, z=16, gf=32, c=1, size=16)


def _assert_label_moves_the_discriminator(name, images, labels):
    """Relabelling moves the discriminator's logit > 0.05x as much as changing the images.

    Training mode (batch statistics): at the initial moving statistics every logit is ~0.
    """
    discriminator = keras_zoo.create_model(name, tiny=True)
    base = np.asarray(discriminator([images, labels], training=True))
    relabelled = np.asarray(discriminator([images, np.roll(labels, 3)], training=True))
    other_images = np.asarray(discriminator([images[::-1], labels], training=True))
    assert np.abs(base - relabelled).mean() > 0.05 * np.abs(base - other_images).mean()


@both
def test_the_class_label_reaches_both_networks_from_the_start():
    """The label must carry signal at initialisation, as the reference's pretrained phi_t does.

    With a weight-scale (N(0, 0.02)) Embedding, the spread of mu over classes was 0.001 sigma
    and relabelling moved D's logit 3e-4 as much as changing the images; trained for 900
    steps, neither network used the label (d_wrong = d_real, 10% digit accuracy).
    """
    keras.utils.set_random_seed(0)
    generator = keras_zoo.create_model("stackgan_stage1", tiny=True)
    ca = keras.Model(generator.inputs, generator.get_layer("stackgan_stage1_ca_lrelu").output)
    x = np.asarray(ca([np.zeros((10, 16), "float32"), np.arange(10, dtype="int32")]))
    mu, sigma = x[:, :8], np.exp(x[:, 8:])
    assert mu.std(axis=0).mean() > 0.1 * sigma.mean()
    images = np.random.default_rng(0).uniform(0, 1, (20, 16, 16, 1)).astype("float32")
    _assert_label_moves_the_discriminator("stackgan_stage1_discriminator", images, np.arange(20, dtype="int32") % 10)


@both
def test_the_class_label_reaches_both_stage2_networks_from_the_start():
    """Stage-II's label must move its generator and its 64x64 discriminator at initialisation.

    In training mode (batch statistics, as the trainer runs them) relabelling moved the
    tiny Stage-II output 0.7x and its discriminator's logit 0.17x as much as changing the images.
    """
    keras.utils.set_random_seed(0)
    generator = keras_zoo.create_model("stackgan_stage2", tiny=True)
    rng = np.random.default_rng(0)
    low = rng.uniform(0, 1, (20, 16, 16, 1)).astype("float32")
    labels = np.arange(20, dtype="int32") % 10

    def generate(images, conditions):
        tf.random.set_seed(1)  # the same conditioning-augmentation noise in every call
        return np.asarray(generator([images, conditions], training=True))

    base = generate(low, labels)
    np.testing.assert_array_equal(generate(low, labels), base)
    relabelled, other_images = generate(low, np.roll(labels, 3)), generate(low[::-1], labels)
    assert np.abs(relabelled - base).mean() > 0.1 * np.abs(other_images - base).mean()
    images = rng.uniform(0, 1, (20, 64, 64, 1)).astype("float32")
    _assert_label_moves_the_discriminator("stackgan_stage2_discriminator", images, labels)


# --- conditional training ---------------------------------------------------------------------------

def _constant_discriminator(logit, image_shape):
    image, label = keras.Input(shape=image_shape), keras.Input(shape=(), dtype="int32")
    flat = keras.layers.Flatten()(image)
    x = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(logit))(flat)
    y = keras.layers.Flatten()(keras.layers.Embedding(10, 1, embeddings_initializer="zeros")(label))
    return keras.Model([image, label], keras.layers.Add()([x, y]))


def _np_bce(target, logit):
    p = 1.0 / (1.0 + np.exp(-logit))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


@both
def test_trainer_adds_the_kl_and_the_matching_aware_term():
    """D(x, y) = c: d_loss = BCE(1, c) + (BCE(0, c) + BCE(0, c)) / 2; loss = BCE(1, c) + kl_weight * KL."""
    keras.utils.set_random_seed(0)
    generator = StackGANStage1(image_size=16, channels=1, z_dim=4, condition_dim=3, embedding_dim=5,
                               num_classes=10, gf_dim=2, kl_weight=7.0, name="g")
    # Non-zero mu and log sigma, so that the KL is far from 0.
    fc = generator.get_layer("g_ca_fc")
    fc.set_weights([np.random.default_rng(0).normal(0, 1, fc.kernel.shape).astype("float32"),
                    np.full(fc.bias.shape, 0.3, "float32")])
    c = 0.4
    trainer = GANTrainer(generator, _constant_discriminator(c, (16, 16, 1)), condition_on_labels=True,
                         matching_aware=True, num_classes=10)
    labels = np.arange(8, dtype="int32") % 10
    # In graph mode: the conditional training below runs eagerly (see stage1_run).
    logs = tf.function(trainer.test_step)((tf.zeros((8, 8, 8, 1)), tf.constant(labels)))
    ca_input = keras.Model(generator.inputs, generator.get_layer("g_ca_lrelu").output)
    x = np.asarray(ca_input([np.zeros((8, 4), "float32"), labels])).astype("float64")
    expected_kl = 7.0 * _np_kl(x[:, :3], x[:, 3:]).mean()
    assert expected_kl > 0.1
    np.testing.assert_allclose(float(logs["g_extra_loss"]), expected_kl, rtol=1e-4)
    np.testing.assert_allclose(float(logs["g_loss"]), _np_bce(1.0, c), rtol=1e-5)
    np.testing.assert_allclose(float(logs["loss"]), _np_bce(1.0, c) + expected_kl, rtol=1e-4)
    np.testing.assert_allclose(float(logs["d_loss"]), _np_bce(1.0, c) + _np_bce(0.0, c), rtol=1e-5)
    assert 0 < float(logs["d_wrong"]) < 1


@both
def test_mismatched_conditions_are_never_the_true_ones():
    tf.random.set_seed(1)
    labels = tf.constant(np.arange(20_000) % 10, tf.int32)
    wrong = np.asarray(mismatched_conditions(labels, 10))
    assert not np.any(wrong == np.asarray(labels)) and wrong.min() >= 0 and wrong.max() <= 9
    counts = np.bincount(wrong[np.asarray(labels) == 0], minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].mean()  # uniform over the other 9
    embeddings = tf.constant(np.arange(12, dtype="float32").reshape(4, 3))
    np.testing.assert_array_equal(mismatched_conditions(embeddings), np.roll(np.asarray(embeddings), 1, axis=0))


@both
def test_text_embedding_generators_reject_class_labels_with_the_fix():
    generator = keras_zoo.create_model("stackgan_stage1", tiny=True, num_classes=None)
    trainer = GANTrainer(generator, _constant_discriminator(0.0, (16, 16, 1)), condition_on_labels=True)
    with pytest.raises(ValueError, match="num_classes.*Received: condition dtype int32"):
        trainer.test_step((tf.zeros((2, 8, 8, 1)), tf.constant([1, 2], tf.int32)))


@both
def test_stage2_needs_a_stage1_run_and_says_so(tmp_path):
    task = tasks.get_task("gan")
    config = keras_zoo.model_info("stackgan_stage2").resolved_config(tiny=True)
    with pytest.raises(ValueError, match="pass --stackgan_stage1_dir=DIR.*stackgan_stage1 run"):
        task.prepare(keras_zoo.create_model("stackgan_stage2", tiny=True), config)
    with pytest.raises(ValueError, match="finished stackgan_stage1 run.*Received: --stackgan_stage1_dir="):
        tasks.get_task("gan", {"stackgan_stage1_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="trained with them, not alone"):
        task.prepare(keras_zoo.create_model("stackgan_stage1_discriminator", tiny=True), config)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="stackgan_df_dim must be an int >= 0.*Received"):
            tasks.get_task("gan", {"stackgan_df_dim": bad})


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    """One step of a narrow tiny Stage-I through the shared loop, run eagerly.

    Tracing the train and test steps of G + 3 D calls took ~75% of this file's time
    (60-70 s on a loaded CPU; 5 s eagerly); the conditional step is traced in
    test_trainer_adds_the_kl_and_the_matching_aware_term, the train step in test_gan.py.
    """
    model_dir = str(tmp_path_factory.mktemp("stackgan_stage1"))
    config = dict(model="stackgan_stage1", tiny=True, overrides=dict(gf_dim=8, embedding_dim=16), epochs=1,
                  steps_per_epoch=1, validation_steps=1, batch_size=8, learning_rate=2e-4, verbose=0)
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        return model_dir, train_and_evaluate(config, model_dir)
    finally:
        tf.config.run_functions_eagerly(eager)


@both
def test_stage1_trains_conditionally_with_the_kl_and_writes_a_row_per_class(stage1_run):
    model_dir, result = stage1_run
    history = result["history"]
    for key in ("loss", "d_loss", "g_loss", "g_extra_loss", "d_wrong", "val_d_loss", "val_g_extra_loss"):
        assert all(np.isfinite(history[key])), key
    assert history["g_extra_loss"][0] > 0  # the KL reaches the generator's objective
    np.testing.assert_allclose(history["loss"][0], history["g_loss"][0] + history["g_extra_loss"][0], rtol=1e-4)
    from PIL import Image

    grid = np.asarray(Image.open(result["task"]["samples_png"]))
    cell = 64 + 2  # 16x16 images scaled to 64 px, 2 px padding
    assert grid.shape == (10 * cell + 2, 8 * cell + 2) and grid.std() > 0  # rows = the 10 classes
    assert result["task"]["rows"] == "classes 0..9"


@both
def test_stage2_trains_on_the_frozen_stage1(stage1_run, tmp_path):
    """Through the task's own hooks, one eager train_step (tracing the three networks costs a minute)."""
    stage1_dir, _ = stage1_run
    task = tasks.get_task("gan", {"stackgan_stage1_dir": stage1_dir, "stackgan_df_dim": 3})
    narrow = dict(gf_dim=4, num_residual_blocks=1)
    config = keras_zoo.model_info("stackgan_stage2").resolved_config(tiny=True, **narrow)
    trainer = task.prepare(keras_zoo.create_model("stackgan_stage2", tiny=True, **narrow), config)
    generator_opt, discriminator_opt = task.optimizer_pair(keras.optimizers.Adam(2e-4))
    trainer.compile(generator_opt, discriminator_opt)
    before = [np.array(w) for w in trainer.stage1.weights]
    generator_before = [np.array(w) for w in trainer.generator.trainable_weights]
    rng = np.random.default_rng(0)
    batch = (tf.constant(rng.uniform(0, 1, (4, 8, 8, 1)), tf.float32), tf.range(4, dtype=tf.int32))
    logs = trainer.train_step(batch)
    for key in ("d_loss", "g_loss", "g_extra_loss", "d_wrong"):
        assert np.isfinite(float(logs[key])), key
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, trainer.stage1.weights))  # frozen
    generator_after = trainer.generator.trainable_weights
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(generator_before, generator_after))
    assert trainer.discriminator.input_shape[0] == (None, 64, 64, 1)
    assert trainer.discriminator.get_layer("stackgan_stage2_discriminator_down1_conv").filters == 3  # not gf/2 = 2
    # Precise BN feeds the generator what training does: a frozen Stage-I image of fresh z, and the condition.
    low, condition = next(iter(tf.data.Dataset.from_tensors(batch).map(lambda *b: trainer.generator_inputs(b))))
    assert low.shape == (4, 16, 16, 1) and np.array_equal(condition, batch[1])
    assert 0 <= float(tf.reduce_min(low)) and float(tf.reduce_max(low)) <= 1 and float(tf.math.reduce_std(low)) > 0
    result = task.after_training(trainer.generator, None, str(tmp_path), config)
    from PIL import Image

    assert np.asarray(Image.open(result["samples_png"])).shape == (10 * (64 + 2) + 2, 8 * (64 + 2) + 2)
    assert os.path.isfile(result["stage1_samples_png"])


# --- export --------------------------------------------------------------------------------------------

@pytest.mark.tf_keras
def test_stage1_generator_float_tflite_matches_keras():
    from export import convert, verify

    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("stackgan_stage1", tiny=True)
    rng = np.random.default_rng(0)
    examples = [[rng.standard_normal((1, 16)).astype("float32"), np.array([i % 10], "int32")] for i in range(8)]
    content = convert.convert(model, "float32", convert.input_signature(model, examples[0]), examples)
    result = verify.compare(model, content, examples, "gan", "float32")
    assert result["passed"] and result["max_abs_diff"] < 1e-4, result
