"""Meta-trains the LSTM optimizer (arXiv:1606.04474) on 10-d quadratics and on a digits MLP,
then compares it with Adam, SGD and RMSprop on held-out problems of each kind.

    python tools/learned_optimizer_report.py --output_dir=/tmp/l2l_report

Held out: quadratics drawn with seeds the meta-training never used; MLPs with new
initialisations on the digits *test* split (meta-training sees the train split).
The baselines' learning rates are picked per problem kind from {1e-3, 1e-2, 1e-1, 1}
on one tuning problem (the paper tuned the baselines too). Writes
``loss_curves.png``, ``report.json`` and the trained weights (``quadratic.npz``,
``mlp.npz``, loadable with ``LearnedOptimizer(weights=...)`` or as the training loop's optimizer,
``python -m training.train --optimizer=learned:DIR/mlp.npz --learning_rate=1``); prints a table of
the mean final loss and its ratio to Adam's in the same run. The defaults took
19 minutes on 2 CPU cores shared with a load average near 20 (most of it tracing
and running the 20-step unrolls); use fewer ``--*_iterations`` for a quicker look.
"""
import argparse
import json
import os
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.optimizers import learned

BASELINES = {"Adam": keras.optimizers.Adam, "SGD": keras.optimizers.SGD, "RMSprop": keras.optimizers.RMSprop}
LEARNING_RATES = (1e-3, 1e-2, 1e-1, 1.0)


def _tuned_learning_rates(problem_set, steps, seed):
    tuned = {}
    for name, cls in BASELINES.items():
        finals = {lr: np.nan_to_num(learned.optimize(problem_set, steps, cls(learning_rate=lr), seed=seed)[-1],
                                    nan=np.inf)
                  for lr in LEARNING_RATES}
        tuned[name] = min(finals, key=finals.get)
    return tuned


def _curves(problem_set, steps, net, tuned, seeds):
    curves = {"LSTM (learned)": np.stack([learned.optimize(problem_set, steps, net, seed=s) for s in seeds])}
    for name, cls in BASELINES.items():
        curves[f"{name} (lr={tuned[name]:g})"] = np.stack(
            [learned.optimize(problem_set, steps, cls(learning_rate=tuned[name]), seed=s) for s in seeds])
    return curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="/tmp/learned_optimizer_report")
    parser.add_argument("--quadratic_iterations", type=int, default=60)
    parser.add_argument("--mlp_iterations", type=int, default=40)
    parser.add_argument("--meta_learning_rate", type=float, default=3e-3)
    parser.add_argument("--steps", type=int, default=100, help="optimizee steps (paper: 100)")
    parser.add_argument("--held_out", type=int, default=5, help="held-out problems per kind")
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)

    kinds = {
        "quadratic": (learned.QuadraticProblems(dim=10, batch=32), learned.QuadraticProblems(dim=10, batch=32),
                      args.quadratic_iterations),
        "mlp": (learned.digits_mlp_problem("train"), learned.digits_mlp_problem("test"), args.mlp_iterations),
    }
    report, all_curves = {}, {}
    for kind, (train_set, test_set, iterations) in kinds.items():
        start = time.time()
        net = learned.LSTMOptimizerNet(seed=0)
        meta_losses = learned.meta_train(net, train_set, iterations, unroll=20, optimizee_steps=args.steps,
                                         meta_learning_rate=args.meta_learning_rate, seed=1)
        net.save(os.path.join(args.output_dir, f"{kind}.npz"))
        tuned = _tuned_learning_rates(test_set, args.steps, seed=999)
        curves = _curves(test_set, args.steps, net, tuned, seeds=range(10_000, 10_000 + args.held_out))
        all_curves[kind] = curves
        adam = next(v for k, v in curves.items() if k.startswith("Adam"))[:, -1].mean()
        report[kind] = {
            "meta_loss_first_last": [meta_losses[0], meta_losses[-1]], "meta_iterations": iterations,
            "seconds": time.time() - start, "tuned_learning_rates": tuned,
            "final_loss": {k: [float(v[:, -1].mean()), float(v[:, -1].std())] for k, v in curves.items()},
            "mean_loss": {k: float(v.mean()) for k, v in curves.items()},
            "final_ratio_to_adam": {k: float(v[:, -1].mean() / adam) for k, v in curves.items()},
        }

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(all_curves), figsize=(11, 4))
    for ax, (kind, curves) in zip(axes, all_curves.items()):
        for label, values in curves.items():
            ax.plot(values.mean(0), label=label)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (mean of held-out problems)")
        ax.set_title({"quadratic": "10-d quadratics ‖Wθ−y‖²", "mlp": "MLP (20 sigmoid) on digits test split"}[kind])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.output_dir, "loss_curves.png"), dpi=90)
    with open(os.path.join(args.output_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)

    print(f"{'problem':<10} {'optimizer':<24} {'final loss':>18} {'mean loss':>10} {'final / Adam':>12}")
    for kind, entry in report.items():
        for label, (mean, std) in entry["final_loss"].items():
            print(f"{kind:<10} {label:<24} {mean:>10.4f} ± {std:<6.4f} {entry['mean_loss'][label]:>10.4f} "
                  f"{entry['final_ratio_to_adam'][label]:>12.3f}")
        print(f"{kind:<10} meta-loss {entry['meta_loss_first_last'][0]:.4f} -> {entry['meta_loss_first_last'][1]:.4f} "
              f"in {entry['meta_iterations']} iterations, {entry['seconds']:.0f} s")
    print(f"Wrote {args.output_dir}/loss_curves.png, report.json, quadratic.npz, mlp.npz")


if __name__ == "__main__":
    main()
