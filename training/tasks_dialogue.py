"""Training task of the ``dialogue`` models: HRED (arXiv:1507.04808) and VHRED (arXiv:1605.06069).

Batches are ``(dialogue (B, T, L), replies (B, T-1, L))`` (keras_zoo/data/dialogues.py);
the model predicts every reply (turns 2..T) from the turns before it, teacher forced.
:class:`DialogueTrainer` computes, per batch:

- ``nll``: the cross-entropy of the reply tokens (their end tokens included, padding
  excluded), summed; logged per token as ``nll`` and ``perplexity`` = exp(nll/token);
- ``kl`` (VHRED): ``KL(q(z_n | turns <= n+1) || p(z_n | turns <= n))`` summed over the
  replies (:func:`keras_zoo.models.hred.gaussian_kl_between`); logged per reply;
- ``loss`` = ``(nll + w * kl) / reply tokens``, the negative variational bound per token.
  When training, ``w`` grows linearly from 0 to 1 over ``vhred_kl_annealing_steps``
  optimizer updates (``w = min(1, updates / N)``; 60,000 in the VHRED reference code,
  arXiv:1605.06069 section 3); evaluation uses ``w = 1``, so ``val_loss`` is the bound and
  exp(val_loss) the bound's perplexity. The KL is computed in closed form on the
  posterior's mean and variance; training decodes a posterior sample, evaluation the
  posterior mean.

``after_training`` measures held-out (test split) perplexity, KL per reply and, for
VHRED, the bound's perplexity, and writes ``responses.txt``: greedy replies (VHRED: z at
the prior mean) to held-out contexts next to the reference replies.
"""
import math
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.data.dialogues import END_ID, PAD_ID
from keras_zoo.metrics import Perplexity
from keras_zoo.models.hred import DialogueResponder, gaussian_kl_between
from training.tasks import Task, register_task


def kl_weight(updates, annealing_steps):
    """The KL weight after ``updates`` optimizer updates: ``min(1, updates / annealing_steps)`` (1 if 0 steps)."""
    if annealing_steps <= 0:
        return tf.constant(1.0)
    return tf.minimum(1.0, tf.cast(updates, tf.float32) / float(annealing_steps))


def dialogue_statistics(model, dialogues, training=False):
    """Summed reply statistics of one batch: ``dict(nll, tokens, kl, replies, logits, targets, mask)``."""
    dialogues = tf.cast(dialogues, tf.int32)
    outputs = model(dialogues, training=training)
    variational = isinstance(outputs, (list, tuple))
    logits = tf.cast(outputs[0] if variational else outputs, tf.float32)
    targets = dialogues[:, 1:]
    mask = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
    token_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    stats = {"nll": tf.reduce_sum(token_nll * mask), "tokens": tf.reduce_sum(mask), "logits": logits,
             "targets": targets, "mask": mask, "kl": tf.constant(0.0), "replies": tf.constant(0.0)}
    if variational:
        prior_mean, prior_log_var, posterior_mean, posterior_log_var = outputs[1:]
        reply_mask = tf.cast(tf.reduce_any(tf.not_equal(targets, PAD_ID), axis=-1), tf.float32)
        kl = gaussian_kl_between(posterior_mean, posterior_log_var, prior_mean, prior_log_var)
        stats["kl"] = tf.reduce_sum(kl * reply_mask)
        stats["replies"] = tf.reduce_sum(reply_mask)
    return stats


class DialogueTrainer(keras.Model):
    """Wraps an ``hred``/``vhred`` model for ``fit``/``evaluate`` (see the module docstring).

    Args:
        dialogue_model: the functional model.
        kl_annealing_steps: N of the linear KL annealing (VHRED).
    """

    def __init__(self, dialogue_model, kl_annealing_steps=60000, **kwargs):
        super().__init__(**kwargs)
        self.dialogue_model = dialogue_model
        self.variational = len(dialogue_model.outputs) == 5
        self.kl_annealing_steps = int(kl_annealing_steps)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.perplexity = Perplexity()
        self.kl_trackers = [keras.metrics.Mean(name="kl"), keras.metrics.Mean(name="kl_weight")] \
            if self.variational else []
        self.built = True  # the wrapped model is built; BackupAndRestore needs a built model

    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker, self.perplexity, *self.kl_trackers]

    def call(self, inputs, training=False):
        return self.dialogue_model(inputs, training=training)

    def _report(self, stats, loss, weight):
        tokens = tf.maximum(stats["tokens"], 1.0)
        self.loss_tracker.update_state(loss, sample_weight=tokens)
        self.nll_tracker.update_state(stats["nll"] / tokens, sample_weight=tokens)
        self.perplexity.update_state(stats["targets"], stats["logits"], sample_weight=stats["mask"])
        if self.variational:
            replies = tf.maximum(stats["replies"], 1.0)
            self.kl_trackers[0].update_state(stats["kl"] / replies, sample_weight=replies)
            self.kl_trackers[1].update_state(weight)
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _dialogues(data):
        return data[0] if isinstance(data, (tuple, list)) else data

    def train_step(self, data):
        weight = kl_weight(self.optimizer.iterations, self.kl_annealing_steps)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            stats = dialogue_statistics(self.dialogue_model, self._dialogues(data), training=True)
            loss = (stats["nll"] + weight * stats["kl"]) / tf.maximum(stats["tokens"], 1.0)
            scaled = loss / float(replicas)
        weights = self.dialogue_model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._report(stats, loss, weight)

    def test_step(self, data):
        stats = dialogue_statistics(self.dialogue_model, self._dialogues(data), training=False)
        loss = (stats["nll"] + stats["kl"]) / tf.maximum(stats["tokens"], 1.0)
        return self._report(stats, loss, tf.constant(1.0))


def heldout_statistics(model, dataset):
    """Perplexity, NLL per token and (VHRED) KL per reply and the bound's perplexity over ``dataset``."""
    totals = {"nll": 0.0, "tokens": 0.0, "kl": 0.0, "replies": 0.0}
    for batch in dataset:
        stats = dialogue_statistics(model, DialogueTrainer._dialogues(batch))
        for key in totals:
            totals[key] += float(stats[key])
    tokens = max(totals["tokens"], 1.0)
    result = {"heldout_reply_tokens": int(totals["tokens"]), "heldout_nll_per_token": totals["nll"] / tokens,
              "heldout_perplexity": math.exp(totals["nll"] / tokens)}
    if len(model.outputs) == 5:
        result["heldout_kl_per_reply"] = totals["kl"] / max(totals["replies"], 1.0)
        result["heldout_kl_per_token"] = totals["kl"] / tokens
        result["heldout_bound_perplexity"] = math.exp((totals["nll"] + totals["kl"]) / tokens)
    return result


def decode_ids(ids, vocab):
    """Words of one utterance row, up to its end token."""
    words = []
    for i in np.asarray(ids).tolist():
        if i == END_ID:
            break
        if i != PAD_ID:
            words.append(vocab[i] if vocab and i < len(vocab) else str(i))
    return " ".join(words)


def write_responses(model, config, dialogues, vocab, path):
    """Greedy replies to each dialogue's turns before its last; writes and returns them as dicts."""
    dialogues = np.asarray(dialogues, np.int32)
    turns = np.maximum((dialogues != PAD_ID).any(-1).sum(-1), 2)  # non-empty turns; the last is the reference
    replies = DialogueResponder(model, config).reply(dialogues, turns - 1)
    samples, lines = [], []
    for dialogue, count, reply in zip(dialogues, turns, replies):
        sample = {"context": [decode_ids(t, vocab) for t in dialogue[:count - 1]],
                  "reference": decode_ids(dialogue[count - 1], vocab), "greedy_reply": decode_ids(reply, vocab)}
        samples.append(sample)
        lines += [f"context:   {t}" for t in sample["context"]]
        lines += [f"reference: {sample['reference']}", f"greedy:    {sample['greedy_reply']}", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return samples


@register_task("dialogue")
class DialogueTask(Task):
    """Hierarchical encoder-decoders over dialogues: reply NLL, plus the annealed KL for VHRED."""

    monitor = "val_loss"
    OPTIONS = {
        "vhred_kl_annealing_steps": (60000, "dialogue (VHRED): optimizer updates over which the KL weight grows "
                                            "linearly from 0 to 1 (60,000 in the reference code; 0: weight 1)."),
        "dialogue_samples": (8, "dialogue: held-out contexts answered greedily in responses.txt."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        for key, low in (("vhred_kl_annealing_steps", 0), ("dialogue_samples", 1)):
            value = self.options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"--{key} must be an integer >= {low}. Received: --{key}={value!r}")

    def prepare(self, model, config):
        if len(model.inputs) != 1 or len(model.inputs[0].shape) != 3 or len(model.outputs) not in (1, 5):
            raise ValueError("The dialogue task trains hierarchical encoder-decoders mapping (B, turns, tokens) ids "
                             "to reply logits (hred) or [logits, prior and posterior means and log-variances] "
                             f"(vhred). Received: a model with input shape {model.input_shape} and "
                             f"{len(model.outputs)} outputs")
        return DialogueTrainer(model, self.options["vhred_kl_annealing_steps"], name=f"{model.name}_trainer")

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def after_training(self, model, bundle, write_dir, config):
        result = heldout_statistics(model, bundle.test)
        wanted = self.options["dialogue_samples"]
        dialogues = np.concatenate([np.asarray(DialogueTrainer._dialogues(b)) for b in bundle.test.take(
            -(-wanted // _batch_size(bundle.test)))])[:wanted]
        path = os.path.join(write_dir, "responses.txt")
        result["samples"] = write_responses(model, config, dialogues, bundle.vocab, path)
        result["responses_txt"] = path
        return result


def _batch_size(dataset):
    return max(int(dataset.element_spec[0].shape[0] or 1), 1)
