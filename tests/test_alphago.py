"""AlphaGo (Nature 2016) and AlphaGo Zero (Nature 2017) networks: parameter counts by
hand from the Methods text, output semantics, the position bias and the AGZ loss."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.models.alphago import PositionBias, alphago_zero_loss

pytestmark = pytest.mark.both


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_policy_network_parameter_count():
    # 5x5 conv (k=192) on 48 planes, 11 3x3 convs, 1x1 conv without shared bias + 361 position biases.
    expected = _conv(5, 48, 192) + 11 * _conv(3, 192, 192) + _conv(1, 192, 1, bias=False) + 361
    model = keras_zoo.create_model("alphago_policy")
    assert _trainable(model) == expected == keras_zoo.model_info("alphago_policy").reference_params
    assert model.output_shape == (None, 361)


def test_value_network_parameter_count():
    # Layers 1-12 as the policy net on 49 planes, 1x1 conv (1 filter), FC 256, FC 1.
    expected = (_conv(5, 49, 192) + 11 * _conv(3, 192, 192) + _conv(1, 192, 1)
                + 361 * 256 + 256 + 256 + 1)
    model = keras_zoo.create_model("alphago_value")
    assert _trainable(model) == expected == keras_zoo.model_info("alphago_value").reference_params
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("name, blocks", [("alphago_zero", 19), ("alphago_zero_40b", 39)])
def test_alphago_zero_parameter_count(name, blocks):
    bn = 2 * 256  # trainable gamma and beta; the moving statistics are not trained
    stem = _conv(3, 17, 256, bias=False) + bn
    block = 2 * (_conv(3, 256, 256, bias=False) + bn)
    policy_head = _conv(1, 256, 2, bias=False) + 2 * 2 + 2 * 361 * 362 + 362
    value_head = _conv(1, 256, 1, bias=False) + 2 + 361 * 256 + 256 + 256 + 1
    expected = stem + blocks * block + policy_head + value_head
    assert keras_zoo.model_info(name).reference_params == expected
    if blocks == 39:
        return  # building 46M parameters is slow; the 20-block build checks the wiring
    model = keras_zoo.create_model(name)
    assert _trainable(model) == expected == keras_zoo.model_info(name).reference_params
    assert [tuple(o.shape) for o in model.outputs] == [(None, 362), (None, 1)]
    assert sum(1 for layer in model.layers if layer.name.endswith("_add")) == blocks


def test_tiny_outputs_are_distributions_and_values():
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 2, size=(4, 5, 5, 3)).astype("float32")
    policy, value = keras_zoo.create_model("alphago_zero", tiny=True)(planes)
    assert policy.shape == (4, 26) and value.shape == (4, 1)
    np.testing.assert_allclose(np.sum(policy, -1), 1.0, atol=1e-5)
    assert np.all(np.abs(value) <= 1)
    sl_policy = keras_zoo.create_model("alphago_policy", tiny=True)(planes[..., :1].repeat(4, -1))
    assert sl_policy.shape == (4, 25)
    np.testing.assert_allclose(np.sum(sl_policy, -1), 1.0, atol=1e-5)


def test_position_bias_is_one_bias_per_point():
    layer = PositionBias()
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 1)).astype("float32")
    layer.build(x.shape)
    bias = np.arange(12, dtype="float32")
    layer.set_weights([bias])
    np.testing.assert_allclose(layer(x), x.reshape(2, 12) + bias, atol=1e-6)
    with pytest.raises(ValueError, match="static"):
        PositionBias().build((None, None, 4, 1))


def test_alphago_zero_loss_matches_numpy():
    rng = np.random.default_rng(2)
    pi = rng.dirichlet(np.ones(10), size=6).astype("float32")
    p = rng.dirichlet(np.ones(10), size=6).astype("float32")
    z = rng.choice([-1.0, 0.0, 1.0], size=6).astype("float32")
    v = np.tanh(rng.standard_normal((6, 1))).astype("float32")
    weights = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(5).astype("float32")]
    expected = np.mean((z - v[:, 0]) ** 2 - np.sum(pi * np.log(p), -1))
    expected += 1e-4 * sum(np.sum(w ** 2) for w in weights)
    got = alphago_zero_loss(pi, z, p, v, weights=[tf.constant(w) for w in weights], c=1e-4)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="residual_blocks"):
        keras_zoo.create_model("alphago_zero", tiny=True, residual_blocks=0)
    with pytest.raises(ValueError, match="filters"):
        keras_zoo.create_model("alphago_policy", tiny=True, filters=-3)


# ----------------------------- tic-tac-toe data -----------------------------

def test_minimax_labels():
    from keras_zoo.data import tictactoe as ttt

    assert ttt.minimax((0,) * 9) == (0, tuple(range(9)))  # every opening move draws
    board = (1, 1, 0, -1, -1, 0, 0, 0, 0)  # X to move wins at point 2
    assert ttt.minimax(board) == (1, (2,))
    board = (1, 1, 0, 0, -1, 0, 0, 0, 0)  # O to move draws only by blocking at 2
    assert ttt.minimax(board) == (0, (2,))
    assert ttt.minimax((1, 1, 0, -1, 0, 0, 0, 0, 0))[0] == -1  # blocking loses to X's fork at 4
    planes = ttt.encode(board)
    assert planes.shape == (3, 3, 3) and planes[0, 2, 2] == 0  # O to move
    np.testing.assert_array_equal(planes[..., 0].ravel(), np.asarray(board) == -1)
    assert len(ttt.positions()) == 4520


def test_tictactoe_datasets_fit_the_networks():
    from keras_zoo.data import load_dataset

    for dataset, name, target_shapes in [("tictactoe", "alphago_zero", [(8, 10), (8, 1)]),
                                         ("tictactoe_moves", "alphago_policy", [(8, 9)]),
                                         ("tictactoe_values", "alphago_value", [(8, 1)])]:
        info = keras_zoo.model_info(name)
        assert info.default_dataset == dataset
        bundle = load_dataset(dataset, task=info.task, input_specs=[], batch_size=8)
        planes, targets = next(iter(bundle.train))
        model = keras_zoo.create_model(name, tiny=True, **bundle.model_overrides)
        outputs = model(planes)
        assert [tuple(t.shape) for t in tf.nest.flatten(targets)] == target_shapes
        assert [tuple(o.shape) for o in tf.nest.flatten(outputs)] == target_shapes
        np.testing.assert_allclose(np.sum(tf.nest.flatten(targets)[0], -1) if dataset != "tictactoe_values"
                                   else 1.0, 1.0, atol=1e-6)


@pytest.mark.slow
def test_dual_head_network_trained_on_minimax_labels_beats_a_random_player():
    from keras_zoo.backend import keras
    from keras_zoo.data import load_dataset, tictactoe as ttt

    keras.utils.set_random_seed(0)
    bundle = load_dataset("tictactoe", task="policy_value", input_specs=[], batch_size=64)
    model = keras_zoo.create_model("alphago_zero", tiny=True, **bundle.model_overrides)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=["categorical_crossentropy", "mse"])
    model.fit(bundle.train, epochs=30, verbose=0)
    rng = np.random.default_rng(0)
    outcomes = []
    for game in range(100):
        board, net = (0,) * 9, 1 if game % 2 == 0 else -1
        while not ttt.is_terminal(board):
            if ttt.to_move(board) == net:
                probs = np.asarray(model(ttt.encode(board)[None])[0])[0]
                move = max(ttt.legal_moves(board), key=lambda m: probs[m])
            else:
                move = int(rng.choice(ttt.legal_moves(board)))
            board = ttt.play(board, move)
        outcomes.append(ttt.winner(board) * net)
    outcomes = np.array(outcomes)
    assert (outcomes == 1).mean() >= 0.7 and (outcomes == -1).mean() <= 0.1
