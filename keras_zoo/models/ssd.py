"""SSD with a MobileNet backbone (Liu et al., 2016, arXiv:1512.02325; Howard et al., arXiv:1704.04861).

The layout is the TF Object Detection API's ``ssd_mobilenet_v1`` (its
``ssd_mobilenet_v1_coco.config`` and ``SSDMobileNetV1FeatureExtractor``): predictions
from MobileNet's last stride-16 and stride-32 blocks (``conv_pw_11``, ``conv_pw_13``)
and four extra layers, each a 1x1 conv of depth d/2 and a stride-2 3x3 conv of depth
d for d = 512, 256, 256, 128 (all conv-BN-ReLU6); 300x300 input gives 19, 10, 5, 3,
2, 1 cells. Default boxes follow ``keras_zoo.layers.ssd_utils`` (scales 0.2..0.95,
aspect ratios {1, 2, 3, 1/2, 1/3} plus the s'_k box, 3 boxes in the lowest layer).
Departures from the paper's VGG-16 SSD300: the backbone, ReLU6, 1x1 predictors
(the OD API config's ``kernel_size: 1``; the paper uses 3x3, ``head_kernel_size=3``).

The model returns raw predictions concatenated over all default boxes:
``box_encodings [B, A, 4]`` (ty, tx, th, tw) and ``class_logits [B, A, classes + 1]``
(column 0 is background). ``detection_model`` adds decoding and NMS.
"""
import inspect

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils, ssd_utils
from keras_zoo.models import mobilenet
from keras_zoo.registry import register_family

layers = keras.layers

#: Depths of the four extra feature layers (OD API ssd_mobilenet_v1 ``layer_depth``).
EXTRA_DEPTHS = (512, 256, 256, 128)
#: The OD API's ``min_depth`` for its depth multiplier.
MIN_DEPTH = 16

#: Builder overrides for the 64x64 digit canvases (``digit_canvases_det``), whose digits
#: span 0.25-0.375 of the side. The 300x300 layout at 64x64 predicts from 4x4, 2x2 and
#: four 1x1 maps: only ~20% of the digits overlap any default box with IoU >= 0.5 and
#: almost every digit gets a single (forced) positive. Dropping MobileNet's last
#: downsampling (block 12, stride 1) puts the two backbone predictor layers at strides
#: 8 and 16 (8x8, 4x4); one extra layer (2x2) and scales 0.25..0.6 with all six boxes per
#: cell cover ~89% of the digits at IoU >= 0.5 with ~3 positives each (``default_box_coverage``).
#: 3x3 predictors as the paper's, width 0.25.
DIGIT_CANVAS_CONFIG = dict(
    input_shape=(64, 64, 1), alpha=0.25,
    backbone_blocks=mobilenet.BLOCKS[:11] + ((1024, 1), (1024, 1)),
    extra_depths=(256,), head_kernel_size=3, min_scale=0.25, max_scale=0.6, reduce_boxes_in_lowest_layer=False,
)


def extra_feature_layer(x, depth, name):
    """1x1 conv to depth/2, then a stride-2 3x3 conv to ``depth``, each with BN and ReLU6."""
    for suffix, filters, kernel, stride in (("1", depth // 2, 1, 1), ("2", depth, 3, 2)):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                          name=f"{name}_{suffix}_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_{suffix}_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_{suffix}_relu")(x)
    return x


def SSDMobileNet(
    input_shape=None,
    classes=90,
    alpha=1.0,
    depth_multiplier=1,
    *,
    backbone_blocks=mobilenet.BLOCKS,
    extra_depths=EXTRA_DEPTHS,
    head_kernel_size=1,
    min_scale=0.2,
    max_scale=0.95,
    aspect_ratios=ssd_utils.ASPECT_RATIOS,
    reduce_boxes_in_lowest_layer=True,
    weights=None,
    input_tensor=None,
    name="ssd_mobilenet",
):
    """Builds SSD on MobileNet v1 (arXiv:1512.02325, arXiv:1704.04861).

    Args:
        input_shape: ``(height, width, channels)`` with static height and width
            (the default boxes depend on them); default 300x300x3. Inputs are in [0, 1].
        classes: object classes, without background (90 for COCO as the OD API).
        alpha: MobileNet width multiplier, also applied to the extra layers
            (at least ``MIN_DEPTH`` filters), as the OD API's depth_multiplier.
        depth_multiplier: channel multiplier of MobileNet's depthwise convolutions.
        backbone_blocks: MobileNet's ``(filters, stride)`` table; predictions come
            from its last two stages (strides 16 and 32 for the default table).
        extra_depths: depths of the extra feature layers, one predictor layer each.
        head_kernel_size: kernel of the box and class predictors.
        min_scale, max_scale, aspect_ratios, reduce_boxes_in_lowest_layer: the
            default boxes (``ssd_utils.layer_box_specs``).
        weights: None or a local weights file.
        input_tensor: optional Keras tensor to build on.
        name: model name.

    Returns:
        A ``keras.Model`` with outputs ``[box_encodings, class_logits]``.
    """
    imagenet_utils.check_weights(weights)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer (object classes, without background). "
                         f"Received: classes={classes!r}")
    if not 0 < min_scale < max_scale <= 1:
        raise ValueError(f"Default-box scales need 0 < min_scale < max_scale <= 1 (the paper: 0.2, 0.9). "
                         f"Received: min_scale={min_scale!r}, max_scale={max_scale!r}")
    if not aspect_ratios or any(not a > 0 for a in aspect_ratios):
        raise ValueError(f"`aspect_ratios` must be a non-empty tuple of positive numbers, e.g. (1, 2, 3, 1/2, 1/3). "
                         f"Received: aspect_ratios={aspect_ratios!r}")
    if head_kernel_size not in (1, 3):
        raise ValueError(f"`head_kernel_size` must be 1 (OD API) or 3 (the paper). "
                         f"Received: head_kernel_size={head_kernel_size!r}")
    if input_tensor is None:
        shape = tuple(input_shape) if input_shape is not None else (300, 300, 3)
        if len(shape) != 3 or None in shape[:2]:
            raise ValueError(f"{name}: `input_shape` must be a static (height, width, channels); the default "
                             f"boxes depend on the feature-map sizes. Received: input_shape={input_shape!r}")
        image = keras.Input(shape=shape, name="image")
    else:
        image = input_tensor
    # MobileNet's weights expect [-1, 1] (keras.applications / OD API preprocessing).
    x = layers.Rescaling(2.0, offset=-1.0, name="rescale")(image)
    backbone = imagenet_utils.feature_extractor(
        "mobilenet", out_indices=(-2, -1), input_tensor=x, alpha=alpha, depth_multiplier=depth_multiplier,
        blocks=tuple(tuple(b) for b in backbone_blocks))
    features = list(backbone.outputs)
    x = features[-1]
    for index, depth in enumerate(extra_depths, start=1):
        x = extra_feature_layer(x, max(int(depth * alpha), MIN_DEPTH), name=f"extra{index}")
        features.append(x)

    specs = ssd_utils.layer_box_specs(len(features), min_scale, max_scale, aspect_ratios,
                                      reduce_boxes_in_lowest_layer)
    box_outputs, class_outputs = [], []
    for index, (feature, boxes) in enumerate(zip(features, specs)):
        k = len(boxes)
        box = layers.Conv2D(k * 4, head_kernel_size, padding="same", name=f"box_predictor_{index}")(feature)
        box_outputs.append(layers.Reshape((-1, 4), name=f"box_predictor_{index}_flat")(box))
        logits = layers.Conv2D(k * (classes + 1), head_kernel_size, padding="same",
                               name=f"class_predictor_{index}")(feature)
        class_outputs.append(layers.Reshape((-1, classes + 1), name=f"class_predictor_{index}_flat")(logits))
    box_encodings = layers.Concatenate(axis=1, name="box_encodings")(box_outputs)
    class_logits = layers.Concatenate(axis=1, name="class_logits")(class_outputs)
    inputs = keras.utils.get_source_inputs(image) if input_tensor is not None else image
    model = keras.Model(inputs, [box_encodings, class_logits], name=name)
    return imagenet_utils.load_weights_or_raise(model, weights)


def feature_map_sizes(model):
    """``[(height, width), ...]`` of the predictor layers of a built SSD model."""
    sizes, index = [], 0
    while True:
        try:
            layer = model.get_layer(f"box_predictor_{index}")
        except ValueError:
            return sizes
        sizes.append(tuple(int(d) for d in layer.output.shape[1:3]))
        index += 1


ANCHOR_KEYS = ("min_scale", "max_scale", "aspect_ratios", "reduce_boxes_in_lowest_layer")


def anchor_config(config):
    """The default-box keyword arguments of a builder ``config`` (builder defaults filled in)."""
    defaults = {k: v.default for k, v in inspect.signature(SSDMobileNet).parameters.items() if k in ANCHOR_KEYS}
    return {k: config.get(k, defaults[k]) for k in ANCHOR_KEYS}


def model_anchors(model, config):
    """The ``[A, 4]`` center-size default boxes of ``model`` built with ``config``."""
    anchors = ssd_utils.generate_anchors(feature_map_sizes(model), **anchor_config(config))
    if anchors.shape[0] != model.outputs[0].shape[1]:
        raise ValueError(f"{model.name}: {anchors.shape[0]} default boxes from the config, but the model predicts "
                         f"{model.outputs[0].shape[1]}; build it from the same config. Received: config={config}")
    return anchors


def default_box_coverage(gt_boxes, gt_classes, anchors, iou_threshold=0.5):
    """How well the default boxes fit a set of objects (Sec. 2.2 matching).

    Args:
        gt_boxes: ``[B, G, 4]`` corner boxes; rows with ``gt_classes < 0`` are padding.
        gt_classes: ``[B, G]`` int.
        anchors: ``[A, 4]`` center-size default boxes.
        iou_threshold: the matching threshold.

    Returns:
        ``{"objects", "covered": share of objects with a default box of IoU >= iou_threshold,
        "median_best_iou", "positives_per_object": mean default boxes matched to an object
        (forced best matches included)}``. Objects that are covered by no default box only
        get their forced best match, a poorly overlapping box to regress from.
    """
    valid = np.asarray(gt_classes) >= 0
    if not valid.any():
        return {"objects": 0, "covered": 0.0, "median_best_iou": 0.0, "positives_per_object": 0.0}
    boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    best = tf.reduce_max(ssd_utils.pairwise_iou(boxes, ssd_utils.center_to_corners(anchors)), axis=-1).numpy()
    matched = ssd_utils.match_anchors(boxes, valid, anchors, iou_threshold).numpy()  # [B, A]
    positives = (matched[:, None, :] == np.arange(valid.shape[1])[None, :, None]).sum(-1)  # [B, G]
    return {"objects": int(valid.sum()), "covered": float(np.mean(best[valid] >= iou_threshold)),
            "median_best_iou": float(np.median(best[valid])),
            "positives_per_object": float(positives[valid].mean())}


def detection_model(model, config, **postprocess_kwargs):
    """Wraps a raw SSD model with ``SSDPostProcess``: outputs boxes, scores, classes, count."""
    post = ssd_utils.SSDPostProcess(feature_map_sizes(model), **anchor_config(config), **postprocess_kwargs,
                                    name="postprocess")
    return keras.Model(model.inputs, post(model.outputs), name=f"{model.name}_detector")


VARIANTS = {
    "ssd_mobilenet": dict(
        config=dict(input_shape=(300, 300, 3), classes=90, alpha=1.0, name="ssd_mobilenet"),
        tiny=dict(
            input_shape=(32, 32, 1), classes=3, alpha=0.25,
            backbone_blocks=((64, 1), (128, 2), (256, 2), (512, 2), (1024, 2)),
            extra_depths=(64, 64),
        ),
    ),
}


def _input_spec(config):
    from keras_zoo.registry import InputSpec

    return [InputSpec(shape=tuple(config.get("input_shape") or (300, 300, 3)), dtype="float32")]


register_family(
    SSDMobileNet,
    VARIANTS,
    task="detection",
    paper="1512.02325",
    input_spec=_input_spec,
    default_dataset="digit_canvases_det",
    export={"tflite": True,
            "edgetpu": "backbone and predictors are Edge TPU ops; TFLite_Detection_PostProcess runs on the CPU"},
)
