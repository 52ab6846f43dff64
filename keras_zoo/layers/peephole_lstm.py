"""LSTM cell with peephole connections (Gers & Schmidhuber, 2000, IJCNN "Recurrent nets
that time and count"; equations as written by Graves, 2013, arXiv:1308.0850, eq. 7-11).

Keras ships no peephole LSTM (tf.contrib's ``use_peepholes`` went with TF 1). The
gates see the cell state through diagonal ("peephole") weights::

    i_t = sigmoid(W_xi x_t + W_hi h_{t-1} + w_ci * c_{t-1} + b_i)
    f_t = sigmoid(W_xf x_t + W_hf h_{t-1} + w_cf * c_{t-1} + b_f)
    c_t = f_t * c_{t-1} + i_t * tanh(W_xc x_t + W_hc h_{t-1} + b_c)
    o_t = sigmoid(W_xo x_t + W_ho h_{t-1} + w_co * c_t + b_o)
    h_t = o_t * tanh(c_t)

The output gate peeks at the *new* cell state c_t, the input and forget gates at
c_{t-1}. Kernels are stored gate-major in the order (i, f, c, o), like Keras' LSTM.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable


@serializable
class PeepholeLSTMCell(keras.layers.Layer):
    """One step of a peephole LSTM, for ``keras.layers.RNN(PeepholeLSTMCell(units))``.

    Args:
        units: size of the hidden and cell states.
        unit_forget_bias: initialise the forget-gate bias to 1 (Gers et al., 2000).
        kernel_initializer, recurrent_initializer, peephole_initializer:
            initializers of the input, recurrent and diagonal peephole weights.
    """

    def __init__(self, units, unit_forget_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", peephole_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        self.units = int(units)
        self.unit_forget_bias = unit_forget_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(input_dim, 4 * self.units), initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, 4 * self.units),
            initializer=self.recurrent_initializer)
        # Rows: input, forget and output gate peepholes (diagonal weights w_ci, w_cf, w_co).
        self.peephole_kernel = self.add_weight(
            name="peephole_kernel", shape=(3, self.units), initializer=self.peephole_initializer)
        units = self.units

        def bias_initializer(shape, dtype=None):
            bias = tf.zeros(shape, dtype=dtype or "float32")
            if not self.unit_forget_bias:
                return bias
            return tf.concat([bias[:units], tf.ones_like(bias[units:2 * units]), bias[2 * units:]], 0)

        self.bias = self.add_weight(name="bias", shape=(4 * self.units,), initializer=bias_initializer)
        self.built = True

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        z = tf.matmul(inputs, self.kernel) + tf.matmul(h_prev, self.recurrent_kernel) + self.bias
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        i = tf.sigmoid(z_i + self.peephole_kernel[0] * c_prev)
        f = tf.sigmoid(z_f + self.peephole_kernel[1] * c_prev)
        c = f * c_prev + i * tf.tanh(z_c)
        o = tf.sigmoid(z_o + self.peephole_kernel[2] * c)
        h = o * tf.tanh(c)
        return h, [h, c]

    def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
        if batch_size is None:
            batch_size = tf.shape(inputs)[0]
        zeros = tf.zeros((batch_size, self.units), dtype=dtype or self.compute_dtype)
        return [zeros, zeros]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "peephole_initializer": keras.initializers.serialize(self.peephole_initializer),
        }
