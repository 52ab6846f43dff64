"""training/: one tiny real epoch on each embedded dataset with registered models, the files a
run leaves in model_dir, validation before any work, optimizers, tasks, strategies, LM metrics.

Subprocess runs (mirrored, multi-worker, kill/resume, the CLI) are in test_training_distributed.py.
"""
import csv
import json
import math
import os

import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras, keras_major_version
from keras_zoo.metrics import BitsPerToken, Perplexity
from training import optimizers, strategy as strategy_lib, tasks
from training.loop import BestModelCheckpoint, TrainConfig, train_and_evaluate

#: Preferred registered models per dataset: the paper models first, then simpler baselines.
CANDIDATES = {
    "digits": ("squeezenet1_1", "mobilenet"),
    "docstrings_char": ("qrnn_lm_char", "rnn_lm"),
    "docstrings_word": ("qrnn_lm_word", "rnn_lm"),
    "docstrings_topic": ("qrnn_sentiment", "rnn_classifier"),
}


def model_for(dataset):
    registered = set(keras_zoo.list_models())
    for name in CANDIDATES[dataset]:
        if name in registered:
            return name
    pytest.skip(f"none of {CANDIDATES[dataset]} is registered")


def tiny_config(dataset, **settings):
    return {"model": model_for(dataset), "dataset": dataset, "tiny": True, "epochs": 1, "steps_per_epoch": 2,
            "validation_steps": 1, "batch_size": 8, "optimizer": "sgd", "verbose": 0, **settings}


def _check_model_dir(model_dir, config, result):
    files = set(os.listdir(model_dir))
    assert {"model.keras", "best_model.keras", "config.json", "metrics.json", "training_log.csv",
            "curves.png"} <= files
    assert "backup" not in files  # removed once training completed
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["model"] == config["model"] and saved["dataset"] == config["dataset"] and saved["tiny"]
    assert saved["keras_version"] == keras_major_version()
    assert saved["training"]["batch_size"] == config["batch_size"]
    assert saved["builder_overrides"] == result["builder_overrides"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["test"] == result["test"] and all(math.isfinite(v) for v in metrics["test"].values())
    with open(model_dir / "training_log.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == list(range(config["epochs"]))
    assert (model_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    import importlib.util

    if importlib.util.find_spec("tensorboard"):
        assert any("tfevents" in name for _, _, names in os.walk(model_dir / "logs") for name in names)
    return saved, metrics


def _reload_and_check_outputs(model_dir, saved):
    """The saved model rebuilds from the registry with the saved overrides and predicts like the file."""
    loaded = keras.models.load_model(model_dir / "model.keras", compile=False)
    rebuilt = keras_zoo.create_model(saved["model"], tiny=saved["tiny"], **saved["builder_overrides"])
    rebuilt.set_weights(loaded.get_weights())
    info = keras_zoo.model_info(saved["model"])
    inputs = keras_zoo.registry.example_inputs(info, saved["builder_config"], batch_size=2)
    np.testing.assert_allclose(np.asarray(loaded(inputs[0], training=False)),
                               np.asarray(rebuilt(inputs[0], training=False)), rtol=1e-5, atol=1e-5)


@pytest.mark.both
def test_digits_epoch_writes_a_complete_model_dir(tmp_path):
    config = tiny_config("digits", optimizer="momentum")
    del config["dataset"]  # the variant's default dataset
    result = train_and_evaluate(TrainConfig(**config), tmp_path)
    config["dataset"] = "digits"
    saved, metrics = _check_model_dir(tmp_path, config, result)
    assert saved["builder_overrides"]["classes"] == 10 and saved["task"] == "image_classification"
    assert (tmp_path / "labels.txt").read_text().split("\n")[:-1] == [str(d) for d in range(10)]
    assert set(metrics["test"]) == {"loss", "accuracy"}
    assert metrics["test_batches"] == 1
    _reload_and_check_outputs(tmp_path, saved)


@pytest.mark.parametrize("dataset, level_tokens", [("docstrings_char", "e"), ("docstrings_word", "the")])
def test_language_model_epoch_beats_the_uniform_model(tmp_path, dataset, level_tokens):
    config = tiny_config(dataset, steps_per_epoch=25, learning_rate=1.0, validation_steps=4)
    result = train_and_evaluate(config, tmp_path)
    saved, metrics = _check_model_dir(tmp_path, config, result)
    vocab = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(vocab) == saved["builder_overrides"]["vocab_size"] and level_tokens in vocab
    test = metrics["test"]
    assert set(test) == {"loss", "bits_per_token", "perplexity"}
    assert test["bits_per_token"] == pytest.approx(test["loss"] / math.log(2), rel=1e-4)
    assert test["perplexity"] == pytest.approx(math.exp(test["loss"]), rel=1e-4)
    assert test["bits_per_token"] < math.log2(len(vocab))  # it learnt something in 25 steps
    assert metrics["baselines"]["unigram_baseline_bits_per_token_test"] > 0
    _reload_and_check_outputs(tmp_path, saved)


def test_topic_classification_epoch(tmp_path):
    config = tiny_config("docstrings_topic")
    result = train_and_evaluate(config, tmp_path)
    saved, metrics = _check_model_dir(tmp_path, config, result)
    labels = (tmp_path / "labels.txt").read_text().split("\n")[:-1]
    assert len(labels) == saved["builder_overrides"]["classes"] == 7
    assert (tmp_path / "vocab.txt").exists() and "accuracy" in metrics["test"]
    assert "majority_baseline_accuracy" in metrics["baselines"]


@pytest.mark.parametrize("changes, message", [
    ({"model": "squeezenet1_2"}, "Unknown model name 'squeezenet1_2'.*Did you mean"),
    ({"batch_size": 0}, r"batch_size must be an integer in \[1, .*pass e.g. --batch_size=1"),
    ({"epochs": 0}, "epochs must be an integer"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"learning_rate": 0.0}, "learning_rate must be a number in"),
    ({"learning_rate": 50.0}, "learning_rate must be a number in"),
    ({"steps_per_epoch": -1}, "steps_per_epoch must be"),
    ({"optimizer": "adamx"}, "Unknown optimizer; use one of .*adam.*Received: optimizer='adamx'"),
    ({"strategy": "horovod"}, "Unknown distribution strategy; use one of off"),
    ({"strategy": "parameter_server"}, "parameter_server runs under tf_keras only"),
    ({"strategy": "multi_worker_mirrored"}, "runs under tf_keras only"),
    ({"dataset": "textfile:/no/such/file.txt"}, "does not exist; pass an existing"),
    ({"dataset": "imagefolder:/no/such/dir"}, "does not exist"),
    ({"dataset": "mnist"}, "Unknown dataset 'mnist'.*tfds:"),
    ({"data_dir": "/no/such/dir"}, "data_dir '/no/such/dir' does not exist"),
    ({"epoch": 3}, r"Unknown config keys \['epoch'\]"),
])
def test_bad_settings_are_rejected_before_any_work(tmp_path, changes, message):
    config = {**tiny_config("digits"), **changes}
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cli_flags_are_validated_before_work(tmp_path):
    from absl import app, flags

    from training import train

    argv = ["train", f"--model={model_for('digits')}", "--batch_size=0", f"--keras={keras_major_version()}",
            f"--model_dir={tmp_path / 'run'}"]
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(argv)
    with pytest.raises(app.UsageError, match="batch_size must be"):
        train.main(argv[:1], flag_values)
    flag_values.batch_size, flag_values.overrides = 8, "{not json"
    with pytest.raises(app.UsageError, match="--overrides must be a JSON object"):
        train.main(argv[:1], flag_values)
    assert not (tmp_path / "run").exists()


def test_best_model_checkpoint_is_atomic_and_survives_a_restart(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = str(tmp_path / "best.keras")
    checkpoint = BestModelCheckpoint(model, path)
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    first = os.path.getmtime(path)
    checkpoint.on_epoch_end(1, {"val_loss": 2.0})
    checkpoint.on_epoch_end(2, {"val_loss": float("nan")})
    assert os.path.getmtime(path) == first
    checkpoint.on_epoch_end(3, {"val_loss": 0.5})
    assert json.loads((tmp_path / "best.keras.json").read_text()) == {"monitor": "val_loss", "value": 0.5,
                                                                       "epoch": 4}
    restarted = BestModelCheckpoint(model, path)
    mtime = os.path.getmtime(path)
    restarted.on_epoch_end(4, {"val_loss": 0.7})
    assert os.path.getmtime(path) == mtime
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "best.keras.json"]  # no temporary files left


@pytest.mark.parametrize("name", optimizers.list_optimizers())
def test_optimizers_by_name(name):
    optimizer = optimizers.create_optimizer(name, 0.01, weight_decay=0.001)
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.01)
    assert {"sgd", "momentum", "adam", "adamw", "rmsprop"} <= set(optimizers.list_optimizers())


def test_classification_loss_follows_classifier_activation():
    task = tasks.get_task("image_classification")
    assert not task.loss({"classifier_activation": "softmax"}).get_config()["from_logits"]
    assert task.loss({"classifier_activation": None}).get_config()["from_logits"]
    assert tasks.get_task("language_model").loss({}).get_config()["from_logits"]
    with pytest.raises(ValueError, match="No training task is registered for 'memoryx'"):
        tasks.get_task("memoryx")
    with pytest.raises(ValueError, match="already registered"):
        tasks.register_task("language_model")(tasks.Task)


def test_strategy_factory():
    assert strategy_lib.get_distribution_strategy("off") is None
    assert strategy_lib.get_distribution_strategy("one_device").num_replicas_in_sync == 1
    assert strategy_lib.get_distribution_strategy("Mirrored").num_replicas_in_sync == 1  # one CPU here
    with pytest.raises(ValueError, match="Unknown distribution strategy; use one of off, one_device"):
        strategy_lib.get_distribution_strategy("gpu")
    with pytest.raises(ValueError, match="use strategy=mirrored"):
        strategy_lib.get_distribution_strategy("one_device", num_gpus=2)


@pytest.mark.both
def test_language_model_metrics_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(3, 5))
    weights = rng.uniform(size=(3, 5)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    nats = -np.log(np.take_along_axis(probs, targets[..., None], -1)[..., 0])

    bits = BitsPerToken()
    bits.update_state(targets[:2], logits[:2])
    bits.update_state(targets[2:], logits[2:])  # accumulates across batches
    assert float(bits.result()) == pytest.approx(nats.mean() / np.log(2), rel=1e-5)
    perplexity = Perplexity(from_logits=False)
    perplexity.update_state(targets, probs, sample_weight=weights)
    assert float(perplexity.result()) == pytest.approx(np.exp((nats * weights).sum() / weights.sum()), rel=1e-5)
    bits.reset_state()
    assert float(bits.result()) == 0.0
    clone = BitsPerToken.from_config(bits.get_config())
    assert clone.name == "bits_per_token" and clone.from_logits


@pytest.mark.parametrize("batches", [0, 1])
def test_classification_precise_bn_option_recomputes_batch_norm_statistics(batches):
    import tensorflow as tf

    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(momentum=0.99)])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    task = tasks.get_task("image_classification", {"precise_bn_batches": batches})
    task.fit(model, tf.data.Dataset.from_tensors((x, x)), epochs=1, verbose=0)
    moving_mean = np.asarray(model.layers[0].moving_mean)
    # One momentum-0.99 update moves the mean 1% of the way; precise BN sets it to the batch mean.
    expected = x.mean(0) if batches else 0.01 * x.mean(0)
    np.testing.assert_allclose(moving_mean, expected, rtol=1e-4)
