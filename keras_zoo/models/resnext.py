"""ResNeXt (Xie et al., 2016, arXiv:1611.05431).

The residual bottleneck of ResNet with its 3x3 conv split into ``cardinality``
groups (Fig. 3(c), the grouped-convolution form): 1x1 conv, grouped 3x3 conv
(``Conv2D(groups=cardinality)``), 1x1 conv, BN after every conv, ReLU after each
BN except the block's last, whose ReLU follows the addition (Sec. 4).
Downsampling is by stride 2 in the 3x3 conv of the first block of a stage, and
shortcuts are identities except where the shape changes, which get a 1x1
projection (Sec. 3 and 4; option B of ResNet).

Stems: ``"imagenet"`` is ResNet-50's 7x7/2 conv and 3x3/2 max-pool, four stages
(Table 1). ``"cifar"`` is one 3x3 conv with 64 filters and three stages of
three blocks, widths 256, 512, 1024 (Sec. 5.3, ResNeXt-29). Layer names follow
keras.applications' ResNet (``conv2_block1_2_conv``); convs have no bias.
"""
from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils
from keras_zoo.registry import register_family

layers = keras.layers

BN_EPSILON = 1.001e-5
STEMS = ("imagenet", "cifar")


def conv_bn(x, filters, kernel_size, strides=1, groups=1, relu=True, name=None):
    """Conv (no bias), BN and optionally ReLU, named ``name_conv/_bn/_relu``."""
    if strides > 1 and kernel_size > 1:
        # Symmetric padding as in the reference (fb.resnet.torch); "same" would pad bottom/right only.
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, groups=groups, use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def bottleneck_block(x, filters, width, cardinality, strides=1, name=None):
    """One ResNeXt block (Fig. 3(c)): ``width`` channels in ``cardinality`` groups, ``filters`` out."""
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides=strides, relu=False, name=f"{name}_0")
    else:
        shortcut = x
    x = conv_bn(x, width, 1, name=f"{name}_1")
    x = conv_bn(x, width, 3, strides=strides, groups=cardinality, name=f"{name}_2")
    x = conv_bn(x, filters, 1, relu=False, name=f"{name}_3")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def ResNeXt(
    blocks,
    cardinality=32,
    group_width=4,
    *,
    stem="imagenet",
    stem_filters=64,
    filters=256,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    features_only=False,
    out_indices=None,
    name="resnext",
):
    """Builds a ResNeXt (arXiv:1611.05431).

    Args:
        blocks: blocks per stage, e.g. ``(3, 4, 6, 3)`` (ResNeXt-50) or
            ``(3, 3, 3)`` (ResNeXt-29).
        cardinality: ``C``, the number of groups of the 3x3 convs.
        group_width: ``d``, channels per group in the first stage; it doubles
            with every stage, as do the output widths (Sec. 3, rule 2).
        stem: ``"imagenet"`` (7x7/2 conv + max-pool, 224x224 inputs) or
            ``"cifar"`` (one 3x3 conv, 32x32 inputs).
        stem_filters: filters of the stem conv (64 in the paper).
        filters: output channels of the first stage's blocks (256).
        include_top: end in global average pooling and a Dense classifier.
        weights: None or the path of a local weights file; ``"imagenet"`` raises.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``; defaults to 224x224x3
            (imagenet stem) or 32x32x3 (cifar stem).
        pooling: None, ``"avg"`` or ``"max"`` when ``include_top=False``.
        classes: classifier size.
        classifier_activation: activation of the classifier (None: logits).
        features_only: return the stage outputs instead of the classifier:
            the stem's ReLU, then every stage's last block.
        out_indices: which stage outputs to return (default: all).
        name: model name.

    Returns:
        A ``keras.Model``.
    """
    imagenet_utils.check_classifier_args(
        weights=weights, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, features_only=features_only,
        out_indices=out_indices,
    )
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}. Received: stem={stem!r}")
    if not blocks or any(not isinstance(b, int) or b < 1 for b in blocks):
        raise ValueError(
            f"`blocks` must be a non-empty sequence of positive block counts, e.g. (3, 4, 6, 3). "
            f"Received: blocks={blocks!r}"
        )
    imagenet_stem = stem == "imagenet"
    inputs, x = imagenet_utils.resolve_image_input(
        input_shape, input_tensor, default_size=224 if imagenet_stem else 32,
        min_size=2 ** (len(blocks) - 1) * (4 if imagenet_stem else 1), name=name,
    )
    if imagenet_stem:
        x = conv_bn(x, stem_filters, 7, strides=2, name="conv1")
        features = [x]
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    else:
        x = conv_bn(x, stem_filters, 3, name="conv1")
        features = [x]

    for stage, block_count in enumerate(blocks):
        width = cardinality * group_width * 2 ** stage
        for block in range(block_count):
            x = bottleneck_block(
                x, filters * 2 ** stage, width, cardinality,
                strides=2 if stage > 0 and block == 0 else 1,
                name=f"conv{stage + 2}_block{block + 1}",
            )
        features.append(x)

    x = imagenet_utils.classification_head(x, include_top, pooling, classes, classifier_activation)
    return imagenet_utils.finish_model(
        inputs, x, name, weights=weights, features=features, features_only=features_only,
        out_indices=out_indices,
    )


TRAINING_PRESETS = {
    # Sec. 4: SGD, batch 256, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 three
    # times with ResNet's schedule as implemented in fb.resnet.torch (epochs 30, 60, 80 of 90;
    # Nesterov momentum, as fb.resnet.torch's train.lua).
    "imagenet": dict(
        optimizer="momentum", nesterov=True, learning_rate=0.1, momentum=0.9, weight_decay=1e-4, batch_size=256,
        epochs=90, lr_schedule=dict(boundaries_epochs=(30, 60, 80), rates=(0.1, 0.01, 0.001, 0.0001)),
        source="Xie et al. 2016 (arXiv:1611.05431), Sec. 4; fb.resnet.torch",
    ),
    # Sec. 5.3: batch 128, weight decay 5e-4, momentum 0.9, lr 0.1 divided by 10 at epochs
    # 150 and 225 of 300.
    "cifar": dict(
        optimizer="momentum", nesterov=True, learning_rate=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128,
        epochs=300, lr_schedule=dict(boundaries_epochs=(150, 225), rates=(0.1, 0.01, 0.001)),
        source="Xie et al. 2016 (arXiv:1611.05431), Sec. 5.3",
    ),
}


TINY = dict(cardinality=4, group_width=2, stem_filters=8, filters=16)

VARIANTS = {
    "resnext50_32x4d": dict(
        config=dict(blocks=(3, 4, 6, 3), cardinality=32, group_width=4, name="resnext50_32x4d"),
        reference_params=(
            25_028_904,
            "torchvision resnext50_32x4d: trainable weights (Keras count_params() adds BN moving statistics)",
        ),
        tiny=dict(blocks=(1, 1, 1, 1), input_shape=(32, 32, 3), classes=10, **TINY),
        training_preset=TRAINING_PRESETS["imagenet"],
    ),
    "resnext29_8x64d": dict(
        config=dict(blocks=(3, 3, 3), cardinality=8, group_width=64, stem="cifar", classes=10,
                    name="resnext29_8x64d"),
        reference_params=(34_400_000, "paper Table 7 (rounded to 0.1M): trainable weights"),
        tiny=dict(blocks=(1, 1, 1), **TINY),
        input_spec=imagenet_utils.image_input_spec(32),
        training_preset=TRAINING_PRESETS["cifar"],
    ),
    "resnext29_16x64d": dict(
        config=dict(blocks=(3, 3, 3), cardinality=16, group_width=64, stem="cifar", classes=10,
                    name="resnext29_16x64d"),
        reference_params=(68_100_000, "paper Table 7 (rounded to 0.1M): trainable weights"),
        tiny=dict(blocks=(1, 1, 1), **TINY),
        input_spec=imagenet_utils.image_input_spec(32),
        training_preset=TRAINING_PRESETS["cifar"],
    ),
}



def ResNeXt50(**kwargs):
    """ResNeXt-50 (32x4d), Table 1 of the paper; takes ResNeXt's keywords."""
    return ResNeXt(**{**VARIANTS["resnext50_32x4d"]["config"], **kwargs})


def ResNeXt29(**kwargs):
    """ResNeXt-29 (8x64d) for 32x32 images, Sec. 5.3; takes ResNeXt's keywords."""
    return ResNeXt(**{**VARIANTS["resnext29_8x64d"]["config"], **kwargs})


register_family(
    ResNeXt,
    VARIANTS,
    task="image_classification",
    paper="1611.05431",
    input_spec=imagenet_utils.image_input_spec(224),
    default_dataset="digits",
    export={
        "tflite": True,
        "edgetpu": "grouped CONV_2D (filter depth < input depth) is not in the Edge TPU compiler's "
                   "supported op forms; expect CPU fallback from conv2_block1_2_conv",
    },
)
