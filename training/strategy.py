"""A string-to-tf.distribute.Strategy factory, in the style of Model Garden's distribute_utils."""
import json
import os

import tensorflow as tf

STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")


def get_distribution_strategy(name="mirrored", num_gpus=0, tpu_address=None):
    """Returns the tf.distribute strategy for ``name``, or None for ``"off"``.

    Args:
        name: one of STRATEGIES (case-insensitive).
        num_gpus: GPUs for ``one_device`` / ``mirrored``. With 0, ``mirrored`` mirrors
            over every logical CPU device (one, unless more were configured with
            ``tf.config.set_logical_device_configuration``).
        tpu_address: TPU name or grpc address for ``tpu`` ("" for a local TPU VM).
    """
    if not isinstance(name, str) or name.lower() not in STRATEGIES:
        raise ValueError(f"Unknown distribution strategy; use one of {', '.join(STRATEGIES)}. "
                         f"Received: strategy={name!r}")
    if not isinstance(num_gpus, int) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a non-negative integer. Received: num_gpus={num_gpus!r}")
    name = name.lower()
    if name == "off":
        return None
    if name == "one_device":
        if num_gpus > 1:
            raise ValueError(f"one_device runs on at most one GPU; use strategy=mirrored for several. "
                             f"Received: num_gpus={num_gpus}")
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
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy=parameter_server needs a cluster: set TF_CONFIG with 'chief', "
                             "'worker' and 'ps' tasks. Received: no TF_CONFIG in the environment")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.experimental.ParameterServerStrategy(resolver)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    if tpu_address not in ("", "local"):
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_identity():
    """``(task_type, task_id, is_chief)`` of this process from TF_CONFIG (chief when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    is_chief = (task_type is None or task_type == "chief"
                or (task_type == "worker" and task_id == 0 and not has_chief))
    return task_type, task_id, is_chief
