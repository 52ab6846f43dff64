"""Quantization-aware training, pruning and the Keras 3 -> tf_keras bridge.

tfmot wraps tf_keras models only (tfmot issues #1119, #1270), so everything here runs
under ``TF_USE_LEGACY_KERAS=1``. A custom keras_zoo layer is quantized through the
``QUANTIZE_CONFIGS`` table; a layer that neither tfmot nor the table covers is left in
float on purpose and listed in the export report.
"""
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import tensorflow_model_optimization as tfmot

from export.convert import ExportError
from keras_zoo.backend import IS_LEGACY_KERAS, keras

_quantizers = tfmot.quantization.keras.quantizers


class KernelQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """8-bit fake quantization of a custom layer's weight attributes and of its output.

    Weights: per-tensor symmetric, as the TFLite int8 spec asks of constant tensors that
    are not conv/dense kernels. Biases stay float in training; the converter turns them
    into int32 with scale = input scale x weight scale.

    Args:
        weight_attrs: attribute names of the weights the layer reads in ``call``
            (e.g. ``("kernel",)`` for QRNN, whose kernel is (window*input_dim, k*units)).
        quantize_output: add a moving-average quantizer on the layer's output.
    """

    def __init__(self, weight_attrs=("kernel",), quantize_output=True):
        self.weight_attrs = tuple(weight_attrs)
        self.quantize_output = quantize_output

    def get_weights_and_quantizers(self, layer):
        return [
            (getattr(layer, name),
             _quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True))
            for name in self.weight_attrs
        ]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.weight_attrs, quantize_weights):
            setattr(layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        if not self.quantize_output:
            return []
        return [_quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {"weight_attrs": list(self.weight_attrs), "quantize_output": self.quantize_output}


#: Custom keras_zoo layer class name -> ``layer -> QuantizeConfig``. A layer returning
#: states (a list) gets no output quantizer: tfmot quantizes single outputs only.
QUANTIZE_CONFIGS = {
    "QRNN": lambda layer: KernelQuantizeConfig(weight_attrs=("kernel",), quantize_output=not layer.return_state),
    # clip(x, -1, 1) of BinaryNet's real-valued twin: nothing to quantize but its output.
    "HardTanh": lambda layer: KernelQuantizeConfig(weight_attrs=(), quantize_output=True),
}

#: Keras layers quantized differently from tfmot's default 8-bit registry.
#: TFLite's int8 AVERAGE_POOL_2D needs its output to share its input's scale and zero
#: point; tfmot gives the pool an output quantizer of its own. The converter often
#: requantizes around the pool, but not when the pool's output also feeds a Concatenate
#: (DenseNet's transitions; conv -> pool -> concat([pool, conv(pool)]) is enough):
#: conversion fails with "average_pool_2d ... violate the same scale constraint". Without
#: an output quantizer the converter gives the pool its input's parameters; the QAT graph
#: then differs from the int8 kernel by at most half a step of the pool's input (the
#: kernel rounds the mean, the fake-quant graph does not). tfmot treats MaxPooling the
#: same way (no output quantizer), where the match is exact.
_KERAS_QUANTIZE_OVERRIDES = (
    (keras.layers.AveragePooling1D, lambda layer: KernelQuantizeConfig(weight_attrs=(), quantize_output=False)),
    (keras.layers.AveragePooling2D, lambda layer: KernelQuantizeConfig(weight_attrs=(), quantize_output=False)),
)


def _require_tf_keras(what):
    if not IS_LEGACY_KERAS:
        raise ExportError(
            f"{what} needs tf_keras (tfmot does not accept Keras 3 models). Run with "
            f"TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported (the export CLI does this "
            f"unless the variable is already set). Received: TF_USE_LEGACY_KERAS="
            f"{os.environ.get('TF_USE_LEGACY_KERAS')!r}"
        )


def _has_arithmetic(layer):
    """Layers worth a line in the report: weighted, or computing on the hot path."""
    passive = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.Reshape,
               keras.layers.Flatten, keras.layers.Permute)
    return bool(layer.weights) or not isinstance(layer, passive)


def quantize_model(model, preserve_sparsity=False):
    """Wraps ``model`` for QAT; returns ``(qat_model, coverage)``.

    ``coverage`` = ``{"custom_quantized": [...], "left_unquantized": [{"layer", "class",
    "reason"}]}``. Layers are annotated one by one (tfmot's default 8-bit registry for
    Keras layers, ``QUANTIZE_CONFIGS`` for keras_zoo layers), so one unsupported layer
    does not stop the rest of the model from being quantized.
    """
    _require_tf_keras("Quantization-aware training")
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ExportError(
            f"QAT needs a functional or Sequential model; {model.name!r} is a subclassed "
            f"{type(model).__name__}. Use --quantization=int8 (post-training) instead. "
            f"Received: {type(model).__name__}"
        )
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity
              else tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme())
    scope = {"KernelQuantizeConfig": KernelQuantizeConfig}
    # BatchNormalization has no config of its own: tfmot folds it into a preceding conv
    # through its layout transforms. A BN those transforms reject is peeled off below.
    rejected = {}
    while True:
        coverage = {"custom_quantized": [], "left_unquantized": []}

        def annotate(layer):
            name = type(layer).__name__
            if name in QUANTIZE_CONFIGS:
                coverage["custom_quantized"].append(layer.name)
                scope[name] = type(layer)
                return tfmot.quantization.keras.quantize_annotate_layer(layer, QUANTIZE_CONFIGS[name](layer))
            for keras_class, make_config in _KERAS_QUANTIZE_OVERRIDES:
                if type(layer) is keras_class:
                    return tfmot.quantization.keras.quantize_annotate_layer(layer, make_config(layer))
            foldable = isinstance(layer, keras.layers.BatchNormalization)
            if layer.name not in rejected and (registry.supports(layer) or foldable):
                return tfmot.quantization.keras.quantize_annotate_layer(layer)
            if _has_arithmetic(layer):
                reason = rejected.get(layer.name) or (
                    "custom layer without a QuantizeConfig in export/qat.py QUANTIZE_CONFIGS"
                    if type(layer).__module__.startswith("keras_zoo") else
                    "not in tfmot's default 8-bit registry")
                coverage["left_unquantized"].append({"layer": layer.name, "class": name, "reason": reason})
            return layer

        annotated = keras.models.clone_model(model, clone_function=annotate)
        try:
            with tfmot.quantization.keras.quantize_scope(scope):
                qat_model = tfmot.quantization.keras.quantize_apply(annotated, scheme)
            break
        except RuntimeError as err:
            match = re.search(r"Layer (\S+):<class", str(err))
            if not match or match.group(1) in rejected:
                raise
            rejected[match.group(1)] = "tfmot cannot fold it into a preceding conv/dense"
    return qat_model, coverage


#: Suffixes of the quantizer range variables that watch activations (not weights).
_ACTIVATION_RANGES = ("output", "post_activation", "quantize_layer")


def calibrate_ranges(qat_model, float_model, batches):
    """Starts every activation range of ``qat_model`` at the min/max its float tensor takes on ``batches``.

    tfmot's moving-average quantizers start at [-6, 6] and move with decay 0.999, so a
    fine-tune of a few hundred steps keeps ranges far wider (or narrower) than the
    tensors: a QRNN LM lost 0.3 bits/char that way against post-training quantization.
    The float twin of a wrapped layer has its name; a QuantizeLayer watches its input.

    Returns the names of the range variables set.
    """
    floats = {layer.name: layer for layer in float_model.layers}
    targets = []  # (min_var, max_var, float tensor)
    for layer in qat_model.layers:
        if isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2):
            source = floats.get(layer.layer.name)
        elif type(layer).__name__ == "QuantizeLayer":
            inbound = layer.inbound_nodes[0].inbound_layers
            source = floats.get(getattr(inbound, "name", None))
        else:
            continue
        if source is None or isinstance(source.output, (list, tuple)):
            continue
        ranges = {}
        for weight in layer.non_trainable_weights:
            base = weight.name.split("/")[-1].split(":")[0]
            for suffix in _ACTIVATION_RANGES:
                for end in ("_min", "_max"):
                    if base == suffix + end:
                        ranges[end] = weight
        if len(ranges) == 2:
            targets.append((ranges["_min"], ranges["_max"], source.output))
    if not targets:
        return []
    probe = keras.Model(float_model.inputs, [t for _, _, t in targets])
    low = [np.inf] * len(targets)
    high = [-np.inf] * len(targets)
    for inputs, _ in batches:
        values = probe(inputs, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for i, value in enumerate(values):
            low[i] = min(low[i], float(np.min(value)))
            high[i] = max(high[i], float(np.max(value)))
    for (min_var, max_var, _), lo, hi in zip(targets, low, high):
        min_var.assign(min(lo, 0.0))
        max_var.assign(max(hi, 0.0))
    return [min_var.name for min_var, _, _ in targets]


def copy_weights_by_name(source, target):
    """Copies weights (quantizer ranges included) between layers of the same name and shapes.

    Used to carry a QAT sequence model's fine-tuned weights and ranges into its QAT
    single-step twin. Returns the names of target layers with weights left as they were.
    """
    by_name = {layer.name: layer for layer in source.layers}
    untouched = []
    for layer in target.layers:
        if not layer.weights:
            continue
        twin = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if twin is None or [tuple(w.shape) for w in twin.weights] != shapes:
            untouched.append(layer.name)
            continue
        layer.set_weights(twin.get_weights())
    return untouched


def loss_for_task(task):
    """The training loss: classifiers end in softmax, language models return logits."""
    from export.verify import CLASSIFIER_TASKS, LANGUAGE_MODEL_TASKS

    if task in CLASSIFIER_TASKS:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if task in LANGUAGE_MODEL_TASKS:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    raise ExportError(
        f"Fine-tuning (qat, --prune) is implemented for classifiers and language models; task "
        f"{task!r} has no loss here. Use --quantization=int8 without --prune. Received: task={task!r}"
    )


def fine_tune(model, train_data, task, epochs, steps_per_epoch=None, learning_rate=1e-4, callbacks=()):
    """A short fit with the task's loss; returns the final training loss."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_for_task(task))
    if steps_per_epoch:
        # tf_keras keeps one iterator across epochs when steps are given and silently stops
        # fit when a finite dataset runs out (75% pruning stopped at 44% zeros that way).
        train_data = train_data.repeat()
    history = model.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0,
                        callbacks=list(callbacks))
    return float(history.history["loss"][-1])


def prune(model, train_data, task, target_sparsity, epochs, steps_per_epoch, learning_rate=1e-4):
    """Magnitude pruning to ``target_sparsity`` during a fine-tune (PolynomialDecay schedule).

    Sparsity reaches the target after 70% of the steps, so the last 30% fine-tune the
    surviving weights at the final sparsity (deep compression's retraining, arXiv:1510.00149).

    Returns ``(stripped_model, info)`` with the sparsity reached per pruned layer and the
    layers left dense: those tfmot cannot wrap (custom layers such as BinaryConv2D) and
    those it wraps without pruning any weight (its registry prunes no DepthwiseConv2D
    kernel: they hold about 1% of a MobileNet's weights).
    """
    _require_tf_keras("Pruning")
    if not 0.0 < target_sparsity < 1.0:
        raise ExportError(f"--prune must be in (0, 1). Received: {target_sparsity}")
    total_steps = max(1, epochs * steps_per_epoch)
    frequency = 1 if total_steps <= 200 else 10
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0,
        end_step=max(frequency, int(0.7 * total_steps) // frequency * frequency), frequency=frequency,
    )
    unpruned = []

    def wrap(layer):
        if not layer.trainable_weights:
            return layer
        try:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        except ValueError:
            unpruned.append({"layer": layer.name, "class": type(layer).__name__,
                             "reason": "tfmot cannot prune this layer type (not a PrunableLayer)"})
            return layer

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    fine_tune(wrapped, train_data, task, epochs, steps_per_epoch, learning_rate,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    for layer in wrapped.layers:
        # Wrapped layers with a kernel but no pruning variables stay dense (DepthwiseConv2D).
        inner = getattr(layer, "layer", None)
        if hasattr(layer, "pruning_vars") and not layer.pruning_vars and _kernels(inner):
            unpruned.append({"layer": inner.name, "class": type(inner).__name__,
                             "reason": "tfmot's prune registry prunes no weight of this layer type"})
    # strip_pruning hands back the original layer objects, whose outputs still point into
    # ``model``'s graph; a clone gives a self-contained model (QAT builds probes on it).
    stripped_layers = tfmot.sparsity.keras.strip_pruning(wrapped)
    stripped = keras.models.clone_model(stripped_layers)
    stripped.set_weights(stripped_layers.get_weights())
    pruned_names = {l.name for l in model.layers if l.trainable_weights} - {u["layer"] for u in unpruned}
    sparsity = {}
    for layer in stripped.layers:
        if layer.name in pruned_names:
            kernels = [w.numpy() for w in _kernels(layer)]
            if kernels:
                sparsity[layer.name] = float(np.mean(np.concatenate([k.ravel() for k in kernels]) == 0))
    return stripped, {"target_sparsity": target_sparsity, "layer_sparsity": sparsity, "left_unpruned": unpruned}


def _kernels(layer):
    return [w for w in layer.weights if "kernel" in w.name] if layer is not None else []


# --- Keras 3 -> tf_keras bridge ----------------------------------------------------------

def saved_keras_major_version(model_path, config=None):
    """3 for a .keras file written by Keras 3, 2 for tf_keras (config.json wins if it says)."""
    if config and config.get("keras_version") in (2, 3):
        return int(config["keras_version"])
    try:
        with zipfile.ZipFile(model_path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
        return int(str(metadata.get("keras_version", "2")).split(".")[0])
    except (KeyError, zipfile.BadZipFile, ValueError):
        return 2


# Runs in a Keras 3 subprocess (argv: model path, inputs .npz, output .pkl): per-layer
# weights and outputs on fixed inputs. It imports nothing from export/ (tfmot there
# would pull in tf_keras).
_DUMP_KERAS3_MODEL = """
import pickle, sys
import numpy as np
import keras_zoo  # registers the custom layers with Keras 3
from keras_zoo.backend import IS_LEGACY_KERAS, keras
assert not IS_LEGACY_KERAS, "the bridge subprocess must run Keras 3"
model_path, inputs_path, out_path = sys.argv[1:4]
model = keras.models.load_model(model_path, compile=False)
with np.load(inputs_path) as data:
    inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
with open(out_path, "wb") as f:
    pickle.dump({"layers": [(l.name, [np.asarray(w) for w in l.get_weights()]) for l in model.layers],
                 "outputs": [np.asarray(o) for o in outputs]}, f)
"""


def bridge_keras3_model(model_path, build_twin, inputs, atol=1e-4):
    """Loads a Keras 3 ``.keras`` file as its tf_keras twin.

    Keras 3 files cannot be read by tf_keras, so a Keras 3 subprocess dumps the weights;
    ``build_twin()`` rebuilds the same architecture from the registry under tf_keras, the
    weights are copied by layer name (by order of weighted layers if the names differ), and
    both models are run on ``inputs``: any disagreement beyond ``atol`` (relative to the
    output range) is an error.
    """
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        inputs_path, out_path = os.path.join(tmp, "inputs.npz"), os.path.join(tmp, "dump.pkl")
        np.savez(inputs_path, *inputs)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-c", _DUMP_KERAS3_MODEL, model_path, inputs_path, out_path],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportError(
                f"Could not load {model_path} under Keras 3 to bridge it to tf_keras. Check that the "
                f"file is a complete .keras archive written by training.train. Keras 3 said:\n"
                + "\n".join(proc.stderr.strip().splitlines()[-8:])
            )
        with open(out_path, "rb") as f:
            dump = pickle.load(f)

    twin = build_twin()
    source = [(name, weights) for name, weights in dump["layers"] if weights]
    target = [layer for layer in twin.layers if layer.weights]
    by_name = {layer.name: layer for layer in target}
    if {name for name, _ in source} == set(by_name):
        pairs = [(by_name[name], weights) for name, weights in source]
    elif len(source) == len(target):
        pairs = list(zip(target, (weights for _, weights in source)))
    else:
        raise ExportError(
            f"Keras 3 -> tf_keras bridge: the saved model has {len(source)} weighted layers, the "
            f"tf_keras rebuild from the registry has {len(target)}. The config.json overrides must "
            f"rebuild the same architecture. Received: saved={[n for n, _ in source][:5]}..., "
            f"rebuilt={[l.name for l in target][:5]}..."
        )
    for layer, weights in pairs:
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [w.shape for w in weights]:
            raise ExportError(
                f"Keras 3 -> tf_keras bridge: weight shapes of layer {layer.name!r} differ "
                f"(tf_keras {expected}, saved {[w.shape for w in weights]})."
            )
        layer.set_weights(weights)

    outputs = twin(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for saved, rebuilt in zip(dump["outputs"], outputs):
        rebuilt = np.asarray(rebuilt)
        scale = max(float(np.ptp(saved)), 1.0)
        diff = float(np.max(np.abs(saved - rebuilt)))
        if diff > atol * scale:
            raise AssertionError(
                f"Keras 3 -> tf_keras bridge: the tf_keras twin's outputs differ from the Keras 3 "
                f"model's by {diff:.3g} (tolerance {atol * scale:.3g}) after copying weights. The "
                f"builder must compute the same function in both runtimes; run tests/test_models.py "
                f"for this model under both. Received: max abs diff={diff:.3g}"
            )
    return twin
