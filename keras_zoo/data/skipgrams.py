"""Skip-gram training pairs with negatives (arXiv:1301.3781 Sec. 3.2, arXiv:1310.4546 Sec. 2.2-2.3).

From sentences of word ids (TextVectorization word level; padding id 0 and the
OOV id 1 are dropped, as word2vec drops words below its minimum count):

1. sub-sampling of frequent words: each occurrence of ``w`` is kept with probability
   ``min(1, sqrt(t / f(w)))``, ``f(w)`` its relative frequency in the training split,
   i.e. discarded with the paper's ``P(w) = 1 - sqrt(t / f(w))`` (arXiv:1310.4546 Eq. 5);
2. pairs ``(centre, context)`` within a window whose size ``R`` is drawn uniformly in
   ``[1, window]`` per centre word (arXiv:1301.3781 Sec. 3.2), inside one sentence;
3. ``num_negatives`` noise words per pair from ``U(w)^(3/4) / Z`` (Sec. 2.2).

``tf.keras.preprocessing.sequence.skipgrams`` / ``make_sampling_table`` are not used:
they draw negatives uniformly, use a fixed window and approximate word frequencies by
a Zipf law of the rank, where the paper uses the counted frequencies. Sub-sampling and
negatives are drawn once when the data set is built, so every epoch sees the same pairs.

``docstrings_skipgrams``: the stdlib docstrings corpus (keras_zoo/data/docstrings.py),
one docstring per sentence, the same document split and 5,000-word vocabulary as
``docstrings_word``. It sub-samples with ``t = 1e-3`` (DOCSTRINGS_THRESHOLD), not the
paper's 1e-5: the paper's value suits its billion-word corpus, while on these ~98k
training words ``t = 1e-5`` leaves 54k training pairs and visibly worse neighbours
(330k pairs at 1e-3); 1e-3 is also the reference word2vec tool's default ``-sample``.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.data._base import SPLIT_SEED, DatasetBundle, batch_splits, register_dataset, require_task
from keras_zoo.data.docstrings import _digest, _split_documents, load_corpus
from keras_zoo.data.text import adapted_vectorizer, normalize_whitespace, vocabulary

#: arXiv:1310.4546 Sec. 2.3: "t is a chosen threshold, typically around 1e-5".
SUBSAMPLE_THRESHOLD = 1e-5
#: The threshold of ``docstrings_skipgrams`` (a corpus ~10^4 times smaller than the paper's; see above).
DOCSTRINGS_THRESHOLD = 1e-3
#: Maximum window size C: "vector dimensionality 300 and context size 5" (arXiv:1310.4546 Sec. 4.1).
WINDOW = 5
NOISE_POWER = 0.75
#: Ids that are never words: TextVectorization's padding and OOV entries.
RESERVED_IDS = (0, 1)


def subsampling_keep_probabilities(counts, threshold=SUBSAMPLE_THRESHOLD):
    """Per id, the probability ``min(1, sqrt(t / f(w)))`` of keeping one occurrence (0 for unseen ids)."""
    counts = np.asarray(counts, np.float64)
    frequencies = counts / counts.sum()
    keep = np.zeros_like(frequencies)
    seen = counts > 0
    keep[seen] = np.minimum(1.0, np.sqrt(threshold / frequencies[seen]))
    return keep


def noise_distribution(counts, power=NOISE_POWER):
    """The unigram distribution raised to ``power`` and renormalised (reserved ids get 0)."""
    weights = np.asarray(counts, np.float64) ** power
    weights[list(RESERVED_IDS)] = 0.0
    total = weights.sum()
    if total <= 0:
        raise ValueError(f"The corpus holds no word outside the reserved ids {RESERVED_IDS}. "
                         f"Received: counts summing to {np.sum(counts)}")
    return weights / total


def skipgram_pairs(sentences, window, rng):
    """``(centres, contexts)`` int32 arrays of every pair within a per-centre random window ``R in [1, window]``."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"`window` must be a positive integer. Received: window={window!r}")
    ids = np.concatenate([np.asarray(s, np.int32) for s in sentences] + [np.zeros((0,), np.int32)])
    sentence = np.concatenate([np.full(len(s), i) for i, s in enumerate(sentences)] + [np.zeros((0,), int)])
    reach = rng.integers(1, window + 1, size=len(ids))
    centres, contexts = [], []
    for offset in range(1, window + 1):
        same = sentence[:-offset] == sentence[offset:]
        left, right = np.arange(len(ids) - offset), np.arange(offset, len(ids))
        forward = same & (reach[left] >= offset)    # the centre on the left sees offset words ahead
        backward = same & (reach[right] >= offset)  # the centre on the right sees offset words back
        centres += [ids[left[forward]], ids[right[backward]]]
        contexts += [ids[right[forward]], ids[left[backward]]]
    return np.concatenate(centres), np.concatenate(contexts)


def skipgram_examples(sentences, counts, rng, window=WINDOW, num_negatives=5, threshold=SUBSAMPLE_THRESHOLD):
    """Model inputs and labels from sentences of word ids.

    Args:
        sentences: list of 1-D int arrays (word ids; reserved ids are dropped).
        counts: per-id counts of the training split (sub-sampling and noise come from them).
        rng: a ``np.random.Generator``.
        window, num_negatives, threshold: C, k and t.

    Returns:
        ``((targets (N, 1), contexts (N, 1 + k)), labels (N, 1 + k))``; the observed
        context is column 0 (label 1), the noise words follow (label 0).
    """
    keep = subsampling_keep_probabilities(counts, threshold)
    noise = noise_distribution(counts)
    kept = []
    for s in sentences:
        s = np.asarray(s, np.int64)
        s = s[~np.isin(s, RESERVED_IDS)]
        kept.append(s[rng.random(len(s)) < keep[s]])
    centres, positives = skipgram_pairs(kept, window, rng)
    negatives = rng.choice(len(noise), size=(len(centres), num_negatives), p=noise)
    contexts = np.concatenate([positives[:, None], negatives], axis=1).astype(np.int32)
    labels = np.zeros(contexts.shape, np.float32)
    labels[:, 0] = 1.0
    return (centres[:, None].astype(np.int32), contexts), labels


def _num_negatives(name, input_specs):
    if len(input_specs) != 2 or input_specs[1].shape[0] is None or input_specs[1].shape[0] < 2:
        raise ValueError(f"Dataset {name!r} feeds skip-gram models with inputs [target (1,), contexts (1 + k,)]. "
                         f"Received: input specs {input_specs}")
    return int(input_specs[1].shape[0]) - 1


def skipgram_bundle(name, sentences, vocab, num_negatives, batch_size, seed, info, window=WINDOW,
                    threshold=SUBSAMPLE_THRESHOLD):
    """Batches ``{split: [id arrays]}`` into a DatasetBundle; counts come from the train split."""
    counts = np.bincount(np.concatenate([np.asarray(s, np.int64) for s in sentences["train"]]),
                         minlength=len(vocab))
    counts[list(RESERVED_IDS)] = 0  # f(w) is relative to the words kept, as word2vec's min-count pruning
    arrays = {}
    for split, split_sentences in sentences.items():
        rng = np.random.default_rng(seed if split == "train" else SPLIT_SEED)
        arrays[split] = skipgram_examples(split_sentences, counts, rng, window=window, num_negatives=num_negatives,
                                           threshold=threshold)
    splits = {split: tf.data.Dataset.from_tensor_slices(a) for split, a in arrays.items()}
    info = dict(info, vocab_size=len(vocab), window=window, subsample_threshold=threshold,
                num_negatives=num_negatives, words_train=int(counts.sum()),
                pairs={split: int(len(a[1])) for split, a in arrays.items()})
    return DatasetBundle(**batch_splits(name, splits, batch_size, seed),
                         model_overrides={"vocab_size": len(vocab)}, vocab=vocab, info=info)


@register_dataset("docstrings_skipgrams")
def load_docstrings_skipgrams(_, *, task, input_specs, batch_size, seed, data_dir):
    """Skip-gram pairs with negatives from the stdlib docstrings (one docstring = one sentence)."""
    require_task("docstrings_skipgrams", task, ("word2vec",))
    num_negatives = _num_negatives("docstrings_skipgrams", input_specs)
    documents = load_corpus(data_dir)
    texts = {split: [normalize_whitespace(d[2]) for d in docs] for split, docs in _split_documents(documents).items()}
    vectorizer = adapted_vectorizer("word", texts["train"])
    sentences = {split: [np.asarray(row, np.int32) for row in vectorizer(tf.constant(t)).to_list()]
                 for split, t in texts.items()}
    return skipgram_bundle("docstrings_skipgrams", sentences, vocabulary(vectorizer), num_negatives, batch_size,
                           seed, {"corpus_sha256": _digest(documents)}, threshold=DOCSTRINGS_THRESHOLD)
