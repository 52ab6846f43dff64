"""FractalNet (Larsson et al., 2016, arXiv:1605.07648).

A block is the fractal expansion ``f_1(z) = conv(z)``,
``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))`` (Sec. 2), with
``conv`` = 3x3 convolution, dropout, BatchNorm, ReLU (the order of the
authors' Caffe generator, github.com/gustavla/fractalnet) and ``join`` = the
element-wise mean. As in the paper's Figure 1, the joins are flat: the
columns that end at the same depth meet in one join, so the final join of a
C-column block averages C inputs. Each block is followed by 2x2 max pooling;
the CIFAR network has B = 5 blocks with 64, 128, 256, 512, 512 channels and
dropout rates 0, 0.1, 0.2, 0.3, 0.4 (Sec. 4.1). Its depth is the deepest
column, ``B * 2^(C-1)`` convolutions: the 20-layer model has C = 3.

Drop-path (Sec. 3): local (p = 0.15 per join input) and global (one
column for the whole network) mixed 50/50 per mini-batch; see
``keras_zoo.layers.fractal``. ``inference_column="deepest"`` (or a column
number) evaluates one column alone, as the paper's "=> deepest" rows of Table 1.

Departures: convolutions have no bias and BatchNorm is affine (the Caffe
generator has a biased conv and a non-affine BatchNorm: the same function
class, since BatchNorm cancels the bias); the generator max-pools each
column before a block's last join, the paper joins then pools, as here.
Parameters: 33,745,226 for ``fractalnet20_cifar10`` (33,724,618 trainable);
the paper's Table 1 quotes 38.6M for its 20-layer network, which this
architecture as described does not reach.
"""
from keras_zoo.backend import keras
from keras_zoo.layers.fractal import FractalDropPathPlan, FractalJoin, check_inference_column
from keras_zoo.layers.imagenet_utils import (
    check_classifier_args,
    classification_head,
    finish_model,
    image_input_spec,
    resolve_image_input,
)
from keras_zoo.registry import register_family

# The paper does not give BatchNorm's running-average rate; 0.9 (Torch's 0.1) rather
# than Keras' 0.99 gives usable inference statistics after short runs on small data.
BN_MOMENTUM = 0.9

#: Training schedule of Larsson et al., Sec. 4.1: SGD with momentum 0.9,
#: batch 100, 400 epochs, lr 0.02 divided by 10 each time the number of
#: remaining epochs halves. The paper states no weight decay; Xavier init.
TRAINING_PRESET = dict(
    optimizer="momentum",
    momentum=0.9,
    nesterov=False,
    learning_rate=0.02,
    lr_schedule=dict(boundaries_epochs=(200, 300, 350, 375), rates=(0.02, 2e-3, 2e-4, 2e-5, 2e-6)),
    weight_decay=None,
    batch_size=100,
    epochs=400,
    augmentation="none (C10) or translation + mirroring (C10+)",
    source="Larsson et al. 2016 (arXiv:1605.07648), Sec. 4.1 'Training'",
)


class _BlockBuilder:
    """Wires one fractal block; numbers the convs of each column for predictable names."""

    def __init__(self, filters, dropout_rate, drop_probability, inference_column, plan, name):
        self.filters = filters
        self.dropout_rate = dropout_rate
        self.drop_probability = drop_probability
        self.inference_column = inference_column
        self.plan = plan
        self.name = name
        self.conv_counts = {}
        self.join_count = 0

    def conv(self, x, column):
        index = self.conv_counts[column] = self.conv_counts.get(column, 0) + 1
        prefix = f"{self.name}_col{column}_{index}"
        x = keras.layers.Conv2D(self.filters, 3, padding="same", use_bias=False, name=prefix + "_conv")(x)
        if self.dropout_rate > 0:
            x = keras.layers.Dropout(self.dropout_rate, name=prefix + "_dropout")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=prefix + "_bn")(x)
        return keras.layers.ReLU(name=prefix + "_relu")(x)

    def join(self, branches):
        """``branches``: {column: tensor} ending at the same depth."""
        if len(branches) == 1:
            return next(iter(branches.values()))
        self.join_count += 1
        columns = sorted(branches)
        return FractalJoin(columns, drop_probability=self.drop_probability,
                           inference_column=self.inference_column,
                           name=f"{self.name}_join{self.join_count}")([branches[c] for c in columns] + [self.plan])

    def expand(self, z, num_columns, first_column=1):
        """Branches of ``f_{num_columns}(z)`` that meet at its output, keyed by column number.

        ``conv(z)`` is the shallowest column; the two stacked sub-fractals carry
        the deeper columns ``first_column + 1 ...``.
        """
        branches = {first_column: self.conv(z, first_column)}
        if num_columns > 1:
            inner = self.join(self.expand(z, num_columns - 1, first_column + 1))
            branches.update(self.expand(inner, num_columns - 1, first_column + 1))
        return branches


def fractal_block(x, num_columns, filters, dropout_rate, drop_probability, inference_column, plan, name):
    """One C-column fractal block (Larsson et al., Fig. 1), without the pooling."""
    builder = _BlockBuilder(filters, dropout_rate, drop_probability, inference_column, plan, name)
    return builder.join(builder.expand(x, num_columns))


def FractalNet(
    filters=(64, 128, 256, 512, 512),
    num_columns=3,
    dropout_rates=(0.0, 0.1, 0.2, 0.3, 0.4),
    local_drop_probability=0.15,
    global_drop_probability=0.5,
    inference_column=None,
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
    name="fractalnet20_cifar10",
):
    """FractalNet for CIFAR (Larsson et al., arXiv:1605.07648).

    Args:
        filters: channels of each block; their number is B, and each block
            halves the resolution with a 2x2 max pool.
        num_columns: C; the network is ``B * 2^(C-1)`` convolutions deep.
        dropout_rates: dropout rate of each block's convs (one per block), or
            None for no dropout.
        local_drop_probability: local drop-path rate of each join input.
        global_drop_probability: share of training batches that use global
            drop-path instead of local; 0 gives local drop-path only.
        inference_column: None (the whole network at inference), "deepest"
            or a column number in [1, C] (that column alone).
        include_top: whether to end in the ``predictions`` Dense layer.
        weights: None or the path of a local weights file.
        input_tensor: optional Keras tensor to build on.
        input_shape: ``(height, width, channels)``, default ``(32, 32, 3)``.
        pooling: None, "avg" or "max" when ``include_top=False``.
        classes: classifier size (10 for CIFAR-10).
        classifier_activation: activation of ``predictions`` (softmax).
        features_only: return the block outputs (after pooling) instead.
        out_indices: which block outputs ``features_only`` returns.
        name: model name.
    """
    check_classifier_args(weights=weights, include_top=include_top, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, features_only=features_only,
                          out_indices=out_indices)
    filters = _check_filters(filters, name)
    if isinstance(num_columns, bool) or not isinstance(num_columns, int) or num_columns < 1:
        raise ValueError(f"{name}: `num_columns` must be a positive integer (3 for the 20-layer CIFAR "
                         f"model). Received: num_columns={num_columns!r}")
    dropout_rates = _check_dropout_rates(dropout_rates, len(filters), name)
    if inference_column == "deepest":
        inference_column = num_columns
    check_inference_column(inference_column, num_columns)

    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=32, min_size=2 ** len(filters),
                                    name=name)
    plan = FractalDropPathPlan(num_columns, global_drop_probability, name="drop_path_plan")(x)
    stages = []
    for index, (width, rate) in enumerate(zip(filters, dropout_rates)):
        block = f"block{index + 1}"
        x = fractal_block(x, num_columns, width, rate, local_drop_probability, inference_column, plan, block)
        x = keras.layers.MaxPooling2D(2, name=block + "_pool")(x)
        stages.append(x)
    x = classification_head(x, include_top, pooling, classes, classifier_activation)
    return finish_model(inputs, x, name, weights=weights, features=stages, features_only=features_only,
                        out_indices=out_indices)


def _check_filters(filters, name):
    widths = tuple(filters) if isinstance(filters, (tuple, list)) else ()
    if not widths or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in widths):
        raise ValueError(f"{name}: `filters` must be a non-empty tuple of positive integers, one per block, "
                         f"e.g. (64, 128, 256, 512, 512). Received: filters={filters!r}")
    return widths


def _check_dropout_rates(rates, num_blocks, name):
    if rates is None:
        return (0.0,) * num_blocks
    rates = tuple(rates) if isinstance(rates, (tuple, list)) else ()
    if len(rates) != num_blocks or any(
            isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1 for r in rates):
        raise ValueError(f"{name}: `dropout_rates` must be None or one rate in [0, 1) per block "
                         f"({num_blocks} blocks). Received: dropout_rates={rates!r}")
    return rates


VARIANTS = {
    "fractalnet20_cifar10": dict(
        config=dict(filters=(64, 128, 256, 512, 512), num_columns=3, dropout_rates=(0.0, 0.1, 0.2, 0.3, 0.4),
                    name="fractalnet20_cifar10"),
        tiny=dict(filters=(4, 8), num_columns=3, dropout_rates=(0.0, 0.1)),
        reference_params=(38_600_000, "Larsson et al. 2016 (arXiv:1605.07648) Table 1, 20 layers '38.6M'; "
                                      "this architecture as described has 33,745,226"),
    ),
}


register_family(
    FractalNet,
    VARIANTS,
    task="image_classification",
    paper="1605.07648",
    input_spec=image_input_spec(32),
    default_dataset="digits",
    export={"tflite": True, "edgetpu": True},
    training_preset=TRAINING_PRESET,
)
