"""training/ in fresh processes: the CLI, mirrored over 2 logical CPUs, 2 multi-worker processes on
127.0.0.1, and a run killed with SIGKILL that resumes at the right epoch.

These start Python processes (TensorFlow must be configured before it initializes), so each
run is a few steps of a tiny model on the digits.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import keras_zoo
from tests.helpers import free_ports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_MODEL = next((n for n in ("squeezenet1_1", "mobilenet") if n in keras_zoo.list_models()), None)
pytestmark = pytest.mark.skipif(IMAGE_MODEL is None, reason="no image classifier registered")


def _env(legacy, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1" if legacy else "0", **extra)
    return env


def _python(code, *args, legacy, **extra_env):
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=_env(legacy, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process, timeout=240):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def _cli(model_dir, *flags):
    return [sys.executable, "-m", "training.train", f"--model={IMAGE_MODEL}", "--tiny", "--batch_size=8",
            "--optimizer=sgd", f"--model_dir={model_dir}", *flags]


def _csv_epochs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_cli_trains_under_tf_keras(tmp_path):
    """(Bad flags are rejected by ``main`` before any work: test_training.py checks that in-process.)"""
    env = _env(legacy=False)
    del env["TF_USE_LEGACY_KERAS"]  # the CLI picks tf_keras by itself
    run = subprocess.run(_cli(tmp_path / "run", "--epochs=1", "--steps_per_epoch=2", "--validation_steps=1"),
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    assert {"model.keras", "config.json", "metrics.json", "labels.txt", "curves.png",
            "training_log.csv"} <= set(os.listdir(tmp_path / "run"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["keras_version"] == 2 and config["builder_overrides"] == {"classes": 10}
    assert json.loads(run.stdout[run.stdout.index("{"):])["test"].keys() == {"loss", "accuracy"}


_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training.loop import train_and_evaluate
config = dict(model=sys.argv[1], tiny=True, epochs=1, steps_per_epoch=2, validation_steps=1, optimizer="sgd",
              strategy="mirrored", verbose=0)
try:
    train_and_evaluate(dict(config, batch_size=7), sys.argv[2])
except ValueError as error:
    print("REJECTED:", error)
result = train_and_evaluate(dict(config, batch_size=8), sys.argv[2])
print("RESULT:", json.dumps(result["test"]))
"""


def test_mirrored_on_two_logical_cpus(tmp_path):
    output = _finish(_python(_MIRRORED, IMAGE_MODEL, str(tmp_path), legacy=False))
    assert "REJECTED: batch_size is global and must be divisible by the 2 replicas; pass e.g. --batch_size=6" \
        in output
    assert json.loads((tmp_path / "config.json").read_text())["replicas"] == 2
    assert "accuracy" in json.loads(output.split("RESULT:")[1])


_WORKER = """
import sys
import numpy as np
from keras_zoo.backend import keras
from training.loop import train_and_evaluate
result = train_and_evaluate(dict(model=sys.argv[1], tiny=True, epochs=2, steps_per_epoch=2, validation_steps=1,
                                 batch_size=8, optimizer="sgd", strategy="multi_worker_mirrored", verbose=0),
                            sys.argv[2])
model = keras.models.load_model(result["write_dir"] + "/model.keras", compile=False)
np.savez(sys.argv[3], *model.get_weights())
"""


def test_two_workers_on_localhost_end_with_the_same_weights(tmp_path):
    """Under tf_keras: Keras 3.15's fit cannot run MultiWorkerMirroredStrategy (see training/loop.py)."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(_python(_WORKER, IMAGE_MODEL, str(tmp_path), str(tmp_path / f"weights{index}.npz"),
                                 legacy=True, TF_CONFIG=tf_config))
    try:
        for process in processes:
            _finish(process)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert os.path.exists(tmp_path / "model.keras")  # the chief writes model_dir
    assert os.path.exists(tmp_path / "workers" / "worker_1" / "model.keras")  # the other worker, its own dir
    chief, other = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    assert len(chief.files) == len(other.files) > 0
    for key in chief.files:
        np.testing.assert_allclose(chief[key], other[key], rtol=1e-6, atol=1e-6)
    with open(tmp_path / "training_log.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_killed_run_resumes_at_the_next_epoch(tmp_path):
    flags = ("--epochs=2", "--steps_per_epoch=40", "--validation_steps=1")
    log = tmp_path / "training_log.csv"
    env = _env(legacy=True)
    process = subprocess.Popen(_cli(tmp_path, *flags), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not _csv_epochs(log) and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    completed = _csv_epochs(log)
    assert completed == [0], "the run should be killed during its second epoch; raise --steps_per_epoch"
    assert os.path.isdir(tmp_path / "backup") and not os.path.exists(tmp_path / "model.keras")

    resumed = subprocess.run(_cli(tmp_path, *flags), cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["initial_epoch"] == 1
    assert "Epoch 2/2" in resumed.stdout and "Epoch 1/2" not in resumed.stdout
    assert _csv_epochs(log) == [0, 1]
    assert os.path.exists(tmp_path / "model.keras") and not os.path.exists(tmp_path / "backup")
