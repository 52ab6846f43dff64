"""The dataset registry, the bundle every loader returns, and helpers shared by loaders."""
import dataclasses
import difflib
import os
import zlib
from typing import Callable

import tensorflow as tf

#: Seed of every split that is drawn at random: splits never depend on the training seed.
SPLIT_SEED = 1337
_MAX_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass
class DatasetBundle:
    """What a loader returns.

    Attributes:
        train, validation, test: ``tf.data.Dataset`` of ``(inputs, targets)``,
            batched with ``drop_remainder=True`` (static batch shapes under
            distribution strategies), not repeated; ``train`` is shuffled.
        model_overrides: builder kwargs the data fixes, e.g. ``{"vocab_size": 98}``.
        vocab: index -> token (written as vocab.txt), or None.
        labels: index -> class name (written as labels.txt), or None.
        info: name, split sizes and baselines (e.g. unigram bits/token).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    model_overrides: dict = dataclasses.field(default_factory=dict)
    vocab: list | None = None
    labels: list | None = None
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Entry:
    loader: Callable[..., DatasetBundle]
    check: Callable[[str], None] | None
    takes_argument: bool


_LOADERS: dict[str, _Entry] = {}


def register_dataset(prefix, *, check=None, takes_argument=False):
    """Registers a loader for ``prefix`` (``"digits"``) or ``prefix:ARG`` (``"tfds:mnist"``).

    The decorated loader is called as ``loader(argument, task=, input_specs=,
    batch_size=, seed=, data_dir=)`` where ``argument`` is the text after the first
    colon (None for plain names). ``check(argument)``, when given, runs before any
    work is done and raises a ValueError for bad arguments (e.g. a missing file).
    """

    def decorator(loader):
        if prefix in _LOADERS:
            raise ValueError(f"Dataset {prefix!r} is already registered; pick a different name. "
                             f"Received: a second registration from {loader.__module__}.")
        _LOADERS[prefix] = _Entry(loader, check, takes_argument)
        return loader

    return decorator


def list_datasets():
    """Registered dataset names; ``prefix:`` marks names that take an argument."""
    return sorted(p + (":" if e.takes_argument else "") for p, e in _LOADERS.items())


def _resolve(name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"A dataset name is a non-empty string such as 'digits'. Received: {name!r}")
    prefix, sep, argument = name.partition(":")
    entry = _LOADERS.get(prefix)
    if entry is None:
        close = difflib.get_close_matches(prefix, list(_LOADERS), n=2, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} Known datasets: {', '.join(list_datasets())}. "
                         f"Received: dataset={name!r}")
    if entry.takes_argument and not argument:
        raise ValueError(f"Dataset {prefix!r} needs an argument: use '{prefix}:...'. Received: {name!r}")
    if not entry.takes_argument and sep:
        raise ValueError(f"Dataset {prefix!r} takes no ':' argument; use {prefix!r}. Received: {name!r}")
    return entry, (argument if entry.takes_argument else None)


def check_dataset(name, data_dir=None):
    """Validates a dataset name (and its file or folder) without loading anything."""
    entry, argument = _resolve(name)
    if data_dir is not None and not os.path.isdir(data_dir):
        raise ValueError(f"data_dir {data_dir!r} does not exist; create it or leave data_dir unset. "
                         f"Received: data_dir={data_dir!r}")
    if entry.check is not None:
        entry.check(argument)


def load_dataset(name, *, task, input_specs, batch_size, seed=0, data_dir=None):
    """Loads a registered dataset, shaped for a model with ``input_specs``.

    Args:
        name: ``"digits"``, ``"docstrings_char"``, ``"tfds:cifar10"``, ``"textfile:PATH:word"`` ...
            (see ``list_datasets()``).
        task: the model's task (``ModelInfo.task``); a loader rejects tasks it cannot serve.
        input_specs: ``ModelInfo.inputs_for(config)``; images are resized to the model's
            (H, W, C), text is cut into windows of the model's sequence length.
        batch_size: global batch size; every split drops its last partial batch.
        seed: seed of the training-set shuffle (splits themselves are fixed).
        data_dir: cache/data directory (default ``~/.cache/keras_zoo``, tfds's default for tfds).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    check_dataset(name, data_dir)
    entry, argument = _resolve(name)
    bundle = entry.loader(argument, task=task, input_specs=list(input_specs), batch_size=batch_size,
                          seed=seed, data_dir=data_dir)
    bundle.info.setdefault("name", name)
    return bundle


def cache_dir(data_dir=None):
    """``data_dir`` or ``~/.cache/keras_zoo`` (created)."""
    path = data_dir or os.path.join(os.path.expanduser("~"), ".cache", "keras_zoo")
    os.makedirs(path, exist_ok=True)
    return path


def require_task(name, task, allowed):
    if task not in allowed:
        raise ValueError(f"Dataset {name!r} serves the tasks {', '.join(allowed)}; pick a dataset for "
                         f"task {task!r} (see keras_zoo.data.list_datasets()). Received: task={task!r}")


def single_input(name, input_specs):
    if len(input_specs) != 1:
        raise ValueError(f"Dataset {name!r} feeds models with one input. "
                         f"Received: {len(input_specs)} input specs {input_specs}")
    return input_specs[0]


def image_shape(name, input_specs, default=(32, 32, 3)):
    """The (H, W, C) an image model takes; unknown H/W fall back to ``default``."""
    spec = single_input(name, input_specs)
    if len(spec.shape) != 3:
        raise ValueError(f"Dataset {name!r} feeds image models with (H, W, C) inputs. "
                         f"Received: input shape {spec.shape}")
    height, width, channels = spec.shape
    if channels not in (1, 3):
        raise ValueError(f"Images have 1 or 3 channels. Received: input shape {spec.shape}")
    return (height or default[0], width or default[1], channels)


def sequence_length(name, input_specs, default=64):
    """The token-sequence length a text model takes (``default`` when unspecified)."""
    spec = single_input(name, input_specs)
    if len(spec.shape) != 1 or not spec.dtype.startswith("int"):
        raise ValueError(f"Dataset {name!r} feeds text models with integer (seq_len,) inputs. "
                         f"Received: input shape {spec.shape}, dtype {spec.dtype}")
    return spec.shape[0] or default


def adapt_images(images, shape, scale):
    """Casts a batch of images to float32 in [0, 1], resizes to (H, W) and matches channels."""
    height, width, channels = shape
    images = tf.cast(images, tf.float32) / scale
    if images.shape[1:3] != (height, width):
        images = tf.image.resize(images, (height, width), method="bilinear")
    if images.shape[-1] == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif images.shape[-1] == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    return images


def batch_splits(name, splits, batch_size, seed, map_fn=None):
    """Batches ``{"train": ds, "validation": ds, "test": ds}``; shuffles train with ``seed``.

    ``map_fn`` runs per batch (resizing a batch at once is much cheaper than per example).
    Raises a ValueError naming the split when it holds fewer than ``batch_size`` examples.
    """
    batched = {}
    for split, dataset in splits.items():
        size = int(dataset.cardinality())
        if 0 <= size < batch_size:
            raise ValueError(f"The {split} split of {name!r} holds {size} examples, fewer than one batch; "
                             f"use a smaller batch_size. Received: batch_size={batch_size}")
        if split == "train":
            # A full shuffle for small sets; a bounded buffer keeps large ones in memory.
            dataset = dataset.shuffle(min(size, _MAX_SHUFFLE_BUFFER) if size > 0 else _MAX_SHUFFLE_BUFFER,
                                      seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=True)
        if map_fn is not None:
            dataset = dataset.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
        batched[split] = dataset.prefetch(tf.data.AUTOTUNE)
    return batched


def split_of(key, fractions=(0.8, 0.1, 0.1)):
    """Deterministic train/validation/test assignment of a string key (CRC32, machine-independent)."""
    bucket = zlib.crc32(key.encode("utf-8")) % 1000 / 1000
    if bucket < fractions[0]:
        return "train"
    return "validation" if bucket < fractions[0] + fractions[1] else "test"


SPLITS = ("train", "validation", "test")
