"""Training tasks of the autoregressive generators: PixelCNN/PixelRNN and WaveNet.

- ``image_generation``: the data are ordinary ``(image in [0, 1], class id)`` batches
  (the image-classification format, e.g. ``digits`` or ``tfds:mnist``). Each image
  is quantized to the model's ``levels`` (its targets are the integer levels and its
  input the level / (levels - 1)), the class id is fed only to class-conditional
  models, and the loss is the per-sub-pixel cross-entropy. Metrics: bits/dim and,
  for binary images (levels=2), nats per image as reported for binarized MNIST
  (arXiv:1601.06759, Table 3).
- ``audio_generation``: ``(mu-law ids[:-1], ids[1:])`` batches; next-sample
  cross-entropy, reported as bits per sample.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.metrics import BitsPerToken
from training.tasks import Task, register_task


def quantize_images(images, levels):
    """Images in [0, 1] to ``(model inputs on the level grid, int32 level targets)``."""
    targets = tf.cast(tf.round(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0) * (levels - 1)), tf.int32)
    return tf.cast(targets, tf.float32) / float(levels - 1), targets


@serializable
class NatsPerImage(BitsPerToken):
    """Negative log-likelihood of a whole image in nats: mean nats per sub-pixel times ``dims``."""

    def __init__(self, dims, from_logits=True, name="nats_per_image", dtype=None):
        super().__init__(from_logits=from_logits, name=name, dtype=dtype)
        self.dims = dims

    def result(self):
        return self.mean_nats() * float(self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class PixelTrainer(keras.Model):
    """Wraps a pixel model for ``fit``: quantizes each batch into inputs and targets.

    ``fit`` / ``evaluate`` take ``(images, class_ids)`` batches. The loss is
    ``tf.nn.compute_average_loss`` of the per-image mean cross-entropy, so it is the
    mean NLL in nats per sub-pixel under any distribution strategy.
    """

    def __init__(self, generator, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        height, width, colors, self.levels = generator.output_shape[1:]
        self.conditional = len(generator.inputs) > 1
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bits_per_dim = BitsPerToken(name="bits_per_dim")
        self.extra = [NatsPerImage(height * width * colors)] if self.levels == 2 else []

    @property
    def metrics(self):
        return [self.loss_tracker, self.bits_per_dim, *self.extra]

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _forward(self, data, training):
        images, labels = data
        inputs, targets = quantize_images(images, self.levels)
        logits = self.generator([inputs, labels] if self.conditional else inputs, training=training)
        per_image = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32)),
            axis=[1, 2, 3])
        return targets, logits, per_image

    def _report(self, loss, targets, logits):
        self.loss_tracker.update_state(loss)
        for metric in self.metrics[1:]:
            metric.update_state(targets, logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            targets, logits, per_image = self._forward(data, training=True)
            loss = tf.nn.compute_average_loss(per_image)
        weights = self.generator.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(tf.reduce_mean(per_image), targets, logits)

    def test_step(self, data):
        targets, logits, per_image = self._forward(data, training=False)
        return self._report(tf.reduce_mean(per_image), targets, logits)


@register_task("image_generation")
class PixelGenerationTask(Task):
    """Autoregressive image models with per-sub-pixel logits ``(B, H, W, C, levels)``."""

    def prepare(self, model, config):
        if len(model.output_shape) != 5:
            raise ValueError("The image_generation task trains autoregressive pixel models whose output is "
                             "(B, H, W, C, levels) logits (pixelcnn, gated_pixelcnn, pixelrnn_row_lstm, "
                             "pixelrnn_diagonal_bilstm). "
                             f"Received: a model with output shape {model.output_shape}")
        return PixelTrainer(model, name=f"{model.name}_trainer")

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)


@register_task("audio_generation")
class AudioGenerationTask(Task):
    """Next-sample cross-entropy over mu-law logits ``(B, T, quantization)``."""

    def loss(self, config):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self, config):
        return [BitsPerToken(name="bits_per_sample")]
