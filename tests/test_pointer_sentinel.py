"""Pointer sentinel-LSTM (arXiv:1609.07843): the mixture against NumPy, normalisation, window, step graph."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.pointer_sentinel import (PointerSentinelLM, PointerSentinelMixture, inference_model,
                                               pointer_sentinel_params)


def _numpy_mixture(h, logits, ids, W, b, s, window):
    """Section 2 of the paper, one position at a time."""
    batch, steps, _ = h.shape
    out = np.zeros(logits.shape)
    for n in range(batch):
        for t in range(steps):
            q = np.tanh(h[n, t] @ W + b)
            start = max(0, t - window + 1)
            z = np.array([q @ h[n, i] for i in range(start, t + 1)] + [q @ s])
            joint = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            g = joint[-1]
            p_vocab = np.exp(logits[n, t] - logits[n, t].max())
            p = g * p_vocab / p_vocab.sum()
            for k, i in enumerate(range(start, t + 1)):
                p[ids[n, i]] += joint[k]
            out[n, t] = np.log(p)
    return out


def _mixture_inputs(batch=2, steps=7, units=5, vocab=11, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, steps, units)).astype("float32"),
            rng.standard_normal((batch, steps, vocab)).astype("float32"),
            rng.integers(0, vocab, (batch, steps)).astype("int32"))


@pytest.mark.both
def test_mixture_equals_numpy_transcription_and_is_normalised():
    h, logits, ids = _mixture_inputs()
    layer = PointerSentinelMixture(window=3)
    log_p = np.asarray(layer([h, logits, ids]))
    W, b, s = (np.asarray(w) for w in layer.get_weights())
    np.testing.assert_allclose(log_p, _numpy_mixture(h, logits, ids, W, b, s[:, 0], 3), atol=1e-5)
    np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)


@pytest.mark.both
def test_pointer_mass_goes_only_to_words_in_the_window():
    h, _, ids = _mixture_inputs(batch=1, steps=6, vocab=20)
    ids[0] = [3, 4, 5, 6, 7, 8]
    logits = np.full((1, 6, 20), -200.0, "float32")  # p_vocab near zero except via pointer
    logits[..., 0] = 0.0
    layer = PointerSentinelMixture(window=2)
    p = np.exp(np.asarray(layer([h, logits, ids])))[0]
    for t in range(6):
        window_words = set(ids[0, max(0, t - 1):t + 1].tolist())
        gate = p[t, 0]  # all vocabulary mass is on word 0, which is never in the window
        for word in range(1, 20):
            if word in window_words:
                assert p[t, word] > 1e-6
            else:  # exp(-200) underflows: only the 1e-30 floor of the log is left
                assert p[t, word] <= 1e-29, (t, word)
        np.testing.assert_allclose(gate + sum(p[t, w] for w in window_words), 1.0, atol=1e-5)


@pytest.mark.both
def test_sentinel_gate_moves_mass_between_vocabulary_and_pointer():
    h, logits, ids = _mixture_inputs()
    layer = PointerSentinelMixture(window=7)
    layer([h, logits, ids])
    kernel, bias, sentinel = layer.get_weights()
    vocab = tf.nn.softmax(logits).numpy()
    # q = tanh(5) everywhere and a huge sentinel vector: g -> 1, the output is the plain softmax.
    layer.set_weights([kernel * 0, bias * 0 + 5.0, np.full_like(sentinel, 1e3)])
    np.testing.assert_allclose(np.exp(np.asarray(layer([h, logits, ids]))), vocab, atol=1e-5)


@pytest.mark.both
def test_paper_size_and_log_probability_output():
    model = PointerSentinelLM()
    assert model.count_params() == pointer_sentinel_params(10000, 650, 650, 2) == 20_199_000
    tiny = keras_zoo.create_model("pointer_sentinel_lm", tiny=True)
    ids = np.random.default_rng(0).integers(0, 30, (2, 12)).astype("int32")
    log_p = np.asarray(tiny(ids, training=False))
    assert log_p.shape == (2, 12, 30)
    np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)
    # Softmax cross-entropy on log p (what the language_model task computes) is -log p exactly.
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=log_p).numpy()
    np.testing.assert_allclose(ce, -np.take_along_axis(log_p, ids[..., None], -1)[..., 0], atol=1e-5)


@pytest.mark.both
def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: window=1"):
        PointerSentinelLM(vocab_size=10, window=1)
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        PointerSentinelLM(vocab_size=10, dropout=1.0)


def _step_through(step, ids):
    states = [np.zeros((1, *t.shape[1:]), "int32" if t.dtype == tf.int32 else "float32") for t in step.inputs[1:]]
    outputs = []
    for token in ids:
        log_p, *states = step([np.array([[token]], "int32")] + states, training=False)
        states = [np.asarray(s) for s in states]
        outputs.append(np.asarray(log_p)[0, 0])
    return np.stack(outputs)


def _tiny_model_and_step():
    info = keras_zoo.model_info("pointer_sentinel_lm")
    config = info.resolved_config(tiny=True)  # window 5 < 12 steps: the window slides
    keras.utils.set_random_seed(0)
    model = info.builder(**config)
    return model, inference_model(model, config)


@pytest.mark.both
def test_single_step_graph_reproduces_the_full_sequence():
    model, step = _tiny_model_and_step()
    ids = np.random.default_rng(1).integers(0, 30, 12).astype("int32")
    expected = np.asarray(model(ids[None], training=False))[0]
    np.testing.assert_allclose(_step_through(step, ids), expected, atol=1e-5)


@pytest.mark.tf_keras  # the export stage runs under tf_keras (as tests/test_export.py)
def test_single_step_graph_converts_to_builtin_float_tflite_matching_keras():
    from export.convert import convert, input_signature
    from export.verify import TFLiteRunner

    _, step = _tiny_model_and_step()
    specs = input_signature(step)
    runner = TFLiteRunner(convert(step, "float32", specs))  # builtins only: Flex ops are refused
    rng = np.random.default_rng(2)
    feed = [np.array([[7]], "int32")] + [
        rng.integers(0, 30, tuple(s.shape)).astype("int32") if s.dtype == tf.int32
        else rng.uniform(0, 1, tuple(s.shape)).astype("float32") for s in specs[1:]
    ]
    for got, want in zip(runner(feed), step(feed, training=False)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
