"""scikit-learn's bundled handwritten digits (UCI optdigits test set: 1,797 8x8 images)."""
import functools

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (SPLIT_SEED, DatasetBundle, adapt_images, batch_splits, image_shape,
                                  register_dataset, require_task)


def split_indices(labels):
    """Stratified 70/15/15 split of example indices, fixed (independent of the training seed)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, rest = train_test_split(index, test_size=0.3, stratify=labels, random_state=SPLIT_SEED)
    validation, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=SPLIT_SEED)
    return {"train": train, "validation": validation, "test": test}


@functools.lru_cache(maxsize=1)
def digits_by_split():
    """``{split: (images (N, 8, 8) float32 in [0, 1], labels)}`` over the fixed split of ``split_indices``.

    Datasets built from digits (canvases, moving digits) draw held-out examples only from
    the held-out digits.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    labels = digits.target.astype("int32")
    return {split: (images[i], labels[i]) for split, i in split_indices(labels).items()}


def upsample(images, side):
    """Bilinear resize of square images (N, S, S) to (N, side, side), half-pixel centres (as tf.image.resize)."""
    size = images.shape[-1]
    coords = np.clip((np.arange(side) + 0.5) * size / side - 0.5, 0, size - 1)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = (coords - low).astype("float32")
    rows = images[:, low] * (1 - frac)[:, None] + images[:, high] * frac[:, None]
    return rows[:, :, low] * (1 - frac) + rows[:, :, high] * frac


def _stratified_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32")[..., None]
    labels = digits.target.astype("int32")
    return {split: (images[i], labels[i]) for split, i in split_indices(labels).items()}


@register_dataset("digits")
def load_digits(_, *, task, input_specs, batch_size, seed, data_dir):
    """70/15/15 stratified split; pixels scaled from 0..16 to [0, 1] and resized to the model's input.

    For ``image_generation`` and ``representation`` (autoencoders) the batches are the same (image, label) pairs, and the
    data fixes no builder argument (generative models have no ``classes``). For
    ``gan`` the model's input is its noise vector, so the images stay 8x8x1 and the
    GAN trainer resizes them to the generator's output. For ``nas`` the model is the
    controller, and the search builds child networks for the 8x8x1 images.
    """
    require_task("digits", task, ("image_classification", "image_generation", "gan", "nas", "representation"))
    shape = (8, 8, 1) if task in ("gan", "nas") else image_shape("digits", input_specs)
    arrays = _stratified_split()
    splits = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    batched = batch_splits("digits", splits, batch_size, seed,
                           map_fn=lambda x, y: (adapt_images(x, shape, 16.0), y))
    return DatasetBundle(
        **batched,
        model_overrides={"classes": 10} if task == "image_classification" else {},
        labels=[str(d) for d in range(10)],
        info={"sizes": {k: len(v[1]) for k, v in arrays.items()},
              "majority_baseline_accuracy": float(np.bincount(arrays["test"][1]).max() / len(arrays["test"][1]))},
    )
