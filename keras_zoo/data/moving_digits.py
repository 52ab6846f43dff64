"""Moving digits: scikit-learn's handwritten digits bouncing on a blank canvas.

The Moving-MNIST construction of Srivastava et al. (2015, arXiv:1502.04681) with
the embedded 8x8 digits: each clip holds ``DIGITS_PER_CLIP`` digits, each upsampled
(bilinear) to 7/16 of the canvas side (28 px on 64x64, as MNIST digits on Moving
MNIST), starting at a random position with a random direction and a speed of 4-8 %
of the canvas side per frame, and bouncing off the canvas edges. Overlapping
digits combine by pixel-wise maximum. Pixels are in [0, 1].

Clips are deterministic: clip ``i`` of a split depends only on the split, ``i`` and
the clip shape. Validation and test clips move held-out digits (the validation and
test parts of ``keras_zoo.data.digits.split_indices``).

Registered as ``moving_digits`` for two tasks; the clip shape (T, H, W, C) is taken
from the model input spec of rank 4:

- ``video_prediction``: batches ``(clips, clips)``; output ``t`` of a model predicts
  frame ``t`` from frames ``< t`` (PredNet's convention, arXiv:1605.08104).
- ``gan`` and ``video_generation``: batches ``(clips, class of the first digit)``,
  the image-GAN ``(images, labels)`` format with clips in place of images.
"""
import functools

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import SPLIT_SEED, SPLITS, DatasetBundle, batch_splits, register_dataset, require_task
from keras_zoo.data.digits import digits_by_split, upsample

DIGITS_PER_CLIP = 2
#: Digit side as a fraction of the canvas side (MNIST's 28 px on Moving MNIST's 64 px).
DIGIT_SCALE = 7 / 16
#: Speed range in canvas sides per frame.
SPEED_RANGE = (0.04, 0.08)
#: Clips per split at most; fewer for large clips so that a split stays under ``_SPLIT_BYTES`` (uint8).
SPLIT_SIZES = {"train": 2048, "validation": 256, "test": 256}
_SPLIT_BYTES = 160 * 2**20
TASKS = ("video_prediction", "gan", "video_generation")


def _bounce(position, velocity, limit):
    """One frame of motion along one axis; a wall reflects the position and flips the velocity."""
    position += velocity
    if position < 0:
        return -position, -velocity
    if position > limit:
        return 2 * limit - position, -velocity
    return position, velocity


def trajectory(frames, limit_y, limit_x, speed, rng):
    """Top-left corners (frames, 2) of a digit moving ``speed`` px per frame, bouncing inside [0, limit]."""
    y, x = rng.uniform(0, 1, size=2) * (limit_y, limit_x)
    angle = rng.uniform(0, 2 * np.pi)
    vy, vx = speed * np.sin(angle), speed * np.cos(angle)
    corners = []
    for _ in range(frames):
        corners.append((y, x))
        y, vy = _bounce(y, vy, limit_y)
        x, vx = _bounce(x, vx, limit_x)
    return np.rint(corners).astype(int)


@functools.lru_cache(maxsize=8)
def _upsampled(split, side):
    images, labels = digits_by_split()[split]
    return upsample(images, side), labels


def moving_digit_clips(split, count, frames, height, width, digits_per_clip=DIGITS_PER_CLIP):
    """``count`` clips (count, frames, height, width) uint8 in 0..255 and the first digit's class (count,).

    Deterministic in (split, clip index, shape): clip ``i`` is drawn with its own seeded generator.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    side = max(2, int(round(DIGIT_SCALE * min(height, width))))
    digits, labels = _upsampled(split, side)
    clips = np.zeros((count, frames, height, width), "float32")
    first_classes = np.zeros((count,), "int32")
    for i in range(count):
        rng = np.random.default_rng([SPLIT_SEED, SPLITS.index(split), i, frames, height, width])
        picks = rng.integers(0, len(digits), size=digits_per_clip)
        first_classes[i] = labels[picks[0]]
        for pick in picks:
            digit = digits[pick]
            speed = rng.uniform(*SPEED_RANGE) * min(height, width)
            for t, (y, x) in enumerate(trajectory(frames, height - side, width - side, speed, rng)):
                window = clips[i, t, y:y + side, x:x + side]
                np.maximum(window, digit, out=window)
    return np.rint(np.clip(clips, 0, 1) * 255).astype("uint8"), first_classes


def copy_last_mse(clips):
    """MSE of predicting frame t by frame t - 1 (t >= 1): the baseline a next-frame predictor must beat."""
    clips = np.asarray(clips, "float64")
    return float(np.mean(np.square(clips[:, 1:] - clips[:, :-1])))


def clip_shape(name, input_specs):
    """(T, H, W, C) of the model input of rank 4 (a video model's frames or a video GAN's real clips)."""
    videos = [s for s in input_specs if len(s.shape) == 4 and str(s.dtype).startswith("float")]
    if len(videos) != 1 or any(not d for d in videos[0].shape) or videos[0].shape[-1] not in (1, 3):
        raise ValueError(f"Dataset {name!r} feeds models with one float32 (frames, height, width, 1 or 3) "
                         f"input of static shape. Received: input specs {input_specs}")
    return tuple(int(d) for d in videos[0].shape)


def _split_sizes(frames, height, width):
    clip_bytes = frames * height * width
    return {split: max(1, min(size, _SPLIT_BYTES // clip_bytes)) for split, size in SPLIT_SIZES.items()}


@functools.lru_cache(maxsize=4)
def _arrays(frames, height, width):
    return {split: moving_digit_clips(split, size, frames, height, width)
            for split, size in _split_sizes(frames, height, width).items()}


@register_dataset("moving_digits")
def load_moving_digits(_, *, task, input_specs, batch_size, seed, data_dir):
    """Moving-digit clips shaped for the model; ``info`` holds the test copy-last-frame MSE baseline."""
    require_task("moving_digits", task, TASKS)
    frames, height, width, channels = clip_shape("moving_digits", input_specs)
    if frames < 2:
        raise ValueError(f"Moving digits need clips of at least 2 frames. Received: input shape "
                         f"{(frames, height, width, channels)}")
    arrays = _arrays(frames, height, width)

    def to_float(clips, classes):
        clips = tf.cast(clips, tf.float32)[..., None] / 255.0
        if channels == 3:
            clips = tf.tile(clips, [1, 1, 1, 1, 3])
        return (clips, clips) if task == "video_prediction" else (clips, classes)

    splits = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    batched = batch_splits("moving_digits", splits, batch_size, seed, map_fn=to_float)
    test_clips = arrays["test"][0].astype("float32") / 255.0
    return DatasetBundle(
        **batched,
        labels=[str(d) for d in range(10)] if task != "video_prediction" else None,
        info={"sizes": {k: len(v[1]) for k, v in arrays.items()},
              "clip_shape": [frames, height, width, channels],
              "copy_last_baseline_mse": copy_last_mse(test_clips)},
    )
