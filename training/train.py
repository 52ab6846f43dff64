"""Trains a registered model: ``python -m training.train --model=NAME [--dataset=...] [--model_dir=...]``.

Runs under tf_keras by default (``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow
is imported) so that train -> QAT -> TFLite happen in one runtime; ``--keras=3``
opts out. Console script: ``keras-zoo-train``.

With ``--strategy=parameter_server`` every task of the cluster runs the same command
with its own ``TF_CONFIG``: the ``chief`` trains (it coordinates), the ``worker`` and
``ps`` tasks start their ``tf.distribute.Server`` and block until they are killed.
"""
import os
import sys


def _select_keras(argv):
    """Must run before TensorFlow is imported (later it has no effect; ``main`` then checks)."""
    if "tensorflow" in sys.modules:
        return
    if "--keras=3" in argv or ("--keras" in argv and argv[argv.index("--keras") + 1:][:1] == ["3"]):
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "0")
    else:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


_select_keras(sys.argv)

import json  # noqa: E402  (TensorFlow must see TF_USE_LEGACY_KERAS first)

from absl import app, flags  # noqa: E402

from keras_zoo.backend import keras_major_version  # noqa: E402
from training import flags as _flags  # noqa: E402
from training.loop import TrainConfig, as_config, train_and_evaluate, validate  # noqa: E402
from training.strategy import serve_if_cluster_task  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """Defines this CLI's flags in ``flag_values`` (once). Only ``run`` calls it with the global
    FLAGS, so importing this module next to ``export.tflite`` (same flag names) is safe."""
    _flags.define_flags(flag_values)
    flags.adopt_module_key_flags(_flags, flag_values)  # --help lists them (they live in training.flags)



def config_from_flags(flag_values=flags.FLAGS):
    """A TrainConfig from the parsed flags; bad JSON in --overrides is a ValueError."""
    fv = flag_values
    try:
        overrides = json.loads(fv.overrides)
    except json.JSONDecodeError as error:
        raise ValueError(f"--overrides must be a JSON object, e.g. '{{\"dropout\": 0.3}}'. "
                         f"Received: --overrides={fv.overrides!r} ({error})") from None
    return TrainConfig(
        model=fv.model, dataset=fv.dataset, tiny=fv.tiny, overrides=overrides,
        epochs=fv.epochs, steps_per_epoch=fv.steps_per_epoch, validation_steps=fv.validation_steps,
        batch_size=fv.batch_size, learning_rate=fv.learning_rate, optimizer=fv.optimizer,
        weight_decay=fv.weight_decay, seed=fv.seed, strategy=fv.strategy, num_gpus=fv.num_gpus,
        tpu_address=fv.tpu, data_dir=fv.data_dir, task_options=_flags.task_options_from_flags(fv),
        preset=fv.preset)


def main(argv, flag_values=flags.FLAGS):
    """Trains as the parsed ``flag_values`` say (``app.run`` passes only ``argv``: the global FLAGS)."""
    fv = flag_values
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        if serve_if_cluster_task(fv.strategy):  # a worker or ps task: serves until killed
            return
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if fv.keras and int(fv.keras) != keras_major_version():
        raise app.UsageError(f"--keras={fv.keras} must be decided before TensorFlow is imported; "
                             f"this process already runs Keras {keras_major_version()}. Unset TF_USE_LEGACY_KERAS.")
    try:
        config = config_from_flags(fv)
        validate(as_config(config))
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    model_dir = fv.model_dir or os.path.join("runs", fv.model)
    result = train_and_evaluate(config, model_dir)
    print(json.dumps({"model_dir": result["write_dir"], "test": result["test"]}, indent=2))


def run():
    """Entry point of the ``keras-zoo-train`` console script."""
    define_flags()
    flags.mark_flag_as_required("model")
    app.run(main)


if __name__ == "__main__":
    run()
