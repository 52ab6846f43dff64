"""RNN baselines: the peephole LSTM cell against NumPy, LM causality and step graphs, classifiers."""
import importlib.util

import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers.peephole_lstm import PeepholeLSTMCell
from keras_zoo.models import rnn

pytestmark = pytest.mark.both

HAVE_QRNN = importlib.util.find_spec("keras_zoo.layers.qrnn") is not None
CELLS = [c for c in rnn.CELLS if c != "qrnn" or HAVE_QRNN]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_peephole_lstm(x, kernel, recurrent_kernel, peephole, bias):
    """Gers & Schmidhuber (2000) peephole LSTM, as written in Graves (2013) eq. 7-11."""
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    w = lambda m, g: m[:, g * units:(g + 1) * units]  # noqa: E731
    b = lambda g: bias[g * units:(g + 1) * units]  # noqa: E731
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    outputs = []
    for t in range(steps):
        xt = x[:, t]
        i = _sigmoid(xt @ w(kernel, 0) + h @ w(recurrent_kernel, 0) + peephole[0] * c + b(0))
        f = _sigmoid(xt @ w(kernel, 1) + h @ w(recurrent_kernel, 1) + peephole[1] * c + b(1))
        c = f * c + i * np.tanh(xt @ w(kernel, 2) + h @ w(recurrent_kernel, 2) + b(2))
        o = _sigmoid(xt @ w(kernel, 3) + h @ w(recurrent_kernel, 3) + peephole[2] * c + b(3))
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, 1), h, c


def test_peephole_lstm_matches_numpy_equations():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 5)).astype("float32")
    layer = keras.layers.RNN(PeepholeLSTMCell(4), return_sequences=True, return_state=True)
    layer(x)
    kernel, recurrent_kernel, peephole, bias = [rng.standard_normal(w.shape).astype("float32")
                                                for w in layer.get_weights()]
    assert peephole.shape == (3, 4)
    layer.set_weights([kernel, recurrent_kernel, peephole, bias])
    sequence, h, c = (np.asarray(t) for t in layer(x))
    expected = _numpy_peephole_lstm(x.astype("float64"), kernel, recurrent_kernel, peephole, bias)
    for got, want in zip((sequence, h, c), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_peephole_weights_matter_and_forget_bias_is_one():
    cell = PeepholeLSTMCell(3)
    layer = keras.layers.RNN(cell)
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype("float32")
    before = np.asarray(layer(x))
    np.testing.assert_array_equal(np.asarray(cell.bias)[3:6], np.ones(3))
    np.testing.assert_array_equal(np.asarray(cell.bias)[:3], np.zeros(3))
    cell.peephole_kernel.assign(np.asarray(cell.peephole_kernel) + 1.0)
    assert not np.allclose(before, np.asarray(layer(x)))


def test_peephole_cell_config_round_trip():
    cell = PeepholeLSTMCell(7, unit_forget_bias=False, name="cell")
    clone = PeepholeLSTMCell.from_config(cell.get_config())
    assert (clone.units, clone.unit_forget_bias) == (7, False)


@pytest.mark.parametrize("cell", CELLS)
def test_language_model_shapes_and_causality(cell):
    model = keras_zoo.create_model("rnn_lm", tiny=True, cell=cell)
    ids = np.random.default_rng(0).integers(0, 40, size=(2, 8)).astype("int32")
    logits = np.asarray(model(ids, training=False))
    assert logits.shape == (2, 8, 40) and np.all(np.isfinite(logits))
    changed = ids.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % 40
    other = np.asarray(model(changed, training=False))
    np.testing.assert_allclose(logits[:, :5], other[:, :5], atol=1e-6)
    assert not np.allclose(logits[:, 5:], other[:, 5:])


@pytest.mark.parametrize("cell", CELLS)
def test_single_step_graph_reproduces_the_sequence_model(cell):
    info = keras_zoo.model_info("rnn_lm")
    config = info.resolved_config(tiny=True, cell=cell, num_layers=2)
    model = info.builder(**config)
    step = info.inference_model(model, config)
    ids = np.random.default_rng(2).integers(0, 40, size=(1, 8)).astype("int32")
    expected = np.asarray(model(ids, training=False))
    states = [np.zeros((1, *shape), "float32")
              for input_dim in (12, 16) for shape in rnn.state_shapes(cell, 16, input_dim)]
    for t in range(8):
        logits, *states = step([ids[:, t:t + 1], *states], training=False)
        states = [np.asarray(s) for s in states]
        np.testing.assert_allclose(np.asarray(logits), expected[:, t], atol=1e-5)


def test_zaremba_medium_parameter_count():
    # Embedding 10000x650 + 2 Keras LSTM layers 4*(650+650+1)*650 + softmax 650x10000+10000.
    # (Torch's LSTM in the paper has two bias vectors per layer; Keras has one.)
    model = keras_zoo.create_model("rnn_lm")
    lstm = 4 * (650 + 650 + 1) * 650
    assert model.count_params() == 10000 * 650 + 2 * lstm + 650 * 10000 + 10000 == 19_775_200


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_two_layer_classifier_outputs_distributions(cell):
    model = keras_zoo.create_model("rnn_classifier", tiny=True, cell=cell,
                                   bidirectional=True, num_layers=2)
    ids = np.random.default_rng(0).integers(0, 40, size=(4, 8)).astype("int32")
    probabilities = np.asarray(model(ids, training=False))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_bidirectional_classifier_reads_the_last_tokens_first():
    # A bidirectional classifier depends on the first token through the backward direction's
    # last step; parameter count doubles the recurrent weights.
    uni = keras_zoo.create_model("rnn_classifier", tiny=True, bidirectional=False)
    bi = keras_zoo.create_model("rnn_classifier", tiny=True, bidirectional=True)
    lstm = 4 * (12 + 16 + 1) * 16
    assert bi.count_params() - uni.count_params() == lstm + 16 * 3


def test_bad_cell_and_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"`cell` must be one of .*Received: cell='lstn'"):
        keras_zoo.create_model("rnn_lm", tiny=True, cell="lstn")
    with pytest.raises(ValueError, match="vocab_size"):
        keras_zoo.create_model("rnn_lm", tiny=True, vocab_size=0)
