"""Copy and repeat-copy: the synthetic memory tasks of Graves et al. (2014, "Neural Turing
Machines", arXiv:1410.5401, sections 4.1-4.2), used to test the DNC (Nature 538:471, 2016).

``copy``: a sequence of L random binary vectors of ``bits`` bits, then one step with
the delimiter channel set, then L blank steps during which the model must replay the
sequence. Inputs (T, bits + 1), targets (T, bits), T = 2·L_max + 1; L is drawn from
[1, L_max] per example (L_max = (T - 1) // 2) and the tail is zero padding.

``repeat_copy``: the sequence, then one step whose repeat channel holds the number
of repeats n ∈ [1, max_repeats] divided by ``max_repeats`` (the NTM's normalisation);
the model must output the sequence n times and then raise an end-of-output channel.
Inputs (T, bits + 2) (delimiter-and-repeat channel last), targets (T, bits + 1).

Both yield ``(inputs, targets, sample_weights)``: the weights (T,) are 1 on the
steps the model must answer, 0 elsewhere, so the loss (per-bit sigmoid cross
entropy on logits) counts only the answer, as in the NTM paper. The bits are i.i.d.
fair coins, so a model without memory cannot beat 1 bit (ln 2 nats) per answer bit.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.data._base import DatasetBundle, SPLIT_SEED, batch_splits, register_dataset, require_task, single_input

#: Examples per split; synthetic, so the sizes only bound an epoch.
SPLIT_SIZES = {"train": 8192, "validation": 512, "test": 512}
DEFAULT_TIME_STEPS = 21
MAX_REPEATS = 4


def copy_examples(count, bits, time_steps, rng, min_length=1, max_length=None):
    """``count`` copy-task examples: inputs (count, T, bits + 1), targets (count, T, bits), weights (count, T).

    Sequence lengths are drawn uniformly from [min_length, max_length]; max_length
    defaults to (T - 1) // 2, the longest sequence whose replay fits in T steps.
    """
    longest = (time_steps - 1) // 2
    if longest < 1:
        raise ValueError(f"The copy task needs time_steps >= 3 (one vector, the delimiter, its replay). "
                         f"Received: time_steps={time_steps}")
    max_length = longest if max_length is None else max_length
    if not 1 <= min_length <= max_length <= longest:
        raise ValueError(f"Copy lengths need 1 <= min_length <= max_length <= (time_steps - 1) // 2 = {longest}; "
                         f"raise time_steps to 2 * max_length + 1. Received: min_length={min_length}, "
                         f"max_length={max_length}, time_steps={time_steps}")
    inputs = np.zeros((count, time_steps, bits + 1), "float32")
    targets = np.zeros((count, time_steps, bits), "float32")
    weights = np.zeros((count, time_steps), "float32")
    lengths = rng.integers(min_length, max_length + 1, size=count)
    for i, length in enumerate(lengths):
        sequence = rng.integers(0, 2, size=(length, bits)).astype("float32")
        inputs[i, :length, :bits] = sequence
        inputs[i, length, bits] = 1.0
        targets[i, length + 1:2 * length + 1] = sequence
        weights[i, length + 1:2 * length + 1] = 1.0
    return inputs, targets, weights


def repeat_copy_examples(count, bits, time_steps, rng, max_repeats=MAX_REPEATS, min_length=1, max_length=None,
                         min_repeats=1, repeat_scale=None):
    """Repeat-copy examples: inputs (count, T, bits + 2), targets (count, T, bits + 1), weights (count, T).

    n is drawn uniformly from [min_repeats, max_repeats], then L from [1, (T - 2) // (n + 1)] so that
    L + 1 + n·L + 1 <= T (sequence, delimiter, n replays, end marker; n is lowered if even L = 1 does
    not fit). Given ``max_length``, L is drawn from [min_length, max_length] instead, and every such
    (L, n) must fit in T. The repeat channel holds n / repeat_scale (default max_repeats): to test on
    more repeats than trained (NTM paper, Sec. 4.2), keep the training scale.
    """
    if time_steps < 4:
        raise ValueError(f"The repeat-copy task needs time_steps >= 4. Received: time_steps={time_steps}")
    if not 1 <= min_repeats <= max_repeats:
        raise ValueError(f"Repeats need 1 <= min_repeats <= max_repeats. Received: min_repeats={min_repeats}, "
                         f"max_repeats={max_repeats}")
    if max_length is None and min_length != 1:
        raise ValueError(f"min_length needs an explicit max_length. Received: min_length={min_length}, "
                         f"max_length=None")
    if max_length is not None and not (1 <= min_length <= max_length
                                       and (max_repeats + 1) * max_length + 2 <= time_steps):
        raise ValueError(f"Repeat-copy lengths need 1 <= min_length <= max_length and "
                         f"(max_repeats + 1) * max_length + 2 <= time_steps; raise time_steps to "
                         f"{(max_repeats + 1) * max_length + 2}. Received: min_length={min_length}, "
                         f"max_length={max_length}, max_repeats={max_repeats}, time_steps={time_steps}")
    scale = max_repeats if repeat_scale is None else repeat_scale
    inputs = np.zeros((count, time_steps, bits + 2), "float32")
    targets = np.zeros((count, time_steps, bits + 1), "float32")
    weights = np.zeros((count, time_steps), "float32")
    for i in range(count):
        repeats = int(rng.integers(min_repeats, max_repeats + 1))
        longest = (time_steps - 2) // (repeats + 1)
        while longest < 1:
            repeats -= 1
            longest = (time_steps - 2) // (repeats + 1)
        length = int(rng.integers(min_length, (longest if max_length is None else max_length) + 1))
        sequence = rng.integers(0, 2, size=(length, bits)).astype("float32")
        inputs[i, :length, :bits] = sequence
        inputs[i, length, bits + 1] = repeats / scale
        start = length + 1
        targets[i, start:start + repeats * length, :bits] = np.tile(sequence, (repeats, 1))
        end = start + repeats * length
        targets[i, end, bits] = 1.0
        weights[i, start:end + 1] = 1.0
    return inputs, targets, weights


def _shape(name, input_specs, extra_channels):
    spec = single_input(name, input_specs)
    if len(spec.shape) != 2 or spec.dtype != "float32" or (spec.shape[-1] or 0) <= extra_channels:
        raise ValueError(f"Dataset {name!r} feeds sequence models with float32 (T, bits + {extra_channels}) "
                         f"inputs. Received: input shape {spec.shape}, dtype {spec.dtype}")
    return spec.shape[0] or DEFAULT_TIME_STEPS, spec.shape[-1] - extra_channels


def _bundle(name, make, bits, time_steps, batch_size, seed, output_size):
    arrays = {split: make(size, np.random.default_rng([SPLIT_SEED, index]))
              for index, (split, size) in enumerate(SPLIT_SIZES.items())}
    splits = {split: tf.data.Dataset.from_tensor_slices(a) for split, a in arrays.items()}
    return DatasetBundle(
        **batch_splits(name, splits, batch_size, seed),
        model_overrides={"output_size": output_size},
        info={"sizes": dict(SPLIT_SIZES), "bits": bits, "time_steps": time_steps,
              "chance_bits_per_answer_bit": 1.0},
    )


@register_dataset("copy")
def load_copy(_, *, task, input_specs, batch_size, seed, data_dir):
    """Copy task sized to the model's (T, bits + 1) input."""
    require_task("copy", task, ("memory",))
    time_steps, bits = _shape("copy", input_specs, 1)
    return _bundle("copy", lambda n, rng: copy_examples(n, bits, time_steps, rng), bits, time_steps,
                   batch_size, seed, output_size=bits)


@register_dataset("repeat_copy")
def load_repeat_copy(_, *, task, input_specs, batch_size, seed, data_dir):
    """Repeat-copy task sized to the model's (T, bits + 2) input."""
    require_task("repeat_copy", task, ("memory",))
    time_steps, bits = _shape("repeat_copy", input_specs, 2)
    return _bundle("repeat_copy", lambda n, rng: repeat_copy_examples(n, bits, time_steps, rng), bits,
                   time_steps, batch_size, seed, output_size=bits + 1)
