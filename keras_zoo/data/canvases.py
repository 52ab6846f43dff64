"""Digit canvases: scikit-learn's handwritten digits scattered on a blank canvas.

Each canvas holds 1..``max_digits`` digits, each upsampled from 8x8 to a random
side of about a quarter to three eighths of the canvas (16..24 px on 64x64) and
placed at random so that no two digit boxes overlap with IoU above ``MAX_IOU``.
Digits come from one split of ``keras_zoo.data.digits.split_indices``, so
held-out canvases hold held-out digits. One generator serves two tasks:

- segmentation (registered here as ``digit_canvases``): the per-pixel mask,
  0 for background and 1 + digit for ink;
- detection: tight boxes around each digit's ink and the digit classes.

``tfds_segmentation:NAME`` loads tfds sets with pixel masks (oxford_iiit_pet);
tfds's ``voc`` has no segmentation masks and is rejected with that reason.
"""
import functools
import zlib

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (DatasetBundle, adapt_images, batch_splits, image_shape, register_dataset,
                                  require_task)
from keras_zoo.data.digits import digits_by_split, upsample
from keras_zoo.metrics.segmentation import confusion_matrix, mean_iou

#: Upsampled pixels at or above this intensity (in [0, 1]) are ink: they get a mask label and bound the box.
INK_THRESHOLD = 0.3
#: Largest IoU allowed between the boxes of two digits on one canvas.
MAX_IOU = 0.1
#: Placement attempts per digit before the canvas holds one digit fewer.
_MAX_ATTEMPTS = 50
#: Digit side as fractions of the canvas side (16..24 px on a 64 px canvas).
_MIN_SCALE, _MAX_SCALE = 0.25, 0.375


def _iou(box, others):
    """IoU of one (y0, x0, y1, x1) pixel box with each row of ``others``."""
    if not len(others):
        return np.zeros((0,), "float32")
    others = np.asarray(others, "float32")
    height = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    width = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    intersection = height * width
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return intersection / (area + areas - intersection)


def make_canvases(num, split, canvas_size=64, max_digits=3, seed=0):
    """Scatters sklearn digits (upsampled, 8x8 -> 16..24 px on a 64 px canvas) on blank canvases.

    Args:
        num: number of canvases.
        split: ``"train"``, ``"validation"`` or ``"test"``: the digits split
            (``keras_zoo.data.digits.split_indices``) the digits are drawn from.
        canvas_size: side H = W of the square canvases, at least 16.
        max_digits: each canvas holds 1..max_digits digits (uniform), fewer when
            no placement with box IoU <= ``MAX_IOU`` is found in 50 attempts.
        seed: generator seed. The result is a deterministic function of all the
            arguments, and canvas i does not depend on ``num``.

    Returns:
        dict(images=float32 [N, H, W, 1] in [0, 1] (digits composited with max),
             masks=int32 [N, H, W] (0 background, 1 + digit class where that digit
             has ink, i.e. upsampled intensity >= ``INK_THRESHOLD``; a later digit
             wins where ink overlaps),
             boxes=float32 [N, max_digits, 4] normalized (ymin, xmin, ymax, xmax):
             the pixel edges of the digit's ink, so ymax = (last ink row + 1) / H;
             zero rows pad,
             classes=int32 [N, max_digits] (digit 0..9, -1 pads),
             num_boxes=int32 [N]).
    """
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test'. Received: split={split!r}")
    if not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"num must be a non-negative integer. Received: num={num!r}")
    if not isinstance(canvas_size, (int, np.integer)) or canvas_size < 16:
        raise ValueError(f"canvas_size must be an integer >= 16 (digits are drawn at >= 1/4 of it). "
                         f"Received: canvas_size={canvas_size!r}")
    if not isinstance(max_digits, (int, np.integer)) or max_digits < 1:
        raise ValueError(f"max_digits must be a positive integer. Received: max_digits={max_digits!r}")
    source_images, source_labels = digits_by_split()[split]
    # The split enters the seed so that the three splits draw independent layouts.
    rng = np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(canvas_size), int(max_digits)])
    min_side = max(8, round(_MIN_SCALE * canvas_size))
    max_side = max(min_side, round(_MAX_SCALE * canvas_size))

    images = np.zeros((num, canvas_size, canvas_size, 1), "float32")
    masks = np.zeros((num, canvas_size, canvas_size), "int32")
    boxes = np.zeros((num, max_digits, 4), "float32")
    classes = np.full((num, max_digits), -1, "int32")
    num_boxes = np.zeros((num,), "int32")
    for n in range(num):
        placed = []
        for _ in range(int(rng.integers(1, max_digits + 1))):
            index = int(rng.integers(len(source_labels)))
            side = int(rng.integers(min_side, max_side + 1))
            digit = upsample(source_images[index][None], side)[0]
            ink = digit >= INK_THRESHOLD
            rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
            if not len(rows):
                continue
            for _attempt in range(_MAX_ATTEMPTS):
                top, left = (int(v) for v in rng.integers(0, canvas_size - side + 1, size=2))
                box = np.array([top + rows[0], left + cols[0], top + rows[-1] + 1, left + cols[-1] + 1], "float32")
                if np.all(_iou(box, placed) <= MAX_IOU):
                    break
            else:
                continue
            window = (n, slice(top, top + side), slice(left, left + side))
            images[window + (0,)] = np.maximum(images[window + (0,)], digit)
            masks[window][ink] = source_labels[index] + 1
            k = len(placed)
            placed.append(box)
            boxes[n, k] = box / canvas_size
            classes[n, k] = source_labels[index]
        num_boxes[n] = len(placed)
    return dict(images=images, masks=masks, boxes=boxes, classes=classes, num_boxes=num_boxes)


#: Canvases per split of the registered dataset; generated at ``CANVAS_SIZE`` and resized to the model's input.
SPLIT_SIZES = {"train": 4000, "validation": 500, "test": 500}
CANVAS_SIZE = 64
#: Background plus the ten digits.
SEGMENTATION_LABELS = ["background"] + [str(d) for d in range(10)]


def class_pixel_frequencies(masks, num_classes):
    """Share of pixels of each class in integer ``masks``; labels outside [0, num_classes) are not counted."""
    masks = np.asarray(masks).ravel()
    counts = np.bincount(masks[(masks >= 0) & (masks < num_classes)], minlength=num_classes)
    return counts / max(counts.sum(), 1)


def majority_baselines(train_masks, test_masks, num_classes):
    """Pixel accuracy and mean IoU on the test masks of predicting the most frequent training class everywhere."""
    majority = int(np.argmax(class_pixel_frequencies(train_masks, num_classes)))
    matrix = confusion_matrix(test_masks, np.full(np.shape(test_masks), majority), num_classes)
    return {"majority_baseline_pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
            "majority_baseline_mean_iou": mean_iou(matrix)}


def adapt_masks(masks, height, width):
    """Nearest-neighbour resize of integer masks ``(B, h, w)`` to ``(B, height, width)`` (labels stay labels)."""
    if masks.shape[1:3] == (height, width):
        return masks
    return tf.image.resize(masks[..., None], (height, width), method="nearest")[..., 0]


def _segmentation_pairs(name, splits, input_specs, batch_size, seed, scale):
    """Batches ``{split: Dataset of (image, mask)}`` resized to the model's input (images bilinear, masks nearest)."""
    shape = image_shape(name, input_specs, default=(CANVAS_SIZE, CANVAS_SIZE, 3))
    return batch_splits(name, splits, batch_size, seed,
                        map_fn=lambda x, y: (adapt_images(x, shape, scale), adapt_masks(y, *shape[:2])))


@functools.lru_cache(maxsize=1)
def _dataset_canvases(split_sizes):
    return {split: make_canvases(size, split, canvas_size=CANVAS_SIZE, seed=0) for split, size in split_sizes}


@register_dataset("digit_canvases")
def load_digit_canvases(_, *, task, input_specs, batch_size, seed, data_dir):
    """Segmentation of digit canvases (``make_canvases``): image -> mask of 11 classes (0 background).

    Fixed splits of 4000/500/500 canvases built from the digits splits of the same
    name, drawn at 64x64 and resized to the model's input (gray replicated to RGB
    when the model takes 3 channels). ``info`` holds the training pixel frequency of
    each class (for class weights) and the majority-class (all background) baselines.
    """
    require_task("digit_canvases", task, ("segmentation",))
    arrays = _dataset_canvases(tuple(SPLIT_SIZES.items()))
    num_classes = len(SEGMENTATION_LABELS)
    splits = {split: tf.data.Dataset.from_tensor_slices((a["images"], a["masks"])) for split, a in arrays.items()}
    frequencies = class_pixel_frequencies(arrays["train"]["masks"], num_classes)
    return DatasetBundle(
        **_segmentation_pairs("digit_canvases", splits, input_specs, batch_size, seed, 1.0),
        model_overrides={"classes": num_classes},
        labels=list(SEGMENTATION_LABELS),
        info={"sizes": dict(SPLIT_SIZES), "canvas_size": CANVAS_SIZE,
              "class_pixel_frequencies": {label: float(f) for label, f in zip(SEGMENTATION_LABELS, frequencies)},
              **majority_baselines(arrays["train"]["masks"], arrays["test"]["masks"], num_classes)},
    )



# --- tfds segmentation sets --------------------------------------------------------------------------------

#: tfds datasets with per-pixel masks: image key, mask key, class names, and mask value -> class
#: (values not listed, e.g. the pets' "border" trimap value, become IGNORE_LABEL).
TFDS_SEGMENTATION = {
    "oxford_iiit_pet": dict(image="image", mask="segmentation_mask", labels=("background", "pet"),
                            classes={1: 1, 2: 0}),
}
#: Mask label of pixels without a class (VOC's convention); losses and metrics skip it.
IGNORE_LABEL = 255


def _check_tfds_segmentation(name):
    if name.split("/")[0] == "voc":
        raise ValueError(
            "tfds:voc (configs 2007, 2012) holds boxes and image-level labels but no segmentation masks in "
            "tensorflow-datasets 4.9.10, so it cannot feed segmentation; use "
            "tfds_segmentation:oxford_iiit_pet or digit_canvases. Received: tfds_segmentation:" + name)
    if name.split("/")[0] not in TFDS_SEGMENTATION:
        raise ValueError(f"tfds_segmentation supports {sorted(TFDS_SEGMENTATION)} (datasets with pixel masks). "
                         f"Received: tfds_segmentation:{name}")


@register_dataset("tfds_segmentation", check=_check_tfds_segmentation, takes_argument=True)
def load_tfds_segmentation(name, *, task, input_specs, batch_size, seed, data_dir):
    """A tfds dataset with pixel masks (``TFDS_SEGMENTATION``), resized to the model's input.

    Splits: train minus its last 10 % / that 10 % / test. Mask values map to classes
    through the table; unmapped values become ``IGNORE_LABEL`` (255).
    """
    import tensorflow_datasets as tfds

    require_task(f"tfds_segmentation:{name}", task, ("segmentation",))
    spec = TFDS_SEGMENTATION[name.split("/")[0]]
    shape = image_shape(f"tfds_segmentation:{name}", input_specs, default=(128, 128, 3))
    lookup = np.full(256, IGNORE_LABEL, "int32")
    for value, label in spec["classes"].items():
        lookup[value] = label
    lookup = tf.constant(lookup)

    def to_pair(example):
        image = adapt_images(example[spec["image"]][None], shape, 255.0)[0]
        mask = tf.gather(lookup, tf.cast(example[spec["mask"]][..., 0], tf.int32))
        return image, adapt_masks(mask[None], *shape[:2])[0]

    split_names = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
    splits = {split: tfds.load(name, split=arg, data_dir=data_dir, shuffle_files=False).map(to_pair)
              for split, arg in split_names.items()}
    return DatasetBundle(
        **batch_splits(f"tfds_segmentation:{name}", splits, batch_size, seed),
        model_overrides={"classes": len(spec["labels"])},
        labels=list(spec["labels"]),
        info={"tfds_name": name, "splits": split_names, "ignore_label": IGNORE_LABEL,
              "sizes": {split: int(ds.cardinality()) for split, ds in splits.items()}},
    )
