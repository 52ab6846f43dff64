"""AlphaGo Zero self-play on tic-tac-toe: MCTS guided by a dual-head network, games, matches.

Search follows Silver et al. (2017, Nature 550:354, Methods "Search algorithm"):
each simulation descends the tree choosing a = argmax_a Q(s, a) + U(s, a) with
U = c_puct P(s, a) sqrt(Σ_b N(s, b)) / (1 + N(s, a)) (PUCT); the leaf is evaluated
once by the network, (p, v) = f(s), its edges get priors p (masked to legal moves and
renormalised), and v is backed up with a sign flip at every ply (each node's Q is from
the point of view of its player to move). The root priors are mixed with Dirichlet
noise, P = (1 − ε) p + ε η, η ~ Dir(α) (ε = 0.25; α = 0.3 as for chess in AlphaZero,
tic-tac-toe having a similar handful of legal moves). The move is played from
π ∝ N^(1/τ): τ = 1 for the first ``temperature_moves`` plies, then τ → 0 (argmax).
A self-play game yields one (planes, π, z) triple per position, z ∈ {−1, 0, 1} the
final result from the point of view of the player to move there.

Simulations run in lock-step over many games so that the leaves of all trees go
through the network in one batch; evaluations are cached per position (the network
is fixed during a generation, so the cache is exact).

``tictactoe_selfplay`` is a registered dataset (task ``policy_value``): a fixed set of
self-play games of a freshly initialised tiny ``alphago_zero`` (weights drawn from a
seeded NumPy generator, so the data do not depend on the global Keras seed), split
80/10/10 by game and formatted like ``tictactoe``: inputs (3, 3, 3) planes from
``tictactoe.encode``, targets (π over 9 points + pass (always 0), z). Use
``selfplay_bundle(network)`` to generate from a given network.
"""
import math

import numpy as np
import tensorflow as tf

from keras_zoo.data import tictactoe as ttt
from keras_zoo.data._base import SPLIT_SEED, DatasetBundle, batch_splits, register_dataset, require_task, split_of

C_PUCT = 1.5
DIRICHLET_ALPHA = 0.3
NOISE_FRACTION = 0.25
#: The dataset's games and simulations per move.
GAMES = 160
SIMULATIONS = 32


def terminal_value(board):
    """Value for the player to move of a finished game (−1: the previous player won, 0: draw), else None."""
    if ttt.winner(board):
        return -1.0
    return 0.0 if not ttt.legal_moves(board) else None


class NetworkEvaluator:
    """Wraps a dual-head network (planes -> [policy, value]) as ``boards -> [(priors (9,), value)]``.

    The policy may carry a pass entry (AlphaGo Zero's 10th output); it is dropped,
    tic-tac-toe having no pass. Results are cached by position; ``positions`` (e.g.
    ``tictactoe.positions()``, all 4,520) are evaluated up front in one call.
    """

    def __init__(self, model, positions=()):
        shape = tuple(model.inputs[0].shape[1:])
        if shape != (3, 3, 3) or len(model.outputs) != 2:
            raise ValueError("Self-play needs a dual-head network on (3, 3, 3) tic-tac-toe planes, e.g. "
                             "create_model('alphago_zero', tiny=True, board_size=3, input_planes=3). "
                             f"Received: input shape {shape}, {len(model.outputs)} outputs")
        self.model = model
        self.cache = {}
        if positions:
            self(list(positions))

    def __call__(self, boards):
        missing = [b for b in dict.fromkeys(boards) if b not in self.cache]
        if missing:
            policy, value = self.model(np.stack([ttt.encode(b) for b in missing]), training=False)
            policy, value = np.asarray(policy)[:, :9], np.asarray(value).reshape(-1)
            for index, board in enumerate(missing):
                self.cache[board] = (policy[index], float(value[index]))
        return [self.cache[b] for b in boards]


class _Node:
    __slots__ = ("board", "legal", "prior", "visits", "value_sum", "children")

    def __init__(self, board):
        self.board = board
        self.legal = np.array([c == 0 for c in board])
        self.prior = None  # set on expansion
        self.visits = np.zeros(9)
        self.value_sum = np.zeros(9)
        self.children = {}

    def expand(self, priors):
        p = np.where(self.legal, np.maximum(np.asarray(priors, "float64"), 0.0), 0.0)
        total = p.sum()
        self.prior = p / total if total > 0 else self.legal / self.legal.sum()

    def select(self, c_puct):
        q = np.divide(self.value_sum, self.visits, out=np.zeros(9), where=self.visits > 0)
        # sqrt(max(ΣN, 1)) instead of sqrt(ΣN): the first simulation follows the prior, not move 0.
        u = c_puct * self.prior * math.sqrt(max(self.visits.sum(), 1.0)) / (1.0 + self.visits)
        return int(np.argmax(np.where(self.legal, q + u, -np.inf)))


def search(boards, evaluator, simulations, *, rng=None, c_puct=C_PUCT, dirichlet_alpha=DIRICHLET_ALPHA,
           noise_fraction=NOISE_FRACTION):
    """Runs MCTS from each (non-terminal) board; returns visit counts N(s0, a), shape (len(boards), 9).

    Args:
        boards: 9-tuples of 1 (X) / −1 (O) / 0.
        evaluator: ``boards -> [(priors (9,), value for the player to move)]``.
        simulations: simulations per root.
        rng: NumPy generator for the root noise (needed when ``noise_fraction`` > 0).
        c_puct, dirichlet_alpha, noise_fraction: PUCT constant, α and ε of the root noise.
    """
    for board in boards:
        if terminal_value(board) is not None:
            raise ValueError(f"Cannot search from a finished game. Received: board={board}")
    if noise_fraction > 0 and rng is None:
        raise ValueError("Root noise needs a NumPy generator: pass rng=np.random.default_rng(seed), or "
                         f"noise_fraction=0. Received: rng=None, noise_fraction={noise_fraction}")
    roots = [_Node(b) for b in boards]
    for root, (priors, _) in zip(roots, evaluator(boards)):
        root.expand(priors)
        if noise_fraction > 0:
            noise = np.zeros(9)
            noise[root.legal] = rng.dirichlet([dirichlet_alpha] * int(root.legal.sum()))
            root.prior = (1 - noise_fraction) * root.prior + noise_fraction * noise
    for _ in range(simulations):
        paths, values, leaves = [], [], []
        for root in roots:
            node, path = root, []
            while True:
                move = node.select(c_puct)
                path.append((node, move))
                if move not in node.children:
                    node.children[move] = _Node(ttt.play(node.board, move))
                node = node.children[move]
                value = terminal_value(node.board)
                if value is not None or node.prior is None:
                    break
            paths.append(path)
            values.append(value)
            if value is None:
                leaves.append((len(paths) - 1, node))
        # One network call for the new leaves of every tree.
        for (index, leaf), (priors, value) in zip(leaves, evaluator([leaf.board for _, leaf in leaves])):
            leaf.expand(priors)
            values[index] = value
        for path, value in zip(paths, values):
            for node, move in reversed(path):
                value = -value  # the leaf's value is for its player; the parent's edge needs the mover's
                node.visits[move] += 1
                node.value_sum[move] += value
    return np.stack([root.visits for root in roots])


def visit_policy(visits, temperature, rng):
    """π ∝ N^(1/τ); τ = 0 gives a one-hot on a most-visited move (ties broken at random)."""
    visits = np.asarray(visits, "float64")
    if temperature == 0:
        best = np.flatnonzero(visits == visits.max())
        pi = np.zeros_like(visits)
        pi[rng.choice(best)] = 1.0
        return pi
    powered = visits ** (1.0 / temperature)
    return powered / powered.sum()


def self_play(evaluator, games, *, simulations, rng, temperature_moves=2, **search_kwargs):
    """Plays ``games`` games of the evaluator against itself (in lock-step).

    Returns:
        planes (P, 3, 3, 3), π (P, 9), z (P, 1) from the player to move, game index (P,).
    """
    boards = [(0,) * 9] * games
    history = [[] for _ in range(games)]
    active = list(range(games))
    while active:
        visits = search([boards[g] for g in active], evaluator, simulations, rng=rng, **search_kwargs)
        for g, n in zip(active, visits):
            pi = visit_policy(n, 1.0 if len(history[g]) < temperature_moves else 0.0, rng)
            history[g].append((boards[g], pi))
            boards[g] = ttt.play(boards[g], int(rng.choice(9, p=pi)))
        active = [g for g in active if terminal_value(boards[g]) is None]
    planes, pis, zs, index = [], [], [], []
    for g in range(games):
        outcome = ttt.winner(boards[g])  # +1 X won, −1 O won, 0 draw
        for board, pi in history[g]:
            planes.append(ttt.encode(board))
            pis.append(pi)
            zs.append([outcome * ttt.to_move(board)])
            index.append(g)
    return (np.stack(planes), np.asarray(pis, "float32"), np.asarray(zs, "float32"), np.asarray(index))


class RandomPlayer:
    """Plays a uniformly random legal move."""

    def select(self, boards, rng):
        return [int(rng.choice(ttt.legal_moves(b))) for b in boards]


class MCTSPlayer:
    """Plays the most visited move of a noise-free search (τ → 0).

    ``simulations=0`` plays the network's most probable legal move (no search).
    ``sampled_moves`` plies at the start sample from π with τ = 1, so that matches
    between deterministic players are not one repeated game.
    """

    def __init__(self, evaluator, simulations, sampled_moves=0, c_puct=C_PUCT):
        self.evaluator, self.simulations = evaluator, simulations
        self.sampled_moves, self.c_puct = sampled_moves, c_puct

    def select(self, boards, rng):
        if self.simulations == 0:
            visits = [np.where(np.array(b) == 0, p + 1e-12, -1.0) for b, (p, _) in zip(boards, self.evaluator(boards))]
        else:
            visits = search(boards, self.evaluator, self.simulations, c_puct=self.c_puct, noise_fraction=0.0)
        moves = []
        for board, n in zip(boards, visits):
            if 9 - board.count(0) < self.sampled_moves and self.simulations:
                moves.append(int(rng.choice(9, p=visit_policy(n, 1.0, rng))))
            else:
                moves.append(int(rng.choice(np.flatnonzero(n == np.max(n)))))
        return moves


def match(player, opponent, games, rng):
    """Win/draw/loss fractions of ``player``, who is X in even games and O in odd ones."""
    boards = [(0,) * 9] * games
    sides = [1 if g % 2 == 0 else -1 for g in range(games)]
    active = list(range(games))
    while active:
        for agent, mine in ((player, True), (opponent, False)):
            turn = [g for g in active if terminal_value(boards[g]) is None
                    and (ttt.to_move(boards[g]) == sides[g]) == mine]
            for g, move in zip(turn, agent.select([boards[g] for g in turn], rng) if turn else []):
                boards[g] = ttt.play(boards[g], move)
        active = [g for g in active if terminal_value(boards[g]) is None]
    results = np.array([ttt.winner(b) * s for b, s in zip(boards, sides)])
    return {"win": float((results == 1).mean()), "draw": float((results == 0).mean()),
            "loss": float((results == -1).mean())}


def fresh_network(seed=SPLIT_SEED, **config):
    """A tiny ``alphago_zero`` at 3×3 with Glorot-uniform kernels from a seeded NumPy generator.

    The 1×1 head convolutions keep the builder's non-negative range (``head_initializer``).
    """
    import keras_zoo

    model = keras_zoo.create_model("alphago_zero", tiny=True, board_size=3, input_planes=3, **config)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        shape = tuple(kernel.shape)
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
        if layer.name.endswith("_head_conv"):
            values = rng.uniform(0.0, math.sqrt(6.0 / (fan_in + 1)), shape)
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            values = rng.uniform(-limit, limit, shape)
        kernel.assign(values.astype("float32"))
    return model


def selfplay_bundle(network=None, *, games=GAMES, simulations=SIMULATIONS, batch_size=32, seed=0,
                    task="policy_value", game_seed=SPLIT_SEED):
    """Self-play games of ``network`` (default ``fresh_network()``) as a ``tictactoe``-style bundle."""
    require_task("tictactoe_selfplay", task, ("policy_value",))
    evaluator = NetworkEvaluator(network if network is not None else fresh_network(), ttt.positions())
    planes, pi, z, game = self_play(evaluator, games, simulations=simulations, rng=np.random.default_rng(game_seed))
    split = np.array([split_of(f"selfplay-game-{g}") for g in game])
    targets = (ttt._with_pass(pi), z)
    splits = {s: tf.data.Dataset.from_tensor_slices((planes[split == s], tuple(t[split == s] for t in targets)))
              for s in ("train", "validation", "test")}
    return DatasetBundle(
        **batch_splits("tictactoe_selfplay", splits, batch_size, seed),
        model_overrides={"board_size": 3, "input_planes": 3},
        info={"sizes": {s: int((split == s).sum()) for s in splits}, "games": games, "simulations": simulations,
              "x_win_fraction": float(np.mean([z[game == g][0, 0] == 1 for g in range(games)])),
              "draw_fraction": float((z == 0).mean())},
    )


@register_dataset("tictactoe_selfplay")
def load_tictactoe_selfplay(_, *, task, input_specs, batch_size, seed, data_dir):
    """Self-play games of a fresh seeded network; targets (π with a pass entry, z) for ``alphago_zero``."""
    return selfplay_bundle(batch_size=batch_size, seed=seed, task=task)
