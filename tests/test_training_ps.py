"""strategy=parameter_server and strategy=tpu in training/.

ParameterServerStrategy trains through ``model.fit`` only under tf_keras (Keras 3.15's fit
has no ClusterCoordinator). The cluster test starts a real cluster on 127.0.0.1 in two
processes (each TensorFlow start costs ~7 s of CPU): the ps task is ``python -m
training.train``, which serves and blocks, so the variables live in another process; the
chief coordinates ``train_and_evaluate`` and, like the TF guide's in-process cluster, also
serves the two workers. The other checks (bad clusters, TPU) never connect to anything.
"""
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import IS_LEGACY_KERAS
from training import strategy as strategy_lib
from training.loop import train_and_evaluate
from tests.helpers import free_ports

pytestmark = pytest.mark.both
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_MODEL = next((n for n in ("squeezenet1_1", "mobilenet") if n in keras_zoo.list_models()), None)
tf_keras_only = pytest.mark.skipif(not IS_LEGACY_KERAS, reason="ParameterServerStrategy trains under tf_keras only")
keras3_only = pytest.mark.skipif(IS_LEGACY_KERAS, reason="checks the Keras 3 refusal")
needs_model = pytest.mark.skipif(IMAGE_MODEL is None, reason="no image classifier registered")


def _cluster(chief=True, workers=2, ps=1):
    ports = iter(free_ports(int(chief) + workers + ps))
    cluster = {"worker": [f"127.0.0.1:{next(ports)}" for _ in range(workers)],
               "ps": [f"127.0.0.1:{next(ports)}" for _ in range(ps)]}
    if chief:
        cluster["chief"] = [f"127.0.0.1:{next(ports)}"]
    return {job: tasks for job, tasks in cluster.items() if tasks}


def _tf_config(cluster, task_type, index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def _config(**settings):
    return {"model": IMAGE_MODEL, "tiny": True, "epochs": 1, "steps_per_epoch": 2, "validation_steps": 1,
            "batch_size": 8, "optimizer": "sgd", "strategy": "parameter_server", "verbose": 0, **settings}


def _env(tf_config):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1", TF_CONFIG=tf_config)
    return env


_CHIEF = """
import json, os, sys
import numpy as np
import tensorflow as tf
cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
# The TF guide's in-process cluster on a small machine: worker servers need more inter-op threads than
# cores, or their steps wait behind each other and the coordinator.
for index in range(len(cluster["worker"])):
    tf.distribute.Server(tf.train.ClusterSpec(cluster), job_name="worker", task_index=index, protocol="grpc",
                         config=tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4), start=True)
from keras_zoo import model_info
from keras_zoo.backend import keras
from training.loop import train_and_evaluate
config = dict(model=sys.argv[1], tiny=True, epochs=2, steps_per_epoch=3, batch_size=8, optimizer="sgd",
              learning_rate=0.1, strategy="parameter_server", verbose=2, seed=3)
result = train_and_evaluate(config, sys.argv[2])
# Variables are created with the same seeded initializers under the strategy: a fresh build is the initial model.
info = model_info(sys.argv[1])
keras.utils.set_random_seed(3)
initial = info.builder(**info.resolved_config(tiny=True, **result["builder_overrides"])).get_weights()
trained = keras.models.load_model(os.path.join(sys.argv[2], "model.keras"), compile=False).get_weights()
change = max(float(np.abs(a - b).max()) for a, b in zip(initial, trained))
print("RESULT:", json.dumps({"history": result["history"], "test": result["test"], "change": change}))
"""


@tf_keras_only
@needs_model
def test_cluster_of_chief_two_workers_and_a_ps_trains_on_localhost(tmp_path):
    cluster = _cluster()
    ps = subprocess.Popen([sys.executable, "-m", "training.train", f"--model={IMAGE_MODEL}",
                           "--strategy=parameter_server"], cwd=REPO, env=_env(_tf_config(cluster, "ps")),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        chief = subprocess.run([sys.executable, "-c", _CHIEF, IMAGE_MODEL, str(tmp_path)], cwd=REPO,
                               env=_env(_tf_config(cluster, "chief")), capture_output=True, text=True, timeout=300)
        assert chief.returncode == 0, chief.stdout[-3000:] + chief.stderr[-3000:]
        assert ps.poll() is None, "the ps task must serve until it is killed"
    finally:
        ps.kill()
        ps.wait()

    result = json.loads(chief.stdout.split("RESULT:")[1])
    assert result["change"] > 1e-4, "training through the cluster did not change the weights"
    # Six small steps move the weights by ~0.05 at most; another initialization would differ by ~1.
    assert result["change"] < 0.25, "the seeded fresh build is not the initial model: compare differently"
    assert all(math.isfinite(x) for values in result["history"].values() for x in values)
    assert {"model.keras", "best_model.keras", "config.json", "metrics.json", "training_log.csv",
            "labels.txt"} <= set(os.listdir(tmp_path))
    assert not os.path.exists(tmp_path / "backup") and not os.path.exists(tmp_path / "workers")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["keras_version"] == 2 and saved["training"]["strategy"] == "parameter_server"
    # Every loop is counted in steps: validation_steps defaults to one pass over the validation split.
    assert saved["training"]["steps_per_epoch"] == 3 and saved["training"]["validation_steps"] >= 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == result["test"] and metrics["test"].keys() == {"loss", "accuracy"}
    assert all(math.isfinite(v) for v in metrics["test"].values())
    with open(tmp_path / "training_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert np.allclose([float(row["loss"]) for row in rows], result["history"]["loss"])
    if importlib.util.find_spec("tensorboard"):  # epoch summaries: TensorBoard writes no batch ones under PSS
        assert any("tfevents" in name for _, _, names in os.walk(tmp_path / "logs") for name in names)


@tf_keras_only
@needs_model
@pytest.mark.parametrize("tf_config, message", [
    (None, "needs a cluster of chief, worker and ps tasks: set TF_CONFIG"),
    ("{cluster", "TF_CONFIG must be JSON"),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}},
     "needs at least one 'ps' task in TF_CONFIG"),
    ({"cluster": {"chief": ["a:1"], "ps": ["b:1"]}, "task": {"type": "chief", "index": 0}},
     "needs at least one 'worker' task"),
    ({"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 1}},
     r"index'\] must be in \[0, 1\)"),
    ({"cluster": {"worker": ["a:1"], "ps": ["b:1"], "master": ["c:1"]}, "task": {"type": "master", "index": 0}},
     r"chief, worker and ps jobs .*Received: jobs \['master'\]"),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1"], "ps": ["c:1"]}, "task": {"type": "worker", "index": 0}},
     "task worker:0 of a parameter-server cluster: it runs a server, not the training loop"),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1"], "ps": ["c:1"], "evaluator": ["d:1"]},
      "task": {"type": "evaluator", "index": 0}}, "side-car evaluator task is not supported"),
])
def test_bad_clusters_are_rejected_before_any_work(tmp_path, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config if isinstance(tf_config, str) else json.dumps(tf_config))
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(_config(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@tf_keras_only
@needs_model
def test_per_batch_progress_bar_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config(_cluster(), "chief"))
    with pytest.raises(ValueError, match="pass verbose=2, 0 or 'auto'. Received: verbose=1"):
        train_and_evaluate(_config(verbose=1), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@keras3_only
@needs_model
def test_keras3_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config(_cluster(), "chief"))
    with pytest.raises(ValueError, match=r"tf_keras only.*--keras=2.*TF_USE_LEGACY_KERAS=1"):
        train_and_evaluate(_config(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_only_worker_and_ps_tasks_serve(monkeypatch):
    cluster = _cluster()
    monkeypatch.setenv("TF_CONFIG", _tf_config(cluster, "chief"))
    assert strategy_lib.serve_if_cluster_task("parameter_server") is False
    monkeypatch.setenv("TF_CONFIG", _tf_config(cluster, "worker", 1))
    assert strategy_lib.serve_if_cluster_task("multi_worker_mirrored") is False  # MWMS workers train
    assert strategy_lib.parameter_server_cluster() == (cluster, "worker", 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster}))  # no task: the coordinator
    assert strategy_lib.parameter_server_cluster()[1:] == ("chief", 0)


@needs_model
def test_cli_worker_with_a_bad_cluster_fails_with_the_fix(tmp_path, monkeypatch):
    from absl import app, flags

    from training import train

    monkeypatch.setenv("TF_CONFIG", _tf_config({"worker": ["127.0.0.1:1"]}, "worker"))
    argv = ["train", f"--model={IMAGE_MODEL}", "--strategy=parameter_server", f"--model_dir={tmp_path / 'run'}"]
    flag_values = flags.FlagValues()  # not the global FLAGS, where export.tflite's tests define their flags
    train.define_flags(flag_values)
    flag_values(argv)
    with pytest.raises(app.UsageError, match="needs at least one 'ps' task"):
        train.main(argv[:1], flag_values)
    assert not (tmp_path / "run").exists()


@needs_model
@pytest.mark.parametrize("tpu, message", [
    (None, r"found no TPU attached to this machine; pass --tpu=NAME .* or train with --strategy=mirrored"),
    ("local", "found no TPU attached to this machine"),
    ("grpc://127.0.0.1", r"grpc://HOST:PORT"),
    ("grpc://127.0.0.1:{closed_port}", r"cannot reach the TPU at grpc://127.0.0.1:\d+ .*check the address"),
])
def test_tpu_without_a_tpu_fails_fast_with_the_fix(tmp_path, tpu, message):
    if tpu and "{closed_port}" in tpu:
        tpu = tpu.format(closed_port=free_ports(1)[0])  # nothing listens there
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(_config(strategy="tpu", tpu_address=tpu), tmp_path / "run")
    assert not (tmp_path / "run").exists()
