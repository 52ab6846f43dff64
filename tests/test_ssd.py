"""SSD (arXiv:1512.02325): default boxes, box coding, matching, mining and loss against NumPy
transcriptions of the paper; detection metrics against pycocotools and a VOC worked example;
the detection datasets; a tiny training run; the TFLite export with TFLite_Detection_PostProcess.
"""
import math
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

import keras_zoo
from keras_zoo.layers import ssd_utils
from keras_zoo.metrics import detection as metrics
from keras_zoo.models import ssd
from keras_zoo.registry import InputSpec

both = pytest.mark.both


def _random_boxes(rng, shape, low=0.05, high=0.5):
    y, x = rng.uniform(0, 0.5, shape), rng.uniform(0, 0.5, shape)
    h, w = rng.uniform(low, high, shape), rng.uniform(low, high, shape)
    return np.stack([y, x, y + h, x + w], -1).astype("float32")


def _np_iou(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            inter = max(0, min(p[2], q[2]) - max(p[0], q[0])) * max(0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


# --- default boxes -------------------------------------------------------------------------------

@both
def test_scales_follow_equation_4():
    # s_k = s_min + (s_max - s_min)(k - 1)/(m - 1) with the paper's s_min = 0.2, s_max = 0.9, m = 6.
    np.testing.assert_allclose(ssd_utils.anchor_scales(6, 0.2, 0.9), [0.2, 0.34, 0.48, 0.62, 0.76, 0.9], atol=1e-12)


@both
def test_default_boxes_match_the_paper():
    sizes, s_min, s_max = [(3, 3), (2, 2)], 0.2, 0.9
    anchors = ssd_utils.generate_anchors(sizes, s_min, s_max, reduce_boxes_in_lowest_layer=False)
    expected = []
    scales = [s_min, s_max, 1.0]
    for k, (f, _) in enumerate(sizes):
        for i in range(f):
            for j in range(f):
                for a in (1.0, 2.0, 3.0, 0.5, 1 / 3):
                    expected.append(((i + 0.5) / f, (j + 0.5) / f, scales[k] / math.sqrt(a), scales[k] * math.sqrt(a)))
                extra = math.sqrt(scales[k] * scales[k + 1])
                expected.append(((i + 0.5) / f, (j + 0.5) / f, extra, extra))
    np.testing.assert_allclose(anchors, np.array(expected), atol=1e-6)
    reduced = ssd_utils.generate_anchors([(1, 1)], s_min, s_max, reduce_boxes_in_lowest_layer=True)
    s = s_min
    np.testing.assert_allclose(reduced, [[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, s / math.sqrt(2), s * math.sqrt(2)],
                                         [0.5, 0.5, s * math.sqrt(2), s / math.sqrt(2)]], atol=1e-6)


@both
def test_model_predicts_one_output_per_default_box():
    info = keras_zoo.model_info("ssd_mobilenet")
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    anchors = ssd.model_anchors(model, config)
    assert model.outputs[0].shape[1:] == (anchors.shape[0], 4)
    assert model.outputs[1].shape[1:] == (anchors.shape[0], config["classes"] + 1)
    # 3 boxes in the lowest layer, 6 elsewhere, on the feature maps read from the model.
    sizes = ssd.feature_map_sizes(model)
    assert anchors.shape[0] == sum(h * w * (3 if k == 0 else 6) for k, (h, w) in enumerate(sizes))


@both
def test_full_size_feature_maps():
    model = keras_zoo.create_model("ssd_mobilenet")
    # OD API: 19, 10, 5, 3, 2, 1 with SAME padding; keras.applications' MobileNet padding gives 18 first.
    assert ssd.feature_map_sizes(model) == [(18, 18), (9, 9), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert model.outputs[1].shape[1:] == (1692, 91)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="classes"):
        keras_zoo.create_model("ssd_mobilenet", tiny=True, classes=0)
    with pytest.raises(ValueError, match="static"):
        keras_zoo.create_model("ssd_mobilenet", tiny=True, input_shape=(None, None, 1))


# --- box coding, matching, mining, loss ----------------------------------------------------------

@both
def test_encoding_matches_equation_2_and_round_trips():
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, (50,))
    anchors = np.stack([rng.uniform(0.2, 0.8, 50), rng.uniform(0.2, 0.8, 50),
                        rng.uniform(0.1, 0.5, 50), rng.uniform(0.1, 0.5, 50)], -1).astype("float32")
    cy, cx = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    variances = (0.1, 0.1, 0.2, 0.2)
    expected = np.stack([(cy - anchors[:, 0]) / anchors[:, 2] / variances[0],
                         (cx - anchors[:, 1]) / anchors[:, 3] / variances[1],
                         np.log(h / anchors[:, 2]) / variances[2], np.log(w / anchors[:, 3]) / variances[3]], -1)
    encoded = ssd_utils.encode_boxes(boxes, anchors).numpy()
    np.testing.assert_allclose(encoded, expected, atol=1e-4)
    np.testing.assert_allclose(ssd_utils.decode_boxes(encoded, anchors).numpy(), boxes, atol=1e-5)


def _np_match(gt, valid, anchors_corners, threshold):
    iou = _np_iou(gt, anchors_corners)
    iou[~valid] = -1
    matched = np.where(iou.max(0) >= threshold, iou.argmax(0), -1)
    for g in range(len(gt)):  # each ground truth keeps its best default box; the first claim wins
        if valid[g]:
            best = iou[g].argmax()
            if not any(valid[e] and iou[e].argmax() == best for e in range(g)):
                matched[best] = g
    return matched


@both
def test_matching_against_numpy():
    rng = np.random.default_rng(1)
    anchors = ssd_utils.generate_anchors([(4, 4), (2, 2), (1, 1)])
    corners = ssd_utils.center_to_corners(anchors).numpy()
    gt = _random_boxes(rng, (3, 4), 0.1, 0.5)
    classes = np.array([[1, 2, -1, -1], [0, 3, 4, 5], [-1, -1, -1, -1]], "int32")
    matched = ssd_utils.match_anchors(gt, classes >= 0, anchors, 0.5).numpy()
    for b in range(3):
        np.testing.assert_array_equal(matched[b], _np_match(gt[b], classes[b] >= 0, corners, 0.5))
    assert np.all(matched[2] == -1)
    for b, n in ((0, 2), (1, 4)):
        assert set(range(n)) <= set(matched[b].tolist())  # every object has a default box
    box_targets, class_targets = ssd_utils.encode_targets(gt, classes, anchors)
    positive = matched >= 0
    np.testing.assert_array_equal(class_targets.numpy(), np.where(positive, np.take_along_axis(
        classes, np.maximum(matched, 0), 1) + 1, 0))
    np.testing.assert_allclose(box_targets.numpy()[~positive], 0, atol=1e-5)
    assert np.all(np.isfinite(box_targets.numpy()))


@both
def test_hard_negative_mining_against_numpy():
    rng = np.random.default_rng(2)
    losses = rng.uniform(0, 5, (3, 40)).astype("float32")
    positives = np.zeros((3, 40), bool)
    positives[0, [1, 5]] = True
    positives[1, :12] = True  # 36 wanted negatives, only 28 exist
    mask = ssd_utils.hard_negative_mask(losses, positives, 3.0).numpy()
    for b in range(3):
        negatives = np.flatnonzero(~positives[b])
        keep = min(3 * positives[b].sum(), len(negatives))
        chosen = negatives[np.argsort(-losses[b, negatives], kind="stable")[:keep]]
        np.testing.assert_array_equal(np.flatnonzero(mask[b]), np.sort(chosen))
    assert mask[0].sum() == 6 and mask[1].sum() == 28 and mask[2].sum() == 0


@both
def test_multibox_loss_against_numpy():
    rng = np.random.default_rng(3)
    batch, count, classes = 2, 30, 4
    logits = rng.normal(size=(batch, count, classes + 1)).astype("float32")
    predictions = rng.normal(size=(batch, count, 4)).astype("float32")
    box_targets = rng.normal(size=(batch, count, 4)).astype("float32") * 2
    class_targets = np.zeros((batch, count), "int32")
    class_targets[0, [0, 3]] = [2, 4]
    class_targets[1, [7]] = [1]
    total, loc, conf = (t.numpy() for t in ssd_utils.multibox_loss(predictions, logits, box_targets, class_targets))
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(log_softmax, class_targets[..., None], -1)[..., 0]
    positives = class_targets > 0
    conf_sum, loc_sum = 0.0, 0.0
    for b in range(batch):
        negatives = np.flatnonzero(~positives[b])
        hard = negatives[np.argsort(-ce[b, negatives], kind="stable")[:3 * positives[b].sum()]]
        conf_sum += ce[b, positives[b]].sum() + ce[b, hard].sum()
        diff = np.abs(predictions[b] - box_targets[b])
        loc_sum += np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)[positives[b]].sum()
    n = positives.sum()
    np.testing.assert_allclose([conf, loc, total], [conf_sum / n, loc_sum / n, (conf_sum + loc_sum) / n], rtol=1e-5)


@both
def test_postprocess_applies_per_class_nms():
    anchors = np.array([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]], "float32")
    encodings = np.zeros((1, 3, 4), "float32")  # boxes equal to the default boxes
    logits = np.full((1, 3, 3), -10.0, "float32")
    logits[0, 0, 1], logits[0, 1, 1], logits[0, 2, 2] = 10.0, 9.0, 8.0  # two overlapping class-0 boxes
    boxes, scores, classes, count = ssd_utils.postprocess(encodings, logits, anchors, max_detections=5,
                                                          score_threshold=0.5)
    assert int(count[0]) == 2
    np.testing.assert_array_equal(classes[0, :2], [0, 1])
    np.testing.assert_allclose(boxes[0, 0], [0.2, 0.2, 0.4, 0.4], atol=1e-6)
    np.testing.assert_allclose(boxes[0, 1], [0.6, 0.6, 0.8, 0.8], atol=1e-6)
    layer = ssd_utils.SSDPostProcess([(1, 1)], max_detections=5)
    assert ssd_utils.SSDPostProcess.from_config(layer.get_config()).get_config() == layer.get_config()


@both
def test_class_agnostic_postprocess_keeps_one_class_per_box():
    # The fast NMS of TFLite_Detection_PostProcess: overlapping boxes of different classes compete.
    anchors = np.array([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2]], "float32")
    logits = np.full((1, 2, 3), -10.0, "float32")
    logits[0, 0, 1], logits[0, 1, 2] = 10.0, 9.0
    encodings = np.zeros((1, 2, 4), "float32")
    per_class = ssd_utils.postprocess(encodings, logits, anchors, max_detections=5, score_threshold=0.5)
    agnostic = ssd_utils.postprocess(encodings, logits, anchors, max_detections=5, score_threshold=0.5,
                                     class_agnostic=True)
    assert int(per_class[3][0]) == 2 and int(agnostic[3][0]) == 1
    assert int(agnostic[2][0, 0]) == 0 and agnostic[0].shape == (1, 5, 4)


@both
def test_default_box_coverage_counts_objects_and_positives():
    anchors = np.array([[0.25, 0.25, 0.2, 0.2], [0.27, 0.25, 0.2, 0.2], [0.75, 0.75, 0.1, 0.1]], "float32")
    # Object 0 sits on default boxes 0 and 1 (IoU 1 and 0.82); object 1 overlaps only box 2, at IoU 0.25.
    boxes = np.array([[[0.15, 0.15, 0.35, 0.35], [0.65, 0.65, 0.85, 0.85], [0, 0, 0, 0]]], "float32")
    classes = np.array([[3, 1, -1]], "int32")
    coverage = ssd.default_box_coverage(boxes, classes, anchors, 0.5)
    assert coverage["objects"] == 2 and coverage["covered"] == 0.5
    assert coverage["positives_per_object"] == 1.5  # two boxes for object 0, the forced one for object 1
    assert coverage["median_best_iou"] == pytest.approx((1.0 + 0.25) / 2, abs=1e-6)


def _canvas_coverage(config):
    from keras_zoo.data.canvases import make_canvases

    canvases = make_canvases(300, "train", canvas_size=64, max_digits=3, seed=0)
    info = keras_zoo.model_info("ssd_mobilenet")
    config = info.resolved_config(**config)
    anchors = ssd.model_anchors(info.builder(**config), config)
    return ssd.default_box_coverage(canvases["boxes"], canvases["classes"], anchors)


@pytest.mark.keras3  # the anchor layout does not depend on the runtime
def test_digit_canvas_default_boxes_fit_the_digits():
    # Regression: trained at 64x64 with the 300x300 layout (4x4, 2x2 and four 1x1 maps), ~20% of the
    # 16-24 px digits overlapped a default box at IoU >= 0.5 and held-out mAP@0.5 stayed near 0.08.
    default = _canvas_coverage(dict(input_shape=(64, 64, 1), alpha=0.25, classes=10))
    assert default["covered"] < 0.3 and default["positives_per_object"] < 1.2
    fitted = _canvas_coverage(dict(ssd.DIGIT_CANVAS_CONFIG, classes=10))
    assert fitted["covered"] > 0.85 and fitted["positives_per_object"] > 2.5


def test_training_warns_when_default_boxes_miss_the_objects(caplog):
    import logging

    import tensorflow as tf
    from training.tasks_detection import training_coverage

    anchors = np.array([[0.5, 0.5, 0.9, 0.9]], "float32")
    boxes = np.array([[[0.1, 0.1, 0.2, 0.2]]] * 4, "float32")
    classes = np.zeros((4, 1), "int32")
    train = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 1), "float32"),
                                                {"boxes": boxes, "classes": classes})).batch(2)
    with caplog.at_level(logging.WARNING):
        coverage = training_coverage(train, anchors, 0.5)
    assert coverage == ssd.default_box_coverage(boxes, classes, anchors)
    assert coverage["objects"] == 4 and coverage["covered"] == 0.0
    assert "do not fit these objects" in caplog.text


@both
def test_precise_batch_norm_reaches_the_detector(small_canvases):
    # The trainer wraps the detector, so its own .layers hold no BatchNormalization layer.
    from keras_zoo.backend import keras
    from keras_zoo.data import load_dataset
    from training.tasks import get_task

    info = keras_zoo.model_info("ssd_mobilenet")
    config = info.resolved_config(tiny=True, classes=10)
    model = info.builder(**config)
    bundle = load_dataset("digit_canvases_det", task="detection", input_specs=info.inputs_for(config), batch_size=8)
    task = get_task("detection", {"det_precise_bn_batches": 2})
    trainer = task.prepare(model, config)
    task.compile(trainer, keras.optimizers.SGD(0.0), config)  # lr 0: the weights stay as built
    unshuffled = bundle.test  # precise BN and this test must read the same two batches
    task.fit(trainer, unshuffled, epochs=1, steps_per_epoch=1, verbose=0)
    stem = keras.Model(model.inputs, model.get_layer("conv1").output)
    batch_means = [np.asarray(stem(images)).mean(axis=(0, 1, 2)) for images, _ in unshuffled.take(2)]
    np.testing.assert_allclose(model.get_layer("conv1_bn").moving_mean.numpy(), np.mean(batch_means, 0),
                               rtol=1e-4, atol=1e-6)
    assert task.coverage["objects"] > 0


# --- metrics --------------------------------------------------------------------------------------

def test_box_iou():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]])
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    np.testing.assert_allclose(metrics.box_iou(a, b), [[1 / 7, 1, 0], [0, 0.25, 0]])


def test_voc_map_worked_example():
    # One class, 3 objects in 2 images; object B of image 0 is never found. Ranked detections:
    # .9 hits A (TP), .8 hits nothing (FP), .75 hits C (TP), .7 duplicates A (FP).
    # (recall, precision): (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2) -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]])]
    gt_classes = [np.array([0, 0]), np.array([0])]
    det_boxes = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    det_scores = [np.array([0.9, 0.8, 0.7]), np.array([0.75])]
    det_classes = [np.array([0, 0, 0]), np.array([0])]
    result = metrics.voc_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)
    assert result["map"] == pytest.approx(5 / 9)
    # IoU exactly 0.5 counts (the devkit's ovmax >= 0.5): [0, 0, 10, 5] against A.
    det_boxes[1] = np.array([[0, 0, 10, 5]])
    gt_boxes[1] = np.array([[0, 0, 10, 10]])
    assert metrics.voc_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)["map"] == pytest.approx(5 / 9)


def test_coco_map_matches_pycocotools():
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    rng = np.random.default_rng(4)
    gt_boxes, gt_classes, det_boxes, det_scores, det_classes = [], [], [], [], []
    for _ in range(12):
        n = int(rng.integers(0, 4))
        boxes = _random_boxes(rng, (n,), 0.1, 0.4) * 100
        gt_boxes.append(boxes)
        gt_classes.append(rng.integers(0, 3, n))
        # Detections: jittered copies of the objects (some with a wrong class) and random boxes.
        jitter = boxes + rng.normal(0, 3, boxes.shape)
        extra = _random_boxes(rng, (int(rng.integers(0, 4)),), 0.1, 0.4) * 100
        det_boxes.append(np.concatenate([jitter, extra]))
        det_scores.append(np.round(rng.uniform(0, 1, len(det_boxes[-1])), 3))
        det_classes.append(np.concatenate([np.where(rng.uniform(size=n) < 0.8, gt_classes[-1], 2),
                                           rng.integers(0, 3, len(extra))]))
    ours = metrics.coco_map(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)

    def xywh(box):
        return [float(box[1]), float(box[0]), float(box[3] - box[1]), float(box[2] - box[0])]

    annotations, results = [], []
    for image, (gb, gc, db, ds, dc) in enumerate(zip(gt_boxes, gt_classes, det_boxes, det_scores, det_classes)):
        for box, cls in zip(gb, gc):
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(cls),
                                "bbox": xywh(box), "area": xywh(box)[2] * xywh(box)[3], "iscrowd": 0})
        for box, score, cls in zip(db, ds, dc):
            results.append({"image_id": image, "category_id": int(cls), "bbox": xywh(box), "score": float(score)})
    ground_truth = coco_module.COCO()
    ground_truth.dataset = {"images": [{"id": i} for i in range(len(gt_boxes))], "annotations": annotations,
                            "categories": [{"id": c} for c in range(3)]}
    ground_truth.createIndex()
    evaluation = cocoeval.COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert ours["map"] == pytest.approx(evaluation.stats[0], abs=1e-9)
    assert ours["map_50"] == pytest.approx(evaluation.stats[1], abs=1e-9)
    assert ours["map_75"] == pytest.approx(evaluation.stats[2], abs=1e-9)
    assert 0.1 < ours["map"] < 0.9  # a set that exercises both hits and misses


# --- data -----------------------------------------------------------------------------------------

@pytest.fixture
def small_canvases(monkeypatch):
    from keras_zoo.data import detection

    monkeypatch.setattr(detection, "CANVAS_SPLIT_SIZES", {"train": 32, "validation": 8, "test": 16})


def test_digit_canvases_det(small_canvases):
    from keras_zoo.data import load_dataset

    bundle = load_dataset("digit_canvases_det", task="detection", input_specs=[InputSpec((48, 48, 3))], batch_size=8)
    images, targets = next(iter(bundle.test))
    assert images.shape == (8, 48, 48, 3) and targets["boxes"].shape == (8, 3, 4)
    classes, boxes = targets["classes"].numpy(), targets["boxes"].numpy()
    assert np.all((classes >= -1) & (classes < 10)) and np.all(classes[:, 0] >= 0)
    valid = boxes[classes >= 0]
    assert np.all((valid[:, 2] > valid[:, 0]) & (valid[:, 3] > valid[:, 1])) and valid.max() <= 1
    assert bundle.model_overrides == {"classes": 10}
    with pytest.raises(ValueError, match="detection"):
        load_dataset("digit_canvases_det", task="image_classification", input_specs=[InputSpec((48, 48, 3))],
                     batch_size=8)


def test_tfds_voc_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_zoo.data import load_dataset

    with tfds.testing.mock_data(num_examples=4):
        bundle = load_dataset("tfds_det:voc/2007", task="detection", input_specs=[InputSpec((32, 32, 3))],
                              batch_size=2)
        images, targets = next(iter(bundle.train))
    assert images.shape == (2, 32, 32, 3)
    assert targets["boxes"].shape == (2, 100, 4) and targets["classes"].shape == (2, 100)
    assert bundle.model_overrides == {"classes": 20} and len(bundle.labels) == 20


def _write_voc_folder(root, count):
    from PIL import Image

    os.makedirs(os.path.join(root, "Annotations"))
    os.makedirs(os.path.join(root, "JPEGImages"))
    truth = {}
    for k in range(count):
        name = f"img{k:03d}.png"
        Image.new("RGB", (40, 20), (k, 0, 0)).save(os.path.join(root, "JPEGImages", name))
        objects = [("cat", 2, 4, 10, 20, 0), ("dog", 5, 10, 15, 30, 0), ("dog", 0, 0, 5, 5, 1)]
        annotation = ElementTree.Element("annotation")
        ElementTree.SubElement(annotation, "filename").text = name
        size = ElementTree.SubElement(annotation, "size")
        for key, value in (("width", 40), ("height", 20), ("depth", 3)):
            ElementTree.SubElement(size, key).text = str(value)
        for label, ymin, xmin, ymax, xmax, difficult in objects:
            obj = ElementTree.SubElement(annotation, "object")
            ElementTree.SubElement(obj, "name").text = label
            ElementTree.SubElement(obj, "difficult").text = str(difficult)
            box = ElementTree.SubElement(obj, "bndbox")
            for key, value in (("ymin", ymin), ("xmin", xmin), ("ymax", ymax), ("xmax", xmax)):
                ElementTree.SubElement(box, key).text = str(value)
        ElementTree.ElementTree(annotation).write(os.path.join(root, "Annotations", f"img{k:03d}.xml"))
        truth[name] = objects
    return truth


def test_voc_xml_folder(tmp_path):
    from keras_zoo.data import check_dataset, load_dataset

    _write_voc_folder(str(tmp_path / "voc"), 30)
    bundle = load_dataset(f"vocxml:{tmp_path / 'voc'}", task="detection", input_specs=[InputSpec((16, 16, 3))],
                          batch_size=1)
    assert bundle.labels == ["cat", "dog"] and sum(bundle.info["sizes"].values()) == 30
    images, targets = next(iter(bundle.test))
    assert images.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(targets["classes"][0, :3], [0, 1, -1])  # the difficult dog is dropped
    np.testing.assert_allclose(targets["boxes"][0, :2], [[2 / 20, 4 / 40, 10 / 20, 20 / 40],
                                                         [5 / 20, 10 / 40, 15 / 20, 30 / 40]], atol=1e-6)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="no .xml files"):
        check_dataset(f"vocxml:{tmp_path / 'empty'}")


# --- training and export --------------------------------------------------------------------------

@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_tiny_training_run(small_canvases, tmp_path):
    from training.loop import train_and_evaluate

    result = train_and_evaluate(dict(model="ssd_mobilenet", tiny=True, epochs=1, steps_per_epoch=2,
                                     validation_steps=1, batch_size=8, verbose=0,
                                     task_options={"detection_eval_images": 8}), str(tmp_path))
    assert all(np.isfinite(v[0]) for v in result["history"].values())
    assert {"loss", "localization_loss", "classification_loss", "val_loss"} <= set(result["history"])
    task = result["task"]
    assert 0 <= task["voc_map_50"] <= 1 and 0 <= task["coco_map"] <= 1 and task["num_images"] == 8
    assert os.path.getsize(task["picture"]) > 1000


@pytest.mark.tf_keras
def test_int8_export_with_detection_postprocess_op(small_canvases, tmp_path):
    from export import convert, detection as export_detection
    from keras_zoo.data import load_dataset

    info = keras_zoo.model_info("ssd_mobilenet")
    config = info.resolved_config(tiny=True, classes=10)
    model = info.builder(**config)
    bundle = load_dataset("digit_canvases_det", task="detection", input_specs=info.inputs_for(config), batch_size=8)
    report = export_detection.export_detection(model, config, bundle, str(tmp_path), quantization="int8",
                                               num_verify=16, labels=bundle.labels, log=lambda *_: None)
    assert report["op_counts"]["TFLite_Detection_PostProcess"] == 1 and report["passed"]
    assert abs(report["verification"]["metric_delta"]["voc_map_50"]) <= export_detection.MAX_MAP_DROP["int8"]
    assert open(tmp_path / "labels.txt").read().split() == [str(d) for d in range(10)]
    content = open(report["tflite_file"], "rb").read()
    graph = convert.read_graph(content)
    assert graph.inputs[0].dtype == "int8"
    assert {op.name for op in graph.ops} <= {"CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "CONCATENATION", "SOFTMAX",
                                            "QUANTIZE", "DEQUANTIZE", "ADD", "MUL", "TFLite_Detection_PostProcess"}
    # Android reads the outputs by index: boxes, classes, scores, count (the op's own order).
    post = next(op for op in graph.ops if op.name == "TFLite_Detection_PostProcess")
    assert [t.index for t in graph.outputs] == [t.index for t in post.outputs]
    assert [t.name for t in graph.outputs] == list(export_detection.OUTPUT_NAMES)
    boxes, scores, classes, count = export_detection.tflite_predictor(content)(
        next(iter(bundle.test))[0].numpy()[:1])
    assert boxes.shape == (1, 10, 4) and scores.shape == (1, 10) and count.shape == (1,)
    assert np.all((classes >= 0) & (classes < 10)) and np.all(np.diff(scores[0]) <= 1e-6)
