"""Held-out digits accuracy of one small variant per vision family, float and int8.

Each family's CIFAR-layout variant, shrunk to CPU size (fewer blocks, narrower; the block
design is the paper's), trains on scikit-learn's handwritten digits upscaled to 32x32x3
through the shared loop, then goes through the export stage (full-integer PTQ, verified
in LiteRT). One table, written to ``JOB_DIR/vision_report.md``:

    python tools/vision_report.py [--job_dir=runs/vision_report] [--epochs=15] [--precise_bn_batches=20]
                                  [--only=mobilenet,...]
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # train and convert in one runtime (tf_keras)

import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from export.report import markdown_table, write_atomic  # noqa: E402
from export.convert import ExportError  # noqa: E402
from export.tflite import export_model  # noqa: E402
from keras_zoo import create_model  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("job_dir", "runs/vision_report", "Where the runs and the table go.")
flags.DEFINE_integer("epochs", 15, "Training epochs per model (the digits train split is ~1.1k images).")
flags.DEFINE_integer("precise_bn_batches", 20, "Recompute BatchNorm statistics over this many training batches "
                     "after training (precise BN; short runs leave momentum-0.99 averages stale). 0: off.")
flags.DEFINE_list("only", None, "Registry names to run (default: all rows of SMALL_VARIANTS).")

_DIGITS = dict(input_shape=(32, 32, 3), classes=10)

# Registry name -> builder overrides: the family's own blocks at CPU size.
SMALL_VARIANTS = {
    "stochastic_depth_resnet110": dict(blocks_per_stage=3, filters=(16, 32, 64)),  # ResNet-20 depth
    "fractalnet20_cifar10": dict(filters=(16, 32, 64), num_columns=3, dropout_rates=(0.0, 0.1, 0.2)),
    "ror3_preact_resnet110": dict(blocks_per_stage=3),
    "densenet_bc_100_k12": dict(blocks=(4, 4, 4), growth_rate=12),  # DenseNet-BC-40
    "resnext29_8x64d": dict(blocks=(1, 1, 1), cardinality=8, group_width=4, stem_filters=16, filters=32),
    "squeezenet1_1": dict(classifier_relu=False),  # see the README: conv10 sees a 1x1 map at 32x32
    "mobilenet": dict(alpha=0.25),
}


def _row(name, trained, report, seconds):
    verification = report.get("verification", {})
    return {
        "model": name,
        "params": trained.get("params"),
        "float acc (Keras)": trained["test"].get("accuracy"),
        "int8 acc (.tflite)": verification.get("tflite_accuracy"),
        "top-1 agreement": verification.get("top1_agreement"),
        "int8 KB": round(report.get("size_bytes", 0) / 1024, 1),
        "verified": report.get("passed"),
        "train+export s": round(seconds, 1),
    }


def main(argv):
    del argv
    names = FLAGS.only or list(SMALL_VARIANTS)
    unknown = sorted(set(names) - set(SMALL_VARIANTS))
    if unknown:
        raise app.UsageError(f"--only takes names from {list(SMALL_VARIANTS)}. Received: {unknown}")
    rows = []
    for name in names:
        model_dir = os.path.join(FLAGS.job_dir, name)
        print(f"\n=== {name}: training on digits, then int8 export ===", flush=True)
        start = time.perf_counter()
        trained = train_and_evaluate(dict(model=name, dataset="digits", overrides={**SMALL_VARIANTS[name], **_DIGITS},
                                          epochs=FLAGS.epochs, batch_size=32, learning_rate=1e-3,
                                          optimizer="adam", verbose=2,
                                          task_options={"precise_bn_batches": FLAGS.precise_bn_batches}),
                                     model_dir)
        trained["params"] = create_model(name, **SMALL_VARIANTS[name], **_DIGITS).count_params()
        try:
            report = export_model(model_dir=model_dir, quantization="int8", edgetpu_check=False,
                                  output=os.path.join(model_dir, "tflite_int8"), num_verify=270)
        except ExportError as err:
            report = {"passed": False, "verification": {}, "error": str(err)}
        rows.append(_row(name, trained, report, time.perf_counter() - start))
        print(markdown_table(rows[-1:]), flush=True)
    table = markdown_table(rows)
    os.makedirs(FLAGS.job_dir, exist_ok=True)
    write_atomic(os.path.join(FLAGS.job_dir, "vision_report.md"), table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    app.run(main)
