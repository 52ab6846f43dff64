"""Segmentation: digit canvases, FCN / U-Net heads, segmentation metrics, the training task, int8 export."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.data import canvases, load_dataset
from keras_zoo.data.canvases import INK_THRESHOLD, MAX_IOU, make_canvases
from keras_zoo.metrics import segmentation as seg_metrics
from keras_zoo.models.segmentation import FCN, BilinearUpsampling, UNet, bilinear_kernel
from keras_zoo.registry import InputSpec
from training import tasks_segmentation
from training.loop import train_and_evaluate

both = pytest.mark.both
SMALL_SPLITS = {"train": 64, "validation": 16, "test": 16}


@pytest.fixture
def small_canvas_splits(monkeypatch):
    """The registered digit_canvases dataset with few canvases per split (fast loading)."""
    monkeypatch.setattr(canvases, "SPLIT_SIZES", SMALL_SPLITS)


# --- canvases -------------------------------------------------------------------------------------------


@both
def test_canvases_are_deterministic_prefix_stable_and_seeded():
    first, again = make_canvases(6, "train", seed=3), make_canvases(6, "train", seed=3)
    prefix = make_canvases(3, "train", seed=3)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        np.testing.assert_array_equal(first[key][:3], prefix[key])
    assert not np.array_equal(first["images"], make_canvases(6, "train", seed=4)["images"])
    assert not np.array_equal(first["images"], make_canvases(6, "test", seed=3)["images"])
    assert first["images"].dtype == np.float32 and first["images"].shape == (6, 64, 64, 1)
    assert first["masks"].dtype == np.int32 and first["masks"].shape == (6, 64, 64)
    assert first["boxes"].shape == (6, 3, 4) and first["classes"].shape == (6, 3)
    assert first["num_boxes"].dtype == np.int32


def _pixel_boxes(boxes, size):
    return np.round(np.asarray(boxes) * size).astype(int)


@both
def test_canvas_masks_boxes_and_classes_agree():
    size = 48
    data = make_canvases(40, "validation", canvas_size=size, max_digits=4, seed=1)
    assert 0.0 <= data["images"].min() and data["images"].max() <= 1.0
    assert data["num_boxes"].min() >= 1 and data["num_boxes"].max() <= 4
    for image, mask, boxes, classes, count in zip(data["images"][..., 0], data["masks"], data["boxes"],
                                                  data["classes"], data["num_boxes"]):
        np.testing.assert_array_equal(classes[count:], -1)
        np.testing.assert_array_equal(boxes[count:], 0.0)
        assert np.all((classes[:count] >= 0) & (classes[:count] <= 9))
        assert np.all(image[mask > 0] >= INK_THRESHOLD)  # labelled pixels are ink
        pixel_boxes = _pixel_boxes(boxes[:count], size)
        covered = np.zeros_like(mask)
        for (y0, x0, y1, x1), digit in zip(pixel_boxes, classes[:count]):
            assert 0 <= y0 < y1 <= size and 0 <= x0 < x1 <= size
            inside = np.zeros(mask.shape, bool)
            inside[y0:y1, x0:x1] = True
            covered[inside & (mask == digit + 1)] = 1
            # Tight: ink touches all four edges of the box.
            ink = image[y0:y1, x0:x1] >= INK_THRESHOLD
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
        # Every labelled pixel lies in a box of its own class.
        np.testing.assert_array_equal(covered, mask > 0)
        for i in range(count):
            others = [pixel_boxes[j] for j in range(count) if j != i]
            assert np.all(canvases._iou(pixel_boxes[i].astype("float32"), others) <= MAX_IOU + 1e-6)


@both
def test_canvases_reject_bad_arguments():
    with pytest.raises(ValueError, match="split must be"):
        make_canvases(2, "val")
    with pytest.raises(ValueError, match="canvas_size"):
        make_canvases(2, "train", canvas_size=8)


@both
@pytest.mark.parametrize("shape", [(32, 32, 3), (64, 64, 1)])
def test_digit_canvases_fit_the_model_input(small_canvas_splits, shape):
    bundle = load_dataset("digit_canvases", task="segmentation", input_specs=[InputSpec(shape)], batch_size=8)
    images, masks = next(iter(bundle.test))
    assert images.shape == (8, *shape) and images.dtype == tf.float32
    assert masks.shape == (8, *shape[:2]) and masks.dtype == tf.int32
    assert set(np.unique(masks.numpy())) <= set(range(11))  # nearest resizing keeps labels
    if shape[-1] == 3:
        np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert bundle.model_overrides == {"classes": 11} and bundle.labels[0] == "background"
    frequencies = bundle.info["class_pixel_frequencies"]
    assert abs(sum(frequencies.values()) - 1) < 1e-9 and frequencies["background"] > 0.8
    assert bundle.info["majority_baseline_pixel_accuracy"] > 0.8
    assert bundle.info["majority_baseline_mean_iou"] < 0.1
    with pytest.raises(ValueError, match="serves the tasks segmentation"):
        load_dataset("digit_canvases", task="image_classification", input_specs=[InputSpec(shape)], batch_size=8)


# --- models ---------------------------------------------------------------------------------------------


def _resize_1d_matrix(size, factor):
    """Half-pixel bilinear interpolation (tf.image.resize) as a (size * factor, size) matrix, NumPy."""
    out = np.zeros((size * factor, size))
    for o in range(size * factor):
        position = np.clip((o + 0.5) / factor - 0.5, 0, size - 1)
        low = int(np.floor(position))
        high = min(low + 1, size - 1)
        out[o, low] += 1 - (position - low)
        out[o, high] += position - low
    return out


@both
@pytest.mark.parametrize("factor", [2, 4])
def test_bilinear_deconvolution_matches_bilinear_resizing_inside(factor):
    """FCN's deconvolution initialised to bilinear = half-pixel bilinear resizing away from the borders."""
    size, channels = 6, 3
    layer = keras.layers.Conv2DTranspose(channels, 2 * factor - factor % 2, strides=factor, padding="same",
                                         use_bias=False, kernel_initializer=BilinearUpsampling())
    x = np.random.default_rng(0).normal(size=(1, size, size, channels)).astype("float32")
    y = np.asarray(layer(x))
    matrix = _resize_1d_matrix(size, factor)
    expected = np.einsum("ai,bj,nijc->nabc", matrix, matrix, x)
    inner = slice(factor, (size - 1) * factor)
    np.testing.assert_allclose(y[:, inner, inner], expected[:, inner, inner], atol=1e-5)
    np.testing.assert_allclose(bilinear_kernel(4)[0] / bilinear_kernel(4)[0].max(), [1 / 3, 1, 1, 1 / 3], atol=1e-6)


@both
@pytest.mark.parametrize("name", ["fcn_mobilenet", "unet_mobilenet"])
def test_registered_heads_return_per_pixel_logits(name):
    info = keras_zoo.model_info(name)
    assert info.task == "segmentation" and info.default_dataset == "digit_canvases"
    model = keras_zoo.create_model(name, tiny=True, classes=5)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    logits = np.asarray(model(x, training=False))
    assert logits.shape == (2, 32, 32, 5) and np.all(np.isfinite(logits))
    assert not np.allclose(logits.sum(-1), 1.0)  # logits, not probabilities
    assert model.get_layer("conv_pw_1") is not None  # the backbone is flat in the graph, not nested


@both
def test_fcn_output_stride_selects_fused_stages_with_zero_initialised_skips():
    kwargs = dict(backbone_kwargs=dict(alpha=0.25, blocks=((64, 1), (128, 2), (256, 2), (512, 2), (1024, 2))),
                  classes=4, input_shape=(32, 32, 3))
    names = {stride: {layer.name for layer in FCN(output_stride=stride, **kwargs).layers} for stride in (32, 16, 8)}
    assert "fcn_score_stride16" not in names[32]
    assert {"fcn_score_stride16", "fcn_upscore_stride16"} <= names[16] and "fcn_score_stride8" not in names[16]
    assert {"fcn_score_stride8", "fcn_fuse_stride8"} <= names[8]
    model = FCN(output_stride=8, **kwargs)
    assert not np.any(model.get_layer("fcn_score_stride8").get_weights()[0])


@both
def test_heads_work_on_a_backbone_with_valid_padding():
    """SqueezeNet's stages (31, 15, 7, 3 px on 64 px) are not 2x apart: bilinear resizing bridges them."""
    x = np.zeros((1, 64, 64, 3), "float32")
    fcn = FCN("squeezenet1_1", classes=3, input_shape=(64, 64, 3), output_stride=8)
    assert fcn(x).shape == (1, 64, 64, 3)
    unet = UNet("squeezenet1_1", classes=3, input_shape=(64, 64, 3), decoder_filters=(8, 8, 8, 8, 8))
    assert unet(x).shape == (1, 64, 64, 3)


@both
def test_builders_reject_bad_arguments():
    kwargs = dict(backbone_kwargs=dict(alpha=0.25), classes=4)
    with pytest.raises(ValueError, match="output_stride"):
        FCN(output_stride=4, input_shape=(64, 64, 3), **kwargs)
    with pytest.raises(ValueError, match="static"):
        FCN(input_shape=(None, None, 3), **kwargs)
    with pytest.raises(ValueError, match="decoder_filters"):
        UNet(input_shape=(64, 64, 3), decoder_filters=(8, 8), **kwargs)
    with pytest.raises(ValueError, match="image classifier"):
        FCN("qrnn_lm_char", input_shape=(64, 64, 3), classes=4)


# --- metrics --------------------------------------------------------------------------------------------


def _labels_and_predictions(seed=0, classes=5, shape=(3, 10, 10)):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, size=shape)
    y_pred = np.where(rng.uniform(size=shape) < 0.6, y_true, rng.integers(0, classes - 1, size=shape))
    return y_true, y_pred  # the last class is never predicted wrongly; some precision is NaN-free


@both
def test_numpy_metrics_match_sklearn():
    from sklearn import metrics as sk

    classes = 5
    y_true, y_pred = _labels_and_predictions(classes=classes)
    matrix = seg_metrics.confusion_matrix(y_true, y_pred, classes)
    labels = list(range(classes))
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y_true.ravel(), y_pred.ravel(), labels=labels))
    np.testing.assert_allclose(seg_metrics.per_class_iou(matrix),
                               sk.jaccard_score(y_true.ravel(), y_pred.ravel(), labels=labels, average=None))
    np.testing.assert_allclose(seg_metrics.per_class_precision(matrix),
                               sk.precision_score(y_true.ravel(), y_pred.ravel(), labels=labels, average=None))
    np.testing.assert_allclose(seg_metrics.per_class_recall(matrix),
                               sk.recall_score(y_true.ravel(), y_pred.ravel(), labels=labels, average=None))
    assert seg_metrics.mean_iou(matrix) == pytest.approx(
        sk.jaccard_score(y_true.ravel(), y_pred.ravel(), labels=labels, average="macro"))
    # A class in neither labels nor predictions has no IoU and is left out of the mean.
    wide = seg_metrics.confusion_matrix(y_true, y_pred, classes + 1)
    assert np.isnan(seg_metrics.per_class_iou(wide)[-1])
    assert seg_metrics.mean_iou(wide) == pytest.approx(seg_metrics.mean_iou(matrix))
    # Out-of-range labels (VOC's 255) are ignored.
    void = np.where(y_true == 0, 255, y_true)
    np.testing.assert_array_equal(seg_metrics.confusion_matrix(void, y_pred, classes)[1:],
                                  seg_metrics.confusion_matrix(y_true, y_pred, classes)[1:])
    report = seg_metrics.segmentation_report(matrix)
    assert report["pixel_accuracy"] == pytest.approx(np.mean(y_true == y_pred))


@both
def test_streaming_mean_iou_matches_numpy_over_batches():
    classes = 4
    metric = seg_metrics.MeanIoU(classes)
    total = np.zeros((classes, classes), np.int64)
    rng = np.random.default_rng(2)
    for seed in range(3):
        y_true, y_pred = _labels_and_predictions(seed, classes, shape=(2, 8, 8))
        y_true[0, 0, :3] = 255  # ignored
        logits = rng.normal(size=(*y_pred.shape, classes)).astype("float32")
        logits[np.arange(y_pred.size) // 64, (np.arange(y_pred.size) // 8) % 8, np.arange(y_pred.size) % 8,
               y_pred.ravel()] += 100.0
        metric.update_state(y_true[..., None], logits)
        total += seg_metrics.confusion_matrix(y_true, y_pred, classes)
    np.testing.assert_array_equal(np.asarray(metric.confusion_matrix()), total)
    assert float(metric.result()) == pytest.approx(seg_metrics.mean_iou(total), abs=1e-6)
    clone = seg_metrics.MeanIoU.from_config(metric.get_config())
    assert clone.num_classes == classes and clone.name == "mean_iou"
    metric.reset_state()
    assert not np.any(np.asarray(metric.confusion_matrix()))


# --- training task ---------------------------------------------------------------------------------------


@both
def test_pixel_cross_entropy_matches_numpy_and_ignores_void():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(2, 3, 3))
    labels[0, 0, 0] = 255
    per_pixel = np.asarray(tasks_segmentation.PixelCrossEntropy(4).call(tf.constant(labels), tf.constant(logits)))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, np.clip(labels, 0, 3)[..., None], -1)[..., 0]
    expected[0, 0, 0] = 0.0
    np.testing.assert_allclose(per_pixel, expected, atol=1e-5)


@both
def test_class_weights():
    frequencies = np.array([0.9, 0.06, 0.04, 0.0])
    inverse = tasks_segmentation.class_weights(frequencies, "inverse_frequency")
    assert np.dot(frequencies, inverse) == pytest.approx(1.0) and inverse[-1] == 0
    median = tasks_segmentation.class_weights(frequencies, "median_frequency")
    np.testing.assert_allclose(median[:3], [0.06 / 0.9, 1.0, 0.06 / 0.04])
    with pytest.raises(ValueError, match="inverse_frequency"):
        tasks_segmentation.SegmentationTask({"seg_class_weights": "balanced"})


@both
def test_precise_batch_norm_averages_per_batch_statistics():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.99, name="bn")(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, size=(16, 3)).astype("float32") for loc, scale in ((0, 1), (2, 3), (-1, 0.5))]
    count = tasks_segmentation.precise_batch_norm(model, tf.data.Dataset.from_tensor_slices(batches), 5)
    bn = model.get_layer("bn")
    assert count == 3 and bn.momentum == 0.99
    np.testing.assert_allclose(np.asarray(bn.moving_mean), np.mean([b.mean(0) for b in batches], 0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), np.mean([b.var(0) for b in batches], 0), rtol=1e-4)


@both
@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_one_tiny_epoch_writes_miou_and_overlays(small_canvas_splits, tmp_path):
    config = {"model": "unet_mobilenet", "tiny": True, "epochs": 1, "steps_per_epoch": 2, "validation_steps": 1,
              "batch_size": 8, "verbose": 0, "task_options": {"seg_class_weights": "median_frequency", "seg_precise_bn_batches": 2}}
    result = train_and_evaluate(config, str(tmp_path))
    assert {"loss", "pixel_accuracy", "mean_iou"} <= set(result["test"])
    assert 0.0 <= result["task"]["test_mean_iou"] <= 1.0
    assert len(result["task"]["class_weights"]) == 11
    assert os.path.getsize(tmp_path / "segmentation_overlays.png") > 1000
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["task"]["per_class_iou"].keys() == set(canvases.SEGMENTATION_LABELS)
    assert "majority_baseline_mean_iou" in metrics["baselines"]


# --- export ---------------------------------------------------------------------------------------------


@pytest.mark.tf_keras
@pytest.mark.parametrize("name", ["unet_mobilenet", "fcn_mobilenet"])
def test_int8_export_agrees_with_keras_and_maps_to_the_edge_tpu(small_canvas_splits, name, tmp_path):
    from export.tflite import export_model
    from export.verify import TFLiteRunner

    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model(name, tiny=True, classes=11)
    bundle = load_dataset("digit_canvases", task="segmentation", input_specs=[InputSpec((32, 32, 3))], batch_size=8)
    report = export_model(model=model, task="segmentation", data=bundle, quantization="int8", edgetpu_check=True,
                          output=str(tmp_path), num_verify=8, log=lambda *_: None)
    assert report["data"]["representative"].startswith("train split")
    assert report["edgetpu"]["ready"], report["edgetpu"]["first_cpu_op"]
    assert report["verification"]["passed"], report["verification"]["failures"]
    # Pixel-wise argmax agreement on held-out canvases, judged where the Keras top-1 margin
    # exceeds two output quantization steps (an untrained model's logits are flat).
    with open(report["tflite_file"], "rb") as f:
        runner = TFLiteRunner(f.read())
    images = next(iter(bundle.test))[0].numpy()
    expected = np.asarray(model(images, training=False))
    got = np.concatenate([runner([image[None]])[0] for image in images])
    top2 = np.sort(expected, -1)[..., -2:]
    decisive = top2[..., 1] - top2[..., 0] > 2 * report["verification"]["output_quant_step"]
    assert decisive.sum() > 100
    assert np.mean(expected.argmax(-1)[decisive] == got.argmax(-1)[decisive]) > 0.95


@both
def test_tfds_segmentation_path_on_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8):
        bundle = load_dataset("tfds_segmentation:oxford_iiit_pet", task="segmentation",
                              input_specs=[InputSpec((32, 32, 3))], batch_size=4)
        images, masks = next(iter(bundle.train))
    assert images.shape == (4, 32, 32, 3) and 0.0 <= float(tf.reduce_min(images)) <= float(tf.reduce_max(images)) <= 1.0
    assert masks.shape == (4, 32, 32) and set(np.unique(masks.numpy())) <= {0, 1, canvases.IGNORE_LABEL}
    assert bundle.model_overrides == {"classes": 2} and bundle.labels == ["background", "pet"]
    with pytest.raises(ValueError, match="no segmentation masks"):
        load_dataset("tfds_segmentation:voc/2012", task="segmentation", input_specs=[InputSpec((32, 32, 3))],
                     batch_size=4)
