"""Adversarial training: ``gan`` (DCGAN, arXiv:1511.06434; StackGAN, arXiv:1612.03242) and
``image_to_image`` (pix2pix, arXiv:1611.07004).

The registered model is the generator; the task builds its discriminator
(``gan``: :func:`keras_zoo.models.dcgan.discriminator_for` for unconditional ``z -> image``
generators, :func:`keras_zoo.models.stackgan.discriminator_for` for conditional
``[z, condition] -> image`` and ``[low-res image, condition] -> image`` ones;
``image_to_image``: the 70x70 PatchGAN of :func:`keras_zoo.models.pix2pix.discriminator_for`,
scaled to the generator's width)
and wraps both in a :class:`GANTrainer` whose ``train_step`` updates the two
networks simultaneously from one forward pass, each with its own optimizer.

Conditional ``gan`` (StackGAN): batches are ``(images, conditions)`` (class labels, or
text embeddings); the condition is fed to both networks. The generator's own losses
(``model.losses``: StackGAN's weighted conditioning-augmentation KL) are added to its
objective. A Stage-II generator (first input an image) trains on the images of a
trained, frozen Stage-I generator loaded from ``--stackgan_stage1_dir``.

Losses (per example; ``tf.nn.compute_average_loss`` over the global batch):

- discriminator: ``BCE(D(real), t_real) + BCE(D(fake), t_fake)``, averaged over
  PatchGAN positions; pix2pix halves it ("we divide the objective by 2 while
  optimizing D", arXiv:1611.07004 Sec. 3.3);
- matching-aware discriminator (conditional ``gan``, ``gan_matching_aware``, on by
  default): real images paired with a wrong condition are a third, "fake" input:
  ``BCE(D(real, c), t_real) + (BCE(D(fake, c), t_fake) + BCE(D(real, c_wrong), t_fake)) / 2``
  (arXiv:1612.03242 Sec. 3 after Reed et al. arXiv:1605.05396; the weights are the
  reference code's, ``stageI/trainer.py``); wrong class labels are drawn uniformly from the
  other classes, wrong embeddings are the batch's rolled by one;
- generator: the non-saturating ``BCE(D(fake), 1) = -log D(G(z))`` (Goodfellow et
  al., arXiv:1406.2661 Sec. 3), plus ``pix2pix_l1_weight * |y - G(x)|_1`` for pix2pix
  (lambda = 100, arXiv:1611.07004 Sec. 3.1 and 4), plus the sum of the generator's
  ``model.losses`` (logged as ``g_extra_loss``; 0 for DCGAN and pix2pix).

Noise: z ~ U(-1, 1) for unconditional generators (the DCGAN authors' code) and
z ~ N(0, I) for conditional ones (the StackGAN reference code).

Options (flags of ``python -m training.train``):

- ``gan_label_smoothing`` s: one-sided label smoothing (Salimans et al.,
  arXiv:1606.03498 Sec. 3.4): the discriminator's "real" targets become ``1 - s``,
  its "fake" targets stay 0.
- ``gan_label_flip`` p: each discriminator target is flipped (real <-> fake) with
  probability p, before smoothing; the generator's targets are never touched.
- ``gan_adam_beta1``: beta_1 of Adam-family optimizers for both networks (0.5 in
  all three papers; Keras' default 0.9 makes the adversarial game oscillate).
- ``pix2pix_l1_weight``: lambda of the L1 term (``image_to_image`` only).
- ``gan_matching_aware``: the matching-aware term above (conditional ``gan`` only).
- ``stackgan_stage1_dir``: the ``--model_dir`` of a trained Stage-I run (Stage-II only).
- ``gan_precise_bn_batches`` (``gan``): after training, the generator's BatchNorm statistics are
  recomputed over this many batches of its inputs (precise BN, as the dense-prediction tasks).
- ``stackgan_df_dim``: the discriminator's width (default ``gf_dim / 2``, the reference's ratio).

The training loop builds one optimizer (``--optimizer``, ``--learning_rate``); it
trains the generator, and the discriminator gets a fresh copy built from its
config (``type(opt).from_config(opt.get_config())``: same class, learning rate and
hyperparameters, its own slots). The three papers train with Adam, lr 2e-4, beta_1 0.5:
``--optimizer=adam --learning_rate=0.0002``.

Data: ``gan`` takes ``(images in [0, 1], labels)`` batches of any size (the real
images are resized to the generator's output; conditional generators take the labels, or
``(B, embedding_dim)`` text embeddings, as their condition); ``image_to_image`` takes
``(input, target)`` image pairs in [0, 1] at the model's size.
"""
import json
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from training.tasks import Task, precise_batch_norm, register_task

_COMMON_OPTIONS = {
    "gan_label_smoothing": (0.0, "GAN tasks: one-sided label smoothing s; the discriminator's real targets "
                                 "become 1 - s (arXiv:1606.03498)."),
    "gan_label_flip": (0.0, "GAN tasks: probability of flipping each discriminator target (real <-> fake)."),
    "gan_adam_beta1": (0.5, "GAN tasks: beta_1 of Adam-family optimizers for both networks (0.5 in DCGAN, "
                            "pix2pix and StackGAN)."),
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


def discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, wrong_logits=None,
                       wrong_targets=None):
    """Per-example ``BCE(D(real), real_targets) + BCE(D(fake), fake_targets)``.

    With ``wrong_logits`` (matching-aware, arXiv:1612.03242): the fake and mismatched terms
    share the second half, ``BCE(real) + (BCE(fake) + BCE(wrong)) / 2``.
    """
    real = binary_cross_entropy(_per_example(real_targets, real_logits), real_logits)
    fake = binary_cross_entropy(_per_example(fake_targets, fake_logits), fake_logits)
    if wrong_logits is None:
        return real + fake
    wrong = binary_cross_entropy(_per_example(wrong_targets, wrong_logits), wrong_logits)
    return real + 0.5 * (fake + wrong)


def generator_loss(fake_logits):
    """The non-saturating generator loss ``-log sigmoid(D(G(z)))`` per example."""
    return binary_cross_entropy(1.0, fake_logits)


def model_losses(model):
    """Scalar sum of ``model.losses`` of the latest call (0 when it has none)."""
    losses = [tf.cast(loss, tf.float32) for loss in model.losses]
    return tf.add_n(losses) if losses else tf.zeros((), tf.float32)


def mismatched_conditions(conditions, num_classes=None):
    """Conditions that do not match their images, for the matching-aware discriminator.

    Class labels ``(B,)``: each replaced by one of the other ``num_classes - 1`` classes,
    uniformly. Embeddings ``(B, D)``: the batch rolled by one (another example's text, as
    the reference code's wrong-image pairs).
    """
    if conditions.dtype.is_integer:
        shift = tf.random.uniform(tf.shape(conditions), 1, num_classes, dtype=conditions.dtype)
        return (conditions + shift) % num_classes
    return tf.roll(conditions, shift=1, axis=0)


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


def sample_noise(batch, z_dim, seed=None, normal=False):
    """z ~ U(-1, 1) (the DCGAN authors' code), or z ~ N(0, I) with ``normal`` (StackGAN's code)."""
    if seed is None:
        if normal:
            return tf.random.normal((batch, z_dim))
        return tf.random.uniform((batch, z_dim), -1.0, 1.0)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, z_dim)) if normal else rng.uniform(-1.0, 1.0, size=(batch, z_dim))
    return z.astype("float32")


def is_conditional_generator(model):
    """``[z or low-res image, condition] -> image``: a conditional (StackGAN) generator."""
    return len(model.inputs) == 2 and len(model.inputs[0].shape) in (2, 4) and len(model.output_shape) == 4


class GANTrainer(keras.Model):
    """Generator + discriminator with their own optimizers, for ``fit``/``evaluate``.

    Three modes, by the data they train on:

    - unconditional (default): batches are ``(real images, labels)``; the generator maps
      z ~ U(-1, 1) to images, the labels are unused.
    - ``paired`` (pix2pix): batches are ``(input, target)``; the generator maps the input
      to a target, and the discriminator judges ``[input, target]`` pairs.
    - ``condition_on_labels`` (StackGAN): batches are ``(real images, conditions)``; the
      generator maps ``[z ~ N(0, I), condition]`` to images (or, with ``stage1``,
      ``[stage1([z, condition]), condition]``, Stage-I frozen and in inference mode), and
      the discriminator judges ``[image, condition]``; with ``matching_aware`` it also
      sees real images with mismatched conditions as fakes.

    Logged: ``d_loss``, ``g_loss`` (the adversarial term), ``g_extra_loss`` (the generator's
    ``model.losses``), ``d_real`` / ``d_fake`` (mean D probability on real / generated
    images), ``loss`` (the generator's full objective); ``d_wrong`` (mean D probability on
    mismatched pairs) when matching-aware, ``l1`` (mean |target - G(input)| in [0, 1]
    units) when paired.
    """

    def __init__(self, generator, discriminator, paired=False, l1_weight=0.0, label_smoothing=0.0,
                 label_flip=0.0, discriminator_loss_scale=1.0, *, condition_on_labels=False, matching_aware=False,
                 num_classes=None, stage1=None, **kwargs):
        super().__init__(**kwargs)
        if paired and condition_on_labels:
            raise ValueError("A GANTrainer is either paired (pix2pix) or condition_on_labels (StackGAN). "
                             "Received: paired=True, condition_on_labels=True")
        self.generator = generator
        self.discriminator = discriminator
        self.paired = paired
        self.condition_on_labels = condition_on_labels
        self.matching_aware = bool(matching_aware and condition_on_labels)
        self.num_classes = num_classes
        self.stage1 = stage1
        self.l1_weight = float(l1_weight)
        self.label_smoothing = float(label_smoothing)
        self.label_flip = float(label_flip)
        self.discriminator_loss_scale = float(discriminator_loss_scale)
        self.image_shape = tuple(generator.output_shape[1:])
        if paired:
            self.z_dim = None
        elif condition_on_labels:
            self.z_dim = int((stage1 if stage1 is not None else generator).inputs[0].shape[-1])
        else:
            self.z_dim = int(generator.input_shape[-1])
        names = (["loss", "d_loss", "g_loss", "g_extra_loss", "d_real", "d_fake"]
                 + (["d_wrong"] if self.matching_aware else []) + (["l1"] if paired else []))
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

    def _check_condition(self, condition):
        expected = tf.as_dtype(self.generator.inputs[1].dtype)
        if condition.dtype.is_integer != expected.is_integer:
            kind = "int class labels" if condition.dtype.is_integer else "float embeddings"
            raise ValueError(f"The data gives {kind} {tuple(condition.shape)} as the condition, but "
                             f"{self.generator.name!r} takes {expected.name} {tuple(self.generator.inputs[1].shape)}: "
                             "build the generator class-conditioned (num_classes=the number of classes, as its tiny "
                             "config; e.g. --overrides='{\"num_classes\": 10}') for labelled images, or feed text "
                             f"embeddings. Received: condition dtype {condition.dtype.name}")

    def _conditional_inputs(self, z, condition):
        if self.stage1 is not None:
            return [self.stage1([z, condition], training=False), condition]
        return [z, condition]

    def _generate(self, z, condition, training):
        return self.generator(self._conditional_inputs(z, condition), training=training)

    def generator_inputs(self, data):
        """The generator's inputs for a training batch, with fresh noise (not paired mode)."""
        images = data[0] if isinstance(data, (tuple, list)) else data
        batch = tf.shape(images)[0]
        z = sample_noise(batch, self.z_dim, normal=self.condition_on_labels)
        return tuple(self._conditional_inputs(z, data[1])) if self.condition_on_labels else z

    def _forward(self, data, training):
        wrong_logits = None
        if self.paired:
            source, real = data[0], tf.cast(data[1], tf.float32)
            batch = tf.shape(real)[0]
            fake = self.generator(source, training=training)
            extra = model_losses(self.generator)
            real_logits = self.discriminator([source, real], training=training)
            fake_logits = self.discriminator([source, fake], training=training)
        elif self.condition_on_labels:
            if not isinstance(data, (tuple, list)) or len(data) < 2:
                raise ValueError("A conditional GAN trains on (images, conditions) batches. "
                                 f"Received: a batch of {type(data).__name__}")
            real, condition = match_images(data[0], self.image_shape), data[1]
            self._check_condition(condition)
            batch = tf.shape(real)[0]
            fake = self._generate(sample_noise(batch, self.z_dim, normal=True), condition, training)
            extra = model_losses(self.generator)
            real_logits = self.discriminator([real, condition], training=training)
            fake_logits = self.discriminator([fake, condition], training=training)
            if self.matching_aware:
                wrong = mismatched_conditions(condition, self.num_classes)
                wrong_logits = self.discriminator([real, wrong], training=training)
        else:
            real = match_images(data[0] if isinstance(data, (tuple, list)) else data, self.image_shape)
            batch = tf.shape(real)[0]
            fake = self.generator(sample_noise(batch, self.z_dim), training=training)
            extra = model_losses(self.generator)
            real_logits = self.discriminator(real, training=training)
            fake_logits = self.discriminator(fake, training=training)
        flip = random_flips((3, batch), self.label_flip if training else 0.0)
        real_targets = discriminator_targets(tf.ones((batch,), tf.bool), flip[0], self.label_smoothing)
        fake_targets = discriminator_targets(tf.zeros((batch,), tf.bool), flip[1], self.label_smoothing)
        wrong_targets = discriminator_targets(tf.zeros((batch,), tf.bool), flip[2], self.label_smoothing)
        d_loss = self.discriminator_loss_scale * discriminator_loss(
            real_logits, fake_logits, real_targets, fake_targets, wrong_logits, wrong_targets)
        g_adversarial = generator_loss(fake_logits)
        stats = {"d_loss": d_loss, "g_loss": g_adversarial, "g_extra_loss": tf.fill([batch], extra),
                 "d_real": _mean_probability(real_logits, batch), "d_fake": _mean_probability(fake_logits, batch)}
        if wrong_logits is not None:
            stats["d_wrong"] = _mean_probability(wrong_logits, batch)
        # The extra losses are per-replica means: broadcast per example, compute_average_loss keeps them.
        g_loss = g_adversarial + extra
        if self.paired:
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


def _mean_probability(logits, batch):
    return tf.reduce_mean(tf.reshape(tf.sigmoid(tf.cast(logits, tf.float32)), [batch, -1]), axis=1)


def _check_fraction(name, value, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < high:
        raise ValueError(f"--{name} must be a number in [0, {high}). Received: --{name}={value!r}")


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"--{name} must be an int >= 0. Received: --{name}={value!r}")


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
    """GANs whose model is the generator: unconditional ``z -> image`` (DCGAN) or
    conditional ``[z, condition] -> image`` / ``[Stage-I image, condition] -> image`` (StackGAN).

    No ``best_model.keras`` is kept: neither adversarial loss ranks sample quality.
    """

    monitor = None
    OPTIONS = {
        **_COMMON_OPTIONS,
        "gan_matching_aware": (True, "Conditional gan (StackGAN): the discriminator also learns to reject real "
                                     "images paired with a wrong condition (arXiv:1612.03242)."),
        "stackgan_stage1_dir": ("", "stackgan_stage2: the --model_dir of a trained stackgan_stage1 run; its "
                                    "generator, frozen, makes Stage-II's low-resolution inputs."),
        "gan_precise_bn_batches": (20, "gan: after training, recompute the generator's BatchNorm statistics as the "
                                       "mean over this many batches of its inputs (precise BN); 0 keeps the "
                                       "moving averages."),
        "stackgan_df_dim": (0, "StackGAN: width df_dim of the discriminator built for the generator; 0 = gf_dim / 2 "
                               "(the reference's 128 / 64)."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        if not isinstance(self.options["gan_matching_aware"], bool):
            raise ValueError("--gan_matching_aware must be true or false. "
                             f"Received: --gan_matching_aware={self.options['gan_matching_aware']!r}")
        _check_count("gan_precise_bn_batches", self.options["gan_precise_bn_batches"])
        _check_count("stackgan_df_dim", self.options["stackgan_df_dim"])
        directory = self.options["stackgan_stage1_dir"]
        if directory and not os.path.isfile(os.path.join(str(directory), "model.keras")):
            raise ValueError(f"--stackgan_stage1_dir must be the --model_dir of a finished stackgan_stage1 run "
                             f"(holding model.keras and config.json). Received: --stackgan_stage1_dir={directory!r}")
        self.stage1 = None

    def prepare(self, model, config):
        if is_conditional_generator(model):
            return self._conditional_trainer(model, config)
        if self.options["stackgan_stage1_dir"]:
            raise ValueError("--stackgan_stage1_dir is for Stage-II generators (stackgan_stage2); drop it. "
                             f"Received: a model with input shape {model.input_shape}")
        if len(model.inputs) != 1 or len(model.input_shape) != 2 or len(model.output_shape) != 4:
            raise ValueError("The gan task trains generators mapping a noise vector (B, z_dim) to images (B, H, W, C), "
                             "such as dcgan, or [z or Stage-I image, condition] to images, such as stackgan_stage1 "
                             "and stackgan_stage2 (their discriminators are trained with them, not alone). "
                             f"Received: a model with input shape {model.input_shape} and output shape "
                             f"{model.output_shape}")
        from keras_zoo.models.dcgan import discriminator_for

        return self._trainer(model, discriminator_for(config))

    def _conditional_trainer(self, model, config):
        from keras_zoo.models import stackgan

        if stackgan.is_stage2(model):
            self.stage1 = load_stage1_generator(self.options["stackgan_stage1_dir"], model)
        elif self.options["stackgan_stage1_dir"]:
            raise ValueError("--stackgan_stage1_dir is for Stage-II generators (stackgan_stage2), whose first input "
                             f"is an image; {model.name!r} takes noise. Drop the flag. "
                             f"Received: --stackgan_stage1_dir={self.options['stackgan_stage1_dir']!r}")
        discriminator = stackgan.discriminator_for(model, config, df_dim=self.options["stackgan_df_dim"])
        return self._trainer(model, discriminator, condition_on_labels=True,
                             matching_aware=self.options["gan_matching_aware"], num_classes=config.get("num_classes"),
                             stage1=self.stage1)

    def fit(self, model, train, **fit_kwargs):
        """``fit``, then precise BN on the generator: its moving averages mix the statistics of the
        last, fast-changing weights. Tiny Stage-II samples on digits were judged 81.5% right with
        them and 97.6% after 20 batches (tools/stackgan_report.py). BigGAN's "standing statistics"
        (arXiv:1809.11096) are the same idea.
        """
        history = model.fit(train, **fit_kwargs)
        if self.options["gan_precise_bn_batches"] > 0:
            precise_batch_norm(model.generator, train.map(lambda *batch: model.generator_inputs(batch)),
                               self.options["gan_precise_bn_batches"])
        return history

    def after_training(self, model, bundle, write_dir, config):
        path = os.path.join(write_dir, "samples.png")
        if not is_conditional_generator(model):
            return {"samples_png": write_gan_samples(model, path, num=64, seed=0)}
        classes = condition_classes(model)
        if classes:
            conditions = np.arange(classes, dtype="int32")
        else:
            conditions = np.asarray(next(iter(bundle.test))[1])[:8]
        result = {"samples_png": write_conditional_samples(model, conditions, path, per_condition=8, seed=0,
                                                           stage1=self.stage1),
                  "rows": "classes 0..%d" % (classes - 1) if classes else "the first 8 test conditions"}
        if self.stage1 is not None:
            result["stage1_samples_png"] = write_conditional_samples(
                self.stage1, conditions, os.path.join(write_dir, "stage1_samples.png"), per_condition=8, seed=0)
        return result


def load_stage1_generator(directory, stage2):
    """The frozen Stage-I generator of a finished run, checked against the Stage-II generator it feeds."""
    from keras_zoo.backend import keras_major_version

    if not directory:
        raise ValueError("stackgan_stage2 trains on the images of a trained, frozen Stage-I generator: pass "
                         "--stackgan_stage1_dir=DIR, the --model_dir of a finished stackgan_stage1 run (train it "
                         "first with --model=stackgan_stage1 and the same --tiny/--overrides). "
                         "Received: --stackgan_stage1_dir=''")
    with open(os.path.join(directory, "config.json")) as f:
        run = json.load(f)
    if run.get("keras_version", keras_major_version()) != keras_major_version():
        raise ValueError(f"The Stage-I run in {directory} was trained under Keras {run['keras_version']}; train "
                         f"Stage-II in the same runtime (--keras={run['keras_version']}). "
                         f"Received: Keras {keras_major_version()}")
    stage1 = keras.models.load_model(os.path.join(directory, "model.keras"), compile=False)
    stage1.trainable = False
    problems = []
    if not is_conditional_generator(stage1) or len(stage1.inputs[0].shape) != 2:
        problems.append(f"its inputs are {stage1.input_shape}, not [z, condition]")
    elif tuple(stage1.output_shape[1:]) != tuple(stage2.inputs[0].shape[1:]):
        problems.append(f"it makes {tuple(stage1.output_shape[1:])} images and Stage-II takes "
                        f"{tuple(stage2.inputs[0].shape[1:])}")
    elif (tuple(stage1.inputs[1].shape[1:]) != tuple(stage2.inputs[1].shape[1:])
          or tf.as_dtype(stage1.inputs[1].dtype) != tf.as_dtype(stage2.inputs[1].dtype)
          or condition_classes(stage1) != condition_classes(stage2)):
        problems.append("its condition (text embedding or class labels) differs from Stage-II's")
    if problems:
        raise ValueError(f"The model in {directory} cannot feed {stage2.name!r}: {problems[0]}. Train Stage-I with the "
                         f"same channels, condition and tiny setting (Stage-II's input_size = Stage-I's image_size). "
                         f"Received: --stackgan_stage1_dir={directory!r}")
    return stage1


def condition_classes(generator):
    """The number of classes of a class-conditioned generator (its label Embedding), else None."""
    if not tf.as_dtype(generator.inputs[1].dtype).is_integer:
        return None
    embeddings = [layer for layer in generator.layers if isinstance(layer, keras.layers.Embedding)]
    return int(embeddings[0].input_dim) if embeddings else None


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
        return self._trainer(model, discriminator_for(model, config), paired=True,
                             l1_weight=self.options["pix2pix_l1_weight"], discriminator_loss_scale=0.5)

    def after_training(self, model, bundle, write_dir, config):
        inputs, targets = next(iter(bundle.test))
        path = write_translation_grid(model, np.asarray(inputs)[:8], np.asarray(targets)[:8],
                                      os.path.join(write_dir, "samples.png"))
        return {"samples_png": path}


def write_gan_samples(generator, path, num=64, seed=0):
    """A PNG grid of ``num`` images generated with noise drawn with ``seed``.

    Class-conditioned generators (Stage-I): one row per class, ``max(1, num // classes)``
    images each (:func:`write_conditional_samples`).
    """
    from training.sample import image_grid

    if is_conditional_generator(generator):
        classes = condition_classes(generator)
        if len(generator.inputs[0].shape) != 2 or not classes:
            raise ValueError(f"{generator.name!r} needs a Stage-I image or text embeddings to sample from; use "
                             "training.tasks_gan.write_conditional_samples(generator, conditions, path, stage1=...) "
                             "(a Stage-II run writes samples.png itself). Received: inputs "
                             f"{generator.input_shape}")
        return write_conditional_samples(generator, np.arange(classes, dtype="int32"), path,
                                         per_condition=max(1, num // classes), seed=seed)
    z = sample_noise(num, int(generator.input_shape[-1]), seed=seed)
    return image_grid(np.asarray(generator(z, training=False)), path)


def conditional_samples(generator, conditions, per_condition=8, seed=0, stage1=None):
    """``(len(conditions) * per_condition, H, W, C)`` images, condition-major, z ~ N(0, I) drawn with ``seed``.

    The same ``per_condition`` noise vectors are used for every condition, so a column
    varies only the condition. With ``stage1``, ``generator`` is a Stage-II generator fed
    ``stage1([z, condition])``.
    """
    conditions = np.asarray(conditions)
    z_dim = int((stage1 if stage1 is not None else generator).inputs[0].shape[-1])
    z = np.tile(sample_noise(per_condition, z_dim, seed=seed, normal=True), (len(conditions), 1))
    repeated = np.repeat(conditions, per_condition, axis=0)
    source = z if stage1 is None else np.asarray(stage1([z, repeated], training=False))
    return np.asarray(generator([source, repeated], training=False))


def write_conditional_samples(generator, conditions, path, per_condition=8, seed=0, stage1=None):
    """A PNG grid with one row per condition (class) and ``per_condition`` samples per row."""
    from training.sample import image_grid

    images = conditional_samples(generator, conditions, per_condition, seed, stage1)
    return image_grid(images, path, columns=per_condition)


def write_translation_grid(generator, inputs, targets, path):
    """A PNG grid with one row per example: input | generated | target."""
    from training.sample import image_grid

    outputs = np.asarray(generator(inputs, training=False))
    triplets = [np.asarray(match_images(inputs, outputs.shape[1:])), outputs,
                np.asarray(match_images(targets, outputs.shape[1:]))]
    return image_grid(np.stack(triplets, axis=1).reshape(-1, *outputs.shape[1:]), path, columns=3)
