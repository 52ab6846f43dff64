"""Benchmark: QRNN layer vs its gate computation alone (the floor) vs keras LSTM.

Times, in one run, a training step (forward + gradients of the weights) and
inference at B=32, D=128, H=256 for: (1) ``keras_zoo.layers.qrnn.QRNN``
(fo-pooling, window 2); (2) the same layer's causal convolution and gate
nonlinearities without the pooling, the floor every QRNN implementation pays;
(3) ``keras.layers.LSTM`` with the same units; and, for reference, (4) the QRNN
with its pooling written as a plain ``tf.scan``. All are ``tf.function``s; the
candidates are interleaved so that load from other processes hits them alike.
Ratios are against the floor.

    python tools/bench_qrnn.py [--repeats 3] [--lengths 100,500]
"""
import argparse
import time

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers.qrnn import QRNN

BATCH, INPUT_DIM, UNITS = 32, 128, 256
FLOOR = "gates only (floor)"


def _gates_only(layer, x):
    windows = layer.causal_windows(x, tf.zeros_like(x[:, : layer.window - 1]))
    return layer.gate_sigmoids(windows)


def _tf_scan_qrnn(layer, x):
    windows = layer.causal_windows(x, tf.zeros_like(x[:, : layer.window - 1]))
    z, f, o = layer.gate_activations(windows)
    time_major = tuple(tf.transpose(t, [1, 0, 2]) for t in (f, (1.0 - f) * z))
    c = tf.scan(lambda c, fb: fb[0] * c + fb[1], time_major, initializer=tf.zeros_like(z[:, 0]))
    return o * tf.transpose(c, [1, 0, 2])


def _candidates(x):
    """{name: (forward function, layer owning the weights)}."""
    qrnn = QRNN(UNITS, window=2, pooling="fo", return_sequences=True)
    lstm = keras.layers.LSTM(UNITS, return_sequences=True)
    qrnn(x[:, :2])
    lstm(x[:, :2])
    return {
        "qrnn": (qrnn, qrnn),
        FLOOR: (lambda x: _gates_only(qrnn, x), qrnn),
        "lstm": (lstm, lstm),
        "qrnn, tf.scan pooling": (lambda x: _tf_scan_qrnn(qrnn, x), qrnn),
    }


def _compiled(forward, weights):
    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(tf.square(t)) for t in tf.nest.flatten(forward(x))])
        return tape.gradient(loss, weights)

    return {"train": train, "infer": tf.function(forward)}


def _run(fn, x):
    tf.nest.map_structure(lambda t: t.numpy(), fn(x))


def bench(steps, repeats):
    """{name: {(mode, clock): best seconds}} for one sequence length."""
    x = tf.constant(np.random.default_rng(0).standard_normal((BATCH, steps, INPUT_DIM)).astype("float32"))
    compiled = {name: _compiled(forward, owner.trainable_weights) for name, (forward, owner) in _candidates(x).items()}
    for fns in compiled.values():
        for fn in fns.values():
            _run(fn, x)  # trace and warm up
    best = {name: {} for name in compiled}
    for _ in range(repeats):
        for name, fns in compiled.items():
            for mode, fn in fns.items():
                wall, cpu = time.perf_counter(), time.process_time()
                _run(fn, x)
                elapsed = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
                for clock, seconds in elapsed.items():
                    best[name][mode, clock] = min(best[name].get((mode, clock), float("inf")), seconds)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", default="100,500")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="TensorFlow intra-op threads; 1 (default) keeps CPU-time figures free of thread-pool spinning",
    )
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(
        f"B={BATCH} D={INPUT_DIM} H={UNITS}; {args.threads} thread(s); best of {args.repeats} interleaved runs; wall = elapsed, "
        "cpu = process CPU time (less sensitive to other processes); x = ratio to the floor"
    )
    columns = [(mode, clock) for mode in ("train", "infer") for clock in ("wall", "cpu")]
    print(f"{'T':>4}  {'':<24}" + "".join(f"{mode + ' ' + clock + ' ms':>17}{'x':>6}" for mode, clock in columns))
    for steps in map(int, args.lengths.split(",")):
        rows = bench(steps, args.repeats)
        for name, times in rows.items():
            cells = "".join(f"{times[key] * 1e3:>17.1f}{times[key] / rows[FLOOR][key]:>6.2f}" for key in columns)
            print(f"{steps:>4}  {name:<24}{cells}")


if __name__ == "__main__":
    main()
