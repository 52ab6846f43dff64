"""A string-to-tf.distribute.Strategy factory, in the style of Model Garden's distribute_utils.

``check_strategy`` runs the cheap checks (cluster description, TPU presence) before
any work; ``get_distribution_strategy`` builds the strategy; ``serve_if_cluster_task``
runs the worker and ps tasks of a parameter-server cluster.
"""
import json
import os
import socket
from urllib.parse import urlparse

import tensorflow as tf

STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")
#: TF_CONFIG task types that only serve a parameter-server cluster (the coordinator is "chief").
SERVING_TASKS = ("worker", "ps")
_TPU_CONNECT_TIMEOUT_S = 5.0


def get_distribution_strategy(name="mirrored", num_gpus=0, tpu_address=None):
    """Returns the tf.distribute strategy for ``name``, or None for ``"off"``.

    Args:
        name: one of STRATEGIES (case-insensitive).
        num_gpus: GPUs for ``one_device`` / ``mirrored``. With 0, ``mirrored`` mirrors
            over every logical CPU device (one, unless more were configured with
            ``tf.config.set_logical_device_configuration``).
        tpu_address: TPU name or ``grpc://host:port`` for ``tpu``; ``"local"`` (or
            None) for a TPU attached to this machine.

    Under ``parameter_server`` each variable lives whole on one ps task (round robin):
    a variable partitioner (tf.distribute.experimental.partitioners) would split large
    kernels into shards, which tf_keras 2.21 saves as extra variables that
    ``load_model`` then refuses ("Layer 'conv1' expected 2 variables, but received 3").

    Raises:
        ValueError: the checks of ``check_strategy``, before anything is started.
    """
    check_strategy(name, num_gpus, tpu_address)
    name = name.lower()
    if name == "off":
        return None
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("device:GPU:0" if num_gpus else "device:CPU:0")
    if name == "mirrored":
        if num_gpus:
            devices = [f"device:GPU:{i}" for i in range(num_gpus)]
        else:
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        return tf.distribute.experimental.ParameterServerStrategy(
            tf.distribute.cluster_resolver.TFConfigClusterResolver())
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=_tpu_name(tpu_address))
    if _tpu_name(tpu_address) != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def check_strategy(name, num_gpus=0, tpu_address=None):
    """Rejects a strategy that cannot start here, cheaply and without waiting on the network for long.

    Raises:
        ValueError: naming the problem and its fix.
    """
    if not isinstance(name, str) or name.lower() not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy; use one of {', '.join(STRATEGIES)}. "
                         f"Received: strategy={name!r}")
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a non-negative integer. Received: num_gpus={num_gpus!r}")
    name = name.lower()
    if name == "one_device" and num_gpus > 1:
        raise ValueError(f"one_device runs on at most one GPU; use strategy=mirrored for several. "
                         f"Received: num_gpus={num_gpus}")
    if name == "parameter_server":
        parameter_server_cluster()
    if name == "tpu":
        _check_tpu(tpu_address)


def parameter_server_cluster():
    """``(cluster, task_type, task_id)`` of a parameter-server cluster from TF_CONFIG.

    The cluster needs at least one ``worker`` and one ``ps`` task; the coordinator is
    the ``chief`` task (TF_CONFIG without a task also coordinates).

    Raises:
        ValueError: when TF_CONFIG is missing or does not describe such a cluster.
    """
    fix = ('set TF_CONFIG on every task, e.g. {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", '
           '"host2:2222"], "ps": ["host3:2222"]}, "task": {"type": "chief", "index": 0}}')
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(f"strategy=parameter_server needs a cluster of chief, worker and ps tasks: {fix}. "
                         "Received: no TF_CONFIG in the environment")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG must be JSON: {fix}. Received: TF_CONFIG={text!r} ({error})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"strategy=parameter_server needs TF_CONFIG['cluster']: {fix}. Received: TF_CONFIG={text}")
    for job in ("worker", "ps"):
        if not cluster.get(job):
            raise ValueError(f"strategy=parameter_server needs at least one {job!r} task in TF_CONFIG['cluster']: "
                             f"{fix}. Received: jobs {sorted(cluster)}")
    unknown = sorted(set(cluster) - {"chief", "worker", "ps", "evaluator"})
    if unknown:
        raise ValueError(f"A parameter-server cluster has chief, worker and ps jobs (and an optional evaluator). "
                         f"Received: jobs {unknown}")
    task = config.get("task") or {}
    task_type, task_id = task.get("type", "chief"), int(task.get("index", 0))
    if task_type not in cluster and not (task_type == "chief" and "task" not in config):
        raise ValueError(f"TF_CONFIG['task'] must name a job of the cluster ({sorted(cluster)}). "
                         f"Received: task={task}")
    if task_type in cluster and not 0 <= task_id < len(cluster[task_type]):
        raise ValueError(f"TF_CONFIG['task']['index'] must be in [0, {len(cluster[task_type])}) for job "
                         f"{task_type!r}. Received: task={task}")
    return cluster, task_type, task_id


def serve_if_cluster_task(strategy_name):
    """Under ``parameter_server``, a ``worker`` or ``ps`` task starts its server and blocks; else returns False.

    Workers and parameter servers run no Python training code: the chief (coordinator)
    creates variables on the ps tasks and schedules steps on the workers.
    """
    if not isinstance(strategy_name, str) or strategy_name.lower() != "parameter_server":
        return False
    cluster, task_type, task_id = parameter_server_cluster()
    if task_type not in SERVING_TASKS:
        return False
    # The TF guide's setting: a worker's RPC errors go back to the coordinator, which reschedules the step.
    os.environ["GRPC_FAIL_FAST"] = "use_caller"
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=task_type, task_index=task_id,
                                  protocol=resolver.rpc_layer or "grpc", start=True)
    server.join()
    return True


def worker_identity():
    """``(task_type, task_id, is_chief)`` of this process from TF_CONFIG (chief when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    is_chief = (task_type is None or task_type == "chief"
                or (task_type == "worker" and task_id == 0 and not has_chief))
    return task_type, task_id, is_chief


def _tpu_name(tpu_address):
    return "local" if tpu_address in (None, "", "local") else tpu_address


def _check_tpu(tpu_address):
    """Fails fast when no TPU can be reached: resolving or initializing a missing TPU can block for minutes."""
    name = _tpu_name(tpu_address)
    if name == "local":
        if not tf.config.list_physical_devices("TPU"):
            raise ValueError("strategy=tpu found no TPU attached to this machine; pass --tpu=NAME (a Cloud TPU) or "
                             "--tpu=grpc://HOST:8470, or train with --strategy=mirrored or one_device. "
                             f"Received: tpu={tpu_address!r}")
        return
    if name.startswith("grpc://"):
        address = urlparse(name)
        if not address.hostname or not address.port:
            raise ValueError(f"A TPU address is grpc://HOST:PORT, e.g. grpc://10.0.0.2:8470. Received: tpu={name!r}")
        try:
            socket.create_connection((address.hostname, address.port), timeout=_TPU_CONNECT_TIMEOUT_S).close()
        except OSError as error:
            raise ValueError(f"strategy=tpu cannot reach the TPU at {name} ({error}); check the address and that "
                             f"the TPU is running, or train with --strategy=mirrored or one_device. "
                             f"Received: tpu={name!r}") from None
        return
    try:
        tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
    except Exception as error:  # noqa: BLE001  (the resolver raises URLError, HTTPError, ValueError, ...)
        raise ValueError(f"strategy=tpu cannot resolve the Cloud TPU {name!r} ({type(error).__name__}: {error}); "
                         "run on a Google Cloud VM that can see it, pass --tpu=grpc://HOST:8470, or train with "
                         f"--strategy=mirrored or one_device. Received: tpu={name!r}") from None
