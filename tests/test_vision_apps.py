"""keras.applications behaviours of every registered image classifier, and the
stage shapes of ``features_only`` (parameter counts and weight parity with
keras.applications are in test_vision_params.py).

The behaviour tests take their names from the registry (task
"image_classification") and build each variant's tiny config, so a new
classifier is checked the moment it is registered.
"""
import importlib

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers import imagenet_utils

pytestmark = pytest.mark.both

IMAGE_MODELS = keras_zoo.list_models(task="image_classification")


def _distinct_tiny_builds(names):
    """One name per distinct (builder, tiny config): e.g. densenet121/169/201 share a tiny
    config, so testing all three would run the same graph three times."""
    seen, distinct = set(), []
    for name in names:
        info = keras_zoo.model_info(name)
        config = {k: v for k, v in info.resolved_config(tiny=True).items() if k != "name"}
        key = (info.builder, repr(sorted(config.items())))
        if key not in seen:
            seen.add(key)
            distinct.append(name)
    return distinct


TINY_MODELS = _distinct_tiny_builds(IMAGE_MODELS)


def _tiny(name, **overrides):
    info = keras_zoo.model_info(name)
    config = info.resolved_config(tiny=True, **overrides)
    return info.builder(**config), config


def _tiny_shape(name):
    info = keras_zoo.model_info(name)
    return tuple(info.inputs_for(info.resolved_config(tiny=True))[0].shape)


def _images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(batch, *shape)).astype("float32")


def _numpy(x):
    return np.asarray(tf.convert_to_tensor(x))


def test_registry_has_the_vision_families():
    for name in ("densenet121", "densenet_bc_100_k12", "resnext50_32x4d", "resnext29_8x64d",
                 "squeezenet1_0", "squeezenet1_1", "mobilenet"):
        assert name in IMAGE_MODELS


@pytest.mark.parametrize("name", TINY_MODELS)
def test_pooling_options_on_a_four_channel_input_tensor(name):
    """include_top=False with pooling None|"avg"|"max", built on a layer output with 4 channels."""
    height, width, _ = _tiny_shape(name)
    shape = (height + 8, width + 16, 4)
    images = _images(shape)

    def build(pooling):
        source = keras.Input(shape=shape)
        scaled = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(source)
        model, _ = _tiny(name, include_top=False, pooling=pooling, input_tensor=scaled)
        assert len(model.inputs) == 1 and tuple(model.inputs[0].shape) == (None, *shape)
        assert "to_signed" in [layer.name for layer in model.layers]
        return model

    feature_map = build(None)
    maps = _numpy(feature_map(images, training=False))
    assert maps.ndim == 4 and maps.shape[0] == 2
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled_model = build(pooling)
        pooled_model.set_weights(feature_map.get_weights())
        pooled = _numpy(pooled_model(images, training=False))
        assert pooled.shape == (2, maps.shape[-1])
        np.testing.assert_allclose(pooled, reduce(maps, axis=(1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_classes_activation_and_weights_file_on_one_channel_input(name, tmp_path):
    """classes, classifier_activation, a custom 1-channel input_shape, and weights=<local path>."""
    height, width, _ = _tiny_shape(name)
    shape = (height + 16, width + 8, 1)
    images = _images(shape)
    logits_model, _ = _tiny(name, input_shape=shape, classes=7, classifier_activation=None)
    assert tuple(logits_model.input_shape) == (None, *shape)
    logits_model.set_weights([w + 0.01 for w in logits_model.get_weights()])
    path = str(tmp_path / f"{name}.weights.h5")
    logits_model.save_weights(path)

    softmax_model, _ = _tiny(name, input_shape=shape, classes=7, classifier_activation="softmax",
                             weights=path)
    logits = _numpy(logits_model(images, training=False))
    probs = _numpy(softmax_model(images, training=False))
    assert logits.shape == probs.shape == (2, 7)
    assert not np.allclose(logits.sum(axis=-1), 1.0)
    np.testing.assert_allclose(probs, _numpy(tf.nn.softmax(logits)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_invalid_arguments_raise_clear_errors(name, tmp_path):
    with pytest.raises(ValueError, match="not download pretrained weights.*Received: weights='imagenet'"):
        _tiny(name, weights="imagenet")
    missing = str(tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="no file exists.*Received: weights="):
        _tiny(name, weights=missing)
    with pytest.raises(ValueError, match=r"3 entries \(height, width.*Received: input_shape=\(32, 32\)"):
        _tiny(name, input_shape=(32, 32))
    with pytest.raises(ValueError, match="rank 4.*Received: input_tensor with shape"):
        _tiny(name, input_tensor=keras.Input(shape=(32, 3)))
    with pytest.raises(ValueError, match=r"at least \d+.*Received: input_shape=\(2, 2, 3\)"):
        _tiny(name, input_shape=(2, 2, 3))
    with pytest.raises(ValueError, match="`pooling` must be one of.*Received: pooling='mean'"):
        _tiny(name, include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="`classes` must be a positive integer.*Received: classes=0"):
        _tiny(name, classes=0)
    with pytest.raises(ValueError, match="needs `features_only=True`"):
        _tiny(name, out_indices=(0,))


@pytest.mark.parametrize("name", TINY_MODELS)
def test_features_only_returns_downsampling_stages(name):
    shape = _tiny_shape(name)
    images = _images(shape)
    model, _ = _tiny(name, features_only=True)
    features = [_numpy(f) for f in model(images, training=False)]
    assert len(features) >= 2
    for previous, current in zip(features, features[1:]):
        assert current.ndim == 4 and current.shape[0] == 2
        assert current.shape[1] <= previous.shape[1] and current.shape[2] <= previous.shape[2]
    assert features[-1].shape[1] < features[0].shape[1], "the stages never downsample"
    assert all(np.all(np.isfinite(f)) for f in features)

    picked = imagenet_utils.feature_extractor(name, out_indices=(1, -1), tiny=True)
    outputs = picked(images, training=False)
    assert [tuple(o.shape) for o in outputs] == [features[1].shape, features[-1].shape]
    with pytest.raises(ValueError, match=r"`out_indices` must be .*Received: out_indices=\(99,\)"):
        imagenet_utils.feature_extractor(name, out_indices=(99,), tiny=True)


# Stage shapes derived from the papers' layer tables, not read off the model.
def _densenet_stage_shapes(size, stem_filters, blocks, growth_rate):
    """Table 1 rules: stem at stride 2, then each block adds n*k maps; transitions halve maps."""
    shapes, channels, stride = [(size // 2, size // 2, stem_filters)], stem_filters, 4
    for layers in blocks:
        channels += layers * growth_rate
        shapes.append((size // stride, size // stride, channels))
        channels, stride = channels // 2, stride * 2
    return shapes


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("densenet121", dict(input_shape=(64, 64, 3)), _densenet_stage_shapes(64, 16, (1, 1, 1, 1), 8)),
        ("densenet_bc_100_k12", dict(input_shape=(32, 32, 3)),
         [(32, 32, 8), (32, 32, 12), (16, 16, 10), (8, 8, 9)]),
        ("resnext50_32x4d", dict(input_shape=(64, 64, 3)),
         [(32, 32, 8), (16, 16, 16), (8, 8, 32), (4, 4, 64), (2, 2, 128)]),
        ("resnext29_8x64d", dict(), [(32, 32, 8), (32, 32, 16), (16, 16, 32), (8, 8, 64)]),
    ],
)
def test_tiny_feature_shapes(name, overrides, expected):
    model = keras_zoo.create_model(name, tiny=True, features_only=True, **overrides)
    assert [tuple(t.shape[1:]) for t in model.outputs] == expected


def test_full_size_feature_shapes_mobilenet_and_squeezenet():
    # MobileNet Table 1 at alpha=0.25: widths 64, 128, 256, 512, 1024 times 0.25 at strides 2..32.
    mobilenet = keras_zoo.create_model("mobilenet", alpha=0.25, input_shape=(64, 64, 3), features_only=True)
    assert [tuple(t.shape[1:]) for t in mobilenet.outputs] == [
        (32, 32, 16), (16, 16, 32), (8, 8, 64), (4, 4, 128), (2, 2, 256)
    ]
    # SqueezeNet Table 1 (227x227 input): conv1 111x111x96, fire4 55x55x256, fire8 27x27x512, fire9 13x13x512.
    squeezenet = keras_zoo.create_model("squeezenet1_0", input_shape=(227, 227, 3), features_only=True)
    assert [tuple(t.shape[1:]) for t in squeezenet.outputs] == [
        (111, 111, 96), (55, 55, 256), (27, 27, 512), (13, 13, 512)
    ]



# Epochs of the papers' schedules: DenseNet Sec. 4.2, ResNeXt Sec. 4 and 5.3.
PRESET_EPOCHS = {"densenet_bc_100_k12": 300, "densenet121": 90, "resnext29_8x64d": 300, "resnext50_32x4d": 90}


@pytest.mark.parametrize("family", ["densenet", "resnext", "squeezenet", "mobilenet"])
def test_training_presets_are_registered_for_every_variant(family):
    module = importlib.import_module(f"keras_zoo.models.{family}")
    for name in module.VARIANTS:
        preset = keras_zoo.model_info(name).training_preset
        assert preset["optimizer"] in ("momentum", "rmsprop") and preset["learning_rate"] > 0
        assert preset["lr_schedule"] and "arXiv" in preset["source"]
        if name in PRESET_EPOCHS:
            assert preset["epochs"] == PRESET_EPOCHS[name]
