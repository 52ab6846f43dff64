"""Eve (Koushik & Hayashi, 2016, arXiv:1611.01505) against Adam on two zoo tasks, with the same
budget and seeds, through the shared training loop.

    nice -n 10 python tools/eve_report.py --output_dir=runs/eve_report

Each (task, optimizer, seed) is one ``training.loop.train_and_evaluate`` run, exactly as
``python -m training.train --optimizer=eve|adam`` would do it: same learning rate, epochs,
steps per epoch, batch size and seed, so the two optimizers see the same initial weights
and the same batches. Tasks:

- ``digits``: squeezenet1_1 (tiny) on the embedded digits; held-out test accuracy.
- ``char_lm``: qrnn_lm_char (tiny, widened to 64 units) on stdlib docstrings; test bits per char.

Prints mean ± standard deviation over the seeds and Eve / Adam of the means; writes
``eve_vs_adam.png`` (training loss and validation metric per epoch, mean over seeds,
min-max band) and ``report.json``. The paper's claim (Sec. 4) is a faster decrease of the
training loss than Adam with the same α. A few hundred steps test it only weakly: d_t averages
the objective feedback over about 1/(1 - β3) = 1000 steps, so after 200 steps it still gives
0.999^200 ≈ 82% of its weight to d_1 = 1 and Eve's step differs little from Adam's.
"""
import argparse
import json
import os
import time

import numpy as np

from training.loop import train_and_evaluate

TASKS = {
    "digits": dict(model="squeezenet1_1", dataset="digits", overrides={}, metric="accuracy",
                   label="test accuracy", higher_is_better=True),
    "char_lm": dict(model="qrnn_lm_char", dataset="docstrings_char",
                    overrides={"units": 64, "embedding_dim": 32, "seq_len": 64}, metric="bits_per_token",
                    label="test bits/char", higher_is_better=False),
}
OPTIMIZERS = ("adam", "eve")


def run_one(task, optimizer, seed, args):
    spec = TASKS[task]
    config = dict(model=spec["model"], dataset=spec["dataset"], tiny=True, overrides=spec["overrides"],
                  epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
                  batch_size=args.batch_size, learning_rate=args.learning_rate, optimizer=optimizer, seed=seed,
                  verbose=0)
    start = time.time()
    result = train_and_evaluate(config, os.path.join(args.output_dir, task, f"{optimizer}_seed{seed}"))
    history = result["history"]
    return {"test": float(result["test"][spec["metric"]]), "loss": history["loss"],
            "val": history[f"val_{spec['metric']}"], "seconds": time.time() - start}


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 3.6 * len(runs)), squeeze=False)
    for row, task in zip(axes, runs):
        panels = ((row[0], "loss", "training loss"), (row[1], "val", f"validation {TASKS[task]['metric']}"))
        for ax, key, title in panels:
            for optimizer in OPTIMIZERS:
                curves = np.array([r[key] for r in runs[task][optimizer]])
                epochs = np.arange(1, curves.shape[1] + 1)
                line, = ax.plot(epochs, curves.mean(0), marker="o", label=optimizer)
                ax.fill_between(epochs, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
            ax.set_title(f"{task} ({TASKS[task]['model']}): {title}")
            ax.set_xlabel("epoch")
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/eve_report")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {list(TASKS)}")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps_per_epoch", type=int, default=30)
    parser.add_argument("--validation_steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="α for both (Eve's Algorithm 1 default)")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown tasks {unknown}; choose from {list(TASKS)}")
    os.makedirs(args.output_dir, exist_ok=True)

    runs = {task: {optimizer: [run_one(task, optimizer, seed, args) for seed in range(args.seeds)]
                   for optimizer in OPTIMIZERS} for task in tasks}
    summary = {}
    for task in tasks:
        entry = {opt: {"mean": float(np.mean([r["test"] for r in rs])), "std": float(np.std([r["test"] for r in rs])),
                       "per_seed": [r["test"] for r in rs], "seconds": float(sum(r["seconds"] for r in rs))}
                 for opt, rs in runs[task].items()}
        entry["eve_over_adam"] = entry["eve"]["mean"] / entry["adam"]["mean"]
        summary[task] = entry
    plot(runs, os.path.join(args.output_dir, "eve_vs_adam.png"))
    with open(os.path.join(args.output_dir, "report.json"), "w") as f:
        json.dump({"settings": vars(args), "summary": summary, "runs": runs}, f, indent=2)

    print(f"Eve vs Adam: lr={args.learning_rate:g}, {args.epochs} epochs x {args.steps_per_epoch} steps of batch "
          f"{args.batch_size}, seeds 0..{args.seeds - 1}")
    print(f"{'task':<8} {'metric':<16} {'adam':>16} {'eve':>16} {'eve/adam':>9} {'seconds':>8}")
    for task, entry in summary.items():
        cells = [f"{entry[o]['mean']:.4f} ± {entry[o]['std']:.4f}" for o in OPTIMIZERS]
        seconds = entry["adam"]["seconds"] + entry["eve"]["seconds"]
        print(f"{task:<8} {TASKS[task]['label']:<16} {cells[0]:>16} {cells[1]:>16} {entry['eve_over_adam']:>9.3f} "
              f"{seconds:>8.0f}")
    print(f"Wrote {args.output_dir}/report.json and eve_vs_adam.png")


if __name__ == "__main__":
    main()
