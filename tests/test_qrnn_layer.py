"""keras_zoo.layers.qrnn.QRNN against a NumPy transcription of arXiv:1611.01576, eqs. 1-5."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers.qrnn import QRNN, linear_recurrence, qrnn_pooling

pytestmark = pytest.mark.both

GATES = {"f": 2, "fo": 3, "ifo": 4}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_qrnn(x, kernel, bias, units, window, pooling, c0=None, previous=None):
    """The paper's QRNN, one step at a time in float64: (outputs, c_T, last window-1 inputs)."""
    x = x.astype(np.float64)
    batch, steps, dim = x.shape
    previous = np.zeros((batch, window - 1, dim)) if previous is None else previous
    c = np.zeros((batch, units)) if c0 is None else c0.astype(np.float64)
    extended = np.concatenate([previous, x], axis=1)
    outputs = []
    for t in range(steps):
        # Masked convolution: step t sees x_{t-window+1} .. x_t.
        gates = extended[:, t : t + window].reshape(batch, window * dim) @ kernel + bias
        z = np.tanh(gates[:, :units])
        f = _sigmoid(gates[:, units : 2 * units])
        if pooling == "f":
            c = f * c + (1 - f) * z
            outputs.append(c)
            continue
        o = _sigmoid(gates[:, 2 * units : 3 * units])
        if pooling == "fo":
            c = f * c + (1 - f) * z
        else:
            i = _sigmoid(gates[:, 3 * units :])
            c = f * c + i * z
        outputs.append(o * c)
    return np.stack(outputs, axis=1), c, extended[:, steps:][:, -(window - 1) :] if window > 1 else None


def _layer(units, window, pooling, dim, scale=1.0, seed=0, **kwargs):
    layer = QRNN(units, window=window, pooling=pooling, **kwargs)
    layer.build((None, None, dim))
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, scale, (window * dim, GATES[pooling] * units)).astype("float32")
    bias = rng.normal(0, scale, (GATES[pooling] * units,)).astype("float32")
    layer.set_weights([kernel, bias])
    return layer, kernel.astype(np.float64), bias.astype(np.float64)


def _inputs(batch, steps, dim, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, steps, dim)).astype("float32")


@pytest.mark.parametrize("pooling", ["f", "fo", "ifo"])
@pytest.mark.parametrize("window", [1, 2])
@pytest.mark.parametrize("steps, with_state", [(7, True), (45, False), (47, True)])  # unrolled, chunked, padded-chunked scans
def test_matches_numpy_equations(pooling, window, steps, with_state):
    units, dim = 5, 4
    layer, kernel, bias = _layer(units, window, pooling, dim, return_sequences=True, return_state=True)
    x = _inputs(3, steps, dim)
    rng = np.random.default_rng(2)
    states = [rng.normal(size=(3, units)).astype("float32")]
    if window > 1:
        states.append(rng.normal(size=(3, window - 1, dim)).astype("float32"))
    outputs, *new_states = layer(x, initial_state=states if with_state else None)
    expected, c, last_inputs = numpy_qrnn(
        x, kernel, bias, units, window, pooling, *(states if with_state else [])
    )
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    np.testing.assert_allclose(new_states[0], c, atol=1e-5)
    assert len(new_states) == (2 if window > 1 else 1)
    if window > 1:
        np.testing.assert_allclose(new_states[1], last_inputs, atol=0)


@pytest.mark.parametrize("pooling", ["fo", "ifo"])
def test_long_sequence_with_saturated_gates_matches_numpy(pooling):
    """T=500 with forget gates pushed to ~0 and ~1 (large weights): no drift, no overflow."""
    units, dim = 6, 3
    layer, kernel, bias = _layer(units, 2, pooling, dim, scale=4.0, return_sequences=True)
    x = _inputs(2, 500, dim)
    expected, _, _ = numpy_qrnn(x, kernel, bias, units, 2, pooling)
    gates_f = _sigmoid(
        np.concatenate([np.zeros((2, 1, dim)), x], axis=1)[:, :-1].reshape(-1, dim) @ kernel[:dim, units : 2 * units]
        + x.reshape(-1, dim) @ kernel[dim:, units : 2 * units]
        + bias[units : 2 * units]
    )
    assert gates_f.min() < 1e-4 and gates_f.max() > 1 - 1e-4  # the test really saturates
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)


def test_linear_recurrence_gradient_matches_autodiff_of_the_loop():
    rng = np.random.default_rng(3)
    for steps in (9, 130, 131):  # unrolled, chunked and padded-chunked scans
        a = tf.constant(rng.uniform(0, 1, (2, steps, 3)).astype("float32"))
        b = tf.constant(rng.normal(size=(2, steps, 3)).astype("float32"))
        c0 = tf.constant(rng.normal(size=(2, 3)).astype("float32"))
        weights = rng.normal(size=(2, steps, 3)).astype("float32")
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([a, b, c0])
            fast = tf.reduce_sum(linear_recurrence(a, b, c0) * weights)
            c, states = c0, []
            for t in range(steps):
                c = a[:, t] * c + b[:, t]
                states.append(c)
            loop = tf.reduce_sum(tf.stack(states, axis=1) * weights)
        np.testing.assert_allclose(fast, loop, rtol=1e-5)
        for got, want in zip(tape.gradient(fast, [a, b, c0]), tape.gradient(loop, [a, b, c0])):
            np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("window", [1, 3])
def test_two_halves_with_returned_states_equal_one_pass(window):
    layer, _, _ = _layer(6, window, "fo", 4, return_sequences=True, return_state=True)
    x = _inputs(2, 40, 4)
    whole, *whole_states = layer(x)
    first, *states = layer(x[:, :23])
    second, *end_states = layer(x[:, 23:], initial_state=states)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    for a, b in zip(end_states, whole_states):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_single_steps_repeated_equal_the_full_sequence():
    layer, _, _ = _layer(6, 2, "ifo", 4, return_sequences=True, return_state=True)
    x = _inputs(2, 12, 4)
    whole, *_ = layer(x)
    states = [np.zeros((2, 6), "float32"), np.zeros((2, 1, 4), "float32")]
    steps = []
    for t in range(12):
        out, *states = layer(x[:, t : t + 1], initial_state=states)
        steps.append(out)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, atol=1e-5)


def test_zoneout_is_identity_at_inference_and_stochastic_in_training():
    plain, kernel, bias = _layer(6, 2, "fo", 4, return_sequences=True)
    zoned, _, _ = _layer(6, 2, "fo", 4, return_sequences=True, zoneout=0.5)
    x = _inputs(2, 30, 4)
    np.testing.assert_allclose(zoned(x, training=False), plain(x), atol=1e-6)
    assert not np.allclose(zoned(x, training=True), plain(x), atol=1e-3)
    # Zoning out every channel (F = 1) freezes c at its initial value: h = o * c0.
    frozen, _, _ = _layer(6, 2, "fo", 4, return_sequences=True, zoneout=1 - 1e-7)
    c0 = np.full((2, 6), 0.7, "float32")
    with_state = frozen(x, initial_state=[c0, np.zeros((2, 1, 4), "float32")], training=True)
    o = _sigmoid(
        np.concatenate([np.zeros((2, 1, 4)), x], axis=1)[:, :-1] @ kernel[:4, 12:]
        + x @ kernel[4:, 12:]
        + bias[12:]
    )
    np.testing.assert_allclose(with_state, o * 0.7, atol=1e-5)


@pytest.mark.parametrize("window", [1, 2, 3])
def test_masked_steps_carry_every_state(window):
    layer, _, _ = _layer(5, window, "fo", 3, return_sequences=True, return_state=True)
    x = _inputs(2, 9, 3)
    real = [slice(0, 9), slice(0, 6)]  # the second sequence has 3 padded steps
    mask = np.ones((2, 9), bool)
    mask[1, 6:] = False
    padded = x.copy()
    padded[1, 6:] = 99.0  # must not matter
    outputs, *states = layer(padded, mask=tf.constant(mask))
    for row, steps in enumerate(real):
        alone, *alone_states = layer(x[row : row + 1, steps])
        np.testing.assert_allclose(outputs[row : row + 1, steps], alone, atol=1e-5)
        for got, want in zip(states, alone_states):
            np.testing.assert_allclose(got[row : row + 1], want, atol=1e-5)
    # Keras convention: a masked step repeats the last unmasked output.
    np.testing.assert_allclose(outputs[1, 6:], np.repeat(outputs[1:2, 5], 3, axis=0), atol=1e-6)

    # Masked steps in the middle are skipped entirely, history included.
    holes = np.array([[True, False, True, False, False, True, True, False, True]] * 2)
    _, *hole_states = layer(x, mask=tf.constant(holes))
    _, *compact_states = layer(x[:, holes[0]])
    for got, want in zip(hole_states, compact_states):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_last_output_with_mask_and_embedding_mask_zero():
    ids = np.array([[3, 5, 2, 0, 0], [4, 4, 1, 6, 2]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(8, 4, mask_zero=True, name="embedding")(inputs)
    model = keras.Model(inputs, QRNN(5, name="qrnn")(embedded))
    last = model(ids)
    embeddings = model.get_layer("embedding").get_weights()[0]
    alone = model.get_layer("qrnn")(embeddings[ids[:1, :3]])
    np.testing.assert_allclose(last[:1], alone, atol=1e-5)


def test_go_backwards_and_bidirectional():
    layer, kernel, bias = _layer(5, 2, "fo", 3, return_sequences=True)
    x = _inputs(2, 11, 3)
    backwards = QRNN(5, window=2, return_sequences=True, go_backwards=True)
    backwards.build((None, None, 3))
    backwards.set_weights(layer.get_weights())
    np.testing.assert_allclose(backwards(x), layer(x[:, ::-1]), atol=1e-6)

    bidirectional = keras.layers.Bidirectional(QRNN(5, window=2, return_sequences=True))
    out = bidirectional(x)
    assert tuple(out.shape) == (2, 11, 10)
    forward_layer, backward_layer = bidirectional.forward_layer, bidirectional.backward_layer
    forward = numpy_qrnn(x, *(w.astype(np.float64) for w in forward_layer.get_weights()), 5, 2, "fo")[0]
    backward = numpy_qrnn(x[:, ::-1], *(w.astype(np.float64) for w in backward_layer.get_weights()), 5, 2, "fo")[0]
    np.testing.assert_allclose(out, np.concatenate([forward, backward[:, ::-1]], axis=-1), atol=1e-5)

    ids = np.array([[3, 5, 2, 0], [4, 4, 1, 6]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(8, 3, mask_zero=True)(inputs)
    model = keras.Model(inputs, keras.layers.Bidirectional(QRNN(4))(embedded))
    assert tuple(model(ids).shape) == (2, 8)


def test_config_round_trip():
    layer, _, _ = _layer(
        7, 3, "ifo", 4, zoneout=0.25, return_sequences=True, return_state=True, go_backwards=True,
        kernel_regularizer=keras.regularizers.L2(1e-4), name="q",
    )
    config = layer.get_config()
    clone = QRNN.from_config(config)
    assert clone.get_config() == config
    clone.build((None, None, 4))
    clone.set_weights(layer.get_weights())
    x = _inputs(2, 10, 4)
    for a, b in zip(layer(x), clone(x)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_gradients_reach_kernel_and_bias_and_inputs():
    layer, _, _ = _layer(6, 2, "fo", 4, return_sequences=True, zoneout=0.1)
    x = tf.constant(_inputs(2, 50, 4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grads = tape.gradient(loss, [layer.kernel, layer.bias, x])
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0)


def test_stateful_continues_across_calls():
    x = _inputs(2, 20, 4)
    layer, _, _ = _layer(6, 2, "fo", 4, return_sequences=True)
    whole = layer(x)
    inputs = keras.Input((None, 4), batch_size=2)
    stateful = QRNN(6, window=2, return_sequences=True, stateful=True)
    model = keras.Model(inputs, stateful(inputs))
    stateful.set_weights(layer.get_weights() + [np.zeros((2, 6)), np.zeros((2, 1, 4))])
    halves = [model(x[:, :8]), model(x[:, 8:])]
    np.testing.assert_allclose(np.concatenate(halves, axis=1), whole, atol=1e-5)
    stateful.reset_states()
    np.testing.assert_allclose(model(x[:, :8]), whole[:, :8], atol=1e-5)


def test_invalid_arguments_are_rejected_with_the_received_value():
    with pytest.raises(ValueError, match="pooling.*Received: pooling='lstm'"):
        QRNN(4, pooling="lstm")
    with pytest.raises(ValueError, match="Received: window=0"):
        QRNN(4, window=0)
    with pytest.raises(ValueError, match="Received: zoneout=1.5"):
        QRNN(4, zoneout=1.5)
    layer, _, _ = _layer(4, 2, "fo", 3)
    with pytest.raises(ValueError, match="2 initial state"):
        layer(_inputs(1, 3, 3), initial_state=[np.zeros((1, 4), "float32")])


@pytest.mark.parametrize("pooling", ["f", "fo", "ifo"])
@pytest.mark.parametrize("steps", [6, 47])  # one chunk; padded chunks
def test_fused_pooling_gradient_matches_autodiff_of_the_equations(pooling, steps):
    units, n_gates = 4, GATES[pooling]
    rng = np.random.default_rng(4)
    pre = tf.constant(rng.normal(0, 3, (2, steps, n_gates * units)).astype("float32"))
    c0 = tf.constant(rng.normal(size=(2, units)).astype("float32"))
    keep = tf.constant((rng.uniform(size=(2, steps, units)) > 0.3).astype("float32"))
    weights = rng.normal(size=(2, steps, units)).astype("float32")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([pre, c0])
        gates = tf.sigmoid(pre)
        h, c_last = qrnn_pooling(gates, c0, keep, pooling)
        fused = tf.reduce_sum(h * weights) + tf.reduce_sum(c_last * weights[:, 0])
        z, f, *rest = tf.unstack(tf.reshape(gates, [2, steps, n_gates, units]), axis=2)
        z, f = 2 * z - 1, 1 - keep * (1 - f)
        c, outputs = c0, []
        for t in range(steps):
            c = f[:, t] * c + (rest[1][:, t] if pooling == "ifo" else 1 - f[:, t]) * z[:, t]
            outputs.append(c if pooling == "f" else rest[0][:, t] * c)
        loop = tf.reduce_sum(tf.stack(outputs, axis=1) * weights) + tf.reduce_sum(c * weights[:, 0])
    np.testing.assert_allclose(fused, loop, rtol=1e-5)
    for got, want in zip(tape.gradient(fused, [pre, c0]), tape.gradient(loop, [pre, c0])):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_unknown_length_graph_matches_eager():
    """With the time axis unknown when traced, the scans pad and use a dynamic carry."""
    layer, _, _ = _layer(5, 2, "fo", 3, return_sequences=True, return_state=True)
    x = tf.constant(_inputs(2, 37, 3))
    traced = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None, None, 3])])

    def loss(call):
        with tf.GradientTape() as tape:
            outputs, c, previous = call(x)
            total = tf.reduce_sum(outputs**2) + tf.reduce_sum(c)
        return [outputs, c, previous] + tape.gradient(total, [layer.kernel, layer.bias])

    for got, want in zip(loss(traced), loss(layer)):
        np.testing.assert_allclose(got, want, atol=1e-5)
