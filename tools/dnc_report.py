"""The DNC (Graves et al., 2016, Nature 538:471) against an LSTM of the same parameter budget on
the copy or repeat-copy task (Graves et al., 2014, arXiv:1410.5401, Secs. 4.1-4.2): learning
curves, generalisation to sequences longer (and, for repeat-copy, repeated more often) than any
seen in training, and the DNC's write/read weightings over time.

    nice -n 10 python tools/dnc_report.py                        # -> runs/dnc_report
    nice -n 10 python tools/dnc_report.py --task=repeat_copy     # -> runs/dnc_report_repeat_copy

A fair comparison:

- Parameters: the LSTM's width is solved so that its parameter count matches the DNC's.
- Data: one curriculum for both (Graves et al. 2016 train their graph tasks with curricula):
  stage k draws lengths from [1, L_k], L = 2, 3, 4 by default, over equal numbers of steps;
  both models see the same batches in the same order. Testing uses lengths up to 20.
  Repeat-copy draws n from [1, --max_repeats] per example at every stage (as copy_task.py does),
  and is tested over lengths at n = max_repeats and over more repeats (up to --test_repeats,
  the repeat channel keeping the training scale n / max_repeats) at the longest trained length.
- Optimisation: the same optimizer, learning rate, global gradient-norm clipping (10) and
  steps for both. The paper (Methods) uses RMSProp with momentum 0.9 at learning rate 1e-4,
  and DeepMind's reference copy task runs 100k steps and clips the controller outputs to
  ±20 (DNCCell has no such clipping). This CPU budget allows about two thousand steps: with
  the paper's optimizer (``--optimizer=rmsprop --learning_rate=1e-4 --steps=2100``) neither
  model got past ~1 wrong bit per vector and the DNC's reads stayed uniform, so the default
  is Adam at 3e-3, with which both models learn the training lengths.

The metric is the NTM paper's cost per sequence: the number of answer bits whose logit has
the wrong sign, summed over a sequence, averaged over held-out sequences. Chance is half the
answer bits: L·bits/2 for copy, (n·L + 1)(bits + 1)/2 for repeat-copy (its answer steps carry
an end-of-output channel, and the end-marker step counts).

Why the former version (600 Adam steps on lengths 1..6, one evaluation at the training
lengths, a 70k-parameter LSTM against a 28k-parameter DNC) showed no DNC advantage: within
the training lengths a wider LSTM memorises as well or better, and nothing was measured
beyond them. The DNC's advantage is that a learned allocate-write / forward-read program
does not depend on the length, so it keeps working on longer sequences as long as the memory
has the slots (N >= the longest test length).

Writes ``dnc_vs_lstm.png`` (learning curves and error against length, and for repeat-copy
against repeats), ``dnc_weightings.png`` (write and read weightings of one long held-out
sequence) and ``report.json``; prints a table of errors per sequence by length (and repeats)
with the DNC / LSTM ratio measured in the same run. report.json keys repeat-copy results
"LxN" (length x repeats).
"""
import argparse
import json
import os
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.data.copy_task import MAX_REPEATS, copy_examples, repeat_copy_examples
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


def time_steps_for(task, length, repeats):
    """Steps a length-L example needs: copy 2L + 1; repeat-copy L + 1 + n·L + 1."""
    return 2 * length + 1 if task == "copy" else (repeats + 1) * length + 2


def make_examples(args, count, time_steps, rng, min_length=1, max_length=None, repeats=None):
    """Examples of ``args.task``; for repeat-copy n is drawn from ``repeats`` = (min, max), by default
    the training range [1, max_repeats], and always scaled by the training max_repeats."""
    if args.task == "copy":
        return copy_examples(count, args.bits, time_steps, rng, min_length=min_length, max_length=max_length)
    low, high = repeats or (1, args.max_repeats)
    return repeat_copy_examples(count, args.bits, time_steps, rng, max_repeats=high, min_length=min_length,
                                max_length=max_length, min_repeats=low, repeat_scale=args.max_repeats)


def evaluation_sweeps(args, test_lengths, test_repeats):
    """Test points per plot panel: (x label, title, largest trained x, [(x, (length, repeats))])."""
    longest_trained = max(args.curriculum)
    if args.task == "copy":
        return [("sequence length L (trained up to the grey line)",
                 "after training: generalisation to longer sequences", longest_trained,
                 [(n, (n, None)) for n in test_lengths])]
    return [("sequence length L (trained up to the grey line)",
             f"after training: longer sequences, n = {args.max_repeats} repeats", longest_trained,
             [(n, (n, args.max_repeats)) for n in test_lengths]),
            ("repeats n (trained up to the grey line)",
             f"after training: more repeats, length L = {longest_trained}", args.max_repeats,
             [(r, (longest_trained, r)) for r in test_repeats])]


def point_label(point):
    length, repeats = point
    return str(length) if repeats is None else f"{length}x{repeats}"


def errors_per_sequence(model, data, batch_size=128):
    """Wrong answer bits per sequence (mean) for examples ``(inputs, targets, weights)``."""
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


def plot(report, curves, sweeps, weightings, example, args):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, *rights) = plt.subplots(1, 1 + len(sweeps), figsize=(5.5 * (1 + len(sweeps)), 4))
    for name, points in curves.items():
        steps, errors = zip(*points)
        left.plot(steps, errors, marker=".", label=f"{name} ({report['params'][name]} params)")
    for boundary in np.arange(1, len(args.curriculum)) * args.steps // len(args.curriculum):
        left.axvline(boundary, color="grey", lw=0.5)
    left.set_xlabel("training step")
    left.set_ylabel("bit errors per sequence")
    left.set_title("held-out, lengths 1..L of the current stage")
    left.legend()
    chance_label = "chance (L·bits/2)" if args.task == "copy" else "chance (answer bits / 2)"
    for right, (xlabel, title, trained, points) in zip(rights, sweeps):
        xs, labels = [x for x, _ in points], [point_label(p) for _, p in points]
        for name in curves:
            right.plot(xs, [report["errors_by_length"][name][k] for k in labels], marker="o", label=name)
        right.plot(xs, [report["chance_by_length"][k] for k in labels], ls=":", color="grey", label=chance_label)
        right.axvline(trained, color="grey", lw=0.5)
        right.set_xlabel(xlabel)
        right.set_ylabel("bit errors per sequence")
        right.set_title(title)
        right.set_ylim(bottom=0)
        right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_dir, "dnc_vs_lstm.png"), dpi=80)
    plt.close(fig)

    writes, reads = weightings
    fig, axes = plt.subplots(1, 2 + reads.shape[1], figsize=(4 * (2 + reads.shape[1]), 3.6))
    axes[0].imshow(example[0].T, aspect="auto", cmap="gray_r", interpolation="nearest")
    delimiter = "delimiter" if args.task == "copy" else "repeat-count delimiter"  # n / max_repeats, last channel
    axes[0].set_title(f"input (bits + {delimiter}) over time")
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
    parser.add_argument("--task", choices=("copy", "repeat_copy"), default="copy")
    parser.add_argument("--output_dir", help="default: runs/dnc_report (copy), runs/dnc_report_repeat_copy")
    parser.add_argument("--steps", type=int, default=2400, help="training steps, split evenly over the stages")
    parser.add_argument("--curriculum", default="2,3,4", help="max training length of each stage")
    parser.add_argument("--test_lengths", default="2,3,4,6,8,12,16,20")
    parser.add_argument("--max_repeats", type=int, default=MAX_REPEATS, help="repeat_copy: trained repeats 1..n")
    parser.add_argument("--test_repeats", default="1,2,4,6,8", help="repeat_copy: tested at the longest trained L")
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
    test_repeats = [int(n) for n in args.test_repeats.split(",")] if args.task == "repeat_copy" else []
    args.output_dir = args.output_dir or ("runs/dnc_report" if args.task == "copy" else "runs/dnc_report_repeat_copy")
    if max(test_lengths) > args.memory_size:
        parser.error(f"--memory_size={args.memory_size} cannot hold a length-{max(test_lengths)} sequence; "
                     f"raise it to at least {max(test_lengths)}")
    os.makedirs(args.output_dir, exist_ok=True)

    keras.utils.set_random_seed(args.seed)
    extra = 0 if args.task == "copy" else 1  # repeat-copy: a repeat input channel, an end-of-output target
    input_size, output_size = args.bits + 1 + extra, args.bits + extra
    dnc = DNC(input_size, output_size, memory_size=args.memory_size, word_size=args.word_size,
              num_read_heads=args.num_read_heads, controller_units=args.controller_units, name="dnc")
    units = lstm_units_for(dnc.count_params(), input_size, output_size)
    models = {"dnc": dnc, "lstm": build_lstm(input_size, output_size, units)}
    for model in models.values():
        model.compile(optimizer=make_optimizer(args.optimizer, args.learning_rate, args.clipnorm),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))

    # One padded length per phase (training, testing): each model traces its step graph once.
    sweeps = evaluation_sweeps(args, test_lengths, test_repeats)
    test_points = list(dict.fromkeys(p for *_, points in sweeps for _, p in points))
    train_time_steps = time_steps_for(args.task, max(args.curriculum), args.max_repeats)
    test_time_steps = max(time_steps_for(args.task, *p) for p in test_points)

    def held_out(length_max, time_steps, min_length=1, seed=0, repeats=None):
        return make_examples(args, args.eval_examples, time_steps,
                             np.random.default_rng([10_000 + seed, length_max, min_length, *(repeats or ())]),
                             min_length=min_length, max_length=length_max, repeats=repeats)

    stage_steps = args.steps // len(args.curriculum)
    curves = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    data_rng = np.random.default_rng(args.seed)
    step = 0
    for stage_max in args.curriculum:
        validation = held_out(stage_max, train_time_steps)
        for _ in range(stage_steps):
            batch = make_examples(args, args.batch_size, train_time_steps, data_rng, max_length=stage_max)
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

    test_data = {point_label(p): held_out(p[0], test_time_steps, min_length=p[0], seed=1,
                                          repeats=None if p[1] is None else (p[1], p[1])) for p in test_points}
    errors = {name: {k: errors_per_sequence(model, data) for k, data in test_data.items()}
              for name, model in models.items()}
    report = {
        "settings": vars(args), "test_lengths": test_lengths, "lstm_units": units,
        "params": {name: int(model.count_params()) for name, model in models.items()},
        "train_seconds": seconds, "curves": curves, "errors_by_length": errors,
        "chance_by_length": {k: float(w.sum(-1).mean()) * output_size / 2 for k, (_, _, w) in test_data.items()},
    }
    if test_repeats:
        report["test_repeats"] = test_repeats
    longest = max(test_lengths)
    repeats = None if args.task == "copy" else (args.max_repeats, args.max_repeats)
    example = held_out(longest, time_steps_for(args.task, longest, args.max_repeats) + 1, min_length=longest,
                       seed=2, repeats=repeats)[0][:1]
    plot(report, curves, sweeps, weightings_over_time(dnc, example), example, args)
    with open(os.path.join(args.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)

    repeats_note = "" if args.task == "copy" else f", repeats 1..{args.max_repeats}"
    print(f"\n{args.task.replace('_', '-')} task, {args.bits} bits, curriculum max lengths {args.curriculum}"
          f"{repeats_note}, {step} steps of batch "
          f"{args.batch_size}, {args.optimizer} lr={args.learning_rate:g} clipnorm={args.clipnorm:g}")
    print(f"params: dnc {report['params']['dnc']}, lstm {report['params']['lstm']} ({units} units); train "
          f"seconds: dnc {seconds['dnc']:.0f}, lstm {seconds['lstm']:.0f}")
    repeats_column = "" if args.task == "copy" else f" {'repeats':>7}"
    print(f"{'length':>6}{repeats_column} {'chance':>7} {'dnc':>8} {'lstm':>8} {'dnc/lstm':>9}"
          "   (bit errors per sequence)")
    for n, r in test_points:
        k = point_label((n, r))
        d, lstm = errors["dnc"][k], errors["lstm"][k]
        beyond = [note for note, past in (("longer", n > max(args.curriculum)),
                                          ("more repeats", r is not None and r > args.max_repeats)) if past]
        trained = f"  ({' and '.join(beyond)} than trained)" if beyond else ""
        cells = f"{n:>6}" + ("" if r is None else f" {r:>7}") + f" {report['chance_by_length'][k]:>7.1f}"
        print(f"{cells} {d:>8.2f} {lstm:>8.2f} {d / max(lstm, 1e-9):>9.3f}{trained}")
    print(f"Wrote {args.output_dir}/dnc_vs_lstm.png, dnc_weightings.png, report.json")


if __name__ == "__main__":
    main()
