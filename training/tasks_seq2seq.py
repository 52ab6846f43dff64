"""Training task of the ``seq2seq`` models (teacher forcing).

Batches are ``((source_ids, target_in_ids), target_out_ids)``: ``target_in`` is the
target behind the start token, ``target_out`` the target followed by the end token,
both padded with 0 (keras_zoo/data/seq2seq_text.py). The loss is the token-level
cross-entropy against label-smoothed targets (Szegedy et al., 2015, arXiv:1512.00567,
section 7; epsilon_ls = 0.1 as in arXiv:1706.03762, section 5.4), averaged over the
non-padding target tokens.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from training.tasks import Task, register_task

#: The Transformer paper's epsilon_ls, used for every seq2seq model.
LABEL_SMOOTHING = 0.1


@serializable
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """Mean over non-padding tokens of ``-sum_k q_k log softmax(logits)_k`` with
    ``q = (1 - label_smoothing) * onehot(y) + label_smoothing / vocab``.

    Args:
        label_smoothing: epsilon_ls in [0, 1).
        pad_id: target id that carries no loss.
    """

    def __init__(self, label_smoothing=LABEL_SMOOTHING, pad_id=0, name="label_smoothed_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.pad_id = int(pad_id)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.int32)
        log_probs = tf.nn.log_softmax(tf.cast(y_pred, tf.float32), axis=-1)
        vocab = tf.shape(log_probs)[-1]
        targets = tf.one_hot(y_true, vocab) * (1.0 - self.label_smoothing) \
            + self.label_smoothing / tf.cast(vocab, tf.float32)
        token_loss = -tf.reduce_sum(targets * log_probs, axis=-1)
        mask = tf.cast(tf.not_equal(y_true, self.pad_id), tf.float32)
        return tf.reduce_sum(token_loss * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "pad_id": self.pad_id}


@serializable
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Fraction of non-padding target tokens predicted exactly (argmax of the logits)."""

    def __init__(self, pad_id=0, name="token_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = int(pad_id)
        self.correct = self.add_weight(name="correct", shape=(), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        mask = tf.cast(tf.not_equal(y_true, self.pad_id), tf.float32)
        hits = tf.cast(tf.equal(tf.cast(tf.argmax(y_pred, -1), tf.int32), y_true), tf.float32)
        self.correct.assign_add(tf.reduce_sum(hits * mask))
        self.count.assign_add(tf.reduce_sum(mask))

    def result(self):
        return self.correct / tf.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@register_task("seq2seq")
class Seq2SeqTask(Task):
    """Teacher forcing with a label-smoothed, padding-masked cross-entropy."""

    def loss(self, config):
        return LabelSmoothedCrossEntropy(LABEL_SMOOTHING)

    def metrics(self, config):
        return [MaskedTokenAccuracy()]
