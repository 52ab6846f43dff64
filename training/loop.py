"""``train_and_evaluate(config, model_dir)``: the testable core of ``python -m training.train``.

Flow: validate the config (before any work) -> registry ModelInfo -> load the data
shaped for the model -> inside ``strategy.scope()`` build the model and optimizer,
compile with the task -> ``model.fit`` with callbacks -> evaluate on the test split
-> write ``model_dir``:

- ``model.keras`` (final model, written atomically), ``best_model.keras`` (lowest
  ``val_loss``, written atomically after every improving epoch);
- ``config.json``: registry name, tiny, builder overrides (incl. vocab_size/classes
  fixed by the data), dataset, task, Keras major version, training settings;
- ``metrics.json``: test metrics, data baselines (e.g. unigram bits/token);
- ``vocab.txt`` / ``labels.txt``; ``training_log.csv``, ``curves.png``, ``logs/`` (TensorBoard);
- ``backup/`` while training: a killed run started again with the same
  ``model_dir`` resumes after the last completed epoch.

Under multi_worker_mirrored, non-chief workers write the same files under
``model_dir/workers/<task_type>_<task_id>/`` so that workers never write the same file.
"""
import csv
import dataclasses
import json
import math
import os
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from keras_zoo import list_models, model_info
from keras_zoo.backend import IS_LEGACY_KERAS, keras, keras_major_version
from keras_zoo.data import check_dataset, load_dataset
from training import optimizers, strategy as strategy_lib, tasks

MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 16
MAX_LEARNING_RATE = 10.0
PRESETS = ("paper",)
_PRESET_SETTINGS = ("optimizer", "learning_rate", "weight_decay", "batch_size", "epochs")


@dataclasses.dataclass
class TrainConfig:
    """Settings of one run. ``batch_size`` is global (split across replicas).

    ``validation_steps`` also caps the test evaluation (None: the whole split).
    ``overrides`` are builder kwargs on top of the variant's config (and its
    ``tiny`` overrides when ``tiny``). ``task_options`` are the training task's
    ``OPTIONS`` (training.tasks), e.g. ``{"teacher_dir": ..., "temperature": 4.0}``.
    ``preset="paper"`` trains with the variant's ``ModelInfo.training_preset``: its
    optimizer (with its settings), learning rate, weight decay, batch size and epochs
    replace every setting left at its default (a value equal to the default counts as
    not given), and its learning-rate schedule is used.
    """

    model: str
    dataset: str | None = None
    tiny: bool = False
    overrides: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    strategy: str = "off"
    num_gpus: int = 0
    tpu_address: str | None = None
    data_dir: str | None = None
    task_options: dict = dataclasses.field(default_factory=dict)
    preset: str | None = None
    verbose: int | str = "auto"


def as_config(config):
    """A TrainConfig from a TrainConfig or a dict (unknown keys are an error)."""
    if isinstance(config, TrainConfig):
        return dataclasses.replace(config)
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict or a TrainConfig. Received: {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"Unknown config keys {unknown}; known keys are {sorted(known)}. Received: {config}")
    if "model" not in config:
        raise ValueError(f"config needs 'model', a registered name (keras_zoo.list_models()). Received: {config}")
    return TrainConfig(**config)


def _check_int(name, value, low, high, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]{' or None' if optional else ''}; "
                         f"pass e.g. --{name}={max(low, 1)}. Received: {name}={value!r}")


def validate(config):
    """Checks every setting before any work is done; returns the model's ModelInfo.

    Raises:
        ValueError: naming the bad setting and its fix.
    """
    _check_int("epochs", config.epochs, 1, MAX_EPOCHS)
    _check_int("batch_size", config.batch_size, 1, MAX_BATCH_SIZE)
    _check_int("steps_per_epoch", config.steps_per_epoch, 1, 10**9, optional=True)
    _check_int("validation_steps", config.validation_steps, 1, 10**9, optional=True)
    _check_int("seed", config.seed, 0, 2**31 - 1)
    lr = config.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= MAX_LEARNING_RATE:
        raise ValueError(f"learning_rate must be a number in (0, {MAX_LEARNING_RATE}]; pass e.g. "
                         f"--learning_rate=0.001. Received: learning_rate={lr!r}")
    if not isinstance(config.weight_decay, (int, float)) or not 0 <= config.weight_decay < 1:
        raise ValueError(f"weight_decay must be a number in [0, 1). Received: weight_decay={config.weight_decay!r}")
    if not isinstance(config.overrides, dict) or not all(isinstance(k, str) for k in config.overrides):
        raise ValueError(f"overrides must be a dict of builder keyword arguments. "
                         f"Received: overrides={config.overrides!r}")
    info = model_info(config.model)
    if config.preset is not None:
        if config.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS} or None. Received: preset={config.preset!r}")
        if not info.training_preset:
            with_preset = [n for n in list_models() if model_info(n).training_preset]
            raise ValueError(f"Model {config.model!r} has no paper training preset; drop --preset, or pick one of "
                             f"{with_preset}. Received: preset={config.preset!r}")
    if not isinstance(config.task_options, dict):
        raise ValueError(f"task_options must be a dict. Received: task_options={config.task_options!r}")
    tasks.get_task(info.task, config.task_options)
    optimizers.check_optimizer(config.optimizer)
    strategy = config.strategy.lower() if isinstance(config.strategy, str) else config.strategy
    if strategy == "parameter_server" and not IS_LEGACY_KERAS:
        raise ValueError("strategy=parameter_server runs under tf_keras only: Keras 3.15's fit has no "
                         "ClusterCoordinator support (it iterates the dataset on the chief, which "
                         "ParameterServerStrategy refuses). Use the CLI's default runtime (--keras=2) or set "
                         "TF_USE_LEGACY_KERAS=1. Received: Keras 3")
    if strategy == "multi_worker_mirrored" and not IS_LEGACY_KERAS:
        raise ValueError("strategy=multi_worker_mirrored runs under tf_keras only: Keras 3.15's fit reduces the "
                         "first (inputs, targets) batch with strategy.reduce, which MultiWorkerMirroredStrategy "
                         "rejects. Use the CLI's default runtime (tf_keras) or set TF_USE_LEGACY_KERAS=1. "
                         "Received: Keras 3")
    strategy_lib.check_strategy(config.strategy, config.num_gpus, config.tpu_address)
    if strategy == "parameter_server":
        _check_parameter_server_chief(config)
    config.dataset = config.dataset or info.default_dataset
    if not config.dataset:
        raise ValueError(f"Model {config.model!r} has no default dataset; pass --dataset. Received: dataset=None")
    check_dataset(config.dataset, config.data_dir)
    return info


def _check_parameter_server_chief(config):
    """train_and_evaluate is the coordinator: worker and ps tasks only serve (strategy.serve_if_cluster_task)."""
    _, task_type, task_id = strategy_lib.parameter_server_cluster()
    if task_type in strategy_lib.SERVING_TASKS:
        raise ValueError(f"This process is task {task_type}:{task_id} of a parameter-server cluster: it runs a "
                         "server, not the training loop. Start it with python -m training.train (which serves "
                         "and blocks) or training.strategy.serve_if_cluster_task; train_and_evaluate runs on the "
                         f"chief. Received: TF_CONFIG task type {task_type!r}")
    if task_type != "chief":
        raise ValueError("Under strategy=parameter_server train_and_evaluate runs on the chief task, which "
                         "evaluates after training; a side-car evaluator task is not supported. Start only the "
                         f"chief, worker and ps tasks. Received: TF_CONFIG task type {task_type!r}")
    if config.verbose == 1:
        raise ValueError("strategy=parameter_server cannot show a per-batch progress bar (tf_keras refuses "
                         "verbose=1 with a ClusterCoordinator); pass verbose=2, 0 or 'auto'. Received: verbose=1")


def apply_preset(config, info):
    """Fills the settings left at their defaults from the variant's paper recipe.

    Returns:
        ``(config, optimizer_settings, lr_schedule)``: the updated config, the
        preset's settings of the chosen optimizer (none when ``--optimizer``
        overrides the preset's), and the preset's ``lr_schedule`` (or None).
    """
    if config.preset is None:
        return config, {}, None
    recipe = info.training_preset
    defaults = TrainConfig(model="")
    config = dataclasses.replace(config)
    for key in _PRESET_SETTINGS:
        if recipe.get(key) is not None and getattr(config, key) == getattr(defaults, key):
            setattr(config, key, recipe[key])
    settings = {}
    if config.optimizer == recipe.get("optimizer"):
        settings = {k: recipe[k] for k in optimizers.optimizer_params(config.optimizer) if k in recipe}
    return config, settings, recipe.get("lr_schedule")


def _steps_per_epoch(config, train):
    if config.steps_per_epoch:
        return config.steps_per_epoch
    steps = int(train.cardinality())
    if steps < 1:
        raise ValueError("The paper's learning-rate schedule counts epochs in steps, and this dataset's size is "
                         "unknown; pass --steps_per_epoch. Received: steps_per_epoch=None")
    return steps


def _known_steps(steps, split, flag):
    """``steps``, or the number of batches of a finite ``split``; else a ValueError naming ``--flag``."""
    if steps:
        return steps
    batches = int(split.cardinality())
    if batches < 1:
        raise ValueError(f"strategy=parameter_server counts every loop in steps and this dataset's size is "
                         f"unknown; pass --{flag}. Received: {flag}=None")
    return batches


def _atomic_save(model, path):
    """Saves to a temporary file next to ``path``, then renames it: readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=".tmp_", dir=directory)
    os.close(fd)
    try:
        model.save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves ``target`` atomically whenever ``monitor`` reaches a new minimum.

    The best value so far lives in ``path + ".json"`` so that a resumed run keeps it.
    """

    def __init__(self, target, path, monitor="val_loss"):
        super().__init__()
        self._target, self._path, self._monitor = target, path, monitor
        self._state_path = path + ".json"
        self._best = math.inf
        if os.path.exists(self._state_path):
            with open(self._state_path) as f:
                self._best = json.load(f)["value"]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self._monitor)
        if value is None or not math.isfinite(float(value)) or float(value) >= self._best:
            return
        self._best = float(value)
        _atomic_save(self._target, self._path)
        _atomic_write_text(self._state_path, json.dumps({"monitor": self._monitor, "value": self._best,
                                                         "epoch": epoch + 1}))


class _FirstEpoch(keras.callbacks.Callback):
    """Records the epoch training starts at (> 0 when BackupAndRestore resumed a run)."""

    def __init__(self):
        super().__init__()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            if epoch:
                logging.info("Resumed from the backup: starting at epoch %d.", epoch + 1)


class _EpochTerminateOnNaN(keras.callbacks.Callback):
    """TerminateOnNaN at the end of each epoch, for strategies that allow no batch-level callbacks."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            logging.warning("Epoch %d: invalid loss %s, terminating training.", epoch + 1, loss)
            self.model.stop_training = True


def _backup_callback(backup_dir):
    if IS_LEGACY_KERAS:
        return keras.callbacks.BackupAndRestore(backup_dir)
    # Keeps the previous backup while a new one is written: a kill mid-write loses one epoch at most.
    return keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True)


def _callbacks(model, write_dir, backup_dir, monitor, resuming, parameter_server=False):
    first_epoch = _FirstEpoch()
    # Order matters: the backup of an epoch exists before its CSV row is written.
    callbacks = [
        _backup_callback(backup_dir),
        # Batch hooks cannot run under a ClusterCoordinator (tf_keras refuses them): check once per epoch there.
        _EpochTerminateOnNaN() if parameter_server else keras.callbacks.TerminateOnNaN(),
        BestModelCheckpoint(model, os.path.join(write_dir, "best_model.keras"), monitor=monitor),
        keras.callbacks.CSVLogger(os.path.join(write_dir, "training_log.csv"), append=resuming),
        first_epoch,
    ]
    if _tensorboard_installed():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(write_dir, "logs"), profile_batch=0))
    else:
        logging.warning("No TensorBoard logs: the tensorboard package is not installed "
                        "(pip install tensorboard==2.21.0).")
    return callbacks, first_epoch


def _tensorboard_installed():
    """tf.summary needs the tensorboard package, which tensorflow does not install."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def plot_curves(csv_path, png_path):
    """Loss and metric curves (train and validation) from the CSV log, with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    names = [k for k in rows[0] if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    names.sort(key=lambda k: k != "loss")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) if r[key] else math.nan for r in rows], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)


def _jsonable(value):
    return json.loads(json.dumps(value, default=repr))


def _distribute_options(dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _per_worker_start(split, steps):
    """``split`` repeated, each parameter-server worker's copy starting at its own random batch of the first pass.

    ParameterServerStrategy gives every worker the whole dataset (it does not shard input), and
    a seeded pipeline yields the same batches in the same order on every worker; as the
    coordinator hands each step to whichever worker is free, aligned copies would train on the
    same batches twice. The offset comes from the worker's clock when it builds its copy (graph
    seeds are the same on every worker); it costs reading up to one pass (or ``steps`` batches
    when the size is unknown) once.
    """
    batches = int(split.cardinality())
    batches = batches if batches > 0 else steps
    dataset = split.repeat()

    def from_offset(_):
        return dataset.skip(tf.cast(tf.timestamp() * 1e6, tf.int64) % batches)

    return tf.data.Dataset.from_tensors(np.int64(0)).flat_map(from_offset)


def _write_outputs(write_dir, model, config, info, bundle, builder_overrides, builder_config, replicas,
                   test_metrics, test_steps, initial_epoch, task_results):
    """Writes model.keras, config.json, metrics.json, vocab.txt/labels.txt and curves.png."""
    _atomic_save(model, os.path.join(write_dir, "model.keras"))
    settings = dataclasses.asdict(config)
    run_config = {
        "model": config.model,
        "tiny": config.tiny,
        "builder_overrides": builder_overrides,
        "builder_config": builder_config,
        "dataset": config.dataset,
        "task": info.task,
        "keras_version": keras_major_version(),
        "training": {k: settings[k] for k in settings if k not in ("model", "dataset", "tiny", "overrides")},
        "preset_recipe": info.training_preset if config.preset else None,
        "replicas": replicas,
        "vocab_file": "vocab.txt" if bundle.vocab else None,
        "labels_file": "labels.txt" if bundle.labels else None,
    }
    baselines = {k: v for k, v in bundle.info.items() if "baseline" in k}
    metrics = {
        "test": test_metrics,
        "test_batches": test_steps if test_steps is not None else "all",
        "baselines": baselines,
        "initial_epoch": initial_epoch,
        "epochs": config.epochs,
        "dataset_info": bundle.info,
        "task": task_results,
    }
    _atomic_write_text(os.path.join(write_dir, "config.json"), json.dumps(_jsonable(run_config), indent=2))
    _atomic_write_text(os.path.join(write_dir, "metrics.json"), json.dumps(_jsonable(metrics), indent=2))
    for filename, tokens in (("vocab.txt", bundle.vocab), ("labels.txt", bundle.labels)):
        if tokens:
            _atomic_write_text(os.path.join(write_dir, filename), "".join(f"{t}\n" for t in tokens))
    plot_curves(os.path.join(write_dir, "training_log.csv"), os.path.join(write_dir, "curves.png"))
    return metrics


def train_and_evaluate(config, model_dir):
    """Trains ``config.model`` on ``config.dataset`` and writes the results to ``model_dir``.

    Args:
        config: a TrainConfig or a dict of its fields.
        model_dir: output directory (created). Running again with the same directory
            resumes an interrupted run.

    Returns:
        dict with ``history`` (per-epoch logs of this process), ``test`` (test
        metrics), ``initial_epoch`` (0, or the epoch a resumed run started at),
        ``write_dir`` and ``builder_overrides``.
    """
    config = as_config(config)
    info = validate(config)
    config, optimizer_settings, lr_schedule = apply_preset(config, info)
    if not model_dir:
        raise ValueError("model_dir is required: pass --model_dir=DIR. Received: model_dir=''")

    strategy = strategy_lib.get_distribution_strategy(config.strategy, config.num_gpus, config.tpu_address)
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        fixed = max(replicas, config.batch_size // replicas * replicas)
        raise ValueError(f"batch_size is global and must be divisible by the {replicas} replicas; "
                         f"pass e.g. --batch_size={fixed}. Received: batch_size={config.batch_size}")
    multi_worker = config.strategy.lower() == "multi_worker_mirrored"
    parameter_server = config.strategy.lower() == "parameter_server"
    task_type, task_id, is_chief = strategy_lib.worker_identity() if multi_worker else (None, 0, True)
    write_dir = model_dir if is_chief else os.path.join(model_dir, "workers", f"{task_type}_{task_id}")
    os.makedirs(write_dir, exist_ok=True)
    backup_dir = os.path.join(write_dir, "backup")
    resuming = os.path.isdir(backup_dir) and bool(os.listdir(backup_dir))

    keras.utils.set_random_seed(config.seed)
    task = tasks.get_task(info.task, config.task_options)
    builder_config = info.resolved_config(tiny=config.tiny, **config.overrides)
    bundle = load_dataset(config.dataset, task=info.task, input_specs=info.inputs_for(builder_config),
                          batch_size=config.batch_size, seed=config.seed, data_dir=config.data_dir)
    for key, value in bundle.model_overrides.items():
        if key in config.overrides and config.overrides[key] != value:
            logging.warning("The data fixes %s=%r; ignoring the override %s=%r.", key, value, key,
                            config.overrides[key])
    builder_overrides = {**config.overrides, **bundle.model_overrides}
    builder_config.update(bundle.model_overrides)
    if parameter_server:
        # Each worker reads its own copy of a split for as long as the coordinator schedules steps on it:
        # every loop is counted in steps and every split repeats (below).
        config.steps_per_epoch = _known_steps(config.steps_per_epoch, bundle.train, "steps_per_epoch")
        config.validation_steps = _known_steps(config.validation_steps, bundle.validation, "validation_steps")

    with strategy.scope():
        model = info.builder(**builder_config)
        fit_model = task.prepare(model, builder_config)
        learning_rate = config.learning_rate
        if lr_schedule:
            learning_rate = optimizers.learning_rate_schedule(learning_rate, lr_schedule,
                                                              _steps_per_epoch(config, bundle.train), config.epochs)
        optimizer = optimizers.create_optimizer(config.optimizer, learning_rate, config.weight_decay,
                                                **optimizer_settings)
        task.compile(fit_model, optimizer, builder_config)

    train, validation, test = bundle.train, bundle.validation, bundle.test
    if config.steps_per_epoch:
        train = train.repeat()
    if config.validation_steps:
        validation = validation.repeat()
    if multi_worker:
        train, validation, test = map(_distribute_options, (train, validation, test))
    test_steps = config.validation_steps
    if test_steps is not None and int(test.cardinality()) >= 0:
        test_steps = min(test_steps, int(test.cardinality()))
    if parameter_server:
        train, validation, test = (_per_worker_start(split, steps) for split, steps in (
            (bundle.train, config.steps_per_epoch), (bundle.validation, config.validation_steps), (test, test_steps)))

    callbacks, first_epoch = _callbacks(model, write_dir, backup_dir, task.monitor, resuming, parameter_server)
    history = task.fit(fit_model, train, validation_data=validation, epochs=config.epochs,
                       steps_per_epoch=config.steps_per_epoch, validation_steps=config.validation_steps,
                       callbacks=callbacks, verbose=config.verbose, shuffle=False)
    if os.path.isdir(backup_dir) and not os.listdir(backup_dir):
        os.rmdir(backup_dir)  # tf_keras deletes the checkpoint files but keeps their directory
    test_metrics = task.evaluate(fit_model, test, test_steps, config.verbose)
    task_results = task.after_training(model, bundle, write_dir, builder_config) if is_chief else {}

    metrics = _write_outputs(write_dir, model, config, info, bundle, builder_overrides, builder_config, replicas,
                             test_metrics, test_steps, initial_epoch=first_epoch.first_epoch or 0,
                             task_results=task_results)
    logging.info("Test metrics: %s (baselines: %s). Outputs in %s", test_metrics, metrics["baselines"], write_dir)
    return {
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "test": test_metrics,
        "initial_epoch": metrics["initial_epoch"],
        "write_dir": write_dir,
        "builder_overrides": builder_overrides,
        "task": task_results,
    }
