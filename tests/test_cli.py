"""The `keras-zoo` command and the README's generated model table."""
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
