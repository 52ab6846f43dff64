"""StochasticDepth (drop-path) and the option-A shortcut (keras_zoo.layers.stochastic_depth)."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers.stochastic_depth import (
    StochasticDepth,
    ZeroPadChannels,
    linear_survival_probabilities,
)

pytestmark = pytest.mark.both


def _random_ops(fn, spec):
    graph = tf.function(fn).get_concrete_function(spec).graph
    return [op.type for op in graph.get_operations() if "Random" in op.type]


def test_inference_is_the_identity_and_deterministic():
    layer = StochasticDepth(0.5)
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    first = np.asarray(layer(x, training=False))
    np.testing.assert_array_equal(first, x)
    np.testing.assert_array_equal(np.asarray(layer(x)), first)


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_training_keeps_each_sample_with_its_survival_probability(p):
    batch = 20_000
    x = np.ones((batch, 2, 2, 3), "float32")
    y = np.asarray(StochasticDepth(p, seed=1)(x, training=True)).reshape(batch, -1)
    # Whole samples are kept (scaled by 1/p) or dropped, never single entries.
    kept = np.all(np.isclose(y, 1.0 / p), axis=1)
    dropped = np.all(y == 0.0, axis=1)
    assert np.all(kept | dropped)
    sigma = np.sqrt(p * (1 - p) / batch)
    assert abs(kept.mean() - p) < 4 * sigma, (kept.mean(), p)
    # The inverted scaling keeps the expectation: E[y] = x.
    assert abs(y.mean() - 1.0) < 4 * sigma / p


def test_batch_mode_drops_the_whole_batch_together():
    layer = StochasticDepth(0.5, mode="batch", seed=3)
    x = np.ones((64, 3), "float32")
    outcomes = []
    for _ in range(200):
        y = np.asarray(layer(x, training=True))
        assert np.all(y == 0.0) or np.allclose(y, 2.0)
        outcomes.append(bool(y[0, 0]))
    assert 0.35 < np.mean(outcomes) < 0.65


def test_gradients_are_zero_for_dropped_samples():
    p = 0.6
    layer = StochasticDepth(p, seed=7)
    x = tf.constant(np.random.default_rng(2).normal(size=(256, 3, 3, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y)
    grad = np.asarray(tape.gradient(loss, x)).reshape(256, -1)
    y = np.asarray(y).reshape(256, -1)
    dropped = np.all(y == 0.0, axis=1)
    assert 0 < dropped.sum() < 256
    np.testing.assert_array_equal(grad[dropped], 0.0)
    np.testing.assert_allclose(grad[~dropped], 1.0 / p, rtol=1e-6)


def test_survival_probability_one_is_the_identity_in_training():
    x = np.random.default_rng(3).normal(size=(16, 5)).astype("float32")
    np.testing.assert_array_equal(np.asarray(StochasticDepth(1.0)(x, training=True)), x)


def test_inference_graph_has_no_random_ops():
    layer = StochasticDepth(0.5)
    spec = tf.TensorSpec([None, 8, 8, 4], tf.float32)
    assert _random_ops(lambda x: layer(x, training=False), spec) == []
    # The check does see the random op of the training graph.
    assert _random_ops(lambda x: layer(x, training=True), spec)


def test_inference_model_graph_has_no_random_ops():
    inputs = keras.Input((8, 8, 4))
    branch = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Add()([inputs, StochasticDepth(0.5)(branch)])
    model = keras.Model(inputs, outputs)
    assert _random_ops(lambda x: model(x, training=False), tf.TensorSpec([1, 8, 8, 4], tf.float32)) == []


def test_get_config_round_trip():
    layer = StochasticDepth(0.7, mode="batch", seed=5, name="block_drop_path")
    clone = StochasticDepth.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.survival_probability, clone.mode, clone.seed) == (0.7, "batch", 5)
    assert keras.utils.get_registered_object("keras_zoo>StochasticDepth") is StochasticDepth


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((4, 4, 2))
    y = keras.layers.Add()([inputs, StochasticDepth(0.5, name="drop")(keras.layers.Conv2D(2, 1)(inputs))])
    y = ZeroPadChannels(3, name="pad")(y)
    model = keras.Model(inputs, y)
    x = np.random.default_rng(4).normal(size=(2, 4, 4, 2)).astype("float32")
    path = str(tmp_path / "drop.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert loaded.get_layer("drop").survival_probability == 0.5


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, True, "0.5"])
def test_invalid_survival_probability_is_rejected(bad):
    with pytest.raises(ValueError, match=r"survival_probability.*Received"):
        StochasticDepth(bad)


def test_invalid_mode_is_rejected():
    with pytest.raises(ValueError, match="mode.*Received: mode='row'"):
        StochasticDepth(0.5, mode="row")


def test_linear_survival_schedule_matches_the_paper_formula():
    L, p_final = 54, 0.5
    expected = np.array([1 - (l / L) * (1 - p_final) for l in range(1, L + 1)])
    np.testing.assert_allclose(linear_survival_probabilities(L, p_final), expected, atol=1e-12)
    assert linear_survival_probabilities(L, p_final)[-1] == pytest.approx(0.5)
    assert linear_survival_probabilities(4, 1.0) == [1.0] * 4
    with pytest.raises(ValueError, match="num_blocks"):
        linear_survival_probabilities(0)


def test_zero_pad_channels_matches_numpy():
    x = np.random.default_rng(5).normal(size=(2, 3, 3, 4)).astype("float32")
    y = np.asarray(ZeroPadChannels(5)(x))
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (0, 0), (0, 0), (0, 5)]))
