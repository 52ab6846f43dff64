"""Command-line flags of ``python -m training.train``, defined at module level and optional.

``--model`` is required only by ``train.main``; everything else has a default
(None means "the variant's / loop's default").
"""
from absl import flags

from training.loop import PRESETS, TrainConfig
from training.strategy import STRATEGIES
from training.tasks import all_task_options

_DEFAULTS = TrainConfig(model="")

flags.DEFINE_string("model", None, "Registered model name (keras_zoo.list_models()).")
flags.DEFINE_string("dataset", None, "Dataset name, e.g. digits, docstrings_char, tfds:cifar10, "
                    "textfile:PATH[:char|:word], imagefolder:PATH. Default: the variant's default dataset.")
flags.DEFINE_string("model_dir", None, "Output directory. Default: runs/<model>.")
flags.DEFINE_string("data_dir", None, "Dataset cache/data directory.")
flags.DEFINE_bool("tiny", False, "Apply the variant's tiny overrides (smoke runs and tests).")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
flags.DEFINE_integer("steps_per_epoch", None, "Training steps per epoch (default: one pass over the data).")
flags.DEFINE_integer("validation_steps", None, "Validation (and test) batches (default: whole split).")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "GLOBAL batch size, divisible by the replicas.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Learning rate.")
flags.DEFINE_string("optimizer", _DEFAULTS.optimizer, "sgd | momentum | adam | adamw | rmsprop | eve, or learned:PATH (a meta-trained LSTM optimizer .npz; use --learning_rate=1).")
flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "Weight decay (0: none).")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed (weights, shuffling).")
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, STRATEGIES, "Distribution strategy.")
flags.DEFINE_integer("num_gpus", 0, "GPUs for one_device/mirrored.")
flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
flags.DEFINE_enum("preset", None, list(PRESETS), "paper: train with the variant's published recipe (optimizer and "
                  "its settings, learning rate and schedule, weight decay, batch size, epochs); flags you give win.")
flags.DEFINE_string("overrides", "{}", "Builder keyword arguments as JSON, e.g. '{\"dropout\": 0.3}'.")
flags.DEFINE_enum("keras", None, ["2", "3"], "Keras runtime: 2 = tf_keras (needed for QAT), 3 = Keras 3. Default: "
                  "tf_keras unless TF_USE_LEGACY_KERAS=0 is set. Read before TensorFlow is imported.")


def _define_task_option_flags():
    """One flag per training-task option (training.tasks ``Task.OPTIONS``), typed by its default."""
    for key, (default, help_text) in sorted(all_task_options().items()):
        if isinstance(default, bool):
            flags.DEFINE_bool(key, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(key, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(key, default, help_text)
        else:
            flags.DEFINE_string(key, default, help_text)


_define_task_option_flags()


def task_options_from_flags(flag_values):
    """The task options given on the command line (defaults stay with the task)."""
    return {key: flag_values[key].value for key in all_task_options() if flag_values[key].present}
