"""The memory (DNC) and policy_value (AlphaGo) tasks train through the shared loop."""
import json

import numpy as np
import pytest

import keras_zoo
from training.loop import train_and_evaluate

pytestmark = pytest.mark.both  # the CLI trains under tf_keras by default


@pytest.mark.parametrize("name", ["dnc", "alphago_policy", "alphago_value", "alphago_zero"])
def test_one_tiny_epoch_on_the_default_dataset(name, tmp_path):
    result = train_and_evaluate(
        dict(model=name, tiny=True, epochs=1, steps_per_epoch=2, validation_steps=1, batch_size=8, verbose=0),
        str(tmp_path))
    assert result["test"] and all(np.isfinite(v) for v in result["test"].values())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["task"] == keras_zoo.model_info(name).task
    if name == "dnc":
        assert 0.0 <= result["test"]["bit_accuracy"] <= 1.0
