"""word2vec SGNS (arXiv:1310.4546): loss, sub-sampling, noise distribution, pairs, training, export."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.data.skipgrams import (noise_distribution, skipgram_bundle, skipgram_examples, skipgram_pairs,
                                      subsampling_keep_probabilities)
from keras_zoo.models.word2vec import Word2Vec, embedding_table, export_embeddings, nearest_neighbours, sgns_loss

pytestmark = pytest.mark.both


def _log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def test_sgns_loss_matches_the_papers_objective():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6)).astype(np.float32) * 3
    labels = np.zeros((4, 6), np.float32)
    labels[:, 0] = 1
    # arXiv:1310.4546 Eq. 4, negated: -log s(v'_O . v_I) - sum_i log s(-v'_i . v_I).
    expected = -_log_sigmoid(logits[:, 0]) - _log_sigmoid(-logits[:, 1:]).sum(axis=1)
    np.testing.assert_allclose(np.asarray(sgns_loss(labels, tf.constant(logits))), expected, rtol=1e-5, atol=1e-5)


def test_model_scores_are_dot_products_of_the_two_tables():
    model = Word2Vec(vocab_size=12, embedding_dim=4, num_negatives=3, name="w2v")
    target = np.array([[3], [7]], np.int32)
    contexts = np.array([[1, 2, 3, 4], [11, 0, 5, 5]], np.int32)
    logits = np.asarray(model([target, contexts]))
    v_in = model.get_layer("w2v_target_embedding").get_weights()[0]
    v_out = model.get_layer("w2v_context_embedding").get_weights()[0]
    expected = np.einsum("bd,bkd->bk", v_in[target[:, 0]], v_out[contexts])
    np.testing.assert_allclose(logits, expected, atol=1e-6)
    assert logits.shape == (2, 4)
    with pytest.raises(ValueError, match="num_negatives"):
        Word2Vec(vocab_size=12, num_negatives=0)


def test_subsampling_probabilities_follow_the_formula():
    counts = np.array([0, 0, 1_000_000, 10_000, 100, 1])
    t = 1e-5
    keep = subsampling_keep_probabilities(counts, threshold=t)
    f = counts[2:] / counts.sum()
    discard = 1 - np.sqrt(t / f)  # arXiv:1310.4546 Eq. 5
    np.testing.assert_allclose(keep[2:], 1 - np.clip(discard, 0, 1), rtol=1e-12)
    assert keep[0] == keep[1] == 0
    assert keep[-1] == 1.0 and keep[2] < 0.01
    # The sampled sentences keep each word at that rate.
    counts = np.array([0, 0, 9000, 1000])
    sentence = np.repeat([2, 3], [9000, 1000])
    keep = subsampling_keep_probabilities(counts, threshold=0.01)
    (targets, _), _ = skipgram_examples([sentence], counts, np.random.default_rng(0), window=1,
                                        num_negatives=1, threshold=0.01)
    assert keep[2] == pytest.approx(np.sqrt(0.01 / 0.9))
    # With window 1 every kept word but the two ends is a centre exactly twice.
    kept_frequent = np.sum(targets[:, 0] == 2) / 2
    assert kept_frequent == pytest.approx(9000 * keep[2], rel=0.06)


def test_noise_distribution_is_unigram_to_three_quarters():
    counts = np.array([50, 40, 1, 16, 81, 0])
    noise = noise_distribution(counts)
    weights = np.array([0, 0, 1, 8, 27, 0], np.float64)  # c^(3/4) for c = 1, 16, 81
    np.testing.assert_allclose(noise, weights / weights.sum(), rtol=1e-12)
    rng = np.random.default_rng(0)
    sentences = [np.array([2, 3, 4, 3, 2])] * 2000
    (_, contexts), labels = skipgram_examples(sentences, counts, rng, window=2, num_negatives=4, threshold=1.0)
    assert np.all(labels[:, 0] == 1) and np.all(labels[:, 1:] == 0)
    drawn = np.bincount(contexts[:, 1:].ravel(), minlength=len(counts)) / contexts[:, 1:].size
    np.testing.assert_allclose(drawn, noise, atol=0.01)


def test_pairs_stay_inside_sentences_and_windows():
    sentences = [np.arange(10, 20), np.arange(30, 35)]
    centres, contexts = skipgram_pairs(sentences, 2, np.random.default_rng(0))
    assert np.all(np.abs(centres - contexts) <= 2) and np.all(centres != contexts)
    assert np.all((centres < 30) == (contexts < 30))
    # R ~ U{1, 2}: every neighbour at distance 1 is used, those at distance 2 half of the time.
    centres, contexts = skipgram_pairs([np.arange(20_000)], 2, np.random.default_rng(1))
    distance = np.abs(centres - contexts)
    assert np.sum(distance == 1) == 2 * (20_000 - 1)
    assert np.sum(distance == 2) / np.sum(distance == 1) == pytest.approx(0.5, abs=0.02)


def _synonym_corpus(groups, sentences_per_group, rng):
    """Group g: synonyms a_g, b_g (ids 2 + 4g, 3 + 4g), each seen with the group's two context words."""
    sentences = []
    for g in range(groups):
        a, b, c1, c2 = 2 + 4 * g, 3 + 4 * g, 4 + 4 * g, 5 + 4 * g
        for _ in range(sentences_per_group):
            sentences.append(np.array([c1, rng.choice([a, b]), c2]))
    rng.shuffle(sentences)
    return sentences


def test_training_recovers_planted_synonyms(tmp_path):
    keras.utils.set_random_seed(0)
    groups = 6
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(4 * groups)]
    corpus = _synonym_corpus(groups, 150, np.random.default_rng(0))
    counts = np.bincount(np.concatenate(corpus), minlength=len(vocab))
    (targets, contexts), labels = skipgram_examples(corpus, counts, np.random.default_rng(1), window=2,
                                                    num_negatives=3, threshold=1.0)
    model = Word2Vec(vocab_size=len(vocab), embedding_dim=16, num_negatives=3)
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss=sgns_loss)
    history = model.fit([targets, contexts], labels, batch_size=128, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    a_ids = [2 + 4 * g for g in range(groups)]
    ids, sims = nearest_neighbours(embedding_table(model), a_ids, k=1, exclude=(0, 1))
    np.testing.assert_array_equal(ids[:, 0], [a + 1 for a in a_ids])
    assert np.all(sims <= 1.0 + 1e-9)


def test_nearest_neighbours_against_brute_force():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(30, 5))
    ids, sims = nearest_neighbours(table, [4, 9], k=3)
    for row, q in zip(ids, [4, 9]):
        cos = [table[q] @ table[j] / np.linalg.norm(table[q]) / np.linalg.norm(table[j]) if j not in (0, q)
               else -np.inf for j in range(30)]
        np.testing.assert_array_equal(row, np.argsort(cos)[::-1][:3])
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_export_writes_projector_files(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    paths = export_embeddings(table, ["", "[UNK]", "file", "dir"], str(tmp_path))
    np.testing.assert_allclose(np.loadtxt(paths["vectors.tsv"], delimiter="\t"), table, rtol=1e-5)
    with open(paths["metadata.tsv"], encoding="utf-8") as f:
        assert f.read().splitlines() == ["[PAD]", "[UNK]", "file", "dir"]
    np.testing.assert_array_equal(np.load(paths["embeddings.npy"]), table)
    with pytest.raises(ValueError, match="one entry per embedding row"):
        export_embeddings(table, ["a"], str(tmp_path))


def test_bundle_and_task_after_training(tmp_path):
    from training.tasks import get_task

    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(8)]
    rng = np.random.default_rng(0)
    sentences = {split: [rng.integers(1, 10, size=12) for _ in range(20)] for split in ("train", "validation", "test")}
    bundle = skipgram_bundle("synthetic", sentences, vocab, 2, batch_size=8, seed=0, info={},
                             threshold=1.0)
    (target, contexts), labels = next(iter(bundle.train))
    assert target.shape == (8, 1) and contexts.shape == (8, 3) and labels.shape == (8, 3)
    assert bundle.model_overrides == {"vocab_size": 10}
    model = Word2Vec(vocab_size=10, embedding_dim=4, num_negatives=2)
    result = get_task("word2vec").after_training(model, bundle, str(tmp_path), {})
    assert set(result["neighbours"]) == set(vocab[2:])  # no query word in vocab: the frequent ids
    assert all(len(v) == 5 for v in result["neighbours"].values())
    assert (tmp_path / "embeddings" / "vectors.tsv").exists() and (tmp_path / "neighbours.txt").exists()


def test_docstrings_skipgrams_rejects_other_tasks_and_inputs():
    from keras_zoo.data import load_dataset
    from keras_zoo.registry import InputSpec

    specs = [InputSpec((1,), "int32", 10), InputSpec((6,), "int32", 10)]
    with pytest.raises(ValueError, match="serves the tasks word2vec"):
        load_dataset("docstrings_skipgrams", task="language_model", input_specs=specs, batch_size=8)
    with pytest.raises(ValueError, match=r"inputs \[target \(1,\), contexts \(1 \+ k,\)\]"):
        load_dataset("docstrings_skipgrams", task="word2vec", input_specs=specs[:1], batch_size=8)
