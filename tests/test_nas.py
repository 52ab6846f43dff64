"""NAS controller (arXiv:1611.01578): NumPy transcription of the unroll, sampling, children, REINFORCE, task."""
import csv
import json
import os

import numpy as np
import pytest

from keras_zoo.backend import keras
from keras_zoo.models import nas

pytestmark = pytest.mark.both


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_controller(rnn, choices, skips):
    """Sec. 3.1-3.3 step by step: anchor (content-based sigmoids), then one softmax per token."""
    num_layers, counts, units = rnn.num_layers, rnn.choice_counts, rnn.units
    value = lambda variable: np.asarray(variable, "float64")  # noqa: E731
    w = {"go": value(rnn.go), "emb": value(rnn.token_embedding)}
    for k in range(2):
        w[f"k{k}"], w[f"b{k}"] = value(rnn.lstm_kernels[k]), value(rnn.lstm_biases[k])
    heads = [(value(k), value(b)) for k, b in zip(rnn.head_kernels, rnn.head_biases)]
    w_prev, w_curr, v = value(rnn.w_prev), value(rnn.w_curr), value(rnn.v)
    state = [(np.zeros(units), np.zeros(units)) for _ in range(2)]

    def step(x):
        for k in range(2):
            h, c = state[k]
            z = np.concatenate([x, h]) @ w[f"k{k}"] + w[f"b{k}"]
            i, f, g, o = np.split(z, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            state[k] = (h, c)
            x = h
        return x

    x = w["go"][0]
    offsets = np.cumsum([0] + list(counts[:-1]))
    token_logits = [np.zeros((num_layers, n)) for n in counts]
    skip_logits = np.zeros((num_layers, num_layers))
    anchors = []
    for i in range(num_layers):
        h_i = step(x)
        for j, h_j in enumerate(anchors):
            # P(layer j feeds layer i) = sigmoid(vᵀ tanh(W_prev h_j + W_curr h_i))
            skip_logits[i, j] = (np.tanh(h_j @ w_prev + h_i @ w_curr) @ v)[0]
        selected = skips[i, :i]
        x = (selected @ np.array(anchors).reshape(i, units)) / (1.0 + selected.sum()) if i else np.zeros(units)
        anchors.append(h_i)
        for t in range(len(counts)):
            h = step(x)
            token_logits[t][i] = h @ heads[t][0] + heads[t][1]
            x = w["emb"][offsets[t] + choices[i, t]]
    return token_logits, skip_logits


def test_unrolled_controller_matches_numpy_transcription():
    keras.utils.set_random_seed(0)
    controller = nas.NASController(num_layers=4, units=6)
    rng = np.random.default_rng(0)
    choices = np.stack([rng.integers(0, n, size=4) for n in (4, 4, 4, 3)], -1)[None].astype("int32")
    skips = np.tril(rng.random((4, 4)) < 0.5, -1).astype("float32")[None]
    outputs = controller([choices, skips])
    tokens, skip_logits = numpy_controller(nas.controller_rnn(controller), choices[0], skips[0])
    for name, expected in zip(nas.TOKEN_NAMES, tokens):
        np.testing.assert_allclose(np.asarray(outputs[name])[0], expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(outputs["skip"])[0], skip_logits, atol=1e-5)
    assert np.all(np.asarray(outputs["skip"])[0][np.triu_indices(4)] == 0)


def test_sampling_log_prob_equals_teacher_forced_log_prob():
    keras.utils.set_random_seed(1)
    controller = nas.NASController(num_layers=5, units=8, init_range=1.0)  # peaked distributions
    for seed in range(3):
        choices, skips, sampled = nas.sample_architecture(controller, np.random.default_rng(seed))
        assert choices.shape == (1, 5, 4) and skips.shape == (1, 5, 5)
        assert np.all(np.triu(skips[0]) == 0)
        scored = float(nas.log_prob(controller([choices, skips]), choices, skips)[0])
        assert scored == pytest.approx(sampled, abs=1e-4)


def test_fixed_stride_is_not_predicted():
    controller = nas.NASController(num_layers=3, choices={**nas.PAPER_CHOICES, "stride": (1,)},
                                   skip_connections=False, units=8)
    choices, skips, _ = nas.sample_architecture(controller, np.random.default_rng(0))
    assert set(controller.output_names) == {"filter_height", "filter_width", "num_filters"}
    specs = nas.decode(choices[0], None, nas.controller_rnn(controller).choices)
    assert [s.stride for s in specs] == [1, 1, 1]
    assert [s.inputs for s in specs] == [(), (0,), (1,)]  # a plain chain without anchors


def test_child_follows_the_papers_skip_rules():
    specs = [nas.LayerSpec(3, 3, 24, 2, ()),      # 4x4
             nas.LayerSpec(5, 1, 36, 1, ()),      # no input: reads the image, 8x8
             nas.LayerSpec(1, 7, 48, 3, (0, 1)),  # 4x4 padded to 8x8, concatenated: 60 channels
             nas.LayerSpec(3, 3, 64, 1, (2,))]
    child = nas.build_child(specs, input_shape=(8, 8, 1), classes=10)
    assert tuple(child.get_layer("layer1_conv").input.shape[1:]) == (8, 8, 1)
    assert tuple(child.get_layer("layer2_concat").output.shape[1:]) == (8, 8, 60)
    assert tuple(child.get_layer("layer2_conv").output.shape[1:]) == (3, 3, 48)
    assert child.get_layer("layer0_conv").kernel.shape == (3, 3, 1, 24)
    assert child.get_layer("layer2_conv").kernel.shape == (1, 7, 60, 48)
    # Layers 0-2 are consumed, so only layer 3 reaches the classifier.
    assert tuple(child.get_layer("avg_pool").output.shape[1:]) == (64,)
    out = child(np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32"))
    np.testing.assert_allclose(np.asarray(out).sum(-1), 1.0, rtol=1e-5)
    # Unconsumed outputs of different sizes are padded and concatenated before the head.
    head = nas.build_child(specs[:2], input_shape=(8, 8, 1))
    assert tuple(head.get_layer("head_concat").output.shape[1:]) == (8, 8, 60)


def test_bad_descriptions_are_clear_errors():
    with pytest.raises(ValueError, match="earlier layers"):
        nas.build_child([nas.LayerSpec(3, 3, 24, 1, (0,))])
    with pytest.raises(ValueError, match="num_layers"):
        nas.NASController(num_layers=0)
    with pytest.raises(ValueError, match="nothing to search"):
        nas.NASController(choices={k: (1,) for k in nas.TOKEN_NAMES})


def test_reinforce_moves_probability_towards_rewarded_architectures():
    from training.tasks_nas import reinforce_update

    keras.utils.set_random_seed(2)
    for advantage, direction in ((1.0, 1), (-1.0, -1)):
        controller = nas.NASController(num_layers=3, units=8)
        choices, skips, before = nas.sample_architecture(controller, np.random.default_rng(3))
        reinforce_update(controller, keras.optimizers.SGD(0.05), choices, skips, np.array([advantage]))
        after = float(nas.log_prob(controller([choices, skips]), choices, skips)[0])
        assert direction * (after - before) > 1e-3


def _digits(batch_size=16):
    from keras_zoo.data import load_dataset
    from keras_zoo.registry import InputSpec

    return load_dataset("digits", task="image_classification", input_specs=[InputSpec((8, 8, 1))],
                        batch_size=batch_size, seed=0, data_dir=None)


def test_nas_task_runs_the_search_with_the_loops_callbacks(tmp_path):
    from training import loop
    from training.tasks import get_task

    bundle = _digits()
    task = get_task("nas", {"nas_trials": 2, "child_epochs": 1})
    controller = nas.NASController(num_layers=2, units=8)
    task.compile(controller, keras.optimizers.Adam(0.01), {})
    callbacks, _ = loop._callbacks(controller, str(tmp_path), str(tmp_path / "backup"), task.monitor, False)
    weights_before = [w.copy() for w in controller.get_weights()]
    history = task.fit(controller, bundle.train.repeat(), validation_data=bundle.validation.repeat(),
                       epochs=10, steps_per_epoch=3, validation_steps=2, callbacks=callbacks, verbose=0)
    # One log epoch per update; the first has zero advantage (the baseline starts at its reward).
    assert len(history.history["reward"]) == 2
    assert all(0.0 <= a <= 1.0 for a in history.history["val_accuracy"])
    with open(tmp_path / "training_log.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1]
    assert any(not np.allclose(a, b) for a, b in zip(weights_before, controller.get_weights()))
    trials = task.result.trials
    assert len(trials) == 2 and trials[0]["reward"] == pytest.approx(trials[0]["val_accuracy"] ** 3)
    metrics = task.evaluate(controller, bundle.test, 2, 0)
    assert 0.0 <= metrics["best_child_test_accuracy"] <= 1.0
    results = task.after_training(controller, bundle, str(tmp_path), {})
    assert (tmp_path / "nas_rewards.png").read_bytes()[:4] == b"\x89PNG"
    assert os.path.exists(tmp_path / "best_child.keras")
    assert json.loads((tmp_path / "nas_trials.json").read_text())[0]["architecture"] == trials[0]["architecture"]
    assert results["best_val_accuracy"] == max(t["val_accuracy"] for t in trials)


def test_random_search_draws_uniformly_and_never_updates():
    from training.tasks_nas import search

    bundle = _digits()
    controller = nas.NASController(num_layers=2, units=8)
    before = controller.get_weights()
    result = search(controller, bundle.train.repeat(), bundle.validation.repeat(), trials=1, child_epochs=1,
                    steps_per_epoch=2, validation_steps=1, classes=10, random_search=True)
    assert len(result.trials) == 1
    for a, b in zip(before, controller.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="optimizer"):
        search(controller, bundle.train, bundle.validation, trials=1, child_epochs=1)
