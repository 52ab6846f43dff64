"""Knowledge distillation on the embedded digits (arXiv:1503.02531): a small student trained
from scratch vs distilled from a 4x wider teacher, same budget, several seeds; then the
distilled student through QAT to an int8 .tflite, next to the teacher.

    TF_USE_LEGACY_KERAS=1 nice -n 10 python tools/distill_report.py [--teacher_epochs=4 --student_epochs=3]

Defaults are budgets for a shared 2-core CPU (under 20 min): the teacher trains once, each
student run gets the same few epochs (distillation shows most where the budget is short),
QAT one epoch.

Teacher: BinaryNet's VGG-like ConvNet (arXiv:1602.02830) with real weights (``binarize=False``)
at widths 32-64-128 / 256-256; student: the same layout 4x narrower. Both see digits at
16x16x1. Everything runs through training.loop.train_and_evaluate
(distillation = ``task_options={"teacher_dir": ...}``) and export.tflite.export_model
(QAT), under tf_keras. Prints a markdown table and writes ``distill_report.json`` and
``distill_table.md`` under ``--out_dir``. Accuracies are over the 256 test images of the 8
full batches of the 270-image test split (Keras and .tflite alike).
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QAT needs tf_keras; train in the same runtime
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from export import tflite  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402

INPUT_SHAPE = [16, 16, 1]  # digits are 8x8
# BinaryNet's real-valued twin: its BN (momentum 0.9) is usable after a few epochs; MobileNet's
# (momentum 0.99) still held its initial statistics after 3 epochs (test accuracy at chance), and a
# ResNeXt-29 teacher (grouped convolutions) took 6 min per epoch on the shared 2-core CPU.
TEACHER = ("binarynet_cifar", {"binarize": False, "filters": [32, 64, 128], "units": [256, 256],
                               "input_shape": INPUT_SHAPE})
STUDENT = ("binarynet_cifar", {"binarize": False, "filters": [8, 16, 32], "units": [64, 64],
                               "input_shape": INPUT_SHAPE})


def _train(model_dir, spec, epochs, seed, batch_size, task_options=None):
    name, overrides = spec
    config = dict(model=name, dataset="digits", overrides=overrides, epochs=epochs, batch_size=batch_size,
                  seed=seed, verbose=0, task_options=task_options or {})
    start = time.time()
    result = train_and_evaluate(config, model_dir)
    return {"test_accuracy": result["test"]["accuracy"], "seconds": round(time.time() - start, 1),
            "model_dir": model_dir}


def _params(model_dir):
    from keras_zoo.backend import keras

    return int(keras.models.load_model(os.path.join(model_dir, "model.keras"), compile=False).count_params())


def _summary(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "values": values.tolist()}


def _fmt(summary):
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f} (min {100 * summary['min']:.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default="runs/compression/distill")
    parser.add_argument("--teacher_epochs", type=int, default=4)
    parser.add_argument("--student_epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--qat_epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()

    teacher_dir = os.path.join(args.out_dir, "teacher")
    teacher = _train(teacher_dir, TEACHER, args.teacher_epochs, 0, args.batch_size)
    teacher["params"] = _params(teacher_dir)
    options = {"teacher_dir": teacher_dir, "temperature": args.temperature, "alpha": args.alpha}
    runs = {"scratch": [], "distilled": []}
    for seed in seeds:
        runs["scratch"].append(_train(os.path.join(args.out_dir, f"scratch_seed{seed}"), STUDENT,
                                      args.student_epochs, seed, args.batch_size))
        runs["distilled"].append(_train(os.path.join(args.out_dir, f"distilled_seed{seed}"), STUDENT,
                                        args.student_epochs, seed, args.batch_size, task_options=options))
    student_params = _params(runs["distilled"][0]["model_dir"])

    export = tflite.export_model(model_dir=runs["distilled"][0]["model_dir"], quantization="qat",
                                 qat_epochs=args.qat_epochs, num_verify=270, batch_size=args.batch_size,
                                 output=os.path.join(args.out_dir, "distilled_seed0_qat"), log=lambda *_: None)
    metrics = export["qat"]["metrics"]
    report = {
        "dataset": "digits (test split: 256 images in full batches)", "input_shape": INPUT_SHAPE,
        "teacher": {"model": TEACHER[0], "overrides": TEACHER[1], "epochs": args.teacher_epochs, **teacher,
                    "float32_bytes": 4 * teacher["params"]},
        "student": {"model": STUDENT[0], "overrides": STUDENT[1], "epochs": args.student_epochs,
                    "params": student_params, "float32_bytes": 4 * student_params},
        "distillation": {"temperature": args.temperature, "alpha": args.alpha},
        "seeds": seeds,
        "scratch": {"runs": runs["scratch"], "accuracy": _summary([r["test_accuracy"] for r in runs["scratch"]])},
        "distilled": {"runs": runs["distilled"],
                      "accuracy": _summary([r["test_accuracy"] for r in runs["distilled"]])},
        "distilled_qat_int8": {"seed": seeds[0], "tflite_bytes": export["size_bytes"],
                               "gzip_bytes": export["gzip_size_bytes"], "passed": export["passed"],
                               "float_keras_accuracy": metrics["float_keras"]["accuracy"],
                               "qat_tflite_accuracy": metrics["qat_tflite"]["accuracy"],
                               "ptq_int8_tflite_accuracy": metrics["ptq_int8_tflite"]["accuracy"],
                               "qat_epochs": args.qat_epochs},
        "seconds": round(time.time() - start, 1),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "distill_report.json"), "w") as f:
        json.dump(report, f, indent=2)

    q = report["distilled_qat_int8"]
    lines = [f"Distillation on digits 16x16, T={args.temperature}, alpha={args.alpha}, "
             f"{len(seeds)} seeds (mean ± sample std), same {args.student_epochs}-epoch budget\n",
             "| model | weights | size | test accuracy (%) |", "|---|---:|---:|---:|",
             f"| teacher {TEACHER[0]} float, widths 32-64-128/256, float32, {args.teacher_epochs} epochs | "
             f"{teacher['params']:,} | {4 * teacher['params'] / 1024:.0f} KiB | {100 * teacher['test_accuracy']:.1f} |",
             f"| student {STUDENT[0]} float, widths 8-16-32/64, from scratch | {student_params:,} | "
             f"{4 * student_params / 1024:.0f} KiB | "
             f"{_fmt(report['scratch']['accuracy'])} |",
             f"| student, distilled | {student_params:,} | {4 * student_params / 1024:.0f} KiB | "
             f"{_fmt(report['distilled']['accuracy'])} |",
             f"| distilled student, QAT int8 .tflite (seed {seeds[0]}, {args.qat_epochs} QAT epoch) | "
             f"{student_params:,} | {q['tflite_bytes'] / 1024:.0f} KiB | {100 * q['qat_tflite_accuracy']:.1f} "
             f"(float {100 * q['float_keras_accuracy']:.1f}, PTQ int8 {100 * q['ptq_int8_tflite_accuracy']:.1f}) |"]
    table = "\n".join(lines)
    with open(os.path.join(args.out_dir, "distill_table.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)
    print(f"\nTotal {report['seconds']:.0f} s; JSON: {os.path.join(args.out_dir, 'distill_report.json')}")


if __name__ == "__main__":
    main()
