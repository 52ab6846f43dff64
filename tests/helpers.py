"""Helpers shared by several test modules (not fixtures: plain functions)."""
import json
import socket


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
