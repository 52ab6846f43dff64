"""int8 vs float32 TFLite, and QAT vs PTQ, measured in one run.

    python tools/bench_export.py [--repeats=50]

Rows:
- a conv classifier (squeezenet1_1, 224x224x3) and a QRNN language model (qrnn_lm_char,
  its single-step graph), full configs (``--tiny`` for a smoke run): file size and median
  XNNPACK latency at 1 and 2 threads, int8 over float32 (the baseline, same run);
- a digits classifier (scikit-learn's 8x8 digits, trained here for a few epochs):
  held-out accuracy of float Keras, plain int8 PTQ and QAT, QAT minus PTQ.
Weights are freshly initialised for the size/latency rows: size and speed do not depend
on training; accuracy is only compared on the trained digits model.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_zoo  # noqa: E402
from export import convert, qat, verify  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402


def _graph(name, tiny):
    info = keras_zoo.model_info(name)
    config = info.resolved_config(tiny=tiny)
    model = info.builder(**config)
    if info.inference_model is not None:
        model = info.inference_model(model, config)
    rng = np.random.default_rng(0)
    vocab = int(config.get("vocab_size") or 2)  # integer inputs are token ids
    samples = []
    for _ in range(32):
        sample = []
        for tensor in model.inputs:
            shape = (1, *tensor.shape[1:])
            if tf.as_dtype(tensor.dtype).is_integer:
                sample.append(rng.integers(0, vocab, size=shape).astype("int32"))
            else:
                sample.append(rng.uniform(-1, 1, size=shape).astype("float32"))
        samples.append(sample)
    return model, samples


def size_and_latency(name, repeats, tiny):
    model, samples = _graph(name, tiny)
    signature = convert.input_signature(model, samples[0])
    rows = {}
    for mode in ("float32", "int8"):
        content = convert.convert(model, mode, signature, samples)
        latency = {n: verify.TFLiteRunner(content, n).median_latency_ms(samples[0], repeats) for n in (1, 2)}
        rows[mode] = (len(content), latency)
    return rows


def qat_vs_ptq(epochs=6, qat_epochs=2):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).shuffle(1400, seed=0).batch(32)
    examples = [[x[i:i + 1]] for i in range(1400, len(x))]
    targets = [y[i:i + 1] for i in range(1400, len(x))]
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = layers.Input((8, 8, 1))
    h = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    h = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(h)))
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    qat.fine_tune(model, train, "image_classification", epochs, learning_rate=3e-3)
    signature = convert.input_signature(model)
    representative = [[x[i:i + 1]] for i in range(100)]
    ptq = convert.convert(model, "int8", signature, representative)
    qat_model, _ = qat.quantize_model(model)
    qat.fine_tune(qat_model, train, "image_classification", qat_epochs, learning_rate=1e-4)
    qat_content = convert.convert(qat_model, "qat", signature, representative)
    return {
        "float Keras": verify.evaluate_keras(model, examples, targets, "image_classification")["accuracy"],
        "int8 PTQ": verify.evaluate_tflite(ptq, examples, targets, "image_classification")["accuracy"],
        "int8 QAT": verify.evaluate_tflite(qat_content, examples, targets, "image_classification")["accuracy"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--tiny", action="store_true", help="tiny configs (a smoke run; overhead-bound)")
    parser.add_argument("--models", default="squeezenet1_1,qrnn_lm_char")
    args = parser.parse_args()
    print(f"{'model':<16}{'mode':<9}{'size KiB':>10}{'x f32':>8}{'1 thr ms':>10}{'x f32':>8}"
          f"{'2 thr ms':>10}{'x f32':>8}")
    for name in args.models.split(","):
        rows = size_and_latency(name, args.repeats, args.tiny)
        base_size, base_latency = rows["float32"]
        for mode, (size, latency) in rows.items():
            print(f"{name:<16}{mode:<9}{size / 1024:>10.1f}{size / base_size:>8.2f}"
                  f"{latency[1]:>10.3f}{latency[1] / base_latency[1]:>8.2f}"
                  f"{latency[2]:>10.3f}{latency[2] / base_latency[2]:>8.2f}")
    accuracy = qat_vs_ptq()
    print(f"\n{'digits classifier (397 held-out)':<34}{'accuracy':>10}")
    for name, value in accuracy.items():
        print(f"{name:<34}{value:>10.3f}")
    print(f"{'QAT - PTQ':<34}{accuracy['int8 QAT'] - accuracy['int8 PTQ']:>+10.3f}")


if __name__ == "__main__":
    main()
