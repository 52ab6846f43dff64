"""MobileNet v1 (Howard et al., 2017, arXiv:1704.04861).

Depthwise separable convolutions (Sec. 3.1): a 3x3 depthwise conv and a 1x1
pointwise conv, each followed by BN and ReLU, in the 28-layer stack of Table 1.
``alpha`` is the width multiplier (Sec. 3.3) and ``depth_multiplier`` the
channel multiplier of the depthwise convs, as in keras.applications.

Layer names, padding (explicit bottom/right padding before strided depthwise
convs), ReLU6 and the 1x1-conv classifier follow keras.applications.MobileNet,
so its weights copy across by layer name. ReLU6 rather than the paper's ReLU is
what the released TF-slim checkpoints use and suits int8 quantization.
"""
from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils
from keras_zoo.registry import register_family

layers = keras.layers

# (pointwise filters, stride) of the 13 depthwise separable blocks, Table 1.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def conv_block(x, filters, alpha, strides=1):
    """The full 3x3 conv that opens the network (Table 1, row 1)."""
    x = layers.Conv2D(
        int(filters * alpha), 3, padding="same", use_bias=False, strides=strides, name="conv1"
    )(x)
    x = layers.BatchNormalization(axis=-1, name="conv1_bn")(x)
    return layers.ReLU(6.0, name="conv1_relu")(x)


def depthwise_conv_block(x, pointwise_filters, alpha, depth_multiplier=1, strides=1, block_id=1):
    """Depthwise 3x3 conv-BN-ReLU, then pointwise 1x1 conv-BN-ReLU (Fig. 3, right)."""
    if strides == 1:
        padding = "same"
    else:
        # TF-slim pads only bottom/right for stride 2; keras.applications does the same.
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
        padding = "valid"
    x = layers.DepthwiseConv2D(
        3, padding=padding, depth_multiplier=depth_multiplier, strides=strides, use_bias=False,
        name=f"conv_dw_{block_id}",
    )(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(
        int(pointwise_filters * alpha), 1, padding="same", use_bias=False, name=f"conv_pw_{block_id}"
    )(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def MobileNet(
    input_shape=None,
    alpha=1.0,
    depth_multiplier=1,
    dropout=1e-3,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    *,
    blocks=BLOCKS,
    features_only=False,
    out_indices=None,
    name="mobilenet",
):
    """Builds MobileNet v1 (arXiv:1704.04861), keras.applications.MobileNet's signature.

    Args:
        input_shape: ``(height, width, channels)``, default 224x224x3; height
            and width at least 32.
        alpha: width multiplier (Sec. 3.3): every layer has ``int(filters * alpha)``
            filters. The paper uses 1.0, 0.75, 0.5 and 0.25.
        depth_multiplier: channel multiplier of the depthwise convolutions.
            (The paper's resolution multiplier is the input size.)
        dropout: dropout rate before the classifier.
        include_top: end in global average pooling and a 1x1-conv classifier.
        weights: None or the path of a local weights file; ``"imagenet"`` raises.
        input_tensor: optional Keras tensor to build on.
        pooling: None, ``"avg"`` or ``"max"`` when ``include_top=False``.
        classes: classifier size.
        classifier_activation: activation of the classifier (None: logits).
        blocks: ``(pointwise filters, stride)`` of each depthwise separable
            block; the paper's Table 1 by default. Tests shorten it.
        features_only: return stage outputs instead of the classifier: the
            last block output at strides 2, 4, 8, 16 and 32 (of the default stack).
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
    if not alpha > 0:
        raise ValueError(f"`alpha` must be positive, e.g. 1.0, 0.75, 0.5 or 0.25. Received: alpha={alpha!r}")
    if not isinstance(depth_multiplier, int) or depth_multiplier < 1:
        raise ValueError(
            f"`depth_multiplier` must be a positive integer. Received: depth_multiplier={depth_multiplier!r}"
        )
    strides = [s for _, s in blocks]
    inputs, x = imagenet_utils.resolve_image_input(
        input_shape, input_tensor, default_size=224, min_size=2 ** (1 + strides.count(2)), name=name,
    )
    x = conv_block(x, 32, alpha, strides=2)
    features = []
    for block_id, (filters, stride) in enumerate(blocks, start=1):
        next_stride = blocks[block_id][1] if block_id < len(blocks) else 2
        x = depthwise_conv_block(x, filters, alpha, depth_multiplier, stride, block_id)
        if next_stride == 2:
            features.append(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.global_pool(x, pooling)
    return imagenet_utils.finish_model(
        inputs, x, name, weights=weights, features=features, features_only=features_only,
        out_indices=out_indices,
    )


VARIANTS = {
    "mobilenet": dict(
        config=dict(alpha=1.0, depth_multiplier=1, name="mobilenet"),
        reference_params=(
            4_253_864,
            "keras.applications.MobileNet count_params(): all weights, incl. BN moving statistics",
        ),
        tiny=dict(
            alpha=0.25, input_shape=(32, 32, 3), classes=10,
            blocks=((64, 1), (128, 2), (256, 2), (512, 2), (1024, 2)),
        ),
    ),
}

# Sec. 4: "RMSprop with asynchronous gradient descent similar to Inception V3", little
# regularisation; no schedule is given, so the numbers are Inception V3's (arXiv:1512.00567,
# Sec. 8: RMSProp decay 0.9, epsilon 1.0, lr 0.045 decayed by 0.94 every 2 epochs) and
# TF-slim's mobilenet_v1 weight decay 4e-5 (none on depthwise filters, Sec. 4).
TRAINING_PRESET = dict(
    optimizer="rmsprop", learning_rate=0.045, rho=0.9, epsilon=1.0, weight_decay=4e-5,
    lr_schedule=dict(exponential_decay_rate=0.94, decay_every_epochs=2),
    source="Howard et al. 2017 (arXiv:1704.04861), Sec. 4; Szegedy et al. (arXiv:1512.00567), Sec. 8",
)


register_family(
    MobileNet,
    VARIANTS,
    task="image_classification",
    paper="1704.04861",
    input_spec=imagenet_utils.image_input_spec(224),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
    training_preset=TRAINING_PRESET,
)
