"""Neural architecture search with REINFORCE (Zoph & Le, 2016, arXiv:1611.01578, Sec. 3.2).

``search`` samples child CNNs from the controller (keras_zoo.models.nas), trains
each briefly on the run's training split and uses its validation accuracy as the
reward: R = (max validation accuracy over the child's epochs) ** reward_power.
The paper's CIFAR-10 reward is "the maximum validation accuracy of the last 5
epochs cubed", so reward_power defaults to 3. The controller follows

    ∇θ J ≈ 1/m Σ_k ∇θ log P(a_k; θ) (R_k - b)

with b an exponential moving average of past rewards (Sec. 3.2), one update per
``children_per_update`` = m children. Children train with Nesterov momentum 0.9
and learning rate 0.1 (the paper's child settings, without weight decay).
``random_search=True`` draws descriptions uniformly (skips with p = 0.5, which
is the untrained controller's σ(0)) with the same budget and no updates.

The ``nas`` task runs ``search`` in ``training.train``'s loop through the
``Task.fit`` hook: one "epoch" of the logs is one controller update.
"""
import dataclasses
import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_zoo.backend import keras
from keras_zoo.models import nas
from training.tasks import Task, register_task


@dataclasses.dataclass
class SearchResult:
    """``trials``: one dict per child (architecture, accuracy, reward, baseline); ``updates``: per-update logs."""

    trials: list
    updates: list
    best: dict
    best_child: object


def _batch_shape(dataset):
    images = dataset.element_spec[0]
    return tuple(images.shape[1:])


def _num_classes(dataset, steps):
    labels = [int(np.max(y)) for _, y in (dataset.take(steps) if steps else dataset)]
    return max(labels) + 1


def _architecture_json(specs):
    return [dataclasses.asdict(spec) | {"inputs": list(spec.inputs)} for spec in specs]


def train_child(specs, train, validation, epochs, learning_rate=0.1, steps_per_epoch=None, validation_steps=None,
                classes=10, name="nas_child"):
    """Builds and trains one child; returns ``(model, best validation accuracy, its validation loss)``."""
    child = nas.build_child(specs, input_shape=_batch_shape(train), classes=classes, name=name)
    child.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = child.fit(train, validation_data=validation, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        validation_steps=validation_steps, shuffle=False, verbose=0).history
    best = int(np.nanargmax(history["val_accuracy"]))
    return child, float(history["val_accuracy"][best]), float(history["val_loss"][best])


def _random_description(controller, rng):
    rnn = nas.controller_rnn(controller)
    choices = np.stack([rng.integers(0, n, size=rnn.num_layers) for n in rnn.choice_counts], axis=-1)[None]
    skips = np.tril(rng.random((rnn.num_layers, rnn.num_layers)) < 0.5, -1).astype("float32")[None]
    if not rnn.skip_connections:
        skips[:] = 0.0
    return choices.astype("int32"), skips, math.nan


def reinforce_update(controller, optimizer, choices, skips, advantages):
    """One policy-gradient step: minimises -mean_k(log P(a_k) · advantage_k); returns that loss."""
    with tf.GradientTape() as tape:
        outputs = controller([choices, skips], training=True)
        loss = -tf.reduce_mean(nas.log_prob(outputs, choices, skips) * tf.constant(advantages, tf.float32))
    weights = controller.trainable_weights
    optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    return float(loss)


def search(controller, train, validation, trials, child_epochs, optimizer=None, *, children_per_update=1,
           reward_power=3.0, baseline_decay=0.95, child_learning_rate=0.1, steps_per_epoch=None,
           validation_steps=None, classes=None, random_search=False, seed=0, on_update=None):
    """Runs the search; returns a SearchResult.

    Args:
        controller: a ``NASController`` model.
        train, validation: batched (image, label) datasets for the children.
        trials: children to train (the budget).
        child_epochs: epochs per child.
        optimizer: the controller's optimizer (paper: Adam, learning rate 0.0006);
            ignored by random search.
        children_per_update: m, children per controller update.
        reward_power: R = accuracy ** reward_power (paper: 3).
        baseline_decay: b ← decay · b + (1 - decay) · mean R (b starts at the first update's mean R).
        child_learning_rate: Nesterov-momentum learning rate of the children (paper: 0.1).
        steps_per_epoch, validation_steps: for repeated datasets.
        classes: child outputs; None reads the largest training label.
        random_search: draw uniformly, never update (the baseline of the same budget).
        seed: sampling seed.
        on_update: ``callable(update_index, logs)`` after every controller update.
    """
    if trials < 1 or child_epochs < 1 or children_per_update < 1:
        raise ValueError(f"trials, child_epochs and children_per_update must be >= 1. Received: trials={trials}, "
                         f"child_epochs={child_epochs}, children_per_update={children_per_update}")
    if optimizer is None and not random_search:
        raise ValueError("The controller needs an optimizer (the paper uses Adam). Received: optimizer=None")
    rng = np.random.default_rng(seed)
    rnn = nas.controller_rnn(controller)
    classes = classes or _num_classes(train, steps_per_epoch)
    records, updates, baseline = [], [], None
    best, best_child = None, None
    for start in range(0, trials, children_per_update):
        batch = []
        for trial in range(start, min(start + children_per_update, trials)):
            draw = (_random_description(controller, rng) if random_search
                    else nas.sample_architecture(controller, rng))
            choices, skips, log_prob = draw
            specs = nas.decode(choices[0], skips[0] if rnn.skip_connections else None, rnn.choices)
            child, accuracy, loss = train_child(specs, train, validation, child_epochs, child_learning_rate,
                                                steps_per_epoch, validation_steps, classes, f"nas_child_{trial}")
            record = {"trial": trial, "architecture": _architecture_json(specs), "val_accuracy": accuracy,
                      "val_loss": loss, "reward": accuracy ** reward_power, "log_prob": log_prob,
                      "params": int(child.count_params())}
            if best is None or accuracy > best["val_accuracy"]:
                best, best_child = record, child
            batch.append((record, choices, skips))
        rewards = np.array([r["reward"] for r, _, _ in batch])
        if baseline is None:
            baseline = float(rewards.mean())
        policy_loss = math.nan
        if not random_search:
            policy_loss = reinforce_update(controller, optimizer, np.concatenate([c for _, c, _ in batch]),
                                           np.concatenate([s for _, _, s in batch]), rewards - baseline)
        for record, _, _ in batch:
            record["baseline"] = baseline
            records.append(record)
        baseline = baseline_decay * baseline + (1.0 - baseline_decay) * float(rewards.mean())
        logs = {"loss": policy_loss, "reward": float(rewards.mean()), "baseline": baseline,
                "val_accuracy": float(np.mean([r["val_accuracy"] for r, _, _ in batch])),
                "val_loss": float(np.mean([r["val_loss"] for r, _, _ in batch])),
                "best_val_accuracy": best["val_accuracy"]}
        updates.append(logs)
        logging.info("NAS update %d: %s", len(updates), logs)
        if on_update:
            on_update(len(updates) - 1, logs)
    return SearchResult(records, updates, best, best_child)


def plot_rewards(results, path, window=5):
    """Reward per child (dots) and its running mean for each SearchResult in ``results`` ({label: result})."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, result in results.items():
        accuracy = np.array([r["val_accuracy"] for r in result.trials])
        line = ax.plot(np.arange(1, len(accuracy) + 1), accuracy, ".", alpha=0.4)[0]
        running = np.convolve(accuracy, np.ones(window) / window, mode="valid") if len(accuracy) >= window else accuracy
        ax.plot(np.arange(len(accuracy) - len(running) + 1, len(accuracy) + 1), running, color=line.get_color(),
                label=f"{label} (running mean of {window})")
    ax.set_xlabel("child network")
    ax.set_ylabel("child validation accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@register_task("nas")
class NASTask(Task):
    """NAS with REINFORCE; ``fit`` runs ``search`` (one log epoch per controller update).

    ``--epochs`` is not used: the budget is ``nas_trials`` children. The run's
    optimizer and ``--learning_rate`` train the controller (paper: Adam, 0.0006).
    BackupAndRestore is not applied: an interrupted search starts again.
    The test metrics are the best child's (by validation accuracy) on the test split.
    """

    monitor = "val_loss"
    OPTIONS = {
        "nas_trials": (20, "NAS: child networks to sample and train (the search budget)."),
        "child_epochs": (2, "NAS: training epochs of each child network."),
        "nas_children_per_update": (1, "NAS: children per controller update (m of the paper)."),
        "nas_reward_power": (3.0, "NAS: reward = child validation accuracy ** power (paper: 3)."),
        "nas_baseline_decay": (0.95, "NAS: decay of the exponential-moving-average reward baseline."),
        "nas_child_learning_rate": (0.1, "NAS: Nesterov-momentum learning rate of the children (paper: 0.1)."),
    }

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def fit(self, model, train, validation_data=None, steps_per_epoch=None, validation_steps=None, callbacks=(),
            verbose=0, **unused):
        callbacks = [c for c in callbacks if not isinstance(c, keras.callbacks.BackupAndRestore)]
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(callbacks + [history], model=model)
        callback_list.on_train_begin()

        def on_update(index, logs):
            callback_list.on_epoch_begin(index)
            callback_list.on_epoch_end(index, dict(logs))
            if verbose:
                print(f"NAS update {index + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in logs.items()))

        self.result = search(
            model, train, validation_data, self.options["nas_trials"], self.options["child_epochs"],
            model.optimizer, children_per_update=self.options["nas_children_per_update"],
            reward_power=self.options["nas_reward_power"], baseline_decay=self.options["nas_baseline_decay"],
            child_learning_rate=self.options["nas_child_learning_rate"], steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps, on_update=on_update)
        callback_list.on_train_end()
        return history

    def evaluate(self, model, test, steps, verbose):
        loss, accuracy = self.result.best_child.evaluate(test, steps=steps, verbose=verbose)
        return {"best_child_test_loss": float(loss), "best_child_test_accuracy": float(accuracy),
                "best_child_val_accuracy": self.result.best["val_accuracy"]}

    def after_training(self, model, bundle, write_dir, config):
        plot_rewards({"REINFORCE": self.result}, os.path.join(write_dir, "nas_rewards.png"))
        self.result.best_child.save(os.path.join(write_dir, "best_child.keras"))
        with open(os.path.join(write_dir, "nas_trials.json"), "w") as f:
            json.dump(self.result.trials, f, indent=1)
        return {"best_architecture": self.result.best["architecture"],
                "best_val_accuracy": self.result.best["val_accuracy"],
                "trials": len(self.result.trials), "reward_curve": "nas_rewards.png",
                "best_child": "best_child.keras", "trials_file": "nas_trials.json"}
