"""Paired images for image-to-image translation (pix2pix, arXiv:1611.07004).

- ``imagepairs:PATH`` (``imagepairs:PATH:BtoA``): a folder of side-by-side images in
  the pix2pix datasets' convention, each file the input A on the left half and the
  target B on the right (``BtoA`` swaps them). Subfolders ``train/``, ``val/``
  (or ``validation/``) and ``test/`` are used as the splits when present; otherwise
  each file goes to train/validation/test (80/10/10) by a hash of its path.
- ``digits_edges``: scikit-learn's handwritten digits, the input being the Sobel
  edge map of the digit and the target the digit itself, with the fixed stratified
  70/15/15 split of ``digits``. For the ``gan`` task it serves the digits alone
  (``(image, label)`` at their 8x8 size; the GAN trainer resizes them to the generator).

Batches are ``(input image, target image)``, both in [0, 1] and resized to the
model's (H, W, C); the data fixes ``output_channels`` to the input's channels.
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (SPLITS, DatasetBundle, adapt_images, batch_splits, image_shape,
                                  register_dataset, require_task, split_of)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DIRECTIONS = ("AtoB", "BtoA")
_SPLIT_FOLDERS = {"train": ("train",), "validation": ("val", "validation"), "test": ("test",)}


def sobel_edge_map(images):
    """Sobel gradient magnitude of ``(B, H, W, C)`` images, scaled per image to a maximum of 1."""
    gradients = tf.image.sobel_edges(tf.cast(images, tf.float32))
    magnitude = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=-1))
    peak = tf.reduce_max(magnitude, axis=[1, 2, 3], keepdims=True)
    return tf.math.divide_no_nan(magnitude, peak)


def _parse_argument(argument):
    """``PATH`` or ``PATH:AtoB`` / ``PATH:BtoA`` -> (path, direction)."""
    for direction in DIRECTIONS:
        if argument.endswith(f":{direction}"):
            return argument[:-len(direction) - 1], direction
    return argument, "AtoB"


def _image_files(folder):
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _split_files(path):
    """``{split: [files]}`` from train/val/test subfolders, or a hash split of every file."""
    present = {split: next((os.path.join(path, f) for f in folders if os.path.isdir(os.path.join(path, f))), None)
               for split, folders in _SPLIT_FOLDERS.items()}
    if present["train"] is not None:
        missing = [split for split, folder in present.items() if folder is None]
        if missing:
            raise ValueError(f"Image-pair folder {path!r} has a train/ subfolder but no {missing} subfolder(s) "
                             f"(expected train/, val/ or validation/, test/); add them, or put all images in one "
                             f"folder to split them by hash. Received: imagepairs:{path}")
        return {split: _image_files(folder) for split, folder in present.items()}
    files = _image_files(path)
    assignment = {split: [] for split in SPLITS}
    for file in files:
        assignment[split_of(os.path.relpath(file, path))].append(file)
    return assignment


def _check_pairs(argument):
    path, direction = _parse_argument(argument or "")
    if not os.path.isdir(path):
        raise ValueError(f"Image-pair folder {path!r} does not exist; pass a folder of side-by-side A|B images "
                         f"as 'imagepairs:PATH' or 'imagepairs:PATH:BtoA'. Received: imagepairs:{argument}")
    if not _image_files(path):
        raise ValueError(f"Image-pair folder {path!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files. "
                         f"Received: imagepairs:{argument}")


def _decode_pair(file, shape, b_to_a):
    image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
    half = tf.shape(image)[1] // 2
    left, right = image[:, :half], image[:, half:2 * half]
    source, target = (right, left) if b_to_a else (left, right)
    return tuple(adapt_images(part[None], shape, 255.0)[0] for part in (source, target))


@register_dataset("imagepairs", check=_check_pairs, takes_argument=True)
def load_image_pairs(argument, *, task, input_specs, batch_size, seed, data_dir):
    """Side-by-side A|B images, split in halves, resized to the model's (H, W, C), scaled to [0, 1]."""
    path, direction = _parse_argument(argument)
    require_task("imagepairs", task, ("image_to_image",))
    shape = image_shape("imagepairs", input_specs, default=(256, 256, 3))
    files = _split_files(path)
    b_to_a = direction == "BtoA"
    splits = {
        split: tf.data.Dataset.from_tensor_slices(tf.constant(names, tf.string) if names else tf.zeros([0], tf.string))
        .map(lambda f: _decode_pair(f, shape, b_to_a), num_parallel_calls=tf.data.AUTOTUNE)
        .apply(tf.data.experimental.assert_cardinality(len(names)))
        for split, names in files.items()
    }
    batched = batch_splits(f"imagepairs:{argument}", splits, batch_size, seed)
    return DatasetBundle(**batched, model_overrides={"output_channels": shape[2]},
                         info={"path": os.path.abspath(path), "direction": direction,
                               "sizes": {split: len(names) for split, names in files.items()}})


@register_dataset("digits_edges")
def load_digits_edges(_, *, task, input_specs, batch_size, seed, data_dir):
    """Sobel edge map -> digit pairs at the model's size (``image_to_image``), or the digits (``gan``)."""
    from sklearn.datasets import load_digits

    from keras_zoo.data.digits import split_indices

    require_task("digits_edges", task, ("image_to_image", "gan"))
    digits = load_digits()
    images, labels = digits.images.astype("float32")[..., None], digits.target.astype("int32")
    arrays = {split: (images[i], labels[i]) for split, i in split_indices(labels).items()}
    splits = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    sizes = {k: len(v[1]) for k, v in arrays.items()}
    if task == "gan":
        batched = batch_splits("digits_edges", splits, batch_size, seed, map_fn=lambda x, y: (x / 16.0, y))
        return DatasetBundle(**batched, labels=[str(d) for d in range(10)], info={"sizes": sizes})
    shape = image_shape("digits_edges", input_specs)

    def to_pair(images, _):
        digits = adapt_images(images, shape, 16.0)
        return sobel_edge_map(digits), digits

    batched = batch_splits("digits_edges", splits, batch_size, seed, map_fn=to_pair)
    baseline = _identity_l1(arrays["test"][0], shape)
    return DatasetBundle(**batched, model_overrides={"output_channels": shape[2]},
                         info={"sizes": sizes, "identity_baseline_l1": baseline})


def _identity_l1(images, shape):
    """Mean |edges - digit| on the test split: the L1 of a generator that copies its input."""
    digits = adapt_images(tf.constant(images), shape, 16.0)
    return float(np.mean(np.abs(sobel_edge_map(digits) - digits)))
