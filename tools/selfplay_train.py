"""AlphaGo Zero self-play training on tic-tac-toe: a few generations of self-play -> train -> evaluate.

Each generation (Silver et al., 2017, Nature 550:354, Methods "Self-play training pipeline"):
the current network plays ``--games`` games against itself with MCTS (``--simulations``
per move, root Dirichlet noise, τ = 1 for the first 2 plies); a copy of it is trained
with ``model.fit`` on the positions of the last ``--window`` generations (loss
(z − v)² − πᵀ log p as the ``policy_value`` task compiles it; no L2 term here); the new
network is then evaluated. Printed per generation (win/draw/loss of the new network):

- ``net vs random``: the raw policy (most probable legal move, no search) against a random player;
- ``mcts vs random``: noise-free MCTS with ``--eval_simulations``;
- ``mcts vs previous``: MCTS against the previous generation's MCTS (first 2 plies sampled, τ = 1,
  so that the games differ);
- ``optimal``: fraction of the 4,520 reachable positions where the policy's top legal move is
  minimax-optimal.

Every network is evaluated once on all 4,520 reachable positions up front (the cache of
``NetworkEvaluator``), so search costs no further network calls.

Usage: python tools/selfplay_train.py --generations 4 --games 120 --simulations 32
"""
import argparse
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.data import selfplay as sp
from keras_zoo.data import tictactoe as ttt


def optimal_move_fraction(model, boards, best):
    policy = np.asarray(model(np.stack([ttt.encode(b) for b in boards]), training=False)[0])[:, :9]
    legal = np.array([[c == 0 for c in b] for b in boards])
    moves = np.argmax(np.where(legal, policy, -1.0), axis=-1)
    return float(np.mean([m in opt for m, opt in zip(moves, best)]))


def fmt(result):
    return f"{result['win']:.2f}/{result['draw']:.2f}/{result['loss']:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--games", type=int, default=120, help="self-play games per generation")
    parser.add_argument("--simulations", type=int, default=32, help="MCTS simulations per self-play move")
    parser.add_argument("--eval_games", type=int, default=100)
    parser.add_argument("--eval_simulations", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--window", type=int, default=2, help="generations of games kept for training")
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    boards = ttt.positions()
    best = [ttt.minimax(b)[1] for b in boards]
    model = sp.fresh_network(seed=args.seed)
    print(f"random vs random: {fmt(sp.match(sp.RandomPlayer(), sp.RandomPlayer(), args.eval_games, rng))}")
    header = ("gen", "positions", "net vs random", "mcts vs random", "mcts vs previous", "optimal", "seconds")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    replay, previous = [], None
    for generation in range(args.generations + 1):
        start = time.time()
        positions = 0
        if generation:
            planes, pi, z, _ = sp.self_play(sp.NetworkEvaluator(model, boards), args.games,
                                            simulations=args.simulations, rng=rng)
            replay = (replay + [(planes, ttt._with_pass(pi), z)])[-args.window:]
            x, p, v = (np.concatenate(parts) for parts in zip(*replay))
            positions = len(x)
            previous, model = model, sp.fresh_network(seed=args.seed)
            model.set_weights(previous.get_weights())
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                          loss=["categorical_crossentropy", "mse"])
            model.fit(x, [p, v], batch_size=32, epochs=args.epochs, shuffle=True, verbose=0)
        evaluator = sp.NetworkEvaluator(model, boards)
        raw = sp.match(sp.MCTSPlayer(evaluator, 0), sp.RandomPlayer(), args.eval_games, rng)
        searched = sp.match(sp.MCTSPlayer(evaluator, args.eval_simulations), sp.RandomPlayer(), args.eval_games, rng)
        versus = "-"
        if previous is not None:
            opponent = sp.MCTSPlayer(sp.NetworkEvaluator(previous, boards), args.eval_simulations, sampled_moves=2)
            versus = fmt(sp.match(sp.MCTSPlayer(evaluator, args.eval_simulations, sampled_moves=2), opponent,
                                  args.eval_games, rng))
        print(f"| {generation} | {positions} | {fmt(raw)} | {fmt(searched)} | {versus} | "
              f"{optimal_move_fraction(model, boards, best):.3f} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
