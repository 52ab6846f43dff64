"""Paired sound/image data for SoundNet's teacher-student transfer (arXiv:1610.09001, Sec. 3).

SoundNet learns from unlabeled video: a visual teacher labels each frame, and the sound
network is trained to match those distributions. ``digit_sounds`` is a small offline
stand-in: every scikit-learn digit image is paired with a waveform synthesized from it,
so an image model can act as the teacher (``--soundnet_teacher_dir``, see
training/tasks_soundnet.py). Batches are ``(waveform (L, 1), (objects, scenes, image))``:

- ``objects``: the one-hot digit label (10). Without a teacher model these one-hot
  labels ARE the teacher distributions of the object head; with one, the task replaces
  them by the teacher's softmax on ``image``.
- ``scenes``: the one-hot acoustic background (``SCENES``), the analogue of the paper's
  Places scene head; no image model sees it, so its teacher is always the label.
- ``image``: the 8x8 digit in [0, 1].

``soundnet_wavs:DIR`` reads the user's own WAV files (22,050 Hz, one class per parent
folder) with keras_zoo.data.audio's reader; its targets are ``(objects, scenes)`` with
the folder class as one-hot objects and all-zero scenes (no scene label: the scene KL
is then 0 and that head does not train).
"""
import os

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (SPLIT_SEED, SPLITS, DatasetBundle, batch_splits, register_dataset, require_task,
                                  single_input, split_of)
from keras_zoo.data.audio import _wav_files, read_wav
from keras_zoo.data.digits import digits_by_split

SAMPLE_RATE = 22050
SCENES = ("quiet", "noisy", "hum")
#: Fundamental of digit d: a quarter-octave ladder from 220 Hz (A3) up to ~1046 Hz.
BASE_FREQUENCY = 220.0
HUM_FREQUENCY = 60.0


def synthesize(image, digit, scene, example_id, length, sample_rate=SAMPLE_RATE):
    """One deterministic waveform ``(length,)`` in [-1, 1] for a digit image (TF ops, usable in ``map``).

    A sequence of 8 tone segments, one per image row: segment r sounds the digit's
    frequency (times 1.5, a fifth up, on odd rows) at the row's mean ink as amplitude.
    The scene adds its background: faint noise (quiet), loud white noise (noisy) or a
    60 Hz hum. Noise is seeded by ``example_id``, so a clip never changes.
    """
    t = tf.range(length, dtype=tf.float32) / sample_rate
    segment = tf.minimum(tf.range(length) * 8 // length, 7)
    row_ink = tf.gather(tf.reduce_mean(tf.cast(image, tf.float32), axis=1), segment)
    ratio = tf.where(segment % 2 == 1, 1.5, 1.0)
    frequency = BASE_FREQUENCY * tf.pow(2.0, tf.cast(digit, tf.float32) / 4.0) * ratio
    tone = 0.6 * row_ink * tf.sin(2.0 * np.pi * frequency * t)
    noise = tf.random.stateless_normal([length], seed=tf.stack([tf.constant(SPLIT_SEED, tf.int64),
                                                                tf.cast(example_id, tf.int64)]))
    scene = tf.cast(scene, tf.int32)
    background = tf.switch_case(scene, [
        lambda: 0.01 * noise,
        lambda: 0.2 * noise,
        lambda: 0.3 * tf.sin(2.0 * np.pi * HUM_FREQUENCY * t) + 0.01 * noise,
    ])
    return tf.clip_by_value(tone + background, -1.0, 1.0)


def _waveform_length(name, input_specs):
    spec = single_input(name, input_specs)
    if len(spec.shape) != 2 or spec.shape[1] != 1 or not spec.dtype.startswith("float"):
        raise ValueError(f"Dataset {name!r} feeds raw-waveform models with float (length, 1) inputs (SoundNet). "
                         f"Received: input shape {spec.shape}, dtype {spec.dtype}")
    if not spec.shape[0]:
        raise ValueError(f"Dataset {name!r} cuts fixed-length clips: build the model with an input_length. "
                         f"Received: input shape {spec.shape}")
    return spec.shape[0]


@register_dataset("digit_sounds")
def load_digit_sounds(_, *, task, input_specs, batch_size, seed, data_dir):
    """The digits' fixed 70/15/15 split, each image paired with a synthesized 22,050 Hz clip of the model's length.

    Scenes are drawn uniformly per example with a fixed seed. Clips are synthesized
    on the fly (a full 20 s SoundNet clip set would not fit in memory).
    """
    require_task("digit_sounds", task, ("audio_classification",))
    length = _waveform_length("digit_sounds", input_specs)
    arrays, splits = digits_by_split(), {}
    offset = 0
    for index, split in enumerate(SPLITS):
        images, labels = arrays[split]
        scenes = np.random.default_rng(SPLIT_SEED + index).integers(0, len(SCENES), len(labels)).astype("int32")
        ids = np.arange(offset, offset + len(labels), dtype="int64")
        offset += len(labels)

        def to_example(image, label, scene, example_id):
            wave = synthesize(image, label, scene, example_id, length)[:, None]
            return wave, (tf.one_hot(label, 10), tf.one_hot(scene, len(SCENES)), image)

        splits[split] = tf.data.Dataset.from_tensor_slices((images, labels, scenes, ids)).map(to_example)
    return DatasetBundle(
        **batch_splits("digit_sounds", splits, batch_size, seed),
        model_overrides={"object_classes": 10, "scene_classes": len(SCENES)},
        labels=[str(d) for d in range(10)],
        info={"sizes": {k: len(v[1]) for k, v in arrays.items()}, "sample_rate": SAMPLE_RATE,
              "scenes": list(SCENES), "clip_seconds": length / SAMPLE_RATE,
              "teacher": "one-hot digit labels unless --soundnet_teacher_dir is given"},
    )


def _check_wavs(folder):
    if not os.path.isdir(folder) or not _wav_files(folder):
        raise ValueError(f"soundnet_wavs: {folder!r} must be a directory holding .wav files (searched recursively), "
                         f"one subfolder per class; pass 'soundnet_wavs:/path/to/wavs'. Received: {folder!r}")


@register_dataset("soundnet_wavs", check=_check_wavs, takes_argument=True)
def load_soundnet_wavs(folder, *, task, input_specs, batch_size, seed, data_dir):
    """``soundnet_wavs:DIR``: 22,050 Hz .wav files cut into non-overlapping clips; the parent folder is the class.

    Files go to train/validation/test by a hash of their path relative to DIR (80/10/10).
    """
    require_task("soundnet_wavs", task, ("audio_classification",))
    length = _waveform_length("soundnet_wavs", input_specs)
    files = _wav_files(folder)
    classes = sorted({os.path.basename(os.path.dirname(f)) for f in files})
    clips = {s: ([], []) for s in SPLITS}
    for path in files:
        audio, rate = read_wav(path)
        if rate != SAMPLE_RATE:
            raise ValueError(f"soundnet_wavs: SoundNet hears {SAMPLE_RATE} Hz audio; resample {path!r} to "
                             f"{SAMPLE_RATE} Hz. Received: {rate} Hz")
        count = len(audio) // length
        split = clips[split_of(os.path.relpath(path, folder))]
        split[0].extend(audio[: count * length].reshape(count, length, 1))
        split[1].extend([classes.index(os.path.basename(os.path.dirname(path)))] * count)
    splits = {}
    for split, (waves, labels) in clips.items():
        if not waves:
            raise ValueError(f"soundnet_wavs: no {length}-sample clip falls in the {split} split of {folder!r}; "
                             f"add recordings or build the model with a shorter input_length. "
                             f"Received: {len(files)} files")
        objects = np.eye(len(classes), dtype="float32")[labels]
        splits[split] = tf.data.Dataset.from_tensor_slices(
            (np.stack(waves).astype("float32"), (objects, np.zeros((len(labels), 1), "float32"))))
    return DatasetBundle(
        **batch_splits("soundnet_wavs", splits, batch_size, seed),
        model_overrides={"object_classes": len(classes), "scene_classes": 1},
        labels=classes,
        info={"sizes": {k: len(v[1]) for k, v in clips.items()}, "sample_rate": SAMPLE_RATE},
    )
