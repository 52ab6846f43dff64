"""The README compression table: one model through float -> pruned -> int8 QAT -> binary,
each with its size and held-out accuracy on the embedded digits (270 test images).

    python tools/compression_report.py [--epochs=10 --binary_epochs=15 --prune=0.75 --chains=binarynet,squeezenet]

``binarynet``: BinaryNet's VGG-like ConvNet (arXiv:1602.02830) with its widths scaled down
(``--filters``, ``--units``) so that it trains in minutes on 2 CPUs, at 32x32x1:

- float: ``binarize=False`` (real kernels, hard-tanh activations), float32 .tflite;
- pruned: magnitude pruning to ``--prune`` during a fine-tune (export ``--prune``), float32
  .tflite; the zeros are still stored, so only the gzip size shrinks;
- int8 QAT: the pruned model through sparsity-preserving QAT to an int8 .tflite;
- binary: ``binarize=True`` trained from scratch for ``--binary_epochs``: the packed size
  (binary kernels at 1 bit, everything else float32; keras_zoo.layers.binary.packed_size),
  and its int8 .tflite (PTQ; the +-1 kernels are stored one byte each there).

``squeezenet``: the deep-compression chain of the SqueezeNet paper (arXiv:1602.07360, Sec. 4
applies Han et al.'s pruning and quantization) on squeezenet1_1 at 32x32x1 (with
``classifier_relu=False``, which that input size needs): float ->
pruned -> pruned + int8 QAT; sizes with gzip (pruned zeros compress).

Accuracy of every .tflite is measured in ai_edge_litert on the whole test split. Everything
runs under tf_keras (QAT). Prints markdown tables and writes ``compression_report.json``.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot (pruning, QAT) needs tf_keras
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import keras_zoo  # noqa: E402
from export import tflite, verify  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402
from keras_zoo.data import load_dataset  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402

INPUT_SHAPE = [32, 32, 1]
TEST_SIZE = 270
TASK = "image_classification"


def _silent(*_):
    pass


def _test_examples(name, overrides):
    info = keras_zoo.model_info(name)
    config = info.resolved_config(**overrides)
    bundle = load_dataset("digits", task=TASK, input_specs=info.inputs_for(config), batch_size=32, seed=0)
    return tflite._examples(bundle.test, TEST_SIZE)


def _tflite_accuracy(path, examples):
    with open(path, "rb") as f:
        content = f.read()
    return verify.evaluate_tflite(content, [x for x, _ in examples], [t for _, t in examples], TASK)["accuracy"]


def _train(model_dir, name, overrides, epochs, args):
    start = time.time()
    result = train_and_evaluate(dict(model=name, dataset="digits", overrides=overrides, epochs=epochs,
                                     batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                                     verbose=0), model_dir)
    return result["test"]["accuracy"], round(time.time() - start, 1)


def _export(model_dir, out, examples, args, **kwargs):
    start = time.time()
    report = tflite.export_model(model_dir=model_dir, output=out, num_verify=TEST_SIZE, batch_size=args.batch_size,
                                 qat_epochs=args.finetune_epochs, log=_silent, **kwargs)
    row = {"tflite_bytes": report["size_bytes"], "gzip_bytes": report["gzip_size_bytes"],
           "accuracy": _tflite_accuracy(report["tflite_file"], examples), "verified": report["passed"],
           "seconds": round(time.time() - start, 1)}
    if "pruning" in report:
        row["sparsity"] = report["pruning"]["overall_sparsity"]
    return row


def _float_pruned_int8(name, overrides, out_dir, args, examples):
    """Rows float, pruned, pruned + int8 QAT for one trained model."""
    model_dir = os.path.join(out_dir, "float")
    accuracy, seconds = _train(model_dir, name, overrides, args.epochs, args)
    params = keras.models.load_model(os.path.join(model_dir, "model.keras"), compile=False).count_params()
    rows = {"float": {"keras_accuracy": accuracy, "train_seconds": seconds, "params": int(params),
                      **_export(model_dir, os.path.join(out_dir, "float_tflite"), examples, args,
                                quantization="float32")}}
    rows["pruned"] = _export(model_dir, os.path.join(out_dir, "pruned_tflite"), examples, args,
                             quantization="float32", prune=args.prune)
    rows["int8_qat"] = _export(model_dir, os.path.join(out_dir, "pruned_qat_tflite"), examples, args,
                               quantization="qat", prune=args.prune)
    return rows


def binarynet_chain(args):
    from keras_zoo.layers.binary import packed_size

    out_dir = os.path.join(args.out_dir, "binarynet")
    widths = {"filters": [int(v) for v in args.filters.split(",")], "units": [int(v) for v in args.units.split(",")],
              "input_shape": INPUT_SHAPE}
    examples = _test_examples("binarynet_cifar", widths)
    rows = _float_pruned_int8("binarynet_cifar", {**widths, "binarize": False}, out_dir, args, examples)
    binary_dir = os.path.join(out_dir, "binary")
    accuracy, seconds = _train(binary_dir, "binarynet_cifar", {**widths, "binarize": True}, args.binary_epochs, args)
    packed = packed_size(keras.models.load_model(os.path.join(binary_dir, "model.keras"), compile=False))
    rows["binary"] = {"keras_accuracy": accuracy, "train_seconds": seconds, "packed_bytes": packed.bytes,
                      "binary_weights": packed.binary_weights, "real_values": packed.real_values,
                      "int8_tflite": _export(binary_dir, os.path.join(out_dir, "binary_int8_tflite"), examples, args,
                                             quantization="int8")}
    return {"model": "binarynet_cifar", "overrides": widths, "rows": rows}


def squeezenet_chain(args):
    # At 32x32 conv10 sees a 1x1 map, where its ReLU kills whole classes (keras_zoo/models/squeezenet.py).
    overrides = {"input_shape": INPUT_SHAPE, "classifier_relu": False}
    rows = _float_pruned_int8("squeezenet1_1", overrides, os.path.join(args.out_dir, "squeezenet"), args,
                              _test_examples("squeezenet1_1", overrides))
    return {"model": "squeezenet1_1", "overrides": overrides, "rows": rows}


def _kib(n):
    return f"{n / 1024:.1f} KiB"


def _table(chain, args):
    rows = chain["rows"]
    lines = [f"\n{chain['model']} {chain['overrides']} on digits ({TEST_SIZE} test images)\n",
             "| stage | size | gzip | test accuracy (%) |", "|---|---:|---:|---:|"]
    f = rows["float"]
    lines.append(f"| float32 ({f['params']:,} weights) | {_kib(f['tflite_bytes'])} | {_kib(f['gzip_bytes'])} | "
                 f"{100 * f['accuracy']:.1f} |")
    p = rows["pruned"]
    lines.append(f"| pruned to {100 * p['sparsity']:.0f}% zeros, float32 | {_kib(p['tflite_bytes'])} | "
                 f"{_kib(p['gzip_bytes'])} | {100 * p['accuracy']:.1f} |")
    q = rows["int8_qat"]
    lines.append(f"| pruned + int8 QAT | {_kib(q['tflite_bytes'])} | {_kib(q['gzip_bytes'])} | "
                 f"{100 * q['accuracy']:.1f} |")
    if "binary" in rows:
        b = rows["binary"]
        lines.append(f"| binary (binarize=True), 1-bit packed | {_kib(b['packed_bytes'])} | - | "
                     f"{100 * b['keras_accuracy']:.1f} (Keras) |")
        t = b["int8_tflite"]
        lines.append(f"| binary, int8 .tflite | {_kib(t['tflite_bytes'])} | {_kib(t['gzip_bytes'])} | "
                     f"{100 * t['accuracy']:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default="runs/compression_report")
    parser.add_argument("--chains", default="binarynet,squeezenet")
    parser.add_argument("--epochs", type=int, default=10, help="Training epochs of the float models.")
    parser.add_argument("--binary_epochs", type=int, default=15, help="Training epochs of the binary model.")
    parser.add_argument("--finetune_epochs", type=int, default=2, help="Pruning and QAT fine-tuning epochs.")
    parser.add_argument("--prune", type=float, default=0.75, help="Target sparsity.")
    parser.add_argument("--filters", default="32,64,128")
    parser.add_argument("--units", default="256,256")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    builders = {"binarynet": binarynet_chain, "squeezenet": squeezenet_chain}
    chains = [c for c in args.chains.split(",") if c]
    unknown = sorted(set(chains) - set(builders))
    if unknown:
        parser.error(f"--chains takes {sorted(builders)}. Received: {unknown}")
    start = time.time()
    report = {"settings": vars(args), "chains": {}}
    os.makedirs(args.out_dir, exist_ok=True)
    for chain in chains:
        report["chains"][chain] = builders[chain](args)
        report["seconds"] = round(time.time() - start, 1)
        with open(os.path.join(args.out_dir, "compression_report.json"), "w") as f:
            json.dump(report, f, indent=2)  # after every chain: a long run keeps what it finished
    for chain in chains:
        print(_table(report["chains"][chain], args))
    print(f"\nTotal {report['seconds']:.0f} s; JSON: {os.path.join(args.out_dir, 'compression_report.json')}")


if __name__ == "__main__":
    main()
