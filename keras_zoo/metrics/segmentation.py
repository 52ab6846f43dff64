"""Segmentation metrics: confusion matrix, per-class precision, recall and IoU, mean IoU.

IoU of class c (the "mean IU" of Long et al., arXiv:1411.4038, Sec. 5, and the
PASCAL VOC measure) is ``n_cc / (t_c + p_c - n_cc)``, with ``n_cc`` the pixels of
class c predicted c, ``t_c`` the pixels of class c and ``p_c`` the pixels predicted c.
Mean IoU averages over the classes that occur in the labels or the predictions
(others have an undefined IoU), as ``keras.metrics.MeanIoU`` does.

Confusion matrices follow scikit-learn: rows are true classes, columns predicted
classes. Labels outside ``[0, num_classes)`` (e.g. VOC's 255 "void" border) are
ignored. ``MeanIoU`` is the streaming Keras metric for training (TensorFlow ops,
both Keras runtimes); the NumPy functions serve reports.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable


def confusion_matrix(y_true, y_pred, num_classes):
    """``(num_classes, num_classes)`` int64 counts; rows true, columns predicted; out-of-range labels ignored."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must hold the same number of pixels. "
                         f"Received: {y_true.size} and {y_pred.size}")
    valid = (y_true >= 0) & (y_true < num_classes)
    y_pred = np.clip(y_pred[valid], 0, num_classes - 1)
    return np.bincount(y_true[valid] * num_classes + y_pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def _ratio(numerator, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def per_class_precision(matrix):
    """``n_cc / p_c`` per class; NaN for classes never predicted."""
    matrix = np.asarray(matrix, np.float64)
    return _ratio(np.diag(matrix), matrix.sum(0))


def per_class_recall(matrix):
    """``n_cc / t_c`` per class; NaN for classes absent from the labels."""
    matrix = np.asarray(matrix, np.float64)
    return _ratio(np.diag(matrix), matrix.sum(1))


def per_class_iou(matrix):
    """``n_cc / (t_c + p_c - n_cc)`` per class; NaN for classes in neither labels nor predictions."""
    matrix = np.asarray(matrix, np.float64)
    true_positive = np.diag(matrix)
    return _ratio(true_positive, matrix.sum(0) + matrix.sum(1) - true_positive)


def mean_iou(matrix):
    """Mean of the defined per-class IoUs (0.0 for an empty matrix)."""
    iou = per_class_iou(matrix)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0


def segmentation_report(matrix, labels=None):
    """Pixel accuracy, mean IoU and per-class precision/recall/IoU as a JSON-able dict (NaN -> None)."""
    matrix = np.asarray(matrix)
    labels = list(labels) if labels is not None else [str(c) for c in range(len(matrix))]

    def clean(values):
        return {label: (None if np.isnan(v) else float(v)) for label, v in zip(labels, values)}

    total = matrix.sum()
    return {
        "pixel_accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "mean_iou": mean_iou(matrix),
        "iou": clean(per_class_iou(matrix)),
        "precision": clean(per_class_precision(matrix)),
        "recall": clean(per_class_recall(matrix)),
        "pixels_per_class": {label: int(n) for label, n in zip(labels, matrix.sum(1))},
    }


@serializable
class MeanIoU(keras.metrics.Metric):
    """Streaming mean IoU of per-pixel class scores (logits or probabilities) against integer masks.

    ``update_state(y_true, y_pred)``: ``y_true`` ``(B, H, W)`` or ``(B, H, W, 1)`` class ids,
    ``y_pred`` ``(B, H, W, num_classes)`` scores (argmax is taken). Unlike
    ``keras.metrics.MeanIoU`` it takes scores rather than class ids, ignores labels outside
    ``[0, num_classes)``, and exposes the confusion matrix (``confusion_matrix()``).
    """

    def __init__(self, num_classes, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        self.num_classes = num_classes
        # float64 counts stay exact far beyond the 2**24 pixels where float32 would round.
        self.confusion = self.add_weight(name="confusion", shape=(num_classes, num_classes),
                                         initializer="zeros", dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.convert_to_tensor(y_pred)
        labels = tf.reshape(tf.cast(y_true, tf.int64), [-1])
        predictions = tf.reshape(tf.argmax(y_pred, axis=-1), [-1])
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        weights = tf.cast(valid, tf.float64)
        if sample_weight is not None:
            weights *= tf.reshape(tf.cast(tf.broadcast_to(sample_weight, tf.shape(y_pred)[:-1]), tf.float64), [-1])
        matrix = tf.math.confusion_matrix(tf.where(valid, labels, 0), predictions, num_classes=self.num_classes,
                                          weights=weights, dtype=tf.float64)
        self.confusion.assign_add(matrix)

    def confusion_matrix(self):
        return tf.convert_to_tensor(self.confusion)

    def result(self):
        matrix = tf.convert_to_tensor(self.confusion)
        true_positive = tf.linalg.diag_part(matrix)
        union = tf.reduce_sum(matrix, 0) + tf.reduce_sum(matrix, 1) - true_positive
        present = union > 0
        iou = tf.math.divide_no_nan(true_positive, union)
        count = tf.reduce_sum(tf.cast(present, tf.float64))
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(iou), count), tf.float32)

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}
