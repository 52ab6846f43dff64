"""Stochastic-depth ResNet, FractalNet and RoR: sizes, schedules, joins and drop-path behaviour."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers.fractal import FractalDropPathPlan, FractalJoin
from keras_zoo.models import fractalnet, ror, stochastic_depth

pytestmark = pytest.mark.both

NAMES = ("stochastic_depth_resnet110", "fractalnet20_cifar10", "ror3_preact_resnet110", "ror3_wrn58_4")


def _bn(channels):
    return 4 * channels  # gamma, beta, moving mean, moving variance


def _sd_resnet_params(n, widths, classes=10):
    count = 9 * 3 * widths[0] + _bn(widths[0])
    c_in = widths[0]
    for width in widths:
        for _ in range(n):
            count += 9 * c_in * width + 9 * width * width + 2 * _bn(width)
            c_in = width
    return count + widths[-1] * classes + classes


def _fractal_params(widths, columns, classes=10):
    convs = 2 ** columns - 1  # f_1 has 1 conv, f_{C+1} has 2 f_C + 1
    count, c_in = 0, 3
    for width in widths:
        # The C convs that read the block input, then the rest.
        count += columns * 9 * c_in * width + (convs - columns) * 9 * width * width + convs * _bn(width)
        c_in = width
    return count + widths[-1] * classes + classes


def _ror_params(n, k, classes=10):
    widths = (16 * k, 32 * k, 64 * k)
    count = 9 * 3 * 16
    c_in = 16
    for stage, width in enumerate(widths):
        if stage > 0 or c_in != width:  # level-2 projection
            count += c_in * width + _bn(width)
        for _ in range(n):
            count += _bn(c_in) + 9 * c_in * width + _bn(width) + 9 * width * width
            c_in = width
    count += 16 * widths[-1] + _bn(widths[-1])  # level-1 projection
    return count + _bn(widths[-1]) + widths[-1] * classes + classes


EXPECTED_PARAMS = {
    "stochastic_depth_resnet110": _sd_resnet_params(18, (16, 32, 64)),
    "fractalnet20_cifar10": _fractal_params((64, 128, 256, 512, 512), 3),
    "ror3_preact_resnet110": _ror_params(18, 1),
    "ror3_wrn58_4": _ror_params(9, 4),
}


def test_hand_formulas_give_the_documented_counts():
    assert EXPECTED_PARAMS == {
        "stochastic_depth_resnet110": 1_736_058,
        "fractalnet20_cifar10": 33_745_226,
        "ror3_preact_resnet110": 1_740_282,
        "ror3_wrn58_4": 13_622_522,
    }


@pytest.mark.parametrize("name", NAMES)
def test_full_size_parameter_count(name):
    model = keras_zoo.create_model(name)
    assert model.count_params() == EXPECTED_PARAMS[name]
    info = keras_zoo.model_info(name)
    # Paper figures are rounded; the exact count stays within 3% of them except
    # FractalNet, whose quoted 38.6M this architecture does not reach (docstring).
    tolerance = 0.15 if name == "fractalnet20_cifar10" else 0.03
    assert abs(model.count_params() - info.reference_params) <= tolerance * info.reference_params
    if name == "stochastic_depth_resnet110":
        _check_survival_schedule(model)


def _check_survival_schedule(model):
    L = 54
    found = [model.get_layer(f"conv{stage}_block{block}_drop_path").survival_probability
             for stage in (2, 3, 4) for block in range(1, 19)]
    expected = [1 - (l / L) * (1 - 0.5) for l in range(1, L + 1)]
    np.testing.assert_allclose(found, expected, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_inference_graph_has_no_random_ops(name):
    model = keras_zoo.create_model(name, tiny=True)
    spec = tf.TensorSpec([1, 32, 32, 3], tf.float32)
    ops = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph.get_operations()
    assert not [op.type for op in ops if "Random" in op.type]


def test_sd_shortcut_is_average_pool_then_zero_channels():
    model = keras_zoo.create_model("stochastic_depth_resnet110", tiny=True)
    probe = keras.Model(model.input, [model.get_layer("conv2_block1_out").output,
                                       model.get_layer("conv3_block1_0_pad").output])
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    before, shortcut = (np.asarray(t) for t in probe(x, training=False))
    pooled = before.reshape(2, 16, 2, 16, 2, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(shortcut, np.pad(pooled, [(0, 0), (0, 0), (0, 0), (0, 4)]), atol=1e-5)


def test_ror_shortcut_levels():
    model = keras_zoo.create_model("ror3_preact_resnet110", tiny=True, blocks_per_stage=2)
    # Final-level shortcut + branch; the last block of a stage adds the level-2
    # shortcut, and the last block of the network the level-1 shortcut too.
    assert len(model.get_layer("conv2_block1_add").input) == 2
    assert len(model.get_layer("conv2_block2_add").input) == 3
    assert len(model.get_layer("conv3_block2_add").input) == 3
    assert len(model.get_layer("conv4_block2_add").input) == 4
    assert model.get_layer("level1_shortcut_conv").strides == (4, 4)
    with pytest.raises(ValueError):  # stage 1 keeps 16 channels: identity level-2 shortcut
        model.get_layer("conv2_level2_shortcut_conv")
    survival = [model.get_layer(f"conv{s}_block{b}_drop_path").survival_probability
                for s in (2, 3, 4) for b in (1, 2)]
    np.testing.assert_allclose(survival, [1 - l / 6 * 0.5 for l in range(1, 7)])



@pytest.mark.parametrize("name, shapes", [
    ("stochastic_depth_resnet110", [(32, 32, 4), (16, 16, 8), (8, 8, 8)]),
    ("ror3_wrn58_4", [(32, 32, 32), (16, 16, 64), (8, 8, 128)]),
    ("fractalnet20_cifar10", [(16, 16, 4), (8, 8, 8)]),
])
def test_features_only_returns_the_stage_outputs(name, shapes):
    model = keras_zoo.create_model(name, tiny=True, features_only=True)
    assert [tuple(t.shape[1:]) for t in model.outputs] == shapes
    last = keras_zoo.create_model(name, tiny=True, features_only=True, out_indices=(-1,))
    assert [tuple(t.shape[1:]) for t in last.outputs] == shapes[-1:]

# FractalNet joins -----------------------------------------------------------------------------

def _branches(n, seed=0):
    return [np.random.default_rng(seed + i).normal(size=(4, 3, 3, 2)).astype("float32") for i in range(n)]


def _subset_means(branches):
    for size in range(1, len(branches) + 1):
        for subset in itertools.combinations(range(len(branches)), size):
            yield subset, np.mean([branches[i] for i in subset], axis=0)


def _matching_subset(output, branches):
    matches = [s for s, mean in _subset_means(branches) if np.allclose(output, mean, atol=1e-5)]
    assert len(matches) == 1, "join output is not the mean of a non-empty subset of its inputs"
    return matches[0]


def test_join_inference_is_the_mean_of_all_inputs():
    branches = _branches(3)
    plan = np.zeros((4, 3), "float32")
    out = FractalJoin([1, 2, 3])(branches + [plan], training=False)
    np.testing.assert_allclose(np.asarray(out), np.mean(branches, axis=0), atol=1e-6)
    deepest = FractalJoin([2, 3], inference_column=3)(branches[1:] + [plan], training=False)
    np.testing.assert_array_equal(np.asarray(deepest), branches[2])


@pytest.mark.parametrize("drop", [0.15, 0.6])
def test_local_drop_path_is_the_mean_of_the_kept_inputs(drop):
    branches = _branches(3)
    join = FractalJoin([1, 2, 3], drop_probability=drop, seed=11)
    plan = np.zeros((4, 3), "float32")
    trials = 200
    kept = np.zeros(3)
    for _ in range(trials):
        subset = _matching_subset(np.asarray(join(branches + [plan], training=True)), branches)
        kept[list(subset)] += 1
    # P(kept) = (1 - p) + p^n / n: independent drops, plus the rescue of one input when all drop.
    expected = (1 - drop) + drop ** 3 / 3
    sigma = np.sqrt(expected * (1 - expected) / trials)
    np.testing.assert_array_less(np.abs(kept / trials - expected), 4.5 * sigma + 1e-9)


def test_global_drop_path_keeps_only_the_selected_column():
    branches = _branches(3)
    join = FractalJoin([1, 2, 3], drop_probability=0.15)
    for column in (1, 2, 3):
        plan = np.tile(np.eye(3, dtype="float32")[column - 1], (4, 1))
        np.testing.assert_array_equal(np.asarray(join(branches + [plan], training=True)), branches[column - 1])
    # A join the selected column does not pass through falls back to local drop-path.
    inner = FractalJoin([2, 3], drop_probability=0.15)
    plan = np.tile(np.eye(3, dtype="float32")[0], (4, 1))
    _matching_subset(np.asarray(inner(branches[1:] + [plan], training=True)), branches[1:])


def test_plan_picks_one_column_in_half_of_the_batches():
    plan = FractalDropPathPlan(3, global_probability=0.5, seed=5)
    x = np.zeros((6, 2), "float32")
    columns = []
    for _ in range(400):
        rows = np.asarray(plan(x, training=True))
        assert np.all(rows == rows[0])  # one draw per batch
        assert rows[0].sum() in (0.0, 1.0) and set(np.unique(rows)) <= {0.0, 1.0}
        columns.append(int(rows[0].argmax()) + 1 if rows[0].sum() else 0)
    columns = np.array(columns)
    assert 0.4 < np.mean(columns > 0) < 0.6
    assert set(columns[columns > 0]) == {1, 2, 3}
    np.testing.assert_array_equal(np.asarray(plan(x, training=False)), 0.0)


def _column_path(model, column, num_blocks, training):
    """The network restricted to one column: its convs in each block, pools and head."""
    x = model.input
    for block in range(1, num_blocks + 1):
        for index in range(1, 2 ** (column - 1) + 1):
            for part in ("conv", "bn", "relu"):
                x = model.get_layer(f"block{block}_col{column}_{index}_{part}")(x, training=training)
        x = model.get_layer(f"block{block}_pool")(x)
    x = model.get_layer("avg_pool")(x)
    return keras.Model(model.input, model.get_layer("predictions")(x))


def test_deepest_column_inference_equals_the_deepest_path():
    model = keras_zoo.create_model("fractalnet20_cifar10", tiny=True, inference_column="deepest")
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    expected = np.asarray(_column_path(model, 3, 2, training=False)(x, training=False))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-6)
    whole = keras_zoo.create_model("fractalnet20_cifar10", tiny=True)
    whole.set_weights(model.get_weights())
    assert not np.allclose(np.asarray(whole(x, training=False)), expected, atol=1e-4)


def test_global_drop_path_runs_exactly_one_column_through_the_network():
    model = keras_zoo.create_model("fractalnet20_cifar10", tiny=True, dropout_rates=None,
                                   global_drop_probability=1.0)
    x = np.random.default_rng(2).uniform(size=(4, 32, 32, 3)).astype("float32")
    paths = [_column_path(model, c, 2, training=True) for c in (1, 2, 3)]
    seen = set()
    for _ in range(8):
        out = np.asarray(model(x, training=True))
        matches = [c for c, path in zip((1, 2, 3), paths)
                   if np.allclose(out, np.asarray(path(x, training=True)), atol=1e-5)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 2


# Arguments and presets ------------------------------------------------------------------------

def test_invalid_arguments_name_the_bad_value():
    with pytest.raises(ValueError, match="does not download pretrained weights"):
        keras_zoo.create_model("ror3_wrn58_4", tiny=True, weights="imagenet")
    with pytest.raises(ValueError, match=r"non-decreasing.*Received: filters=\(16, 8, 32\)"):
        keras_zoo.create_model("stochastic_depth_resnet110", filters=(16, 8, 32))
    with pytest.raises(ValueError, match=r"inference_column.*\[1, 3\].*Received: inference_column=4"):
        keras_zoo.create_model("fractalnet20_cifar10", tiny=True, inference_column=4)
    with pytest.raises(ValueError, match=r"one rate in \[0, 1\) per block \(2 blocks\)"):
        keras_zoo.create_model("fractalnet20_cifar10", tiny=True, dropout_rates=(0.1,))
    with pytest.raises(ValueError, match="final_survival_probability.*Received"):
        keras_zoo.create_model("ror3_preact_resnet110", tiny=True, final_survival_probability=0.0)


@pytest.mark.parametrize("module, arxiv", [(stochastic_depth, "1603.09382"), (fractalnet, "1605.07648"),
                                           (ror, "1608.02908")])
def test_training_preset_is_registered_data_citing_the_paper(module, arxiv):
    for name in module.VARIANTS:
        assert keras_zoo.model_info(name).training_preset == module.TRAINING_PRESET
    preset = module.TRAINING_PRESET
    assert preset["optimizer"] == "momentum" and preset["momentum"] == 0.9
    schedule = preset["lr_schedule"]
    assert len(schedule["rates"]) == len(schedule["boundaries_epochs"]) + 1
    assert schedule["rates"][0] == preset["learning_rate"]
    assert preset["epochs"] > max(schedule["boundaries_epochs"])
    assert arxiv in preset["source"]


@pytest.mark.parametrize("name", ["stochastic_depth_resnet110", "fractalnet20_cifar10"])
def test_one_training_step_with_drop_path(name):
    """model.fit runs the training branch of the drop-path layers inside a compiled step
    (RoR uses the same StochasticDepth layer as the stochastic-depth ResNet)."""
    model = keras_zoo.create_model(name, tiny=True)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(8,))
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
