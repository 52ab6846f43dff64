"""export/convert.py converts Keras 3 models as it does tf_keras ones.

Regression: a Keras 3 model handed to the converter as its trackable object left its
weights as VAR_HANDLE / READ_VARIABLE ops without values, so the .tflite computed
garbage (a 2-layer Dense model: 3.6e25 instead of 0.59). Runs in both Keras runtimes;
the Keras 3 pass is the one that caught the bug.
"""
import numpy as np
import pytest

import keras_zoo
from export import convert, verify
from keras_zoo.backend import keras

pytestmark = pytest.mark.both

L = keras.layers
#: Ops that mean weights were left as variables instead of frozen constants.
VARIABLE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}


def _dense():
    inputs = L.Input((5,), name="x")
    return keras.Model(inputs, L.Dense(3, name="out")(L.Dense(4, activation="relu", name="hidden")(inputs)))


def _conv1d():
    inputs = L.Input((12, 3), name="x")
    x = L.Conv1D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, L.Dense(4, name="out")(L.GlobalAveragePooling1D(name="gap")(x)))


def _conv2d():
    inputs = L.Input((8, 8, 2), name="x")
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    return keras.Model(inputs, L.Dense(5, name="out")(L.Flatten(name="flatten")(x)))


def _lstm_step():
    """One LSTM step with explicit state: ``[x_t, h, c] -> [y, h', c']`` (DESIGN.md section 5)."""
    x = L.Input((1, 3), name="x")
    h = L.Input((6,), name="h")
    c = L.Input((6,), name="c")
    y, h_next, c_next = L.LSTM(6, return_state=True, unroll=True, name="lstm")(x, initial_state=[h, c])
    return keras.Model([x, h, c], [L.Dense(4, name="out")(y), h_next, c_next])


def _mobilenet():
    return keras_zoo.create_model("mobilenet", tiny=True)


MODELS = {"dense": _dense, "conv1d": _conv1d, "conv2d": _conv2d, "lstm_step": _lstm_step,
          "mobilenet_tiny": _mobilenet}


def _build(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    # Non-trivial BN statistics, so that frozen moving means/variances are checked too.
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            rng = np.random.default_rng(1)
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, rng.normal(0, 0.2, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2.0, var.shape).astype("float32")])
    return model


def _inputs(model, count, seed):
    rng = np.random.default_rng(seed)
    return [[rng.normal(0, 1, (1, *t.shape[1:])).astype("float32") for t in model.inputs] for _ in range(count)]


def _keras(model, inputs):
    outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float32_conversion_freezes_weights_and_matches_keras(name):
    model = _build(name)
    content = convert.convert(model, "float32", convert.input_signature(model))
    ops = {op.name for op in convert.read_graph(content).ops}
    assert not ops & VARIABLE_OPS, ops
    assert not any(op.startswith("Flex") for op in ops), ops
    runner = verify.TFLiteRunner(content)
    for inputs in _inputs(model, 3, seed=0):
        for lite, ref in zip(runner(inputs), _keras(model, inputs), strict=True):
            np.testing.assert_allclose(lite, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_int8_conversion_is_integer_and_close_to_keras(name):
    model = _build(name)
    signature = convert.input_signature(model)
    calibration = _inputs(model, 32, seed=1)
    content = convert.convert(model, "int8", signature, representative_inputs=calibration)
    graph = convert.read_graph(content)
    assert not {op.name for op in graph.ops} & VARIABLE_OPS
    assert [t.dtype for t in graph.inputs] == ["int8"] * len(signature)
    runner = verify.TFLiteRunner(content)
    # Inputs within the calibrated ranges: the error is int8 rounding alone.
    examples = calibration[:8]
    lite = [np.concatenate(parts) for parts in zip(*(runner(x) for x in examples))]
    ref = [np.concatenate(parts) for parts in zip(*(_keras(model, x) for x in examples))]
    for index, (got, want) in enumerate(zip(lite, ref, strict=True)):
        # Unfrozen weights are off by orders of magnitude, int8 rounding by about a step per layer.
        rmse = float(np.sqrt(np.mean((got - want) ** 2)))
        step = runner.output_details[runner.output_names[index]]["quantization"][0]
        assert rmse <= max(0.1 * float(np.std(want)), 2 * step), (name, index, rmse)
