"""keras_zoo's binary layers next to larq's, and packed 1-bit size next to int8 TFLite.

    PYTHONPATH=/tmp/larq_pkgs python tools/bench_binary.py [--full] [--repeats=20]

1. larq (if importable; larq 0.14 imports under tf_keras only, so this script sets
   TF_USE_LEGACY_KERAS=1): ``BinaryConv2D(scale="none")`` against
   ``larq.layers.QuantConv2D(kernel_quantizer="ste_sign", input_quantizer="ste_sign")``
   with the same weights: max abs difference of outputs and of the gradients with
   respect to the inputs and the latent kernel, and forward time (ratio to larq, the
   baseline, measured in the same run). ``scale="channel"`` is compared with larq's
   ``magnitude_aware_sign`` kernel quantizer (same forward values; larq stops the
   gradient through the scale, XNOR-Net does not, so only outputs are compared).
   Without larq the script says so and goes on.
2. Deployment size of binarynet_cifar (tiny; ``--full`` adds the full model): packed
   1-bit size (``keras_zoo.layers.binary.packed_size``), the int8 .tflite file (1 byte
   per weight) and float32 weights (the baseline). Weights are freshly initialised:
   sizes do not depend on training.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_zoo  # noqa: E402
from export import convert  # noqa: E402
from keras_zoo.layers.binary import BinaryConv2D, packed_size  # noqa: E402


def _median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _gradients(layer, inputs):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(layer(inputs) ** 2)
    grad_inputs, grad_kernel = tape.gradient(loss, [inputs, layer.kernel])
    return grad_inputs.numpy(), grad_kernel.numpy()


def compare_with_larq(larq, repeats, shape=(8, 16, 16, 128), filters=128):
    rng = np.random.default_rng(0)
    # Inputs and kernel spread over [-1.5, 1.5], so the STE window |x| <= 1 matters.
    inputs = tf.constant(rng.uniform(-1.5, 1.5, shape).astype(np.float32))
    kernel = rng.uniform(-1.5, 1.5, (3, 3, shape[-1], filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    rows = []
    for scale, larq_kernel_quantizer in (("none", "ste_sign"), ("channel", "magnitude_aware_sign")):
        ours = BinaryConv2D(filters, 3, padding="same", scale=scale)
        theirs = larq.layers.QuantConv2D(filters, 3, padding="same", kernel_quantizer=larq_kernel_quantizer,
                                         input_quantizer="ste_sign")
        for layer in (ours, theirs):
            layer.build(inputs.shape)
            layer.set_weights([kernel, bias])
        row = dict(scale=scale, larq=larq_kernel_quantizer,
                   output=float(np.max(np.abs(ours(inputs).numpy() - theirs(inputs).numpy()))))
        if scale == "none":
            (gi_ours, gk_ours), (gi_theirs, gk_theirs) = _gradients(ours, inputs), _gradients(theirs, inputs)
            row.update(grad_inputs=float(np.max(np.abs(gi_ours - gi_theirs))),
                       grad_kernel=float(np.max(np.abs(gk_ours - gk_theirs))))
        forward = {name: tf.function(layer.__call__) for name, layer in (("ours", ours), ("larq", theirs))}
        row.update({f"{name}_ms": _median_ms(lambda f=fn: f(inputs).numpy(), repeats)
                    for name, fn in forward.items()})
        rows.append(row)
    print(f"\nBinaryConv2D vs larq QuantConv2D, input {shape}, {filters} filters, same weights")
    print(f"{'scale':8} {'larq kernel quantizer':22} {'max|dy|':>9} {'max|dx|':>9} {'max|dW|':>9} "
          f"{'ours ms':>8} {'larq ms':>8} {'ours/larq':>9}")
    for r in rows:
        grads = (f"{r['grad_inputs']:9.2e} {r['grad_kernel']:9.2e}" if "grad_inputs" in r
                 else f"{'-':>9} {'-':>9}")
        print(f"{r['scale']:8} {r['larq']:22} {r['output']:9.2e} {grads} {r['ours_ms']:8.2f} "
              f"{r['larq_ms']:8.2f} {r['ours_ms'] / r['larq_ms']:9.2f}")
    return rows


def size_table(names):
    print("\nbinarynet_cifar deployment size (float32 weights are the baseline)")
    print(f"{'model':22} {'params':>11} {'float32 B':>11} {'int8 .tflite B':>15} {'packed 1-bit B':>15} "
          f"{'f32/int8':>9} {'f32/packed':>11} {'convert s':>10}")
    for label, tiny in names:
        info = keras_zoo.model_info("binarynet_cifar")
        model = info.builder(**info.resolved_config(tiny=tiny))
        rng = np.random.default_rng(0)
        shape = tuple(model.inputs[0].shape[1:])
        samples = [[rng.uniform(0, 1, (1, *shape)).astype(np.float32)] for _ in range(16)]
        start = time.perf_counter()
        content = convert.convert(model, "int8", convert.input_signature(model), samples)
        seconds = time.perf_counter() - start
        size = packed_size(model)
        print(f"{label:22} {model.count_params():11,d} {size.float32_bytes:11,d} {len(content):15,d} "
              f"{size.bytes:15,d} {size.float32_bytes / len(content):9.2f} {size.compression:11.2f} "
              f"{seconds:10.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also convert the full binarynet_cifar")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    try:
        import larq
    except Exception as error:  # larq 0.14 fails to import under Keras 3 (no LocallyConnected1D)
        print(f"larq is not importable here ({type(error).__name__}: {error}); skipping the larq comparison. "
              f"Install it beside TensorFlow with `pip install --no-deps --target DIR larq==0.14.0 "
              f"terminaltables` and run with PYTHONPATH=DIR under TF_USE_LEGACY_KERAS=1.")
    else:
        compare_with_larq(larq, args.repeats)
    size_table([("binarynet_cifar tiny", True)] + ([("binarynet_cifar", False)] if args.full else []))


if __name__ == "__main__":
    main()
