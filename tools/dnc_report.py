"""The DNC (Graves et al., 2016, Nature 538:471) against an LSTM of the same parameter budget on
the copy task (Graves et al., 2014, arXiv:1410.5401, Sec. 4.1): learning curves, generalisation
to sequences longer than any seen in training, and the DNC's write/read weightings over time.

    nice -n 10 python tools/dnc_report.py --output_dir=runs/dnc_report

A fair comparison:

- Parameters: the LSTM's width is solved so that its parameter count matches the DNC's.
- Data: one curriculum for both (Graves et al. 2016 train their graph tasks with curricula):
  stage k draws lengths from [1, L_k], L = 2, 3, 4 by default, over equal numbers of steps;
  both models see the same batches in the same order. Testing uses lengths up to 20.
- Optimisation: the same optimizer, learning rate, global gradient-norm clipping (10) and
  steps for both. The paper (Methods) uses RMSProp with momentum 0.9 at learning rate 1e-4,
  and DeepMind's reference copy task runs 100k steps and clips the controller outputs to
  ±20 (DNCCell has no such clipping). This CPU budget allows about two thousand steps: with
  the paper's optimizer (``--optimizer=rmsprop --learning_rate=1e-4 --steps=2100``) neither
  model got past ~1 wrong bit per vector and the DNC's reads stayed uniform, so the default
  is Adam at 3e-3, with which both models learn the training lengths.

The metric is the NTM paper's cost per sequence: the number of answer bits whose logit has
the wrong sign, summed over a sequence, averaged over held-out sequences. A memoryless model
gets about half of the L·bits answer bits of a length-L sequence wrong.

Why the former version (600 Adam steps on lengths 1..6, one evaluation at the training
lengths, a 70k-parameter LSTM against a 28k-parameter DNC) showed no DNC advantage: within
the training lengths a wider LSTM memorises as well or better, and nothing was measured
beyond them. The DNC's advantage is that a learned allocate-write / forward-read program
does not depend on the length, so it keeps working on longer sequences as long as the memory
has the slots (N >= the longest test length).

Writes ``dnc_vs_lstm.png`` (learning curves and error against length), ``dnc_weightings.png``
(write and read weightings of one long held-out sequence) and ``report.json``; prints a table
of errors per sequence by length with the DNC / LSTM ratio measured in the same run.
"""
import argparse
import json
import os
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.data.copy_task import copy_examples
from keras_zoo.models.dnc import DNC


def lstm_units_for(params, input_size, output_size):
    """Width u of LSTM + Dense with about ``params`` weights: 4u(input + u + 1) + (u + 1)·output."""
    a, b, c = 4.0, 4.0 * (input_size + 1) + output_size, output_size - params
    return max(1, int(round((-b + np.sqrt(b * b - 4 * a * c)) / (2 * a))))


def build_lstm(input_size, output_size, units):
    inputs = keras.Input(shape=(None, input_size), name="sequence")
    x = keras.layers.LSTM(units, return_sequences=True, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(output_size, name="logits")(x), name="lstm_baseline")


def make_optimizer(name, learning_rate, clipnorm):
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=0.9, clipnorm=clipnorm)
    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)


def errors_per_sequence(model, data, batch_size=128):
    """Wrong answer bits per sequence (mean) for copy examples ``(inputs, targets, weights)``."""
    inputs, targets, weights = data
    logits = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))
    wrong = ((logits > 0) != (targets > 0.5)).sum(-1) * weights
    return float(wrong.sum(-1).mean())


def weightings_over_time(dnc_model, inputs):
    """Write (T, N) and read (T, R, N) weightings of the DNC for one sequence (1, T, input_size)."""
    import tensorflow as tf

    cell = dnc_model.get_layer(f"{dnc_model.name}_rnn").cell
    states = [tf.zeros((1, size)) for size in cell.state_size]
    writes, reads = [], []
    for t in range(inputs.shape[1]):
        _, states = cell.call(tf.constant(inputs[:, t]), states)
        reads.append(np.asarray(states[4]).reshape(cell.num_read_heads, cell.memory_size))
        writes.append(np.asarray(states[5])[0])
    return np.stack(writes), np.stack(reads)


def plot(report, curves, weightings, example, args):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        steps, errors = zip(*points)
        left.plot(steps, errors, marker=".", label=f"{name} ({report['params'][name]} params)")
    for boundary in np.arange(1, len(args.curriculum)) * args.steps // len(args.curriculum):
        left.axvline(boundary, color="grey", lw=0.5)
    left.set_xlabel("training step")
    left.set_ylabel("bit errors per sequence")
    left.set_title("held-out, lengths 1..L of the current stage")
    left.legend()
    lengths = report["test_lengths"]
    for name in curves:
        right.plot(lengths, [report["errors_by_length"][name][str(n)] for n in lengths], marker="o", label=name)
    right.plot(lengths, [n * args.bits / 2 for n in lengths], ls=":", color="grey", label="chance (L·bits/2)")
    right.axvline(max(args.curriculum), color="grey", lw=0.5)
    right.set_xlabel("sequence length L (trained up to the grey line)")
    right.set_ylabel("bit errors per sequence")
    right.set_title("after training: generalisation to longer sequences")
    right.set_ylim(bottom=0)
    right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_dir, "dnc_vs_lstm.png"), dpi=80)
    plt.close(fig)

    writes, reads = weightings
    fig, axes = plt.subplots(1, 2 + reads.shape[1], figsize=(4 * (2 + reads.shape[1]), 3.6))
    axes[0].imshow(example[0].T, aspect="auto", cmap="gray_r", interpolation="nearest")
    axes[0].set_title("input (bits + delimiter) over time")
    axes[1].imshow(writes.T, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=1)
    axes[1].set_title("write weighting")
    for head in range(reads.shape[1]):
        axes[2 + head].imshow(reads[:, head].T, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0,
                              vmax=1)
        axes[2 + head].set_title(f"read weighting (head {head + 1})")
    for ax in axes:
        ax.set_xlabel("time step")
    for ax in axes[1:]:
        ax.set_ylabel("memory slot")
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_dir, "dnc_weightings.png"), dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/dnc_report")
    parser.add_argument("--steps", type=int, default=2400, help="training steps, split evenly over the stages")
    parser.add_argument("--curriculum", default="2,3,4", help="max training length of each stage")
    parser.add_argument("--test_lengths", default="2,3,4,6,8,12,16,20")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--bits", type=int, default=8, help="bits per vector (NTM paper: 8)")
    parser.add_argument("--memory_size", type=int, default=20, help="N; must be >= the longest test length")
    parser.add_argument("--word_size", type=int, default=16)
    parser.add_argument("--num_read_heads", type=int, default=1)
    parser.add_argument("--controller_units", type=int, default=64)
    parser.add_argument("--optimizer", choices=("rmsprop", "adam"), default="adam",
                        help="rmsprop: with momentum 0.9, as the paper")
    parser.add_argument("--learning_rate", type=float, default=3e-3, help="paper: RMSProp at 1e-4")
    parser.add_argument("--clipnorm", type=float, default=10.0)
    parser.add_argument("--eval_every", type=int, default=200)
    parser.add_argument("--eval_examples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.curriculum = [int(n) for n in args.curriculum.split(",")]
    test_lengths = [int(n) for n in args.test_lengths.split(",")]
    if max(test_lengths) > args.memory_size:
        parser.error(f"--memory_size={args.memory_size} cannot hold a length-{max(test_lengths)} sequence; "
                     f"raise it to at least {max(test_lengths)}")
    os.makedirs(args.output_dir, exist_ok=True)

    keras.utils.set_random_seed(args.seed)
    input_size, output_size = args.bits + 1, args.bits
    dnc = DNC(input_size, args.bits, memory_size=args.memory_size, word_size=args.word_size,
              num_read_heads=args.num_read_heads, controller_units=args.controller_units, name="dnc")
    units = lstm_units_for(dnc.count_params(), input_size, output_size)
    models = {"dnc": dnc, "lstm": build_lstm(input_size, output_size, units)}
    for model in models.values():
        model.compile(optimizer=make_optimizer(args.optimizer, args.learning_rate, args.clipnorm),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))

    # One padded length per phase (training, testing): each model traces its step graph once.
    train_time_steps, test_time_steps = 2 * max(args.curriculum) + 1, 2 * max(test_lengths) + 1

    def held_out(length_max, time_steps, min_length=1, seed=0):
        return copy_examples(args.eval_examples, args.bits, time_steps,
                             np.random.default_rng([10_000 + seed, length_max, min_length]),
                             min_length=min_length, max_length=length_max)

    stage_steps = args.steps // len(args.curriculum)
    curves = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    data_rng = np.random.default_rng(args.seed)
    step = 0
    for stage_max in args.curriculum:
        validation = held_out(stage_max, train_time_steps)
        for _ in range(stage_steps):
            batch = copy_examples(args.batch_size, args.bits, train_time_steps, data_rng, max_length=stage_max)
            for name, model in models.items():
                start = time.time()
                model.train_on_batch(batch[0], batch[1], sample_weight=batch[2])
                seconds[name] += time.time() - start
            step += 1
            if step % args.eval_every == 0 or step == stage_steps * len(args.curriculum):
                for name, model in models.items():
                    curves[name].append((step, errors_per_sequence(model, validation)))
                print(f"step {step} (lengths 1..{stage_max}): bit errors per sequence "
                      + ", ".join(f"{n} {c[-1][1]:.2f}" for n, c in curves.items())
                      + " | train seconds " + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items()), flush=True)

    errors = {name: {str(n): errors_per_sequence(model, held_out(n, test_time_steps, min_length=n, seed=1))
                     for n in test_lengths} for name, model in models.items()}
    report = {
        "settings": vars(args), "test_lengths": test_lengths, "lstm_units": units,
        "params": {name: int(model.count_params()) for name, model in models.items()},
        "train_seconds": seconds, "curves": curves, "errors_by_length": errors,
    }
    longest = max(test_lengths)
    example = held_out(longest, 2 * longest + 2, min_length=longest, seed=2)[0][:1]
    plot(report, curves, weightings_over_time(dnc, example), example, args)
    with open(os.path.join(args.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)

    print(f"\ncopy task, {args.bits} bits, curriculum max lengths {args.curriculum}, {step} steps of batch "
          f"{args.batch_size}, {args.optimizer} lr={args.learning_rate:g} clipnorm={args.clipnorm:g}")
    print(f"params: dnc {report['params']['dnc']}, lstm {report['params']['lstm']} ({units} units); train "
          f"seconds: dnc {seconds['dnc']:.0f}, lstm {seconds['lstm']:.0f}")
    print(f"{'length':>6} {'chance':>7} {'dnc':>8} {'lstm':>8} {'dnc/lstm':>9}   (bit errors per sequence)")
    for n in test_lengths:
        d, lstm = errors["dnc"][str(n)], errors["lstm"][str(n)]
        trained = "" if n <= max(args.curriculum) else "  (longer than trained)"
        print(f"{n:>6} {n * args.bits / 2:>7.1f} {d:>8.2f} {lstm:>8.2f} {d / max(lstm, 1e-9):>9.3f}{trained}")
    print(f"Wrote {args.output_dir}/dnc_vs_lstm.png, dnc_weightings.png, report.json")


if __name__ == "__main__":
    main()
