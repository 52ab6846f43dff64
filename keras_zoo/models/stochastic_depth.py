"""ResNet with stochastic depth for CIFAR (Huang et al., 2016, arXiv:1603.09382).

The network is He et al.'s CIFAR ResNet (arXiv:1512.03385, Sec. 4.2): a 3x3
conv with 16 filters, three stages of ``n`` basic blocks (two 3x3 convs) with
16, 32 and 64 filters, global average pooling and a linear classifier;
ResNet-110 has ``n = 18`` (54 blocks, 6n + 2 = 110 layers). Following the
authors' Torch code (``ResidualDrop.lua``), a block that changes dimensions
has a parameter-free shortcut: 2x2 average pooling, then zero-padded channels
(He et al.'s option A), and ReLU follows the addition.

Block ``l`` of ``L`` keeps its residual branch with ``p_l = 1 - (l / L)(1 - p_L)``,
``p_L = 0.5`` (Sec. 3, "linear decay"). Blocks are dropped per sample by
default (``drop_mode="batch"`` gives the paper's per-mini-batch gates), and a
kept branch is scaled by ``1 / p_l`` during training, so that every block is
active and unscaled at inference (see ``keras_zoo.layers.stochastic_depth``).

Departure: convolutions have no bias. The Torch code gives them one, but each
is followed by BatchNorm, which cancels it.

``binarize=True`` makes it an XNOR-Net ResNet (Rastegari et al., 2016,
arXiv:1603.05279, Sec. 4, which binarizes ResNet-18 the same way): the stem
convolution and the classifier stay real; every residual branch becomes two
XNOR blocks (Fig. 3: BN, sign, binary 3x3 convolution with per-channel
``alpha`` and the activation scale ``K``), and the ReLUs go, since ``sign`` is
the nonlinearity and would map every ReLU output to +1. A BN and ReLU precede
the classifier, as before XNOR-Net AlexNet's real last layer. A strided binary
convolution pads inside the convolution ("same", bottom/right), because a
zero padded before ``sign`` would read as +1.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.binary import BinaryConv2D, ClipWeights
from keras_zoo.layers.imagenet_utils import (
    check_classifier_args,
    classification_head,
    finish_model,
    image_input_spec,
    resolve_image_input,
)
from keras_zoo.layers.stochastic_depth import (
    DROP_MODES,
    StochasticDepth,
    linear_survival_probabilities,
    option_a_shortcut,
)
from keras_zoo.registry import register_family

# Torch defaults, as in the authors' code: eps 1e-5, running-average momentum 0.1.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

#: Training schedule of Huang et al., Sec. 4 (CIFAR-10/100) and the authors'
#: ``main.lua``: Nesterov SGD, lr 0.1 divided by 10 at 50% and 75% of training.
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
    source="Huang et al. 2016 (arXiv:1603.09382), Sec. 4 'CIFAR-10'; github.com/yueatsprograms/Stochastic_Depth main.lua",
)


def _conv(x, filters, stride, name):
    if stride > 1:
        # Torch pads 1 pixel on every side; Keras "same" would pad bottom/right only.
        x = keras.layers.ZeroPadding2D(1, name=name + "_pad")(x)
    return keras.layers.Conv2D(
        filters, 3, strides=stride, padding="valid" if stride > 1 else "same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )(x)


def residual_drop_block(x, filters, stride, survival_probability, drop_mode, name):
    """Post-activation basic block whose residual branch is dropped with ``1 - survival_probability``."""
    shortcut = option_a_shortcut(x, filters, stride, name=name + "_0")
    y = _conv(x, filters, stride, name + "_1_conv")
    y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_1_bn")(y)
    y = keras.layers.ReLU(name=name + "_1_relu")(y)
    y = _conv(y, filters, 1, name + "_2_conv")
    y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_2_bn")(y)
    y = StochasticDepth(survival_probability, mode=drop_mode, name=name + "_drop_path")(y)
    x = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name + "_out")(x)


def binary_residual_drop_block(x, filters, stride, survival_probability, drop_mode, name):
    """The residual branch as two XNOR-Net blocks (BN, sign, binary conv with alpha and K), no ReLU."""
    shortcut = option_a_shortcut(x, filters, stride, name=name + "_0")
    y = x
    for index, conv_stride in ((1, stride), (2, 1)):
        y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                            name=f"{name}_{index}_bn")(y)
        y = BinaryConv2D(filters, 3, strides=conv_stride, padding="same", use_bias=False, scale="channel",
                         activation_scale=True, kernel_constraint=ClipWeights(1.0),
                         name=f"{name}_{index}_conv")(y)
    y = StochasticDepth(survival_probability, mode=drop_mode, name=name + "_drop_path")(y)
    return keras.layers.Add(name=name + "_add")([shortcut, y])


def StochasticDepthResNet(
    blocks_per_stage=18,
    filters=(16, 32, 64),
    final_survival_probability=0.5,
    drop_mode="sample",
    binarize=False,
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
    name="stochastic_depth_resnet110",
):
    """CIFAR ResNet trained with stochastic depth (Huang et al., arXiv:1603.09382).

    Args:
        blocks_per_stage: basic blocks per stage, ``n`` (depth ``6n + 2``).
        filters: stage widths; the first is also the stem's. They must not
            decrease, because the option-A shortcut pads channels with zeros.
        final_survival_probability: ``p_L`` of the linear decay rule; 1 turns
            stochastic depth off (a plain ResNet).
        drop_mode: ``"sample"`` (per example) or ``"batch"`` (per mini-batch).
        binarize: XNOR-Net residual branches (binary weights and activations;
            see the module docstring); the stem and classifier stay real.
        include_top: whether to end in the ``predictions`` Dense layer.
        weights: None or the path of a local weights file.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default ``(32, 32, 3)``.
        pooling: None, "avg" or "max" when ``include_top=False``.
        classes: classifier size (10 for CIFAR-10).
        classifier_activation: activation of ``predictions`` (softmax).
        features_only: return the three stage outputs instead.
        out_indices: which stage outputs ``features_only`` returns.
        name: model name.
    """
    check_classifier_args(weights=weights, include_top=include_top, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, features_only=features_only,
                          out_indices=out_indices)
    _check_stages(blocks_per_stage, filters, name)
    if drop_mode not in DROP_MODES:
        raise ValueError(f"`drop_mode` must be one of {DROP_MODES}. Received: drop_mode={drop_mode!r}")
    if not isinstance(binarize, bool):
        raise ValueError(f"{name}: `binarize` must be True or False. Received: binarize={binarize!r}")
    block_fn = binary_residual_drop_block if binarize else residual_drop_block
    survival = linear_survival_probabilities(blocks_per_stage * len(filters), final_survival_probability)

    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=32,
                                    min_size=2 ** (len(filters) - 1), name=name)
    x = keras.layers.Conv2D(filters[0], 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                            name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    stages = []
    for stage, width in enumerate(filters):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            x = block_fn(x, width, stride, survival[stage * blocks_per_stage + block], drop_mode,
                         name=f"conv{stage + 2}_block{block + 1}")
        stages.append(x)
    if binarize:
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="post_bn")(x)
        x = keras.layers.ReLU(name="post_relu")(x)
    x = classification_head(x, include_top, pooling, classes, classifier_activation)
    return finish_model(inputs, x, name, weights=weights, features=stages, features_only=features_only,
                        out_indices=out_indices)


def _check_stages(blocks_per_stage, filters, name):
    if isinstance(blocks_per_stage, bool) or not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
        raise ValueError(
            f"{name}: `blocks_per_stage` must be a positive integer (18 for ResNet-110). "
            f"Received: blocks_per_stage={blocks_per_stage!r}"
        )
    widths = tuple(filters) if isinstance(filters, (tuple, list)) else ()
    if (not widths or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in widths)
            or any(b < a for a, b in zip(widths, widths[1:]))):
        raise ValueError(
            f"{name}: `filters` must be a non-empty, non-decreasing tuple of positive integers, "
            f"e.g. (16, 32, 64); the zero-padded shortcut cannot remove channels. Received: filters={filters!r}"
        )


VARIANTS = {
    "stochastic_depth_resnet110": dict(
        config=dict(blocks_per_stage=18, filters=(16, 32, 64), final_survival_probability=0.5,
                    name="stochastic_depth_resnet110"),
        tiny=dict(blocks_per_stage=1, filters=(4, 8, 8)),
        # Exact count of this architecture: 1,736,058 (1,727,962 trainable).
        reference_params=(1_700_000, "Huang et al. 2016 (arXiv:1603.09382) Sec. 4: ResNet-110 '1.7M', rounded"),
    ),
}


register_family(
    StochasticDepthResNet,
    VARIANTS,
    task="image_classification",
    paper="1603.09382",
    input_spec=image_input_spec(32),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
    training_preset=TRAINING_PRESET,
)
