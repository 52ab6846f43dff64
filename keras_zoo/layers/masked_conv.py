"""Masked convolutions and gates for autoregressive image models.

PixelRNN/PixelCNN (van den Oord et al., 2016, arXiv:1601.06759, Sec. 3.4) order
the sub-pixels of an image in raster order and, within a pixel, R then G then B.
A masked convolution only connects an output to inputs that come earlier in that
order: kernel taps below the centre row, or right of the centre in the centre row,
are zero. At the centre tap the feature maps are split into ``color_channels``
contiguous groups (R, G, B); an output of group g sees input groups < g (mask
"A", used by the first layer on the image) or <= g (mask "B", every later layer).
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable

MASK_TYPES = ("A", "B")


def channel_groups(num_channels, color_channels):
    """Colour group of each feature map: ``color_channels`` contiguous, near-equal blocks.

    Contiguous groups make a ``(..., C * 256)`` logit tensor reshape to ``(..., C, 256)``
    with colour c owning the c-th block of 256.
    """
    if num_channels < color_channels:
        raise ValueError(
            f"With color_channels={color_channels}, every masked layer needs at least "
            f"{color_channels} feature maps (one group per colour). Received: {num_channels} channels."
        )
    return np.arange(num_channels) * color_channels // num_channels


def causal_mask(kernel_size, mask_type, in_groups, out_groups):
    """The 0/1 mask of a ``(kh, kw, len(in_groups), len(out_groups))`` kernel.

    Args:
        kernel_size: ``(kh, kw)``; the centre tap is ``(kh // 2, kw // 2)``.
        mask_type: "A" (an output does not see its own sub-pixel) or "B" (it does).
        in_groups, out_groups: colour group of each input / output feature map.
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"`mask_type` must be one of {MASK_TYPES}. Received: mask_type={mask_type!r}")
    kh, kw = kernel_size
    in_groups, out_groups = np.asarray(in_groups), np.asarray(out_groups)
    mask = np.zeros((kh, kw, len(in_groups), len(out_groups)), dtype="float32")
    cy, cx = kh // 2, kw // 2
    mask[:cy] = 1.0
    mask[cy, :cx] = 1.0
    if mask_type == "A":
        mask[cy, cx] = in_groups[:, None] < out_groups[None, :]
    else:
        mask[cy, cx] = in_groups[:, None] <= out_groups[None, :]
    return mask


@serializable
class MaskedConv2D(keras.layers.Layer):
    """A 'same'-padded, stride-1 2D convolution with a PixelCNN causal mask.

    arXiv:1601.06759, Sec. 3.4. The kernel is stored whole and
    multiplied by the fixed mask in every call, so masked taps get zero gradient
    and stay irrelevant whatever the optimizer does to them.

    Args:
        filters: output feature maps (a multiple of ``color_channels``).
        kernel_size: int or ``(kh, kw)``, odd sizes (the centre tap is the current pixel).
        mask_type: "A" for the first layer on the image, "B" afterwards.
        color_channels: 3 for RGB (per-colour masking at the centre tap), 1 for grey/binary.
        use_bias, kernel_initializer, bias_initializer: as in ``keras.layers.Conv2D``.
    """

    def __init__(self, filters, kernel_size, mask_type="B", color_channels=3, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(kernel_size) != 2 or any(k < 1 or k % 2 == 0 for k in kernel_size):
            raise ValueError(
                "`kernel_size` must be an odd int or a pair of odd ints, so that the current pixel "
                f"is the centre tap. Received: kernel_size={kernel_size}"
            )
        if mask_type not in MASK_TYPES:
            raise ValueError(f"`mask_type` must be one of {MASK_TYPES}. Received: mask_type={mask_type!r}")
        if color_channels < 1:
            raise ValueError(f"`color_channels` must be >= 1. Received: color_channels={color_channels}")
        channel_groups(filters, color_channels)  # validates filters early
        self.filters = filters
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.color_channels = color_channels
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, in_channels, self.filters),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
        self.kernel_mask = tf.constant(causal_mask(
            self.kernel_size, self.mask_type,
            channel_groups(in_channels, self.color_channels),
            channel_groups(self.filters, self.color_channels),
        ))
        super().build(input_shape)

    def call(self, inputs):
        outputs = tf.nn.conv2d(inputs, self.kernel * self.kernel_mask, strides=1, padding="SAME")
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "mask_type": self.mask_type,
            "color_channels": self.color_channels,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@serializable
class GroupedGate(keras.layers.Layer):
    """Gated activation ``tanh(a) * sigmoid(b)`` (arXiv:1606.05328, Eq. 2) that keeps colour groups.

    The input has ``2p`` maps in ``color_channels`` contiguous groups; each group's
    first half is ``a`` and its second half ``b``, so output group g (``p / C`` maps)
    depends on input group g only and the colour ordering survives the gate.
    """

    def __init__(self, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.color_channels = color_channels

    def call(self, inputs):
        channels = inputs.shape[-1]
        if channels % (2 * self.color_channels):
            raise ValueError(
                f"GroupedGate needs a channel count divisible by 2 * color_channels = "
                f"{2 * self.color_channels}. Received: {channels} channels."
            )
        grouped = tf.reshape(inputs, tf.concat(
            [tf.shape(inputs)[:-1], [self.color_channels, 2, channels // (2 * self.color_channels)]], 0))
        a, b = tf.unstack(grouped, axis=-2)
        gated = tf.tanh(a) * tf.sigmoid(b)
        return tf.reshape(gated, tf.concat([tf.shape(inputs)[:-1], [channels // 2]], 0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)

    def get_config(self):
        return {**super().get_config(), "color_channels": self.color_channels}


@serializable
class RowLSTM(keras.layers.Layer):
    """The Row LSTM layer of PixelRNN (arXiv:1601.06759, Sec. 3.1).

    Rows are processed top to bottom, a whole row at a time::

        [o, f, i, g] = [sigma, sigma, sigma, tanh](K_ss * h_{i-1} + K_is * x_i)
        c_i = f . c_{i-1} + i . g,    h_i = o . tanh(c_i)

    ``K_is`` is a ``1 x kernel_size`` mask-B convolution over the input row (it sees
    the current pixel's earlier colours and the pixels to its left); ``K_ss`` is an
    unmasked ``kernel_size``-wide 1D convolution over the previous row's state, which
    is all in the past. The ``units`` hidden maps are split into ``color_channels``
    groups, and each unit's four gates belong to its group.

    Args:
        units: hidden maps ``h``.
        kernel_size: width of both convolutions (3 in the paper).
        color_channels: 3 for RGB, 1 otherwise.
    """

    def __init__(self, units, kernel_size=3, color_channels=3, **kwargs):
        super().__init__(**kwargs)
        if units < color_channels:
            raise ValueError(f"RowLSTM needs at least one unit per colour: units >= {color_channels}. "
                             f"Received: units={units}")
        self.units = units
        self.kernel_size = kernel_size
        self.color_channels = color_channels

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k, h = self.kernel_size, self.units
        self.input_kernel = self.add_weight(name="input_kernel", shape=(1, k, in_channels, 4 * h),
                                            initializer="glorot_uniform")
        self.state_kernel = self.add_weight(name="state_kernel", shape=(k, h, 4 * h),
                                            initializer="orthogonal")
        self.bias = self.add_weight(name="bias", shape=(4 * h,), initializer="zeros")
        unit_groups = channel_groups(h, self.color_channels)
        self.input_kernel_mask = tf.constant(causal_mask(
            (1, k), "B", channel_groups(in_channels, self.color_channels), np.tile(unit_groups, 4)))
        super().build(input_shape)

    def call(self, inputs):
        input_to_state = tf.nn.conv2d(inputs, self.input_kernel * self.input_kernel_mask, 1, "SAME") + self.bias
        rows = tf.transpose(input_to_state, [1, 0, 2, 3])
        zeros = tf.zeros_like(rows[0][..., : self.units])

        def step(state, row):
            hidden, cell = state
            gates = row + tf.nn.conv1d(hidden, self.state_kernel, 1, "SAME")
            o, f, i, g = tf.split(gates, 4, axis=-1)
            cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(cell), cell

        hidden, _ = tf.scan(step, rows, initializer=(zeros, zeros))
        return tf.transpose(hidden, [1, 0, 2, 3])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kernel_size": self.kernel_size,
                "color_channels": self.color_channels}
