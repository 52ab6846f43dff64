"""Speed of keras_zoo's DenseNet121 and MobileNet against keras.applications.

Both sides have the same layers, so the ratio should be 1.00 (target within
+-5%). Forward (inference) and one SGD training step are timed as tf.functions,
interleaving the two models so that load on a shared machine hits both alike;
the table shows wall-time medians and the ratios keras_zoo / keras.applications of wall
and of process CPU time.

    python tools/bench_vision.py [--batch_size=8] [--image_size=96] [--repeats=7]

Set TF_USE_LEGACY_KERAS=1 to measure under tf_keras.
"""
import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras, keras_major_version

PAIRS = (
    ("densenet121", "DenseNet121"),
    ("mobilenet", "MobileNet"),
)


def _step_functions(model):
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def forward(images):
        return model(images, training=False)

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        return loss

    return forward, train_step


def _seconds(fn, *args):
    """(wall, process CPU) seconds of one call; CPU time is less sensitive to other processes."""
    start, start_cpu = time.perf_counter(), time.process_time()
    np.asarray(fn(*args))  # waits for the result
    return time.perf_counter() - start, time.process_time() - start_cpu


def bench_pair(name, reference_name, batch_size, image_size, repeats):
    shape = (image_size, image_size, 3)
    models = {
        "keras_zoo": keras_zoo.create_model(name, input_shape=shape),
        "keras.applications": getattr(keras.applications, reference_name)(weights=None, input_shape=shape),
    }
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, size=(batch_size, *shape)).astype("float32"))
    labels = tf.constant(rng.integers(0, 1000, size=(batch_size,)))
    steps = {side: _step_functions(model) for side, model in models.items()}
    rows = []
    for mode, index, args in (("forward", 0, (images,)), ("train step", 1, (images, labels))):
        for side in models:  # trace and warm up
            _seconds(steps[side][index], *args)
        times = {side: [] for side in models}
        for repeat in range(repeats):
            # Alternate which side goes first, so neither always runs on a warmer cache.
            for side in (list(models) if repeat % 2 == 0 else list(models)[::-1]):
                times[side].append(_seconds(steps[side][index], *args))
        ours, theirs = (statistics.median(t for t, _ in times[side]) for side in models)
        ours_cpu, theirs_cpu = (statistics.median(c for _, c in times[side]) for side in models)
        rows.append((name, mode, ours * 1e3, theirs * 1e3, ours / theirs, ours_cpu / theirs_cpu))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for name, reference_name in PAIRS:
        rows += bench_pair(name, reference_name, args.batch_size, args.image_size, args.repeats)
        keras.backend.clear_session()
    print(f"Keras {keras_major_version()}, batch {args.batch_size}, {args.image_size}x{args.image_size}, "
          f"median of {args.repeats}")
    print(f"{'model':<12} {'mode':<11} {'keras_zoo ms':>13} {'keras.apps ms':>14} {'ratio':>6} {'cpu ratio':>10}")
    for name, mode, ours, theirs, ratio, cpu_ratio in rows:
        print(f"{name:<12} {mode:<11} {ours:>13.1f} {theirs:>14.1f} {ratio:>6.2f} {cpu_ratio:>10.2f}")


if __name__ == "__main__":
    main()
