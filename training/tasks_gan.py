"""Adversarial training: ``gan`` (DCGAN, arXiv:1511.06434) and ``image_to_image`` (pix2pix, arXiv:1611.07004).

The registered model is the generator; the task builds its discriminator
(``gan``: :func:`keras_zoo.models.dcgan.discriminator_for` from the builder config;
``image_to_image``: the 70x70 PatchGAN of :func:`keras_zoo.models.pix2pix.discriminator_for`,
scaled to the generator's width)
and wraps both in a :class:`GANTrainer` whose ``train_step`` updates the two
networks simultaneously from one forward pass, each with its own optimizer.

Losses (per example; ``tf.nn.compute_average_loss`` over the global batch):

- discriminator: ``BCE(D(real), t_real) + BCE(D(fake), t_fake)``, averaged over
  PatchGAN positions; pix2pix halves it ("we divide the objective by 2 while
  optimizing D", arXiv:1611.07004 Sec. 3.3);
- generator: the non-saturating ``BCE(D(fake), 1) = -log D(G(z))`` (Goodfellow et
  al., arXiv:1406.2661 Sec. 3), plus ``pix2pix_l1_weight * |y - G(x)|_1`` for pix2pix
  (lambda = 100, arXiv:1611.07004 Sec. 3.1 and 4).

Options (flags of ``python -m training.train``):

- ``gan_label_smoothing`` s: one-sided label smoothing (Salimans et al.,
  arXiv:1606.03498 Sec. 3.4): the discriminator's "real" targets become ``1 - s``,
  its "fake" targets stay 0.
- ``gan_label_flip`` p: each discriminator target is flipped (real <-> fake) with
  probability p, before smoothing; the generator's targets are never touched.
- ``gan_adam_beta1``: beta_1 of Adam-family optimizers for both networks (0.5 in
  both papers; Keras' default 0.9 makes the adversarial game oscillate).
- ``pix2pix_l1_weight``: lambda of the L1 term (``image_to_image`` only).

The training loop builds one optimizer (``--optimizer``, ``--learning_rate``); it
trains the generator, and the discriminator gets a fresh copy built from its
config (``type(opt).from_config(opt.get_config())``: same class, learning rate and
hyperparameters, its own slots). Both papers train with Adam, lr 2e-4, beta_1 0.5:
``--optimizer=adam --learning_rate=0.0002``.

Data: ``gan`` takes ``(images in [0, 1], labels)`` batches of any size (the real
images are resized to the generator's output); ``image_to_image`` takes
``(input, target)`` image pairs in [0, 1] at the model's size.
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from training.tasks import Task, register_task

_COMMON_OPTIONS = {
    "gan_label_smoothing": (0.0, "GAN tasks: one-sided label smoothing s; the discriminator's real targets "
                                 "become 1 - s (arXiv:1606.03498)."),
    "gan_label_flip": (0.0, "GAN tasks: probability of flipping each discriminator target (real <-> fake)."),
    "gan_adam_beta1": (0.5, "GAN tasks: beta_1 of Adam-family optimizers for both networks (0.5 in DCGAN "
                            "and pix2pix)."),
}


def binary_cross_entropy(targets, logits):
    """Per-example sigmoid cross-entropy, averaged over every axis but the batch."""
    targets = tf.broadcast_to(tf.cast(targets, tf.float32), tf.shape(logits))
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(tf.reshape(losses, [tf.shape(losses)[0], -1]), axis=1)


def _per_example(targets, logits):
    """``(B,)`` targets broadcast over the discriminator's output ``(B, ...)``."""
    rank = len(logits.shape)
    return tf.reshape(targets, [-1] + [1] * (rank - 1))


def discriminator_targets(is_real, flip, smoothing):
    """The discriminator's per-example targets.

    Args:
        is_real: ``(B,)`` bool, True for real images.
        flip: ``(B,)`` bool, True where the label is flipped.
        smoothing: one-sided label smoothing s.

    Returns:
        ``(B,)`` float32: 1 - s where the (possibly flipped) label says real, else 0.
    """
    labels = tf.math.logical_xor(tf.cast(is_real, tf.bool), tf.cast(flip, tf.bool))
    return tf.where(labels, 1.0 - float(smoothing), 0.0)


def random_flips(shape, probability):
    """Bool mask, True with ``probability``: which discriminator targets to flip."""
    return tf.random.uniform(shape) < probability


def discriminator_loss(real_logits, fake_logits, real_targets, fake_targets):
    """Per-example ``BCE(D(real), real_targets) + BCE(D(fake), fake_targets)``."""
    return (binary_cross_entropy(_per_example(real_targets, real_logits), real_logits)
            + binary_cross_entropy(_per_example(fake_targets, fake_logits), fake_logits))


def generator_loss(fake_logits):
    """The non-saturating generator loss ``-log sigmoid(D(G(z)))`` per example."""
    return binary_cross_entropy(1.0, fake_logits)


def match_images(images, shape):
    """Real images in [0, 1] resized and channel-matched to a generator's ``(H, W, C)`` output."""
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1 and shape[-1] == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif images.shape[-1] == 3 and shape[-1] == 1:
        images = tf.image.rgb_to_grayscale(images)
    if tuple(images.shape[1:3]) != tuple(shape[:2]):
        images = tf.image.resize(images, shape[:2], method="bilinear")
    return images


def sample_noise(batch, z_dim, seed=None):
    """z ~ U(-1, 1), as in the DCGAN authors' code."""
    if seed is None:
        return tf.random.uniform((batch, z_dim), -1.0, 1.0)
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(batch, z_dim)).astype("float32")


class GANTrainer(keras.Model):
    """Generator + discriminator with their own optimizers, for ``fit``/``evaluate``.

    Unconditional (``conditional=False``): batches are ``(real images, labels)``; the
    generator maps z ~ U(-1, 1) to images. Conditional (pix2pix): batches are
    ``(input, target)``; the generator maps the input to a target, and the
    discriminator judges ``[input, target]`` pairs.

    Logged: ``d_loss``, ``g_loss`` (the adversarial term), ``d_real`` / ``d_fake``
    (mean D probability on real / generated images), ``loss`` (the generator's full
    objective) and, when conditional, ``l1`` (mean |target - G(input)| in [0, 1] units).
    """

    def __init__(self, generator, discriminator, conditional=False, l1_weight=0.0, label_smoothing=0.0,
                 label_flip=0.0, discriminator_loss_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.conditional = conditional
        self.l1_weight = float(l1_weight)
        self.label_smoothing = float(label_smoothing)
        self.label_flip = float(label_flip)
        self.discriminator_loss_scale = float(discriminator_loss_scale)
        self.image_shape = tuple(generator.output_shape[1:])
        self.z_dim = None if conditional else int(generator.input_shape[-1])
        names = ["loss", "d_loss", "g_loss", "d_real", "d_fake"] + (["l1"] if conditional else [])
        self.trackers = [keras.metrics.Mean(name=n) for n in names]
        self.d_optimizer = None
        # Both networks are built functional models: the trainer needs no symbolic build on the data.
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers)

    def compile(self, optimizer, d_optimizer, **kwargs):
        """``optimizer`` trains the generator, ``d_optimizer`` the discriminator."""
        super().compile(optimizer=optimizer, **kwargs)
        self.d_optimizer = d_optimizer
        # Built on each network's own weights (fit would build ``optimizer`` on both).
        optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _forward(self, data, training):
        if self.conditional:
            source, real = data[0], tf.cast(data[1], tf.float32)
            batch = tf.shape(real)[0]
            fake = self.generator(source, training=training)
            real_logits = self.discriminator([source, real], training=training)
            fake_logits = self.discriminator([source, fake], training=training)
        else:
            real = match_images(data[0] if isinstance(data, (tuple, list)) else data, self.image_shape)
            batch = tf.shape(real)[0]
            fake = self.generator(sample_noise(batch, self.z_dim), training=training)
            real_logits = self.discriminator(real, training=training)
            fake_logits = self.discriminator(fake, training=training)
        flip = random_flips((2, batch), self.label_flip if training else 0.0)
        real_targets = discriminator_targets(tf.ones((batch,), tf.bool), flip[0], self.label_smoothing)
        fake_targets = discriminator_targets(tf.zeros((batch,), tf.bool), flip[1], self.label_smoothing)
        d_loss = self.discriminator_loss_scale * discriminator_loss(real_logits, fake_logits, real_targets,
                                                                    fake_targets)
        g_adversarial = generator_loss(fake_logits)
        stats = {"d_loss": d_loss, "g_loss": g_adversarial,
                 "d_real": tf.reduce_mean(tf.reshape(tf.sigmoid(real_logits), [batch, -1]), axis=1),
                 "d_fake": tf.reduce_mean(tf.reshape(tf.sigmoid(fake_logits), [batch, -1]), axis=1)}
        g_loss = g_adversarial
        if self.conditional:
            stats["l1"] = tf.reduce_mean(tf.reshape(tf.abs(real - tf.cast(fake, tf.float32)), [batch, -1]), axis=1)
            g_loss = g_loss + self.l1_weight * stats["l1"]
        stats["loss"] = g_loss
        return g_loss, d_loss, stats

    def _report(self, stats):
        for tracker in self.trackers:
            tracker.update_state(tf.reduce_mean(stats[tracker.name]))
        return {t.name: t.result() for t in self.trackers}

    def train_step(self, data):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            g_loss, d_loss, stats = self._forward(data, training=True)
            g_loss, d_loss = tf.nn.compute_average_loss(g_loss), tf.nn.compute_average_loss(d_loss)
        for optimizer, tape, loss, network in ((self.optimizer, g_tape, g_loss, self.generator),
                                               (self.d_optimizer, d_tape, d_loss, self.discriminator)):
            weights = network.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(stats)

    def test_step(self, data):
        return self._report(self._forward(data, training=False)[2])


def _check_fraction(name, value, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < high:
        raise ValueError(f"--{name} must be a number in [0, {high}). Received: --{name}={value!r}")


class _AdversarialTask(Task):
    OPTIONS = dict(_COMMON_OPTIONS)

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        _check_fraction("gan_label_smoothing", self.options["gan_label_smoothing"], 0.5)
        _check_fraction("gan_label_flip", self.options["gan_label_flip"], 0.5)
        _check_fraction("gan_adam_beta1", self.options["gan_adam_beta1"], 1.0)

    def _trainer(self, generator, discriminator, **kwargs):
        return GANTrainer(generator, discriminator, label_smoothing=self.options["gan_label_smoothing"],
                          label_flip=self.options["gan_label_flip"], name=f"{generator.name}_trainer", **kwargs)

    def compile(self, model, optimizer, config):
        model.compile(*self.optimizer_pair(optimizer))

    def optimizer_pair(self, optimizer):
        """(generator optimizer, discriminator optimizer): same class and hyperparameters, beta_1 set."""
        settings = optimizer.get_config()
        if "beta_1" in settings:
            settings["beta_1"] = float(self.options["gan_adam_beta1"])
            optimizer = type(optimizer).from_config(dict(settings))
        return optimizer, type(optimizer).from_config(dict(settings))


@register_task("gan")
class GANTask(_AdversarialTask):
    """Unconditional GAN (DCGAN): the model is the generator ``z -> image``.

    No ``best_model.keras`` is kept: neither adversarial loss ranks sample quality.
    """

    monitor = None

    def prepare(self, model, config):
        from keras_zoo.models.dcgan import discriminator_for

        if len(model.inputs) != 1 or len(model.input_shape) != 2 or len(model.output_shape) != 4:
            raise ValueError("The gan task trains generators mapping a noise vector (B, z_dim) to images "
                             f"(B, H, W, C), such as dcgan. Received: a model with input shape {model.input_shape} "
                             f"and output shape {model.output_shape}")
        return self._trainer(model, discriminator_for(config))

    def after_training(self, model, bundle, write_dir, config):
        path = write_gan_samples(model, os.path.join(write_dir, "samples.png"), num=64, seed=0)
        return {"samples_png": path}


@register_task("image_to_image")
class ImageToImageTask(_AdversarialTask):
    """Conditional GAN + L1 (pix2pix): the model is the generator ``input image -> target image``."""

    monitor = "val_l1"
    OPTIONS = {**_COMMON_OPTIONS,
               "pix2pix_l1_weight": (100.0, "image_to_image: lambda of the L1 term (100 in arXiv:1611.07004).")}

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        weight = self.options["pix2pix_l1_weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"--pix2pix_l1_weight must be a number >= 0. Received: --pix2pix_l1_weight={weight!r}")

    def prepare(self, model, config):
        from keras_zoo.models.pix2pix import discriminator_for

        if (len(model.inputs) != 1 or len(model.input_shape) != 4 or len(model.output_shape) != 4
                or tuple(model.input_shape[1:3]) != tuple(model.output_shape[1:3])):
            raise ValueError("The image_to_image task trains generators mapping an image (B, H, W, C) to an image "
                             "of the same height and width, such as pix2pix_generator (pix2pix_discriminator is "
                             "trained with it, not alone). Received: a model with input shape "
                             f"{model.input_shape} and output shape {model.output_shape}")
        return self._trainer(model, discriminator_for(model, config), conditional=True,
                             l1_weight=self.options["pix2pix_l1_weight"], discriminator_loss_scale=0.5)

    def after_training(self, model, bundle, write_dir, config):
        inputs, targets = next(iter(bundle.test))
        path = write_translation_grid(model, np.asarray(inputs)[:8], np.asarray(targets)[:8],
                                      os.path.join(write_dir, "samples.png"))
        return {"samples_png": path}


def write_gan_samples(generator, path, num=64, seed=0):
    """A PNG grid of ``num`` images generated from z ~ U(-1, 1) drawn with ``seed``."""
    from training.sample import image_grid

    z = sample_noise(num, int(generator.input_shape[-1]), seed=seed)
    return image_grid(np.asarray(generator(z, training=False)), path)


def write_translation_grid(generator, inputs, targets, path):
    """A PNG grid with one row per example: input | generated | target."""
    from training.sample import image_grid

    outputs = np.asarray(generator(inputs, training=False))
    triplets = [np.asarray(match_images(inputs, outputs.shape[1:])), outputs,
                np.asarray(match_images(targets, outputs.shape[1:]))]
    return image_grid(np.stack(triplets, axis=1).reshape(-1, *outputs.shape[1:]), path, columns=3)
