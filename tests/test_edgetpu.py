"""The static Edge TPU check (export/edgetpu.py) on tiny hand-built models that do and do
not satisfy each documented rule of edgetpu_compiler 16."""
import os
import stat

import pytest

if os.environ.get("TF_USE_LEGACY_KERAS", "0").lower() not in ("1", "true"):
    pytest.skip("export tests run in the tf_keras pass (tools/test.sh)", allow_module_level=True)

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from export import convert, edgetpu  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402

pytestmark = pytest.mark.tf_keras
L = keras.layers


def _tflite(outputs_fn, input_shape, quantization="int8"):
    inputs = L.Input(input_shape)
    model = keras.Model(inputs, outputs_fn(inputs))
    rng = np.random.default_rng(0)
    samples = [[rng.uniform(-1, 1, size=(1, *input_shape)).astype("float32")] for _ in range(8)]
    return convert.convert(model, quantization, convert.input_signature(model), samples)


def _ops_by_name(report):
    return {row["op"]: row for row in report["ops"]}


class _TF(L.Layer):
    """One TF function as a layer, for ops Keras has no layer for."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, x):
        return self.fn(x)


def _classifier(x):
    x = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    return L.Dense(3, activation="softmax")(L.Flatten()(x))


@pytest.fixture(scope="module")
def good_int8():
    return _tflite(_classifier, (8, 8, 1))


def test_an_int8_conv_classifier_maps_entirely(good_int8):
    report = edgetpu.check(good_int8)
    assert report["ready"] and report["first_cpu_op"] is None
    assert report["mapped_share"] == 1.0
    assert [row["op"] for row in report["ops"]] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert "whole graph maps" in edgetpu.format_table(report)


def test_float_tensors_fall_back_to_cpu_from_the_first_op():
    report = edgetpu.check(_tflite(_classifier, (8, 8, 1), quantization="float32"))
    assert not report["ready"] and report["mapped_ops"] == 0
    assert report["first_cpu_op"]["index"] == 0
    assert any("float32 (needs int8/uint8)" in p for p in report["first_cpu_op"]["problems"])


def test_an_unsupported_op_sends_it_and_everything_after_it_to_cpu():
    abs_layer = _TF(tf.abs)  # ABS has an int8 kernel but is not in the Edge TPU table
    report = edgetpu.check(_tflite(lambda x: L.Dense(3)(abs_layer(L.Dense(8)(x))), (4,)))
    ops = [(row["op"], row["runs_on"], row["supported"]) for row in report["ops"]]
    assert ops == [("FULLY_CONNECTED", "edgetpu", True), ("ABS", "cpu", False), ("FULLY_CONNECTED", "cpu", True)]
    assert report["first_cpu_op"]["op"] == "ABS"
    assert report["mapped_share"] == pytest.approx(1 / 3)


def test_dynamic_shapes_are_rejected():
    inputs = L.Input((4,))
    model = keras.Model(inputs, L.Dense(2)(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # batch stays dynamic (-1)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.ones((1, 4), "float32")] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    report = edgetpu.check(converter.convert())
    assert any("dynamic shape" in p for p in report["first_cpu_op"]["problems"])


def _rule_branches(x):
    """One int8 graph, one branch per rule: each pair is (allowed, not allowed)."""
    features = L.Conv2D(4, 1, name="to_4_channels")(x)
    return [
        _TF(lambda t: tf.reduce_mean(t, axis=-1))(features),        # z-mean over 4 channels
        _TF(lambda t: tf.reduce_mean(t, axis=-1))(x),               # z-mean over 3 channels
        _TF(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]]))(x),  # spatial padding
        _TF(lambda t: tf.pad(t, [[1, 0], [0, 0], [0, 0], [0, 0]]))(x),  # batch padding
        L.Conv2D(2, 3, padding="same", dilation_rate=(2, 2))(x),
        L.Conv2D(2, 3, padding="same", dilation_rate=(2, 1))(x),
        L.Dense(3)(L.Flatten()(x)),                                 # (1, 3) output
        L.Dense(3)(L.Reshape((8, 6))(x)),                           # (1, 8, 3) output
        L.Softmax()(L.Flatten()(x)),
        L.Softmax()(L.Reshape((8, 6))(x)),
        _TF(lambda t: tf.reshape(t, [1, 4, 4, 3]) * 2.0)(x),        # rank 4, batch 1
        _TF(lambda t: tf.reshape(t, [1, 2, 2, 4, 3]) * 2.0)(x),     # rank 5, a 2 beyond the inner 3
    ]


@pytest.fixture(scope="module")
def rule_graph():
    return convert.read_graph(_tflite(_rule_branches, (4, 4, 3)))


def _find(graph, name, predicate):
    matches = [op for op in graph.ops if op.name == name and predicate(op)]
    assert len(matches) == 1, [(op.name, op.inputs[0].shape) for op in graph.ops if op.name == name]
    return matches[0]


@pytest.mark.parametrize("name, allowed, rejected, message", [
    ("MEAN", lambda op: op.inputs[0].shape[-1] == 4, lambda op: op.inputs[0].shape[-1] == 3, "multiple of 4"),
    ("PAD", lambda op: op.outputs[0].shape[0] == 1, lambda op: op.outputs[0].shape[0] == 2, "batch dimension"),
    ("CONV_2D", lambda op: op.options.dilationWFactor == 2, lambda op: op.options.dilationWFactor == 1
     and op.options.dilationHFactor == 2, "dilation differs"),
    ("FULLY_CONNECTED", lambda op: len(op.outputs[0].shape) == 2, lambda op: len(op.outputs[0].shape) == 3,
     "not one-dimensional"),
    ("SOFTMAX", lambda op: len(op.inputs[0].shape) == 2, lambda op: len(op.inputs[0].shape) == 3,
     "not one-dimensional"),
    ("MUL", lambda op: len(op.inputs[0].shape) == 4, lambda op: len(op.inputs[0].shape) == 5, "innermost 3"),
])
def test_documented_op_limits(rule_graph, name, allowed, rejected, message):
    assert edgetpu.check_op(_find(rule_graph, name, allowed)) == []
    problems = edgetpu.check_op(_find(rule_graph, name, rejected))
    assert problems and message in "; ".join(problems)


def _repacked(content, edit):
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op_code(model, name):
    code = getattr(schema.BuiltinOperator, name)
    return next(c for c in model.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == code)


def test_an_op_version_newer_than_compiler_16_parses_makes_the_whole_model_unparsable(good_int8):
    assert edgetpu.check(good_int8)["ready"]  # the converter here emits CONV_2D v3

    def bump(model):
        _op_code(model, "CONV_2D").version = 6  # google-coral/edgetpu#631

    report = edgetpu.check(_repacked(good_int8, bump))
    assert not report["ready"] and report["mapped_ops"] == 0
    assert report["first_cpu_op"]["op"] == "CONV_2D"
    assert report["first_cpu_op"]["problems"] == ["CONV_2D version 6 > 5, the newest edgetpu_compiler 16.0 parses"]
    assert "cannot parse the model" in report["model_problems"][0]


def test_a_too_new_version_of_an_op_the_tpu_never_runs_still_blocks_parsing(good_int8):
    def bump(model):
        # Softmax runs on the TPU at v3 or lower; v4 did not exist in the compiler's resolver. The
        # same rule rejects e.g. EXP v2 (google-coral/libedgetpu#71) in models whose EXP runs on CPU.
        _op_code(model, "SOFTMAX").version = 4

    report = edgetpu.check(_repacked(good_int8, bump))
    assert not report["ready"] and report["mapped_share"] == 0.0
    assert any("SOFTMAX version 4 > 3" in p for p in _ops_by_name(report)["SOFTMAX"]["problems"])


@pytest.mark.parametrize("name, version, parses", [
    ("CONV_2D", 5, True), ("CONV_2D", 6, False), ("TRANSPOSE_CONV", 3, True), ("TRANSPOSE_CONV", 4, False),
    ("QUANTIZE", 2, True), ("QUANTIZE", 3, False), ("EXP", 1, True), ("EXP", 2, False),
    ("GELU", 1, False), ("TFLite_Detection_PostProcess", 1, True),
])
def test_parse_rule_matches_the_rejections_reported_against_compiler_16(name, version, parses):
    op = convert.OpInfo(index=0, name=name, version=version, inputs=(), outputs=(), options=None)
    assert (edgetpu.parse_problem(op) is None) == parses


def test_pooling_with_a_fused_activation_is_rejected(good_int8):
    def fuse_relu(model):
        code_index = model.operatorCodes.index(_op_code(model, "MAX_POOL_2D"))
        op = next(o for o in model.subgraphs[0].operators if o.opcodeIndex == code_index)
        op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU

    report = edgetpu.check(_repacked(good_int8, fuse_relu))
    assert _ops_by_name(report)["MAX_POOL_2D"]["problems"][0].startswith("fused activation")


def test_the_compiler_is_run_and_its_log_attached_when_on_path(good_int8, tmp_path, monkeypatch):
    fake = tmp_path / "edgetpu_compiler"
    fake.write_text('#!/bin/sh\n'
                    'for last; do :; done\n'
                    'out=$(dirname "$last")\n'
                    'echo "Edge TPU Compiler version 16.0.384591198"\n'
                    'echo "CONV_2D 1 Mapped to Edge TPU" > "$out/model_edgetpu.log"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    compiler = edgetpu.check(good_int8)["compiler"]
    assert compiler["returncode"] == 0 and "16.0" in compiler["stdout"]
    assert "Mapped to Edge TPU" in compiler["log"]
