"""SSD building blocks (Liu et al., 2016, arXiv:1512.02325): default boxes, box coding,
matching, hard-negative mining, the multibox loss and NMS post-processing.

Conventions (those of the TF Object Detection API, so the TFLite
``TFLite_Detection_PostProcess`` op reads our tensors unchanged):

- boxes are normalized corners ``(ymin, xmin, ymax, xmax)``;
- anchors (default boxes) are center-size ``(cy, cx, h, w)``;
- box encodings are ``(ty, tx, th, tw)`` with ``ty = (cy - cy_a) / h_a * 10``,
  ``th = log(h / h_a) * 5`` (Sec. 2.2, Eq. 2, with the "variances" 0.1 / 0.2 of the
  released Caffe SSD written as the scale factors 10 / 5);
- class targets are 0 for background and ``1 + class`` for objects.
"""
import math

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable

#: (y, x, h, w) scale factors of the box coder: 1 / the SSD "variances" (0.1, 0.1, 0.2, 0.2).
SCALE_FACTORS = (10.0, 10.0, 5.0, 5.0)
#: The aspect ratios a_r of Sec. 2.2 ("Choosing scales and aspect ratios for default boxes").
ASPECT_RATIOS = (1.0, 2.0, 3.0, 1.0 / 2.0, 1.0 / 3.0)


# --- default boxes ---------------------------------------------------------------------------

def anchor_scales(num_layers, min_scale=0.2, max_scale=0.95):
    """Eq. 4: ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)``, k = 1..m.

    The paper uses s_min=0.2, s_max=0.9; the Object Detection API's ssd_mobilenet_v1
    config 0.2 and 0.95 (our default). One layer gets ``min_scale``.
    """
    if num_layers == 1:
        return [float(min_scale)]
    return [min_scale + (max_scale - min_scale) * k / (num_layers - 1) for k in range(num_layers)]


def layer_box_specs(num_layers, min_scale=0.2, max_scale=0.95, aspect_ratios=ASPECT_RATIOS,
                    reduce_boxes_in_lowest_layer=True):
    """The ``(scale, aspect_ratio)`` of every default box of each layer.

    Per layer k: one box ``(s_k, a_r)`` per aspect ratio, plus the extra box of
    aspect ratio 1 and scale ``s'_k = sqrt(s_k s_{k+1})`` (s_{m+1} = 1). With
    ``reduce_boxes_in_lowest_layer`` the first layer has only the boxes
    ``(0.1, 1), (s_1, 2), (s_1, 1/2)``, as the Object Detection API's ssd_mobilenet_v1.
    """
    scales = anchor_scales(num_layers, min_scale, max_scale) + [1.0]
    specs = []
    for k in range(num_layers):
        if k == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)])
            continue
        boxes = [(scales[k], float(a)) for a in aspect_ratios]
        boxes.append((math.sqrt(scales[k] * scales[k + 1]), 1.0))
        specs.append(boxes)
    return specs


def generate_anchors(feature_map_sizes, min_scale=0.2, max_scale=0.95, aspect_ratios=ASPECT_RATIOS,
                     reduce_boxes_in_lowest_layer=True):
    """Default boxes of all layers as float32 ``[num_anchors, 4]`` center-size ``(cy, cx, h, w)``.

    Box ``(s, a)`` has ``w = s sqrt(a)``, ``h = s / sqrt(a)`` and centre
    ``((i + 0.5) / |f_k|, (j + 0.5) / |f_k|)`` (Sec. 2.2). Order: layer, row, column,
    box, which is how the per-layer head outputs ``[B, H, W, boxes * 4]`` flatten.

    Args:
        feature_map_sizes: ``[(height, width), ...]`` of the predictor layers.
    """
    specs = layer_box_specs(len(feature_map_sizes), min_scale, max_scale, aspect_ratios,
                            reduce_boxes_in_lowest_layer)
    anchors = []
    for (height, width), boxes in zip(feature_map_sizes, specs):
        cy, cx = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
        sizes = np.array([(s / math.sqrt(a), s * math.sqrt(a)) for s, a in boxes])  # (h, w) per box
        grid = np.zeros((height, width, len(boxes), 4))
        grid[..., 0] = cy[..., None]
        grid[..., 1] = cx[..., None]
        grid[..., 2] = sizes[:, 0]
        grid[..., 3] = sizes[:, 1]
        anchors.append(grid.reshape(-1, 4))
    return np.concatenate(anchors).astype("float32")


# --- box coding ------------------------------------------------------------------------------

def center_to_corners(boxes):
    """``(cy, cx, h, w)`` -> ``(ymin, xmin, ymax, xmax)`` (TF ops, any leading shape)."""
    cy, cx, h, w = tf.unstack(tf.convert_to_tensor(boxes, tf.float32), axis=-1)
    return tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def corners_to_center(boxes):
    """``(ymin, xmin, ymax, xmax)`` -> ``(cy, cx, h, w)``."""
    ymin, xmin, ymax, xmax = tf.unstack(tf.convert_to_tensor(boxes, tf.float32), axis=-1)
    return tf.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=-1)


def encode_boxes(boxes, anchors, scale_factors=SCALE_FACTORS):
    """Corner ``boxes`` relative to center-size ``anchors`` (Eq. 2): ``(ty, tx, th, tw)``."""
    cy, cx, h, w = tf.unstack(corners_to_center(boxes), axis=-1)
    acy, acx, ah, aw = tf.unstack(tf.convert_to_tensor(anchors, tf.float32), axis=-1)
    sy, sx, sh, sw = scale_factors
    return tf.stack([(cy - acy) / ah * sy, (cx - acx) / aw * sx,
                     tf.math.log(h / ah) * sh, tf.math.log(w / aw) * sw], axis=-1)


def decode_boxes(encodings, anchors, scale_factors=SCALE_FACTORS):
    """Inverse of ``encode_boxes``: corner boxes from ``(ty, tx, th, tw)``."""
    ty, tx, th, tw = tf.unstack(tf.convert_to_tensor(encodings, tf.float32), axis=-1)
    acy, acx, ah, aw = tf.unstack(tf.convert_to_tensor(anchors, tf.float32), axis=-1)
    sy, sx, sh, sw = scale_factors
    center = tf.stack([ty / sy * ah + acy, tx / sx * aw + acx, tf.exp(th / sh) * ah, tf.exp(tw / sw) * aw],
                      axis=-1)
    return center_to_corners(center)


def pairwise_iou(boxes_a, boxes_b):
    """IoU (Jaccard overlap) ``[..., N, M]`` of corner boxes ``[..., N, 4]`` and ``[..., M, 4]``."""
    a = tf.convert_to_tensor(boxes_a, tf.float32)[..., :, None, :]
    b = tf.convert_to_tensor(boxes_b, tf.float32)[..., None, :, :]
    height = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    width = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    intersection = height * width
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return tf.math.divide_no_nan(intersection, area_a + area_b - intersection)


# --- matching and targets --------------------------------------------------------------------

def match_anchors(gt_boxes, gt_valid, anchors, iou_threshold=0.5):
    """Sec. 2.2 "Matching strategy", batched.

    Each ground truth box first takes the default box it overlaps most (so every
    object has a match); every other default box is matched to the ground truth
    of highest IoU when that IoU is at least ``iou_threshold``. Where two ground
    truths claim the same best default box, the first one keeps it.

    Args:
        gt_boxes: ``[B, G, 4]`` corner boxes (padded).
        gt_valid: ``[B, G]`` bool, False for padding rows.
        anchors: ``[A, 4]`` center-size default boxes.

    Returns:
        int32 ``[B, A]``: the matched ground-truth row per default box, -1 for none.
    """
    gt_valid = tf.convert_to_tensor(gt_valid, tf.bool)
    iou = pairwise_iou(gt_boxes, center_to_corners(anchors))  # [B, G, A]
    iou = tf.where(gt_valid[..., None], iou, -1.0)
    best_gt = tf.argmax(iou, axis=1, output_type=tf.int32)
    matched = tf.where(tf.reduce_max(iou, axis=1) >= iou_threshold, best_gt, -1)
    num_anchors = tf.shape(iou)[2]
    best_anchor = tf.argmax(iou, axis=2, output_type=tf.int32)  # [B, G]
    forced = tf.logical_and(tf.one_hot(best_anchor, num_anchors, on_value=True, off_value=False),
                            gt_valid[..., None])  # [B, G, A]
    forced_gt = tf.argmax(tf.cast(forced, tf.int32), axis=1, output_type=tf.int32)
    return tf.where(tf.reduce_any(forced, axis=1), forced_gt, matched)


def encode_targets(gt_boxes, gt_classes, anchors, iou_threshold=0.5, scale_factors=SCALE_FACTORS):
    """Regression and class targets per default box.

    Args:
        gt_boxes: ``[B, G, 4]`` corner boxes; rows with ``gt_classes < 0`` are padding.
        gt_classes: ``[B, G]`` int, class ids 0..C-1, -1 for padding.
        anchors: ``[A, 4]`` center-size default boxes.

    Returns:
        ``(box_targets [B, A, 4], class_targets [B, A] int32)``; class 0 is
        background, ``1 + c`` object class c. Unmatched boxes get zero box targets.
    """
    gt_classes = tf.cast(gt_classes, tf.int32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    matched = match_anchors(gt_boxes, gt_classes >= 0, anchors, iou_threshold)
    positive = matched >= 0
    index = tf.maximum(matched, 0)
    boxes = tf.gather(gt_boxes, index, batch_dims=1)
    # Unmatched rows encode the anchor itself (zeros), never log(0) of a padding box.
    boxes = tf.where(positive[..., None], boxes, center_to_corners(anchors)[None])
    classes = tf.where(positive, tf.gather(gt_classes, index, batch_dims=1) + 1, 0)
    return encode_boxes(boxes, anchors[None], scale_factors), classes


# --- loss ------------------------------------------------------------------------------------

def hard_negative_mask(class_losses, positives, neg_pos_ratio=3.0, min_negatives=0):
    """Sec. 3.1 "Hard negative mining": per image, the negatives of highest confidence loss,
    at most ``neg_pos_ratio`` per positive (and at least ``min_negatives``).

    Args:
        class_losses: ``[B, A]`` per-box classification loss.
        positives: ``[B, A]`` bool, matched boxes.

    Returns:
        bool ``[B, A]``, the selected negatives.
    """
    positives = tf.convert_to_tensor(positives, tf.bool)
    num_anchors = tf.shape(positives)[1]
    num_pos = tf.reduce_sum(tf.cast(positives, tf.int32), axis=1)
    wanted = tf.maximum(tf.cast(tf.math.floor(neg_pos_ratio * tf.cast(num_pos, tf.float32)), tf.int32),
                        min_negatives)
    num_neg = tf.minimum(wanted, num_anchors - num_pos)
    negative_losses = tf.where(positives, -np.inf, tf.cast(class_losses, tf.float32))
    order = tf.argsort(negative_losses, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    return tf.logical_and(rank < num_neg[:, None], tf.logical_not(positives))


def smooth_l1(x):
    """Eq. 2's smooth L1 (Huber with delta 1), elementwise."""
    absolute = tf.abs(x)
    return tf.where(absolute < 1.0, 0.5 * x * x, absolute - 0.5)


def multibox_loss(box_predictions, class_logits, box_targets, class_targets, neg_pos_ratio=3.0, alpha=1.0,
                  min_negatives=0):
    """Eq. 1: ``L = (L_conf + alpha L_loc) / N`` over the batch, 0 when N = 0.

    ``L_conf`` is the softmax cross-entropy of the positives and of the hard
    negatives (``hard_negative_mask``), ``L_loc`` the smooth L1 of the positives'
    box encodings, N the number of positives.

    Returns:
        ``(loss, localization_loss, classification_loss)``, all divided by N.
    """
    class_targets = tf.cast(class_targets, tf.int32)
    positives = class_targets > 0
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=class_targets, logits=tf.cast(class_logits, tf.float32))
    negatives = hard_negative_mask(tf.stop_gradient(cross_entropy), positives, neg_pos_ratio, min_negatives)
    selected = tf.cast(tf.logical_or(positives, negatives), tf.float32)
    classification = tf.reduce_sum(cross_entropy * selected)
    per_box = tf.reduce_sum(smooth_l1(tf.cast(box_predictions, tf.float32) - box_targets), axis=-1)
    localization = tf.reduce_sum(per_box * tf.cast(positives, tf.float32))
    num_pos = tf.maximum(tf.reduce_sum(tf.cast(positives, tf.float32)), 1.0)
    return (classification + alpha * localization) / num_pos, localization / num_pos, classification / num_pos


# --- inference -------------------------------------------------------------------------------

def postprocess(box_encodings, class_logits, anchors, max_detections=100, iou_threshold=0.6,
                score_threshold=1e-8, scale_factors=SCALE_FACTORS, class_agnostic=False):
    """Decodes boxes, softmax scores without the background column, and NMS.

    Per-class NMS (``tf.image.combined_non_max_suppression``, boxes clipped to [0, 1]) by
    default; ``class_agnostic`` gives each box its best class and runs one NMS over all
    boxes, as the fast path of TFLite's ``TFLite_Detection_PostProcess``
    (``use_regular_nms=false``). Defaults are the Object Detection API's
    ssd_mobilenet_v1 ``batch_non_max_suppression`` (IoU 0.6, score 1e-8, 100 detections).

    Returns:
        ``(boxes [B, K, 4], scores [B, K], classes [B, K] int32 (0-based), num_detections [B] int32)``.
    """
    boxes = decode_boxes(box_encodings, tf.convert_to_tensor(anchors, tf.float32)[None], scale_factors)
    scores = tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)[..., 1:]
    if class_agnostic:
        def one_image(args):
            image_boxes, image_scores, image_classes = args
            keep, kept_scores = tf.image.non_max_suppression_with_scores(
                image_boxes, image_scores, max_detections, iou_threshold, score_threshold)
            pad = max_detections - tf.shape(keep)[0]
            return (tf.pad(tf.gather(image_boxes, keep), [[0, pad], [0, 0]]), tf.pad(kept_scores, [[0, pad]]),
                    tf.pad(tf.gather(image_classes, keep), [[0, pad]]), tf.shape(keep)[0])

        return tf.map_fn(one_image, (boxes, tf.reduce_max(scores, -1), tf.argmax(scores, -1, output_type=tf.int32)),
                         fn_output_signature=(tf.float32, tf.float32, tf.int32, tf.int32))
    result = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=max_detections,
        max_total_size=max_detections, iou_threshold=iou_threshold, score_threshold=score_threshold,
        clip_boxes=True)
    return (result.nmsed_boxes, result.nmsed_scores, tf.cast(result.nmsed_classes, tf.int32),
            result.valid_detections)


@serializable
class SSDPostProcess(keras.layers.Layer):
    """``[box_encodings, class_logits]`` -> ``[boxes, scores, classes, num_detections]``.

    The anchors are regenerated from the constructor arguments (see
    ``generate_anchors``), so the layer serializes without a constant table.
    """

    def __init__(self, feature_map_sizes, min_scale=0.2, max_scale=0.95, aspect_ratios=ASPECT_RATIOS,
                 reduce_boxes_in_lowest_layer=True, max_detections=100, iou_threshold=0.6,
                 score_threshold=1e-8, scale_factors=SCALE_FACTORS, **kwargs):
        super().__init__(**kwargs)
        self.feature_map_sizes = [tuple(int(d) for d in size) for size in feature_map_sizes]
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.aspect_ratios = tuple(float(a) for a in aspect_ratios)
        self.reduce_boxes_in_lowest_layer = bool(reduce_boxes_in_lowest_layer)
        self.max_detections = int(max_detections)
        self.iou_threshold, self.score_threshold = float(iou_threshold), float(score_threshold)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.anchors = generate_anchors(self.feature_map_sizes, self.min_scale, self.max_scale,
                                        self.aspect_ratios, self.reduce_boxes_in_lowest_layer)

    def call(self, inputs):
        box_encodings, class_logits = inputs
        return list(postprocess(box_encodings, class_logits, self.anchors, self.max_detections,
                                self.iou_threshold, self.score_threshold, self.scale_factors))

    def get_config(self):
        return {
            **super().get_config(),
            "feature_map_sizes": [list(s) for s in self.feature_map_sizes], "min_scale": self.min_scale,
            "max_scale": self.max_scale, "aspect_ratios": list(self.aspect_ratios),
            "reduce_boxes_in_lowest_layer": self.reduce_boxes_in_lowest_layer,
            "max_detections": self.max_detections, "iou_threshold": self.iou_threshold,
            "score_threshold": self.score_threshold, "scale_factors": list(self.scale_factors),
        }
