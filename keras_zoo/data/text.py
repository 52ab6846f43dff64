"""Text helpers shared by the text loaders, and the ``textfile:PATH[:char|:word]`` loader.

Tokenization is keras.layers.TextVectorization throughout: ``split="character"``
(case kept, no standardization) for character level, whitespace words after
lower-casing and stripping punctuation for word level. Whitespace runs are
collapsed to one space before tokenizing, so no token holds a newline and
vocab.txt stays one token per line.
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.data._base import DatasetBundle, batch_splits, register_dataset, require_task, sequence_length

LEVELS = ("char", "word")
#: Vocabulary caps, counting the padding "" and OOV "[UNK]" entries.
MAX_TOKENS = {"char": 256, "word": 5000}


def normalize_whitespace(text):
    return " ".join(text.split())


def make_vectorizer(level, max_tokens=None, output_sequence_length=None):
    """A TextVectorization layer for ``level``; ragged output unless a fixed length is asked for."""
    if level not in LEVELS:
        raise ValueError(f"Text level must be one of {LEVELS}. Received: {level!r}")
    return keras.layers.TextVectorization(
        max_tokens=max_tokens or MAX_TOKENS[level],
        standardize=None if level == "char" else "lower_and_strip_punctuation",
        split="character" if level == "char" else "whitespace",
        output_mode="int",
        output_sequence_length=output_sequence_length,
        ragged=output_sequence_length is None,
    )


def adapted_vectorizer(level, train_texts, **kwargs):
    vectorizer = make_vectorizer(level, **kwargs)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(train_texts)).batch(1024))
    return vectorizer


def vocabulary(vectorizer):
    """index -> token, as ``str`` (TextVectorization may return bytes)."""
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in vectorizer.get_vocabulary()]


def token_stream(vectorizer, texts, chunk=2048):
    """The int32 ids of ``texts`` concatenated in order."""
    texts = list(texts)
    pieces = [np.zeros((0,), np.int32)]
    for start in range(0, len(texts), chunk):
        ids = vectorizer(tf.constant(texts[start:start + chunk]))
        pieces.append(np.asarray(ids.flat_values, dtype=np.int32))
    return np.concatenate(pieces)


def padded_ids(vectorizer, texts, chunk=2048):
    """``(len(texts), seq_len)`` int32 ids of a fixed-length vectorizer."""
    texts = list(texts)
    return np.concatenate([np.asarray(vectorizer(tf.constant(texts[s:s + chunk])), dtype=np.int32)
                           for s in range(0, len(texts), chunk)])


def lm_windows(ids, seq_len):
    """Non-overlapping windows: inputs ``ids[t:t+L]``, targets ``ids[t+1:t+L+1]``, t = 0, L, 2L, ..."""
    count = (len(ids) - 1) // seq_len
    inputs = ids[:count * seq_len].reshape(count, seq_len)
    targets = ids[1:count * seq_len + 1].reshape(count, seq_len)
    return inputs, targets


def unigram_bits_per_token(train_ids, eval_ids, vocab_size):
    """Cross-entropy (bits/token) of an add-one-smoothed unigram model fitted on ``train_ids``."""
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    log2_probs = np.log2(counts / counts.sum())
    return float(-log2_probs[np.asarray(eval_ids).ravel()].mean())


def language_model_bundle(name, streams, vocab, seq_len, batch_size, seed, info):
    """Cuts each split's id stream into windows and batches them; adds the unigram baseline."""
    windows = {split: lm_windows(ids, seq_len) for split, ids in streams.items()}
    splits = {split: tf.data.Dataset.from_tensor_slices(w) for split, w in windows.items()}
    info = dict(info)
    info.update(
        seq_len=seq_len,
        vocab_size=len(vocab),
        tokens={split: int(len(ids)) for split, ids in streams.items()},
        sizes={split: int(len(w[0])) for split, w in windows.items()},
        oov_rate_test=float(np.mean(streams["test"] == 1)),
        unigram_baseline_bits_per_token_test=unigram_bits_per_token(streams["train"], windows["test"][1], len(vocab)),
    )
    return DatasetBundle(**batch_splits(name, splits, batch_size, seed),
                         model_overrides={"vocab_size": len(vocab)}, vocab=vocab, info=info)


def _parse_textfile(argument):
    path, level = argument, "char"
    head, _, tail = argument.rpartition(":")
    if head and tail in LEVELS:
        path, level = head, tail
    return path, level


def _check_textfile(argument):
    path, _ = _parse_textfile(argument)
    if not os.path.isfile(path):
        raise ValueError(f"Text file {path!r} does not exist; pass an existing UTF-8 file as "
                         f"'textfile:PATH[:char|:word]'. Received: textfile:{argument}")


@register_dataset("textfile", check=_check_textfile, takes_argument=True)
def load_textfile(argument, *, task, input_specs, batch_size, seed, data_dir):
    """A UTF-8 text file for language models, split contiguously by lines: 80/10/10 % of characters.

    The vocabulary is fitted on the training part only.
    """
    require_task("textfile", task, ("language_model",))
    path, level = _parse_textfile(argument)
    with open(path, encoding="utf-8") as f:
        lines = [normalize_whitespace(line) + " " for line in f if line.strip()]
    ends = np.cumsum([len(line) for line in lines])
    cut1, cut2 = np.searchsorted(ends, [0.8 * ends[-1], 0.9 * ends[-1]]) if lines else (0, 0)
    parts = {"train": lines[:cut1 + 1], "validation": lines[cut1 + 1:cut2 + 1], "test": lines[cut2 + 1:]}
    if not all(parts.values()):
        raise ValueError(f"Text file {path!r} is too short to split into train/validation/test by "
                         f"lines; it needs at least 3 non-empty lines. Received: {len(lines)} lines")
    vectorizer = adapted_vectorizer(level, parts["train"])
    streams = {split: token_stream(vectorizer, texts) for split, texts in parts.items()}
    return language_model_bundle(f"textfile:{argument}", streams, vocabulary(vectorizer),
                                 sequence_length("textfile", input_specs), batch_size, seed,
                                 {"path": os.path.abspath(path), "level": level})
