"""Tic-tac-toe positions labelled by exhaustive minimax, for the AlphaGo networks.

Go is out of scope; tic-tac-toe is small enough to solve exactly, so every one of
its 4,520 reachable non-terminal positions gets the targets an AlphaGo Zero network
learns from self-play, without the search: π uniform over the optimal moves and
z the game-theoretic outcome for the player to move. These are minimax labels,
not self-play MCTS statistics.

Planes follow AlphaGo Zero's layout at history length 1 (Silver et al., 2017,
Methods): (3, 3, 3) = stones of the player to move, the opponent's stones, and a
constant plane that is 1 when X (the first player) is to move.

- ``tictactoe``: targets ``(π over 9 points + pass (always 0), z)`` for ``alphago_zero``.
- ``tictactoe_moves``: targets π over the 9 points, for ``alphago_policy``.
- ``tictactoe_values``: targets z, for ``alphago_value``.

Splits are fixed by a hash of the position (80/10/10); model_overrides set
``board_size=3, input_planes=3``.
"""
import functools

import numpy as np
import tensorflow as tf

from keras_zoo.data._base import DatasetBundle, batch_splits, register_dataset, require_task, split_of

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def winner(board):
    """1 if X has three in a row, -1 if O has, 0 otherwise; ``board`` is a 9-tuple of 1/-1/0."""
    for a, b, c in LINES:
        if board[a] != 0 and board[a] == board[b] == board[c]:
            return board[a]
    return 0


def to_move(board):
    """1 (X) or -1 (O): X moves first."""
    return 1 if sum(board) == 0 else -1


def legal_moves(board):
    return [i for i in range(9) if board[i] == 0]


def is_terminal(board):
    return winner(board) != 0 or not legal_moves(board)


def play(board, move):
    if board[move] != 0:
        raise ValueError(f"Point {move} is occupied. Received: board={board}, move={move}")
    return board[:move] + (to_move(board),) + board[move + 1:]


@functools.lru_cache(maxsize=None)
def minimax(board):
    """(value for the player to move in {-1, 0, 1}, optimal moves) of a position."""
    if winner(board):
        return -1, ()  # the previous player has just won
    moves = legal_moves(board)
    if not moves:
        return 0, ()
    values = {move: -minimax(play(board, move))[0] for move in moves}
    best = max(values.values())
    return best, tuple(m for m in moves if values[m] == best)


def encode(board):
    """(3, 3, 3) planes: own stones, opponent stones, X-to-move."""
    player = to_move(board)
    cells = np.asarray(board, "float32").reshape(3, 3)
    colour = np.full((3, 3), 1.0 if player == 1 else 0.0, "float32")
    return np.stack([cells == player, cells == -player, colour], axis=-1).astype("float32")


def positions():
    """Every reachable non-terminal position, in a fixed order."""
    seen, frontier = {}, [(0,) * 9]
    while frontier:
        board = frontier.pop()
        if board in seen or is_terminal(board):
            continue
        seen[board] = None
        frontier.extend(play(board, m) for m in legal_moves(board))
    return sorted(seen)


def labelled_positions():
    """(planes (P, 3, 3, 3), π (P, 9), z (P, 1), keys) for all ``positions()``."""
    boards = positions()
    planes = np.stack([encode(b) for b in boards])
    pi = np.zeros((len(boards), 9), "float32")
    z = np.zeros((len(boards), 1), "float32")
    for i, board in enumerate(boards):
        value, best = minimax(board)
        pi[i, list(best)] = 1.0 / len(best)
        z[i, 0] = value
    keys = ["".join("xo."[(-c) % 3] for c in b) for b in boards]
    return planes, pi, z, keys


def _load(name, targets_of, task, batch_size, seed):
    require_task(name, task, ("policy_value",))
    planes, pi, z, keys = labelled_positions()
    split = np.array([split_of(k) for k in keys])
    splits = {s: tf.data.Dataset.from_tensor_slices((planes[split == s], targets_of(pi[split == s], z[split == s])))
              for s in ("train", "validation", "test")}
    return DatasetBundle(
        **batch_splits(name, splits, batch_size, seed),
        model_overrides={"board_size": 3, "input_planes": 3},
        info={"sizes": {s: int((split == s).sum()) for s in splits}, "positions": len(keys),
              "draw_fraction": float((z == 0).mean())},
    )


def _with_pass(pi):
    return np.concatenate([pi, np.zeros((len(pi), 1), "float32")], axis=-1)


@register_dataset("tictactoe")
def load_tictactoe(_, *, task, input_specs, batch_size, seed, data_dir):
    """Targets (π with a pass entry, z) for the AlphaGo Zero dual-head network."""
    return _load("tictactoe", lambda pi, z: (_with_pass(pi), z), task, batch_size, seed)


@register_dataset("tictactoe_moves")
def load_tictactoe_moves(_, *, task, input_specs, batch_size, seed, data_dir):
    """Targets π over the 9 points, for the AlphaGo policy network."""
    return _load("tictactoe_moves", lambda pi, z: pi, task, batch_size, seed)


@register_dataset("tictactoe_values")
def load_tictactoe_values(_, *, task, input_specs, batch_size, seed, data_dir):
    """Targets z, for the AlphaGo value network."""
    return _load("tictactoe_values", lambda pi, z: z, task, batch_size, seed)
