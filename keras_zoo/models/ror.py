"""Residual Networks of Residual Networks, RoR-3 (Zhang et al., 2016, arXiv:1608.02908).

RoR adds shortcuts over groups of residual blocks to a CIFAR ResNet. RoR-3
has three levels: a root (level-1) shortcut from the stem's output to the end
of the last stage, one middle (level-2) shortcut over each of the three
stages, and the blocks' own (final-level) shortcuts. A level-1 or level-2
shortcut is the identity when the dimensions agree and a projection (1x1
convolution with the stage's stride, then BatchNorm) when they change; the
final-level shortcuts keep the base network's parameter-free zero-padding
form (average-pool downsampling, zero channels). All shortcuts ending at a
block's output are summed with its residual branch.

The base networks are pre-activation: BN-ReLU-conv3x3, twice, per block
(He et al., arXiv:1603.05027), with a final BN-ReLU before the classifier.
``ror3_preact_resnet110`` uses 18 blocks of 16/32/64 filters per stage (the
paper's Pre-RoR-3-110); ``ror3_wrn58_4`` is the wide version, 9 blocks of
64/128/256 filters (WRN-58-4, width factor 4, Zagoruyko & Komodakis,
arXiv:1605.07146), the paper's best CIFAR model (with stochastic depth).
Stochastic depth (Huang et al., arXiv:1603.09382) drops the final-level
residual branches with the linear decay rule, ``p_L = 0.5`` by default;
``final_survival_probability=1`` turns it off.

Departures / caveats: convolutions have no bias (each is followed by
BatchNorm or a residual sum); the WRN variant's final-level shortcuts are
zero-padding too, where WRN itself projects them. ``ror3_wrn58_4`` has
13,622,522 parameters against the paper's "13.3M": the 3x3 convolutions of
WRN-58-4 alone hold 13,538,304 weights, so the difference is not in the
shortcuts, and we could not reconcile it.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.imagenet_utils import (
    check_classifier_args,
    classification_head,
    finish_model,
    image_input_spec,
    resolve_image_input,
)
from keras_zoo.layers.stochastic_depth import (
    StochasticDepth,
    check_survival_probability,
    linear_survival_probabilities,
    option_a_shortcut,
)
from keras_zoo.registry import register_family

# Torch defaults (eps 1e-5, running-average momentum 0.1), as in the stochastic-depth code.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

#: Zhang et al. train as Huang et al. (stochastic depth): Nesterov SGD, batch
#: 128, 500 epochs, lr 0.1 divided by 10 at epochs 250 and 375, weight decay
#: 1e-4 (RoR Sec. IV).
TRAINING_PRESET = dict(
    optimizer="momentum",
    momentum=0.9,
    nesterov=True,
    learning_rate=0.1,
    lr_schedule=dict(boundaries_epochs=(250, 375), rates=(0.1, 0.01, 0.001)),
    weight_decay=1e-4,
    batch_size=128,
    epochs=500,
    augmentation="random crop of the 4-pixel zero-padded image, horizontal flip",
    source="Zhang et al. 2016 (arXiv:1608.02908), Sec. IV, following Huang et al. (arXiv:1603.09382)",
)


def _bn_relu(x, name):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_bn")(x)
    return keras.layers.ReLU(name=name + "_relu")(x)


def _conv3x3(x, filters, stride, name):
    if stride > 1:
        x = keras.layers.ZeroPadding2D(1, name=name + "_pad")(x)
    return keras.layers.Conv2D(filters, 3, strides=stride, padding="valid" if stride > 1 else "same",
                               use_bias=False, kernel_initializer="he_normal", name=name + "_conv")(x)


def projection_shortcut(x, filters, stride, name):
    """Identity, or 1x1 conv + BN when channels or resolution change (level-1/2 shortcuts)."""
    if stride == 1 and int(x.shape[-1]) == filters:
        return x
    x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, kernel_initializer="he_normal",
                            name=name + "_conv")(x)
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_bn")(x)


def preact_residual_branch(x, filters, stride, dropout_rate, name):
    """BN-ReLU-conv3x3 [-dropout] -BN-ReLU-conv3x3 of a pre-activation basic block."""
    y = _bn_relu(x, name + "_preact")
    y = _conv3x3(y, filters, stride, name + "_1")
    y = _bn_relu(y, name + "_1")
    if dropout_rate > 0:
        y = keras.layers.Dropout(dropout_rate, name=name + "_dropout")(y)
    return _conv3x3(y, filters, 1, name + "_2")


def RoR(
    blocks_per_stage=18,
    width=1,
    final_survival_probability=0.5,
    dropout_rate=0.0,
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
    name="ror3_preact_resnet110",
):
    """RoR-3 on a pre-activation (wide) CIFAR ResNet (Zhang et al., arXiv:1608.02908).

    Args:
        blocks_per_stage: pre-activation basic blocks per stage (18 for
            ResNet-110, 9 for WRN-58).
        width: widening factor k; stages have 16k, 32k and 64k filters, the
            stem 16.
        final_survival_probability: ``p_L`` of stochastic depth over the
            final-level blocks; 1 turns it off.
        dropout_rate: dropout between a block's two convs (WRN style), 0 off.
        include_top: whether to end in the ``predictions`` Dense layer.
        weights: None or the path of a local weights file.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default ``(32, 32, 3)``.
        pooling: None, "avg" or "max" when ``include_top=False``.
        classes: classifier size (10 for CIFAR-10).
        classifier_activation: activation of ``predictions`` (softmax).
        features_only: return the three stage outputs (pre-activation sums).
        out_indices: which stage outputs ``features_only`` returns.
        name: model name.
    """
    check_classifier_args(weights=weights, include_top=include_top, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, features_only=features_only,
                          out_indices=out_indices)
    for value, what in ((blocks_per_stage, "blocks_per_stage"), (width, "width")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: `{what}` must be a positive integer. Received: {what}={value!r}")
    check_survival_probability(final_survival_probability, "final_survival_probability")
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not 0 <= dropout_rate < 1:
        raise ValueError(f"{name}: `dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}")
    stage_filters = (16 * width, 32 * width, 64 * width)
    survival = linear_survival_probabilities(3 * blocks_per_stage, final_survival_probability)

    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=32, min_size=4, name=name)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                            name="conv1_conv")(x)
    root = projection_shortcut(x, stage_filters[-1], 4, name="level1_shortcut")
    stages = []
    for stage, filters in enumerate(stage_filters):
        stage_stride = 1 if stage == 0 else 2
        middle = projection_shortcut(x, filters, stage_stride, name=f"conv{stage + 2}_level2_shortcut")
        for block in range(blocks_per_stage):
            prefix = f"conv{stage + 2}_block{block + 1}"
            stride = stage_stride if block == 0 else 1
            shortcuts = [option_a_shortcut(x, filters, stride, name=prefix + "_0")]
            y = preact_residual_branch(x, filters, stride, dropout_rate, prefix)
            p = survival[stage * blocks_per_stage + block]
            if p < 1.0:
                y = StochasticDepth(p, name=prefix + "_drop_path")(y)
            if block == blocks_per_stage - 1:
                shortcuts.append(middle)
                if stage == len(stage_filters) - 1:
                    shortcuts.append(root)
            x = keras.layers.Add(name=prefix + "_add")(shortcuts + [y])
        stages.append(x)
    x = _bn_relu(x, "post")
    x = classification_head(x, include_top, pooling, classes, classifier_activation)
    return finish_model(inputs, x, name, weights=weights, features=stages, features_only=features_only,
                        out_indices=out_indices)


VARIANTS = {
    "ror3_preact_resnet110": dict(
        config=dict(blocks_per_stage=18, width=1, final_survival_probability=0.5, name="ror3_preact_resnet110"),
        tiny=dict(blocks_per_stage=1, width=1),
        reference_params=(1_700_000, "Zhang et al. 2016 (arXiv:1608.02908), Pre-RoR-3-110 '1.7M', rounded"),
    ),
    "ror3_wrn58_4": dict(
        config=dict(blocks_per_stage=9, width=4, final_survival_probability=0.5, name="ror3_wrn58_4"),
        tiny=dict(blocks_per_stage=1, width=2),
        reference_params=(13_300_000, "Zhang et al. 2016 (arXiv:1608.02908), RoR-3-WRN58-4+SD '13.3M'; "
                                      "this architecture has 13,622,522"),
    ),
}


register_family(
    RoR,
    VARIANTS,
    task="image_classification",
    paper="1608.02908",
    input_spec=image_input_spec(32),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
    training_preset=TRAINING_PRESET,
)
