"""Training task of SSD detectors (Liu et al., 2016, arXiv:1512.02325).

Batches are ``(images, {"boxes": [B, G, 4], "classes": [B, G]})`` (keras_zoo.data.detection).
``SSDTrainer.train_step`` matches the ground truth to the model's default boxes
(``ssd_utils.encode_targets``; in the step, since the default boxes come from the
built model) and minimizes the multibox loss (Eq. 1) with 3:1 hard-negative mining.
Before training, the task measures how many training objects overlap a default box at
the matching IoU and warns when most do not (the default boxes do not fit the objects
at this input size); after training, it recomputes the BatchNorm statistics (precise
BN, ``det_precise_bn_batches``). ``after_training`` decodes and NMS-filters held-out
predictions, reports VOC mAP@0.5 and COCO mAP@[.5:.95], and draws predicted boxes on
held-out images.
"""
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_zoo.backend import keras
from keras_zoo.layers import ssd_utils
from keras_zoo.metrics.detection import detection_metrics
from training.tasks import Task, precise_batch_norm, register_task

#: Detections drawn in the picture need at least this score.
PICTURE_SCORE = 0.3
#: Training batches whose objects are matched to the default boxes before training.
COVERAGE_BATCHES = 10
#: Below this share of objects overlapping a default box at the matching IoU, training warns.
MIN_COVERAGE = 0.5


class SSDTrainer(keras.Model):
    """Wraps a raw SSD model (``[box_encodings, class_logits]``) for ``fit`` / ``evaluate``.

    The loss is normalized by the positives of the replica's batch (Eq. 1) and divided by
    the number of replicas, whose gradients the optimizer sums.
    """

    def __init__(self, detector, anchors, iou_threshold=0.5, neg_pos_ratio=3.0, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector
        self.anchors = np.asarray(anchors, np.float32)
        self.iou_threshold, self.neg_pos_ratio = float(iou_threshold), float(neg_pos_ratio)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.localization_tracker = keras.metrics.Mean(name="localization_loss")
        self.classification_tracker = keras.metrics.Mean(name="classification_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.localization_tracker, self.classification_tracker]

    def call(self, inputs, training=False):
        return self.detector(inputs, training=training)

    def _multibox_losses(self, data, training):
        images, targets = data[0], data[1]
        box_targets, class_targets = ssd_utils.encode_targets(
            targets["boxes"], targets["classes"], self.anchors, self.iou_threshold)
        box_encodings, class_logits = self.detector(images, training=training)
        return ssd_utils.multibox_loss(box_encodings, class_logits, box_targets, class_targets,
                                       neg_pos_ratio=self.neg_pos_ratio)

    def _report(self, losses):
        for tracker, value in zip(self.metrics, losses):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self._multibox_losses(data, training=True)
            scaled = losses[0] / tf.distribute.get_strategy().num_replicas_in_sync
        weights = self.detector.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._report(losses)

    def test_step(self, data):
        return self._report(self._multibox_losses(data, training=False))


def _without_padding(boxes, classes):
    keep = classes >= 0
    return boxes[keep], classes[keep]


def run_detector(predict, dataset, max_images=None):
    """Runs ``predict(images) -> (boxes, scores, classes, count)`` over ``(images, targets)`` batches.

    Returns ``(images, ground_truth, detections)``: images as an array, ground truth as
    ``(boxes list, classes list)`` and detections as ``(boxes, scores, classes)`` lists.
    """
    images, gt_boxes, gt_classes, det_boxes, det_scores, det_classes = [], [], [], [], [], []
    for batch, targets in dataset:
        boxes, scores, classes, count = (np.asarray(t) for t in predict(batch))
        for i in range(len(count)):
            if max_images is not None and len(images) >= max_images:
                break
            n = int(count[i])
            images.append(np.asarray(batch[i]))
            gb, gc = _without_padding(np.asarray(targets["boxes"][i]), np.asarray(targets["classes"][i]))
            gt_boxes.append(gb)
            gt_classes.append(gc)
            det_boxes.append(boxes[i, :n])
            det_scores.append(scores[i, :n])
            det_classes.append(classes[i, :n].astype(np.int64))
        if max_images is not None and len(images) >= max_images:
            break
    return np.stack(images), (gt_boxes, gt_classes), (det_boxes, det_scores, det_classes)


def keras_predictor(model, anchors, **postprocess_kwargs):
    """``images -> (boxes, scores, classes, count)`` of a raw SSD model (``ssd_utils.postprocess``)."""

    # Plain TF ops: AutoGraph has nothing to convert, and fails to read this closure's source (a warning).
    @tf.function(autograph=False)
    def predict(images):
        box_encodings, class_logits = model(images, training=False)
        return ssd_utils.postprocess(box_encodings, class_logits, anchors, **postprocess_kwargs)

    return predict


def draw_detections(path, images, ground_truth, detections, labels=None, columns=4, min_score=PICTURE_SCORE,
                    title="held-out detections"):
    """A PNG grid: ground truth in dashed green (class below the box), detections with
    score >= ``min_score`` in red (class and score above the box)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import patches, pyplot as plt

    count = len(images)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, ax in enumerate(axes.ravel()[:count]):
        image = images[k]
        height, width = image.shape[:2]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        for (ymin, xmin, ymax, xmax), cls in zip(ground_truth[0][k], ground_truth[1][k]):
            ax.add_patch(patches.Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                                           (ymax - ymin) * height, fill=False, ec="lime", ls="--", lw=1))
            ax.text(xmin * width, ymax * height + 1, labels[cls] if labels else str(cls), color="lime", fontsize=7,
                    va="top")
        for box, score, cls in zip(*(d[k] for d in detections)):
            if score < min_score:
                continue
            ymin, xmin, ymax, xmax = box
            ax.add_patch(patches.Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                                           (ymax - ymin) * height, fill=False, ec="red", lw=1.2))
            name = labels[cls] if labels else str(cls)
            ax.text(xmin * width, ymin * height - 1, f"{name} {score:.2f}", color="red", fontsize=7,
                    bbox=dict(facecolor="white", alpha=0.7, pad=0.5, lw=0))
    fig.suptitle(f"{title} (red: class score, score >= {min_score}); ground truth dashed green", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def training_coverage(train, anchors, iou_threshold, num_batches=COVERAGE_BATCHES):
    """``ssd.default_box_coverage`` over the first training batches; warns when the default boxes miss.

    Objects that overlap no default box at ``iou_threshold`` get one poorly placed positive
    each, and the detector learns little (ssd_mobilenet's 300x300 layout at 64x64: 20%).
    """
    from keras_zoo.models import ssd

    boxes, classes = [], []
    for _, targets in train.take(num_batches):
        boxes.append(np.asarray(targets["boxes"]))
        classes.append(np.asarray(targets["classes"]))
    if not boxes:
        return None
    coverage = ssd.default_box_coverage(np.concatenate(boxes), np.concatenate(classes), anchors, iou_threshold)
    logging.info("Default boxes: %.0f%% of %d training objects overlap one at IoU >= %g; %.1f positives per "
                 "object.", 100 * coverage["covered"], coverage["objects"], iou_threshold,
                 coverage["positives_per_object"])
    if coverage["objects"] and coverage["covered"] < MIN_COVERAGE:
        logging.warning(
            "Only %.0f%% of the training objects overlap a default box at IoU >= %g (median best IoU %.2f): the "
            "default boxes do not fit these objects at this input size, and most objects get a single forced "
            "match. Choose feature-map strides and scales for the object sizes (min_scale, max_scale, "
            "backbone_blocks, extra_depths; see ssd.DIGIT_CANVAS_CONFIG for 64x64 canvases).",
            100 * coverage["covered"], iou_threshold, coverage["median_best_iou"])
    return coverage


@register_task("detection")
class DetectionTask(Task):
    """SSD multibox training; held-out VOC mAP@0.5 and COCO mAP after training."""

    monitor = "val_loss"
    OPTIONS = {
        "match_iou_threshold": (0.5, "SSD: IoU at which a default box matches a ground-truth box (Sec. 2.2)."),
        "neg_pos_ratio": (3.0, "SSD: hard negatives kept per positive default box (Sec. 3.1)."),
        "detection_eval_images": (400, "Held-out images scored for mAP after training."),
        "det_precise_bn_batches": (20, "Detection: after training, recompute BatchNorm statistics as the mean over "
                                       "this many training batches (precise BN); 0 keeps the moving averages."),
    }

    def fit(self, model, train, **fit_kwargs):
        self.coverage = training_coverage(train, model.anchors, self.options["match_iou_threshold"])
        history = model.fit(train, **fit_kwargs)
        if self.options["det_precise_bn_batches"] > 0:
            precise_batch_norm(model, train.map(lambda images, *_: images), self.options["det_precise_bn_batches"])
        return history

    def prepare(self, model, config):
        from keras_zoo.models import ssd

        outputs = model.outputs
        if len(outputs) != 2 or outputs[0].shape[-1] != 4 or len(outputs[1].shape) != 3:
            raise ValueError("The detection task trains SSD models whose outputs are [box_encodings (B, A, 4), "
                             "class_logits (B, A, classes + 1)] (e.g. ssd_mobilenet). "
                             f"Received: a model with output shapes {[tuple(o.shape) for o in outputs]}")
        self._anchors = ssd.model_anchors(model, config)
        trainer = SSDTrainer(model, self._anchors, self.options["match_iou_threshold"],
                             self.options["neg_pos_ratio"], name=f"{model.name}_trainer")
        trainer(np.zeros((1, *model.input_shape[1:]), np.float32))  # BackupAndRestore needs a built model
        return trainer

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def after_training(self, model, bundle, write_dir, config):
        from keras_zoo.models import ssd

        anchors = ssd.model_anchors(model, config)
        images, ground_truth, detections = run_detector(
            keras_predictor(model, anchors), bundle.test, self.options["detection_eval_images"])
        metrics = detection_metrics(*ground_truth, *detections)
        picture = os.path.join(write_dir, "detections.png")
        draw_detections(picture, images[:8], [g[:8] for g in ground_truth], [d[:8] for d in detections],
                        bundle.labels)
        return {**metrics, "num_images": int(len(images)), "picture": picture,
                "default_box_coverage": getattr(self, "coverage", None)}
