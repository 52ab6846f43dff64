"""Seq2seq with attention: attention equations against NumPy, decoder causality and step
graphs, and beam search against exhaustive search."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo import decoding
from keras_zoo.layers.attention import AttentiveDecoder, BahdanauAttention, LuongAttention
from keras_zoo.models.seq2seq import END_ID, START_ID, Seq2SeqDecoder

pytestmark = pytest.mark.both

RNG = np.random.default_rng(0)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _randomize(layer):
    layer.set_weights([RNG.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])


@pytest.mark.parametrize("query_rank", [2, 3])
def test_bahdanau_attention_matches_numpy(query_rank):
    query = RNG.standard_normal((2, 3, 5) if query_rank == 3 else (2, 5)).astype("float32")
    memory = RNG.standard_normal((2, 4, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], "float32")
    layer = BahdanauAttention(7, return_attention_scores=True)
    layer([query, memory, mask])
    _randomize(layer)
    W, U, b, v = layer.get_weights()
    context, weights = (np.asarray(t) for t in layer([query, memory, mask]))
    q = query if query_rank == 3 else query[:, None]
    # e_ij = v^T tanh(W s_i + U h_j), a = softmax over unmasked j, c_i = sum_j a_ij h_j
    energies = np.tanh((q @ W + b)[:, :, None, :] + (memory @ U)[:, None, :, :]) @ v
    energies = np.where(mask[:, None, :] > 0, energies, -np.inf)
    expected_weights = _softmax(energies)
    expected_context = expected_weights @ memory
    if query_rank == 2:
        expected_weights, expected_context = expected_weights[:, 0], expected_context[:, 0]
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)
    assert np.all(weights[1, ..., 2:] == 0.0)


@pytest.mark.parametrize("score_function", ["general", "dot"])
def test_luong_attention_matches_numpy(score_function):
    query = RNG.standard_normal((2, 3, 6)).astype("float32")
    memory = RNG.standard_normal((2, 5, 6)).astype("float32")
    layer = LuongAttention(score_function, return_attention_scores=True)
    layer([query, memory])
    _randomize(layer)
    context, weights = (np.asarray(t) for t in layer([query, memory]))
    W = layer.get_weights()[0] if score_function == "general" else np.eye(6)
    expected_weights = _softmax(np.einsum("bqd,de,bke->bqk", query, W, memory))
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(context, expected_weights @ memory, atol=1e-5)


def test_luong_dot_needs_equal_widths():
    with pytest.raises(ValueError, match="same width"):
        LuongAttention("dot")([np.zeros((1, 4), "float32"), np.zeros((1, 3, 5), "float32")])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_bahdanau_gru_decoder_step_matches_numpy():
    """One Bahdanau decoder step (arXiv:1409.0473, A.2.2) with Keras' GRU (reset_after) gates."""
    x = RNG.standard_normal((2, 1, 3)).astype("float32")
    memory = RNG.standard_normal((2, 4, 5)).astype("float32")
    state = RNG.standard_normal((2, 6)).astype("float32")
    layer = AttentiveDecoder(6, cell="gru", attention="bahdanau", attention_units=7, return_state=True)
    layer([x, memory, np.ones((2, 4), "float32"), state])
    _randomize(layer)
    W, U, b, v = layer.attention.get_weights()
    kernel, recurrent, gru_bias = layer.cell.get_weights()  # reset_after: bias is (2, 3 * units)
    output, new_state = (np.asarray(t) for t in layer([x, memory, np.ones((2, 4), "float32"), state]))
    a = _softmax(np.tanh((state @ W + b)[:, None] + memory @ U) @ v)
    context = np.einsum("bk,bkd->bd", a, memory)
    inputs = np.concatenate([x[:, 0], context], -1)
    xz, xr, xh = np.split(inputs @ kernel + gru_bias[0], 3, -1)
    hz, hr, hh = np.split(state @ recurrent + gru_bias[1], 3, -1)
    z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
    h = z * state + (1 - z) * np.tanh(xh + r * hh)
    np.testing.assert_allclose(new_state, h, atol=1e-5)
    np.testing.assert_allclose(output[:, 0], np.concatenate([h, context], -1), atol=1e-5)


@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("luong", "lstm")])
def test_while_loop_and_unrolled_decoders_agree(attention, cell):
    x = RNG.standard_normal((2, 5, 3)).astype("float32")
    memory = RNG.standard_normal((2, 4, 6)).astype("float32")
    mask = np.ones((2, 4), "float32")
    looped = AttentiveDecoder(6, cell=cell, attention=attention)
    unrolled = AttentiveDecoder(6, cell=cell, attention=attention, unroll=True)
    looped([x, memory, mask]), unrolled([x, memory, mask])
    unrolled.set_weights(looped.get_weights())
    np.testing.assert_allclose(np.asarray(looped([x, memory, mask])),
                               np.asarray(unrolled([x, memory, mask])), atol=1e-5)


def _source_target(config, rng):
    source = rng.integers(3, config["source_vocab_size"], (2, config["source_len"])).astype("int32")
    source[1, -2:] = 0  # padding
    target = rng.integers(3, config["target_vocab_size"], (2, config["target_len"])).astype("int32")
    target[:, 0] = START_ID
    return source, target


@pytest.mark.parametrize("name", ["seq2seq_attention", "seq2seq_luong"])
def test_decoder_is_causal_and_step_graph_matches_teacher_forcing(name):
    info = keras_zoo.model_info(name)
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    source, target = _source_target(config, np.random.default_rng(1))
    logits = np.asarray(model([source, target], training=False))
    assert logits.shape == (2, config["target_len"], config["target_vocab_size"])
    changed = target.copy()
    changed[:, 3:] = (changed[:, 3:] + 1) % config["target_vocab_size"]
    other = np.asarray(model([source, changed], training=False))
    np.testing.assert_allclose(logits[:, :3], other[:, :3], atol=1e-5)
    assert not np.allclose(logits[:, 3:], other[:, 3:])

    decoder = Seq2SeqDecoder(model, config)
    state = decoder._encode(source)
    for t in range(config["target_len"]):
        log_probs, state, attention = decoder.step_fn(target[:, t], state)
        np.testing.assert_allclose(log_probs, np.asarray(tf.nn.log_softmax(logits[:, t])), atol=1e-4)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
        assert np.all(attention[1, -2:] == 0.0), "attention reached padded source positions"


class ToyRNN:
    """A NumPy step model with a recurrent state and attention over a 3-position source."""

    def __init__(self, vocab, hidden=5, source=3, seed=0):
        rng = np.random.default_rng(seed)
        self.embedding = rng.standard_normal((vocab, hidden))
        self.recurrent = rng.standard_normal((hidden, hidden))
        self.output = 1.5 * rng.standard_normal((hidden, vocab))
        self.attention = rng.standard_normal((hidden, source))

    def step_fn(self, tokens, state):
        h = np.tanh(state[0] @ self.recurrent + self.embedding[tokens])
        logits = h @ self.output
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return log_probs, [h], _softmax(h @ self.attention)


def _exhaustive(step_fn, state, start_id, end_id, vocab, max_length, alpha, beta):
    """Scores every sequence that ends in `end_id` or reaches `max_length`; returns the best."""
    best = None
    for length in range(1, max_length + 1):
        for sequence in itertools.product(range(vocab), repeat=length):
            if end_id in sequence[:-1] or (length < max_length and sequence[-1] != end_id):
                continue
            log_prob, coverage, s, token = 0.0, 0.0, [np.asarray(x) for x in state], start_id
            for next_token in sequence:
                log_probs, s, attention = step_fn(np.array([token], np.int32), s)
                log_prob += log_probs[0, next_token]
                coverage = coverage + (attention[0] if attention is not None else 0.0)
                token = next_token
            score = log_prob / decoding.gnmt_length_penalty(length, alpha)
            if attention is not None:
                score += decoding.gnmt_coverage_penalty(coverage, beta)
            if best is None or score > best[1]:
                best = (list(sequence), score)
    return best


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (0.6, 0.0), (1.0, 0.2), (2.0, 5.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_with_full_width_equals_exhaustive_search(alpha, beta, seed):
    vocab, max_length = 3, 4
    toy = ToyRNN(vocab, seed=seed)
    state = [np.zeros((1, 5))]
    best_tokens, best_score = _exhaustive(toy.step_fn, state, 0, 1, vocab, max_length, alpha, beta)
    hypotheses = decoding.beam_search(toy.step_fn, state, 0, 1, vocab ** max_length, max_length,
                                      length_penalty=alpha, coverage_penalty=beta)
    assert hypotheses[0].tokens == best_tokens
    assert hypotheses[0].score == pytest.approx(best_score, abs=1e-9)
    # A narrow beam can only do as well as the exhaustive optimum.
    narrow = decoding.beam_search(toy.step_fn, state, 0, 1, 2, max_length, alpha, beta)
    assert narrow[0].score <= best_score + 1e-9


def test_length_penalty_changes_the_winner():
    # Found by scanning ToyRNN seeds: raw log-probability prefers a short output, GNMT's
    # length normalisation with alpha=2 a longer one.
    for seed in range(20):
        toy = ToyRNN(3, seed=seed)
        short = decoding.beam_search(toy.step_fn, [np.zeros((1, 5))], 0, 1, 81, 4, 0.0)[0]
        long = decoding.beam_search(toy.step_fn, [np.zeros((1, 5))], 0, 1, 81, 4, 2.0)[0]
        if len(long.tokens) > len(short.tokens):
            return
    pytest.fail("alpha=2 never preferred a longer hypothesis")


def test_beam_width_one_is_greedy():
    toy = ToyRNN(4, seed=3)
    tokens, log_prob = decoding.greedy_search(toy.step_fn, [np.zeros((1, 5))], np.zeros(1, np.int32), 1, 6)
    best = decoding.beam_search(toy.step_fn, [np.zeros((1, 5))], 0, 1, 1, 6)[0]
    greedy = tokens[0].tolist()
    greedy = greedy[:greedy.index(1) + 1] if 1 in greedy else greedy
    assert best.tokens == greedy
    assert best.log_prob == pytest.approx(log_prob[0])


def test_gnmt_penalties_and_dynamic_unfolding():
    assert decoding.gnmt_length_penalty(7, 0.0) == 1.0
    assert decoding.gnmt_length_penalty(7, 1.0) == pytest.approx(2.0)
    assert decoding.gnmt_coverage_penalty(np.array([0.5, 2.0]), 0.2) == pytest.approx(0.2 * np.log(0.5))
    assert decoding.dynamic_unfolding_length(10, a=1.2, b=0) == 12
    assert decoding.dynamic_unfolding_length(10, a=1.0, b=3) == 13


def test_beam_search_on_the_model_equals_exhaustive_teacher_forced_scoring():
    info = keras_zoo.model_info("seq2seq_attention")
    config = info.resolved_config(tiny=True, target_vocab_size=4, target_len=3)
    model = info.builder(**config)
    source = np.random.default_rng(2).integers(3, 30, (1, config["source_len"])).astype("int32")
    candidates = []
    for length in range(1, 4):
        for sequence in itertools.product(range(4), repeat=length):
            if END_ID in sequence[:-1] or (length < 3 and sequence[-1] != END_ID):
                continue
            candidates.append(list(sequence))
    target_in = np.array([[START_ID, *c[:2], *[0] * (2 - len(c[:2]))][:3] for c in candidates], "int32")
    log_probs = np.asarray(tf.nn.log_softmax(
        model([np.repeat(source, len(candidates), 0), target_in], training=False)))
    alpha = 0.8
    scores = [sum(log_probs[i, t, token] for t, token in enumerate(c))
              / decoding.gnmt_length_penalty(len(c), alpha) for i, c in enumerate(candidates)]
    best = candidates[int(np.argmax(scores))]
    result = Seq2SeqDecoder(model, config).beam(source, beam_width=64, max_length=3,
                                                length_penalty=alpha)[0]
    assert result[0].tokens == best
    assert result[0].score == pytest.approx(max(scores), abs=1e-4)


def test_bad_attention_and_mode_are_rejected():
    with pytest.raises(ValueError, match="`attention` must be one of"):
        keras_zoo.create_model("seq2seq_attention", tiny=True, attention="additive")
    with pytest.raises(ValueError, match="`mode` must be one of"):
        keras_zoo.create_model("seq2seq_attention", tiny=True, mode="decode")


def _decode(ids, vocab):
    return [vocab[i] for i in ids if i > 2]


def test_docstrings_reverse_pairs_are_reversed_and_shifted():
    from keras_zoo.data import load_dataset

    info = keras_zoo.model_info("transformer_base")
    config = info.resolved_config(tiny=True, vocab_size=200, source_len=16, target_len=17)
    bundle = load_dataset("docstrings_reverse", task="seq2seq", input_specs=info.inputs_for(config),
                          batch_size=8)
    assert bundle.info["shared_vocabulary"] and bundle.vocab[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    (source, target_in), target_out = next(iter(bundle.validation))
    source, target_in, target_out = np.asarray(source), np.asarray(target_in), np.asarray(target_out)
    assert source.shape == (8, 16) and target_in.shape == target_out.shape == (8, 17)
    for s, t_in, t_out in zip(source, target_in, target_out):
        length = int(np.count_nonzero(s))
        assert _decode(t_out, bundle.vocab) == _decode(s, bundle.vocab)[::-1]
        assert t_in[0] == START_ID and t_out[length] == END_ID
        np.testing.assert_array_equal(t_in[1:length + 1], t_out[:length])
    with pytest.raises(ValueError, match="seq2seq"):
        load_dataset("docstrings_reverse", task="language_model", input_specs=info.inputs_for(config),
                     batch_size=8)


def test_tsv_pairs_with_separate_vocabularies(tmp_path):
    from keras_zoo.data import load_dataset
    from keras_zoo.data.seq2seq_text import read_tsv

    path = tmp_path / "pairs.tsv"
    lines = [f"the cat {i} sat\tle chat {i} assis" for i in range(60)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_tsv(str(path))[0] == (["the", "cat", "0", "sat"], ["le", "chat", "0", "assis"])
    info = keras_zoo.model_info("seq2seq_attention")
    config = info.resolved_config(tiny=True)
    bundle = load_dataset(f"tsv:{path}", task="seq2seq", input_specs=info.inputs_for(config), batch_size=2)
    assert not bundle.info["shared_vocabulary"]
    assert bundle.info["source_vocab_size"] <= 30 and bundle.info["target_vocab_size"] <= 20
    (source, target_in), target_out = next(iter(bundle.train))
    assert np.asarray(source).max() < 30 and np.asarray(target_out).max() < 20
    (tmp_path / "bad.tsv").write_text("only one field\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source<TAB>target"):
        load_dataset(f"tsv:{tmp_path / 'bad.tsv'}", task="seq2seq", input_specs=info.inputs_for(config),
                     batch_size=2)


def test_wmt_through_mock_data_trains_seq2seq_attention():
    """``wmt:NAME`` with tfds's mock generator (no download): the tfds name, its supervised
    keys (de -> en), its own splits, separate vocabularies fitted to the model, and 2 steps."""
    import tensorflow_datasets as tfds

    from keras_zoo.backend import keras
    from keras_zoo.data import load_dataset

    info = keras_zoo.model_info("seq2seq_attention")
    config = info.resolved_config(tiny=True)
    with tfds.testing.mock_data(num_examples=12):
        bundle = load_dataset("wmt:wmt14_translate/de-en", task="seq2seq", input_specs=info.inputs_for(config),
                              batch_size=4, seed=0)
        (source, target_in), target_out = next(iter(bundle.train))
        keras.utils.set_random_seed(0)
        model = info.builder(**config)
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(bundle.train, steps_per_epoch=2, epochs=1, verbose=0)
    assert (bundle.info["tfds_name"], bundle.info["source"], bundle.info["target"]) == ("wmt14_translate/de-en",
                                                                                        "de", "en")
    assert bundle.info["sizes"] == {"train": 12, "validation": 12, "test": 12}
    assert not bundle.info["shared_vocabulary"]
    assert bundle.info["source_vocab_size"] <= 30 and bundle.info["target_vocab_size"] <= 20
    assert source.shape == (4, 7) and target_in.shape == target_out.shape == (4, 6)
    assert source.dtype == target_in.dtype == tf.int32
    np.testing.assert_array_equal(target_in[:, 0], START_ID)
    # target_in is target_out shifted right behind <s>.
    np.testing.assert_array_equal(target_in[:, 1:], np.where(target_out[:, :-1] == END_ID, 0, target_out[:, :-1]))
    assert np.isfinite(history.history["loss"]).all()
