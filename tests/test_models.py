"""Generic tests for every registered model (timm style): the list comes from the registry.

Each runs the variant's ``tiny`` config, under both Keras runtimes.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.registry import TASKS, example_inputs

pytestmark = pytest.mark.both

MODEL_NAMES = keras_zoo.list_models()


def _build(name):
    keras.utils.set_random_seed(0)  # the same initial weights on every run
    info = keras_zoo.model_info(name)
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    return info, config, model


def _as_list(outputs):
    return list(outputs.values()) if isinstance(outputs, dict) else tf.nest.flatten(outputs)


def test_registry_is_not_empty():
    assert MODEL_NAMES == sorted(MODEL_NAMES)
    assert len(MODEL_NAMES) >= 3


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_metadata(name):
    info = keras_zoo.model_info(name)
    assert info.task in TASKS
    assert info.paper, f"{name} cites no paper"
    assert info.default_dataset, f"{name} has no default dataset"
    assert info.tiny, f"{name} has no tiny config"
    assert "tflite" in info.export and "edgetpu" in info.export
    if info.reference_params is not None:
        assert info.reference_source, f"{name} gives a reference count without its source"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_finite_and_gradients(name):
    info, config, model = _build(name)
    inputs = example_inputs(info, config, batch_size=2)
    assert isinstance(model, keras.Model)
    assert len(model.inputs) == len(inputs)
    outputs = _as_list(model(inputs if len(inputs) > 1 else inputs[0], training=False))
    for out in outputs:
        assert out.shape[0] == 2
        assert np.all(np.isfinite(np.asarray(out))), f"{name}: non-finite output"

    rng = np.random.default_rng(1)
    with tf.GradientTape() as tape:
        outs = _as_list(model(inputs if len(inputs) > 1 else inputs[0], training=False))
        # A random projection of each output, so that softmax sums do not cancel.
        loss = tf.add_n([
            tf.reduce_sum(tf.cast(o, tf.float32) * rng.standard_normal(o.shape).astype("float32"))
            for o in outs
            if o.dtype.is_floating
        ])
    grads = tape.gradient(loss, model.trainable_weights)
    missing = [w.name for w, g in zip(model.trainable_weights, grads) if g is None]
    assert not missing, f"{name}: no gradient reaches {missing}"
    zero = [
        w.name for w, g in zip(model.trainable_weights, grads)
        if not np.any(np.asarray(tf.convert_to_tensor(g)))
    ]
    assert not zero, f"{name}: all-zero gradient for {zero}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_and_keras_file_round_trip(name, tmp_path):
    info, config, model = _build(name)
    inputs = example_inputs(info, config, batch_size=2)
    feed = inputs if len(inputs) > 1 else inputs[0]
    expected = _as_list(model(feed, training=False))

    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for a, b in zip(expected, _as_list(clone(feed, training=False))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)

    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(expected, _as_list(loaded(feed, training=False))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown model name 'qrnn_lm_chr'.*qrnn_lm_char"):
        keras_zoo.create_model("qrnn_lm_chr")


def test_registering_a_name_twice_is_an_error():
    from keras_zoo.registry import register_model

    info = keras_zoo.model_info(MODEL_NAMES[0])
    with pytest.raises(ValueError, match="already registered"):
        register_model(info)
