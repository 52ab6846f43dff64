"""DCGAN (Radford, Metz, Chintala, 2015, arXiv:1511.06434).

The registry entry ``dcgan`` is the generator, ``z -> image``; the discriminator
that trains with it is :func:`DCGANDiscriminator`, built by the ``gan`` training
task (training/tasks_gan.py) from the generator's config with
:func:`discriminator_for`. Both follow the paper's architecture guidelines
(Sec. 3): no pooling (strided and fractionally-strided convolutions), batch
normalization everywhere except the generator output and the discriminator input
layer, ReLU in the generator with tanh at its output, LeakyReLU (slope 0.2) in the
discriminator, and weights drawn from N(0, 0.02).

Paper configuration (Figure 1, 64x64x3): z (100) is projected to 4x4x1024, then
four 5x5 stride-2 fractionally-strided convolutions give 8x8x512, 16x16x256,
32x32x128 and 64x64x3. Smaller images use fewer up-samplings (one per factor 2
above 4x4). Departures: the discriminator ends in a dense layer returning a logit
(the sigmoid lives in the loss), and the layers followed by batch normalization
have no bias (BN's offset replaces it).

Images outside the models are in [0, 1], like every image model of keras_zoo;
inside they are in the paper's [-1, 1] tanh range (a Rescaling layer at the
generator output and at the discriminator input). z is drawn from U(-1, 1) as in
the authors' code.
"""
import math

from keras_zoo.backend import keras
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers

BASE_SIZE = 4  # the generator's projection is a 4x4 feature map (arXiv:1511.06434, Figure 1)


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _num_upsamplings(image_size):
    if not isinstance(image_size, int) or image_size < 2 * BASE_SIZE:
        raise ValueError(f"`image_size` must be an int 4 * 2**k with k >= 1 (8, 16, 32, 64, ...). "
                         f"Received: image_size={image_size!r}")
    steps = math.log2(image_size / BASE_SIZE)
    if steps != int(steps):
        raise ValueError(f"`image_size` must be 4 * 2**k (8, 16, 32, 64, ...): each fractionally-strided "
                         f"convolution doubles the 4x4 projection. Received: image_size={image_size}")
    return int(steps)


def _validate(image_size, channels, base_filters, z_dim, kernel_size):
    steps = _num_upsamplings(image_size)
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB). Received: channels={channels!r}")
    for key, value in (("z_dim", z_dim), ("kernel_size", kernel_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")
    if not isinstance(base_filters, int) or base_filters < 2 ** (steps - 1):
        raise ValueError(f"`base_filters` must be an int >= {2 ** (steps - 1)} (it is halved {steps - 1} times "
                         f"for image_size={image_size}). Received: base_filters={base_filters!r}")
    return steps


def DCGAN(image_size=64, channels=3, z_dim=100, base_filters=1024, kernel_size=5, *, name="dcgan_generator"):
    """The DCGAN generator (arXiv:1511.06434, Figure 1).

    Args:
        image_size: output height and width, ``4 * 2**k``.
        channels: 1 (grey) or 3 (RGB) output channels.
        z_dim: length of the uniform/normal noise vector z (100 in the paper).
        base_filters: channels of the 4x4 projection (1024); each up-sampling halves them.
        kernel_size: of the fractionally-strided convolutions (5).
        name: model name.

    Returns:
        A keras.Model mapping ``(B, z_dim)`` to ``(B, image_size, image_size, channels)`` in [0, 1]
        (the tanh output, rescaled).
    """
    steps = _validate(image_size, channels, base_filters, z_dim, kernel_size)
    z = layers.Input(shape=(z_dim,), name=f"{name}_z")
    x = layers.Dense(BASE_SIZE * BASE_SIZE * base_filters, use_bias=False, kernel_initializer=_init(),
                     name=f"{name}_project")(z)
    x = layers.Reshape((BASE_SIZE, BASE_SIZE, base_filters), name=f"{name}_reshape")(x)
    x = layers.BatchNormalization(name=f"{name}_project_bn")(x)
    x = layers.Activation("relu", name=f"{name}_project_relu")(x)
    filters = base_filters
    for block in range(1, steps):
        filters //= 2
        x = layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_init(), name=f"{name}_up{block}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_up{block}_bn")(x)
        x = layers.Activation("relu", name=f"{name}_up{block}_relu")(x)
    x = layers.Conv2DTranspose(channels, kernel_size, strides=2, padding="same", kernel_initializer=_init(),
                               name=f"{name}_up{steps}_conv")(x)
    x = layers.Activation("tanh", name=f"{name}_tanh")(x)
    image = layers.Rescaling(0.5, offset=0.5, name=f"{name}_to_unit")(x)
    return keras.Model(z, image, name=name)


def DCGANDiscriminator(image_size=64, channels=3, base_filters=1024, kernel_size=5, *,
                       name="dcgan_discriminator"):
    """The DCGAN discriminator: the generator mirrored (arXiv:1511.06434, Sec. 3).

    Strided ``kernel_size`` convolutions from ``image_size`` down to 4x4, with
    ``base_filters / 2**(k-1)`` ... ``base_filters`` channels (64x64: 128, 256, 512, 1024),
    LeakyReLU 0.2, batch normalization on every layer but the first; the last
    feature map is flattened into one logit.

    Returns:
        A keras.Model mapping ``(B, image_size, image_size, channels)`` in [0, 1] to
        ``(B, 1)`` logits (real vs generated).
    """
    steps = _validate(image_size, channels, base_filters, 1, kernel_size)
    image = layers.Input(shape=(image_size, image_size, channels), name=f"{name}_image")
    x = layers.Rescaling(2.0, offset=-1.0, name=f"{name}_rescale")(image)
    for block in range(1, steps + 1):
        filters = base_filters // 2 ** (steps - block)
        x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", use_bias=block == 1,
                          kernel_initializer=_init(), name=f"{name}_down{block}_conv")(x)
        if block > 1:
            x = layers.BatchNormalization(name=f"{name}_down{block}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_down{block}_lrelu")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    logit = layers.Dense(1, kernel_initializer=_init(), name=f"{name}_logit")(x)
    return keras.Model(image, logit, name=name)


def discriminator_for(config):
    """The DCGANDiscriminator matching a generator built with ``DCGAN(**config)``."""
    keys = ("image_size", "channels", "base_filters", "kernel_size")
    return DCGANDiscriminator(**{k: config[k] for k in keys if k in config})


def _z_spec(config):
    return [InputSpec((config.get("z_dim", 100),), "float32", minval=-1.0, maxval=1.0)]


VARIANTS = {
    "dcgan": dict(config=dict(image_size=64, channels=3, z_dim=100, base_filters=1024),
                  tiny=dict(image_size=16, channels=1, z_dim=16, base_filters=32)),
}

register_family(DCGAN, VARIANTS, task="gan", paper="1511.06434", input_spec=_z_spec, default_dataset="digits",
                export={"tflite": True,
                        "edgetpu": "the converter emits TRANSPOSE_CONV version 4, newer than the version 3 "
                                   "edgetpu_compiler 16 accepts (export/edgetpu.py static check)"})
