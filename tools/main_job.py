"""The main job: train -> QAT -> int8 TFLite -> Edge TPU report -> verify, on embedded real data.

Two models, both offline on a fresh machine:
- ``qrnn_lm_char`` on English prose from the Python standard library's docstrings:
  held-out bits/char against a unigram baseline, and text sampled from the int8 .tflite;
- a small image classifier (``mobilenet`` at alpha 0.25) on scikit-learn's handwritten digits.

    python tools/main_job.py [--job_dir=runs/main_job] [--lm_epochs=6] [--qat_epochs=1]

Prints one summary table and writes it to ``JOB_DIR/summary.json`` and ``summary.md``.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # train, QAT and convert in one runtime (tf_keras)

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from export.report import markdown_table, write_atomic  # noqa: E402
from export.tflite import export_model  # noqa: E402
from export.verify import TFLiteRunner  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("job_dir", "runs/main_job", "Where the model directories and the summary go.")
flags.DEFINE_integer("lm_epochs", 6, "Training epochs of the QRNN language model.")
flags.DEFINE_integer("lm_steps", 100, "Steps per epoch of the QRNN language model.")
flags.DEFINE_integer("vision_epochs", 20, "Training epochs of the digits classifier.")
flags.DEFINE_integer("qat_epochs", 1, "Epochs of quantization-aware fine-tuning of each model.")
flags.DEFINE_integer("sample_chars", 300, "Characters sampled from the int8 .tflite.")

# The paper's architecture at CPU size: 2 x 256-unit fo-QRNN, window 2, zoneout 0.1 (arXiv:1611.01576 §3.2).
LM_RUN = dict(model="qrnn_lm_char", overrides=dict(seq_len=100, embedding_dim=64, units=256, dropout=0.1),
              batch_size=32, learning_rate=3e-3, optimizer="adam")
# MobileNet v1 (arXiv:1704.04861) at alpha 0.25 and 32x32 on the digits, upscaled and replicated to
# 3 channels. (SqueezeNet 1.1 at this size stayed at chance: its ReLU before the global pool died.)
VISION_RUN = dict(model="mobilenet", overrides=dict(input_shape=(32, 32, 3), alpha=0.25, classes=10),
                  batch_size=32, learning_rate=1e-3, optimizer="adam")


def _stage(message):
    print(f"\n=== {message} ===", flush=True)


def sample_from_tflite(tflite_path, vocab, prompt, num_chars, temperature=0.7, seed=0):
    """Samples text from a single-step language model .tflite with explicit state inputs."""
    with open(tflite_path, "rb") as f:
        runner = TFLiteRunner(f.read())
    index = {token: i for i, token in enumerate(vocab)}
    ids = [index.get(ch, 1) for ch in prompt]
    states = [np.zeros(runner.input_details[name]["shape"], np.float32) for name in runner.input_names[1:]]
    rng = np.random.default_rng(seed)
    for position in range(len(ids) + num_chars - 1):
        logits, *states = runner([np.array([[ids[position]]], np.int32), *states])
        if position + 1 < len(ids):
            continue
        scaled = logits.reshape(-1).astype(np.float64) / temperature
        probabilities = np.exp(scaled - scaled.max())
        ids.append(int(rng.choice(len(probabilities), p=probabilities / probabilities.sum())))
    return "".join(vocab[i] if len(vocab[i]) == 1 else "" for i in ids)


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _row(name, trained, report, metric_key):
    metrics = report.get("qat", {}).get("metrics", {})
    edgetpu = report.get("edgetpu", {})
    first_cpu = edgetpu.get("first_cpu_op") or {}
    return {
        "model": name,
        "metric": metric_key,
        "float (Keras)": metrics.get("float_keras", {}).get(metric_key),
        "int8 PTQ (.tflite)": metrics.get("ptq_int8_tflite", {}).get(metric_key),
        "int8 QAT (.tflite)": metrics.get("qat_tflite", {}).get(metric_key),
        "top-1 agreement": report.get("verification", {}).get("top1_agreement"),
        "size KB": round(report.get("size_bytes", 0) / 1024, 1),
        "latency ms (1 thread)": report.get("latency_ms", {}).get("1_thread"),
        "Edge TPU mapped": edgetpu.get("mapped_share"),
        "first CPU op": first_cpu.get("op", "-"),
        "verified": report.get("passed"),
        "train s": round(trained["seconds"], 1),
    }


def _train(run, model_dir, epochs, steps):
    start = time.perf_counter()
    result = train_and_evaluate({**run, "epochs": epochs, "steps_per_epoch": steps}, model_dir)
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv):
    del argv
    os.makedirs(FLAGS.job_dir, exist_ok=True)
    lm_dir, vision_dir = os.path.join(FLAGS.job_dir, "qrnn_lm_char"), os.path.join(FLAGS.job_dir, "digits_mobilenet")

    _stage("1/4 training qrnn_lm_char on the docstring corpus")
    lm = _train(LM_RUN, lm_dir, FLAGS.lm_epochs, FLAGS.lm_steps)
    with open(os.path.join(lm_dir, "metrics.json")) as f:
        lm_metrics = json.load(f)
    unigram = lm_metrics["baselines"].get("unigram_baseline_bits_per_token_test")

    _stage("2/4 QAT -> int8 TFLite -> Edge TPU report -> verification (qrnn_lm_char, single step)")
    lm_report = export_model(model_dir=lm_dir, quantization="qat", edgetpu_check=True,
                             qat_epochs=FLAGS.qat_epochs, steps_per_epoch=50, output=os.path.join(lm_dir, "tflite"))
    sample = sample_from_tflite(lm_report["tflite_file"], _read_lines(os.path.join(lm_dir, "vocab.txt")),
                                prompt="Return the ", num_chars=FLAGS.sample_chars)

    _stage("3/4 training mobilenet (alpha 0.25) on the handwritten digits")
    vision = _train(VISION_RUN, vision_dir, FLAGS.vision_epochs, None)

    _stage("4/4 QAT -> int8 TFLite -> Edge TPU report -> verification (mobilenet)")
    vision_report = export_model(model_dir=vision_dir, quantization="qat", edgetpu_check=True,
                                 qat_epochs=FLAGS.qat_epochs, output=os.path.join(vision_dir, "tflite"))

    rows = [_row("qrnn_lm_char", lm, lm_report, "bits_per_token"),
            _row("mobilenet_0.25 (digits)", vision, vision_report, "accuracy")]
    summary = {
        "rows": rows,
        "qrnn_lm_char": {"test_bits_per_char": lm["test"].get("bits_per_token"),
                         "unigram_bits_per_char": unigram, "sample_from_int8_tflite": sample},
        "digits_test_accuracy": vision["test"].get("accuracy"),
    }
    table = markdown_table(rows)
    write_atomic(os.path.join(FLAGS.job_dir, "summary.json"), json.dumps(summary, indent=2, default=str))
    write_atomic(os.path.join(FLAGS.job_dir, "summary.md"), table + "\n")
    _stage("summary")
    print(table)
    print(f"\nqrnn_lm_char held-out bits/char: {summary['qrnn_lm_char']['test_bits_per_char']} "
          f"(unigram baseline: {unigram})")
    print(f"Sample from the int8 .tflite (prompt 'Return the '):\n{sample}\n")
    print(f"Outputs: {os.path.abspath(FLAGS.job_dir)} (curves.png, export_report.json, model.tflite per model)")
    return 0 if all(row["verified"] for row in rows) else 1


if __name__ == "__main__":
    app.run(main)
