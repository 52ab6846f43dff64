"""Audio for WaveNet-style models: mu-law companding, synthetic tones/chirps, and a WAV folder.

Both datasets serve ``audio_generation``: windows of ``T + 1`` mu-law ids become
``(inputs = ids[:-1], targets = ids[1:])``, next-sample prediction as in WaveNet
(arXiv:1609.03499, Sec. 2.2). A model with a second, scalar int input (global
conditioning) is fed the window's class id (``tones``: the waveform kind).
"""
import os
import wave

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import (SPLIT_SEED, DatasetBundle, batch_splits, register_dataset, require_task,
                                  split_of)

SAMPLE_RATE = 8000
TONE_KINDS = ("sine", "square", "sawtooth", "chirp")


def mu_law_encode(audio, quantization=256):
    """Waveform in [-1, 1] to int32 ids in ``[0, quantization)`` (arXiv:1609.03499, Eq. 1).

    ``f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)`` with ``mu = quantization - 1``,
    then ``f`` in [-1, 1] is rounded to the nearest of ``quantization`` even levels.
    """
    mu = float(quantization - 1)
    x = tf.clip_by_value(tf.cast(audio, tf.float32), -1.0, 1.0)
    companded = tf.sign(x) * tf.math.log1p(mu * tf.abs(x)) / tf.math.log1p(mu)
    return tf.cast(tf.floor((companded + 1.0) / 2.0 * mu + 0.5), tf.int32)


def mu_law_decode(ids, quantization=256):
    """Inverse of ``mu_law_encode`` (up to the rounding): ids to a float32 waveform in [-1, 1]."""
    mu = float(quantization - 1)
    companded = 2.0 * tf.cast(ids, tf.float32) / mu - 1.0
    return tf.sign(companded) * (tf.pow(1.0 + mu, tf.abs(companded)) - 1.0) / mu


def synthetic_tones(num_clips, length, seed, sample_rate=SAMPLE_RATE):
    """Clips of one waveform each: sine, square, sawtooth or a linear chirp.

    Frequencies are drawn log-uniformly in [100, 1000] Hz (a chirp sweeps between
    two such frequencies), amplitudes in [0.3, 0.9], phases uniformly.

    Returns:
        (float32 waveforms ``(num_clips, length)`` in [-1, 1], int32 kind ids ``(num_clips,)``).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    kinds = rng.integers(0, len(TONE_KINDS), num_clips)
    f0, f1 = np.exp(rng.uniform(np.log(100), np.log(1000), (2, num_clips, 1)))
    amplitude = rng.uniform(0.3, 0.9, (num_clips, 1))
    phase = rng.uniform(0, 2 * np.pi, (num_clips, 1))
    duration = max(length / sample_rate, 1e-9)
    # Instantaneous phase; a linear chirp's frequency moves from f0 to f1 over the clip.
    cycles = np.where(kinds[:, None] == 3, f0 * t + (f1 - f0) * t ** 2 / (2 * duration), f0 * t)
    angle = 2 * np.pi * cycles + phase
    fraction = (angle / (2 * np.pi)) % 1.0
    waves = np.select(
        [kinds[:, None] == 1, kinds[:, None] == 2],
        [np.sign(np.sin(angle)), 2 * fraction - 1],
        np.sin(angle),
    )
    return (amplitude * waves).astype("float32"), kinds.astype("int32")


def _audio_specs(name, input_specs):
    if not input_specs or len(input_specs[0].shape) != 1 or not input_specs[0].dtype.startswith("int"):
        raise ValueError(f"Dataset {name!r} feeds audio models whose first input is int (T,) mu-law ids. "
                         f"Received: input specs {input_specs}")
    extra = input_specs[1:]
    if len(extra) > 1 or (extra and (extra[0].shape != () or not extra[0].dtype.startswith("int"))):
        raise ValueError(f"Dataset {name!r} can feed only a global class id (a scalar int input) besides the "
                         f"samples; local conditioning needs your own features. Received: input specs {input_specs}")
    length = input_specs[0].shape[0]
    if not length:
        raise ValueError(f"Dataset {name!r} cuts fixed windows: build the model with a sequence_length. "
                         f"Received: input shape {input_specs[0].shape}")
    quantization = int(input_specs[0].maxval)
    return length, quantization, bool(extra), (int(extra[0].maxval) if extra else None)


def _bundle(name, windows, batch_size, seed, quantization, conditional, num_classes, info):
    """windows: ``{split: (ids (N, T + 1), class ids (N,))}`` -> a DatasetBundle."""

    def to_example(ids, label):
        inputs = (ids[:-1], label) if conditional else ids[:-1]
        return inputs, ids[1:]

    splits = {k: tf.data.Dataset.from_tensor_slices(v).map(to_example) for k, v in windows.items()}
    sizes = {k: len(v[0]) for k, v in windows.items()}
    train_ids = windows["train"][0]
    counts = np.bincount(train_ids[:, 1:].ravel(), minlength=quantization) + 1.0
    unigram = counts / counts.sum()
    test_targets = windows["test"][0][:, 1:].ravel()
    return DatasetBundle(
        **batch_splits(name, splits, batch_size, seed),
        info={**info, "sizes": sizes, "num_classes": num_classes,
              "unigram_baseline_bits_per_sample": float(-np.log2(unigram[test_targets]).mean())},
    )


@register_dataset("tones")
def load_tones(_, *, task, input_specs, batch_size, seed, data_dir):
    """Synthetic sines, squares, sawtooths and chirps at 8 kHz (1024/128/128 clips), mu-law coded."""
    require_task("tones", task, ("audio_generation",))
    length, quantization, conditional, classes = _audio_specs("tones", input_specs)
    if conditional and classes < len(TONE_KINDS):
        raise ValueError(f"'tones' has {len(TONE_KINDS)} classes {TONE_KINDS}; build the model with "
                         f"global_classes={len(TONE_KINDS)}. Received: global_classes={classes}")
    windows = {}
    for offset, (split, count) in enumerate((("train", 1024), ("validation", 128), ("test", 128))):
        audio, kinds = synthetic_tones(count, length + 1, SPLIT_SEED + offset)
        windows[split] = (np.asarray(mu_law_encode(audio, quantization)), kinds)
    return _bundle("tones", windows, batch_size, seed, quantization, conditional, len(TONE_KINDS),
                   {"sample_rate": SAMPLE_RATE, "labels": list(TONE_KINDS)})


def read_wav(path):
    """A WAV file (8/16/32-bit PCM) as mono float32 in [-1, 1] and its sample rate."""
    with wave.open(path, "rb") as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width == 1:
        audio = (np.frombuffer(frames, np.uint8).astype("float32") - 128.0) / 128.0
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        audio = np.frombuffer(frames, dtype).astype("float32") / float(np.iinfo(dtype).max + 1)
    else:
        raise ValueError(f"{path}: only 8-, 16- and 32-bit PCM WAV files are supported. "
                         f"Received: {8 * width}-bit samples")
    return audio.reshape(-1, channels).mean(axis=1), rate


def write_wav(path, audio, sample_rate=SAMPLE_RATE):
    """Writes a mono float waveform in [-1, 1] as 16-bit PCM."""
    pcm = (np.clip(np.asarray(audio, "float32"), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())
    return path


def _wav_files(folder):
    return sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                  if f.lower().endswith(".wav"))


def _check_wav_folder(folder):
    if not os.path.isdir(folder):
        raise ValueError(f"wavfolder: {folder!r} is not a directory; pass 'wavfolder:/path/to/wavs'. "
                         f"Received: {folder!r}")
    if not _wav_files(folder):
        raise ValueError(f"wavfolder: {folder!r} holds no .wav files (searched recursively). Received: {folder!r}")


@register_dataset("wavfolder", check=_check_wav_folder, takes_argument=True)
def load_wav_folder(folder, *, task, input_specs, batch_size, seed, data_dir):
    """``wavfolder:DIR``: every .wav under DIR, cut into non-overlapping windows.

    Files go to train/validation/test by a hash of their path relative to DIR
    (80/10/10), so windows of one recording never straddle splits. The class id of a
    window (for global conditioning) is the index of its file's parent folder name.
    All files must share one sample rate; resample them beforehand.
    """
    require_task("wavfolder", task, ("audio_generation",))
    length, quantization, conditional, classes = _audio_specs("wavfolder", input_specs)
    files = _wav_files(folder)
    speakers = sorted({os.path.basename(os.path.dirname(f)) for f in files})
    if conditional and classes < len(speakers):
        raise ValueError(f"wavfolder: {len(speakers)} class folders {speakers[:5]}...; build the model with "
                         f"global_classes={len(speakers)}. Received: global_classes={classes}")
    windows = {s: ([], []) for s in ("train", "validation", "test")}
    rates = set()
    for path in files:
        audio, rate = read_wav(path)
        rates.add(rate)
        ids = np.asarray(mu_law_encode(audio, quantization))
        count = len(ids) // (length + 1)
        split = windows[split_of(os.path.relpath(path, folder))]
        split[0].extend(ids[: count * (length + 1)].reshape(count, length + 1))
        split[1].extend([speakers.index(os.path.basename(os.path.dirname(path)))] * count)
    if len(rates) > 1:
        raise ValueError(f"wavfolder: files have different sample rates {sorted(rates)}; resample them to one "
                         f"rate. Received: {folder!r}")
    arrays = {}
    for split, (ids, labels) in windows.items():
        if not ids:
            raise ValueError(f"wavfolder: no {length + 1}-sample window falls in the {split} split of {folder!r}; "
                             f"add recordings or build the model with a shorter sequence_length. "
                             f"Received: {len(files)} files")
        arrays[split] = (np.stack(ids).astype("int32"), np.asarray(labels, "int32"))
    return _bundle("wavfolder", arrays, batch_size, seed, quantization, conditional, len(speakers),
                   {"sample_rate": rates.pop(), "labels": speakers})
