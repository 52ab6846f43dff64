"""NAS with REINFORCE (arXiv:1611.01578) against random search with the same budget, on the digits.

    python tools/nas_report.py --trials=10 --child_epochs=1 --output_dir=/tmp/nas_report

Both searches draw ``trials`` children from the same space (the paper's choice sets,
skip connections) and train each for ``child_epochs`` epochs on the digits training
split; the reward is the best validation accuracy cubed. Writes ``nas_rewards.png``
(child validation accuracy per trial with running means) and ``report.json``, and
prints a table with the ratio of REINFORCE's mean accuracy to random search's.
Small by design: the defaults took 16 minutes on 2 CPU cores shared with a load average
near 20 (roughly 5 minutes on an idle machine). At such budgets the controller
barely moves, and the comparison says more about the search's plumbing than about NAS.
"""
import argparse
import json
import os
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.data import load_dataset
from keras_zoo.models import nas
from keras_zoo.registry import InputSpec
from training import tasks_nas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="/tmp/nas_report")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--child_epochs", type=int, default=1)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--controller_learning_rate", type=float, default=0.005,
                        help="Adam's learning rate for the controller (paper: 0.0006 over 12,800 children)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)

    bundle = load_dataset("digits", task="image_classification", input_specs=[InputSpec((8, 8, 1))],
                          batch_size=32, seed=args.seed, data_dir=None)
    results, report = {}, {}
    for label, random_search in (("REINFORCE", False), ("random search", True)):
        keras.utils.set_random_seed(args.seed)
        controller = nas.NASController(num_layers=args.num_layers)
        start = time.time()
        result = tasks_nas.search(controller, bundle.train, bundle.validation, args.trials, args.child_epochs,
                                  keras.optimizers.Adam(args.controller_learning_rate),
                                  random_search=random_search, seed=args.seed,
                                  on_update=lambda i, logs, label=label: print(
                                      f"{label} child {i + 1}/{args.trials}: val_accuracy={logs['val_accuracy']:.4f} "
                                      f"({time.time() - start:.0f} s)", flush=True))
        _, test_accuracy = result.best_child.evaluate(bundle.test, verbose=0)
        accuracy = np.array([r["val_accuracy"] for r in result.trials])
        results[label] = result
        report[label] = {
            "val_accuracy": accuracy.tolist(), "mean_val_accuracy": float(accuracy.mean()),
            "second_half_mean_val_accuracy": float(accuracy[len(accuracy) // 2:].mean()),
            "best_val_accuracy": result.best["val_accuracy"], "best_child_test_accuracy": float(test_accuracy),
            "best_architecture": result.best["architecture"], "best_params": result.best["params"],
            "seconds": time.time() - start,
        }
    tasks_nas.plot_rewards(results, os.path.join(args.output_dir, "nas_rewards.png"), window=4)
    with open(os.path.join(args.output_dir, "report.json"), "w") as f:
        json.dump({"settings": vars(args), **report}, f, indent=2)

    base = report["random search"]["mean_val_accuracy"]
    print(f"{'search':<14} {'mean acc':>9} {'2nd half':>9} {'best val':>9} {'best test':>9} {'mean/random':>11} "
          f"{'seconds':>8}")
    for label, entry in report.items():
        print(f"{label:<14} {entry['mean_val_accuracy']:>9.4f} {entry['second_half_mean_val_accuracy']:>9.4f} "
              f"{entry['best_val_accuracy']:>9.4f} {entry['best_child_test_accuracy']:>9.4f} "
              f"{entry['mean_val_accuracy'] / base:>11.3f} {entry['seconds']:>8.0f}")
    for label, entry in report.items():
        print(f"{label} best architecture ({entry['best_params']} parameters):")
        for i, layer in enumerate(entry["best_architecture"]):
            print(f"  layer {i}: {layer}")
    print(f"Wrote {args.output_dir}/nas_rewards.png and report.json")


if __name__ == "__main__":
    main()
