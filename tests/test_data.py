"""keras_zoo.data: split determinism and disjointness, shapes and dtypes, vocabulary round
trips, user-file loaders, tfds through tfds.testing.mock_data, and clear errors.

Runs under both runtimes: tokenization goes through the runtime's TextVectorization.
"""
import collections

import numpy as np
import pytest

from keras_zoo.data import check_dataset, list_datasets, load_dataset, register_dataset
from keras_zoo.data import digits as digits_module
from keras_zoo.data import docstrings, text
from keras_zoo.registry import InputSpec

pytestmark = pytest.mark.both


def _tokens(seq_len):
    return [InputSpec((seq_len,), "int32")]


def _first_batch(dataset):
    x, y = next(iter(dataset))
    return x.numpy(), y.numpy()


def _all(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def char_bundle():
    return load_dataset("docstrings_char", task="language_model", input_specs=_tokens(32), batch_size=16)


@pytest.fixture(scope="module")
def corpus():
    return docstrings.load_corpus()


# -- names and errors ----------------------------------------------------------------------------

def test_builtin_names_are_registered():
    assert {"digits", "docstrings_char", "docstrings_word", "docstrings_topic", "textfile:", "imagefolder:",
            "tfds:"} <= set(list_datasets())


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(ValueError, match=r"Unknown dataset 'digitz'.*Did you mean 'digits'.*docstrings_char"):
        check_dataset("digitz")


@pytest.mark.parametrize("name, message", [
    ("digits:extra", "takes no ':' argument"),
    ("tfds", "needs an argument"),
    ("textfile:/no/such/file.txt", "does not exist"),
    ("imagefolder:/no/such/dir", "does not exist"),
])
def test_bad_arguments_are_rejected_before_loading(name, message):
    with pytest.raises(ValueError, match=message):
        check_dataset(name)


def test_missing_data_dir_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="data_dir .* does not exist"):
        check_dataset("digits", data_dir=str(tmp_path / "missing"))


def test_wrong_task_and_oversized_batch_are_rejected():
    with pytest.raises(ValueError, match="serves the tasks image_classification"):
        load_dataset("digits", task="language_model", input_specs=[InputSpec((8, 8, 1))], batch_size=4)
    with pytest.raises(ValueError, match="fewer than one batch; use a smaller batch_size"):
        load_dataset("digits", task="image_classification", input_specs=[InputSpec((8, 8, 1))], batch_size=1000)


def test_registering_a_prefix_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("digits")(lambda *a, **k: None)


# -- digits --------------------------------------------------------------------------------------

def test_digits_split_is_stratified_disjoint_and_complete():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    splits = digits_module.split_indices(labels)
    again = digits_module.split_indices(labels)
    indices = np.concatenate(list(splits.values()))
    assert sorted(indices) == list(range(len(labels)))  # disjoint and complete
    for split in splits:
        np.testing.assert_array_equal(splits[split], again[split])
        share = np.bincount(labels[splits[split]], minlength=10) / len(splits[split])
        np.testing.assert_allclose(share, np.bincount(labels) / len(labels), atol=0.01)


def test_digits_adapt_to_the_model_input():
    bundle = load_dataset("digits", task="image_classification", input_specs=[InputSpec((32, 32, 3))],
                          batch_size=16)
    x, y = _first_batch(bundle.train)
    assert x.shape == (16, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (16,) and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey replicated to RGB
    assert bundle.model_overrides == {"classes": 10}
    assert bundle.labels == [str(d) for d in range(10)]
    assert sum(bundle.info["sizes"].values()) == 1797

    native = load_dataset("digits", task="image_classification", input_specs=[InputSpec((8, 8, 1))],
                          batch_size=16)
    test_x, _ = _all(native.test)
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    index = digits_module.split_indices(load_digits().target)["test"][:len(test_x)]
    np.testing.assert_allclose(test_x[..., 0], images[index], atol=1e-6)  # evaluation order is fixed


def test_train_shuffle_follows_the_seed():
    def first(seed):
        bundle = load_dataset("digits", task="image_classification", input_specs=[InputSpec((8, 8, 1))],
                              batch_size=32, seed=seed)
        return _first_batch(bundle.train)[1]

    np.testing.assert_array_equal(first(0), first(0))
    assert not np.array_equal(first(0), first(1))


# -- docstrings ----------------------------------------------------------------------------------

def test_corpus_is_deterministic_deduplicated_and_covers_every_group(corpus):
    assert docstrings.collect_corpus() == corpus  # the cache holds what a fresh collection gives
    texts = [" ".join(doc.split()) for _, _, doc in corpus]
    assert len(texts) == len(set(texts)) > 1000
    assert {group for group, _, _ in corpus} == set(docstrings.GROUPS)
    assert sum(len(doc) for _, _, doc in corpus) <= docstrings.MAX_CHARS + max(len(d) for _, _, d in corpus)


def test_documents_and_paragraphs_never_cross_splits(corpus):
    splits = docstrings._split_documents(corpus)
    sets = {s: {doc for _, _, doc in docs} for s, docs in splits.items()}
    assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"]
                or sets["validation"] & sets["test"])
    assert sum(map(len, sets.values())) == len(corpus)
    assert 0.7 < len(sets["train"]) / len(corpus) < 0.9

    paragraphs = {s: {p for p, _ in items} for s, items in docstrings.topic_paragraphs(corpus).items()}
    assert not (paragraphs["train"] & paragraphs["test"] or paragraphs["train"] & paragraphs["validation"])


def test_char_windows_shift_by_one_and_decode_to_the_corpus(char_bundle, corpus):
    x, y = _all(char_bundle.validation)
    assert x.dtype == np.int32 and x.shape[1:] == (32,) and y.shape == x.shape
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])       # targets are the next tokens
    np.testing.assert_array_equal(x[1:, 0], y[:-1, -1])      # windows tile the stream
    vocab = char_bundle.vocab
    assert vocab[:2] == ["", "[UNK]"] and char_bundle.model_overrides == {"vocab_size": len(vocab)}
    decoded = "".join(vocab[i] for i in x[:4].ravel())
    validation_docs = [" ".join(d.split()) + " " for d in
                       (doc for _, _, doc in docstrings._split_documents(corpus)["validation"])]
    assert "".join(validation_docs).startswith(decoded)


def test_char_split_sizes_and_unigram_baseline(char_bundle):
    info = char_bundle.info
    assert info["sizes"]["train"] > 6 * info["sizes"]["test"] > 0
    # English characters: about 4-5 bits under a unigram model, well below log2(vocab).
    assert 3.5 < info["unigram_baseline_bits_per_token_test"] < np.log2(len(char_bundle.vocab))


def test_unigram_bits_per_token_by_hand():
    # counts+1 over a vocabulary of 3: [3, 2, 1] / 6.
    bits = text.unigram_bits_per_token(np.array([0, 0, 1]), np.array([0, 2]), vocab_size=3)
    assert bits == pytest.approx(-(np.log2(3 / 6) + np.log2(1 / 6)) / 2)


def test_word_level_vocabulary_is_capped_with_oov():
    bundle = load_dataset("docstrings_word", task="language_model", input_specs=_tokens(16), batch_size=8)
    x, y = _first_batch(bundle.test)
    assert x.shape == y.shape == (8, 16)
    assert len(bundle.vocab) == text.MAX_TOKENS["word"] and bundle.vocab[1] == "[UNK]"
    assert "the" in bundle.vocab[:5]
    assert 0 < bundle.info["oov_rate_test"] < 0.2
    assert 0 < x.min() and x.max() < len(bundle.vocab)  # no padding inside the stream


def test_topic_task_shapes_labels_and_balance():
    bundle = load_dataset("docstrings_topic", task="sequence_classification", input_specs=_tokens(24),
                          batch_size=8)
    x, y = _first_batch(bundle.train)
    assert x.shape == (8, 24) and x.dtype == np.int32 and y.shape == (8,) and y.dtype == np.int32
    assert bundle.labels == list(docstrings.GROUPS)
    assert bundle.model_overrides == {"vocab_size": len(bundle.vocab), "classes": len(docstrings.GROUPS)}
    _, test_y = _all(bundle.test)
    assert set(test_y) == set(range(len(docstrings.GROUPS)))
    assert bundle.info["majority_baseline_accuracy"] < 0.4


# -- user files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["char", "word"])
def test_textfile_splits_contiguously_and_round_trips(tmp_path, level):
    lines = [f"line {i % 50} of the quick brown fox jumps over the lazy dog number {i % 7}" for i in range(200)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    bundle = load_dataset(f"textfile:{path}:{level}", task="language_model", input_specs=_tokens(10),
                          batch_size=4)
    assert bundle.info["level"] == level
    x, y = _all(bundle.test)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    tokens = [bundle.vocab[i] for i in x[0]]
    expected = " ".join(lines[-20:]) if level == "char" else " ".join(lines[-20:]).split()
    if level == "char":
        assert "".join(tokens) in expected
    else:
        assert " ".join(tokens) in " ".join(expected)
    sizes = bundle.info["tokens"]
    assert sizes["train"] > 6 * sizes["test"]


def test_textfile_that_is_too_short_says_so(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("only one line\n", encoding="utf-8")
    with pytest.raises(ValueError, match="too short"):
        load_dataset(f"textfile:{path}", task="language_model", input_specs=_tokens(4), batch_size=1)


def test_imagefolder_reads_class_subfolders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in (("cats", 0), ("dogs", 2)):
        (tmp_path / label).mkdir()
        for i in range(20):
            pixels = rng.integers(0, 60, size=(12, 10, 3), dtype=np.uint8)
            pixels[..., colour] = 250
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    bundle = load_dataset(f"imagefolder:{tmp_path}", task="image_classification",
                          input_specs=[InputSpec((8, 8, 3))], batch_size=2)
    assert bundle.labels == ["cats", "dogs"] and bundle.model_overrides == {"classes": 2}
    assert sum(bundle.info["sizes"].values()) == 40
    x, y = _all(bundle.train)
    assert x.shape[1:] == (8, 8, 3) and 0 <= x.min() and x.max() <= 1.0
    # The label says which channel is bright: labels and pixels stay paired.
    np.testing.assert_array_equal(np.where(x[:, :, :, 0].mean((1, 2)) > 0.9, 0, 1), y)
    again = load_dataset(f"imagefolder:{tmp_path}", task="image_classification",
                         input_specs=[InputSpec((8, 8, 3))], batch_size=2)
    np.testing.assert_array_equal(_all(bundle.test)[0], _all(again.test)[0])


# -- tfds ----------------------------------------------------------------------------------------

def test_tfds_image_dataset_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        bundle = load_dataset("tfds:mnist", task="image_classification", input_specs=[InputSpec((16, 16, 3))],
                              batch_size=8)
        x, y = _first_batch(bundle.train)
        batches = collections.Counter(split for split in ("train", "validation", "test")
                                      for _ in getattr(bundle, split))
    assert x.shape == (8, 16, 16, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int32 and set(y) <= set(range(10))
    assert bundle.model_overrides == {"classes": 10} and len(bundle.labels) == 10
    assert batches == {"train": 3, "validation": 3, "test": 3}
    assert bundle.info["splits"]["validation"] == "train[90%:]"


def test_tfds_text_dataset_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=16):
        bundle = load_dataset("tfds:imdb_reviews", task="sequence_classification", input_specs=_tokens(12),
                              batch_size=4)
        x, y = _first_batch(bundle.test)
    assert x.shape == (4, 12) and x.dtype == np.int32 and y.shape == (4,)
    assert bundle.labels == ["neg", "pos"]
    assert bundle.model_overrides == {"vocab_size": len(bundle.vocab), "classes": 2}
    with pytest.raises(ValueError, match="serves the tasks image_classification"):
        with tfds.testing.mock_data(num_examples=4):
            load_dataset("tfds:mnist", task="sequence_classification", input_specs=_tokens(4), batch_size=2)
