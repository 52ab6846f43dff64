"""Training task of semantic segmentation models (FCN, U-Net: keras_zoo/models/segmentation.py).

Batches are ``(images, masks)`` with integer masks ``(B, H, W)``; the models return
per-pixel logits ``(B, H, W, classes)``. The loss is the per-pixel softmax
cross-entropy averaged over pixels, as in FCN (arXiv:1411.4038, Sec. 3: "a
per-pixel multinomial logistic loss"); labels outside ``[0, classes)`` (VOC's 255
border) contribute nothing. ``--seg_class_weights`` weights the training pixels of
each class (Eigen & Fergus's median frequency balancing, arXiv:1411.4734, or plain
inverse frequency), with class frequencies measured on the training batches;
the validation loss stays unweighted. Metrics: pixel accuracy and mean IoU.
"""
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_zoo.backend import keras, serializable
from keras_zoo.metrics.segmentation import MeanIoU, confusion_matrix, segmentation_report
from training.tasks import Task, precise_batch_norm, register_task

CLASS_WEIGHTINGS = ("none", "inverse_frequency", "median_frequency")
#: Training batches scanned to measure class frequencies for the class weights.
_FREQUENCY_BATCHES = 100


@serializable
class PixelCrossEntropy(keras.losses.Loss):
    """Per-pixel sparse softmax cross-entropy from logits; labels outside ``[0, num_classes)`` count zero."""

    def __init__(self, num_classes, name="pixel_cross_entropy"):
        super().__init__(name=name)
        self.num_classes = num_classes

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == logits.shape.rank:
            labels = tf.squeeze(labels, -1)
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(valid, labels, 0), logits=logits)
        return per_pixel * tf.cast(valid, tf.float32)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


def class_weights(frequencies, mode):
    """Per-class loss weights from pixel ``frequencies``; absent classes get weight 0.

    ``inverse_frequency``: ``1 / (K f_c)`` over the K present classes, so the mean
    weight of a pixel is 1. ``median_frequency``: ``median(f) / f_c`` (Eigen & Fergus).
    """
    if mode not in CLASS_WEIGHTINGS:
        raise ValueError(f"seg_class_weights must be one of {CLASS_WEIGHTINGS}. Received: {mode!r}")
    frequencies = np.asarray(frequencies, np.float64)
    if mode == "none":
        return np.ones_like(frequencies)
    present = frequencies > 0
    weights = np.zeros_like(frequencies)
    if mode == "inverse_frequency":
        weights[present] = 1.0 / (present.sum() * frequencies[present])
    else:
        weights[present] = np.median(frequencies[present]) / frequencies[present]
    return weights


def measured_frequencies(dataset, num_classes, max_batches=_FREQUENCY_BATCHES):
    """Pixel frequency of each class over the first ``max_batches`` batches of ``(images, masks)``."""
    counts = np.zeros(num_classes, np.int64)
    for _, masks in dataset.take(max_batches).as_numpy_iterator():
        masks = masks.ravel()
        counts += np.bincount(masks[(masks >= 0) & (masks < num_classes)], minlength=num_classes)
    return counts / max(counts.sum(), 1)


@register_task("segmentation")
class SegmentationTask(Task):
    """Per-pixel cross-entropy on logits; pixel accuracy and mean IoU; overlays of held-out masks."""

    OPTIONS = {
        "seg_class_weights": ("none", "Segmentation: weight training pixels by class: none | inverse_frequency | "
                                      "median_frequency (frequencies measured on the training batches)."),
        "seg_overlay_examples": (8, "Segmentation: held-out examples drawn in segmentation_overlays.png."),
        "seg_precise_bn_batches": (20, "Segmentation: after training, recompute BatchNorm statistics as the mean over "
                                       "this many training batches (precise BN); 0 keeps the moving averages."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        if self.options["seg_class_weights"] not in CLASS_WEIGHTINGS:
            raise ValueError(f"--seg_class_weights must be one of {', '.join(CLASS_WEIGHTINGS)}. "
                             f"Received: seg_class_weights={self.options['seg_class_weights']!r}")
        self.class_weights = None

    def loss(self, config):
        return PixelCrossEntropy(config["classes"])

    def metrics(self, config):
        return [keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"), MeanIoU(config["classes"])]

    def fit(self, model, train, **fit_kwargs):
        mode = self.options["seg_class_weights"]
        if mode != "none":
            num_classes = int(model.output_shape[-1])
            weights = class_weights(measured_frequencies(train, num_classes), mode)
            self.class_weights = [float(w) for w in weights]
            logging.info("Segmentation class weights (%s): %s", mode, np.round(weights, 3).tolist())
            table = tf.constant(weights, tf.float32)

            def add_weights(images, masks):
                valid = tf.logical_and(masks >= 0, masks < num_classes)
                return images, masks, tf.where(valid, tf.gather(table, tf.where(valid, masks, 0)), 0.0)

            train = train.map(add_weights, num_parallel_calls=tf.data.AUTOTUNE)
        history = model.fit(train, **fit_kwargs)
        if self.options["seg_precise_bn_batches"] > 0:
            precise_batch_norm(model, train.map(lambda images, *_: images), self.options["seg_precise_bn_batches"])
        return history

    def after_training(self, model, bundle, write_dir, config):
        """Held-out (test split) confusion matrix, mean IoU and per-class IoU; a PNG of mask overlays."""
        num_classes = int(model.output_shape[-1])
        matrix = np.zeros((num_classes, num_classes), np.int64)
        shown = []
        # predict runs one compiled function; eager calls per batch are many times slower.
        scores = model.predict(bundle.test.map(lambda images, masks: images), verbose=0)
        start = 0
        for images, masks in bundle.test.as_numpy_iterator():
            predictions = np.argmax(scores[start:start + len(masks)], -1)
            start += len(masks)
            matrix += confusion_matrix(masks, predictions, num_classes)
            if len(shown) < self.options["seg_overlay_examples"]:
                shown.extend(zip(images, masks, predictions))
        shown = shown[:self.options["seg_overlay_examples"]]
        report = segmentation_report(matrix, bundle.labels)
        path = os.path.join(write_dir, "segmentation_overlays.png")
        if shown:
            save_overlays(shown, path, num_classes, bundle.labels)
        return {
            "test_mean_iou": report["mean_iou"],
            "test_pixel_accuracy": report["pixel_accuracy"],
            "per_class_iou": report["iou"],
            "per_class_precision": report["precision"],
            "per_class_recall": report["recall"],
            "class_weights": self.class_weights,
            "overlay_png": path if shown else None,
        }


def _palette(num_classes):
    from matplotlib import colormaps

    # tab10's ten distinct colours cover the ten digits (tab20 pairs similar shades); its gray,
    # invisible over gray ink, becomes gold.
    colors = np.array(colormaps["tab10" if num_classes <= 11 else "tab20"].colors)[:, :3]
    colors[np.all(np.isclose(colors, colors[:, :1]), axis=1)] = (1.0, 0.84, 0.0)
    return np.concatenate([[[0.0, 0.0, 0.0]], colors[np.arange(num_classes - 1) % len(colors)]])


def overlay(image, mask, palette, alpha=0.6):
    """An RGB picture: the gray image with every non-background pixel tinted by its class colour."""
    gray = np.asarray(image, np.float32)
    gray = gray.mean(-1) if gray.ndim == 3 else gray
    rgb = np.repeat(np.clip(gray, 0, 1)[..., None], 3, -1)
    foreground = (mask > 0)[..., None]
    return np.where(foreground, (1 - alpha) * rgb + alpha * palette[np.clip(mask, 0, len(palette) - 1)], rgb)


def save_overlays(examples, path, num_classes, labels=None):
    """Rows of (image, ground-truth overlay, predicted overlay), with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import patches, pyplot as plt

    palette = _palette(num_classes)
    fig, axes = plt.subplots(len(examples), 3, figsize=(6.6, 2.2 * len(examples)), squeeze=False)
    for row, (image, mask, prediction) in zip(axes, examples):
        gray = np.asarray(image).mean(-1)
        for ax, picture, title in ((row[0], np.repeat(gray[..., None], 3, -1), "image"),
                                   (row[1], overlay(image, mask, palette), "ground truth"),
                                   (row[2], overlay(image, prediction, palette), "prediction")):
            ax.imshow(np.clip(picture, 0, 1), interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    names = labels or [str(c) for c in range(num_classes)]
    handles = [patches.Patch(color=palette[c], label=names[c]) for c in range(1, num_classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
