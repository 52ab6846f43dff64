"""Binary networks: BinaryNet (arXiv:1602.02830) and XNOR-Net (arXiv:1603.05279).

``binarynet_cifar`` is BinaryNet's CIFAR-10 ConvNet (Courbariaux et al., 2016,
benchmark results): 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10, batch
normalization after every layer. The order follows the authors'
Theano/Lasagne ``Train-time/cifar10.py``: conv, (max-pool,) BN, sign; the
classifier ends Dense(10) then BN. Every kernel is binarized (the first
layer's too) with ``sign``; activations are binarized too except the image,
which the first layer reads as is. Convolutions and dense layers keep the
biases the reference's Lasagne layers have (the following BN cancels them).
BN has epsilon 1e-4 and a moving-average factor of 0.1 (reference values).
The reference's training recipe (squared hinge loss, Adam with per-layer Glorot
learning-rate scales, latent weights clipped after each step) is not part of the
model; the clipping is, as the ``ClipWeights`` kernel constraint.

``xnornet_alexnet`` is XNOR-Net's AlexNet (Rastegari et al., 2016, Sec. 4 and
the authors' Torch ``models/alexnetxnor.lua``). The first and last layers are
real-valued; every other layer is XNOR-Net's block (Fig. 3): BN, binary
activation, binary convolution with per-channel ``alpha`` (then max-pooling
where AlexNet pools). Its BNs have no affine parameters, as in the reference.
``activation_scale=True`` (default) multiplies the binary convolutions by the
paper's ``K`` (Sec. 3.2); the authors' Torch code leaves ``K`` out
(``activation_scale=False``). The 6x6 "fc6" convolution on the 6x6 map is a
Flatten + Dense (same weights; ``K`` is then the mean ``|x|`` over all inputs),
so with the top the input size is fixed. Departure: the reference's weight
mean-centering before binarization (a training-loop step) is not part of
the model.

``binarize=False`` builds the same layout with real kernels, and with the
hard tanh (``clip(x, -1, 1)``, the function whose derivative the STE uses)
where the binary networks apply ``sign``: the float baseline of a binary net.
Binary layers clip their latent weights to [-1, 1] (``ClipWeights``). In
BinaryNet, a BN after a layer with binary inputs starts its moving mean at -0.5
and its moving variance at the layer's fan-in (``_binarynet_bn``): an initial
state only.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.binary import BinaryConv2D, BinaryDense, ClipWeights, HardTanh
from keras_zoo.layers.imagenet_utils import (
    check_classifier_args,
    finish_model,
    global_pool,
    image_input_spec,
    resolve_image_input,
)
from keras_zoo.registry import register_family

layers = keras.layers

# Lasagne BatchNormLayer in the BinaryNet reference: epsilon 1e-4, alpha (= 1 - momentum) 0.1.
BINARYNET_BN = dict(epsilon=1e-4, momentum=0.9)
# Torch SpatialBatchNormalization(n, eps, false): no affine parameters, momentum 0.1.
XNOR_BN = dict(center=False, scale=False, momentum=0.9)

_EDGETPU = ("sign(x) of the activations lowers to GREATER_EQUAL + SELECT_V2, which the Edge TPU "
            "does not run (CPU fallback); the binarized kernels themselves are plain int8 constants")


def _check_binary_args(binarize, widths, name):
    if not isinstance(binarize, bool):
        raise ValueError(f"{name}: `binarize` must be True or False. Received: binarize={binarize!r}")
    for arg, value, count in widths:
        if (not isinstance(value, (tuple, list)) or len(value) != count
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
            raise ValueError(
                f"{name}: `{arg}` must be a tuple of {count} positive integers. Received: {arg}={value!r}"
            )


def _check_static_size(x, name):
    if any(d is None for d in x.shape[1:]):
        raise ValueError(
            f"{name}: the fully connected top flattens the last feature map, so height and width must "
            f"be fixed; pass e.g. input_shape=(32, 32, 3), or include_top=False. "
            f"Received: input shape {tuple(x.shape[1:])}"
        )


def _conv(x, filters, kernel_size, binarize, binarize_inputs, name, scale="none", activation_scale=False,
          **kwargs):
    if binarize:
        return BinaryConv2D(filters, kernel_size, binarize_inputs=binarize_inputs, scale=scale,
                            activation_scale=activation_scale, kernel_constraint=ClipWeights(1.0), name=name,
                            **kwargs)(x)
    return layers.Conv2D(filters, kernel_size, name=name, **kwargs)(x)


def _dense(x, units, binarize, name, scale="none", activation_scale=False):
    if binarize:
        return BinaryDense(units, scale=scale, activation_scale=activation_scale,
                           kernel_constraint=ClipWeights(1.0), name=name)(x)
    return layers.Dense(units, name=name)(x)


def _binarynet_bn(x, fan_in, binarize, name):
    """BN with initial moving statistics that suit a layer with binary inputs and weights.

    Such a layer outputs integer sums of ``fan_in`` products of +-1, with variance
    ``fan_in`` at initialisation. The moving variance starts there, so an untrained
    model's inference-mode BN output is near unit scale instead of saturating the
    sign's straight-through window; the moving mean starts at -0.5, so the sign's
    threshold lies between integers: at 0 the tie ``sign(0) = +1`` would be decided
    by rounding wherever a converter folds the BN scale into the kernel. Only the
    initial state differs from Keras' defaults; training overwrites it.
    """
    if not (binarize and fan_in):
        return layers.BatchNormalization(**BINARYNET_BN, name=name)(x)
    return layers.BatchNormalization(**BINARYNET_BN, moving_mean_initializer=keras.initializers.Constant(-0.5),
                                     moving_variance_initializer=keras.initializers.Constant(float(fan_in)),
                                     name=name)(x)


def _binary_activation(x, binarize, name):
    """The sign lives in the next binary layer; the real twin applies the hard tanh here."""
    return x if binarize else HardTanh(name=name)(x)


def BinaryNet(
    filters=(128, 256, 512),
    units=(1024, 1024),
    binarize=True,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    features_only=False,
    out_indices=None,
    name="binarynet_cifar",
):
    """BinaryNet's VGG-like CIFAR-10 ConvNet (Courbariaux et al., arXiv:1602.02830).

    Args:
        filters: widths of the three stages of two 3x3 convolutions.
        units: widths of the two hidden fully connected layers.
        binarize: binary kernels and activations (BinaryNet); False gives the
            same network with real kernels and hard-tanh activations.
        include_top: end in the fully connected classifier. Needs a fixed input size.
        weights: None or the path of a local weights file.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default ``(32, 32, 3)``.
        pooling: None, "avg" or "max" when ``include_top=False``.
        classes: number of classes (10 for CIFAR-10).
        classifier_activation: applied after the final BN, in the ``predictions``
            layer (the paper trains the BN output with a squared hinge loss: use
            None for that).
        features_only: return the three stage outputs (after each stage's BN) instead.
        out_indices: which stage outputs ``features_only`` returns.
        name: model name.
    """
    check_classifier_args(weights=weights, include_top=include_top, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, features_only=features_only,
                          out_indices=out_indices)
    _check_binary_args(binarize, [("filters", filters, 3), ("units", units, 2)], name)
    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=32, min_size=8, name=name)

    stages = []
    for stage, width in enumerate(filters, start=1):
        prefix = f"block{stage}"
        fan_in = 9 * x.shape[-1] if stage > 1 else None  # the image input is not binarized
        x = _conv(x, width, 3, binarize, binarize_inputs=stage > 1, padding="same", name=prefix + "_conv1")
        x = _binarynet_bn(x, fan_in, binarize, prefix + "_bn1")
        x = _binary_activation(x, binarize, prefix + "_act1")
        x = _conv(x, width, 3, binarize, binarize_inputs=True, padding="same", name=prefix + "_conv2")
        x = layers.MaxPooling2D(2, name=prefix + "_pool")(x)
        x = _binarynet_bn(x, 9 * width, binarize, prefix + "_bn2")
        x = _binary_activation(x, binarize, prefix + "_act2")
        stages.append(x)
    if features_only or not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights=weights, features=stages,
                            features_only=features_only, out_indices=out_indices)

    _check_static_size(x, name)
    x = layers.Flatten(name="flatten")(x)
    for index, width in enumerate((*units, classes), start=1):
        fan_in = x.shape[-1]
        x = _dense(x, width, binarize, name=f"fc{index}")
        x = _binarynet_bn(x, fan_in, binarize, f"fc{index}_bn")
        if index <= len(units):
            x = _binary_activation(x, binarize, f"fc{index}_act")
    x = layers.Activation(classifier_activation, name="predictions")(x)
    return finish_model(inputs, x, name, weights=weights)


def XNORNet(
    filters=(96, 256, 384, 384, 256),
    units=(4096, 4096),
    binarize=True,
    activation_scale=True,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    features_only=False,
    out_indices=None,
    name="xnornet_alexnet",
):
    """XNOR-Net AlexNet (Rastegari et al., arXiv:1603.05279; layout of the authors' ``alexnetxnor.lua``).

    conv1 11x11/4 (real) - BN - ReLU - MP3/2, then XNOR blocks (BN, sign,
    binary conv with alpha): 5x5 - MP3/2, 3x3, 3x3, 3x3 - MP3/2, fc6, fc7,
    then BN - ReLU - a real ``predictions`` layer.

    Args:
        filters: widths of the five convolutions.
        units: widths of fc6 and fc7.
        binarize: XNOR blocks; False gives the same net with real kernels and
            hard-tanh activations.
        activation_scale: multiply binary layers by the paper's ``K`` (Sec. 3.2).
        include_top: end in fc6-fc8. Needs a fixed input size (224 for 6x6 at pool5).
        weights: None or the path of a local weights file.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default ``(224, 224, 3)``;
            at least 63x63.
        pooling: None, "avg" or "max" when ``include_top=False``.
        classes: number of classes.
        classifier_activation: activation of ``predictions``.
        features_only: return the outputs of pool1, pool2 and pool5 instead.
        out_indices: which of them ``features_only`` returns.
        name: model name.
    """
    check_classifier_args(weights=weights, include_top=include_top, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, features_only=features_only,
                          out_indices=out_indices)
    _check_binary_args(binarize, [("filters", filters, 5), ("units", units, 2)], name)
    if not isinstance(activation_scale, bool):
        raise ValueError(f"{name}: `activation_scale` must be True or False. "
                         f"Received: activation_scale={activation_scale!r}")
    xnor = dict(scale="channel", activation_scale=activation_scale and binarize)
    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=224, min_size=63, name=name)

    x = layers.ZeroPadding2D(2, name="conv1_pad")(x)
    x = layers.Conv2D(filters[0], 11, strides=4, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-5, **XNOR_BN, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    stages = [x]
    for index, (width, size) in enumerate(zip(filters[1:], (5, 3, 3, 3)), start=2):
        prefix = f"conv{index}"
        x = layers.BatchNormalization(epsilon=1e-4, **XNOR_BN, name=prefix + "_bn")(x)
        x = _binary_activation(x, binarize, prefix + "_act")
        x = _conv(x, width, size, binarize, binarize_inputs=True, padding="same", name=prefix + "_conv",
                  **(xnor if binarize else {}))
        if index in (2, 5):
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)
            stages.append(x)
    if features_only or not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights=weights, features=stages,
                            features_only=features_only, out_indices=out_indices)

    _check_static_size(x, name)
    # fc6's BN normalizes per channel of the pool5 map, as the reference's 6x6 convolution does.
    x = layers.BatchNormalization(epsilon=1e-4, **XNOR_BN, name="fc6_bn")(x)
    x = _binary_activation(x, binarize, "fc6_act")
    x = layers.Flatten(name="flatten")(x)
    x = _dense(x, units[0], binarize, name="fc6", **(xnor if binarize else {}))
    x = layers.BatchNormalization(epsilon=1e-4, **XNOR_BN, name="fc7_bn")(x)
    x = _binary_activation(x, binarize, "fc7_act")
    x = _dense(x, units[1], binarize, name="fc7", **(xnor if binarize else {}))
    x = layers.BatchNormalization(epsilon=1e-3, **XNOR_BN, name="fc8_bn")(x)
    x = layers.ReLU(name="fc8_relu")(x)
    x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return finish_model(inputs, x, name, weights=weights)


# Full-integer PTQ keeps the binary kernels exactly (+-alpha per channel, tests/test_binary.py)
# but rounds real-valued activations to int8: those within half a step of zero change sign. In
# BinaryNet the first layer reads the real image and every later layer is binary, so such flips
# cascade: an untrained tiny model's int8 outputs miss export.verify's thresholds (rel. RMSE
# ~1.2), while float32 conversion agrees with Keras (max abs diff 3e-8). XNOR-Net tiny passes int8.
register_family(
    BinaryNet,
    {
        "binarynet_cifar": dict(
            config=dict(filters=(128, 256, 512), units=(1024, 1024), name="binarynet_cifar"),
            tiny=dict(filters=(8, 8, 16), units=(16, 16)),
        ),
    },
    task="image_classification",
    paper="1602.02830",
    input_spec=image_input_spec(32),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": _EDGETPU},
)

register_family(
    XNORNet,
    {
        "xnornet_alexnet": dict(
            config=dict(filters=(96, 256, 384, 384, 256), units=(4096, 4096), name="xnornet_alexnet"),
            tiny=dict(filters=(8, 8, 8, 8, 8), units=(16, 16), input_shape=(63, 63, 3), classes=10),
        ),
    },
    task="image_classification",
    paper="1603.05279",
    input_spec=image_input_spec(224),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": _EDGETPU},
)
