"""SoundNet: sound representations learned from unlabeled video (Aytar, Vondrick, Torralba, arXiv:1610.09001).

The 8-layer fully convolutional 1-D network on raw 22,050 Hz waveforms (paper Table 1,
Fig. 2; layer numbers checked against the authors' Torch code, cvondrick/soundnet
``main_train.lua``):

=========  ========  ======  ======  ========  =============
layer      filters   kernel  stride  padding   then
=========  ========  ======  ======  ========  =============
conv1      16        64      2       32        pool1 8 / 8
conv2      32        32      2       16        pool2 8 / 8
conv3      64        16      2       8
conv4      128       8       2       4
conv5      256       4       2       2         pool5 4 / 4
conv6      512       4       2       2
conv7      1024      4       2       2
conv8      1000+401  8       2       0         two heads
=========  ========  ======  ======  ========  =============

Every conv1-conv7 is followed by batch normalization and ReLU; conv8 splits into an
object head (1000 ImageNet classes) and a scene head (401 Places classes), each a
softmax over classes at every output time step. A 20 s clip (441,000 samples) gives 4
time steps per head, matched during training to the visual teachers' distributions of
4 video frames by KL divergence (training/tasks_soundnet.py).

The paper's transfer features are hidden activations averaged over time (conv5 and
conv7 work best, Table 3): see ``soundnet_features``.
"""
from keras_zoo.backend import keras
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers

SAMPLE_RATE = 22050
#: (kernel, stride) of conv1-conv7 and the kernel of conv8 (stride 2, no padding).
KERNELS = (64, 32, 16, 8, 4, 4, 4)
HEAD_KERNEL = 8
#: conv blocks followed by max pooling (kernel = stride): pool1, pool2, pool5.
POOLED_BLOCKS = (1, 2, 5)
FEATURE_LAYERS = tuple(f"conv{i}" for i in range(1, 8)) + tuple(f"pool{i}" for i in POOLED_BLOCKS)


def output_length(input_length, pool_sizes=(8, 8, 4)):
    """Time steps of each head for an input of ``input_length`` samples (floor arithmetic as Torch/Keras)."""
    length = input_length
    pools = dict(zip(POOLED_BLOCKS, pool_sizes))
    for block, kernel in enumerate(KERNELS, start=1):
        length = (length + 2 * (kernel // 2) - kernel) // 2 + 1
        length //= pools.get(block, 1)
    return (length - HEAD_KERNEL) // 2 + 1


def _check(filters, pool_sizes, input_length, object_classes, scene_classes, classifier_activation):
    if len(filters) != len(KERNELS) or any(int(f) < 1 for f in filters):
        raise ValueError(f"`filters` lists the positive widths of conv1-conv7 ({len(KERNELS)} numbers), e.g. the "
                         f"paper's (16, 32, 64, 128, 256, 512, 1024). Received: filters={filters!r}")
    if len(pool_sizes) != len(POOLED_BLOCKS) or any(int(p) < 1 for p in pool_sizes):
        raise ValueError(f"`pool_sizes` gives the positive sizes of pool1, pool2 and pool5, e.g. the paper's "
                         f"(8, 8, 4). Received: pool_sizes={pool_sizes!r}")
    for key, value in (("object_classes", object_classes), ("scene_classes", scene_classes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` is a positive number of classes (paper: 1000 objects, 401 scenes). "
                             f"Received: {key}={value!r}")
    if input_length is not None and output_length(input_length, pool_sizes) < 1:
        needed = next(n for n in range(1024, 1 << 26, 1024) if output_length(n, pool_sizes) >= 1)
        raise ValueError(f"`input_length` is too short for the heads' {HEAD_KERNEL}-step conv8 with "
                         f"pool_sizes={tuple(pool_sizes)}: give at least {needed} samples, or None for any "
                         f"length. Received: input_length={input_length}")
    if classifier_activation not in ("softmax", None):
        raise ValueError(f"`classifier_activation` is 'softmax' (distributions, as the paper) or None (logits). "
                         f"Received: classifier_activation={classifier_activation!r}")


def SoundNet(filters=(16, 32, 64, 128, 256, 512, 1024), pool_sizes=(8, 8, 4), input_length=SAMPLE_RATE * 20,
             object_classes=1000, scene_classes=401, classifier_activation="softmax", weights=None,
             input_tensor=None, name="soundnet"):
    """The 8-layer SoundNet (arXiv:1610.09001, Table 1).

    Args:
        filters: widths of conv1-conv7 (paper: 16 ... 1024).
        pool_sizes: kernel (= stride) of pool1, pool2, pool5 (paper: 8, 8, 4).
        input_length: waveform samples (paper: 20 s at 22,050 Hz = 441,000), or None
            for any length.
        object_classes, scene_classes: widths of the two conv8 heads (paper: 1000
            ImageNet objects, 401 Places scenes).
        classifier_activation: ``"softmax"`` or None (per-step logits).
        weights: None or a local weights file; no pretrained weights are downloaded.
        input_tensor: optional Keras tensor ``(B, input_length, 1)`` to build on.

    Returns:
        A model from a ``(B, input_length, 1)`` waveform in [-1, 1] to
        ``[objects (B, T, object_classes), scenes (B, T, scene_classes)]`` with
        ``T = output_length(input_length, pool_sizes)``.
    """
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"`weights` is None or a local file path. Received: weights={weights!r}")
    if isinstance(weights, str) and weights in ("imagenet", "soundnet", "flickr"):
        raise ValueError(f"No pretrained SoundNet weights are downloaded; pass weights=None or the path of a "
                         f"local weights file. Received: weights={weights!r}")
    filters, pool_sizes = tuple(int(f) for f in filters), tuple(int(p) for p in pool_sizes)
    _check(filters, pool_sizes, input_length, object_classes, scene_classes, classifier_activation)

    inputs = layers.Input((input_length, 1), name="waveform") if input_tensor is None else input_tensor
    x = inputs
    pools = dict(zip(POOLED_BLOCKS, pool_sizes))
    for block, (width, kernel) in enumerate(zip(filters, KERNELS), start=1):
        prefix = f"conv{block}"
        # Torch pads k/2 on both sides and floors, which 'same' padding does not reproduce for even k.
        x = layers.ZeroPadding1D(kernel // 2, name=f"{prefix}_pad")(x)
        x = layers.Conv1D(width, kernel, strides=2, name=f"{prefix}_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-5, name=f"{prefix}_bn")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu")(x)
        if block in pools:
            x = layers.MaxPooling1D(pools[block], strides=pools[block], name=f"pool{block}")(x)
    outputs = []
    for head, classes in (("objects", object_classes), ("scenes", scene_classes)):
        logits = layers.Conv1D(classes, HEAD_KERNEL, strides=2, name=f"conv8_{head}")(x)
        outputs.append(layers.Activation(classifier_activation or "linear", name=head)(logits))
    model_inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else inputs
    model = keras.Model(model_inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def soundnet_features(model, layer="conv5", pooling="avg"):
    """A model from the waveform to SoundNet's hidden features, for a downstream classifier.

    The paper trains linear SVMs on a layer's activations averaged over time
    (arXiv:1610.09001, Sec. 4.1; conv5 and conv7 transfer best, Table 3).

    Args:
        model: a SoundNet model (trained, typically).
        layer: one of ``FEATURE_LAYERS``: ``conv1``-``conv7`` (after BN and ReLU), or
            ``pool1``, ``pool2``, ``pool5``.
        pooling: ``"avg"`` (mean over time, ``(B, C)``), ``"max"`` or None (``(B, T, C)``).
    """
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"`layer` must be one of {FEATURE_LAYERS}. Received: layer={layer!r}")
    if pooling not in ("avg", "max", None):
        raise ValueError(f"`pooling` must be 'avg', 'max' or None. Received: pooling={pooling!r}")
    features = model.get_layer(layer if layer.startswith("pool") else f"{layer}_relu").output
    if pooling == "avg":
        features = layers.GlobalAveragePooling1D(name=f"{layer}_avg")(features)
    elif pooling == "max":
        features = layers.GlobalMaxPooling1D(name=f"{layer}_max")(features)
    return keras.Model(model.input, features, name=f"{model.name}_{layer}_features")


def _waveform_spec(config):
    return [InputSpec((config.get("input_length", SAMPLE_RATE * 20), 1), "float32", minval=-1.0, maxval=1.0)]


register_family(SoundNet, {
    "soundnet": dict(
        config=dict(),
        tiny=dict(filters=(4, 4, 8, 8, 8, 8, 8), pool_sizes=(2, 2, 2), input_length=16384, object_classes=10,
                  scene_classes=3),
        # No published total: the layer sizes of cvondrick/soundnet main_train.lua, BN moving statistics included.
        reference_params=(14_356_777, "cvondrick/soundnet main_train.lua layer sizes (all weights)"),
    ),
}, task="audio_classification", paper="1610.09001", input_spec=_waveform_spec, default_dataset="digit_sounds",
    export={"tflite": True, "edgetpu": "not checked: 1-D convolutions lower to CONV_2D, but int8 export was not "
                                      "verified"})
