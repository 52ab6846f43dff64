"""Command-line flags of ``python -m training.train``, defined by ``define_flags`` only.

Nothing is defined at import, so this module, ``training.train`` and ``export.tflite``
(whose flags share names such as ``--model_dir`` and ``--batch_size``) import together.
``--model`` is required only by ``train.run``; everything else has a default (None
means "the variant's / loop's default").
"""
import weakref

from absl import flags

from training.loop import PRESETS, TrainConfig
from training.strategy import STRATEGIES
from training.tasks import all_task_options

_DEFAULTS = TrainConfig(model="")
_DEFINED_IN = weakref.WeakSet()


def define_flags(flag_values=flags.FLAGS):
    """Defines the training flags and one flag per task option in ``flag_values`` (once per FlagValues)."""
    if flag_values in _DEFINED_IN:
        return
    flags.DEFINE_string("model", None, "Registered model name (keras_zoo.list_models()).", flag_values=flag_values)
    flags.DEFINE_string("dataset", None, "Dataset name, e.g. digits, docstrings_char, tfds:cifar10, "
                        "textfile:PATH[:char|:word], imagefolder:PATH. Default: the variant's default dataset.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_dir", None, "Output directory. Default: runs/<model>.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "Dataset cache/data directory.", flag_values=flag_values)
    flags.DEFINE_bool("tiny", False, "Apply the variant's tiny overrides (smoke runs and tests).",
                      flag_values=flag_values)
    flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.", flag_values=flag_values)
    flags.DEFINE_integer("steps_per_epoch", None, "Training steps per epoch (default: one pass over the data).",
                         flag_values=flag_values)
    flags.DEFINE_integer("validation_steps", None, "Validation (and test) batches (default: whole split).",
                         flag_values=flag_values)
    flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "GLOBAL batch size, divisible by the replicas.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Learning rate.", flag_values=flag_values)
    flags.DEFINE_string("optimizer", _DEFAULTS.optimizer, "sgd | momentum | adam | adamw | rmsprop | eve, or "
                        "learned:PATH (a meta-trained LSTM optimizer .npz; use --learning_rate=1).",
                        flag_values=flag_values)
    flags.DEFINE_float("weight_decay", _DEFAULTS.weight_decay, "Weight decay (0: none).", flag_values=flag_values)
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed (weights, shuffling).", flag_values=flag_values)
    flags.DEFINE_enum("strategy", _DEFAULTS.strategy, STRATEGIES, "Distribution strategy.", flag_values=flag_values)
    flags.DEFINE_integer("num_gpus", 0, "GPUs for one_device/mirrored.", flag_values=flag_values)
    flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.", flag_values=flag_values)
    flags.DEFINE_enum("preset", None, list(PRESETS), "paper: train with the variant's published recipe (optimizer "
                      "and its settings, learning rate and schedule, weight decay, batch size, epochs); flags you "
                      "give win.", flag_values=flag_values)
    flags.DEFINE_string("overrides", "{}", "Builder keyword arguments as JSON, e.g. '{\"dropout\": 0.3}'.",
                        flag_values=flag_values)
    flags.DEFINE_enum("keras", None, ["2", "3"], "Keras runtime: 2 = tf_keras (needed for QAT), 3 = Keras 3. "
                      "Default: tf_keras unless TF_USE_LEGACY_KERAS=0 is set. Read before TensorFlow is imported.",
                      flag_values=flag_values)
    _define_task_option_flags(flag_values)
    _DEFINED_IN.add(flag_values)


def _define_task_option_flags(flag_values):
    """One flag per training-task option (training.tasks ``Task.OPTIONS``), typed by its default."""
    for key, (default, help_text) in sorted(all_task_options().items()):
        if isinstance(default, bool):
            flags.DEFINE_bool(key, default, help_text, flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(key, default, help_text, flag_values=flag_values)
        elif isinstance(default, float):
            flags.DEFINE_float(key, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(key, default, help_text, flag_values=flag_values)


def task_options_from_flags(flag_values):
    """The task options given on the command line (defaults stay with the task)."""
    return {key: flag_values[key].value for key in all_task_options() if flag_values[key].present}
