"""Trains a small DNC and an LSTM baseline on the copy task for the same number of steps
and prints their answer-bit error rates (a model without memory stays near 0.5).

    python tools/dnc_report.py --steps=600 --time_steps=13 --bits=6

Small by design (CPU, ~2 minutes); the ratio is DNC error / LSTM error in the same run.
"""
import argparse
import time

import numpy as np

from keras_zoo.backend import keras
from keras_zoo.data.copy_task import copy_examples
from keras_zoo.models.dnc import DNC


def _lstm(input_size, output_size, time_steps, units):
    inputs = keras.Input(shape=(time_steps, input_size))
    x = keras.layers.LSTM(units, return_sequences=True)(inputs)
    return keras.Model(inputs, keras.layers.Dense(output_size)(x))


def _bit_error(model, data):
    inputs, targets, weights = data
    predicted = np.asarray(model.predict(inputs, verbose=0)) > 0
    wrong = (predicted != (targets > 0.5)).mean(-1)
    return float((wrong * weights).sum() / weights.sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--time_steps", type=int, default=13)
    parser.add_argument("--bits", type=int, default=6)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    train = copy_examples(args.steps * args.batch_size, args.bits, args.time_steps, rng)
    test = copy_examples(512, args.bits, args.time_steps, rng)
    models = {
        "dnc": DNC(args.bits + 1, args.bits, args.time_steps, memory_size=16, word_size=16,
                   num_read_heads=1, controller_units=64),
        "lstm": _lstm(args.bits + 1, args.bits, args.time_steps, 128),
    }
    rows = {}
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=10.0),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        start = time.time()
        model.fit(train[0], train[1], sample_weight=train[2], batch_size=args.batch_size, epochs=1,
                  verbose=0)
        rows[name] = (model.count_params(), _bit_error(model, test), time.time() - start)
    print(f"copy task: bits={args.bits}, T={args.time_steps}, {args.steps} steps of batch {args.batch_size}")
    print(f"{'model':6s} {'params':>8s} {'bit error':>10s} {'seconds':>8s} {'error / lstm':>13s}")
    for name, (params, error, seconds) in rows.items():
        print(f"{name:6s} {params:8d} {error:10.4f} {seconds:8.1f} {error / rows['lstm'][1]:13.3f}")


if __name__ == "__main__":
    main()
