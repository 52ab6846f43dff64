"""QRNN encoder-decoder (arXiv:1611.01576, section 2.1): conditioned gates and the attention
output against NumPy, the reversed and padding-proof encoder, step graph against teacher
forcing, size by hand, a short training run with decoding, and TFLite export."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.qrnn_seq2seq import (
    ConditionedQRNN,
    QRNNSeq2Seq,
    QRNNTranslator,
    ReverseRealTokens,
    encoder_model,
    qrnn_seq2seq_params,
    step_model,
)
from keras_zoo.models.seq2seq import START_ID

BOTH = pytest.mark.both
RNG = np.random.default_rng(0)
SIZES = ("source_vocab_size", "target_vocab_size", "num_layers", "units", "embedding_dim", "encoder_windows",
         "decoder_window")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tiny(**overrides):
    info = keras_zoo.model_info("qrnn_seq2seq")
    config = info.resolved_config(tiny=True, **overrides)
    keras.utils.set_random_seed(0)
    return info.builder(**config), config


def _numpy_gates(x, condition, kernel, bias, condition_kernel, window, c0, previous):
    """Z, F, O of section 2.1: masked convolution plus the projected condition, at every step."""
    extended = np.concatenate([previous, x], 1)
    steps = x.shape[1]
    windows = np.concatenate([extended[:, tap:tap + steps] for tap in range(window)], -1)
    pre = windows @ kernel + bias + (condition @ condition_kernel)[:, None]
    z, f, o = np.split(pre, 3, -1)
    return np.tanh(z), _sigmoid(f), _sigmoid(o)


def _fo_pool(z, f, c0):
    c, cells = c0, []
    for t in range(z.shape[1]):
        c = f[:, t] * c + (1 - f[:, t]) * z[:, t]
        cells.append(c)
    return np.stack(cells, 1)


@BOTH
@pytest.mark.parametrize("split_output_gate", [False, True])
def test_conditioned_gates_match_numpy(split_output_gate):
    units, window = 4, 3
    x = RNG.standard_normal((2, 5, 3)).astype("float32")
    condition = RNG.standard_normal((2, 6)).astype("float32")
    c0 = RNG.standard_normal((2, units)).astype("float32")
    previous = RNG.standard_normal((2, window - 1, 3)).astype("float32")
    layer = ConditionedQRNN(units, window, split_output_gate=split_output_gate, return_state=True)
    layer([x, condition, c0, previous])
    layer.set_weights([RNG.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
    kernel, bias, condition_kernel = layer.get_weights()
    assert condition_kernel.shape == (6, 3 * units)
    outputs = [np.asarray(t) for t in layer([x, condition, c0, previous])]
    z, f, o = _numpy_gates(x, condition, kernel, bias, condition_kernel, window, c0, previous)
    c = _fo_pool(z, f, c0)
    if split_output_gate:
        np.testing.assert_allclose(outputs[0], c, atol=1e-5)
        np.testing.assert_allclose(outputs[1], o, atol=1e-5)
    else:
        np.testing.assert_allclose(outputs[0], o * c, atol=1e-5)
    np.testing.assert_allclose(outputs[-2], c[:, -1], atol=1e-5)
    np.testing.assert_allclose(outputs[-1], np.concatenate([previous, x], 1)[:, -(window - 1):], atol=1e-6)
    # The condition reaches every step: changing it changes the first and the last step.
    other = np.asarray(layer([x, condition + 1.0, c0, previous])[0])
    assert not np.allclose(other[:, 0], outputs[0][:, 0]) and not np.allclose(other[:, -1], outputs[0][:, -1])


@BOTH
def test_one_layer_step_with_attention_matches_numpy():
    """Embedding, conditioned gates, fo-pooling, alpha = softmax(c . h~_s), k = sum alpha h~_s,
    h = o * (W_k k + W_c c), then the softmax layer: one decoder step of a 1-layer model."""
    model, config = _tiny(num_layers=1, units=5, embedding_dim=3)
    step = step_model(model, config)
    memory = RNG.standard_normal((2, 7, 5)).astype("float32")
    mask = np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], "float32")
    summary = RNG.standard_normal((2, 5)).astype("float32")
    c0 = RNG.standard_normal((2, 5)).astype("float32")
    previous = RNG.standard_normal((2, 1, 3)).astype("float32")
    token = np.array([[START_ID], [7]], "int32")
    logits, c_new, previous_new, attention = (np.asarray(t) for t in step([token, memory, mask, summary, c0,
                                                                            previous]))
    embedding = step.get_layer("qrnn_seq2seq_target_embedding").get_weights()[0]
    kernel, bias, condition_kernel = step.get_layer("qrnn_seq2seq_decoder_1_qrnn").get_weights()
    (combine,) = step.get_layer("qrnn_seq2seq_attention_output").get_weights()
    out_kernel, out_bias = step.get_layer("qrnn_seq2seq_logits").get_weights()
    x = embedding[token]
    z, f, o = _numpy_gates(x, summary, kernel, bias, condition_kernel, 2, c0, previous)
    c = f[:, 0] * c0 + (1 - f[:, 0]) * z[:, 0]
    alpha = _softmax(np.where(mask > 0, np.einsum("bd,bsd->bs", c, memory), -np.inf))
    k = np.einsum("bs,bsd->bd", alpha, memory)
    w_k, w_c = combine[:5], combine[5:]
    h = o[:, 0] * (k @ w_k + c @ w_c)
    np.testing.assert_allclose(attention, alpha, atol=1e-5)
    np.testing.assert_allclose(c_new, c, atol=1e-5)
    np.testing.assert_allclose(previous_new, x, atol=1e-6)
    np.testing.assert_allclose(logits, h @ out_kernel + out_bias, atol=1e-4)


@BOTH
def test_encoder_reads_the_source_reversed_and_ignores_padding():
    ids = np.array([[5, 6, 7, 0, 0], [3, 4, 5, 6, 7]], "int32")
    np.testing.assert_array_equal(np.asarray(ReverseRealTokens()(ids)), [[7, 6, 5, 0, 0], [7, 6, 5, 4, 3]])
    model, config = _tiny()
    long = encoder_model(model, config)
    short = QRNNSeq2Seq(**{**config, "source_len": 4, "mode": "encoder"})
    for layer in short.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    source = np.array([[5, 9, 4, 7, 0, 0, 0]], "int32")
    got, want = [np.asarray(t) for t in long(source)], [np.asarray(t) for t in short(source[:, :4])]
    np.testing.assert_allclose(got[0][:, :4], want[0], atol=1e-5)
    for a, b in zip(got[2:], want[2:]):  # the summaries h~_T of every layer
        np.testing.assert_allclose(a, b, atol=1e-5)
    # h~_T of the last layer is the memory at the last real (reversed) step.
    np.testing.assert_allclose(got[-1], got[0][:, 3], atol=1e-6)


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

    translator = QRNNTranslator(model, config)
    state = translator.initial_state(source)
    for t in range(config["target_len"]):
        log_probs, state, attention = translator.step_fn(target[:, t], state)
        np.testing.assert_allclose(log_probs, np.asarray(tf.nn.log_softmax(logits[:, t])), atol=1e-4)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
        assert np.all(attention[1, -2:] == 0.0), "attention reached padded source positions"


@BOTH
def test_paper_size_count_by_hand():
    info = keras_zoo.model_info("qrnn_seq2seq")
    model = info.builder(**info.config)
    V, H = 256, 320
    by_hand = (2 * V * H                                      # embeddings (width = units)
               + 6 * H * 3 * H + 3 * H + 3 * (2 * H * 3 * H + 3 * H)   # encoder, k = 6 then 2
               + 4 * (2 * H * 3 * H + 3 * H) + 4 * H * 3 * H           # decoder, k = 2, plus V_z, V_f, V_o
               + 2 * H * H                                    # W_k, W_c
               + H * V + V)                                   # softmax
    assert model.count_params() == by_hand == qrnn_seq2seq_params(**{k: info.config[k] for k in SIZES})


@BOTH
@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_tiny_training_run_then_greedy_and_beam_decoding(tmp_path):
    from training.loop import train_and_evaluate

    result = train_and_evaluate(dict(model="qrnn_seq2seq", tiny=True, epochs=1, steps_per_epoch=2,
                                     validation_steps=1, batch_size=8, verbose=0), str(tmp_path))
    assert np.isfinite(result["history"]["loss"]).all() and np.isfinite(result["test"]["loss"])
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)
    config = keras_zoo.model_info("qrnn_seq2seq").resolved_config(tiny=True, **result["builder_overrides"])
    translator = QRNNTranslator(model, config)
    source = np.array([[4, 5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14, 15]], "int32")
    tokens, log_probs = translator.greedy(source, max_length=6)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 6 and np.all(log_probs <= 0)
    beams = translator.beam(source, beam_width=3, max_length=6, length_penalty=0.6, coverage_penalty=0.2)
    assert len(beams) == 2 and all(b and len(b[0].tokens) <= 6 for b in beams)


@BOTH
def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: units=0"):
        QRNNSeq2Seq(units=0)
    with pytest.raises(ValueError, match="Received: mode='decode'"):
        QRNNSeq2Seq(mode="decode")
    with pytest.raises(ValueError, match="Received: window=0"):
        ConditionedQRNN(4, window=0)


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
    """The exported graph (ModelInfo.inference_model), at an open batch size: every QRNN
    layer's output keeps its static length of 1, so the next layer's pooling is unrolled
    (a tf.scan there left a TensorListReserve)."""
    model, config = _tiny()
    translator = QRNNTranslator(model, config)
    source = np.array([[5, 9, 4, 7, 11, 0, 0]], "int32")
    context_size = len(translator.encoder.outputs)
    step = translator.step
    step_interpreter = _converted(step)
    state = translator.initial_state(source)
    for token in (START_ID, 7, 9):
        inputs = [np.array([[token]], "int32"), *state]
        expected = [np.asarray(o) for o in step(inputs)]
        _matches(_run(step_interpreter, step, inputs), expected)
        state = state[:context_size] + expected[1:-1]


@pytest.mark.tf_keras
def test_encoder_at_fixed_length_converts_to_builtins_and_agrees():
    """At batch 1 and the fixed source length (export.convert's signature) the QRNN pooling is
    unrolled: no WHILE, no TensorList, no Flex op; outputs agree with Keras."""
    from export import convert, verify

    model, config = _tiny()
    encoder = encoder_model(model, config)
    content = convert.convert(encoder, "float32", convert.input_signature(encoder))
    ops = {op.name for op in convert.read_graph(content).ops}
    assert not any(op.startswith("Flex") or op in ("WHILE", "CUSTOM") for op in ops), ops
    source = np.array([[5, 9, 4, 7, 11, 0, 0]], "int32")
    expected = [np.asarray(o) for o in encoder(source)]
    _matches(verify.TFLiteRunner(content)([source]), expected)
