"""Dialogues for the ``dialogue`` task (HRED/VHRED): embedded docstring dialogues and a user file.

A dialogue is a ``(turns, utterance_len)`` int32 grid, the model's input shape: one
utterance per row, its word ids followed by the end id, padded with 0; dialogues with
fewer turns end in all-zero rows. Ids: 0 padding, 1 start, 2 end, 3 unknown, then the
words of a keras.layers.TextVectorization vocabulary (word level, lower-cased,
punctuation stripped) adapted on the training utterances only. Longer utterances are cut
to ``utterance_len - 1`` words; a longer dialogue gives one dialogue per window of
``turns`` consecutive turns (stride 1, so every turn is a reply once its context fills
the window); a single turn (no reply) is dropped.

Batches are ``(dialogue, dialogue[1:])``: the targets are the replies (turns 2..T).

- ``docstring_dialogues``: the stdlib docstrings (keras_zoo/data/docstrings.py) as
  "dialogues" whose turns are consecutive sentences of a docstring's prose paragraphs.
  Docstrings go to train/validation/test by the same CRC32 hash as the other docstring
  sets, so the split is deterministic and no docstring is in two splits.
- ``dialogues:PATH``: a UTF-8 file of dialogues separated by blank lines, one turn per
  line; split 80/10/10 by a hash of each dialogue's text.
"""
import os
import re

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import DatasetBundle, batch_splits, register_dataset, require_task, split_of
from keras_zoo.data.text import adapted_vectorizer, normalize_whitespace, padded_ids, unigram_bits_per_token, vocabulary

PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
#: Tokens of ids 0-2; TextVectorization's "[UNK]" follows as id 3.
SPECIAL_TOKENS = ("", "<s>", "</s>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")


def dialogue_shape(name, input_specs):
    """``(turns, utterance_len)`` of a dialogue model's single integer input."""
    if len(input_specs) != 1:
        raise ValueError(f"Dataset {name!r} feeds dialogue models with one (turns, utterance_len) input. "
                         f"Received: {len(input_specs)} input specs {input_specs}")
    spec = input_specs[0]
    if len(spec.shape) != 2 or not spec.dtype.startswith("int") or None in spec.shape:
        raise ValueError(f"Dataset {name!r} feeds dialogue models with integer (turns, utterance_len) inputs "
                         f"of fixed size. Received: input shape {spec.shape}, dtype {spec.dtype}")
    turns, length = spec.shape
    if turns < 2 or length < 2:
        raise ValueError(f"Dialogues need turns >= 2 and utterance_len >= 2. Received: input shape {spec.shape}")
    return int(turns), int(length)


def chunk_dialogue(turns_text, turns):
    """Every window of ``turns`` consecutive turns (stride 1); a shorter dialogue is kept whole
    when it has a reply (>= 2 turns)."""
    if len(turns_text) <= turns:
        return [list(turns_text)] if len(turns_text) >= 2 else []
    return [list(turns_text[i:i + turns]) for i in range(len(turns_text) - turns + 1)]


def sentences(text):
    """Sentences of a paragraph: split after ``.!?`` followed by a capitalised word."""
    return [s for s in _SENTENCE_END.split(normalize_whitespace(text)) if any(c.isalpha() for c in s)]


def docstring_dialogues(documents, turns):
    """``{split: [[sentence, ...], ...]}`` from ``(group, module, docstring)`` documents."""
    from keras_zoo.data.docstrings import _is_prose

    splits = {"train": [], "validation": [], "test": []}
    for _, _, doc in documents:
        stream = [s for paragraph in re.split(r"\n\s*\n", doc) if _is_prose(normalize_whitespace(paragraph))
                  for s in sentences(paragraph)]
        splits[split_of(doc)].extend(chunk_dialogue(stream, turns))
    return splits


def encode_dialogues(vectorizer, dialogues, turns, utterance_len):
    """``(N, turns, utterance_len)`` int32 grids (see the module docstring for the ids)."""
    grids = np.zeros((len(dialogues), turns, utterance_len), np.int32)
    flat = [turn for dialogue in dialogues for turn in dialogue]
    if not flat:
        return grids
    ids = padded_ids(vectorizer, flat)  # (turns in all dialogues, utterance_len - 1), 0-padded
    ids = np.where(ids > 0, ids + (UNK_ID - 1), 0)  # TextVectorization's [UNK] = 1 becomes UNK_ID
    lengths = (ids > 0).sum(1)
    row = 0
    for index, dialogue in enumerate(dialogues):
        for t in range(len(dialogue)):
            grids[index, t, :utterance_len - 1] = ids[row]
            grids[index, t, lengths[row]] = END_ID
            row += 1
    return grids


def dialogues_bundle(name, splits, input_specs, batch_size, seed, info):
    """Vectorizes ``{split: [[turn text, ...], ...]}`` and batches ``(dialogue, replies)`` pairs."""
    turns, utterance_len = dialogue_shape(name, input_specs)
    for split, dialogues in splits.items():
        if len(dialogues) < batch_size:
            total = sum(len(d) for d in splits.values())
            raise ValueError(f"The {split} split of {name!r} holds {len(dialogues)} dialogues (of {total}, split "
                             f"80/10/10 by a hash), fewer than one batch of {batch_size}; add dialogues or use a "
                             f"smaller batch_size. Received: batch_size={batch_size}")
    vectorizer = adapted_vectorizer("word", [t for d in splits["train"] for t in d],
                                    output_sequence_length=utterance_len - 1)
    vocab = [*SPECIAL_TOKENS, *vocabulary(vectorizer)[1:]]
    grids = {split: encode_dialogues(vectorizer, d, turns, utterance_len) for split, d in splits.items()}
    datasets = {split: tf.data.Dataset.from_tensor_slices((g, g[:, 1:])) for split, g in grids.items()}

    def reply_tokens(grid):
        replies = grid[:, 1:].ravel()
        return replies[replies > 0]

    train_tokens, test_tokens = reply_tokens(grids["train"]), reply_tokens(grids["test"])
    info = {
        **info,
        "turns": turns,
        "utterance_len": utterance_len,
        "vocab_size": len(vocab),
        "sizes": {split: len(d) for split, d in splits.items()},
        "reply_tokens_test": int(len(test_tokens)),
        "oov_rate_test": float(np.mean(test_tokens == UNK_ID)),
        "unigram_baseline_perplexity_test": float(2.0 ** unigram_bits_per_token(train_tokens, test_tokens,
                                                                                len(vocab))),
    }
    return DatasetBundle(**batch_splits(name, datasets, batch_size, seed), model_overrides={"vocab_size": len(vocab)},
                         vocab=vocab, info=info)


@register_dataset("docstring_dialogues")
def load_docstring_dialogues(_, *, task, input_specs, batch_size, seed, data_dir):
    """Consecutive sentences of stdlib docstrings as dialogue turns (word level)."""
    from keras_zoo.data.docstrings import _digest, load_corpus

    require_task("docstring_dialogues", task, ("dialogue",))
    turns, _ = dialogue_shape("docstring_dialogues", input_specs)
    documents = load_corpus(data_dir)
    return dialogues_bundle("docstring_dialogues", docstring_dialogues(documents, turns), input_specs, batch_size,
                            seed, {"level": "word", "turns_are": "consecutive docstring sentences",
                                   "corpus_sha256": _digest(documents)})


def read_dialogues(path):
    """``[[turn, ...], ...]``: blank-line-separated dialogues of one turn per line."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [[normalize_whitespace(line) for line in block.splitlines() if line.strip()]
            for block in re.split(r"\n\s*\n", text) if block.strip()]


def _check_dialogue_file(path):
    if not os.path.isfile(path):
        raise ValueError(f"dialogues:PATH needs an existing UTF-8 file of dialogues (one turn per line, a blank "
                         f"line between dialogues). Received: dialogues:{path}")


@register_dataset("dialogues", check=_check_dialogue_file, takes_argument=True)
def load_dialogue_file(path, *, task, input_specs, batch_size, seed, data_dir):
    """A user file of dialogues, split 80/10/10 by a hash of each dialogue's text."""
    name = f"dialogues:{path}"
    require_task(name, task, ("dialogue",))
    turns, _ = dialogue_shape(name, input_specs)
    dialogues = read_dialogues(path)
    splits = {"train": [], "validation": [], "test": []}
    for dialogue in dialogues:
        splits[split_of("\n".join(dialogue))].extend(chunk_dialogue(dialogue, turns))
    if not any(splits.values()):
        raise ValueError(f"{path} holds no dialogue of at least 2 turns; write one turn per line and separate "
                         f"dialogues by a blank line. Received: {len(dialogues)} blocks")
    return dialogues_bundle(name, splits, input_specs, batch_size, seed,
                            {"level": "word", "path": os.path.abspath(path), "dialogues_in_file": len(dialogues)})
