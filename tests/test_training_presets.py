"""The papers' training recipes (``--preset=paper``) and training-task options."""
import json
import os

import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras
from training import optimizers, tasks
from training.loop import TrainConfig, apply_preset, train_and_evaluate, validate


def _rate(schedule, step):
    return float(np.asarray(schedule(step)))


def test_piecewise_schedule_switches_at_epoch_boundaries_and_scales_with_the_learning_rate():
    recipe = dict(boundaries_epochs=(2, 3), rates=(0.1, 0.01, 0.001))
    schedule = optimizers.learning_rate_schedule(0.1, recipe, steps_per_epoch=10, epochs=4)
    assert [_rate(schedule, s) for s in (0, 20, 21, 30, 31)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    halved = optimizers.learning_rate_schedule(0.05, recipe, steps_per_epoch=10, epochs=4)
    assert [_rate(halved, s) for s in (0, 25, 35)] == pytest.approx([0.05, 0.005, 0.0005])


def test_polynomial_and_exponential_schedules_follow_their_formulas():
    poly = optimizers.learning_rate_schedule(0.04, dict(polynomial_power=1.0, end_learning_rate=0.0),
                                             steps_per_epoch=5, epochs=4)
    assert [_rate(poly, s) for s in (0, 10, 20)] == pytest.approx([0.04, 0.02, 0.0])
    expo = optimizers.learning_rate_schedule(0.045, dict(exponential_decay_rate=0.94, decay_every_epochs=2),
                                             steps_per_epoch=3, epochs=10)
    # Staircase: constant within each 2-epoch (6-step) period.
    assert [_rate(expo, s) for s in (0, 5, 6, 12)] == pytest.approx([0.045, 0.045, 0.045 * 0.94, 0.045 * 0.94**2])
    with pytest.raises(ValueError, match="Unknown lr_schedule form"):
        optimizers.learning_rate_schedule(0.1, dict(cosine=True), steps_per_epoch=1, epochs=1)


def test_preset_fills_settings_left_at_defaults_and_keeps_the_ones_given():
    info = keras_zoo.model_info("stochastic_depth_resnet110")
    config, settings, schedule = apply_preset(TrainConfig(model=info.name, preset="paper"), info)
    assert (config.optimizer, config.learning_rate, config.batch_size, config.epochs) == ("momentum", 0.1, 128, 500)
    assert config.weight_decay == 1e-4 and settings == {"momentum": 0.9, "nesterov": True}
    assert schedule == info.training_preset["lr_schedule"]

    given = TrainConfig(model=info.name, preset="paper", epochs=3, learning_rate=0.05, optimizer="rmsprop")
    config, settings, _ = apply_preset(given, info)
    assert (config.epochs, config.learning_rate, config.optimizer) == (3, 0.05, "rmsprop")
    assert settings == {}, "the preset's momentum settings do not apply to another optimizer"
    assert apply_preset(TrainConfig(model=info.name), info)[1:] == ({}, None)


def test_preset_errors_name_the_fix():
    with pytest.raises(ValueError, match="has no paper training preset.*densenet121"):
        validate(TrainConfig(model="qrnn_lm_char", preset="paper"))
    with pytest.raises(ValueError, match=r"preset must be one of \('paper',\)"):
        validate(TrainConfig(model="densenet121", preset="fast"))
    with pytest.raises(ValueError, match="takes \\['momentum', 'nesterov'\\].*Received: \\['rho'\\]"):
        optimizers.create_optimizer("momentum", 0.1, rho=0.9)


def test_training_with_the_paper_preset_uses_its_optimizer_and_records_the_recipe(tmp_path):
    config = dict(model="mobilenet", tiny=True, preset="paper", epochs=1, batch_size=16, steps_per_epoch=2,
                  validation_steps=1, verbose=0)
    train_and_evaluate(config, str(tmp_path))
    with open(os.path.join(tmp_path, "config.json")) as f:
        run = json.load(f)
    assert run["training"]["optimizer"] == "rmsprop" and run["training"]["weight_decay"] == 4e-5
    assert run["training"]["preset"] == "paper"
    assert run["preset_recipe"]["lr_schedule"] == {"exponential_decay_rate": 0.94, "decay_every_epochs": 2}


class _Wrapper(tasks.Task):
    name = "wrapper_for_test"
    OPTIONS = {"teacher_for_test": (None, "selects the wrapper"), "strength_for_test": (2.0, "a setting")}
    ACTIVATED_BY = "teacher_for_test"


def test_task_options_are_checked_and_defaults_filled():
    with pytest.raises(ValueError, match=r"does not take the option\(s\) \['no_such_option'\]"):
        tasks.get_task("image_classification", {"no_such_option": 1})
    wrapper = _Wrapper({"teacher_for_test": "dir"}, base_task=tasks.get_task("image_classification"))
    assert wrapper.options == {"teacher_for_test": "dir", "strength_for_test": 2.0}
    assert isinstance(wrapper.base_task.loss({}), keras.losses.SparseCategoricalCrossentropy)
    assert all(isinstance(v, tuple) and len(v) == 2 for v in tasks.all_task_options().values())
