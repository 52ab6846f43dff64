"""``imagefolder:PATH``: one subfolder of images per class (keras.utils.image_dataset_from_directory)."""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.data._base import DatasetBundle, batch_splits, image_shape, register_dataset, require_task, split_of


def _check_folder(path):
    if not os.path.isdir(path):
        raise ValueError(f"Image folder {path!r} does not exist; pass a directory with one subfolder of "
                         f"images per class as 'imagefolder:PATH'. Received: imagefolder:{path}")


@register_dataset("imagefolder", check=_check_folder, takes_argument=True)
def load_imagefolder(path, *, task, input_specs, batch_size, seed, data_dir):
    """Images resized to the model's (H, W), scaled to [0, 1]; classes are the sorted subfolder names.

    Each file goes to train/validation/test (80/10/10) by a hash of its path relative
    to ``path``, so the split does not depend on the order files are listed in.
    """
    require_task("imagefolder", task, ("image_classification",))
    shape = image_shape("imagefolder", input_specs)
    images = keras.utils.image_dataset_from_directory(
        path, labels="inferred", label_mode="int", color_mode="grayscale" if shape[2] == 1 else "rgb",
        batch_size=None, image_size=shape[:2], shuffle=False)
    labels = list(images.class_names)
    assignment = np.array([split_of(os.path.relpath(p, path)) for p in images.file_paths])
    if len(labels) < 2:
        raise ValueError(f"Image folder {path!r} needs at least 2 class subfolders. Received: {labels}")
    splits = {}
    for split in ("train", "validation", "test"):
        mask = tf.data.Dataset.from_tensor_slices(assignment == split)
        subset = tf.data.Dataset.zip((images, mask)).filter(lambda example, keep: keep).map(
            lambda example, keep: (example[0], tf.cast(example[1], tf.int32)))
        splits[split] = subset.apply(tf.data.experimental.assert_cardinality(int((assignment == split).sum())))
    batched = batch_splits(f"imagefolder:{path}", splits, batch_size, seed,
                           map_fn=lambda x, y: (x / 255.0, y))
    return DatasetBundle(**batched, model_overrides={"classes": len(labels)}, labels=labels,
                         info={"path": os.path.abspath(path),
                               "sizes": {s: int((assignment == s).sum()) for s in ("train", "validation", "test")}})
