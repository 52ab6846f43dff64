"""DenseNet (Huang et al., 2016, arXiv:1608.06993).

Each layer of a dense block receives the concatenation of all earlier feature
maps of the block (Eq. 2) and adds ``growth_rate`` new ones. Two stems:

- ``stem="imagenet"``: 7x7/2 conv, BN-ReLU, 3x3/2 max-pool, four blocks (Table 1).
  Layer names, shapes and the BN epsilon are keras.applications' DenseNet, so
  its weights copy across by layer name (tf_keras spells the stem
  ``conv1/conv``; everything else matches).
- ``stem="cifar"``: one 3x3 conv with ``2 * growth_rate`` filters and three
  blocks (Sec. 3, "Implementation Details"), the DenseNet-BC of Table 2. The
  stem conv has no bias, as the BN of the first dense layer follows it.

DenseNet-BC = bottleneck layers (BN-ReLU-Conv1x1 with ``4k`` filters before each
3x3 conv) plus compression ``0.5`` in the transition layers (Sec. 3).
"""
from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils
from keras_zoo.registry import register_family

layers = keras.layers

# keras.applications' value (cuDNN needs epsilon > 1e-5); keeps its weights exact.
BN_EPSILON = 1.001e-5
STEMS = ("imagenet", "cifar")


def bn_relu(x, bn_name, relu_name):
    x = layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.Activation("relu", name=relu_name)(x)


def conv_block(x, growth_rate, bottleneck=True, dropout_rate=0.0, name=None):
    """One dense layer H_l, its ``growth_rate`` new maps concatenated to ``x`` (Eq. 2)."""
    y = bn_relu(x, f"{name}_0_bn", f"{name}_0_relu")
    if bottleneck:
        y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
        if dropout_rate:
            y = layers.Dropout(dropout_rate, name=f"{name}_1_drop")(y)
        y = bn_relu(y, f"{name}_1_bn", f"{name}_1_relu")
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_2_drop")(y)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([x, y])


def dense_block(x, blocks, growth_rate, bottleneck=True, dropout_rate=0.0, name=None):
    for i in range(blocks):
        x = conv_block(x, growth_rate, bottleneck, dropout_rate, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, compression, dropout_rate=0.0, name=None):
    """Conv1x1 to ``floor(compression * channels)`` maps, then 2x2 average pooling.

    The transition's BN-ReLU is applied by the caller, whose output is the stage feature.
    """
    x = layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(
    blocks,
    growth_rate=32,
    *,
    stem="imagenet",
    bottleneck=True,
    compression=0.5,
    stem_filters=None,
    dropout_rate=0.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    features_only=False,
    out_indices=None,
    name="densenet",
):
    """Builds a DenseNet (arXiv:1608.06993).

    Args:
        blocks: layers per dense block, e.g. ``(6, 12, 24, 16)`` (DenseNet-121)
            or ``(16, 16, 16)`` (DenseNet-BC, L=100).
        growth_rate: ``k``, the maps each layer adds.
        stem: ``"imagenet"`` (7x7/2 conv + max-pool, 224x224 inputs) or
            ``"cifar"`` (one 3x3 conv, 32x32 inputs).
        bottleneck: BN-ReLU-Conv1x1(``4k``) before each 3x3 conv (the "B").
        compression: ``theta``, the fraction of maps a transition keeps (the "C").
        stem_filters: filters of the first conv; None means ``2 * growth_rate``
            as for DenseNet-BC (Sec. 3); the paper's plain DenseNet used 16.
        dropout_rate: dropout after each conv but the first (Sec. 4.2, used
            on C10/C100 without data augmentation).
        include_top: end in global average pooling and a Dense classifier.
        weights: None or the path of a local weights file. ``"imagenet"``
            raises: keras_zoo downloads no weights.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``; defaults to 224x224x3
            (imagenet stem) or 32x32x3 (cifar stem).
        pooling: None, ``"avg"`` or ``"max"`` when ``include_top=False``.
        classes: classifier size.
        classifier_activation: activation of the classifier (None: logits).
        features_only: return the stage outputs instead of the classifier:
            the stem (stride 2, or 1 for cifar) and each dense block after its
            BN-ReLU.
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
            f"`blocks` must be a non-empty sequence of positive layer counts, e.g. (6, 12, 24, 16). "
            f"Received: blocks={blocks!r}"
        )
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"`compression` must be in (0, 1]. Received: compression={compression!r}")
    imagenet_stem = stem == "imagenet"
    downsampling = 2 ** (len(blocks) - 1) * (4 if imagenet_stem else 1)
    inputs, x = imagenet_utils.resolve_image_input(
        input_shape, input_tensor, default_size=224 if imagenet_stem else 32,
        min_size=downsampling, name=name,
    )
    filters = stem_filters or 2 * growth_rate
    if imagenet_stem:
        x = layers.ZeroPadding2D(padding=3, name="conv1_pad")(x)
        x = layers.Conv2D(filters, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = bn_relu(x, "conv1_bn", "conv1_relu")
        features = [x]
        x = layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    else:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        features = [x]

    for stage, layer_count in enumerate(blocks, start=2):
        x = dense_block(x, layer_count, growth_rate, bottleneck, dropout_rate, name=f"conv{stage}")
        last = stage == len(blocks) + 1
        x = bn_relu(x, "bn" if last else f"pool{stage}_bn", "relu" if last else f"pool{stage}_relu")
        features.append(x)
        if not last:
            x = transition_block(x, compression, dropout_rate, name=f"pool{stage}")

    x = imagenet_utils.classification_head(x, include_top, pooling, classes, classifier_activation)
    return imagenet_utils.finish_model(
        inputs, x, name, weights=weights, features=features, features_only=features_only,
        out_indices=out_indices,
    )


def _imagenet(blocks, params):
    return dict(
        config=dict(blocks=blocks),
        reference_params=(
            params, "keras.applications count_params(): all weights, incl. BN moving statistics"
        ),
        tiny=dict(blocks=(1, 1, 1, 1), growth_rate=8, input_shape=(32, 32, 3), classes=10),
    )


def _cifar(depth, growth_rate, params_m):
    layers_per_block = (depth - 4) // 6  # 3 blocks of (1x1, 3x3) pairs + stem, 2 transitions, classifier
    return dict(
        config=dict(blocks=(layers_per_block,) * 3, growth_rate=growth_rate, stem="cifar", classes=10),
        reference_params=(round(params_m * 1e6), "paper Table 2 (rounded to 0.1M): trainable weights"),
        tiny=dict(blocks=(1, 1, 1), growth_rate=4),
        input_spec=imagenet_utils.image_input_spec(32),
    )


# The paper's schedule (Sec. 4.2): SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1
# divided by 10 at 50% and 75% of 300 epochs (CIFAR, batch 64) or at epochs 30 and 60 of 90
# (ImageNet, batch 256).
TRAINING_PRESETS = {
    "cifar": dict(
        optimizer="momentum", nesterov=True, learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
        batch_size=64, epochs=300, lr_schedule=dict(boundaries_epochs=(150, 225), rates=(0.1, 0.01, 0.001)),
        source="Huang et al. 2016 (arXiv:1608.06993), Sec. 4.2",
    ),
    "imagenet": dict(
        optimizer="momentum", nesterov=True, learning_rate=0.1, momentum=0.9, weight_decay=1e-4,
        batch_size=256, epochs=90, lr_schedule=dict(boundaries_epochs=(30, 60), rates=(0.1, 0.01, 0.001)),
        source="Huang et al. 2016 (arXiv:1608.06993), Sec. 4.2",
    ),
}


VARIANTS = {
    "densenet121": _imagenet((6, 12, 24, 16), 8_062_504),
    "densenet169": _imagenet((6, 12, 32, 32), 14_307_880),
    "densenet201": _imagenet((6, 12, 48, 32), 20_242_984),
    "densenet_bc_100_k12": _cifar(100, 12, 0.8),
    "densenet_bc_250_k24": _cifar(250, 24, 15.3),
    "densenet_bc_190_k40": _cifar(190, 40, 25.6),
}
for _name, _variant in VARIANTS.items():
    _variant["config"]["name"] = _name
    _variant["training_preset"] = TRAINING_PRESETS[_variant["config"].get("stem", "imagenet")]



def DenseNet121(**kwargs):
    """DenseNet-121 (Table 1), keras.applications.DenseNet121's twin; takes DenseNet's keywords."""
    return DenseNet(**{**VARIANTS["densenet121"]["config"], **kwargs})


def DenseNet169(**kwargs):
    """DenseNet-169 (Table 1), keras.applications.DenseNet169's twin; takes DenseNet's keywords."""
    return DenseNet(**{**VARIANTS["densenet169"]["config"], **kwargs})


def DenseNet201(**kwargs):
    """DenseNet-201 (Table 1), keras.applications.DenseNet201's twin; takes DenseNet's keywords."""
    return DenseNet(**{**VARIANTS["densenet201"]["config"], **kwargs})


def DenseNetBC100(**kwargs):
    """DenseNet-BC (L=100, k=12) for 32x32 images (Table 2); takes DenseNet's keywords."""
    return DenseNet(**{**VARIANTS["densenet_bc_100_k12"]["config"], **kwargs})


register_family(
    DenseNet,
    VARIANTS,
    task="image_classification",
    paper="1608.06993",
    input_spec=imagenet_utils.image_input_spec(224),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
)
