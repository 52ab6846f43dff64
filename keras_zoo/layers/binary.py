"""Binary weights and activations: BinaryNet and XNOR-Net layers.

BinaryNet (Courbariaux et al., 2016, arXiv:1602.02830) constrains weights and
activations to +1 or -1 with the deterministic ``sign`` (Eq. 1) and trains
through it with the straight-through estimator: the gradient of ``sign(r)`` is
taken as ``1{|r| <= 1}`` (Eq. 4, the derivative of the hard tanh). The real
"latent" weights the optimiser updates are clipped to [-1, 1] (Sec. 1.3), here
with the ``ClipWeights`` constraint.

XNOR-Net (Rastegari et al., 2016, arXiv:1603.05279) scales the binary kernel of
each output channel by ``alpha = mean|W|`` (Sec. 3.1, Eq. 4), and the binary
activations by ``K = A * k``: ``A`` is the mean of ``|I|`` over the input
channels and ``k`` a ``w x h`` box filter of weights ``1 / (w h)``, convolved
with the convolution's own strides and padding (Sec. 3.2, Fig. 2), so that
``I * W ~ (sign(I) * sign(W)) . K alpha``.

Both runtimes: the layers subclass Keras' ``Conv2D`` and ``Dense`` and use
TensorFlow ops only. ``sign(0)`` is +1, so a binarized tensor holds exactly two
values, as a 1-bit deployment stores them.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable

SCALES = ("none", "channel")


def ste_sign(x):
    """``sign(x)`` with ``sign(0) = +1``; gradient ``dy * 1{|x| <= 1}`` (straight-through estimator)."""
    # Reading a variable inside a custom_gradient function would need a `variables` gradient.
    return _ste_sign(tf.convert_to_tensor(x))


@tf.custom_gradient
def _ste_sign(x):
    def grad(dy):
        return dy * tf.cast(tf.abs(x) <= 1.0, dy.dtype)

    ones = tf.ones_like(x)
    return tf.where(x >= 0, ones, -ones), grad


def channel_scale(kernel):
    """XNOR-Net's ``alpha``: ``mean|W|`` over every axis but the last (one value per output channel)."""
    return tf.reduce_mean(tf.abs(kernel), axis=list(range(kernel.shape.rank - 1)))


def binarize_kernel(kernel, scale="none"):
    """``sign(W)`` (``scale="none"``, BinaryNet) or ``alpha * sign(W)`` per output channel (XNOR-Net)."""
    kernel = tf.convert_to_tensor(kernel)
    binary = ste_sign(kernel)
    if scale == "channel":
        binary = binary * channel_scale(kernel)
    return binary


def activation_scale_map(inputs, kernel_size, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """XNOR-Net's ``K = A * k`` for a channels-last batch of images (Sec. 3.2, Fig. 2).

    Returns a ``(batch, out_height, out_width, 1)`` map aligned with the output of
    a convolution of ``inputs`` with the given geometry.
    """
    mean_abs = tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
    height, width = kernel_size
    box = tf.fill([height, width, 1, 1], tf.constant(1.0 / (height * width), inputs.dtype))
    return tf.nn.convolution(mean_abs, box, strides=list(strides), padding=padding.upper(),
                             dilations=list(dilation_rate))


def _check_binary_args(layer, scale, binarize_inputs, activation_scale):
    if scale not in SCALES:
        raise ValueError(
            f"{layer}: `scale` must be one of {SCALES}: 'none' keeps sign(W) (BinaryNet), 'channel' "
            f"multiplies it by mean|W| per output channel (XNOR-Net). Received: scale={scale!r}"
        )
    if not isinstance(binarize_inputs, bool) or not isinstance(activation_scale, bool):
        raise ValueError(
            f"{layer}: `binarize_inputs` and `activation_scale` must be True or False. "
            f"Received: binarize_inputs={binarize_inputs!r}, activation_scale={activation_scale!r}"
        )
    if activation_scale and not binarize_inputs:
        raise ValueError(
            f"{layer}: `activation_scale=True` (XNOR-Net's K) scales binarized inputs and needs "
            f"`binarize_inputs=True`. Received: activation_scale=True, binarize_inputs=False"
        )


@serializable
class ClipWeights(keras.constraints.Constraint):
    """Clips the latent real weights to ``[-limit, limit]`` after every update (BinaryNet Sec. 1.3).

    Outside the clip range the straight-through gradient is zero, so an unclipped
    weight could drift away and never flip sign again.
    """

    def __init__(self, limit=1.0):
        if not limit > 0:
            raise ValueError(f"ClipWeights: `limit` must be positive. Received: limit={limit!r}")
        self.limit = float(limit)

    def __call__(self, w):
        return tf.clip_by_value(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


@serializable
class HardTanh(keras.layers.Layer):
    """``clip(x, -1, 1)``: the real-valued activation whose derivative the STE uses.

    It stands in for ``sign`` in the real-valued twin of a binary network
    (``binarize=False``), so both nets share one layout.
    """

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape


@serializable
class BinaryConv2D(keras.layers.Conv2D):
    """A ``Conv2D`` whose kernel, and optionally its inputs, are binarized to +-1.

    ``BinaryConv2D(..., scale="none", binarize_inputs=True)`` is a BinaryNet layer;
    ``scale="channel", activation_scale=True`` is XNOR-Net's binary convolution
    ``(sign(I) * sign(W)) . K alpha``. The real kernel is the latent weight the
    optimiser updates; ``effective_kernel()`` is the binary kernel the forward pass applies.
    Clip the latent weights with ``kernel_constraint=ClipWeights(1.0)``.

    Args:
        filters, kernel_size, **kwargs: as ``keras.layers.Conv2D`` (channels last,
            ``groups=1``, padding "valid" or "same").
        binarize_inputs: apply ``ste_sign`` to the inputs. False leaves them real
            (a network's first layer, which sees the image).
        scale: ``"none"`` (BinaryNet) or ``"channel"`` (XNOR-Net's alpha).
        activation_scale: multiply the output by XNOR-Net's ``K`` map.
    """

    def __init__(self, filters, kernel_size, binarize_inputs=True, scale="none", activation_scale=False,
                 **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        _check_binary_args(self.name, scale, binarize_inputs, activation_scale)
        if self.groups != 1 or self.data_format != "channels_last" or self.padding not in ("valid", "same"):
            raise ValueError(
                f"{self.name}: BinaryConv2D supports groups=1, data_format='channels_last' and padding "
                f"'valid' or 'same'. Received: groups={self.groups}, data_format={self.data_format!r}, "
                f"padding={self.padding!r}"
            )
        self.binarize_inputs = binarize_inputs
        self.scale = scale
        self.activation_scale = activation_scale

    def effective_kernel(self):
        """``sign(W)``, or ``alpha * sign(W)`` for ``scale="channel"``: the kernel a deployment stores.

        The forward pass applies alpha after the +-1 product, which equals this kernel up to rounding.
        """
        return binarize_kernel(self.kernel, self.scale)

    def convolution_op(self, inputs, kernel):
        # Both Keras runtimes' Conv.call route the convolution through this method.
        binary_inputs = ste_sign(inputs) if self.binarize_inputs else inputs
        # Scaling after the convolution keeps sign(I) * sign(W) an exact integer, as a popcount gives
        # it (alpha inside the sum would turn exact zeros into +-rounding, flipping the next sign).
        outputs = super().convolution_op(binary_inputs, ste_sign(kernel))
        if self.scale == "channel":
            outputs = outputs * channel_scale(tf.convert_to_tensor(kernel))
        if self.activation_scale:
            outputs = outputs * activation_scale_map(inputs, self.kernel_size, self.strides, self.padding,
                                                     self.dilation_rate)
        return outputs

    def get_config(self):
        return {**super().get_config(), "binarize_inputs": self.binarize_inputs, "scale": self.scale,
                "activation_scale": self.activation_scale}


@serializable
class BinaryDense(keras.layers.Dense):
    """A ``Dense`` layer with a binarized kernel and optionally binarized inputs.

    With ``activation_scale=True`` the output is multiplied by ``K = mean|x|`` over
    the input features, XNOR-Net's ``beta`` for a binary dot product (Sec. 3.2).
    Other arguments as ``BinaryConv2D`` and ``keras.layers.Dense``.
    """

    def __init__(self, units, binarize_inputs=True, scale="none", activation_scale=False, **kwargs):
        super().__init__(units, **kwargs)
        _check_binary_args(self.name, scale, binarize_inputs, activation_scale)
        self.binarize_inputs = binarize_inputs
        self.scale = scale
        self.activation_scale = activation_scale

    def effective_kernel(self):
        """``sign(W)``, or ``alpha * sign(W)`` for ``scale="channel"``: the kernel a deployment stores.

        The forward pass applies alpha after the +-1 product, which equals this kernel up to rounding.
        """
        return binarize_kernel(self.kernel, self.scale)

    def call(self, inputs, training=None):
        binary_inputs = ste_sign(inputs) if self.binarize_inputs else inputs
        kernel = tf.convert_to_tensor(self.kernel)
        outputs = tf.matmul(binary_inputs, ste_sign(kernel))  # exact integers; alpha after (BinaryConv2D)
        if self.scale == "channel":
            outputs = outputs * channel_scale(kernel)
        if self.activation_scale:
            outputs = outputs * tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
        if self.bias is not None:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "binarize_inputs": self.binarize_inputs, "scale": self.scale,
                "activation_scale": self.activation_scale}


BINARY_LAYERS = (BinaryConv2D, BinaryDense)


@dataclasses.dataclass(frozen=True)
class PackedSize:
    """Deployment size of a model whose binary kernels are packed at 1 bit per weight.

    Attributes:
        binary_weights: binarized kernel weights, 1 bit each.
        scale_values: XNOR-Net alphas (one float32 per output channel of a
            ``scale="channel"`` layer), stored next to the packed bits (Sec. 3.1).
        real_values: every other weight (biases, real layers, batch-norm
            statistics), float32.
    """

    binary_weights: int
    scale_values: int
    real_values: int

    @property
    def bits(self):
        return self.binary_weights + 32 * (self.scale_values + self.real_values)

    @property
    def bytes(self):
        return -(-self.bits // 8)

    @property
    def float32_bytes(self):
        """The same model with every weight in float32 (no alphas: they fold into real kernels)."""
        return 4 * (self.binary_weights + self.real_values)

    @property
    def compression(self):
        """float32 size over packed size; BinaryNet and XNOR-Net quote about 32x for the binary layers."""
        return 8 * self.float32_bytes / self.bits


def packed_size(model):
    """``PackedSize`` of ``model``: binary kernels at 1 bit, alphas and all other weights at 32 bits."""
    binary, alphas = 0, 0
    binary_kernels = set()
    for layer in _all_layers(model):
        if isinstance(layer, BINARY_LAYERS):
            binary += int(np.prod(layer.kernel.shape))
            binary_kernels.add(id(layer.kernel))
            if layer.scale == "channel":
                alphas += int(layer.kernel.shape[-1])
    real = sum(int(np.prod(w.shape)) for w in model.weights if id(w) not in binary_kernels)
    return PackedSize(binary_weights=binary, scale_values=alphas, real_values=real)


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
