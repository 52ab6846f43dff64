"""Helpers shared by several test modules (not fixtures: plain functions)."""
import json
import socket

import numpy as np


def free_ports(count):
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def trained_model_dir(name, model_dir, steps=20):
    """A tiny ``name`` trained ``steps`` steps on its default dataset, saved as training.train
    would (model.keras + config.json) in the pathlib directory ``model_dir``."""
    import keras_zoo
    from keras_zoo.backend import keras
    from keras_zoo.data import load_dataset

    info = keras_zoo.model_info(name)
    config = info.resolved_config(tiny=True)
    bundle = load_dataset(info.default_dataset, task=info.task, input_specs=info.inputs_for(config),
                          batch_size=16, seed=0)
    keras.utils.set_random_seed(0)
    model = info.builder(**config)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(bundle.train.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    model.save(str(model_dir / "model.keras"))
    (model_dir / "config.json").write_text(json.dumps({"model": name, "tiny": True}))
    return str(model_dir)


def assert_int8_decoder_verified_on_held_out_text(name, tmp_path):
    """Trains tiny ``name`` briefly and exports it to int8: the decoder graph is fed by the
    encoder on the test split, and the report's bits/token (non-padding targets) of the
    .tflite stays within the int8 threshold of Keras. tf_keras only (imports export.tflite)."""
    from export import tflite, verify

    model_dir = trained_model_dir(name, tmp_path)
    report = tflite.export_model(model_dir=model_dir, quantization="int8", num_verify=32,
                                 output=str(tmp_path / "int8"), log=lambda *_: None)
    assert report["data"]["verify"] == "test split of docstrings_reverse"
    assert report["select_tf_ops"] == [] and report["inputs"][0]["dtype"] == "int32"
    result = report["verification"]
    assert result["num_examples"] == 32 and result["scored_tokens"] > 32
    assert result["keras_bits_per_token"] < np.log2(40)  # trained: better than a uniform guess
    limit = verify.THRESHOLDS["int8"]["max_rel_metric_delta"] * result["keras_bits_per_token"]
    assert abs(result["metric_delta"]) <= limit and report["passed"], result
