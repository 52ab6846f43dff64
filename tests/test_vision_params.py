"""Full-size parameter counts of DenseNet, ResNeXt, SqueezeNet and MobileNet against
their papers and reference implementations, and weight parity with keras.applications.

Builds only (no forward pass) except for the two parity tests, which run at 64x64.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras

# Counts are runtime-independent and run in the Keras 3 pass only; the weight-copy
# parity test runs under both runtimes (tf_keras names some stem layers differently).

FAMILIES = ("densenet", "resnext", "squeezenet", "mobilenet")
NAMES = [
    name for name in keras_zoo.list_models(task="image_classification")
    if keras_zoo.model_info(name).family.rsplit(".", 1)[-1] in FAMILIES
]
# Paper tables print millions with one decimal, and papers round differently:
# ResNeXt-29 16x64d counts 68,155,210 trainable weights, printed "68.1M" (Table 7).
PAPER_PRECISION = 100_000


def _trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_every_variant_has_a_reference():
    assert len(NAMES) == 12
    for name in NAMES:
        assert keras_zoo.model_info(name).reference_params, f"{name} has no reference count"


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_reference(name):
    info = keras_zoo.model_info(name)
    model = keras_zoo.create_model(name)
    source = info.reference_source
    count = _trainable_count(model) if "trainable" in source else model.count_params()
    if "rounded to 0.1M" in source:
        assert abs(count - info.reference_params) < PAPER_PRECISION, (name, count, source)
    else:
        assert count == info.reference_params, (name, count, source)


def test_squeezenet_bypass_parameters():
    """Sec. 6: simple bypass adds no weights; complex adds a 1x1 conv (with bias) around
    the fire modules whose widths change: fire2 96->128, fire4 128->256, fire6 256->384,
    fire8 384->512."""
    vanilla = keras_zoo.model_info("squeezenet1_0").reference_params
    assert keras_zoo.create_model("squeezenet1_0", bypass="simple").count_params() == vanilla
    widths = ((96, 128), (128, 256), (256, 384), (384, 512))
    complex_extra = sum(c_in * c_out + c_out for c_in, c_out in widths)
    assert keras_zoo.create_model("squeezenet1_0", bypass="complex").count_params() == vanilla + complex_extra


@pytest.mark.parametrize("alpha, depth_multiplier", [(0.5, 1), (0.75, 2)])
def test_mobilenet_multipliers_match_keras_applications(alpha, depth_multiplier):
    ours = keras_zoo.create_model("mobilenet", alpha=alpha, depth_multiplier=depth_multiplier, classes=10)
    reference = keras.applications.MobileNet(
        alpha=alpha, depth_multiplier=depth_multiplier, weights=None, classes=10
    )
    assert ours.count_params() == reference.count_params()


def _copy_weights_by_layer_name(source, target):
    """Copies every weighted layer; tf_keras spells DenseNet's stem ``conv1/conv``."""
    by_name = {layer.name.replace("/", "_"): layer for layer in source.layers if layer.weights}
    for layer in target.layers:
        if layer.weights:
            assert layer.name in by_name, f"{layer.name} has no twin in keras.applications"
            layer.set_weights(by_name.pop(layer.name).get_weights())
    assert not by_name, f"layers of keras.applications without a twin: {sorted(by_name)}"


@pytest.mark.both
@pytest.mark.parametrize(
    "name, reference_builder",
    [("densenet121", "DenseNet121"), ("mobilenet", "MobileNet")],
)
def test_keras_applications_weights_copy_across_by_layer_name(name, reference_builder):
    reference = getattr(keras.applications, reference_builder)(
        weights=None, input_shape=(64, 64, 3), classifier_activation=None
    )
    # Non-trivial BN statistics and perturbed kernels, so that a swapped gamma/mean would show.
    rng = np.random.default_rng(0)
    for variable in reference.weights:
        value = variable.numpy()
        noise = rng.uniform(0.0, 0.2, size=value.shape) if "variance" in variable.name else (
            rng.normal(0.0, 0.05, size=value.shape))
        variable.assign((value + noise).astype(value.dtype))
    model = keras_zoo.create_model(name, input_shape=(64, 64, 3), classifier_activation=None)
    assert model.count_params() == reference.count_params()
    _copy_weights_by_layer_name(reference, model)
    images = np.random.default_rng(1).uniform(-1, 1, size=(2, 64, 64, 3)).astype("float32")
    ours = tf.convert_to_tensor(model(images, training=False))
    theirs = tf.convert_to_tensor(reference(images, training=False))
    assert not np.allclose(ours.numpy(), ours.numpy()[:1])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
