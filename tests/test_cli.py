"""The `keras-zoo` command, the README's generated model table, and the absl flags of
``python -m training.train`` and ``python -m export.tflite``."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import keras_zoo
from keras_zoo.cli import main, model_table

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_list_prints_every_registered_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in keras_zoo.list_models():
        assert name in out


def test_list_filters_by_pattern():
    table = model_table("qrnn_*")
    assert "qrnn_lm_char" in table
    assert all(line.startswith(("qrnn", "name", "-")) for line in table.splitlines())


def test_info_of_unknown_name_is_a_clear_error(capsys):
    assert main(["info", "qrnn_lm_chr"]) == 2
    assert "Did you mean 'qrnn_lm_char'" in capsys.readouterr().err


def test_readme_model_table_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "model_table.py"), "--check"], capture_output=True)
    if result.returncode:
        pytest.fail("README.md's model table is stale: run `python tools/model_table.py`.")


# A fresh process: export.tflite picks the Keras runtime on import, which would switch this session.
_BOTH_CLIS = """
import json
from absl import app, flags
from training import train
from export import tflite
shared = ["model", "model_dir", "tiny", "steps_per_epoch", "learning_rate", "batch_size"]
defined_on_import = [name for name in shared + ["quantization", "teacher_dir"] if name in flags.FLAGS]

train_flags = flags.FlagValues()
train.define_flags(train_flags)
train.define_flags(train_flags)  # idempotent
train_flags(["train", "--model=mobilenet", "--batch_size=8", "--steps_per_epoch=3", "--teacher_dir=/teacher",
             '--overrides={"alpha": 0.25}'])
config = train.config_from_flags(train_flags)
train_flags.batch_size = 0
try:
    train.main(["train"], train_flags)
    train_error = None
except app.UsageError as error:
    train_error = str(error)

export_flags = flags.FlagValues()
tflite.define_flags(export_flags)
export_flags(["export", "--model_dir=/no/such/run", "--batch_size=4", "--quantization=float16"])
try:
    tflite.main([], export_flags)
    export_exit = None
except SystemExit as stop:
    export_exit = stop.code
print("RESULT:", json.dumps({
    "defined_on_import": defined_on_import,
    "train": {"model": config.model, "batch_size": config.batch_size, "steps_per_epoch": config.steps_per_epoch,
              "learning_rate": config.learning_rate, "overrides": config.overrides,
              "task_options": config.task_options, "error": train_error},
    "export": {name: export_flags[name].value for name in shared + ["quantization", "qat_epochs"]},
    "export_exit": export_exit,
    "global_flags_after": [name for name in shared if name in flags.FLAGS],
}))
"""


def _run_python(*args):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_train_and_export_clis_import_together_and_parse_their_own_flags():
    result = _run_python("-c", _BOTH_CLIS)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT:")[1])
    assert found["defined_on_import"] == [] and found["global_flags_after"] == []
    train = found["train"]
    assert "batch_size must be" in train.pop("error")  # main read these flags: --batch_size=0 set after parsing
    assert train == {"model": "mobilenet", "batch_size": 8, "steps_per_epoch": 3, "learning_rate": 1e-3,
                     "overrides": {"alpha": 0.25}, "task_options": {"teacher_dir": "/teacher"}}
    # Same names, each CLI's own defaults: the export fine-tune's learning rate is 1e-4, training's 1e-3.
    assert found["export"] == {"model": None, "model_dir": "/no/such/run", "tiny": False, "steps_per_epoch": None,
                               "learning_rate": 1e-4, "batch_size": 4, "quantization": "float16", "qat_epochs": 1}
    assert found["export_exit"] == 2  # main read these flags: the missing --model_dir is an ExportError
    assert "--model_dir '/no/such/run' does not exist" in result.stderr


def test_train_help_lists_its_flags_and_the_task_options():
    result = _run_python("-m", "training.train", "--help")
    assert "Trains a registered model" in result.stdout
    for flag in ("--model:", "--batch_size:", "--strategy:", "--teacher_dir:", "--precise_bn_batches:"):
        assert flag in result.stdout
    assert "--quantization" not in result.stdout
