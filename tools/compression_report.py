"""The README compression table: one model through float -> pruned -> int8 QAT -> binary,
each with its size and held-out accuracy on the embedded digits (the 256 test images of the
8 full batches of the 270-image test split, the same images for Keras and every .tflite).

    TF_USE_LEGACY_KERAS=1 nice -n 10 python tools/compression_report.py --chains=binarynet,squeezenet

Defaults are budgets for a shared 2-core CPU (about 20 min for both chains): digits are
8x8 images, so BinaryNet sees them at 16x16 and SqueezeNet at 32x32 (its smallest sensible
input), and every fine-tune is a few epochs of 39 batches.

``binarynet``: BinaryNet's VGG-like ConvNet (arXiv:1602.02830) with its widths scaled down
(``--filters``, ``--units``), at ``--binarynet_side`` x ``--binarynet_side`` x 1:

- float: ``binarize=False`` (real kernels, hard-tanh activations), float32 .tflite;
- pruned: magnitude pruning (export/qat.py ``prune``: tfmot PolynomialDecay from 0 to
  ``--prune`` over ``--prune_epochs``) of the float model, float32 .tflite; the zeros are
  still stored, so only the gzip size shrinks;
- pruned + int8: the pruned model through post-training full-integer quantization (its
  zeros stay exact zeros);
- int8 QAT: the float model through the export's ``--quantization=qat`` for ``--qat_epochs``
  (the export's ``--prune`` with ``qat`` fails, see ``_float_pruned_int8``);
- binary: ``binarize=True`` trained from scratch for ``--binary_epochs``: the packed size
  (binary kernels at 1 bit, everything else float32; keras_zoo.layers.binary.packed_size),
  and its int8 .tflite (PTQ; the +-1 kernels are stored one byte each there).

``squeezenet``: the deep-compression chain of the SqueezeNet paper (arXiv:1602.07360, Sec. 4
applies Han et al.'s pruning and quantization) on squeezenet1_1 at 32x32x1 (with
``classifier_relu=False``, which that input size needs): float -> pruned -> pruned + int8,
and int8 QAT; sizes with gzip (pruned zeros compress; gzip stands in for Huffman coding) and in bits
per weight, the paper's 0.47 MB being 1.24M weights at about 3 bits each.

Accuracy of every .tflite is measured in ai_edge_litert on those test images. Everything
runs under tf_keras (QAT). Prints markdown tables and writes ``compression_report.json``
and ``compression_table.md`` (the tables, for the README) under ``--out_dir``.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot (pruning, QAT) needs tf_keras
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_zoo  # noqa: E402
from export import qat, tflite, verify  # noqa: E402
from keras_zoo.backend import keras  # noqa: E402
from keras_zoo.data import load_dataset  # noqa: E402
from training.loop import train_and_evaluate  # noqa: E402

TEST_SIZE = 270
TASK = "image_classification"
#: SqueezeNet (arXiv:1602.07360) Table 2: SqueezeNet v1.0, 1.24M weights, 0.47 MB after deep compression.
PAPER_WEIGHTS, PAPER_BYTES = 1_240_000, 470_000


def _silent(*_):
    pass


class _Chain:
    """One model's data (loaded once) and the helpers every stage of its chain uses."""

    def __init__(self, name, overrides, out_dir, args):
        self.name, self.overrides, self.out_dir, self.args = name, overrides, out_dir, args
        info = keras_zoo.model_info(name)
        self.bundle = load_dataset("digits", task=TASK, input_specs=info.inputs_for(info.resolved_config(**overrides)),
                                   batch_size=args.batch_size, seed=0)
        self.steps = int(tf.data.experimental.cardinality(self.bundle.train))
        examples = tflite._examples(self.bundle.test, TEST_SIZE)
        self.inputs, self.targets = [x for x, _ in examples], [t for _, t in examples]

    def train(self, stage, overrides, epochs):
        """Trains into ``<out_dir>/<stage>``; returns (model, row with its Keras test accuracy)."""
        model_dir = os.path.join(self.out_dir, stage)
        start = time.time()
        train_and_evaluate(dict(model=self.name, dataset="digits", overrides={**self.overrides, **overrides},
                                epochs=epochs, batch_size=self.args.batch_size,
                                learning_rate=self.args.learning_rate, seed=self.args.seed, verbose=0), model_dir)
        model = keras.models.load_model(os.path.join(model_dir, "model.keras"), compile=False)
        return model, {"epochs": epochs, "train_seconds": round(time.time() - start, 1),
                       "params": int(model.count_params()), "keras_accuracy": self.keras_accuracy(model)}

    def keras_accuracy(self, model):
        return verify.evaluate_keras(model, self.inputs, self.targets, TASK)["accuracy"]

    def export(self, model, stage, **kwargs):
        start = time.time()
        report = tflite.export_model(model=model, task=TASK, data=self.bundle, output=os.path.join(self.out_dir, stage),
                                     num_verify=TEST_SIZE, batch_size=self.args.batch_size, log=_silent, **kwargs)
        with open(report["tflite_file"], "rb") as f:
            accuracy = verify.evaluate_tflite(f.read(), self.inputs, self.targets, TASK)["accuracy"]
        return {"tflite_bytes": report["size_bytes"], "gzip_bytes": report["gzip_size_bytes"], "accuracy": accuracy,
                "verified": report["passed"], "seconds": round(time.time() - start, 1)}

    def prune(self, model):
        """Magnitude pruning during a fine-tune (export/qat.py ``prune``); returns (stripped model, row)."""
        start = time.time()
        stripped, info = qat.prune(model, self.bundle.train, TASK, self.args.prune, self.args.prune_epochs,
                                   self.steps, self.args.prune_learning_rate)
        return stripped, {"target_sparsity": self.args.prune, "epochs": self.args.prune_epochs,
                          "learning_rate": self.args.prune_learning_rate,
                          "prune_seconds": round(time.time() - start, 1), **_sparsity(stripped),
                          "left_unpruned": info["left_unpruned"], "keras_accuracy": self.keras_accuracy(stripped)}


def _sparsity(model):
    """Zeros among the kernels and among all weights (biases and BN statistics are never pruned)."""
    kernels = np.concatenate([w.numpy().ravel() for w in model.weights if "kernel" in w.name])
    every = np.concatenate([w.numpy().ravel() for w in model.weights])
    return {"kernel_sparsity": float(np.mean(kernels == 0)), "weight_sparsity": float(np.mean(every == 0))}


def _float_pruned_int8(chain, float_epochs, float_overrides=None):
    """Rows float, pruned and pruned + int8 QAT of one model."""
    args = chain.args
    model, row = chain.train("float", float_overrides or {}, float_epochs)
    rows = {"float": {**row, **chain.export(model, "float_tflite", quantization="float32")}}
    pruned, row = chain.prune(model)
    rows["pruned"] = {**row, **chain.export(pruned, "pruned_tflite", quantization="float32")}
    # PTQ keeps the pruned zeros exact (symmetric int8 weights). The export's --prune with
    # --quantization=qat fails in qat.calibrate_ranges (Graph disconnected on the stripped model),
    # so QAT is shown on the unpruned model.
    rows["pruned_int8"] = chain.export(pruned, "pruned_int8_tflite", quantization="int8")
    rows["int8_qat"] = {"qat_epochs": args.qat_epochs, "learning_rate": args.qat_learning_rate,
                        **chain.export(model, "qat_tflite", quantization="qat", qat_epochs=args.qat_epochs,
                                       learning_rate=args.qat_learning_rate)}
    return rows


def binarynet_chain(args):
    from keras_zoo.layers.binary import packed_size

    widths = {"filters": [int(v) for v in args.filters.split(",")], "units": [int(v) for v in args.units.split(",")],
              "input_shape": [args.binarynet_side, args.binarynet_side, 1]}
    chain = _Chain("binarynet_cifar", widths, os.path.join(args.out_dir, "binarynet"), args)
    rows = _float_pruned_int8(chain, args.epochs, {"binarize": False})
    model, row = chain.train("binary", {"binarize": True}, args.binary_epochs)
    packed = packed_size(model)
    rows["binary"] = {**row, "packed_bytes": packed.bytes, "binary_weights": packed.binary_weights,
                      "real_values": packed.real_values,
                      "int8_tflite": chain.export(model, "binary_int8_tflite", quantization="int8")}
    return {"model": "binarynet_cifar", "overrides": widths, "test_images": len(chain.inputs), "rows": rows}


def squeezenet_chain(args):
    # At 32x32 conv10 sees a 1x1 map, where its ReLU kills whole classes (keras_zoo/models/squeezenet.py).
    overrides = {"input_shape": [32, 32, 1], "classifier_relu": False}
    chain = _Chain("squeezenet1_1", overrides, os.path.join(args.out_dir, "squeezenet"), args)
    return {"model": "squeezenet1_1", "overrides": overrides, "test_images": len(chain.inputs),
            "rows": _float_pruned_int8(chain, args.squeezenet_epochs)}


def _kib(n):
    return f"{n / 1024:.1f} KiB"


def _bits(n, params):
    return f"{8 * n / params:.2f}"


def _table(chain):
    rows = chain["rows"]
    f, p, i, q = rows["float"], rows["pruned"], rows["pruned_int8"], rows["int8_qat"]
    params = f["params"]
    lines = [f"{chain['model']} {json.dumps(chain['overrides'])} on digits ({chain.get('test_images', 256)} test images), "
             f"{params:,} weights\n",
             "| stage | .tflite | gzip | gzip bits/weight | test accuracy (%) |", "|---|---:|---:|---:|---:|",
             f"| float32, {f['epochs']} epochs | {_kib(f['tflite_bytes'])} | {_kib(f['gzip_bytes'])} | "
             f"{_bits(f['gzip_bytes'], params)} | {100 * f['accuracy']:.1f} |",
             f"| pruned to {100 * p['kernel_sparsity']:.0f}% zero kernels ({p['epochs']} epochs), float32 | "
             f"{_kib(p['tflite_bytes'])} | {_kib(p['gzip_bytes'])} | {_bits(p['gzip_bytes'], params)} | "
             f"{100 * p['accuracy']:.1f} |",
             f"| pruned + int8 (PTQ) | {_kib(i['tflite_bytes'])} | {_kib(i['gzip_bytes'])} | "
             f"{_bits(i['gzip_bytes'], params)} | {100 * i['accuracy']:.1f} |",
             f"| int8 QAT of the float model ({q['qat_epochs']} epoch{'s' if q['qat_epochs'] > 1 else ''}) | "
             f"{_kib(q['tflite_bytes'])} | {_kib(q['gzip_bytes'])} | {_bits(q['gzip_bytes'], params)} | "
             f"{100 * q['accuracy']:.1f} |"]
    if "binary" in rows:
        b = rows["binary"]
        t = b["int8_tflite"]
        lines += [f"| binary (binarize=True, {b['epochs']} epochs), 1-bit packed | {_kib(b['packed_bytes'])} | - | "
                  f"{_bits(b['packed_bytes'], params)} | {100 * b['keras_accuracy']:.1f} (Keras) |",
                  f"| binary, int8 .tflite (PTQ){'' if t['verified'] else ', failed export verification'} | "
                  f"{_kib(t['tflite_bytes'])} | {_kib(t['gzip_bytes'])} | {_bits(t['gzip_bytes'], params)} | "
                  f"{100 * t['accuracy']:.1f} |"]
    if chain["model"].startswith("squeezenet"):
        lines.append(f"\nSqueezeNet paper (Table 2): v1.0, {PAPER_WEIGHTS / 1e6:.2f}M weights, deep compression "
                     f"to {PAPER_BYTES / 1e6:.2f} MB = {_bits(PAPER_BYTES, PAPER_WEIGHTS)} bits/weight.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default="runs/compression")
    parser.add_argument("--chains", default="binarynet,squeezenet")
    parser.add_argument("--epochs", type=int, default=4, help="Training epochs of the float BinaryNet.")
    parser.add_argument("--binary_epochs", type=int, default=8, help="Training epochs of the binary BinaryNet.")
    parser.add_argument("--squeezenet_epochs", type=int, default=10, help="Training epochs of SqueezeNet.")
    parser.add_argument("--prune", type=float, default=0.75, help="Target sparsity of the kernels.")
    parser.add_argument("--prune_epochs", type=int, default=3, help="Epochs over which sparsity rises to --prune.")
    parser.add_argument("--prune_learning_rate", type=float, default=5e-4)
    parser.add_argument("--qat_epochs", type=int, default=1, help="Epochs of quantization-aware fine-tuning.")
    parser.add_argument("--qat_learning_rate", type=float, default=1e-4)
    parser.add_argument("--binarynet_side", type=int, default=16, help="BinaryNet input height and width.")
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
    tables = "\n\n".join(_table(report["chains"][chain]) for chain in chains)
    with open(os.path.join(args.out_dir, "compression_table.md"), "w") as f:
        f.write(tables + "\n")
    print(tables)
    print(f"\nTotal {report['seconds']:.0f} s; {os.path.join(args.out_dir, 'compression_table.md')}")


if __name__ == "__main__":
    main()
