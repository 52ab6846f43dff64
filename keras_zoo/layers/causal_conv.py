"""Dilated causal 1D convolutions and their single-step, queue-carrying twin.

WaveNet (van den Oord et al., 2016, arXiv:1609.03499, Sec. 2.1) stacks causal
convolutions: output t sees inputs t, t - d, ..., t - (k - 1) d only. Fast
WaveNet generation (Paine et al., 2016, arXiv:1611.09482) runs the same weights
one step at a time, with a queue per layer holding the ``(k - 1) d`` most recent
inputs of that layer, so a new sample costs O(layers) instead of O(receptive field).
``CausalConv1D`` and ``CausalConv1DStep`` share weight names and shapes, so
``step.set_weights(conv.get_weights())`` moves a trained layer to the step graph.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable


def _check(filters, kernel_size, dilation_rate):
    for key, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation_rate", dilation_rate)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")


class _CausalKernel(keras.layers.Layer):
    def __init__(self, filters, kernel_size=2, dilation_rate=1, use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        _check(filters, kernel_size, dilation_rate)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def queue_length(self):
        """Past inputs the layer needs besides the current one: ``(k - 1) * d``."""
        return (self.kernel_size - 1) * self.dilation_rate

    def _build_weights(self, in_channels):
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, in_channels, self.filters),
                                      initializer=self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@serializable
class CausalConv1D(_CausalKernel):
    """``y_t = b + sum_k W_k x_{t - (K - 1 - k) d}``, zero inputs before t = 0 (arXiv:1609.03499, Fig. 3).

    Args:
        filters: output channels.
        kernel_size: taps ``K`` (2 in WaveNet).
        dilation_rate: ``d``.
        use_bias, kernel_initializer: as in ``keras.layers.Conv1D``.

    Input ``(B, T, C_in)``, output ``(B, T, filters)``.
    """

    def build(self, input_shape):
        self._build_weights(int(input_shape[-1]))
        super().build(input_shape)

    def call(self, inputs):
        padded = tf.pad(inputs, [[0, 0], [self.queue_length, 0], [0, 0]])
        outputs = tf.nn.convolution(padded, self.kernel, padding="VALID", dilations=self.dilation_rate)
        return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)


@serializable
class CausalConv1DStep(_CausalKernel):
    """One time step of ``CausalConv1D`` with an explicit input queue (arXiv:1611.09482, Alg. 1).

    Called on ``[x_t, queue]`` with ``x_t`` of shape ``(B, 1, C_in)`` and ``queue``
    ``(B, (K - 1) d, C_in)`` holding the layer's previous inputs, oldest first (zeros
    at the start, matching ``CausalConv1D``'s zero padding). Returns
    ``[y_t (B, 1, filters), new_queue]`` where ``new_queue`` drops the oldest input
    and appends ``x_t``. Only strided slices, a concatenation and a matrix product:
    builtin TFLite ops.
    """

    def build(self, input_shape):
        self._build_weights(int(input_shape[0][-1]))
        super().build(input_shape)

    def call(self, inputs):
        current, queue = inputs
        window = tf.concat([queue, current], axis=1)
        taps = window[:, :: self.dilation_rate]
        in_channels = self.kernel.shape[1]
        flat = tf.reshape(taps, [-1, self.kernel_size * in_channels])
        outputs = tf.matmul(flat, tf.reshape(self.kernel, [self.kernel_size * in_channels, self.filters]))
        if self.use_bias:
            outputs = outputs + self.bias
        return [tf.reshape(outputs, [-1, 1, self.filters]), window[:, 1:]]

    def compute_output_shape(self, input_shape):
        current, queue = input_shape
        return [(current[0], 1, self.filters), tuple(queue)]


@serializable
class OneHot(keras.layers.Layer):
    """Integer ids ``(B, T)`` to one-hot float vectors ``(B, T, depth)`` (TFLite ONE_HOT).

    WaveNet's input: the causal stack starts on one-hot mu-law samples (arXiv:1609.03499, Sec. 2.2).
    """

    def __init__(self, depth, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth

    def call(self, inputs):
        return tf.one_hot(tf.cast(inputs, tf.int32), self.depth, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}
