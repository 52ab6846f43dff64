"""GNMT (arXiv:1609.08144): size, the decoder step against NumPy, encoder masking, step graph
against teacher forcing, beam search with GNMT's penalties against exhaustive search, a
short training run through the shared loop, and TFLite export of the inference graphs."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.gnmt import GNMT, GNMTDecoder, GNMTTranslator, encoder_model, gnmt_params, step_model
from keras_zoo.models.seq2seq import END_ID, START_ID

BOTH = pytest.mark.both
RNG = np.random.default_rng(0)
SIZES = ("source_vocab_size", "target_vocab_size", "num_layers", "units", "embedding_dim", "attention_units")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tiny(**overrides):
    info = keras_zoo.model_info("gnmt_8x1024")
    config = info.resolved_config(tiny=True, **overrides)
    keras.utils.set_random_seed(0)
    return info.builder(**config), config


@BOTH
def test_paper_size_count_by_hand():
    info = keras_zoo.model_info("gnmt_8x1024")
    assert {k: info.config[k] for k in SIZES} == dict(
        source_vocab_size=32000, target_vocab_size=32000, num_layers=8, units=1024, embedding_dim=1024,
        attention_units=1024)
    lstm = lambda inputs: 4 * 1024 * (inputs + 1024) + 4 * 1024  # noqa: E731
    by_hand = (2 * 32000 * 1024                                    # source and target embeddings
               + 2 * lstm(1024) + lstm(2048) + 6 * lstm(1024)      # encoder: bi layer, layer 2, residual 3..8
               + lstm(1024 + 1024) + 7 * lstm(1024 + 1024)         # decoder layers read [x; attention context]
               + 2 * 1024 * 1024 + 2 * 1024                        # attention W, U, bias, v
               + 1024 * 32000 + 32000)                             # softmax
    assert by_hand == 280_859_904 == info.reference_params == gnmt_params(**{k: info.config[k] for k in SIZES})


@pytest.mark.keras3  # a parameter count: the same in both runtimes (tf_keras builds each LSTM in ~1.5 s)
@pytest.mark.parametrize("num_layers", [2, 8])
def test_builder_count_equals_the_formula_at_full_depth(num_layers):
    config = dict(source_vocab_size=37, target_vocab_size=23, num_layers=num_layers, units=12,
                  embedding_dim=10, attention_units=9)
    model = GNMT(source_len=5, target_len=4, **config)
    assert model.count_params() == gnmt_params(**config)
    names = [layer.name for layer in model.layers]
    assert isinstance(model.get_layer("gnmt_encoder_1_bilstm"), keras.layers.Bidirectional)
    residuals = [n for n in names if n.endswith("_residual")]
    assert residuals == [f"gnmt_encoder_{k}_residual" for k in range(3, num_layers + 1)]


@BOTH
def test_decoder_steps_match_numpy():
    """Attention from the bottom layer's previous output, context to every layer, residual from layer 3."""
    units, layers, steps = 5, 3, 2
    x = RNG.standard_normal((2, steps, 4)).astype("float32")
    memory = RNG.standard_normal((2, 6, units)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 0]], "float32")
    states = [RNG.standard_normal((2, units)).astype("float32") for _ in range(2 * layers)]
    layer = GNMTDecoder(units, layers, attention_units=7, return_state=True, return_attention_scores=True)
    layer([x, memory, mask, *states])
    layer.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.5 for w in layer.get_weights()])
    outputs, *rest = (np.asarray(t) for t in layer([x, memory, mask, *states]))
    new_states, alignments = rest[:-1], rest[-1]

    W, U, b, v = layer.attention.get_weights()
    cells = [cell.get_weights() for cell in layer.cells]
    s = [np.array(t, dtype=np.float64) for t in states]
    for t in range(steps):
        energies = np.tanh((s[0] @ W + b)[:, None] + memory @ U) @ v
        a = _softmax(np.where(mask > 0, energies, -np.inf))
        context = np.einsum("bs,bsd->bd", a, memory)
        inp = x[:, t]
        for k, (kernel, recurrent, bias) in enumerate(cells):
            gates = np.concatenate([inp, context], -1) @ kernel + s[2 * k] @ recurrent + bias
            i, f, g, o = np.split(gates, 4, -1)  # Keras LSTM gate order
            c = _sigmoid(f) * s[2 * k + 1] + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            s[2 * k], s[2 * k + 1] = h, c
            inp = h + inp if k + 1 >= 3 else h
        np.testing.assert_allclose(alignments[:, t], a, atol=1e-5)
        np.testing.assert_allclose(outputs[:, t], inp, atol=1e-5)
    for got, want in zip(new_states, s):
        np.testing.assert_allclose(got, want, atol=1e-5)


@BOTH
def test_encoder_skips_padding():
    """A padded source gives the encoder states and memory of the unpadded one (same weights)."""
    model, config = _tiny()
    short = GNMT(**{**config, "source_len": 4, "mode": "encoder"})
    long = encoder_model(model, config)
    for layer in short.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    source = np.array([[5, 9, 4, 7, 0, 0, 0]], "int32")
    got, want = long(source), short(source[:, :4])
    np.testing.assert_allclose(np.asarray(got[0])[:, :4], np.asarray(want[0]), atol=1e-5)
    for a, b in zip(got[2:], want[2:]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def _source_target(config, seed):
    rng = np.random.default_rng(seed)
    source = rng.integers(3, config["source_vocab_size"], (2, config["source_len"])).astype("int32")
    source[1, -2:] = 0
    target = rng.integers(3, config["target_vocab_size"], (2, config["target_len"])).astype("int32")
    target[:, 0] = START_ID
    return source, target


@BOTH
def test_causal_and_step_graph_matches_teacher_forcing():
    model, config = _tiny()
    source, target = _source_target(config, 1)
    logits = np.asarray(model([source, target], training=False))
    assert logits.shape == (2, config["target_len"], config["target_vocab_size"])
    changed = target.copy()
    changed[:, 3:] = (changed[:, 3:] + 1) % config["target_vocab_size"]
    other = np.asarray(model([source, changed], training=False))
    np.testing.assert_allclose(logits[:, :3], other[:, :3], atol=1e-5)
    assert not np.allclose(logits[:, 3:], other[:, 3:])

    translator = GNMTTranslator(model, config)
    state = translator.initial_state(source)
    for t in range(config["target_len"]):
        log_probs, state, attention = translator.step_fn(target[:, t], state)
        np.testing.assert_allclose(log_probs, np.asarray(tf.nn.log_softmax(logits[:, t])), atol=1e-4)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
        assert np.all(attention[1, -2:] == 0.0), "attention reached padded source positions"


def _lp(length, alpha):
    return (5.0 + length) ** alpha / (5.0 + 1.0) ** alpha


def _cp(attentions, beta, mask):
    coverage = np.sum(attentions, axis=0)
    return beta * sum(np.log(min(coverage[i], 1.0)) for i in range(len(mask)) if mask[i] > 0)


@BOTH
def test_penalties_match_the_numpy_transcription():
    from keras_zoo import decoding

    rng = np.random.default_rng(3)
    attentions = _softmax(rng.standard_normal((4, 6)) * 2)  # 4 target steps over 6 source positions
    mask = np.array([1, 1, 1, 1, 1, 0.0])
    for length, alpha in [(1, 0.0), (3, 0.6), (9, 1.3)]:
        assert decoding.gnmt_length_penalty(length, alpha) == pytest.approx(_lp(length, alpha))
    for beta in (0.0, 0.2, 1.0):
        got = decoding.gnmt_coverage_penalty(attentions.sum(0), beta, mask)
        assert got == pytest.approx(_cp(attentions, beta, mask))
    assert decoding.gnmt_coverage_penalty(np.array([1.5, 3.0]), 1.0) == 0.0  # covered: no penalty


@pytest.mark.keras3  # the search, not the runtime, is under test (tf_keras builds each LSTM in ~1.5 s)
@pytest.mark.parametrize("alpha,beta", [(0.6, 0.2), (1.5, 2.0)])
def test_beam_search_with_penalties_equals_exhaustive_search(alpha, beta):
    """GNMT's s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y), transcribed here, maximised over every
    sequence of a 4-token vocabulary; beam search with a full-width beam finds the same one."""
    model, config = _tiny(target_vocab_size=4, target_len=3)
    translator = GNMTTranslator(model, config)
    source = np.array([[5, 9, 4, 7, 11, 0, 0]], "int32")
    mask = (source[0] > 0).astype(float)
    candidates = [list(c) for length in range(1, 4) for c in itertools.product(range(4), repeat=length)
                  if END_ID not in c[:-1] and (length == 3 or c[-1] == END_ID)]
    # All candidates at once: row r follows candidate r (steps past its end are ignored).
    state = [np.repeat(s, len(candidates), 0) for s in translator.initial_state(source)]
    tokens = np.full(len(candidates), START_ID)
    log_probs, attentions = [], []
    for t in range(3):
        step_log_probs, state, attention = translator.step_fn(tokens, state)
        log_probs.append(step_log_probs)
        attentions.append(attention)
        tokens = np.array([c[t] if t < len(c) else END_ID for c in candidates])
    scores = []
    for r, c in enumerate(candidates):
        log_prob = sum(log_probs[t][r, token] for t, token in enumerate(c))
        scores.append(log_prob / _lp(len(c), alpha) + _cp([a[r] for a in attentions[:len(c)]], beta, mask))
    best = int(np.argmax(scores))
    hypotheses = translator.beam(source, beam_width=64, max_length=3, length_penalty=alpha,
                                 coverage_penalty=beta)[0]
    assert hypotheses[0].tokens == candidates[best]
    assert hypotheses[0].score == pytest.approx(scores[best], abs=1e-6)
    raw = sum(log_probs[t][best, token] for t, token in enumerate(candidates[best])) / _lp(
        len(candidates[best]), alpha)
    assert scores[best] < raw  # the coverage term took part (it is never positive)


@BOTH
@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_tiny_training_run_then_greedy_and_beam_decoding(tmp_path):
    from training.loop import train_and_evaluate

    result = train_and_evaluate(dict(model="gnmt_tiny", tiny=True, epochs=1, steps_per_epoch=2,
                                     validation_steps=1, batch_size=8, verbose=0), str(tmp_path))
    assert np.isfinite(result["history"]["loss"]).all() and np.isfinite(result["test"]["loss"])
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)
    config = keras_zoo.model_info("gnmt_tiny").resolved_config(tiny=True, **result["builder_overrides"])
    translator = GNMTTranslator(model, config)
    source = np.array([[4, 5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14, 15]], "int32")
    tokens, log_probs = translator.greedy(source, max_length=6)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 6 and np.all(log_probs <= 0)
    assert tokens.max() < config["target_vocab_size"]
    beams = translator.beam(source, beam_width=3, max_length=6, length_penalty=0.6, coverage_penalty=0.2)
    assert len(beams) == 2 and all(b and len(b[0].tokens) <= 6 for b in beams)
    assert [h.score for h in beams[0]] == sorted((h.score for h in beams[0]), reverse=True)


@BOTH
def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: num_layers=1"):
        GNMT(num_layers=1)
    with pytest.raises(ValueError, match="Received: residual_start=2"):
        GNMT(residual_start=2)
    with pytest.raises(ValueError, match="Received: mode='decode'"):
        GNMT(mode="decode")


def _converted(model):
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    ops = {d["op_name"] for d in interpreter._get_ops_details()}
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops)
    return interpreter


def _run(interpreter, model, inputs):
    details = interpreter.get_input_details()
    for tensor, value in zip(model.inputs, inputs):
        name = tensor.name.split(":")[0]
        index = next(d["index"] for d in details if d["name"].startswith(f"serving_default_{name}:"))
        interpreter.set_tensor(index, np.asarray(value, dtype=tf.as_dtype(tensor.dtype).as_numpy_dtype))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _matches(outputs, expected):
    # Output order in TFLite is not guaranteed; match each Keras output by shape and value.
    for e in expected:
        assert any(o.shape == e.shape and np.allclose(o, e, atol=1e-4) for o in outputs), e.shape


@pytest.mark.tf_keras
def test_step_graph_converts_to_builtins_and_agrees():
    """The exported graph (ModelInfo.inference_model), at an open batch size."""
    model, config = _tiny()
    encoder, step = encoder_model(model, config), step_model(model, config)
    state = [np.asarray(o) for o in encoder(np.array([[5, 9, 4, 7, 11, 0, 0]], "int32"))]
    step_interpreter = _converted(step)
    for token in (START_ID, 7, 9):
        inputs = [np.array([[token]], "int32"), *state]
        expected = [np.asarray(o) for o in step(inputs)]
        _matches(_run(step_interpreter, step, inputs), expected)
        state = state[:2] + expected[1:-1]


@pytest.mark.tf_keras
def test_encoder_at_fixed_length_converts_to_builtins_and_agrees():
    """At batch 1 and the fixed source length (export.convert's signature) the masked Keras LSTMs
    lower to the builtin WHILE op (no TensorList, no Flex op); outputs agree with Keras."""
    from export import convert, verify

    model, config = _tiny()
    encoder = encoder_model(model, config)
    content = convert.convert(encoder, "float32", convert.input_signature(encoder))
    ops = {op.name for op in convert.read_graph(content).ops}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    source = np.array([[5, 9, 4, 7, 11, 0, 0]], "int32")
    expected = [np.asarray(o) for o in encoder(source)]
    _matches(verify.TFLiteRunner(content)([source]), expected)
