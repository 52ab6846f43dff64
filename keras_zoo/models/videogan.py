"""Video GAN (Vondrick, Pirsiavash and Torralba, 2016, arXiv:1609.02612): two-stream video generation.

Generator (section 3.2): from z (100-d, Gaussian),
- a foreground stream of 3-D transposed convolutions, 4x4x4 kernels and stride 2
  after a first (2, 4, 4) projection: 512-256-128-64 channels with batch norm and
  ReLU, ending in two heads: the foreground f (tanh) and the mask m (sigmoid);
- a background stream of 2-D transposed convolutions (4x4, stride 2) with the same
  channels, ending in a static background image b (tanh);
- the video is m ⊙ f + (1 − m) ⊙ b, with b replicated over time.
Discriminator: 3-D convolutions 64-128-256-512 (4x4x4, stride 2, leaky ReLU 0.2,
batch norm from the second on) and a final (2, 4, 4) convolution to one logit.

Layer sizes, weight init (N(0, 0.01) convolutions, N(1, 0.02) batch-norm scales),
batch-norm epsilon 1e-3 in the discriminator and the mask penalty λ‖m‖₁ with λ = 0.1
averaged over mask entries are those of the reference code (cvondrick/videogan,
main.lua). Departure: the reference discriminator ends in 2 classes with a softmax
cross-entropy; one logit with a sigmoid cross-entropy is the same model with one
output channel fewer. "Same" padding replaces torch's explicit padding of 1 (same
output sizes). Sizes other than 32 frames of 64x64 scale the number of stride-2
stages: frames = size / 2, the paper's aspect.

The registered model is the whole GAN graph: inputs ``[z, real_video]`` (videos in
[-1, 1]), outputs ``[generated_video, mask, real_logit, fake_logit]``; its
sub-models ``name + "_generator"`` (z -> [video, mask]) and ``name +
"_discriminator"`` (video -> logit) are what a GAN training step updates
(``training.tasks_video.VideoGANTrainer``).
"""
import math

import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family

PAPER = "1609.02612"
#: λ of the mask sparsity penalty λ·mean(m) in the reference code (main.lua: opt.lambda, L1Penalty averaged).
MASK_PENALTY = 0.1


@serializable
class MaskedComposite(keras.layers.Layer):
    """``[f (B, T, H, W, C), m (B, T, H, W, 1), b (B, H, W, C)] -> m ⊙ f + (1 − m) ⊙ b`` (b repeated over T)."""

    def call(self, inputs):
        foreground, mask, background = inputs
        return mask * foreground + (1.0 - mask) * background[:, None]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


def _conv_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)


def _batch_norm(name, epsilon=1e-5):
    return keras.layers.BatchNormalization(
        epsilon=epsilon, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name)


def _stage_filters(base_filters, stages):
    """Channels of the hidden stages, widest first: 512, 256, 128, 64 for base 64 and 4 stages."""
    return [base_filters * 2 ** (stages - 1 - i) for i in range(stages)]


def _generator(z_dim, frames, size, channels, base_filters, name):
    stages = int(math.log2(size // 4))  # hidden stages: the first at 4x4, each later one doubles H, W and T
    filters = _stage_filters(base_filters, stages)
    z = keras.Input((z_dim,), name="z")

    x = keras.layers.Reshape((1, 1, 1, z_dim), name=f"{name}_fg_reshape")(z)
    for i, width in enumerate(filters):
        if i == 0:
            layer = keras.layers.Conv3DTranspose(width, (2, 4, 4), padding="valid", kernel_initializer=_conv_init(),
                                                 name=f"{name}_fg{i + 1}_deconv")
        else:
            layer = keras.layers.Conv3DTranspose(width, 4, strides=2, padding="same",
                                                 kernel_initializer=_conv_init(), name=f"{name}_fg{i + 1}_deconv")
        x = layer(x)
        x = _batch_norm(f"{name}_fg{i + 1}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_fg{i + 1}_relu")(x)
    foreground = keras.layers.Conv3DTranspose(channels, 4, strides=2, padding="same", activation="tanh",
                                              kernel_initializer=_conv_init(), name=f"{name}_foreground")(x)
    mask = keras.layers.Conv3DTranspose(1, 4, strides=2, padding="same", activation="sigmoid",
                                        kernel_initializer=_conv_init(), name=f"{name}_mask")(x)

    y = keras.layers.Reshape((1, 1, z_dim), name=f"{name}_bg_reshape")(z)
    for i, width in enumerate(filters):
        strides, padding = (1, "valid") if i == 0 else (2, "same")
        y = keras.layers.Conv2DTranspose(width, 4, strides=strides, padding=padding, kernel_initializer=_conv_init(),
                                         name=f"{name}_bg{i + 1}_deconv")(y)
        y = _batch_norm(f"{name}_bg{i + 1}_bn")(y)
        y = keras.layers.ReLU(name=f"{name}_bg{i + 1}_relu")(y)
    background = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh",
                                              kernel_initializer=_conv_init(), name=f"{name}_background")(y)

    video = MaskedComposite(name=f"{name}_composite")([foreground, mask, background])
    return keras.Model(z, [video, mask], name=name)


def _discriminator(frames, size, channels, base_filters, name):
    stages = int(math.log2(size // 4))
    video = keras.Input((frames, size, size, channels), name="video")
    x = video
    for i, width in enumerate(reversed(_stage_filters(base_filters, stages))):
        x = keras.layers.Conv3D(width, 4, strides=2, padding="same", kernel_initializer=_conv_init(),
                                name=f"{name}_conv{i + 1}")(x)
        if i > 0:
            x = _batch_norm(f"{name}_conv{i + 1}_bn", epsilon=1e-3)(x)
        x = keras.layers.LeakyReLU(0.2, name=f"{name}_conv{i + 1}_lrelu")(x)
    x = keras.layers.Conv3D(1, (2, 4, 4), padding="valid", kernel_initializer=_conv_init(), name=f"{name}_logit")(x)
    logit = keras.layers.Flatten(name=f"{name}_flatten")(x)
    return keras.Model(video, logit, name=name)


def VideoGAN(z_dim=100, frames=32, size=64, channels=3, base_filters=64, name="videogan"):
    """The two-stream video GAN of arXiv:1609.02612 (generator and discriminator in one graph).

    Args:
        z_dim: size of the Gaussian code z (paper: 100).
        frames: generated frames (paper: 32); must be ``size // 2``.
        size: frame height and width (paper: 64), a power of two >= 8.
        channels: 3 for RGB, 1 for gray.
        base_filters: channels of the last hidden stage (paper: 64, giving
            512-256-128-64 at size 64); each earlier stage doubles them.
        name: model name; sub-models ``name + "_generator"`` and ``name + "_discriminator"``.

    Returns:
        keras.Model ``[z (B, z_dim), real_video (B, frames, size, size, channels)] ->
        [generated_video, mask (B, frames, size, size, 1), real_logit (B, 1), fake_logit (B, 1)]``;
        videos are in [-1, 1].
    """
    for arg, value in dict(z_dim=z_dim, base_filters=base_filters).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if not isinstance(size, int) or size < 8 or size & (size - 1):
        raise ValueError(f"`size` must be a power of two >= 8 (each stage doubles it from 4). Received: size={size!r}")
    if frames != size // 2:
        raise ValueError(f"`frames` must be size // 2 = {size // 2}: time and space grow together from (2, 4, 4) "
                         f"(the paper: 32 frames of 64x64). Received: frames={frames!r}, size={size}")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    generator = _generator(z_dim, frames, size, channels, base_filters, f"{name}_generator")
    discriminator = _discriminator(frames, size, channels, base_filters, f"{name}_discriminator")
    z = keras.Input((z_dim,), name="z")
    real = keras.Input((frames, size, size, channels), name="real_video")
    video, mask = generator(z)
    return keras.Model([z, real], [video, mask, discriminator(real), discriminator(video)], name=name)


def generator_of(model):
    """The ``z -> [video, mask]`` sub-model of a VideoGAN graph."""
    return model.get_layer(f"{model.name}_generator")


def discriminator_of(model):
    """The ``video -> logit`` sub-model of a VideoGAN graph."""
    return model.get_layer(f"{model.name}_discriminator")


def videogan_sampler(model, config=None):
    """The exported graph: z (1, z_dim) -> video (1, frames, size, size, channels), generator weights shared."""
    del config
    generator = generator_of(model)
    z = keras.Input(generator.input_shape[1:], batch_size=1, name="z")
    video, _ = generator(z)
    return keras.Model(z, video, name=f"{model.name}_sampler")


def _input_spec(config):
    shape = (config["frames"], config["size"], config["size"], config["channels"])
    return [InputSpec((config["z_dim"],), minval=-1.0, maxval=1.0), InputSpec(shape, minval=-1.0, maxval=1.0)]


register_family(
    VideoGAN,
    {
        "videogan": dict(
            config=dict(z_dim=100, frames=32, size=64, channels=3, base_filters=64, name="videogan"),
            tiny=dict(z_dim=16, frames=8, size=16, channels=1, base_filters=8),
        ),
    },
    task="video_generation",
    paper=PAPER,
    input_spec=_input_spec,
    default_dataset="moving_digits",
    inference_model=videogan_sampler,
    export={"tflite": True,
            "edgetpu": "the generator is 3-D transposed convolutions (CONV_3D_TRANSPOSE), which the Edge TPU "
                       "does not run"},
)

__all__ = ["VideoGAN", "MaskedComposite", "generator_of", "discriminator_of", "videogan_sampler", "MASK_PENALTY"]
