"""SqueezeNet (Iandola et al., 2016, arXiv:1602.07360).

Fire modules (Sec. 3.2): a 1x1 "squeeze" conv feeding parallel 1x1 and 3x3
"expand" convs whose outputs are concatenated; ReLU after every conv; no BN.
``squeezenet1_0`` is the macroarchitecture of Table 1 (7x7/2 conv with 96
filters, max-pools after conv1, fire4 and fire8); ``squeezenet1_1`` is the
v1.1 of the authors' repository (3x3/2 conv with 64 filters, pools after conv1,
fire3 and fire5: 2.4x less computation, same accuracy). Filter counts and
parameter totals match torchvision's ``squeezenet1_0``/``squeezenet1_1``.

The classifier is the paper's: dropout 0.5 after fire9, a 1x1 conv to
``classes`` with ReLU, global average pooling, then ``classifier_activation``.

``bypass`` adds the residual connections of Sec. 6 (Fig. 2): ``"simple"``
adds an identity bypass around every fire module whose input and output
widths agree (fire3, 5, 7, 9); ``"complex"`` also bypasses the others through a
1x1 conv (with bias, no ReLU) with as many filters as the module outputs. That
adds 341,248 weights to v1.0 (6.4 MB in float32); the paper's Table 3 lists
7.7 MB for complex bypass, a difference its text does not explain.

Initialization follows the reference implementations: the classifier conv10 is
drawn from N(0, 0.01) (Caffe ``train_val.prototxt`` of github.com/forresti/SqueezeNet
and torchvision), every other conv from He-uniform (torchvision's
``kaiming_uniform_``), biases zero. At inputs as small as 32x32, conv10 sees a 1x1
map: its ReLU gates each class score by one position, and cross-entropy, which
pushes every wrong class down, soon leaves whole classes behind a dead ReLU
(digits at 32x32, Adam 1e-3, 5 epochs: Keras' default Glorot init stays at chance,
the reference init reaches 19% with 9 of 10 conv10 channels dead).
``classifier_relu=False`` drops that ReLU (a departure) for such inputs: 78% in
the same run.

Max-pooling floors the output size. At the authors' 227x227 input that gives
Table 1's map sizes (111, 55, 27, 13); Caffe and torchvision round up, which
differs at some other resolutions (e.g. 224 for v1.0) but never in parameters.
"""
from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils
from keras_zoo.registry import register_family

layers = keras.layers

BYPASS_MODES = (None, "simple", "complex")


def _conv(filters, kernel_size, name, final=False, **kwargs):
    """A conv with the reference init (module docstring): N(0, 0.01) for conv10, He-uniform otherwise."""
    initializer = (keras.initializers.RandomNormal(mean=0.0, stddev=0.01) if final
                   else keras.initializers.HeUniform())
    return layers.Conv2D(filters, kernel_size, kernel_initializer=initializer, name=name, **kwargs)

# Fire modules 2..9 as (squeeze, expand1x1, expand3x3) filters, Table 1.
FIRE_FILTERS = (
    (16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
    (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
)


def fire_module(x, squeeze, expand1x1, expand3x3, bypass=None, name=None):
    """Squeeze 1x1 -> [expand 1x1, expand 3x3] concatenated (Fig. 1), with an optional bypass."""
    inputs = x
    x = _conv(squeeze, 1, activation="relu", name=f"{name}_squeeze1x1")(x)
    left = _conv(expand1x1, 1, activation="relu", name=f"{name}_expand1x1")(x)
    right = _conv(expand3x3, 3, padding="same", activation="relu", name=f"{name}_expand3x3")(x)
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")([left, right])
    if bypass is None:
        return x
    if inputs.shape[-1] == x.shape[-1]:
        return layers.Add(name=f"{name}_add")([inputs, x])
    if bypass == "complex":
        shortcut = _conv(x.shape[-1], 1, name=f"{name}_bypass_conv")(inputs)
        return layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def SqueezeNet(
    stem_filters=96,
    stem_kernel=7,
    pool_after=(2, 6),
    *,
    fire_filters=FIRE_FILTERS,
    bypass=None,
    dropout=0.5,
    classifier_relu=True,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    features_only=False,
    out_indices=None,
    name="squeezenet",
):
    """Builds a SqueezeNet (arXiv:1602.07360).

    Args:
        stem_filters: filters of conv1 (96 in v1.0, 64 in v1.1).
        stem_kernel: kernel size of the stride-2 conv1 (7 in v1.0, 3 in v1.1).
        pool_after: indices into ``fire_filters`` (0 is fire2) of the fire
            modules followed by a 3x3/2 max-pool: ``(2, 6)`` in v1.0 (fire4,
            fire8), ``(1, 3)`` in v1.1 (fire3, fire5). conv1 is always followed by one.
        fire_filters: ``(squeeze, expand1x1, expand3x3)`` of each fire module,
            fire2 first.
        bypass: None, ``"simple"`` or ``"complex"`` (Sec. 6).
        dropout: dropout rate after the last fire module (0.5 in the paper).
        classifier_relu: the paper's ReLU after conv10. False drops it (a
            departure) for inputs so small that conv10 sees a 1x1 map, e.g.
            32x32, where its dead ReLUs silence whole classes (module docstring).
        include_top: end in the conv10 classifier and global average pooling.
        weights: None or the path of a local weights file; ``"imagenet"`` raises.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default 224x224x3.
        pooling: None, ``"avg"`` or ``"max"`` when ``include_top=False``.
        classes: classifier size.
        classifier_activation: activation after the pooled conv10 (None: logits).
        features_only: return stage outputs instead of the classifier: conv1
            (stride 2) and the last fire module before each max-pool and at the end.
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
    if bypass not in BYPASS_MODES:
        raise ValueError(
            f"`bypass` must be one of {BYPASS_MODES} (Sec. 6 of the paper). Received: bypass={bypass!r}"
        )
    if any(not 0 <= i < len(fire_filters) - 1 for i in pool_after):
        raise ValueError(
            f"`pool_after` must index fire modules 0..{len(fire_filters) - 2} (a pool cannot follow "
            f"the last one). Received: pool_after={pool_after!r}"
        )
    # Only conv1 (stride 2, valid) and the 3x3/2 valid max-pools shrink the input;
    # walk back from a 1x1 output.
    size = 1
    for _ in range(1 + len(pool_after)):
        size = 2 * size + 1
    min_size = 2 * (size - 1) + stem_kernel
    inputs, x = imagenet_utils.resolve_image_input(
        input_shape, input_tensor, default_size=224, min_size=min_size, name=name,
    )
    x = _conv(stem_filters, stem_kernel, strides=2, activation="relu", name="conv1")(x)
    features = [x]
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for index, (squeeze, expand1x1, expand3x3) in enumerate(fire_filters):
        fire = index + 2
        x = fire_module(x, squeeze, expand1x1, expand3x3, bypass, name=f"fire{fire}")
        if index in pool_after:
            features.append(x)
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{fire}")(x)
    features.append(x)

    if include_top:
        x = layers.Dropout(dropout, name="drop9")(x)
        x = _conv(classes, 1, activation="relu" if classifier_relu else None, name="conv10", final=True)(x)
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.global_pool(x, pooling)
    return imagenet_utils.finish_model(
        inputs, x, name, weights=weights, features=features, features_only=features_only,
        out_indices=out_indices,
    )


TINY = dict(
    fire_filters=((4, 8, 8), (4, 8, 8), (8, 16, 16), (8, 16, 16)), pool_after=(1,),
    input_shape=(32, 32, 3), classes=10,
)

VARIANTS = {
    "squeezenet1_0": dict(
        config=dict(stem_filters=96, stem_kernel=7, pool_after=(2, 6), name="squeezenet1_0"),
        reference_params=(1_248_424, "torchvision squeezenet1_0: trainable weights (no BN)"),
        tiny=dict(stem_filters=16, **TINY),
    ),
    "squeezenet1_1": dict(
        config=dict(stem_filters=64, stem_kernel=3, pool_after=(1, 3), name="squeezenet1_1"),
        reference_params=(1_235_496, "torchvision squeezenet1_1: trainable weights (no BN)"),
        tiny=dict(stem_filters=16, **TINY),
    ),
}


def SqueezeNet1_0(**kwargs):
    """SqueezeNet v1.0 (Table 1); takes SqueezeNet's keywords, e.g. ``bypass="simple"``."""
    return SqueezeNet(**{**VARIANTS["squeezenet1_0"]["config"], **kwargs})


def SqueezeNet1_1(**kwargs):
    """SqueezeNet v1.1 (the authors' repository); takes SqueezeNet's keywords."""
    return SqueezeNet(**{**VARIANTS["squeezenet1_1"]["config"], **kwargs})


# The paper (Sec. 4) defers to the solver in github.com/DeepScale/SqueezeNet: SGD momentum
# 0.9, weight decay 2e-4, lr 0.04 decayed linearly ("poly", power 1) to 0 over 170k
# iterations of batch 512 (about 68 ImageNet epochs).
TRAINING_PRESET = dict(
    optimizer="momentum", learning_rate=0.04, momentum=0.9, nesterov=False, weight_decay=2e-4, batch_size=512,
    epochs=68, lr_schedule=dict(polynomial_power=1.0, end_learning_rate=0.0),
    source="Iandola et al. 2016 (arXiv:1602.07360), Sec. 4; DeepScale/SqueezeNet solver.prototxt",
)


register_family(
    SqueezeNet,
    VARIANTS,
    task="image_classification",
    paper="1602.07360",
    input_spec=imagenet_utils.image_input_spec(224),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
    training_preset=TRAINING_PRESET,
)
