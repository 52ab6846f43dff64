"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al., 2016,
arXiv:1606.04474): a coordinate-wise LSTM optimizer, its meta-training, and a Keras
optimizer that applies a trained one.

The optimizer m (Sec. 2.1, 3.1) is a 2-layer LSTM with 20 units shared by every
coordinate: each coordinate keeps its own LSTM state and receives its gradient
preprocessed as in Appendix A (p = 10)::

    (log|∇| / p, sign(∇))   if |∇| >= e^-p
    (-1, e^p ∇)             otherwise

The LSTM's top state goes through a linear layer whose output, times 0.1 (the
paper's output scaling), is the update: θ_{t+1} = θ_t + g_t.

Meta-training (Sec. 2, 3) minimises L(φ) = Σ_t f(θ_t) over truncated unrolls of 20
steps with Adam; the gradients of the optimizee are treated as constants
(∂²f/∂θ² dropped, as in the paper's Fig. 2). Problems: 10-dimensional quadratics
f(θ) = ‖Wθ - y‖² with W, y standard normal (Sec. 3.1) and an MLP (one hidden layer
of 20 sigmoid units) on minibatches of 128 of the embedded digits (the paper
uses MNIST, Sec. 3.2).

Trained weights are saved as ``.npz`` (``LSTMOptimizerNet.save``) and loaded by
``LearnedOptimizer(weights=path)`` (the training loop's ``--optimizer=learned:PATH``;
``load_weights`` checks a file), which keeps them and each coordinate's LSTM
state as optimizer variables. Keras 3's and tf_keras' optimizer base classes
differ, so ``LearnedOptimizer`` is one class per runtime behind one name (as Eve).
"""
import os
import zipfile

import numpy as np
import tensorflow as tf

from keras_zoo.backend import IS_LEGACY_KERAS, keras, serializable

UNITS = 20
PREPROCESSING_P = 10.0
OUTPUT_SCALE = 0.1
WEIGHT_NAMES = ("lstm0_kernel", "lstm0_bias", "lstm1_kernel", "lstm1_bias", "output_kernel", "output_bias")


def preprocess_gradients(grad, p=PREPROCESSING_P):
    """Appendix A: (..., ) gradients -> (..., 2) LSTM inputs."""
    grad = tf.convert_to_tensor(grad)
    magnitude = tf.abs(grad)
    large = magnitude >= tf.exp(tf.constant(-p, grad.dtype))
    # log of 1 where the branch is not taken keeps the unused branch finite (and its gradient zero).
    log_part = tf.math.log(tf.where(large, magnitude, tf.ones_like(magnitude))) / p
    first = tf.where(large, log_part, -tf.ones_like(grad))
    second = tf.where(large, tf.sign(grad), tf.exp(tf.constant(p, grad.dtype)) * grad)
    return tf.stack([first, second], axis=-1)


def weight_shapes(units=UNITS, lstm_layers=2):
    shapes = {}
    inputs = 2
    for k in range(lstm_layers):
        shapes[f"lstm{k}_kernel"] = (inputs + units, 4 * units)
        shapes[f"lstm{k}_bias"] = (4 * units,)
        inputs = units
    shapes["output_kernel"] = (units, 1)
    shapes["output_bias"] = (1,)
    return shapes


def initial_weights(seed=0, units=UNITS):
    """Uniform(±1/√fan_in) kernels, forget-gate bias 1, a small output layer (our choice: not in the paper)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(units).items():
        if name.endswith("_bias"):
            value = np.zeros(shape, "float32")
            if name.startswith("lstm"):
                value[units:2 * units] = 1.0
        else:
            limit = 1.0 / np.sqrt(shape[0]) * (0.1 if name == "output_kernel" else 1.0)
            value = rng.uniform(-limit, limit, shape).astype("float32")
        weights[name] = value
    return weights


def zero_state(num_coordinates, units=UNITS, lstm_layers=2, dtype=tf.float32):
    """(h, c) per LSTM layer, each (num_coordinates, units)."""
    zeros = tf.zeros((num_coordinates, units), dtype)
    return tuple((zeros, zeros) for _ in range(lstm_layers))


def lstm_optimizer_step(weights, grad, state, p=PREPROCESSING_P, output_scale=OUTPUT_SCALE):
    """m(∇; φ): the update of every coordinate of a flat gradient and the new LSTM state.

    Args:
        weights: ``{name: tensor}`` of ``WEIGHT_NAMES``.
        grad: (n,) gradient.
        state: ``((h, c), (h, c))`` each (n, units).

    Returns:
        ``(update (n,), new_state)``; the caller applies θ + update.
    """
    x = preprocess_gradients(grad, p)
    new_state = []
    for k, (h, c) in enumerate(state):
        z = tf.matmul(tf.concat([x, h], axis=-1), weights[f"lstm{k}_kernel"]) + weights[f"lstm{k}_bias"]
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        new_state.append((h, c))
        x = h
    update = tf.matmul(x, weights["output_kernel"]) + weights["output_bias"]
    return output_scale * tf.squeeze(update, -1), tuple(new_state)


class LSTMOptimizerNet(tf.Module):
    """The trainable optimizer m with parameters φ (tf.Variables), for meta-training."""

    def __init__(self, weights=None, seed=0, name="lstm_optimizer"):
        super().__init__(name=name)
        weights = initial_weights(seed) if weights is None else _as_weight_dict(weights)
        self.weights = {k: tf.Variable(weights[k], name=k) for k in WEIGHT_NAMES}
        self.units = weights["output_kernel"].shape[0]

    @property
    def variables_list(self):
        return [self.weights[k] for k in WEIGHT_NAMES]

    def step(self, grad, state):
        return lstm_optimizer_step(self.weights, grad, state)

    def numpy_weights(self):
        return {k: v.numpy() for k, v in self.weights.items()}

    def save(self, path):
        """Writes the weights to an ``.npz`` file that ``LearnedOptimizer(weights=path)`` and
        ``--optimizer=learned:PATH`` load; returns its path (``.npz`` appended if missing, as NumPy does)."""
        path = os.fspath(path)
        path = path if path.endswith(".npz") else path + ".npz"
        np.savez(path, **self.numpy_weights())
        return path


_HOW_TO_SAVE = ("meta-train and save one with tools/learned_optimizer_report.py (writes quadratic.npz and "
                "mlp.npz) or LSTMOptimizerNet.save(path)")


def load_weights(path):
    """The trained weights ``{name: float32 array}`` of an ``.npz`` from ``LSTMOptimizerNet.save``.

    Raises:
        ValueError: the file is missing, not an ``.npz`` archive, or holds other arrays/shapes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No learned-optimizer weights at {path!r}; {_HOW_TO_SAVE}, and pass its path. "
                         f"Received: weights={path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive")
            weights = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot read learned-optimizer weights from {path!r} ({error}); the file is not an "
                         f".npz written by LSTMOptimizerNet.save: {_HOW_TO_SAVE}. Received: weights={path!r}") \
            from error
    return _as_weight_dict(weights)


def _as_weight_dict(weights):
    """Weights from an ``.npz`` path or a ``{name: array}`` dict, checked against the expected shapes."""
    if isinstance(weights, (str, os.PathLike)):
        return load_weights(weights)
    if not isinstance(weights, dict) or set(weights) != set(WEIGHT_NAMES):
        got = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise ValueError(f"Learned-optimizer weights need exactly {WEIGHT_NAMES}: {_HOW_TO_SAVE}. "
                         f"Received: {got}")
    weights = {k: np.asarray(v, "float32") for k, v in weights.items()}
    units = weights["output_kernel"].shape[0]
    expected = weight_shapes(units)
    bad = {k: weights[k].shape for k in WEIGHT_NAMES if weights[k].shape != expected[k]}
    if bad:
        raise ValueError(f"Learned-optimizer weight shapes must be {expected}. Received: {bad}")
    return weights


# ----------------------------------------------------------------------------- problems


class QuadraticProblems:
    """f(θ) = ‖Wθ - y‖² with W (d x d) and y (d) standard normal (Sec. 3.1), ``batch`` functions at once.

    The meta-loss is the sum of the functions' values (they are independent).
    """

    def __init__(self, dim=10, batch=128):
        self.dim, self.batch = dim, batch

    def sample(self, rng):
        return (tf.constant(rng.standard_normal((self.batch, self.dim, self.dim)), tf.float32),
                tf.constant(rng.standard_normal((self.batch, self.dim)), tf.float32))

    def initial_params(self, rng):
        return [tf.constant(rng.standard_normal((self.batch, self.dim)), tf.float32)]

    def step_data(self, problem, rng, steps):
        return [tf.zeros((steps,))]

    def loss(self, params, problem, data):
        (theta,), (w, y) = params, problem
        residual = tf.einsum("bij,bj->bi", w, theta) - y
        return tf.reduce_sum(tf.square(residual)) / self.batch


class MLPProblem:
    """An MLP (one hidden layer of 20 sigmoid units, Sec. 3.2) on minibatches of the digits training split."""

    def __init__(self, images, labels, hidden=20, batch_size=128, classes=10):
        self.images = np.asarray(images, "float32").reshape(len(images), -1)
        self.labels = np.asarray(labels, "int32")
        self.hidden, self.batch_size, self.classes = hidden, batch_size, classes

    def sample(self, rng):
        return ()

    def initial_params(self, rng):
        inputs = self.images.shape[1]
        # Uniform(±1/√fan_in) as Keras' (and Torch's) default-like initialisation; biases zero.
        return [tf.constant(rng.uniform(-1, 1, (inputs, self.hidden)) / np.sqrt(inputs), tf.float32),
                tf.zeros((self.hidden,)),
                tf.constant(rng.uniform(-1, 1, (self.hidden, self.classes)) / np.sqrt(self.hidden), tf.float32),
                tf.zeros((self.classes,))]

    def step_data(self, problem, rng, steps):
        index = rng.integers(0, len(self.labels), size=(steps, self.batch_size))
        return [tf.constant(self.images[index]), tf.constant(self.labels[index])]

    def loss(self, params, problem, data):
        w1, b1, w2, b2 = params
        images, labels = data
        logits = tf.matmul(tf.sigmoid(tf.matmul(images, w1) + b1), w2) + b2
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


def digits_mlp_problem(split="train", **kwargs):
    """MLPProblem on a split of the embedded digits (pixels scaled to [0, 1])."""
    from keras_zoo.data.digits import _stratified_split

    images, labels = _stratified_split()[split]
    return MLPProblem(images / 16.0, labels, **kwargs)


# ----------------------------------------------------------------------------- optimizing


def _flatten(tensors):
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat, like):
    sizes = [int(np.prod(t.shape)) for t in like]
    return [tf.reshape(part, t.shape) for part, t in zip(tf.split(flat, sizes), like)]


def _unroll(step_fn, problem_set, params, state, problem, data, steps):
    """``steps`` optimizer steps; returns (Σ_t f(θ_t) for t = 1..steps, params, state, losses)."""
    losses = []
    for t in range(steps):
        step_data = [d[t] for d in data]
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = problem_set.loss(params, problem, step_data)
        grads = [tf.stop_gradient(g) for g in tape.gradient(loss, params)]
        update, state = step_fn(_flatten(grads), state)
        params = [p + u for p, u in zip(params, _unflatten(update, params))]
        losses.append(problem_set.loss(params, problem, step_data))
    return tf.add_n(losses), params, state, tf.stack(losses)


def meta_train(net, problem_set, iterations, unroll=20, optimizee_steps=100, meta_learning_rate=1e-3, seed=0,
               on_iteration=None):
    """Meta-trains ``net`` on problems drawn from ``problem_set`` by truncated BPTT.

    Each iteration draws a problem and runs ``optimizee_steps`` optimizer steps in
    segments of ``unroll``; after each segment φ takes one Adam step on the segment's
    Σ_t f(θ_t) (Sec. 3: 100 steps, unrolls of 20).

    Returns:
        The mean segment meta-loss (Σ_t f(θ_t) / unroll) of every iteration.
    """
    if optimizee_steps % unroll:
        raise ValueError(f"optimizee_steps must be a multiple of unroll. Received: optimizee_steps="
                         f"{optimizee_steps}, unroll={unroll}")
    rng = np.random.default_rng(seed)
    optimizer = keras.optimizers.Adam(learning_rate=meta_learning_rate)
    variables = net.variables_list

    @tf.function(reduce_retracing=True)
    def segment(params, state, problem, data):
        with tf.GradientTape() as tape:
            meta_loss, params, state, _ = _unroll(net.step, problem_set, params, state, problem, data, unroll)
        grads = tape.gradient(meta_loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return meta_loss, [tf.stop_gradient(p) for p in params], tf.nest.map_structure(tf.stop_gradient, state)

    history = []
    for iteration in range(iterations):
        problem = problem_set.sample(rng)
        params = problem_set.initial_params(rng)
        state = zero_state(int(sum(np.prod(p.shape) for p in params)), net.units)
        total = 0.0
        for _ in range(optimizee_steps // unroll):
            meta_loss, params, state = segment(params, state, problem, problem_set.step_data(problem, rng, unroll))
            total += float(meta_loss)
        history.append(total / optimizee_steps)
        if on_iteration:
            on_iteration(iteration, history[-1])
    return history


def optimize(problem_set, steps, optimizer, seed=0):
    """Loss curve f(θ_t), t = 0..steps, of one problem drawn with ``seed``.

    ``optimizer`` is an ``LSTMOptimizerNet`` or a Keras optimizer (Adam, SGD, ...).
    """
    rng = np.random.default_rng(seed)
    problem = problem_set.sample(rng)
    params = problem_set.initial_params(rng)
    data = problem_set.step_data(problem, rng, steps)
    losses = [float(problem_set.loss(params, problem, [d[0] for d in data]))]
    if isinstance(optimizer, LSTMOptimizerNet):
        state = zero_state(int(sum(np.prod(p.shape) for p in params)), optimizer.units)
        learned_step = tf.function(lambda params, state, step_data: _unroll(
            optimizer.step, problem_set, params, state, problem, step_data, 1)[1:])
        for t in range(steps):
            params, state, step_losses = learned_step(params, state, [d[t:t + 1] for d in data])
            losses.append(float(step_losses[0]))
        return np.array(losses)
    variables = [tf.Variable(p) for p in params]

    @tf.function
    def keras_step(step_data):
        with tf.GradientTape() as tape:
            loss = problem_set.loss(variables, problem, step_data)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return problem_set.loss(variables, problem, step_data)

    for t in range(steps):
        losses.append(float(keras_step([d[t] for d in data])))
    return np.array(losses)


# ----------------------------------------------------------------------------- Keras optimizer


class _LearnedState:
    """What both runtimes share: the trained weights and the per-coordinate update."""

    def _init_learned(self, weights):
        if weights is None:
            raise ValueError("LearnedOptimizer needs trained weights: pass weights='path.npz' (written by "
                             "LSTMOptimizerNet.save after meta_train). Received: weights=None")
        self.weights_source = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
        self._initial_weights = _as_weight_dict(weights)
        self.units = self._initial_weights["output_kernel"].shape[0]

    def _learned_delta(self, gradient, variable_states, learning_rate):
        grad = tf.reshape(tf.cast(gradient, tf.float32), [-1])
        state = tuple((tf.reshape(h, [-1, self.units]), tf.reshape(c, [-1, self.units]))
                      for h, c in zip(variable_states[0::2], variable_states[1::2]))
        weights = {k: v for k, v in zip(WEIGHT_NAMES, self.learned_weights)}
        update, new_state = lstm_optimizer_step(weights, grad, state)
        flat_state = [s for pair in new_state for s in pair]
        return tf.cast(learning_rate, tf.float32) * update, flat_state

    def _learned_config(self):
        weights = self.weights_source or {k: v.tolist() for k, v in self._initial_weights.items()}
        return {"weights": weights}


_STATE_NAMES = ("h0", "c0", "h1", "c1")

if IS_LEGACY_KERAS:

    class LearnedOptimizer(_LearnedState, keras.optimizers.Optimizer):
        """A meta-trained LSTM optimizer (arXiv:1606.04474) for tf_keras; see the module docstring.

        Args:
            weights: path of an ``.npz`` from ``LSTMOptimizerNet.save``, or ``{name: array}``.
            learning_rate: multiplies the LSTM's update (1.0 applies it as trained).
        """

        def __init__(self, weights=None, learning_rate=1.0, name="LearnedOptimizer", **kwargs):
            super().__init__(name=name, **kwargs)
            self._learning_rate = self._build_learning_rate(learning_rate)
            self._init_learned(weights)
            with tf.init_scope():
                self.learned_weights = [tf.Variable(self._initial_weights[k], name=f"learned_{k}", trainable=False)
                                        for k in WEIGHT_NAMES]
            self._variables.extend(self.learned_weights)

        def build(self, var_list):
            super().build(var_list)
            if getattr(self, "_built", False):
                return
            self._built = True
            self._lstm_states = [[self.add_variable_from_reference(v, name, shape=(*v.shape, self.units))
                                  for name in _STATE_NAMES] for v in var_list]

        def update_step(self, gradient, variable):
            states = self._lstm_states[self._index_dict[self._var_key(variable)]]
            delta, new_states = self._learned_delta(tf.convert_to_tensor(gradient), states, self.learning_rate)
            for s, value in zip(states, new_states):
                s.assign(tf.reshape(value, s.shape))
            variable.assign_add(tf.cast(tf.reshape(delta, variable.shape), variable.dtype))

        def get_config(self):
            return {**super().get_config(), **self._learned_config(),
                    "learning_rate": self._serialize_hyperparameter(self._learning_rate)}

else:

    class LearnedOptimizer(_LearnedState, keras.optimizers.Optimizer):
        """A meta-trained LSTM optimizer (arXiv:1606.04474) for Keras 3; see the module docstring.

        Args:
            weights: path of an ``.npz`` from ``LSTMOptimizerNet.save``, or ``{name: array}``.
            learning_rate: multiplies the LSTM's update (1.0 applies it as trained).
        """

        def __init__(self, weights=None, learning_rate=1.0, name="learned_optimizer", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self._init_learned(weights)
            self.learned_weights = []
            for k in WEIGHT_NAMES:
                variable = self.add_variable(shape=self._initial_weights[k].shape, initializer="zeros",
                                             dtype="float32", name=f"learned_{k}")
                variable.assign(self._initial_weights[k])
                self.learned_weights.append(variable)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._lstm_states = [[self.add_variable(shape=(*v.shape, self.units), initializer="zeros",
                                                    dtype="float32", name=f"{v.name}_{name}")
                                  for name in _STATE_NAMES] for v in var_list]

        def update_step(self, gradient, variable, learning_rate):
            states = self._lstm_states[self._get_variable_index(variable)]
            delta, new_states = self._learned_delta(tf.convert_to_tensor(gradient), states, learning_rate)
            for s, value in zip(states, new_states):
                self.assign(s, tf.reshape(value, s.shape))
            self.assign_add(variable, tf.cast(tf.reshape(delta, variable.shape), variable.dtype))

        def get_config(self):
            return {**super().get_config(), **self._learned_config()}


LearnedOptimizer = serializable(LearnedOptimizer)
