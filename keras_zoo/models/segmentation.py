"""Semantic segmentation heads on any zoo backbone: FCN (Long et al., 2014, arXiv:1411.4038)
and U-Net (Ronneberger et al., 2015, arXiv:1505.04597).

Both take the stage outputs of a registered image classifier
(``imagenet_utils.feature_extractor``: ``features_only=True``) built on the
segmentation model's own input, so the result is one flat functional graph
(backbone layers keep their names, e.g. ``conv_pw_13``) that converts to TFLite
as it is. Both return per-pixel **logits** ``(B, H, W, classes)``: a per-pixel
softmax is not an op the Edge TPU maps (its SOFTMAX takes 1-D inputs), and the
training task uses ``sparse_softmax_cross_entropy`` from logits; take the argmax
(or a softmax on the host) for predictions.

- ``FCN``: 1x1 score layers on the last stages (FCN-32s/16s/8s: 1, 2 or 3
  stages; the deepest is scored directly, as the backbone's classifier is
  dropped and VGG's convolutionalised fc6/fc7 have no counterpart), fused coarse to fine: the coarser score map is upsampled 2x by a
  learnable transposed convolution initialised to bilinear interpolation and
  added to the next finer score map, whose score layer starts at zero so that
  the net "starts with unmodified predictions" (Sec. 4.2). The final upsampling
  to the input resolution is fixed bilinear interpolation (the reference
  ``upscore8`` is a frozen bilinear deconvolution; ``UpSampling2D`` equals it
  except at the borders, where it clamps instead of zero-padding).
- ``UNet``: the expanding path of Fig. 1 on the backbone's stages: per stage a
  2x2 up-convolution, concatenation of the skip, and two 3x3 convolutions.
  Departures: "same" padding instead of valid convolutions and cropping (so the
  output is the input size), batch normalization after each convolution, and the
  contracting path is the backbone (its first stage is at stride 2, so the last
  decoder stage has no skip).
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.layers import imagenet_utils
from keras_zoo.registry import model_info, register_family

layers = keras.layers

FCN_OUTPUT_STRIDES = (32, 16, 8)


def bilinear_kernel(size):
    """The 1-D-separable bilinear filter of a ``size``-tap upsampling deconvolution (FCN's ``upsample_filt``)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(taps, taps).astype("float32")


@serializable
class BilinearUpsampling(keras.initializers.Initializer):
    """Initialises a ``Conv2DTranspose`` kernel (kh, kw, C, C) to per-channel bilinear upsampling."""

    def __call__(self, shape, dtype=None, **kwargs):
        height, width, out_channels, in_channels = shape
        if height != width or out_channels != in_channels:
            raise ValueError(f"BilinearUpsampling initialises square (k, k, C, C) kernels. Received: shape={shape}")
        kernel = np.zeros(shape, "float32")
        kernel[:, :, np.arange(in_channels), np.arange(in_channels)] = bilinear_kernel(height)[..., None]
        return tf.constant(kernel, dtype=dtype or tf.float32)

    def get_config(self):
        return {}


def _upsample_learnable(x, factor, name):
    """Transposed convolution with stride ``factor``, ``2 * factor - factor % 2`` taps, bilinear at init."""
    channels = x.shape[-1]
    return layers.Conv2DTranspose(channels, 2 * factor - factor % 2, strides=factor, padding="same",
                                  use_bias=False, kernel_initializer=BilinearUpsampling(), name=name)(x)


def _backbone_features(backbone, backbone_kwargs, input_shape, name):
    """``(model inputs, [stage outputs])`` of ``backbone`` built on a new input, one per resolution, coarse to fine."""
    if not isinstance(backbone, str):
        raise ValueError(f"{name}: `backbone` must be a registry name such as 'mobilenet'. "
                         f"Received: backbone={backbone!r}")
    if model_info(backbone).task != "image_classification":
        raise ValueError(f"{name}: `backbone` must be an image classifier (keras_zoo.list_models("
                         f"task='image_classification')). Received: backbone={backbone!r}")
    if not isinstance(backbone_kwargs, dict):
        raise ValueError(f"{name}: `backbone_kwargs` must be a dict of the backbone's builder keywords, e.g. "
                         f"{{'alpha': 0.25}}. Received: backbone_kwargs={backbone_kwargs!r}")
    reserved = {"input_shape", "input_tensor", "features_only", "out_indices", "include_top"} & set(backbone_kwargs)
    if reserved:
        raise ValueError(f"{name}: `backbone_kwargs` may not set {sorted(reserved)}; the segmentation model "
                         f"sets them. Received: backbone_kwargs={backbone_kwargs!r}")
    if input_shape is None or len(input_shape) != 3 or None in tuple(input_shape)[:2]:
        raise ValueError(f"{name}: `input_shape` must be a static (height, width, channels): skip connections "
                         f"and TFLite export need known sizes. Received: input_shape={input_shape!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    features = imagenet_utils.feature_extractor(backbone, input_tensor=inputs, **backbone_kwargs).outputs
    # One stage per resolution (the last stage of each), coarse to fine.
    by_size = {}
    for feature in features:
        by_size[tuple(int(d) for d in feature.shape[1:3])] = feature
    return inputs, [by_size[size] for size in sorted(by_size)]


def _size(x):
    return tuple(int(d) for d in x.shape[1:3])


def _integer_factor(small, large):
    """The integer upsampling factor from ``small`` to ``large`` (both axes), or None."""
    factors = {b // a for a, b in zip(small, large) if a and b % a == 0}
    if len(factors) == 1 and all(b == a * next(iter(factors)) for a, b in zip(small, large)):
        return factors.pop()
    return None


def _resize_to(x, size, name):
    """Fixed bilinear resizing to ``size`` (stages of backbones with "valid" padding do not line up 2x)."""
    return layers.Resizing(size[0], size[1], interpolation="bilinear", name=name)(x)


def _check_classes(classes, name):
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"{name}: `classes` must be an integer >= 2 (background included). "
                         f"Received: classes={classes!r}")


def FCN(backbone="mobilenet", backbone_kwargs=None, *, classes=21, input_shape=(224, 224, 3), output_stride=8,
        weights=None, name="fcn"):
    """Fully convolutional network with skip fusion (Long et al., arXiv:1411.4038, Sec. 4.2, Fig. 3).

    Args:
        backbone: registry name of an image classifier with ``features_only``
            (mobilenet, densenet121, resnext50_32x4d, ...).
        backbone_kwargs: the backbone's builder keywords (e.g. ``{"alpha": 0.25}``).
        classes: output classes, background included (21 for PASCAL VOC).
        input_shape: static ``(height, width, channels)``; multiples of the
            backbone's output stride keep every upsampling an exact 2x.
        output_stride: 32, 16 or 8 (FCN-32s, -16s, -8s): fuse the deepest 1, 2 or
            3 stages of different resolutions (strides 32, 16, 8 on a stride-32
            backbone). Where a stage is not an integer multiple of the coarser one
            (backbones with "valid" padding), fixed bilinear resizing replaces the
            learnable 2x deconvolution.
        weights: None or a local weights file.
        name: model name.

    Returns:
        A ``keras.Model`` mapping images to per-pixel logits ``(B, H, W, classes)``.
    """
    _check_classes(classes, name)
    if output_stride not in FCN_OUTPUT_STRIDES:
        raise ValueError(f"{name}: `output_stride` must be one of {FCN_OUTPUT_STRIDES} (FCN-32s/16s/8s). "
                         f"Received: output_stride={output_stride!r}")
    inputs, features = _backbone_features(backbone, dict(backbone_kwargs or {}), input_shape, name)
    fused = FCN_OUTPUT_STRIDES.index(output_stride) + 1
    if len(features) < fused:
        raise ValueError(f"{name}: FCN-{output_stride}s fuses {fused} stages of different resolutions; backbone "
                         f"{backbone!r} has {len(features)}. Use a larger output_stride. "
                         f"Received: output_stride={output_stride}")
    stages = features[:fused]
    x = layers.Conv2D(classes, 1, name=f"{name}_score_{_tag(stages[0], input_shape)}")(stages[0])
    for finer in stages[1:]:
        tag = _tag(finer, input_shape)
        factor = _integer_factor(_size(x), _size(finer))
        x = (_upsample_learnable(x, factor, name=f"{name}_upscore_{tag}") if factor
             else _resize_to(x, _size(finer), name=f"{name}_upscore_{tag}"))
        score = layers.Conv2D(classes, 1, kernel_initializer="zeros", name=f"{name}_score_{tag}")(finer)
        x = layers.Add(name=f"{name}_fuse_{tag}")([x, score])
    target = tuple(int(d) for d in input_shape[:2])
    if _size(x) != target:
        factor = _integer_factor(_size(x), target)
        x = (layers.UpSampling2D(factor, interpolation="bilinear", name=f"{name}_upscore_final") if factor
             else layers.Resizing(*target, interpolation="bilinear", name=f"{name}_upscore_final"))(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return imagenet_utils.load_weights_or_raise(keras.Model(inputs, logits, name=name), weights)


def _tag(feature, input_shape):
    """``stride8``-style name of a stage (``size4x4`` when the input is not a multiple of it)."""
    height, width = _size(feature)
    if input_shape[0] % height == 0 and input_shape[0] // height == input_shape[1] // width:
        return f"stride{input_shape[0] // height}"
    return f"size{height}x{width}"


def conv_bn_relu(x, filters, name):
    """3x3 convolution, batch normalization, ReLU (``name + "_conv"``/``"_bn"``/``"_relu"``)."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name + "_conv")(x)
    x = layers.BatchNormalization(name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def UNet(backbone="mobilenet", backbone_kwargs=None, *, classes=21, input_shape=(224, 224, 3),
         decoder_filters=(256, 128, 64, 32, 16), weights=None, name="unet"):
    """U-Net's expanding path on a zoo backbone (Ronneberger et al., arXiv:1505.04597, Fig. 1).

    Starting at the deepest stage, each decoder stage upsamples 2x with a 2x2
    up-convolution to ``decoder_filters[i]`` channels, concatenates the backbone
    stage of that resolution (when there is one) and applies two 3x3
    conv-BN-ReLU. A 1x1 convolution maps the full-resolution features to the
    class logits (the paper's last layer).

    Args:
        backbone, backbone_kwargs: as in ``FCN``.
        classes: output classes, background included.
        input_shape: static ``(height, width, channels)``.
        decoder_filters: filters of the decoder stages, coarse to fine: one per
            finer backbone stage, then one per 2x step to the input resolution
            (5 for MobileNet). An up-convolution that misses its skip's size (odd
            sizes, "valid"-padded backbones) is followed by bilinear resizing,
            where the paper crops the skip instead.
        weights: None or a local weights file.
        name: model name.

    Returns:
        A ``keras.Model`` mapping images to per-pixel logits ``(B, H, W, classes)``.
    """
    _check_classes(classes, name)
    inputs, features = _backbone_features(backbone, dict(backbone_kwargs or {}), input_shape, name)
    # Decoder targets: each finer backbone stage (with its skip), then 2x steps to the input size.
    targets = [(_size(f), f) for f in features[1:]]
    size, input_size = _size(targets[-1][1] if targets else features[0]), tuple(int(d) for d in input_shape[:2])
    while size != input_size:
        size = tuple(min(2 * s, t) for s, t in zip(size, input_size))
        targets.append((size, None))
    decoder_filters = tuple(decoder_filters)
    if len(decoder_filters) != len(targets) or not all(isinstance(f, int) and f > 0 for f in decoder_filters):
        raise ValueError(f"{name}: `decoder_filters` needs {len(targets)} positive integers, one per decoder stage "
                         f"(sizes {[t for t, _ in targets]}, coarse to fine). Received: decoder_filters={decoder_filters}")
    x = features[0]
    for index, ((size, skip), filters) in enumerate(zip(targets, decoder_filters), start=1):
        block = f"decoder{index}"
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"{block}_upconv")(x)
        if _size(x) != size:
            x = _resize_to(x, size, name=f"{block}_resize")
        if skip is not None:
            x = layers.Concatenate(name=f"{block}_concat")([x, skip])
        x = conv_bn_relu(x, filters, f"{block}_1")
        x = conv_bn_relu(x, filters, f"{block}_2")
    x = layers.Conv2D(classes, 1, name="logits_conv")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return imagenet_utils.load_weights_or_raise(keras.Model(inputs, logits, name=name), weights)


_TINY_MOBILENET = dict(alpha=0.25, blocks=((64, 1), (128, 2), (256, 2), (512, 2), (1024, 2)))

VARIANTS = {
    "fcn_mobilenet": dict(
        builder=FCN,
        config=dict(backbone="mobilenet", backbone_kwargs=dict(alpha=0.25), classes=11,
                    input_shape=(64, 64, 3), output_stride=8, name="fcn_mobilenet"),
        paper="1411.4038",
        tiny=dict(backbone_kwargs=_TINY_MOBILENET, input_shape=(32, 32, 3)),
    ),
    "unet_mobilenet": dict(
        builder=UNet,
        config=dict(backbone="mobilenet", backbone_kwargs=dict(alpha=0.25), classes=11,
                    input_shape=(64, 64, 3), decoder_filters=(128, 64, 32, 16, 16), name="unet_mobilenet"),
        paper="1505.04597",
        tiny=dict(backbone_kwargs=_TINY_MOBILENET, input_shape=(32, 32, 3), decoder_filters=(16, 8, 8, 8, 8)),
    ),
}

for _name, _variant in VARIANTS.items():
    _variant = dict(_variant)
    register_family(
        _variant.pop("builder"),
        {_name: _variant},
        task="segmentation",
        input_spec=imagenet_utils.image_input_spec(64),
        default_dataset="digit_canvases",
        export={"tflite": True, "edgetpu": True},
    )
