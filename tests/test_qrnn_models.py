"""QRNN models of arXiv:1611.01576: sizes, single-step inference, generation, masking, TFLite."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers.qrnn import QRNN
from keras_zoo.models.qrnn import (
    QRNNClassifier,
    QRNNLanguageModel,
    generate,
    inference_model,
    language_model_params,
)

pytestmark = pytest.mark.both


def _tiny(name, **overrides):
    return keras_zoo.create_model(name, tiny=True, **overrides)


def test_ptb_word_model_has_the_papers_size():
    info = keras_zoo.model_info("qrnn_lm_word")
    model = keras_zoo.create_model("qrnn_lm_word")
    # Hand formula: embedding V*E, per layer k*in*3H + 3H, softmax H*V + V.
    by_hand = 10000 * 640 + 2 * (2 * 640 * 3 * 640 + 3 * 640) + 640 * 10000 + 10000
    assert model.count_params() == by_hand == info.reference_params == language_model_params(10000, 640, 640, 2, 2)
    assert abs(by_hand - 18e6) < 0.5e6  # Table 2: "18M"
    qrnns = [layer for layer in model.layers if isinstance(layer, QRNN)]
    assert [(q.units, q.window, q.pooling, q.zoneout) for q in qrnns] == [(640, 2, "fo", 0.1)] * 2
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [0.5] * 3


def test_sentiment_model_is_densely_connected_with_the_papers_sizes():
    model = keras_zoo.create_model("qrnn_sentiment")
    qrnns = [layer for layer in model.layers if isinstance(layer, QRNN)]
    assert [q.units for q in qrnns] == [256] * 4 and all(q.window == 2 for q in qrnns)
    # Layer i sees the embedding and every earlier layer's output (section 2.1).
    assert [q.kernel.shape[0] for q in qrnns] == [2 * (300 + 256 * i) for i in range(4)]
    by_hand = 20000 * 300 + sum(2 * (300 + 256 * i) * 768 + 768 for i in range(4)) + 256 * 2 + 2
    assert model.count_params() == by_hand
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.3] * 5
    assert tuple(model.output.shape) == (None, 2)


def test_language_models_return_logits_over_the_vocabulary():
    for name in ("qrnn_lm_word", "qrnn_lm_char"):
        model = _tiny(name, seq_len=None)
        ids = np.random.default_rng(0).integers(0, 37, (2, 13)).astype("int32")
        logits = model(ids, training=False)
        assert tuple(logits.shape) == (2, 13, 37)
        assert model.layers[-1].get_config()["activation"] == "linear"


def test_inference_model_steps_reproduce_the_full_sequence():
    model = _tiny("qrnn_lm_word", window=3, seq_len=None)
    ids = np.random.default_rng(1).integers(0, 37, (1, 9)).astype("int32")
    expected = np.asarray(model(ids, training=False))
    step = inference_model(model, keras_zoo.model_info("qrnn_lm_word").resolved_config(tiny=True))
    names = [tensor.shape for tensor in step.inputs]
    assert [tuple(shape) for shape in names] == [(1, 1), (1, 8), (1, 2, 8), (1, 8), (1, 2, 8)]
    states = [np.zeros(tuple(t.shape), "float32") for t in step.inputs[1:]]
    for t in range(9):
        logits, *states = step([ids[:, t : t + 1]] + states)
        states = [np.asarray(state) for state in states]
        np.testing.assert_allclose(np.asarray(logits)[0, 0], expected[0, t], atol=1e-5)


def test_greedy_generation_equals_argmax_of_full_sequence_passes():
    model = _tiny("qrnn_lm_char", seq_len=None)
    prompt = [3, 14, 15]
    generated = generate(model, prompt, num_steps=6, temperature=0)
    ids = list(prompt)
    for _ in range(6):
        logits = model(np.array([ids], "int32"), training=False)
        ids.append(int(np.argmax(logits[0, -1])))
    assert generated.tolist() == ids
    assert generate(inference_model(model), prompt, num_steps=6, temperature=0).tolist() == ids


def test_sampling_is_seeded_and_validated():
    model = _tiny("qrnn_lm_char")
    first = generate(model, [1, 2], num_steps=8, temperature=1.5, seed=7)
    assert first.tolist() == generate(model, [1, 2], num_steps=8, temperature=1.5, seed=7).tolist()
    assert first[:2].tolist() == [1, 2] and len(first) == 10 and first.max() < 37
    with pytest.raises(ValueError, match="Received: temperature=-1"):
        generate(model, [1], num_steps=1, temperature=-1)
    with pytest.raises(ValueError, match="QRNN language model"):
        inference_model(_tiny("qrnn_sentiment"))


def test_classifier_ignores_padding_and_ends_in_softmax():
    model = _tiny("qrnn_sentiment", seq_len=None)
    doc = np.array([[5, 9, 2, 7, 1, 3]], "int32")
    padded = np.concatenate([doc, np.zeros((1, 4), "int32")], axis=1)
    short, long = model(doc, training=False), model(padded, training=False)
    np.testing.assert_allclose(short, long, atol=1e-5)
    np.testing.assert_allclose(np.sum(short, axis=-1), 1.0, atol=1e-5)


def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: vocab_size=1"):
        QRNNLanguageModel(vocab_size=1)
    with pytest.raises(ValueError, match="Received: classes=1"):
        QRNNClassifier(classes=1)
    with pytest.raises(ValueError, match="Received: pooling='gru'"):
        QRNNLanguageModel(vocab_size=10, pooling="gru")


def test_single_step_model_converts_to_int8_tflite_builtins():
    model = _tiny("qrnn_lm_word")
    step = inference_model(model)
    specs = [tf.TensorSpec(t.shape, t.dtype) for t in step.inputs]
    function = tf.function(lambda *inputs: step(list(inputs), training=False))
    concrete = function.get_concrete_function(*specs)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.integers(0, 37, (1, 1)).astype("int32")] + [
                rng.uniform(-1, 1, tuple(s.shape)).astype("float32") for s in specs[1:]
            ]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    flatbuffer = converter.convert()  # fails if any op needs SELECT_TF_OPS or stays float

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    ops = {detail["op_name"] for detail in interpreter._get_ops_details()}
    assert "FULLY_CONNECTED" in ops and not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops)
