"""Language-model metrics, written with TensorFlow ops so they run under Keras 3 and tf_keras.

Language models (e.g. QRNN, arXiv:1611.01576, reports perplexity; char-level
LMs report bits per character): the mean cross-entropy of the next-token
distribution, in bits (``BitsPerToken``) or exponentiated in nats (``Perplexity``).
"""
import math

import tensorflow as tf

from keras_zoo.backend import keras, serializable


@serializable
class BitsPerToken(keras.metrics.Metric):
    """Mean cross-entropy in bits per token of integer targets.

    Args:
        from_logits: whether predictions are logits (language models) or probabilities.
        name, dtype: as for any Keras metric.
    """

    def __init__(self, from_logits=True, name="bits_per_token", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = from_logits
        self.total_nats = self.add_weight(name="total_nats", shape=(), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true, tf.int32)
        predictions = tf.cast(y_pred, tf.float32)
        if self.from_logits:
            nats = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=predictions)
        else:
            picked = tf.gather(predictions, labels, batch_dims=labels.shape.rank)
            nats = -tf.math.log(tf.clip_by_value(picked, 1e-7, 1.0))
        weights = tf.ones_like(nats) if sample_weight is None else tf.broadcast_to(
            tf.cast(sample_weight, tf.float32), tf.shape(nats))
        self.total_nats.assign_add(tf.reduce_sum(nats * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def mean_nats(self):
        return tf.math.divide_no_nan(tf.convert_to_tensor(self.total_nats), tf.convert_to_tensor(self.count))

    def result(self):
        return self.mean_nats() / math.log(2.0)

    def get_config(self):
        return {"from_logits": self.from_logits, "name": self.name, "dtype": self._dtype_name()}

    def _dtype_name(self):
        dtype = self.dtype
        return dtype if isinstance(dtype, str) or dtype is None else dtype.name


@serializable
class Perplexity(BitsPerToken):
    """``exp`` of the mean cross-entropy (nats) of integer targets."""

    def __init__(self, from_logits=True, name="perplexity", dtype=None):
        super().__init__(from_logits=from_logits, name=name, dtype=dtype)

    def result(self):
        return tf.exp(self.mean_nats())
