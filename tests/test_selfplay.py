"""AlphaGo Zero MCTS and self-play on tic-tac-toe (keras_zoo.data.selfplay)."""
import numpy as np
import pytest

from keras_zoo.data import selfplay as sp
from keras_zoo.data import tictactoe as ttt

pytestmark = pytest.mark.both


def _oracle(boards):
    """Uniform prior and the exact minimax value for the player to move."""
    return [(np.full(9, 1 / 9), float(ttt.minimax(b)[0])) for b in boards]


@pytest.mark.parametrize("board, best", [
    ((1, 1, 0, -1, -1, 0, 0, 0, 0), 2),   # X to move completes the top row
    ((1, 1, 0, 0, -1, 0, 0, 0, 0), 2),    # O to move must block the top row
    ((1, 1, 0, -1, -1, 0, 0, 0, 1), 5),   # O to move: winning at 5 beats blocking at 2
])
def test_search_with_a_perfect_value_oracle_wins_and_blocks(board, best):
    visits = sp.search([board], _oracle, 100, noise_fraction=0.0)[0]
    assert int(np.argmax(visits)) == best
    assert visits.sum() == 100 and np.all(visits[np.asarray(board) != 0] == 0)


def test_root_noise_and_terminal_boards():
    rng = np.random.default_rng(0)
    board = (1, 0, 0, 0, -1, 0, 0, 0, 0)
    visits = sp.search([board], _oracle, 40, rng=rng)[0]
    assert visits.sum() == 40 and visits[0] == visits[4] == 0
    with pytest.raises(ValueError, match="finished game"):
        sp.search([(1, 1, 1, -1, -1, 0, 0, 0, 0)], _oracle, 4)
    with pytest.raises(ValueError, match="rng"):
        sp.search([board], _oracle, 4)


def test_visit_policy_temperatures():
    rng = np.random.default_rng(0)
    visits = np.array([0, 3, 1, 0, 0, 0, 0, 0, 4])
    np.testing.assert_allclose(sp.visit_policy(visits, 1.0, rng), visits / 8)
    np.testing.assert_array_equal(sp.visit_policy(visits, 0.0, rng), np.eye(9)[8])


@pytest.fixture(scope="module")
def games():
    evaluator = sp.NetworkEvaluator(sp.fresh_network())
    return sp.self_play(evaluator, 12, simulations=8, rng=np.random.default_rng(3))


def test_pi_is_a_distribution_over_legal_moves(games):
    planes, pi, z, game = games
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-6)
    occupied = (planes[..., 0] + planes[..., 1]).reshape(-1, 9) > 0
    assert np.all(pi[occupied] == 0)


def test_z_is_the_outcome_for_the_player_to_move(games):
    planes, pi, z, game = games
    for g in np.unique(game):
        zg, positions = z[game == g, 0], planes[game == g]
        np.testing.assert_array_equal(zg[1:], -zg[:-1])  # the player to move alternates
        # The last mover either won (z = +1 for them) or filled the board (draw).
        assert zg[-1] == 1 or (zg[-1] == 0 and len(zg) == 9)
        # Positions with X to move (colour plane 1) all carry X's result, the others O's.
        x_to_move = positions[:, 0, 0, 2] == 1
        assert len(set(zg[x_to_move])) == 1 and np.all(zg[~x_to_move] == -zg[x_to_move][0])


def test_dataset_is_deterministic_and_formatted_like_tictactoe():
    from keras_zoo.data import list_datasets

    assert "tictactoe_selfplay" in list_datasets()
    a = sp.fresh_network().get_weights()
    b = sp.fresh_network().get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    bundles = [sp.selfplay_bundle(games=18, simulations=4, batch_size=2) for _ in range(2)]
    assert bundles[0].info == bundles[1].info
    for split in ("validation", "test"):  # unshuffled splits
        first, second = (list(getattr(bundle, split).unbatch().as_numpy_iterator()) for bundle in bundles)
        assert len(first) == len(second) > 0
        for (x1, (p1, z1)), (x2, (p2, z2)) in zip(first, second):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(p1, p2)
            np.testing.assert_array_equal(z1, z2)
    planes, (pi, z) = next(iter(bundles[0].train))
    assert planes.shape == (2, 3, 3, 3) and pi.shape == (2, 10) and z.shape == (2, 1)
    assert np.all(np.asarray(pi)[:, 9] == 0)
    with pytest.raises(ValueError, match="policy_value"):
        sp.selfplay_bundle(games=2, simulations=1, task="image_classification")


def test_a_tiny_generation_trains_and_is_evaluated():
    from keras_zoo.backend import keras

    model = sp.fresh_network()
    evaluator = sp.NetworkEvaluator(model, ttt.positions())  # one network call for every position
    planes, pi, z, _ = sp.self_play(evaluator, 8, simulations=8, rng=np.random.default_rng(1))
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=["categorical_crossentropy", "mse"])
    history = model.fit(planes, [ttt._with_pass(pi), z], batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(x, y) for x, y in zip(before, model.get_weights()))
    rng = np.random.default_rng(0)
    result = sp.match(sp.MCTSPlayer(sp.NetworkEvaluator(model, ttt.positions()), 8), sp.RandomPlayer(), 6, rng)
    assert set(result) == {"win", "draw", "loss"}
    assert abs(sum(result.values()) - 1) < 1e-9
    with pytest.raises(ValueError, match="3, 3, 3"):
        import keras_zoo
        sp.NetworkEvaluator(keras_zoo.create_model("alphago_zero", tiny=True))
