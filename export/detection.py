"""SSD detectors to TFLite with the standard detection post-processing op.

The exported graph ends in TFLite's custom op ``TFLite_Detection_PostProcess`` (box
decoding with the SSD scale factors, score threshold and NMS), whose four outputs are
what Android's Task Library ``ObjectDetector`` reads, in this order:

- ``boxes`` float32 ``[1, max_detections, 4]`` normalized ``(ymin, xmin, ymax, xmax)``;
- ``classes`` float32 ``[1, max_detections]`` (0-based, background removed);
- ``scores`` float32 ``[1, max_detections]``;
- ``num_detections`` float32 ``[1]``.

TensorFlow has no kernel for that op, so the graph calls an empty ``tf.function``
whose ``experimental_implements`` attribute names the op and its attributes; the
converter replaces the call with the custom op (the TF Object Detection API's TF2
TFLite export does the same). ``ai_edge_litert`` ships the kernel.

Verification runs the .tflite in ai_edge_litert and the Keras model with
``ssd_utils.postprocess`` (same thresholds, detection count and NMS flavour: class-agnostic
for the op's default fast NMS) on held-out images and reports VOC mAP@0.5 and COCO mAP
of both, and their difference.
"""
import gzip
import os
import tempfile

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from export import convert, report as report_lib, verify
from export.convert import ExportError
from keras_zoo.backend import IS_LEGACY_KERAS
from keras_zoo.layers import ssd_utils
from keras_zoo.metrics.detection import detection_metrics

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
NUM_REPRESENTATIVE = 100
#: Largest mAP drop (VOC mAP@0.5, absolute) that passes, per quantization mode.
MAX_MAP_DROP = {"float32": 0.01, "float16": 0.01, "dynamic": 0.05, "int8": 0.05}


def implements_signature(num_classes, max_detections=10, use_regular_nms=False, score_threshold=1e-8,
                         iou_threshold=0.6, scale_factors=ssd_utils.SCALE_FACTORS, detections_per_class=100):
    """The ``experimental_implements`` text (a NameAttrList proto) that the converter fuses into the op."""
    y_scale, x_scale, h_scale, w_scale = scale_factors
    attrs = [
        ("max_detections", "i", int(max_detections)),
        ("max_classes_per_detection", "i", 1),
        ("detections_per_class", "i", int(detections_per_class)),
        ("use_regular_nms", "b", str(bool(use_regular_nms)).lower()),
        ("nms_score_threshold", "f", float(score_threshold)),
        ("nms_iou_threshold", "f", float(iou_threshold)),
        ("y_scale", "f", float(y_scale)), ("x_scale", "f", float(x_scale)),
        ("h_scale", "f", float(h_scale)), ("w_scale", "f", float(w_scale)),
        ("num_classes", "i", int(num_classes)),
    ]
    return " ".join([f'name: "{POSTPROCESS_OP}"'] +
                    [f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}' for key, kind, value in attrs])


def serving_function(model, anchors, input_shape, **postprocess):
    """A batch-1 ``tf.function``: image -> (boxes, classes, scores, num_detections) via the custom op."""
    num_classes = int(model.outputs[1].shape[-1]) - 1

    @tf.function(experimental_implements=implements_signature(num_classes, **postprocess))
    def detection_postprocess(box_encodings, class_predictions, anchors):
        # Never run: the converter replaces this function by the custom op; these only fix the arity.
        del box_encodings, class_predictions, anchors
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    anchor_table = tf.constant(np.asarray(anchors, np.float32), name="anchors")

    @tf.function(input_signature=[tf.TensorSpec([1, *input_shape], tf.float32, name="image")])
    def serve(image):
        box_encodings, class_logits = model(image, training=False)
        scores = tf.nn.softmax(class_logits, axis=-1)
        return detection_postprocess(box_encodings, scores, anchor_table)

    return serve.get_concrete_function()


def convert_detector(model, anchors, quantization="int8", representative_images=None, **postprocess):
    """TFLite bytes of ``model`` + ``TFLite_Detection_PostProcess``.

    ``int8`` is full-integer PTQ of the network (int8 image input, calibrated on
    ``representative_images``, a list of ``[1, H, W, C]`` arrays); the custom op reads
    the int8 box encodings and scores and returns float outputs.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"Detection export supports --quantization in {QUANTIZATIONS}. "
                          f"Received: quantization={quantization!r}")
    if not IS_LEGACY_KERAS:
        raise ExportError("Detection export runs under tf_keras: with Keras 3 models the converter keeps the "
                          "weights as uninitialized variables once the post-processing composite function is "
                          "in the graph. Use the export CLI's default runtime or set TF_USE_LEGACY_KERAS=1 "
                          "(a Keras 3 model.keras is rebuilt there by export.qat.bridge_keras3_model). "
                          "Received: Keras 3")
    function = serving_function(model, anchors, tuple(model.inputs[0].shape[1:]), **postprocess)
    # Through a SavedModel, as the OD API's TF2 export.
    module = tf.Module()
    module.model = model
    with tempfile.TemporaryDirectory() as saved_model:
        tf.saved_model.save(module, saved_model, signatures=function)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        content = _run_converter(converter, quantization, representative_images)
    ops = {op.name for op in convert.read_graph(content).ops}
    if POSTPROCESS_OP not in ops:
        raise ExportError(f"The converter did not fuse the post-processing function into {POSTPROCESS_OP} "
                          f"(ops: {sorted(ops)}); this TensorFlow version may not legalize "
                          f"experimental_implements. Received: TensorFlow {tf.__version__}")
    return outputs_in_android_order(content)


#: Names of the post-processing op's outputs, in its (and Android's) order, as the OD API names them.
OUTPUT_NAMES = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")


def outputs_in_android_order(content):
    """Makes the model's outputs the post-processing op's outputs, in the op's order.

    The converter orders a SavedModel's outputs by tensor name (here: classes, count, boxes,
    scores), while Android code without metadata reads output tensor 0 as boxes, 1 as
    classes, 2 as scores and 3 as the count. The signature keeps mapping ``output_N`` to
    the same tensors, so signature runners are unaffected.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    subgraph = model.subgraphs[0]
    code = next(i for i, c in enumerate(model.operatorCodes)
                if c.customCode is not None and bytes(c.customCode).decode() == POSTPROCESS_OP)
    op = next(o for o in subgraph.operators if o.opcodeIndex == code)
    subgraph.outputs = list(op.outputs)
    for index, name in zip(op.outputs, OUTPUT_NAMES):
        subgraph.tensors[index].name = name
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _run_converter(converter, quantization, representative_images):
    converter.allow_custom_ops = True
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if not representative_images:
            raise ExportError("int8 detection export needs representative images from the model's data.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in representative_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
    try:
        return converter.convert()
    except Exception as err:  # the converter raises several unrelated types
        raise ExportError(convert.explain_conversion_error(err, quantization, False)) from err


def tflite_predictor(content):
    """``images -> (boxes, scores, classes, count)`` of an exported detector, one image at a time."""
    runner = verify.TFLiteRunner(content)

    def predict(images):
        results = [runner([np.asarray(image)[None]]) for image in images]
        boxes, classes, scores, count = (np.concatenate([r[k] for r in results]) for k in range(4))
        return boxes, scores, classes.astype(np.int64), count.astype(np.int64)

    return predict


def export_detection(model, config, data, output_dir, quantization="int8", max_detections=10,
                     use_regular_nms=False, score_threshold=1e-8, iou_threshold=0.6, num_verify=100,
                     labels=None, log=print):
    """Exports a trained SSD model, verifies it against Keras and writes the files.

    Args:
        model: raw SSD model (``keras_zoo.models.ssd``), ``config`` its builder config.
        data: DatasetBundle of the model's detection data (train: calibration, test: verification).
        output_dir: gets ``model.tflite``, ``labels.txt`` and ``export_report.json``.
        max_detections, use_regular_nms, score_threshold, iou_threshold: the post-processing
            op's attributes (the OD API's defaults: 10 detections, fast class-agnostic NMS).
        num_verify: held-out images scored for mAP.

    Returns:
        The report dict; ``passed`` is False when the VOC mAP@0.5 drops by more than
        ``MAX_MAP_DROP[quantization]``.
    """
    from keras_zoo.models import ssd
    from training.tasks_detection import keras_predictor, run_detector

    anchors = ssd.model_anchors(model, config)
    post = dict(max_detections=max_detections, use_regular_nms=use_regular_nms, score_threshold=score_threshold,
                iou_threshold=iou_threshold)
    representative = []
    for images, _ in data.train.unbatch().batch(1).take(NUM_REPRESENTATIVE):
        representative.append(np.asarray(images, np.float32))
    log(f"converting ({quantization}, {POSTPROCESS_OP})")
    content = convert_detector(model, anchors, quantization, representative, **post)
    graph = convert.read_graph(content)

    log(f"verifying on {num_verify} held-out images")
    test = data.test.unbatch().take(num_verify).batch(16)
    keras_post = dict(max_detections=max_detections, iou_threshold=iou_threshold, score_threshold=score_threshold,
                      class_agnostic=not use_regular_nms)
    _, truth, keras_detections = run_detector(keras_predictor(model, anchors, **keras_post), test)
    _, _, lite_detections = run_detector(tflite_predictor(content), test)
    keras_metrics = detection_metrics(*truth, *keras_detections)
    lite_metrics = detection_metrics(*truth, *lite_detections)
    delta = {k: lite_metrics[k] - keras_metrics[k] for k in keras_metrics}
    passed = delta["voc_map_50"] >= -MAX_MAP_DROP[quantization]
    report = {
        "model": model.name, "task": "detection", "quantization": quantization, "postprocess": post,
        "size_bytes": len(content), "gzip_size_bytes": len(gzip.compress(content)),
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in graph.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in graph.outputs],
        "op_counts": {name: sum(op.name == name for op in graph.ops) for name in sorted({op.name for op in graph.ops})},
        "verification": {"num_images": len(truth[0]), "keras": keras_metrics, "tflite": lite_metrics,
                         "metric_delta": delta, "max_voc_map_drop": MAX_MAP_DROP[quantization], "passed": passed},
        "latency_ms": verify.latency(content, [representative[0]]),
        "passed": passed,
    }
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, "model.tflite" if passed else "model.FAILED_VERIFICATION.tflite")
    report["tflite_file"] = tflite_path
    report_lib.write_atomic(tflite_path, content)
    if labels:
        report_lib.write_atomic(os.path.join(output_dir, "labels.txt"), "\n".join(map(str, labels)) + "\n")
    report_lib.write_json(os.path.join(output_dir, "export_report.json"), report)
    log(f"VOC mAP@0.5 keras {keras_metrics['voc_map_50']:.4f} tflite {lite_metrics['voc_map_50']:.4f} "
        f"(delta {delta['voc_map_50']:+.4f}); COCO mAP keras {keras_metrics['coco_map']:.4f} "
        f"tflite {lite_metrics['coco_map']:.4f}; {len(content)} bytes -> {tflite_path}")
    return report
