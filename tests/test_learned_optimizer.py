"""Learning to learn (arXiv:1606.04474): preprocessing and the LSTM step against NumPy, meta-training, fit()."""
import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.optimizers import learned
from keras_zoo.optimizers.learned import LearnedOptimizer

pytestmark = pytest.mark.both


def numpy_preprocess(grad, p=10.0):
    """Appendix A, one coordinate at a time."""
    out = np.zeros(grad.shape + (2,))
    for index, g in np.ndenumerate(grad):
        if abs(g) >= np.exp(-p):
            out[index] = (np.log(abs(g)) / p, np.sign(g))
        else:
            out[index] = (-1.0, np.exp(p) * g)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyLSTMOptimizer:
    """The coordinate-wise 2-layer LSTM optimizer, one coordinate at a time."""

    def __init__(self, weights, size, units=20):
        self.w = {k: v.astype("float64") for k, v in weights.items()}
        self.state = [[(np.zeros(units), np.zeros(units)) for _ in range(2)] for _ in range(size)]

    def step(self, theta, grad):
        theta = theta.copy()
        for n, g in enumerate(grad):
            x = numpy_preprocess(np.array(g))
            for k in range(2):
                h, c = self.state[n][k]
                i, f, gate, o = np.split(np.concatenate([x, h]) @ self.w[f"lstm{k}_kernel"] + self.w[f"lstm{k}_bias"], 4)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gate)
                h = _sigmoid(o) * np.tanh(c)
                self.state[n][k] = (h, c)
                x = h
            theta[n] += 0.1 * (x @ self.w["output_kernel"] + self.w["output_bias"])[0]
        return theta


def test_preprocessing_matches_numpy():
    grad = np.array([[3.0, -0.2, 1e-3, -4e-5], [1e-5, -1e-6, 0.0, 2e-9]])
    np.testing.assert_allclose(learned.preprocess_gradients(tf.constant(grad)).numpy(), numpy_preprocess(grad),
                               rtol=1e-6, atol=1e-7)
    # Both branches are used: e^-10 ≈ 4.5e-5 is the threshold.
    assert numpy_preprocess(grad)[0, 2, 0] == pytest.approx(np.log(1e-3) / 10)
    assert tuple(numpy_preprocess(grad)[0, 3]) == pytest.approx((-1.0, -4e-5 * np.exp(10)))


def test_keras_update_matches_numpy_transcription():
    weights = learned.initial_weights(seed=3)
    weights["output_kernel"] = weights["output_kernel"] * 20.0  # larger steps than the initial net takes
    weights["output_bias"] = np.array([0.05], "float32")
    theta0 = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]])
    variable = tf.Variable(theta0.astype("float32"))
    optimizer = LearnedOptimizer(weights=weights)
    reference, theta = NumpyLSTMOptimizer(weights, 6), theta0.reshape(-1)
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-3, 1e-6, 10.0):
        grad = (rng.standard_normal((2, 3)) * scale).astype("float32")
        optimizer.apply_gradients([(tf.constant(grad), variable)])
        theta = reference.step(theta, grad.reshape(-1).astype("float64"))
        np.testing.assert_allclose(variable.numpy().reshape(-1), theta, rtol=1e-5, atol=1e-5)
    assert not np.allclose(theta, theta0.reshape(-1))


@pytest.fixture(scope="module")
def meta_trained(tmp_path_factory):
    """A net meta-trained for a few iterations on small quadratic batches.

    With one unroll per problem, each iteration's meta-loss is measured on a freshly
    drawn problem before φ's update, so the history is a held-out curve.
    """
    problems = learned.QuadraticProblems(dim=10, batch=16)
    net = learned.LSTMOptimizerNet(seed=0)
    history = learned.meta_train(net, problems, iterations=16, unroll=10, optimizee_steps=10,
                                 meta_learning_rate=1e-2, seed=0)
    path = str(tmp_path_factory.mktemp("learned") / "quadratic.npz")
    net.save(path)
    return {"history": history, "path": path}


def test_meta_training_reduces_the_meta_loss_on_quadratics(meta_trained):
    history = meta_trained["history"]
    assert np.mean(history[-4:]) < 0.7 * np.mean(history[:4])


def test_fit_with_the_learned_optimizer_reduces_the_loss(meta_trained):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x @ rng.standard_normal((4, 2)) + 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=LearnedOptimizer(weights=meta_trained["path"]), loss="mse")
    losses = model.fit(x, y, batch_size=64, epochs=10, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_config_round_trip_and_clear_errors(meta_trained, tmp_path):
    optimizer = LearnedOptimizer(weights=meta_trained["path"], learning_rate=0.5)
    clone = LearnedOptimizer.from_config(optimizer.get_config())
    assert clone.weights_source == meta_trained["path"]
    for a, b in zip(optimizer.learned_weights, clone.learned_weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="needs trained weights"):
        LearnedOptimizer()
    np.savez(tmp_path / "bad.npz", lstm0_kernel=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="need exactly"):
        LearnedOptimizer(weights=str(tmp_path / "bad.npz"))


def test_training_loop_factory_trains_with_a_saved_optimizer(meta_trained):
    from training import optimizers

    optimizer = optimizers.create_optimizer(f"learned:{meta_trained['path']}", 1.0)
    assert isinstance(optimizer, LearnedOptimizer) and optimizers.optimizer_params(
        f"learned:{meta_trained['path']}") == []
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3)).astype("float32")
    y = (x @ rng.standard_normal((3, 1)) - 1.0).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    losses = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and np.all(np.diff(losses) < 0), losses


def test_train_and_evaluate_runs_with_learned_path(meta_trained, tmp_path):
    from training.loop import train_and_evaluate

    config = dict(model="qrnn_lm_char", dataset="docstrings_char", tiny=True, epochs=2, steps_per_epoch=3,
                  validation_steps=1, batch_size=8, learning_rate=1.0, optimizer=f"learned:{meta_trained['path']}",
                  verbose=0)
    result = train_and_evaluate(config, str(tmp_path / "run"))
    losses = result["history"]["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.parametrize("content, message", [
    (None, "No learned-optimizer weights at .*tools/learned_optimizer_report.py"),
    (b"not a zip archive at all", "Cannot read learned-optimizer weights .*LSTMOptimizerNet.save"),
    ("wrong_arrays", "need exactly"),
])
def test_bad_learned_path_is_rejected_before_training(tmp_path, content, message):
    from training.loop import train_and_evaluate

    path = tmp_path / "weights.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "wrong_arrays":
        np.savez(path, lstm0_kernel=np.zeros((22, 80)))
    config = dict(model="qrnn_lm_char", dataset="docstrings_char", tiny=True, epochs=1, steps_per_epoch=1,
                  optimizer=f"learned:{path}", verbose=0)
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
