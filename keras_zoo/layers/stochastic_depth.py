"""Stochastic depth / drop-path (Huang et al., 2016, arXiv:1603.09382).

A residual block ``H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1}))`` keeps its branch
``f_l`` with survival probability ``p_l`` (``b_l ~ Bernoulli(p_l)``), and the
paper's linear decay rule sets ``p_l = 1 - (l / L)(1 - p_L)`` (Sec. 3, "linear decay rule").

Scaling convention used here ("inverted" drop-path, as timm and torchvision):
a kept branch is multiplied by ``1 / p_l`` during training, and at inference
the layer is the identity. The paper instead trains with ``b_l f_l`` and
recalibrates at test time with ``p_l f_l``. Both give a test-time
output equal to the training-time expectation; they differ only by the
constant factor ``p_l`` absorbed into the branch's last BatchNorm scale, so the
model family is the same. The inverted form makes the exported graph free of
the layer: no random op and no extra multiply.

Also here: the parameter-free "option A" shortcut of He et al. (2016,
arXiv:1512.03385) that the stochastic-depth code uses when a block changes
dimensions (average-pool downsampling, then zero-padded channels).
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable

DROP_MODES = ("sample", "batch")


def linear_survival_probabilities(num_blocks, final_survival_probability=0.5):
    """``[p_1, ..., p_L]`` with ``p_l = 1 - (l / L)(1 - p_L)`` (Huang et al., Sec. 3).

    ``p_0 = 1`` belongs to the input, so the first residual block already drops
    with probability ``(1 - p_L) / L``, as in the authors' Torch code.
    """
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"`num_blocks` must be a positive integer. Received: num_blocks={num_blocks!r}")
    check_survival_probability(final_survival_probability, "final_survival_probability")
    return [1.0 - (l / num_blocks) * (1.0 - final_survival_probability) for l in range(1, num_blocks + 1)]


def check_survival_probability(value, what="survival_probability"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"`{what}` must be a number in (0, 1]; 1 keeps every block (no stochastic depth) and "
            f"the paper uses 0.5 for the last block. Received: {what}={value!r}"
        )


def bernoulli_keep_mask(shape, keep_probability, dtype, seed=None):
    """A {0, 1} tensor of ``shape`` whose entries are 1 with ``keep_probability``."""
    return tf.cast(tf.random.uniform(shape, seed=seed) < keep_probability, dtype)


@serializable
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch during training; the identity at inference.

    Apply it to the residual branch, before the addition with the shortcut::

        y = StochasticDepth(0.8, name="block3_drop_path")(branch)
        x = keras.layers.Add()([shortcut, y])

    Training: ``y = b * x / p`` with ``b ~ Bernoulli(p)`` drawn per sample
    (``mode="sample"``, each image its own network depth) or once per batch
    (``mode="batch"``, the paper's per-mini-batch gates). Inference: ``y = x``.

    Args:
        survival_probability: ``p`` in (0, 1]; 1 makes the layer the identity.
        mode: ``"sample"`` or ``"batch"``.
        seed: optional op-level seed for the Bernoulli draws.
    """

    def __init__(self, survival_probability, mode="sample", seed=None, **kwargs):
        super().__init__(**kwargs)
        check_survival_probability(survival_probability)
        if mode not in DROP_MODES:
            raise ValueError(
                f"`mode` must be one of {DROP_MODES}: 'sample' drops per example, 'batch' per "
                f"mini-batch as in Huang et al. Received: mode={mode!r}"
            )
        self.survival_probability = float(survival_probability)
        self.mode = mode
        self.seed = seed

    def call(self, inputs, training=None):
        if not training or self.survival_probability == 1.0:
            return inputs
        rank = inputs.shape.rank
        batch = tf.shape(inputs)[:1] if self.mode == "sample" else tf.ones([1], tf.int32)
        shape = tf.concat([batch, tf.ones([rank - 1], tf.int32)], axis=0)
        keep = bernoulli_keep_mask(shape, self.survival_probability, inputs.dtype, self.seed)
        return inputs * keep / tf.cast(self.survival_probability, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(survival_probability=self.survival_probability, mode=self.mode, seed=self.seed)
        return config


@serializable
class ZeroPadChannels(keras.layers.Layer):
    """Appends ``padding`` all-zero channels (channels-last): He et al.'s option A shortcut."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"`padding` must be a non-negative integer. Received: padding={padding!r}")
        self.padding = padding

    def call(self, inputs):
        pads = [[0, 0]] * (inputs.shape.rank - 1) + [[0, self.padding]]
        return tf.pad(inputs, pads)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.padding)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config


def option_a_shortcut(x, filters, stride, name):
    """Parameter-free shortcut: ``stride`` average pooling, then zero channels up to ``filters``.

    The stochastic-depth Torch code (``ResidualDrop.lua``) downsamples with a
    2x2 average pool and pads the new channels with zeros.
    """
    channels = int(x.shape[-1])
    if filters < channels:
        raise ValueError(
            f"{name}: a zero-padding shortcut cannot reduce channels from {channels} to {filters}; "
            f"use non-decreasing stage widths. Received: filters={filters}"
        )
    if stride > 1:
        x = keras.layers.AveragePooling2D(stride, padding="same", name=name + "_pool")(x)
    if filters > channels:
        x = ZeroPadChannels(filters - channels, name=name + "_pad")(x)
    return x
