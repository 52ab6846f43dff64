"""Training of the video models: PredNet next-frame prediction and the two-stream video GAN.

``video_prediction`` takes ``(clips, clips)`` batches (e.g. ``moving_digits``) and
a model that maps frames (B, T, H, W, C) to ``[predictions, errors (B, T, L)]``,
``predictions[:, t]`` being its guess of frame t from frames < t (PredNet,
arXiv:1605.08104). The loss is PredNet's weighted error-unit activity
(``keras_zoo.models.prednet.prednet_loss``, first frame weighted 0); the metrics are
the next-frame MSE over frames 1..T-1 and, on the same frames, the MSE of copying
the previous frame, the baseline a predictor has to beat. After training, the test
split gives both MSEs and their ratio, and ``prednet_strip.png`` shows true
(top) and predicted (bottom) frames of a few test clips.

``video_generation`` trains a ``VideoGAN`` graph (arXiv:1609.02612) on ``(clips,
labels)`` batches with :class:`VideoGANTrainer` and writes sample clips as a GIF and
a PNG strip. The registry has no ``video_generation`` model task yet: ``videogan``
is registered under ``gan``, whose trainer (training/tasks_gan.py) takes image
generators, so until then this task is selected by hand (see tests/test_video.py).
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.models.prednet import LAYER_WEIGHTINGS, layer_loss_weights, prednet_loss, time_loss_weights
from keras_zoo.models.videogan import discriminator_of, generator_of
from training.tasks import Task, register_task


def next_frame_mse(predictions, frames):
    """Per-clip MSE of predictions[:, t] against frames[:, t] for t >= 1 -> (B,)."""
    return tf.reduce_mean(tf.square(predictions[:, 1:] - frames[:, 1:]), axis=[1, 2, 3, 4])


def copy_last_frame_mse(frames):
    """Per-clip MSE of predicting frame t by frame t - 1 (t >= 1) -> (B,)."""
    return tf.reduce_mean(tf.square(frames[:, 1:] - frames[:, :-1]), axis=[1, 2, 3, 4])


class PredNetTrainer(keras.Model):
    """Wraps a PredNet for ``fit``: loss Σ_t w_t Σ_l λ_l mean(E_l^t), averaged over clips.

    ``fit`` / ``evaluate`` take ``(clips, clips)`` batches and report ``loss``,
    ``next_frame_mse`` and ``copy_last_mse`` (the baseline on the same batches).
    """

    def __init__(self, prednet, layer_weighting="L_0", **kwargs):
        super().__init__(**kwargs)
        self.prednet = prednet
        frames, layers = prednet.output_shape[1][1:]
        if not frames:
            raise ValueError("PredNet training needs a fixed number of frames (the time weights depend on it). "
                             f"Received: a model with input shape {prednet.input_shape}")
        self.layer_weights = layer_loss_weights(layer_weighting, layers)
        self.time_weights = time_loss_weights(frames)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mse_tracker = keras.metrics.Mean(name="next_frame_mse")
        self.baseline_tracker = keras.metrics.Mean(name="copy_last_mse")
        self.built = True  # no weights of its own; BackupAndRestore needs a built model

    @property
    def metrics(self):
        return [self.loss_tracker, self.mse_tracker, self.baseline_tracker]

    def call(self, inputs, training=False):
        return self.prednet(inputs, training=training)

    def _forward(self, data, training):
        frames, targets = data
        predictions, errors = self.prednet(frames, training=training)
        return predictions, targets, prednet_loss(errors, self.layer_weights, self.time_weights)

    def _report(self, per_clip, predictions, targets):
        self.loss_tracker.update_state(tf.reduce_mean(per_clip))
        self.mse_tracker.update_state(tf.reduce_mean(next_frame_mse(predictions, targets)))
        self.baseline_tracker.update_state(tf.reduce_mean(copy_last_frame_mse(targets)))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            predictions, targets, per_clip = self._forward(data, training=True)
            loss = tf.nn.compute_average_loss(per_clip)
        weights = self.prednet.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(per_clip, predictions, targets)

    def test_step(self, data):
        predictions, targets, per_clip = self._forward(data, training=False)
        return self._report(per_clip, predictions, targets)


def prediction_strip(frames, predictions, path, clips=4, scale=2):
    """PNG: per clip, a row of true frames over a row of predicted frames (frame 0's prediction left blank)."""
    from PIL import Image

    frames, predictions = np.asarray(frames)[:clips], np.asarray(predictions)[:clips].copy()
    predictions[:, 0] = 0.0
    rows = []
    for true, predicted in zip(frames, predictions):
        rows += [np.concatenate(list(true), axis=1), np.concatenate(list(predicted), axis=1)]
    grid = np.concatenate(rows, axis=0)
    grid = np.uint8(np.clip(grid, 0, 1) * 255)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(path)
    return path


@register_task("video_prediction")
class VideoPredictionTask(Task):
    """PredNet-style next-frame prediction; test results against the copy-last-frame baseline."""

    OPTIONS = {"prednet_layer_loss": ("L_0", f"PredNet error weighting over layers: one of {LAYER_WEIGHTINGS} "
                                             "(L_0: λ = [1, 0, ...]; L_all: λ = [1, 0.1, ...]).")}

    def prepare(self, model, config):
        if len(model.outputs) != 2 or len(model.output_shape[0]) != 5 or len(model.output_shape[1]) != 3:
            raise ValueError("The video_prediction task trains models mapping frames (B, T, H, W, C) to "
                             "[predictions (B, T, H, W, C), errors (B, T, L)] (prednet_kitti). Received: a model "
                             f"with output shapes {model.output_shape}")
        return PredNetTrainer(model, self.options["prednet_layer_loss"], name=f"{model.name}_trainer")

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def after_training(self, model, bundle, write_dir, config):
        squared, baseline, count, first = 0.0, 0.0, 0, None
        predict = tf.function(lambda frames: model(frames, training=False)[0])
        for frames, _ in bundle.test:
            predictions = predict(frames)
            squared += float(tf.reduce_sum(next_frame_mse(predictions, frames)))
            baseline += float(tf.reduce_sum(copy_last_frame_mse(frames)))
            count += int(frames.shape[0])
            first = first or (frames, predictions)
        if not count:
            return {}
        mse, copy_last = squared / count, baseline / count
        strip = prediction_strip(first[0], first[1], os.path.join(write_dir, "prednet_strip.png"))
        return {"next_frame_mse": mse, "copy_last_mse": copy_last,
                "mse_ratio_vs_copy_last": mse / copy_last if copy_last else None,
                "strip": os.path.basename(strip)}


class VideoGANTrainer(keras.Model):
    """Trains a ``VideoGAN`` graph (arXiv:1609.02612) on ``(clips in [0, 1], labels)`` batches.

    Per batch, as the reference code: one discriminator step on real clips (mapped to
    [-1, 1]) against generated ones, then one generator step with the non-saturating
    loss (fakes labelled real) plus the mask penalty λ·mean(m). z ~ N(0, I). The two
    networks have separate optimizers of the same configuration (the paper: Adam,
    lr 2e-4, β1 0.5). Reports ``d_loss``, ``g_loss`` (adversarial part) and ``mask_mean``.
    """

    def __init__(self, gan, mask_penalty=0.1, **kwargs):
        super().__init__(**kwargs)
        self.gan = gan
        self.generator, self.discriminator = generator_of(gan), discriminator_of(gan)
        self.z_dim = int(self.generator.input_shape[-1])
        self.mask_penalty = float(mask_penalty)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.mask_tracker = keras.metrics.Mean(name="mask_mean")
        self.built = True  # no weights of its own; BackupAndRestore needs a built model

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.mask_tracker]

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.d_optimizer = optimizer.__class__.from_config(optimizer.get_config())
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        return self.gan(inputs, training=training)

    @staticmethod
    def _cross_entropy(logits, label):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.fill(tf.shape(logits), label), logits=logits), axis=-1)

    def _adversarial_losses(self, real, z, training):
        fake, mask = self.generator(z, training=training)
        real_logits = self.discriminator(real, training=training)
        fake_logits = self.discriminator(fake, training=training)
        d_loss = 0.5 * (self._cross_entropy(real_logits, 1.0) + self._cross_entropy(fake_logits, 0.0))
        g_loss = self._cross_entropy(fake_logits, 1.0)
        return d_loss, g_loss, tf.reduce_mean(mask, axis=[1, 2, 3, 4])

    def _codes(self, real):
        return tf.random.normal(tf.stack([tf.shape(real)[0], self.z_dim]))

    def train_step(self, data):
        real = data[0] * 2.0 - 1.0
        z = self._codes(real)
        with tf.GradientTape() as tape:
            d_loss, _, _ = self._adversarial_losses(real, z, training=True)
            loss = tf.nn.compute_average_loss(d_loss)
        weights = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        with tf.GradientTape() as tape:
            fake, mask = self.generator(z, training=True)
            g_loss = self._cross_entropy(self.discriminator(fake, training=True), 1.0)
            mask_mean = tf.reduce_mean(mask, axis=[1, 2, 3, 4])
            loss = tf.nn.compute_average_loss(g_loss + self.mask_penalty * mask_mean)
        weights = self.generator.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(d_loss, g_loss, mask_mean)

    def test_step(self, data):
        real = data[0] * 2.0 - 1.0
        return self._report(*self._adversarial_losses(real, self._codes(real), training=False))

    def _report(self, d_loss, g_loss, mask_mean):
        for tracker, value in zip(self.metrics, (d_loss, g_loss, mask_mean)):
            tracker.update_state(tf.reduce_mean(value))
        return {m.name: m.result() for m in self.metrics}


def video_samples(generator, write_dir, count=4, seed=0, prefix="videogan"):
    """Writes ``count`` generated clips as an animated GIF (clips side by side) and a PNG strip (one row per clip).

    ``generator`` maps z to ``[video in [-1, 1], mask]``; returns the two file names.
    """
    from PIL import Image

    z = np.random.default_rng(seed).standard_normal((count, int(generator.input_shape[-1]))).astype("float32")
    video = np.asarray(generator(z, training=False)[0])
    pixels = np.uint8(np.clip((video + 1.0) / 2.0, 0, 1) * 255)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    scale = max(1, 128 // pixels.shape[2])
    frames = [Image.fromarray(np.concatenate(list(pixels[:, t]), axis=1)) for t in range(pixels.shape[1])]
    frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    gif, png = f"{prefix}_samples.gif", f"{prefix}_samples.png"
    frames[0].save(os.path.join(write_dir, gif), save_all=True, append_images=frames[1:], duration=120, loop=0)
    strip = Image.fromarray(np.concatenate([np.concatenate(list(clip), axis=1) for clip in pixels], axis=0))
    strip.resize((strip.width * scale, strip.height * scale), Image.NEAREST).save(os.path.join(write_dir, png))
    return gif, png


@register_task("video_generation")
class VideoGenerationTask(Task):
    """Two-stream video GAN training; samples as GIF and PNG strip after training.

    No best model is kept: neither adversarial loss ranks sample quality.
    """

    monitor = None
    OPTIONS = {
        "videogan_mask_penalty": (0.1, "Video GAN: λ of the mask sparsity penalty λ·mean(m) (0.1 in the "
                                       "reference code of arXiv:1609.02612)."),
        "gan_adam_beta1": (0.5, "GAN tasks: beta_1 of Adam-family optimizers for both networks (0.5 in DCGAN "
                                "and pix2pix)."),
    }

    def prepare(self, model, config):
        try:
            generator_of(model)
        except ValueError as error:
            raise ValueError("The video_generation task trains VideoGAN graphs (videogan) with sub-models "
                             "'<name>_generator' and '<name>_discriminator'. "
                             f"Received: model {model.name!r}") from error
        return VideoGANTrainer(model, self.options["videogan_mask_penalty"], name=f"{model.name}_trainer")

    def compile(self, model, optimizer, config):
        settings = optimizer.get_config()
        if "beta_1" in settings:
            optimizer = type(optimizer).from_config({**settings, "beta_1": float(self.options["gan_adam_beta1"])})
        model.compile(optimizer)

    def after_training(self, model, bundle, write_dir, config):
        gif, png = video_samples(generator_of(model), write_dir)
        return {"samples_gif": gif, "samples_png": png}
