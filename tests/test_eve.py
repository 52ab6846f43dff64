"""Eve (arXiv:1611.01505v1, Algorithm 1) step by step against a NumPy transcription."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.optimizers import Eve

pytestmark = pytest.mark.both

HYPER = dict(learning_rate=0.1, beta_1=0.9, beta_2=0.999, beta_3=0.999, small_k=0.1, big_k=10.0, epsilon=1e-8)


class NumpyEve:
    """Algorithm 1 as printed, one scalar branch at a time."""

    def __init__(self, learning_rate, beta_1, beta_2, beta_3, small_k, big_k, epsilon):
        self.a, self.b1, self.b2, self.b3 = learning_rate, beta_1, beta_2, beta_3
        self.k, self.K, self.eps = small_k, big_k, epsilon
        self.t, self.d, self.f_hat, self.m, self.v = 0, 1.0, None, 0.0, 0.0

    def step(self, theta, grad, f):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad ** 2
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        if self.t > 1:
            if f >= self.f_hat:
                delta, big_delta = self.k + 1, self.K + 1
            else:
                delta, big_delta = 1 / (self.K + 1), 1 / (self.k + 1)
            c = min(max(delta, f / self.f_hat), big_delta)
            new_f_hat = c * self.f_hat
            r = abs(new_f_hat - self.f_hat) / min(new_f_hat, self.f_hat)
            self.d = self.b3 * self.d + (1 - self.b3) * r
            self.f_hat = new_f_hat
        else:
            self.f_hat, self.d = f, 1.0
        return theta - self.a * m_hat / (self.d * np.sqrt(v_hat) + self.eps)


def _quadratic(theta, scale, center):
    return 0.5 * np.sum(scale * (theta - center) ** 2) + 1.0, scale * (theta - center)


def test_custom_loop_matches_numpy_transcription():
    scale = np.array([1.0, 10.0, 0.5])
    center = np.array([1.0, -2.0, 0.5])
    theta0 = np.array([3.0, 1.0, -4.0])
    variable = tf.Variable(theta0.astype("float32"))
    optimizer = Eve(**HYPER)
    reference, theta = NumpyEve(**HYPER), theta0.copy()
    feedbacks = []
    for _ in range(12):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(scale.astype("float32") * tf.square(variable - center.astype("float32"))) + 1.0
        optimizer.set_loss(loss)
        optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
        f, grad = _quadratic(theta, scale, center)
        theta = reference.step(theta, grad, f)
        np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(optimizer.eve_feedback.numpy()), reference.d, rtol=1e-5)
        feedbacks.append(reference.d)
    # The trajectory exercises both branches: the loss falls, then overshoots and rises.
    assert len(set(np.round(feedbacks, 8))) > 5 and feedbacks[0] == 1.0


def test_feedback_clips_the_objective_ratio():
    # A 1000x jump is clipped to K + 1 = 11; a 1000x drop to 1 / (K + 1).
    d, f_hat = eve_values(loss=1000.0, smoothed=1.0)
    assert f_hat == pytest.approx(11.0) and d == pytest.approx(0.999 + 0.001 * 10.0)
    d, f_hat = eve_values(loss=0.001, smoothed=1.0)
    assert f_hat == pytest.approx(1 / 11) and d == pytest.approx(0.999 + 0.001 * 10.0)
    # Changes below k = 10% are raised to 10%.
    d, f_hat = eve_values(loss=1.01, smoothed=1.0)
    assert f_hat == pytest.approx(1.1) and d == pytest.approx(0.999 + 0.001 * 0.1)


def eve_values(loss, smoothed):
    from keras_zoo.optimizers import eve_feedback

    d, f_hat = eve_feedback(tf.constant(loss), tf.constant(smoothed), tf.constant(1.0), tf.constant(2, tf.int64))
    return float(d), float(f_hat)


def test_model_fit_feeds_the_loss_without_a_custom_train_step():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 3.0).astype("float32")
    kernel0 = rng.standard_normal((3, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="dense")])
    model.get_layer("dense").set_weights([kernel0, np.zeros(1, "float32")])
    model.compile(optimizer=Eve(**HYPER), loss="mse")
    model.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0)

    reference_w, reference_b = NumpyEve(**HYPER), NumpyEve(**HYPER)
    w, b = kernel0.astype("float64"), np.zeros(1)
    for _ in range(6):
        error = x @ w + b - y
        loss = np.mean(error ** 2)
        grad_w, grad_b = 2 * x.T @ error / len(x), 2 * error.mean(0)
        w, b = reference_w.step(w, grad_w, loss), reference_b.step(b, grad_b, loss)
    kernel, bias = model.get_layer("dense").get_weights()
    np.testing.assert_allclose(kernel, w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bias, b, rtol=1e-4, atol=1e-4)
    assert float(model.optimizer.eve_feedback.numpy()) == pytest.approx(reference_w.d, rel=1e-4)


def test_missing_loss_is_a_clear_error():
    variable = tf.Variable([1.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="set_loss"):
        Eve().apply_gradients([(tf.constant([1.0]), variable)])


def test_config_round_trip_and_bad_thresholds():
    optimizer = Eve(learning_rate=0.01, beta_3=0.99, small_k=0.2, big_k=5.0)
    clone = Eve.from_config(optimizer.get_config())
    assert (clone.beta_3, clone.small_k, clone.big_k) == (0.99, 0.2, 5.0)
    assert float(clone.learning_rate.numpy() if hasattr(clone.learning_rate, "numpy") else clone.learning_rate) \
        == pytest.approx(0.01)
    with pytest.raises(ValueError, match="small_k < big_k"):
        Eve(small_k=10.0, big_k=0.1)
