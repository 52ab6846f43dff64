"""Magnitude pruning (export/qat.py ``prune``, ``--prune`` of export/tflite.py) over every conv family.

The fast tests prune each family's tiny variant for two fine-tuning steps and check the
sparsity of every prunable kernel, that the stripped model is a plain model computing the
masked network, and one full ``--prune`` export. The slow sweep exports every family
with ``--prune`` both as float32 and through QAT (sparsity-preserving) to int8.
"""
import os

import pytest

if os.environ.get("TF_USE_LEGACY_KERAS", "0").lower() not in ("1", "true"):
    pytest.skip("pruning runs under tf_keras (tfmot); see tools/test.sh", allow_module_level=True)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_zoo  # noqa: E402
from export import convert, qat, tflite  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402

pytestmark = pytest.mark.tf_keras

#: One variant per conv family, with what tfmot cannot prune (left dense, reported).
FAMILIES = {
    "densenet_bc_100_k12": (),
    "resnext29_8x64d": (),
    "squeezenet1_1": (),
    # tfmot's prune registry prunes no depthwise kernel (about 1% of MobileNet's weights).
    "mobilenet": ("DepthwiseConv2D",),
    "stochastic_depth_resnet110": (),
    "ror3_preact_resnet110": (),
    "fractalnet20_cifar10": (),
    # Binary kernels are signs: a zero would be a third value, so they stay dense.
    "binarynet_cifar": ("BinaryConv2D", "BinaryDense"),
}
TARGET = 0.5
#: QAT failures that are not pruning's: the same export fails without --prune.
QAT_FAILS = {}  # DenseNet's transition pools convert since export/qat.py leaves their output scale to the input


def _sweep():
    for name in sorted(FAMILIES):
        yield pytest.param(name, "float32", id=f"{name}-float32")
        marks = (pytest.mark.xfail(reason=QAT_FAILS[name], raises=convert.ExportError, strict=True)
                 if name in QAT_FAILS else ())
        yield pytest.param(name, "qat", id=f"{name}-qat", marks=marks)


def _tiny(name, **overrides):
    info = keras_zoo.model_info(name)
    keras.utils.set_random_seed(0)
    return info.builder(**info.resolved_config(tiny=True, **overrides))


def _data(model, count=16, batch=8):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (count, *model.input_shape[1:])).astype("float32")
    y = rng.integers(0, model.output_shape[-1], count).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _prunable_kernels(layer):
    return [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel")]


#: In CI: depthwise kernels left dense (mobilenet), concatenations (densenet), fire modules
#: (squeezenet) and binary layers (binarynet); the residual/fractal families are in the slow run
#: (60-160 s each on a loaded machine, with nothing to prune that the others do not have).
IN_CI = ("mobilenet", "densenet_bc_100_k12", "squeezenet1_1", "binarynet_cifar")


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in IN_CI else pytest.mark.slow)
                                  for name in sorted(FAMILIES)])
def test_prune_reaches_the_target_in_every_prunable_kernel(name):
    overrides = {"binarize": False} if name == "binarynet_cifar" else {}
    model = _tiny(name, **overrides)
    data = _data(model)
    stripped, info = qat.prune(model, data, "image_classification", TARGET, epochs=1, steps_per_epoch=2)
    dense = () if overrides else FAMILIES[name]
    assert {entry["class"] for entry in info["left_unpruned"]} == set(dense), info["left_unpruned"]
    assert [l.name for l in stripped.layers] == [l.name for l in model.layers]
    assert not any("prune" in w.name for w in stripped.weights), "strip_pruning must leave plain layers"
    pruned = [l for l in stripped.layers if _prunable_kernels(l) and type(l).__name__ not in dense]
    assert pruned and set(info["layer_sparsity"]) == {l.name for l in pruned}
    for layer in pruned:
        # The schedule ends at the last step, so each kernel is pruned to the target (up to rounding).
        for kernel in _prunable_kernels(layer):
            zeros = float(np.mean(kernel.numpy() == 0))
            assert abs(zeros - TARGET) <= 1.0 / kernel.shape.num_elements() + 1e-6, (layer.name, zeros)
    x = next(iter(data))[0]
    outputs = np.asarray(stripped(x, training=False))
    assert np.all(np.isfinite(outputs)) and np.allclose(outputs.sum(-1), 1.0, atol=1e-4)


def test_binary_layers_are_reported_unpruned_and_the_rest_is_pruned():
    model = _tiny("binarynet_cifar")
    _, info = qat.prune(model, _data(model), "image_classification", TARGET, epochs=1, steps_per_epoch=2)
    left = {entry["class"] for entry in info["left_unpruned"]}
    assert left == set(FAMILIES["binarynet_cifar"])
    assert not info["layer_sparsity"], "every weighted kernel of BinaryNet is binary"


def test_prune_export_of_a_family_is_sparse_verified_and_smaller_gzipped(tmp_path):
    model = _tiny("squeezenet1_1")
    data = tflite.ExportData(_data(model, count=32), _data(model, count=16))
    dense = tflite.export_model(model=model, task="image_classification", data=data, quantization="float32",
                                output=str(tmp_path / "dense"), num_verify=8, log=lambda *_: None)
    report = tflite.export_model(model=model, task="image_classification", data=data, quantization="float32",
                                 prune=0.8, qat_epochs=1, steps_per_epoch=2, output=str(tmp_path / "pruned"),
                                 num_verify=8, log=lambda *_: None)
    assert report["passed"] and report["pruning"]["overall_sparsity"] == pytest.approx(0.8, abs=0.02)
    assert report["gzip_size_bytes"] < 0.7 * dense["gzip_size_bytes"], "the pruned zeros must compress"


@pytest.mark.slow
@pytest.mark.parametrize("name,quantization", list(_sweep()))
def test_prune_export_sweep(name, quantization, tmp_path):
    model = _tiny(name, **({"binarize": False} if name == "binarynet_cifar" else {}))
    data = tflite.ExportData(_data(model, count=32), _data(model, count=16))
    report = tflite.export_model(model=model, task="image_classification", data=data, quantization=quantization,
                                 prune=TARGET, qat_epochs=1, steps_per_epoch=2, output=str(tmp_path / "out"),
                                 num_verify=8, log=lambda *_: None)
    assert report["passed"], report["verification"]
    assert report["pruning"]["overall_sparsity"] == pytest.approx(TARGET, abs=0.05)
    if quantization == "qat":
        graph = convert.read_graph((tmp_path / "out" / "model.tflite").read_bytes())
        assert [t.dtype for t in graph.inputs] == ["int8"]
