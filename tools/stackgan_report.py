"""Do the tiny class-conditioned StackGAN stages (arXiv:1612.03242) draw the digit they are asked for?

    nice -n 10 python tools/stackgan_report.py [--out_dir=runs/stackgan_report --steps=1500 --stage2_steps=750]
    nice -n 10 python tools/stackgan_report.py --stackgan_stage1_dir=DIR --judge_dir=DIR --stage2_steps=750

1. A judge: a small zoo classifier (BinaryNet's ConvNet with real weights, arXiv:1602.02830) trained
   on the digits at 16x16, its test accuracy on real digits reported.
2. ``stackgan_stage1`` ``--tiny`` trained on the digits with the reference recipe (Adam, lr 2e-4,
   beta_1 0.5, batch 64; matching-aware D, KL weight 2.0) through training.loop.train_and_evaluate,
   which writes ``samples.png`` (one row per class 0..9, the same 8 z per column).
3. ``--per_class`` samples per class (z ~ N(0, I), fixed seed) are classified: the accuracy against
   the requested class (chance: 10%), per class, and the predicted-class histogram; "spread across z"
   is the pixel std over z at a fixed class, "spread across classes" the pixel std over classes at a
   fixed z (both averaged over pixels, [0, 1] units), next to the same figures of the real digits.
4. With ``--stage2_steps`` (0 skips it), ``stackgan_stage2`` ``--tiny`` trains on the frozen Stage-I
   (same recipe, batch ``--stage2_batch_size``, discriminator width ``--stage2_df_dim``, the task's
   ``stackgan_df_dim``) and its 64x64 samples, downsized to 16x16, are judged the same way.

``--stackgan_stage1_dir`` / ``--judge_dir`` reuse a finished Stage-I run / judge run instead of
training them (the Stage-I row is then judged again, with the same seed). ``--gan_label_smoothing`` (task
option) and ``--kl_weight`` (builder override) apply to the Stage-I run trained here.

Writes ``stackgan_report.json``, ``stackgan_table.md`` and (with Stage-II) ``stage1_vs_stage2.png`` (per
class, Stage-I image and Stage-II image for the same z) under ``--out_dir``; runs under tf_keras
(the training CLI's default runtime).
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_zoo.backend import keras  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402
from training.tasks_gan import conditional_samples  # noqa: E402

SIDE = 16  # the tiny Stage-I's output; the digits (8x8) are resized to it bilinearly, as the GAN trainer does
JUDGE = ("binarynet_cifar", {"binarize": False, "filters": [16, 32, 64], "units": [128, 128],
                             "input_shape": [SIDE, SIDE, 1]})


def _load(model_dir):
    return keras.models.load_model(os.path.join(model_dir, "model.keras"), compile=False)


def train_judge(out_dir, epochs, judge_dir=""):
    if judge_dir:
        with open(os.path.join(judge_dir, "metrics.json")) as f:
            return _load(judge_dir), float(json.load(f)["test"]["accuracy"])
    name, overrides = JUDGE
    result = train_and_evaluate(dict(model=name, dataset="digits", overrides=overrides, epochs=epochs,
                                     batch_size=32, verbose=0), os.path.join(out_dir, "judge"))
    return _load(os.path.join(out_dir, "judge")), float(result["test"]["accuracy"])


def real_spreads():
    """Within-class pixel std and the std of the class means, of the real digits at 16x16."""
    from keras_zoo.data.digits import digits_by_split

    images, labels = digits_by_split()["train"]
    images = np.asarray(tf.image.resize(images[..., None], (SIDE, SIDE), method="bilinear"))[..., 0]
    within = np.mean([images[labels == k].std(axis=0).mean() for k in range(10)])
    means = np.stack([images[labels == k].mean(axis=0) for k in range(10)])
    return float(within), float(means.std(axis=0).mean())


def judge_samples(judge, images, per_class):
    """Accuracy of ``judge`` on condition-major samples (10 classes x per_class), and the spreads."""
    small = tf.image.resize(images, (SIDE, SIDE), method="area") if images.shape[1] != SIDE else images
    predicted = np.argmax(np.asarray(judge.predict(small, batch_size=100, verbose=0)), axis=-1)
    wanted = np.repeat(np.arange(10), per_class)
    grid = np.asarray(small).reshape(10, per_class, -1)
    return {"accuracy": float(np.mean(predicted == wanted)),
            "per_class_accuracy": [float(np.mean(predicted[wanted == k] == k)) for k in range(10)],
            "predicted_histogram": np.bincount(predicted, minlength=10).tolist(),
            "spread_across_z": float(grid.std(axis=1).mean()),
            "spread_across_classes": float(grid.std(axis=0).mean())}


def write_stage_pairs(stage1, stage2, path, per_class=4):
    """A PNG with one row per class: (Stage-I image scaled up, Stage-II image) for ``per_class`` z."""
    from training.sample import image_grid

    classes = np.arange(10, dtype="int32")
    low = conditional_samples(stage1, classes, per_class, seed=1)
    high = conditional_samples(stage2, classes, per_class, seed=1, stage1=stage1)
    low = np.asarray(tf.image.resize(low, high.shape[1:3], method="nearest"))
    return image_grid(np.stack([low, high], axis=1).reshape(-1, *high.shape[1:]), path, columns=2 * per_class)


def train_gan(model_dir, model, steps, batch_size, task_options=None, overrides=None):
    epochs = 5
    start = time.time()
    result = train_and_evaluate(dict(model=model, tiny=True, epochs=epochs, steps_per_epoch=max(1, steps // epochs),
                                     validation_steps=2, batch_size=batch_size, optimizer="adam",
                                     learning_rate=2e-4, verbose=0, task_options=task_options or {},
                                     overrides=overrides or {}), model_dir)
    history = {k: [round(float(v), 3) for v in values] for k, values in result["history"].items()
               if k in ("d_loss", "g_loss", "g_extra_loss", "d_real", "d_fake", "d_wrong")}
    return {"model_dir": model_dir, "steps": epochs * max(1, steps // epochs), "batch_size": batch_size,
            "seconds": round(time.time() - start, 1), "history": history,
            "samples_png": result["task"]["samples_png"]}


def _row(label, judged):
    return (f"| {label} | {100 * judged['accuracy']:.1f} | "
            + " ".join(f"{100 * a:.0f}" for a in judged["per_class_accuracy"])
            + f" | {judged['spread_across_z']:.3f} | {judged['spread_across_classes']:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default="runs/stackgan_report")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--judge_epochs", type=int, default=4)
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--stage2_steps", type=int, default=750)
    parser.add_argument("--stage2_batch_size", type=int, default=32)
    parser.add_argument("--stage2_df_dim", type=int, default=8, help="Stage-II discriminator width (0: gf_dim / 2)")
    parser.add_argument("--stackgan_stage1_dir", default="", help="reuse this finished Stage-I run")
    parser.add_argument("--judge_dir", default="", help="reuse this finished judge run")
    parser.add_argument("--gan_label_smoothing", type=float, default=0.0)
    parser.add_argument("--kl_weight", type=float, default=2.0, help="Stage-I's lambda (2.0 reference code, 1 paper)")
    args = parser.parse_args()
    start = time.time()
    os.makedirs(args.out_dir, exist_ok=True)

    judge, judge_accuracy = train_judge(args.out_dir, args.judge_epochs, args.judge_dir)
    within, between = real_spreads()
    if args.stackgan_stage1_dir:
        with open(os.path.join(args.stackgan_stage1_dir, "config.json")) as f:
            steps = json.load(f)["training"]
        stage1 = {"model_dir": args.stackgan_stage1_dir, "reused": True, "batch_size": steps["batch_size"],
                  "steps": steps["epochs"] * steps["steps_per_epoch"],
                  "samples_png": os.path.join(args.stackgan_stage1_dir, "samples.png")}
    else:
        stage1 = train_gan(os.path.join(args.out_dir, "stage1"), "stackgan_stage1", args.steps, args.batch_size,
                           {"gan_label_smoothing": args.gan_label_smoothing}, {"kl_weight": args.kl_weight})
    generator = _load(stage1["model_dir"])
    classes = np.arange(10, dtype="int32")
    stage1["judged"] = judge_samples(judge, conditional_samples(generator, classes, args.per_class, seed=1),
                                     args.per_class)
    report = {"judge": {"model": JUDGE[0], "overrides": JUDGE[1], "epochs": args.judge_epochs,
                        "real_test_accuracy": judge_accuracy},
              "real_digits": {"spread_within_class": within, "spread_of_class_means": between},
              "stage1": stage1}
    if args.stage2_steps:
        stage2 = train_gan(os.path.join(args.out_dir, "stage2"), "stackgan_stage2", args.stage2_steps,
                           args.stage2_batch_size, {"stackgan_stage1_dir": stage1["model_dir"],
                                                    "stackgan_df_dim": args.stage2_df_dim})
        stage2["df_dim"] = args.stage2_df_dim
        stage2_generator = _load(stage2["model_dir"])
        images = conditional_samples(stage2_generator, classes, args.per_class, seed=1, stage1=generator)
        stage2["judged"] = judge_samples(judge, images, args.per_class)
        stage2["pairs_png"] = write_stage_pairs(generator, stage2_generator,
                                                os.path.join(args.out_dir, "stage1_vs_stage2.png"))
        report["stage2"] = stage2
    report["seconds"] = round(time.time() - start, 1)
    with open(os.path.join(args.out_dir, "stackgan_report.json"), "w") as f:
        json.dump(report, f, indent=2)

    stage1_label = f"Stage-I, {stage1['steps']} steps x {stage1['batch_size']}" + (
        " (reused run)" if stage1.get("reused") else
        f", kl_weight {args.kl_weight:g}, label smoothing {args.gan_label_smoothing:g}")
    lines = [f"StackGAN tiny on digits ({SIDE}x{SIDE}); judge {JUDGE[0]} (real-digit test accuracy "
             f"{100 * judge_accuracy:.1f}%), {args.per_class} samples per class; chance 10%\n",
             "| generator | accuracy (%) | per class 0..9 (%) | spread across z | spread across classes |",
             "|---|---:|---|---:|---:|",
             _row(stage1_label, stage1["judged"])]
    if "stage2" in report:
        stage2 = report["stage2"]
        lines.append(_row(f"Stage-II on frozen Stage-I, {stage2['steps']} steps x {stage2['batch_size']}, "
                          f"D df {stage2['df_dim'] or 'gf/2'}",
                          stage2["judged"]))
    lines.append(f"| real digits | {100 * judge_accuracy:.1f} (test split) | | {within:.3f} (within class) | "
                 f"{between:.3f} (class means) |")
    table = "\n".join(lines)
    with open(os.path.join(args.out_dir, "stackgan_table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print("predicted-class histogram (Stage-I):", stage1["judged"]["predicted_histogram"])
    if "stage2" in report:
        print("predicted-class histogram (Stage-II):", report["stage2"]["judged"]["predicted_histogram"])
        print("Stage-II samples:", report["stage2"]["samples_png"], "| Stage-I vs Stage-II:",
              report["stage2"]["pairs_png"])
    print("samples:", stage1["samples_png"], "| seconds:", report["seconds"])


if __name__ == "__main__":
    main()
