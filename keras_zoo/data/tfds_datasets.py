"""``tfds:NAME``: TensorFlow Datasets (e.g. tfds:mnist, tfds:cifar10, tfds:imdb_reviews).

Supervised image datasets feed image classifiers; supervised text datasets feed
sequence classifiers (word ids from a TextVectorization fitted on the training split).
The validation split is the dataset's own when it has one, else the last 10 % of train.
"""
import tensorflow as tf

from keras_zoo.data._base import (DatasetBundle, adapt_images, batch_splits, image_shape, register_dataset,
                                  require_task, sequence_length)
from keras_zoo.data.text import adapted_vectorizer, vocabulary

#: Training texts used to fit the vocabulary (enough for a 5,000-word vocabulary).
_VOCAB_TEXTS = 20_000


def _split_names(info):
    # Splits are unknown before a dataset is prepared (and under tfds.testing.mock_data);
    # nearly every supervised tfds set has train and test then.
    names = set(info.splits) or {"train", "test"}
    if "train" not in names or not ({"test", "validation"} & names):
        raise ValueError(f"tfds:{info.name} needs a 'train' split and a 'test' or 'validation' split. "
                         f"Received: splits {sorted(names)}")
    if "validation" in names and "test" in names:
        return {"train": "train", "validation": "validation", "test": "test"}
    held_out = "test" if "test" in names else "validation"
    return {"train": "train[:90%]", "validation": "train[90%:]", "test": held_out}


@register_dataset("tfds", takes_argument=True)
def load_tfds(name, *, task, input_specs, batch_size, seed, data_dir):
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    info = builder.info
    if not info.supervised_keys:
        raise ValueError(f"tfds:{name} has no (input, label) supervised keys; only supervised datasets "
                         f"load here. Received: tfds:{name}")
    input_key, label_key = info.supervised_keys[:2]
    input_feature, label_feature = info.features[input_key], info.features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(f"tfds:{name} labels are not class labels. Received: {label_feature}")
    labels = list(label_feature.names)
    split_names = _split_names(info)
    splits = {split: tfds.load(name, split=spec, as_supervised=True, data_dir=data_dir,
                               shuffle_files=False, read_config=tfds.ReadConfig(shuffle_seed=seed))
              for split, spec in split_names.items()}
    splits = {split: ds.map(lambda x, y: (x, tf.cast(y, tf.int32))) for split, ds in splits.items()}
    bundle_info = {"tfds_name": name, "splits": split_names,
                   "sizes": {s: int(ds.cardinality()) for s, ds in splits.items()}}

    if isinstance(input_feature, tfds.features.Image):
        require_task(f"tfds:{name}", task, ("image_classification",))
        shape = image_shape(f"tfds:{name}", input_specs)
        # Resize per example: tfds images may differ in size; scale is uint8.
        splits = {s: ds.map(lambda x, y: (adapt_images(x[None], shape, 255.0)[0], y)) for s, ds in splits.items()}
        return DatasetBundle(**batch_splits(f"tfds:{name}", splits, batch_size, seed),
                             model_overrides={"classes": len(labels)}, labels=labels, info=bundle_info)

    if isinstance(input_feature, tfds.features.Text):
        require_task(f"tfds:{name}", task, ("sequence_classification",))
        seq_len = sequence_length(f"tfds:{name}", input_specs)
        texts = [t.decode("utf-8") for t, _ in splits["train"].take(_VOCAB_TEXTS).as_numpy_iterator()]
        vectorizer = adapted_vectorizer("word", texts, output_sequence_length=seq_len)
        splits = {s: ds.batch(1024).map(lambda x, y: (tf.cast(vectorizer(x), tf.int32), y)).unbatch()
                  .apply(tf.data.experimental.assert_cardinality(bundle_info["sizes"][s]))
                  for s, ds in splits.items()}
        vocab = vocabulary(vectorizer)
        bundle_info["seq_len"] = seq_len
        return DatasetBundle(**batch_splits(f"tfds:{name}", splits, batch_size, seed),
                             model_overrides={"vocab_size": len(vocab), "classes": len(labels)},
                             vocab=vocab, labels=labels, info=bundle_info)

    raise ValueError(f"tfds:{name} inputs are {type(input_feature).__name__}; supported are images "
                     f"(image_classification) and text (sequence_classification). Received: tfds:{name}")
