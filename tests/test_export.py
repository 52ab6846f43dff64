"""The export stage (export/): conversion modes, verification, QAT, pruning, the Keras 3
bridge, bad inputs, and a sweep over the registry."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

if os.environ.get("TF_USE_LEGACY_KERAS", "0").lower() not in ("1", "true"):
    # Importing export.tflite would switch this whole Keras 3 session to tf_keras.
    pytest.skip("export tests run in the tf_keras pass (tools/test.sh)", allow_module_level=True)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import keras_zoo  # noqa: E402
from export import convert, qat, tflite, verify  # noqa: E402
from export.convert import ExportError  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402

pytestmark = pytest.mark.tf_keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L = keras.layers


def _silent(*_):
    pass


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled 8x8 digits as an ExportData bundle (real data, offline)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    y = d.target.astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).batch(32)
    test = tf.data.Dataset.from_tensor_slices((x[1400:], y[1400:])).batch(32)
    return tflite.ExportData(train, test, labels=[str(k) for k in range(10)])


def _conv_classifier(with_bn=True):
    inputs = L.Input((8, 8, 1), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=not with_bn, name="conv")(inputs)
    if with_bn:
        x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


@pytest.fixture(scope="module")
def trained_cnn(digits):
    keras.utils.set_random_seed(0)
    model = _conv_classifier()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(digits.train, epochs=4, verbose=0)
    return model


def _export(model, data, tmp_path, task="image_classification", **kwargs):
    kwargs.setdefault("num_verify", 60)
    return tflite.export_model(model=model, task=task, data=data, output=str(tmp_path / "out"),
                               log=_silent, **kwargs)


def test_int8_export_is_integer_verified_and_written_atomically(trained_cnn, digits, tmp_path):
    report = _export(trained_cnn, digits, tmp_path, quantization="int8")
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["export_report.json", "labels.txt", "model.tflite"]
    assert (out / "labels.txt").read_text().split() == [str(k) for k in range(10)]
    graph = convert.read_graph((out / "model.tflite").read_bytes())
    assert [t.dtype for t in graph.inputs] == ["int8"] and [t.dtype for t in graph.outputs] == ["int8"]
    assert all(t.dtype in ("int8", "int32") for op in graph.ops for t in op.inputs + op.outputs)
    ver = report["verification"]
    assert report["passed"] and ver["top1_agreement_decisive"] >= 0.98
    assert ver["keras_accuracy"] > 0.8 and abs(ver["metric_delta"]) <= 0.05
    assert set(report["latency_ms"]) == {"1_thread", "2_threads"}
    on_disk = json.loads((out / "export_report.json").read_text())
    assert on_disk["verification"]["top1_agreement"] == ver["top1_agreement"]
    assert on_disk["size_bytes"] == os.path.getsize(out / "model.tflite")


@pytest.mark.parametrize("quantization", ["float32", "float16", "dynamic"])
def test_float_modes_agree_with_keras(trained_cnn, digits, tmp_path, quantization):
    report = _export(trained_cnn, digits, tmp_path, quantization=quantization, num_verify=30)
    assert report["passed"], report["verification"]
    graph = convert.read_graph(open(report["tflite_file"], "rb").read())
    assert graph.inputs[0].dtype == "float32"
    dense_weights = {t.dtype for op in graph.ops if op.name == "FULLY_CONNECTED" for t in op.inputs[1:2]}
    if quantization == "float32":
        assert report["verification"]["max_abs_diff"] < 1e-5
        assert dense_weights == {"float32"}
    if quantization == "float16":
        assert "DEQUANTIZE" in report["op_counts"]  # fp16 weights, expanded to float32 at load
    if quantization == "dynamic":
        # The converter leaves tensors under 1024 elements (the 3x3x1x8 conv) in float.
        assert dense_weights == {"int8"}


def test_uint8_io_for_coral(trained_cnn, digits, tmp_path):
    report = _export(trained_cnn, digits, tmp_path, quantization="int8", io_dtype="uint8", num_verify=30)
    assert [i["dtype"] for i in report["inputs"]] == ["uint8"]
    assert [o["dtype"] for o in report["outputs"]] == ["uint8"]
    assert report["passed"]


def _token_data(vocab=12, length=6, n=256, seed=0):
    """Next-token data with structure: the target is the input token + 1 (mod vocab)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(n, length)).astype("int32")
    y = (x + 1) % vocab
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    return tflite.ExportData(ds, ds, vocab=[f"t{i}" for i in range(vocab)])


def test_token_id_inputs_stay_int32_in_int8_export(tmp_path):
    keras.utils.set_random_seed(0)
    ids = L.Input((6,), dtype="int32", name="ids")
    logits = L.Dense(12, name="logits")(L.Embedding(12, 8, name="embedding")(ids))
    model = keras.Model(ids, logits)
    data = _token_data()
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train, epochs=3, verbose=0)
    report = _export(model, data, tmp_path, task="language_model", quantization="int8", num_verify=40)
    assert [i["dtype"] for i in report["inputs"]] == ["int32"]
    assert [o["dtype"] for o in report["outputs"]] == ["int8"]
    assert (tmp_path / "out" / "vocab.txt").read_text().split()[:2] == ["t0", "t1"]
    ver = report["verification"]
    assert report["passed"], ver
    assert ver["keras_bits_per_token"] < 1.0  # learned the +1 rule (log2(12) = 3.6 bits untrained)


def test_qat_conv_model_reports_float_qat_and_ptq(trained_cnn, digits, tmp_path):
    report = _export(trained_cnn, digits, tmp_path, quantization="qat", qat_epochs=1, steps_per_epoch=8,
                     num_verify=60)
    assert report["passed"], report["verification"]
    metrics = report["qat"]["metrics"]
    assert set(metrics) == {"float_keras", "qat_keras", "qat_tflite", "ptq_int8_tflite"}
    assert metrics["qat_tflite"]["accuracy"] >= metrics["float_keras"]["accuracy"] - 0.05
    # BatchNormalization is folded into the conv by tfmot, not left in float.
    assert report["qat"]["coverage"]["left_unquantized"] == []
    graph = convert.read_graph(open(report["tflite_file"], "rb").read())
    assert "FakeQuant" not in str([op.name for op in graph.ops])
    assert graph.inputs[0].dtype == "int8"


@pytest.fixture(scope="module")
def trained_densenet(digits):
    """DenseNet-BC tiny on 8x8 digits: transitions pool 8->4->2, each pool feeding a concat."""
    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("densenet_bc_100_k12", tiny=True, input_shape=(8, 8, 1), classes=10,
                                   growth_rate=8)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(digits.train.unbatch().shuffle(1400, seed=0).batch(32), epochs=5, verbose=0)
    return model


def test_qat_densenet_converts_with_average_pools_sharing_their_input_scale(trained_densenet, digits):
    """Regression: tfmot's output quantizer on AveragePooling2D gave the transition pools an
    output scale of their own, and the converter refused (TFLite's int8 AVERAGE_POOL_2D needs
    input and output to share scale and zero point) because each pool also feeds a concat."""
    qat_model, _ = qat.quantize_model(trained_densenet)
    pools = [layer for layer in qat_model.layers if isinstance(getattr(layer, "layer", None), L.AveragePooling2D)]
    assert len(pools) == 2 and not any("output_min" in w.name for p in pools for w in p.weights)
    qat.calibrate_ranges(qat_model, trained_densenet, digits.train.take(10))
    qat.fine_tune(qat_model, digits.train, "image_classification", epochs=1, steps_per_epoch=8)

    representative = [inputs for inputs, _ in tflite._examples(digits.train, 100)]
    content = convert.convert(qat_model, "qat", convert.input_signature(qat_model), representative)
    graph = convert.read_graph(content)
    avg_pools = [op for op in graph.ops if op.name == "AVERAGE_POOL_2D"]
    assert len(avg_pools) == 2
    for op in avg_pools:
        assert op.inputs[0].dtype == op.outputs[0].dtype == "int8"
        assert (op.inputs[0].scale, op.inputs[0].zero_point) == (op.outputs[0].scale, op.outputs[0].zero_point)

    held_out = tflite._examples(digits.test, 150)
    result = verify.compare(qat_model, content, [x for x, _ in held_out], "image_classification", "qat",
                            [t for _, t in held_out])
    assert result["passed"], result
    assert result["keras_accuracy"] > 0.7, "the fixture must have learned the digits"
    assert result["top1_agreement"] >= 0.95 and abs(result["metric_delta"]) <= 0.03, result


def test_qat_quantizes_the_qrnn_layer_with_its_quantize_config(tmp_path):
    from keras_zoo.layers.qrnn import QRNN

    keras.utils.set_random_seed(0)
    ids = L.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(12, 8, name="embedding")(ids)
    x = QRNN(16, window=2, return_sequences=True, name="qrnn")(x)
    model = keras.Model(ids, L.Dense(12, name="logits")(x))
    data = _token_data()
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train, epochs=4, verbose=0)

    qat_model, coverage = qat.quantize_model(model)
    assert coverage["custom_quantized"] == ["qrnn"]
    wrapper = qat_model.get_layer("quant_qrnn")
    assert any("kernel_min" in w.name for w in wrapper.weights)  # the kernel is fake-quantized

    report = _export(model, data, tmp_path, task="language_model", quantization="qat",
                     steps_per_epoch=4, num_verify=40)
    assert report["qat"]["coverage"]["custom_quantized"] == ["qrnn"]
    assert report["passed"], report["verification"]
    metrics = report["qat"]["metrics"]
    assert metrics["float_keras"]["bits_per_token"] < 1.0  # learned the +1 rule (untrained: 3.6)
    assert metrics["qat_tflite"]["bits_per_token"] < metrics["float_keras"]["bits_per_token"] + 0.2


def test_prune_reaches_target_sparsity_and_compresses(trained_cnn, digits, tmp_path):
    report = _export(trained_cnn, digits, tmp_path, quantization="float32", prune=0.5, qat_epochs=1,
                     steps_per_epoch=10, num_verify=30)
    pruning = report["pruning"]
    assert pruning["layer_sparsity"] and all(0.45 <= s <= 0.55 for s in pruning["layer_sparsity"].values())
    assert report["gzip_size_bytes"] < 0.8 * report["size_bytes"]
    assert report["passed"]


def test_prune_then_qat_keeps_the_zeros_through_int8(trained_cnn, digits, tmp_path):
    # Regression: the stripped pruned model shared layers with the original graph, and QAT's
    # range calibration failed with "Graph disconnected".
    report = _export(trained_cnn, digits, tmp_path, quantization="qat", prune=0.5, qat_epochs=1,
                     steps_per_epoch=10, num_verify=30)
    assert report["passed"], report["verification"]
    assert all(0.45 <= s <= 0.55 for s in report["pruning"]["layer_sparsity"].values())
    assert report["gzip_size_bytes"] < 0.8 * report["size_bytes"]  # the zeros survived int8


# --- bad input ---------------------------------------------------------------------------

def test_missing_model_dir_names_the_fix_and_writes_nothing(tmp_path):
    with pytest.raises(ExportError, match="does not exist.*training.train"):
        tflite.export_model(model_dir=str(tmp_path / "nope"), quantization="int8",
                            output=str(tmp_path / "out"), log=_silent)
    assert not (tmp_path / "out").exists()


def test_corrupt_model_file_is_rejected_and_a_good_export_survives(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "model.keras").write_bytes(b"not a zip archive")
    (model_dir / "config.json").write_text(json.dumps({"model": "squeezenet1_1", "tiny": True, "keras_version": 2,
                                                       "dataset": "digits", "builder_overrides": {}}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"good model")
    with pytest.raises(ExportError, match="corrupt or incomplete"):
        tflite.export_model(model_dir=str(model_dir), quantization="int8", output=str(out), log=_silent)
    assert sorted(os.listdir(out)) == ["model.tflite"]
    assert (out / "model.tflite").read_bytes() == b"good model"


def test_registry_model_without_tflite_support_is_refused(monkeypatch, tmp_path):
    import dataclasses

    from keras_zoo import registry

    name = keras_zoo.list_models()[0]
    no_tflite = dataclasses.replace(registry.model_info(name), export={"tflite": False, "edgetpu": False})
    monkeypatch.setitem(registry._REGISTRY, name, no_tflite)
    with pytest.raises(ExportError, match="export tflite=False"):
        tflite.export_model(model_name=name, tiny=True, quantization="int8", output=str(tmp_path / "o"),
                            log=_silent)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantization="int4"), "must be one of"),
    (dict(quantization="int8", io_dtype="int16"), "io_dtype"),
    (dict(quantization="int8", prune=1.5), "target sparsity"),
])
def test_bad_flags_are_rejected_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        tflite.export_model(model_name="squeezenet1_1", tiny=True, output=str(tmp_path / "o"), log=_silent,
                            **kwargs)
    assert not (tmp_path / "o").exists()


def test_qat_for_a_task_without_a_fine_tuning_loss_is_refused(tmp_path):
    name = next(n for n in keras_zoo.list_models() if keras_zoo.model_info(n).task == "image_generation")
    with pytest.raises(ExportError, match="Use --quantization=int8"):
        tflite.export_model(model_name=name, tiny=True, quantization="qat", output=str(tmp_path / "o"),
                            log=_silent)
    assert not (tmp_path / "o").exists()


class _Determinant(L.Layer):
    """MatrixDeterminant has no TFLite builtin kernel: it needs SELECT_TF_OPS."""

    def call(self, x):
        return tf.linalg.det(x)


def test_select_tf_ops_need_the_flag_and_are_reported(tmp_path):
    inputs = L.Input((3, 3))
    model = keras.Model(inputs, _Determinant()(inputs))
    x = np.random.default_rng(0).normal(size=(8, 3, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, 0, 0])).batch(4)
    data = tflite.ExportData(ds, ds)
    with pytest.raises(ExportError, match="MatrixDeterminant.*--allow_select_tf_ops"):
        _export(model, data, tmp_path, task="representation", quantization="float32")
    assert not (tmp_path / "out").exists()
    report = _export(model, data, tmp_path, task="representation", quantization="float32",
                     allow_select_tf_ops=True)
    assert report["select_tf_ops"] == ["FlexMatrixDeterminant"]


def test_failed_verification_keeps_a_clearly_named_file_and_exits_non_zero(
        trained_cnn, digits, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"good model")
    strict = {**verify.THRESHOLDS, "dynamic": dict(verify.THRESHOLDS["dynamic"], max_rel_rmse=0.0)}
    monkeypatch.setattr(verify, "THRESHOLDS", strict)
    monkeypatch.setattr(verify, "MIN_DECISIVE", 10**9)
    report = _export(trained_cnn, digits, tmp_path, quantization="dynamic", num_verify=20)
    assert not report["passed"]
    assert report["tflite_file"].endswith("model.FAILED_VERIFICATION.tflite")
    assert (out / "model.tflite").read_bytes() == b"good model"
    assert os.path.exists(out / "export_report.FAILED_VERIFICATION.json")

    monkeypatch.setattr(tflite, "export_model", lambda **kwargs: report)
    flag_values = flags.FlagValues()
    tflite.define_flags(flag_values)
    flag_values(["keras-zoo-export", "--model=squeezenet1_1"])
    with pytest.raises(SystemExit) as exit_info:
        tflite.main([], flag_values)
    assert exit_info.value.code == 1


# --- the Keras 3 bridge ------------------------------------------------------------------

def _save_under_keras3(model_dir, name, overrides):
    script = textwrap.dedent(f"""
        import json, keras_zoo
        info = keras_zoo.model_info({name!r})
        model = info.builder(**info.resolved_config(tiny=True, **{overrides!r}))
        model.save({str(model_dir / "model.keras")!r})
        json.dump(dict(model={name!r}, tiny=True, overrides={overrides!r}, dataset="digits",
                       task=info.task, keras=3), open({str(model_dir / "config.json")!r}, "w"))
        open({str(model_dir / "labels.txt")!r}, "w").write("\\n".join(map(str, range(10))) + "\\n")
    """)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "PYTHONPATH": REPO}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def keras3_model_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("keras3_run")
    _save_under_keras3(model_dir, "squeezenet1_1", {"classes": 10})
    return model_dir


def test_keras3_model_is_bridged_to_tf_keras_and_exported_with_qat(keras3_model_dir, tmp_path):
    with open(keras3_model_dir / "model.keras", "rb") as f:
        assert f.read(2) == b"PK"
    assert qat.saved_keras_major_version(str(keras3_model_dir / "model.keras")) == 3
    report = tflite.export_model(model_dir=str(keras3_model_dir), quantization="qat", steps_per_epoch=2,
                                 num_verify=20, output=str(tmp_path / "out"), log=_silent)
    assert report["bridged_from_keras3"] and report["keras_runtime"] == "Keras 2"
    assert os.path.exists(tmp_path / "out" / "labels.txt")
    assert report["inputs"][0]["dtype"] == "int8" and "qat" in report


def test_keras3_bridge_refuses_a_twin_that_computes_differently(keras3_model_dir):
    info = keras_zoo.model_info("squeezenet1_1")
    config = info.resolved_config(tiny=True, classes=10)
    inputs = keras_zoo.registry.example_inputs(info, config)

    def rebuilt_differently():
        model = info.builder(**config)
        model.get_layer(index=-1).activation = keras.activations.linear  # not the saved function
        return model

    with pytest.raises(AssertionError, match="twin's outputs differ"):
        qat.bridge_keras3_model(str(keras3_model_dir / "model.keras"), rebuilt_differently, inputs)


# --- sweep over the registry -------------------------------------------------------------

def _exportable():
    """Registered names that export to int8 TFLite (their metadata says which cannot, and why)."""
    return [n for n in keras_zoo.list_models() if keras_zoo.model_info(n).export.get("tflite")
            and "int8" not in keras_zoo.model_info(n).export.get("unsupported_quantization", ())]


def test_int8_is_refused_with_the_reason_where_the_registry_says_it_crashes(tmp_path):
    with pytest.raises(ExportError, match="does not support --quantization=int8 .*calibrat.*float16"):
        tflite.export_model(model_name="pixelrnn_row_lstm", tiny=True, quantization="int8",
                            output=str(tmp_path / "out"), log=_silent)
    assert not (tmp_path / "out").exists()


def _ci_subset(names):
    """CI runs the first name (in sorted order) of image classification and language
    modelling, the tasks verification judges by a metric; the full sweep is marked slow.
    The sequence classifiers are exported in the slow sweep (about 80 s each here)."""
    chosen = {}
    for name in names:
        task = keras_zoo.model_info(name).task
        if task in ("image_classification",) + verify.LANGUAGE_MODEL_TASKS and name not in _PTQ_SIGN_FLIPS:
            chosen.setdefault(task, name)
    return set(chosen.values())


#: Binary nets whose untrained int8 PTQ export disagrees with Keras: int8 rounding of the
#: real activations before each sign flips the ones within half a step of zero, and every
#: later layer is binary, so the flips compound. Their int8 path is QAT (tests/test_binary.py
#: checks the binary kernels survive int8 exactly).
_PTQ_SIGN_FLIPS = {"binarynet_cifar"}
_SUBSET = _ci_subset(_exportable())


def _sweep_marks(name):
    if name in _PTQ_SIGN_FLIPS:
        return (pytest.mark.slow, pytest.mark.xfail(reason="untrained binary net: int8 PTQ flips signs", strict=False))
    return () if name in _SUBSET else pytest.mark.slow


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=_sweep_marks(n)) for n in _exportable()
])
def test_registry_sweep_int8_export_runs_and_agrees(name, tmp_path):
    report = tflite.export_model(model_name=name, tiny=True, quantization="int8", num_verify=16,
                                 output=str(tmp_path / name), log=_silent)
    runner = verify.TFLiteRunner(open(report["tflite_file"], "rb").read())
    assert len(runner.input_names) == len(report["inputs"])
    assert report["passed"], report["verification"]
