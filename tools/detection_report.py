"""Held-out mAP of SSD-MobileNet on the digit canvases, Keras float and int8 TFLite.

Trains ``ssd_mobilenet`` with ``ssd.DIGIT_CANVAS_CONFIG`` (default boxes fitted to 64x64
canvases of 16-24 px digits) on ``digit_canvases_det`` through the shared loop (precise
BN after training), exports it through the export stage (full-integer PTQ ending in
``TFLite_Detection_PostProcess``), and scores both on the same held-out canvases with the
exported post-processing (class-agnostic NMS, 10 detections): VOC mAP@0.5 and COCO
mAP@[.5:.95]. Writes ``JOB_DIR/detection_report.md`` (the table) and
``JOB_DIR/detections_int8.png`` (int8 .tflite detections on held-out canvases):

    python tools/detection_report.py [--job_dir=runs/detection_report] [--steps=1500] [--learning_rate=3e-3]
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # train and convert in one runtime (tf_keras)

import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from export.detection import tflite_predictor  # noqa: E402
from export.report import markdown_table, write_atomic  # noqa: E402
from export.tflite import export_model  # noqa: E402
from keras_zoo import create_model  # noqa: E402
from keras_zoo.data import load_dataset  # noqa: E402
from keras_zoo.models import ssd  # noqa: E402
from keras_zoo.registry import InputSpec  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402
from training.tasks_detection import draw_detections, run_detector  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("job_dir", "runs/detection_report", "Where the run, the .tflite, the table and the PNG go.")
flags.DEFINE_integer("steps", 1500, "Training steps (batches); the train split is 4,000 canvases.")
flags.DEFINE_integer("steps_per_epoch", 250, "Steps between validation passes.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate (constant).")
flags.DEFINE_integer("precise_bn_batches", 20, "Recompute BatchNorm statistics over this many training batches "
                     "after training (precise BN). 0: keep the momentum-0.99 moving averages.")
flags.DEFINE_integer("num_eval", 400, "Held-out canvases scored (the test split has 400).")
flags.DEFINE_integer("picture_images", 12, "Held-out canvases drawn in detections_int8.png.")

MODEL = "ssd_mobilenet"
DATASET = "digit_canvases_det"


def draw_int8_detections(tflite_file, path, count, labels):
    """Draws the .tflite's detections on the first ``count`` held-out canvases."""
    with open(tflite_file, "rb") as f:
        content = f.read()
    bundle = load_dataset(DATASET, task="detection", input_specs=[InputSpec(ssd.DIGIT_CANVAS_CONFIG["input_shape"])],
                          batch_size=count)
    images, truth, detections = run_detector(tflite_predictor(content), bundle.test.take(1), count)
    draw_detections(path, images, truth, detections, labels, title="int8 .tflite detections on held-out canvases")
    return path


def main(argv):
    del argv
    if FLAGS.steps < FLAGS.steps_per_epoch or FLAGS.steps % FLAGS.steps_per_epoch:
        raise app.UsageError(f"--steps must be a positive multiple of --steps_per_epoch ({FLAGS.steps_per_epoch}). "
                             f"Received: --steps={FLAGS.steps}")
    model_dir = os.path.join(FLAGS.job_dir, MODEL)
    start = time.perf_counter()
    trained = train_and_evaluate(dict(
        model=MODEL, dataset=DATASET, overrides=dict(ssd.DIGIT_CANVAS_CONFIG),
        epochs=FLAGS.steps // FLAGS.steps_per_epoch, steps_per_epoch=FLAGS.steps_per_epoch, validation_steps=5,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, optimizer="adam", verbose=2,
        task_options={"det_precise_bn_batches": FLAGS.precise_bn_batches,
                      "detection_eval_images": FLAGS.num_eval}), model_dir)
    train_seconds = time.perf_counter() - start
    report = export_model(model_dir=model_dir, quantization="int8", output=os.path.join(model_dir, "tflite_int8"),
                          num_verify=FLAGS.num_eval)
    verification = report["verification"]
    keras_metrics, lite_metrics = verification["keras"], verification["tflite"]
    labels = [str(d) for d in range(10)]
    picture = draw_int8_detections(report["tflite_file"], os.path.join(FLAGS.job_dir, "detections_int8.png"),
                                   FLAGS.picture_images, labels)
    row = {
        "model": MODEL,
        "params": create_model(MODEL, **ssd.DIGIT_CANVAS_CONFIG, classes=10).count_params(),
        "float mAP@0.5": keras_metrics["voc_map_50"],
        "int8 mAP@0.5": lite_metrics["voc_map_50"],
        "float mAP@[.5:.95]": keras_metrics["coco_map"],
        "int8 mAP@[.5:.95]": lite_metrics["coco_map"],
        "int8 KB": round(report["size_bytes"] / 1024, 1),
        "int8 ms (1 thread)": round(report["latency_ms"]["1_thread"], 2),
        "verified": report["passed"],
        "train+eval s": round(train_seconds, 1),
    }
    table = markdown_table([row])
    notes = (f"{verification['num_images']} held-out canvases (test split); both scored after "
             f"TFLite_Detection_PostProcess-style decoding (class-agnostic NMS, IoU 0.6, 10 detections). "
             f"Training-time per-class NMS (100 detections): VOC mAP@0.5 {trained['task']['voc_map_50']:.4f}, "
             f"COCO mAP {trained['task']['coco_map']:.4f}. {FLAGS.steps} steps x {FLAGS.batch_size}, Adam "
             f"{FLAGS.learning_rate:g}, precise BN over {FLAGS.precise_bn_batches} batches; default-box coverage "
             f"{trained['task'].get('default_box_coverage')}. Picture: {picture}")
    os.makedirs(FLAGS.job_dir, exist_ok=True)
    write_atomic(os.path.join(FLAGS.job_dir, "detection_report.md"), table + "\n\n" + notes + "\n")
    print("\n" + table + "\n\n" + notes)


if __name__ == "__main__":
    app.run(main)
