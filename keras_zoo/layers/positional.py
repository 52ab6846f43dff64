"""Sinusoidal position encodings (Vaswani et al., 2017, arXiv:1706.03762, section 3.5).

``PE(pos, 2i) = sin(pos / 10000^(2i / d))`` and ``PE(pos, 2i + 1) = cos(pos / 10000^(2i / d))``:
sines in the even channels, cosines in the odd ones, as the paper writes them.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable


def sinusoidal_encoding(length, depth, max_timescale=10000.0, dtype=tf.float32):
    """The (length, depth) table of position encodings; ``depth`` must be even."""
    positions = tf.cast(tf.range(length), dtype)[:, tf.newaxis]
    pair = tf.cast(tf.range(depth // 2), dtype)[tf.newaxis, :]
    angles = positions / tf.pow(tf.cast(max_timescale, dtype), 2.0 * pair / float(depth))
    # Interleave: channel 2i is sin, channel 2i + 1 is cos.
    return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), [length, depth])


@serializable
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal encodings to a (batch, time, depth) sequence.

    Args:
        max_timescale: the 10000 of the paper's formula.
    """

    def __init__(self, max_timescale=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_timescale = float(max_timescale)

    def build(self, input_shape):
        if input_shape[-1] is None or int(input_shape[-1]) % 2:
            raise ValueError("Sinusoidal position encodings need an even, known depth. "
                             f"Received: input shape {tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        length, depth = tf.shape(inputs)[1], inputs.shape[-1]
        return inputs + sinusoidal_encoding(length, depth, self.max_timescale, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_timescale": self.max_timescale}
