"""Eve: Adam with feedback from the objective (Koushik & Hayashi, 2016,
"Improving Stochastic Gradient Descent with Feedback", arXiv:1611.01505v1, Algorithm 1).

Eve divides Adam's step by d_t, a running average of the relative change of a
clipped, smoothed objective f̂. With f = f(θ_{t-1}) the loss at the current
parameters and t counted from 1::

    m_t, v_t, m̂_t, v̂_t                              as in Adam
    t = 1:  f̂_0 = f,  d_1 = 1
    t > 1:  (δ, Δ) = (k + 1, K + 1)          if f >= f̂_{t-2}
            (δ, Δ) = (1/(K + 1), 1/(k + 1))  otherwise
            c_t = min(max(δ, f / f̂_{t-2}), Δ)
            f̂_{t-1} = c_t f̂_{t-2}
            r_t = |f̂_{t-1} - f̂_{t-2}| / min(f̂_{t-1}, f̂_{t-2})
            d_t = β3 d_{t-1} + (1 - β3) r_t
    θ_t = θ_{t-1} - α m̂_t / (d_t √v̂_t + ε)

The loss must be positive (v1 assumes f > 0). d_t depends on ratios of f only,
so a constant factor on the loss (e.g. the 1/replicas of distributed losses)
does not change the update.

How the loss reaches the optimizer: ``Eve.set_loss(loss)`` stores it in a
non-trainable variable read by the next ``apply_gradients``. Keras' own
``Model.fit`` needs nothing more: Eve records the loss from the hook each
runtime's default ``train_step`` calls with the current batch loss
(``scale_loss`` in Keras 3, ``minimize`` in tf_keras). A custom ``train_step``
or training loop calls ``optimizer.set_loss(loss)`` before
``optimizer.apply_gradients(...)``, with the loss whose gradients are applied.
If no positive loss arrives, the update stops with an InvalidArgumentError
naming ``set_loss`` (outside XLA-compiled steps).

Keras 3's and tf_keras' optimizer base classes differ (``update_step``
signature, variable creation), so ``Eve`` is one class per runtime behind one
name, sharing ``eve_feedback`` and ``eve_parameter_update``.
"""
import tensorflow as tf

from keras_zoo.backend import IS_LEGACY_KERAS, keras, serializable

_NO_LOSS = ("Eve needs the current loss: call optimizer.set_loss(loss) before apply_gradients "
            "(Model.fit does this for you), and the loss must be positive.")


def eve_feedback(loss, smoothed_loss, feedback, step, small_k=0.1, big_k=10.0, beta_3=0.999):
    """One feedback update of Algorithm 1.

    Args:
        loss: f(θ_{t-1}), a positive scalar.
        smoothed_loss: f̂_{t-2} (ignored at t = 1).
        feedback: d_{t-1}.
        step: t, counted from 1.
        small_k, big_k, beta_3: k, K and β3 of the paper.

    Returns:
        ``(d_t, f̂_{t-1})``.
    """
    loss = tf.cast(loss, tf.float32)
    increased = loss >= smoothed_loss
    lower = tf.where(increased, 1.0 + small_k, 1.0 / (1.0 + big_k))
    upper = tf.where(increased, 1.0 + big_k, 1.0 / (1.0 + small_k))
    clipped_ratio = tf.minimum(tf.maximum(lower, loss / smoothed_loss), upper)
    new_smoothed = clipped_ratio * smoothed_loss
    relative_change = tf.abs(new_smoothed - smoothed_loss) / tf.minimum(new_smoothed, smoothed_loss)
    new_feedback = beta_3 * feedback + (1.0 - beta_3) * relative_change
    first = step <= 1
    return tf.where(first, 1.0, new_feedback), tf.where(first, loss, new_smoothed)


def eve_parameter_update(gradient, m, v, feedback, learning_rate, step, beta_1, beta_2, epsilon):
    """Adam's moments and the Eve step: returns ``(new_m, new_v, delta)``, θ_t = θ_{t-1} - delta."""
    dtype = gradient.dtype
    step = tf.cast(step, dtype)
    new_m = beta_1 * m + (1.0 - beta_1) * gradient
    new_v = beta_2 * v + (1.0 - beta_2) * tf.square(gradient)
    m_hat = new_m / (1.0 - tf.pow(tf.cast(beta_1, dtype), step))
    v_hat = new_v / (1.0 - tf.pow(tf.cast(beta_2, dtype), step))
    delta = tf.cast(learning_rate, dtype) * m_hat / (tf.cast(feedback, dtype) * tf.sqrt(v_hat) + epsilon)
    return new_m, new_v, delta


class _EveState:
    """The scalar state and hyperparameters both runtimes share."""

    def _init_eve(self, beta_1, beta_2, beta_3, small_k, big_k, epsilon):
        if not 0.0 < small_k < big_k:
            raise ValueError(f"Eve needs 0 < small_k < big_k (paper: k=0.1, K=10). "
                             f"Received: small_k={small_k}, big_k={big_k}")
        for arg, value in dict(beta_1=beta_1, beta_2=beta_2, beta_3=beta_3).items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{arg}` must be in [0, 1). Received: {arg}={value}")
        self.beta_1, self.beta_2, self.beta_3 = beta_1, beta_2, beta_3
        self.small_k, self.big_k, self.epsilon = small_k, big_k, epsilon

    def set_loss(self, loss):
        """Feeds f(θ_{t-1}), the loss of the batch whose gradients are applied next."""
        self.eve_loss.assign(tf.cast(tf.reduce_mean(loss), tf.float32))

    def _update_feedback(self):
        tf.debugging.assert_positive(self.eve_loss, message=_NO_LOSS)
        feedback, smoothed = eve_feedback(self.eve_loss, self.eve_smoothed_loss, self.eve_feedback,
                                          self.iterations + 1, self.small_k, self.big_k, self.beta_3)
        self.eve_feedback.assign(feedback)
        self.eve_smoothed_loss.assign(smoothed)

    def _eve_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "beta_3": self.beta_3,
                "small_k": self.small_k, "big_k": self.big_k, "epsilon": self.epsilon}


if IS_LEGACY_KERAS:

    class Eve(_EveState, keras.optimizers.Optimizer):
        """Eve (arXiv:1611.01505v1) for tf_keras; see the module docstring.

        Args:
            learning_rate: α (float or schedule).
            beta_1, beta_2: Adam's moment decays.
            beta_3: decay of the feedback average d_t.
            small_k, big_k: clipping thresholds k and K of the objective ratio.
            epsilon: ε.
        """

        def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, beta_3=0.999, small_k=0.1,
                     big_k=10.0, epsilon=1e-8, name="Eve", **kwargs):
            super().__init__(name=name, **kwargs)
            self._learning_rate = self._build_learning_rate(learning_rate)
            self._init_eve(beta_1, beta_2, beta_3, small_k, big_k, epsilon)
            with tf.init_scope():
                self.eve_loss = tf.Variable(0.0, name="eve_loss", trainable=False,
                                            aggregation=tf.VariableAggregation.MEAN)
                self.eve_feedback = tf.Variable(1.0, name="eve_feedback", trainable=False,
                                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                self.eve_smoothed_loss = tf.Variable(1.0, name="eve_smoothed_loss", trainable=False,
                                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self._variables.extend([self.eve_loss, self.eve_feedback, self.eve_smoothed_loss])

        def build(self, var_list):
            super().build(var_list)
            if getattr(self, "_built", False):
                return
            self._built = True
            self._momentums = [self.add_variable_from_reference(v, "m") for v in var_list]
            self._velocities = [self.add_variable_from_reference(v, "v") for v in var_list]

        def minimize(self, loss, var_list, tape=None):
            self.set_loss(loss() if callable(loss) else loss)
            return super().minimize(loss, var_list, tape=tape)

        def apply_gradients(self, grads_and_vars, name=None, skip_gradients_aggregation=False, **kwargs):
            self._update_feedback()
            return super().apply_gradients(grads_and_vars, name=name,
                                           skip_gradients_aggregation=skip_gradients_aggregation, **kwargs)

        def update_step(self, gradient, variable):
            index = self._index_dict[self._var_key(variable)]
            m, v = self._momentums[index], self._velocities[index]
            new_m, new_v, delta = eve_parameter_update(
                tf.convert_to_tensor(gradient), m, v, self.eve_feedback, self.learning_rate,
                self.iterations + 1, self.beta_1, self.beta_2, self.epsilon)
            m.assign(new_m)
            v.assign(new_v)
            variable.assign_sub(delta)

        def get_config(self):
            return {**super().get_config(), **self._eve_config(),
                    "learning_rate": self._serialize_hyperparameter(self._learning_rate)}

else:

    class Eve(_EveState, keras.optimizers.Optimizer):
        """Eve (arXiv:1611.01505v1) for Keras 3; see the module docstring.

        Args:
            learning_rate: α (float or schedule).
            beta_1, beta_2: Adam's moment decays.
            beta_3: decay of the feedback average d_t.
            small_k, big_k: clipping thresholds k and K of the objective ratio.
            epsilon: ε.
        """

        def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, beta_3=0.999, small_k=0.1,
                     big_k=10.0, epsilon=1e-8, name="eve", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self._init_eve(beta_1, beta_2, beta_3, small_k, big_k, epsilon)
            self.eve_loss = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                              aggregation="mean", name="eve_loss")
            self.eve_feedback = self.add_variable(shape=(), initializer="ones", dtype="float32",
                                                  aggregation="only_first_replica", name="eve_feedback")
            self.eve_smoothed_loss = self.add_variable(shape=(), initializer="ones", dtype="float32",
                                                       aggregation="only_first_replica",
                                                       name="eve_smoothed_loss")

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["m", "v"])

        def scale_loss(self, loss):
            self.set_loss(loss)
            return super().scale_loss(loss)

        def apply(self, grads, trainable_variables=None):
            if len(grads):
                self._update_feedback()
            return super().apply(grads, trainable_variables)

        def update_step(self, gradient, variable, learning_rate):
            index = self._get_variable_index(variable)
            m, v = self._momentums[index], self._velocities[index]
            new_m, new_v, delta = eve_parameter_update(
                tf.convert_to_tensor(gradient), m, v, self.eve_feedback, learning_rate,
                self.iterations + 1, self.beta_1, self.beta_2, self.epsilon)
            self.assign(m, new_m)
            self.assign(v, new_v)
            self.assign_sub(variable, delta)

        def get_config(self):
            return {**super().get_config(), **self._eve_config()}


Eve = serializable(Eve)
