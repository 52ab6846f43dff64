"""Training task of SSD detectors (Liu et al., 2016, arXiv:1512.02325).

Batches are ``(images, {"boxes": [B, G, 4], "classes": [B, G]})`` (keras_zoo.data.detection).
``SSDTrainer.train_step`` matches the ground truth to the model's default boxes
(``ssd_utils.encode_targets``; in the step, since the default boxes come from the
built model) and minimizes the multibox loss (Eq. 1) with 3:1 hard-negative mining.
``after_training`` decodes and NMS-filters held-out predictions, reports VOC
mAP@0.5 and COCO mAP@[.5:.95], and draws predicted boxes on held-out images.
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers import ssd_utils
from keras_zoo.metrics.detection import detection_metrics
from training.tasks import Task, register_task

#: Detections drawn in the picture need at least this score.
PICTURE_SCORE = 0.3


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

    @tf.function
    def predict(images):
        box_encodings, class_logits = model(images, training=False)
        return ssd_utils.postprocess(box_encodings, class_logits, anchors, **postprocess_kwargs)

    return predict


def draw_detections(path, images, ground_truth, detections, labels=None, columns=4, min_score=PICTURE_SCORE):
    """A PNG grid: ground truth in dashed green, detections with score >= ``min_score`` in red."""
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
        for (ymin, xmin, ymax, xmax) in ground_truth[0][k]:
            ax.add_patch(patches.Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                                           (ymax - ymin) * height, fill=False, ec="lime", ls="--", lw=1))
        for box, score, cls in zip(*(d[k] for d in detections)):
            if score < min_score:
                continue
            ymin, xmin, ymax, xmax = box
            ax.add_patch(patches.Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                                           (ymax - ymin) * height, fill=False, ec="red", lw=1.2))
            name = labels[cls] if labels else str(cls)
            ax.text(xmin * width, ymin * height - 1, f"{name} {score:.2f}", color="red", fontsize=7)
    fig.suptitle(f"held-out detections (red, score >= {min_score}); ground truth dashed green", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@register_task("detection")
class DetectionTask(Task):
    """SSD multibox training; held-out VOC mAP@0.5 and COCO mAP after training."""

    monitor = "val_loss"
    OPTIONS = {
        "match_iou_threshold": (0.5, "SSD: IoU at which a default box matches a ground-truth box (Sec. 2.2)."),
        "neg_pos_ratio": (3.0, "SSD: hard negatives kept per positive default box (Sec. 3.1)."),
        "detection_eval_images": (400, "Held-out images scored for mAP after training."),
    }

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
        return {**metrics, "num_images": int(len(images)), "picture": picture}
