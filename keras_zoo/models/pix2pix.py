"""pix2pix: image-to-image translation with conditional GANs (Isola et al., 2016, arXiv:1611.07004).

- ``pix2pix_generator``: the U-Net generator (paper Sec. 3.1.1 and Appendix 6.1.1):
  encoder C64-C128-C256-C512-C512-C512-C512-C512 (4x4 stride-2 convolutions,
  BatchNorm except on the first, LeakyReLU 0.2), decoder of 4x4 stride-2
  transposed convolutions with 512-512-512-512-256-128-64 output channels (BatchNorm,
  dropout 0.5 in the first three, ReLU), each concatenated with the mirrored
  encoder activation (skip connection), and a last transposed convolution to the
  output channels with tanh.
- ``pix2pix_discriminator``: the 70x70 PatchGAN (Appendix 6.1.2): C64-C128-C256-C512
  on ``concat(input, target)`` and a convolution to one logit per patch
  (30x30 logits at 256x256, each seeing a 70x70 receptive field).

Layer sizes follow the TensorFlow pix2pix tutorial's reading of the paper, whose
parameter counts (generator 54,425,859; discriminator 2,770,433 at 256x256x3) the
tests check: the innermost encoder layer keeps its BatchNorm, the convolutions
followed by BatchNorm have no bias, and the PatchGAN's stride-1 layers use
explicit zero padding. Weights are drawn from N(0, 0.02) (paper Sec. 6.2).

Images outside the models are in [0, 1] like every image model of keras_zoo;
Rescaling layers map them to the paper's [-1, 1] and the tanh output back.
The discriminator returns logits (the sigmoid lives in the loss). The cGAN + L1
objective is trained by the ``image_to_image`` task in training/tasks_gan.py.
"""
from keras_zoo.backend import keras
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers

ENCODER_FILTERS = (64, 128, 256, 512, 512, 512, 512, 512)


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _validate_image_shape(key, shape):
    shape = tuple(shape)
    if len(shape) != 3 or shape[-1] not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in shape[:2]):
        raise ValueError(f"`{key}` must be (height, width, channels) with 1 or 3 channels. "
                         f"Received: {key}={shape}")
    return shape


def downsample(x, filters, batchnorm=True, name=None):
    """Encoder block Ck: 4x4 stride-2 convolution, BatchNorm (optional), LeakyReLU 0.2."""
    x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_init(),
                      name=f"{name}_conv")(x)
    if batchnorm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def upsample(x, filters, dropout=0.0, name=None):
    """Decoder block Ck / CDk: 4x4 stride-2 transposed convolution, BatchNorm, dropout, ReLU."""
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                               kernel_initializer=_init(), name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def Pix2PixGenerator(input_shape=(256, 256, 3), output_channels=3, encoder_filters=ENCODER_FILTERS,
                     dropout_layers=3, dropout=0.5, *, name="pix2pix_generator"):
    """The U-Net generator of pix2pix (arXiv:1611.07004, Appendix 6.1.1).

    Args:
        input_shape: (height, width, channels); height and width must be divisible by
            ``2 ** len(encoder_filters)`` (256 for the paper's 8 encoder layers).
        output_channels: channels of the generated image.
        encoder_filters: channels of the encoder layers; the decoder mirrors them
            (``reversed(encoder_filters[:-1])``).
        dropout_layers: how many decoder layers (from the innermost) apply dropout;
            the paper uses 3, and keeps dropout on at test time as the noise source.
        dropout: dropout rate (0.5).
        name: model name.

    Returns:
        A keras.Model mapping ``(B, H, W, C)`` in [0, 1] to ``(B, H, W, output_channels)`` in [0, 1].
    """
    input_shape = _validate_image_shape("input_shape", input_shape)
    encoder_filters = tuple(encoder_filters)
    if len(encoder_filters) < 2 or not all(isinstance(f, int) and f > 0 for f in encoder_filters):
        raise ValueError(f"`encoder_filters` must list at least 2 positive ints (the paper: {ENCODER_FILTERS}). "
                         f"Received: encoder_filters={encoder_filters}")
    factor = 2 ** len(encoder_filters)
    if input_shape[0] % factor or input_shape[1] % factor:
        raise ValueError(f"The {len(encoder_filters)} stride-2 encoder layers need height and width divisible "
                         f"by {factor}; resize the images or use fewer `encoder_filters`. "
                         f"Received: input_shape={input_shape}")
    if output_channels not in (1, 3):
        raise ValueError(f"`output_channels` must be 1 or 3. Received: output_channels={output_channels!r}")
    if not isinstance(dropout_layers, int) or not 0 <= dropout_layers < len(encoder_filters):
        raise ValueError(f"`dropout_layers` must be an int in [0, {len(encoder_filters) - 1}]. "
                         f"Received: dropout_layers={dropout_layers!r}")

    image = layers.Input(shape=input_shape, name=f"{name}_image")
    x = layers.Rescaling(2.0, offset=-1.0, name=f"{name}_rescale")(image)
    skips = []
    for index, filters in enumerate(encoder_filters, start=1):
        x = downsample(x, filters, batchnorm=index > 1, name=f"{name}_down{index}")
        skips.append(x)
    for index, (filters, skip) in enumerate(zip(reversed(encoder_filters[:-1]), reversed(skips[:-1])), start=1):
        x = upsample(x, filters, dropout=dropout if index <= dropout_layers else 0.0, name=f"{name}_up{index}")
        x = layers.Concatenate(name=f"{name}_up{index}_skip")([x, skip])
    x = layers.Conv2DTranspose(output_channels, 4, strides=2, padding="same", kernel_initializer=_init(),
                               name=f"{name}_out_conv")(x)
    x = layers.Activation("tanh", name=f"{name}_out_tanh")(x)
    output = layers.Rescaling(0.5, offset=0.5, name=f"{name}_to_unit")(x)
    return keras.Model(image, output, name=name)


def PatchGANDiscriminator(input_shape=(256, 256, 3), target_channels=3, filters=(64, 128, 256, 512), *,
                          name="pix2pix_discriminator"):
    """The 70x70 PatchGAN discriminator of pix2pix (arXiv:1611.07004, Appendix 6.1.2).

    ``concat(input, target)`` -> C64 (no BatchNorm) -> C128 -> C256 (4x4 stride 2) ->
    C512 (4x4 stride 1) -> 4x4 stride-1 convolution to one logit per patch.

    Args:
        input_shape: (height, width, channels) of the conditioning image.
        target_channels: channels of the real or generated target image.
        filters: channels of the C layers; all but the last are stride 2.
        name: model name.

    Returns:
        A keras.Model mapping ``[input (B, H, W, C), target (B, H, W, target_channels)]`` in
        [0, 1] to patch logits ``(B, H/8 - 2, W/8 - 2, 1)`` (30x30 at 256x256).
    """
    input_shape = _validate_image_shape("input_shape", input_shape)
    filters = tuple(filters)
    if len(filters) < 2 or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"`filters` must list at least 2 positive ints (the paper: (64, 128, 256, 512)). "
                         f"Received: filters={filters}")
    if target_channels not in (1, 3):
        raise ValueError(f"`target_channels` must be 1 or 3. Received: target_channels={target_channels!r}")
    factor = 2 ** (len(filters) - 1)
    if min(input_shape[:2]) // factor < 3:
        raise ValueError(f"The PatchGAN's {len(filters) - 1} stride-2 layers and two 4x4 valid convolutions "
                         f"need images of at least {3 * factor}x{3 * factor}. Received: input_shape={input_shape}")

    source = layers.Input(shape=input_shape, name=f"{name}_input")
    target = layers.Input(shape=(*input_shape[:2], target_channels), name=f"{name}_target")
    x = layers.Concatenate(name=f"{name}_concat")([source, target])
    x = layers.Rescaling(2.0, offset=-1.0, name=f"{name}_rescale")(x)
    for index, width in enumerate(filters[:-1], start=1):
        x = downsample(x, width, batchnorm=index > 1, name=f"{name}_down{index}")
    last = len(filters)
    x = layers.ZeroPadding2D(name=f"{name}_c{last}_pad")(x)
    x = layers.Conv2D(filters[-1], 4, strides=1, use_bias=False, kernel_initializer=_init(),
                      name=f"{name}_c{last}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_c{last}_bn")(x)
    x = layers.LeakyReLU(0.2, name=f"{name}_c{last}_lrelu")(x)
    x = layers.ZeroPadding2D(name=f"{name}_logits_pad")(x)
    logits = layers.Conv2D(1, 4, strides=1, kernel_initializer=_init(), name=f"{name}_logits")(x)
    return keras.Model([source, target], logits, name=name)


def discriminator_for(generator, config):
    """The PatchGAN trained with ``generator = Pix2PixGenerator(**config)``.

    Its filters scale with the generator's first encoder layer (64 -> the paper's
    C64-C128-C256-C512), and images too small for three stride-2 layers get fewer.
    """
    input_shape = tuple(generator.input_shape[1:])
    base = tuple(config.get("encoder_filters", ENCODER_FILTERS))[0]
    depth = 4
    while depth > 2 and min(input_shape[:2]) // 2 ** (depth - 1) < 3:
        depth -= 1
    return PatchGANDiscriminator(input_shape=input_shape, target_channels=int(generator.output_shape[-1]),
                                 filters=tuple(base * 2 ** i for i in range(depth)))


def _generator_spec(config):
    return [InputSpec(tuple(config.get("input_shape", (256, 256, 3))), "float32")]


def _discriminator_spec(config):
    shape = tuple(config.get("input_shape", (256, 256, 3)))
    return [InputSpec(shape, "float32"), InputSpec((*shape[:2], config.get("target_channels", 3)), "float32")]


_TUTORIAL = "TensorFlow pix2pix tutorial (tensorflow.org/tutorials/generative/pix2pix), model.summary() total"
_LEAKY_RELU = ("LEAKY_RELU is not in the Edge TPU supported-operations table, so the graph falls back to the "
               "CPU at the first encoder layer (export/edgetpu.py static check)")
_FAMILY = dict(task="image_to_image", paper="1611.07004", default_dataset="digits_edges")

register_family(Pix2PixGenerator, {
    "pix2pix_generator": dict(
        config=dict(input_shape=(256, 256, 3), output_channels=3),
        tiny=dict(input_shape=(32, 32, 1), output_channels=1, encoder_filters=(8, 16, 32, 32, 32)),
        reference_params=(54_425_859, _TUTORIAL),
        export={"tflite": True, "edgetpu": _LEAKY_RELU}),
}, input_spec=_generator_spec, **_FAMILY)
register_family(PatchGANDiscriminator, {
    "pix2pix_discriminator": dict(
        config=dict(input_shape=(256, 256, 3), target_channels=3),
        tiny=dict(input_shape=(32, 32, 1), target_channels=1, filters=(8, 16, 32)),
        reference_params=(2_770_433, _TUTORIAL),
        export={"tflite": True, "edgetpu": _LEAKY_RELU}),
}, input_spec=_discriminator_spec, **_FAMILY)
