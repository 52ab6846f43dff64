"""Sentence-pair datasets for ``seq2seq`` models.

- ``docstrings_reverse``: embedded and offline. Each line of the standard library's
  docstrings (keras_zoo.data.docstrings) is a source; its target is the same line
  with the characters in reverse order, the classic sanity task of attention models
  (every target character aligns with one source character, far away for long lines).
- ``tsv:PATH``: a UTF-8 file of ``source<TAB>target`` lines, whitespace-tokenized.
- ``wmt:NAME``: a tfds translation set (``wmt:wmt14_translate/de-en``,
  ``wmt:wmt_t2t_translate/de-en``), whitespace-tokenized; its validation and test
  splits are the dataset's own. Needs the tfds download (no internet here).

Batches are ``((source_ids, target_in_ids), target_out_ids)``; ids 0/1/2/3 are
padding, start, end and unknown. ``target_in`` is ``<s> y_1 .. y_n`` and ``target_out``
``y_1 .. y_n </s>``, both padded to the model's target length; sources and targets
longer than the model's lengths are cut. The vocabulary is built from the training
split, most frequent tokens first, and fits the model: it holds at most the model's
vocabulary size (``InputSpec.maxval``) entries, rarer tokens become ``<unk>``. When the
two inputs have the same vocabulary size the source and target share one vocabulary
(the Transformer's shared embedding); otherwise each side gets its own.
"""
import collections
import os

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import DatasetBundle, batch_splits, register_dataset, require_task, split_of

PAD, START, END, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
#: Lines shorter than this (characters, before cutting) are not used by docstrings_reverse.
MIN_LINE_CHARS = 12
#: Training pairs read from a wmt:NAME set (the full WMT'14 En-De has 4.5M).
WMT_TRAIN_PAIRS = 200_000


def _lengths(name, input_specs):
    if len(input_specs) != 2 or any(len(s.shape) != 1 or not s.dtype.startswith("int") for s in input_specs):
        raise ValueError(f"Dataset {name!r} feeds seq2seq models with two integer inputs "
                         "(source_ids (S,), target_in_ids (T,)). "
                         f"Received: input specs {input_specs}")
    (source_len,), (target_len,) = input_specs[0].shape, input_specs[1].shape
    if not source_len or not target_len:
        raise ValueError(f"Dataset {name!r} needs fixed source and target lengths. "
                         f"Received: {source_len}, {target_len}")
    return source_len, target_len


def build_vocabulary(token_lists, size):
    """SPECIALS, then the most frequent tokens (ties: first seen), at most ``size`` entries."""
    if size <= len(SPECIALS):
        raise ValueError(f"A vocabulary needs more than {len(SPECIALS)} entries (the special tokens). "
                         f"Received: vocabulary size {size}")
    counts = collections.Counter(token for tokens in token_lists for token in tokens)
    return SPECIALS + [token for token, _ in counts.most_common(size - len(SPECIALS))]


def encode_pairs(pairs, source_vocab, target_vocab, source_len, target_len):
    """Token pairs to ``(source_ids, target_in_ids, target_out_ids)`` int32 arrays."""
    source_index = {token: i for i, token in enumerate(source_vocab)}
    target_index = {token: i for i, token in enumerate(target_vocab)}
    sources = np.zeros((len(pairs), source_len), np.int32)
    target_in = np.zeros((len(pairs), target_len), np.int32)
    target_out = np.zeros((len(pairs), target_len), np.int32)
    for row, (source, target) in enumerate(pairs):
        source_ids = [source_index.get(t, UNK) for t in source[:source_len]]
        target_ids = [target_index.get(t, UNK) for t in target[:target_len - 1]]
        sources[row, :len(source_ids)] = source_ids
        target_in[row, :len(target_ids) + 1] = [START, *target_ids]
        target_out[row, :len(target_ids) + 1] = [*target_ids, END]
    return sources, target_in, target_out


def pairs_bundle(name, pairs_by_split, input_specs, batch_size, seed, info):
    """A DatasetBundle from ``{split: [(source_tokens, target_tokens), ...]}``."""
    source_len, target_len = _lengths(name, input_specs)
    source_size, target_size = int(input_specs[0].maxval), int(input_specs[1].maxval)
    train = pairs_by_split["train"]
    if source_size == target_size:
        source_vocab = target_vocab = build_vocabulary([t for pair in train for t in pair], source_size)
    else:
        source_vocab = build_vocabulary([s for s, _ in train], source_size)
        target_vocab = build_vocabulary([t for _, t in train], target_size)
    splits = {}
    for split, pairs in pairs_by_split.items():
        sources, target_in, target_out = encode_pairs(pairs, source_vocab, target_vocab, source_len,
                                                      target_len)
        splits[split] = tf.data.Dataset.from_tensor_slices(((sources, target_in), target_out))
    info = {**info, "sizes": {s: len(p) for s, p in pairs_by_split.items()},
            "source_vocab_size": len(source_vocab), "target_vocab_size": len(target_vocab),
            "shared_vocabulary": source_vocab is target_vocab}
    return DatasetBundle(**batch_splits(name, splits, batch_size, seed), vocab=list(target_vocab), info=info)


def reversal_pairs(documents, max_chars):
    """``{split: [(chars, reversed chars)]}`` from docstring lines, split by a hash of the line."""
    seen, splits = set(), {"train": [], "validation": [], "test": []}
    for _, _, doc in documents:
        for line in doc.splitlines():
            line = " ".join(line.split())
            if len(line) < MIN_LINE_CHARS:
                continue
            # Long lines are cut to the model's length (after the length filter, so short
            # models still get data); cut lines that coincide are kept once.
            line = line[:max_chars]
            if line in seen:
                continue
            seen.add(line)
            splits[split_of(line)].append((list(line), list(reversed(line))))
    return splits


@register_dataset("docstrings_reverse")
def load_docstrings_reverse(_, *, task, input_specs, batch_size, seed, data_dir):
    """Character-level reversal of standard-library docstring lines."""
    from keras_zoo.data.docstrings import load_corpus

    require_task("docstrings_reverse", task, ("seq2seq",))
    source_len, target_len = _lengths("docstrings_reverse", input_specs)
    pairs = reversal_pairs(load_corpus(data_dir), min(source_len, target_len - 1))
    return pairs_bundle("docstrings_reverse", pairs, input_specs, batch_size, seed,
                        {"level": "char", "task": "reverse the characters of a line"})


def _check_tsv(path):
    if not os.path.isfile(path):
        raise ValueError(f"tsv:PATH needs an existing file of source<TAB>target lines. Received: {path!r}")


def read_tsv(path):
    """``[(source_tokens, target_tokens)]`` from a ``source<TAB>target`` file; bad lines are errors."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target'. "
                                 f"Received: {len(fields)} tab-separated fields")
            pairs.append((fields[0].split(), fields[1].split()))
    return pairs


@register_dataset("tsv", check=_check_tsv, takes_argument=True)
def load_tsv(path, *, task, input_specs, batch_size, seed, data_dir):
    """Sentence pairs from a TSV file, split 80/10/10 by a hash of the source."""
    require_task(f"tsv:{path}", task, ("seq2seq",))
    splits = {"train": [], "validation": [], "test": []}
    for source, target in read_tsv(path):
        splits[split_of(" ".join(source))].append((source, target))
    return pairs_bundle(f"tsv:{path}", splits, input_specs, batch_size, seed, {"level": "word", "path": path})


@register_dataset("wmt", takes_argument=True)
def load_wmt(name, *, task, input_specs, batch_size, seed, data_dir):
    """A tfds translation set; the first WMT_TRAIN_PAIRS training pairs are used."""
    import tensorflow_datasets as tfds

    require_task(f"wmt:{name}", task, ("seq2seq",))
    builder = tfds.builder(name, data_dir=data_dir)
    source_key, target_key = builder.info.supervised_keys
    split_names = {"train": f"train[:{WMT_TRAIN_PAIRS}]", "validation": "validation", "test": "test"}
    pairs = {}
    for split, spec in split_names.items():
        dataset = tfds.load(name, split=spec, as_supervised=True, data_dir=data_dir, shuffle_files=False)
        pairs[split] = [(s.decode("utf-8").split(), t.decode("utf-8").split())
                        for s, t in tfds.as_numpy(dataset)]
    return pairs_bundle(f"wmt:{name}", pairs, input_specs, batch_size, seed,
                        {"level": "word", "tfds_name": name, "source": source_key, "target": target_key,
                         "splits": split_names})
