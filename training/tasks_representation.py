"""Autoencoders: ``representation`` (conv_autoencoder, and the VAE's ELBO, arXiv:1312.6114).

The registered model maps images in [0, 1] to a reconstruction (conv_autoencoder) or to
``[reconstruction, z_mean, z_log_var]`` (vae). :class:`AutoencoderTrainer` wraps it with
a custom ``train_step`` computing, per image, in nats:

- ``reconstruction`` = ``-log p(x|z)`` summed over pixels, for the decoder's output
  ``x_hat``, under the ``vae_likelihood`` option:

  - ``bernoulli`` (default; arXiv:1312.6114 Appendix C.1):
    ``-sum(x log x_hat + (1 - x) log(1 - x_hat))``. Grey levels in [0, 1] are used as
    soft targets, so on non-binary images this is a cross-entropy, not an exact
    log-likelihood (its minimum is the pixels' entropy, not 0);
  - ``gaussian`` with fixed standard deviation ``vae_gaussian_sigma`` (Appendix C.2 with
    the variance held fixed): ``sum((x - x_hat)^2) / (2 sigma^2) + D log(sigma sqrt(2 pi))``.

- ``kl`` = ``KL(q(z|x) || N(0, I))`` (:func:`keras_zoo.models.autoencoder.gaussian_kl`),
  VAE only;
- ``loss`` = ``reconstruction + kl``: the negative ELBO (VAE), or the reconstruction
  term alone (autoencoder). The single-sample Monte Carlo estimate of the ELBO (L = 1,
  Sec. 2.3) is used during training; evaluation decodes the posterior mean (the model is
  deterministic outside training), so test ``loss`` is the ELBO at z = mu.

``after_training`` writes ``reconstructions.png`` (test images above their
reconstructions) and, for the VAE, ``samples.png`` (decoded z ~ N(0, I)).
"""
import math
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.models.autoencoder import gaussian_kl, prior_samples
from training.tasks import Task, register_task

LIKELIHOODS = ("bernoulli", "gaussian")
_EPSILON = 1e-7  # keeps log(x_hat) finite where the sigmoid saturates


def reconstruction_nll(images, reconstructions, likelihood="bernoulli", sigma=1.0):
    """Per-image ``-log p(x | z)`` in nats, summed over pixels (see the module docstring)."""
    x = tf.cast(images, tf.float32)
    x_hat = tf.cast(reconstructions, tf.float32)
    batch = tf.shape(x)[0]
    if likelihood == "bernoulli":
        x_hat = tf.clip_by_value(x_hat, _EPSILON, 1.0 - _EPSILON)
        per_pixel = -(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))
    elif likelihood == "gaussian":
        per_pixel = tf.square(x - x_hat) / (2.0 * sigma ** 2) + math.log(sigma * math.sqrt(2.0 * math.pi))
    else:
        raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}. Received: likelihood={likelihood!r}")
    return tf.reduce_sum(tf.reshape(per_pixel, [batch, -1]), axis=1)


class AutoencoderTrainer(keras.Model):
    """Wraps an autoencoder or VAE for ``fit``/``evaluate`` on ``(images, labels)`` or ``images`` batches.

    Logged (nats per image): ``loss``, ``reconstruction`` and, for a VAE (three outputs), ``kl``.
    """

    def __init__(self, autoencoder, likelihood="bernoulli", sigma=1.0, **kwargs):
        super().__init__(**kwargs)
        self.autoencoder = autoencoder
        self.variational = len(autoencoder.outputs) == 3
        self.likelihood = likelihood
        self.sigma = float(sigma)
        names = ["loss", "reconstruction"] + (["kl"] if self.variational else [])
        self.trackers = [keras.metrics.Mean(name=n) for n in names]
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers)

    def call(self, inputs, training=False):
        return self.autoencoder(inputs, training=training)

    def _forward(self, data, training):
        images = data[0] if isinstance(data, (tuple, list)) else data
        images = tf.cast(images, tf.float32)
        outputs = self.autoencoder(images, training=training)
        reconstructions = outputs[0] if self.variational else outputs
        stats = {"reconstruction": reconstruction_nll(images, reconstructions, self.likelihood, self.sigma)}
        stats["loss"] = stats["reconstruction"]
        if self.variational:
            stats["kl"] = gaussian_kl(outputs[1], outputs[2])
            stats["loss"] = stats["loss"] + stats["kl"]
        return stats

    def _report(self, stats):
        for tracker in self.trackers:
            tracker.update_state(tf.reduce_mean(stats[tracker.name]))
        return {t.name: t.result() for t in self.trackers}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            stats = self._forward(data, training=True)
            loss = tf.nn.compute_average_loss(stats["loss"])
        weights = self.autoencoder.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(stats)

    def test_step(self, data):
        return self._report(self._forward(data, training=False))


def write_image_grid(rows, path):
    """Saves ``rows`` (a list of equal-length ``(N, H, W, C)`` arrays in [0, 1]) as one PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_rows, num_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(num_rows, num_cols, figsize=(num_cols, num_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(num_cols):
            image = np.clip(np.asarray(row[c], np.float32), 0.0, 1.0)
            axes[r][c].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
            axes[r][c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


@register_task("representation")
class RepresentationTask(Task):
    """Autoencoders (conv_autoencoder) and VAEs (vae): reconstruction likelihood, plus KL for VAEs."""

    monitor = "val_loss"
    OPTIONS = {
        "vae_likelihood": ("bernoulli", f"representation: the decoder's pixel likelihood, one of {LIKELIHOODS}."),
        "vae_gaussian_sigma": (0.1, "representation: the fixed standard deviation of the gaussian likelihood "
                                    "(images in [0, 1])."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        if self.options["vae_likelihood"] not in LIKELIHOODS:
            raise ValueError(f"--vae_likelihood must be one of {LIKELIHOODS}. "
                             f"Received: --vae_likelihood={self.options['vae_likelihood']!r}")
        sigma = self.options["vae_gaussian_sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
            raise ValueError(f"--vae_gaussian_sigma must be a number > 0. Received: --vae_gaussian_sigma={sigma!r}")

    def prepare(self, model, config):
        image_shape = tuple(model.input_shape[1:]) if len(model.inputs) == 1 else None
        outputs = model.outputs
        if (image_shape is None or len(image_shape) != 3 or len(outputs) not in (1, 3)
                or tuple(outputs[0].shape[1:]) != image_shape):
            raise ValueError("The representation task trains autoencoders mapping images (B, H, W, C) to a "
                             "reconstruction of the same shape, or VAEs returning [reconstruction, z_mean, "
                             "z_log_var] (conv_autoencoder, vae). Received: a model with input shape "
                             f"{model.input_shape} and output shape {model.output_shape}")
        return AutoencoderTrainer(model, likelihood=self.options["vae_likelihood"],
                                  sigma=self.options["vae_gaussian_sigma"], name=f"{model.name}_trainer")

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def after_training(self, model, bundle, write_dir, config):
        batch = next(iter(bundle.test))
        images = np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)[:8]
        outputs = model(images, training=False)
        reconstructions = np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)
        result = {"reconstructions_png": write_image_grid([images, reconstructions],
                                                          os.path.join(write_dir, "reconstructions.png"))}
        if len(model.outputs) == 3:
            samples = prior_samples(model.get_layer("decoder"), 32, seed=0)
            result["samples_png"] = write_image_grid([samples[i:i + 8] for i in range(0, 32, 8)],
                                                     os.path.join(write_dir, "samples.png"))
        return result
