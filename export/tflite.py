"""Exports a keras_zoo model to TFLite: float32, float16, dynamic, int8 PTQ or QAT.

    python -m export.tflite --model_dir=runs/digits --quantization=int8 [--edgetpu]
    python -m export.tflite --model=NAME --tiny --quantization=float32

The output directory gets ``model.tflite`` (written atomically), ``export_report.json``
and ``labels.txt`` / ``vocab.txt``. Every export is verified in ai_edge_litert against
the Keras model; an export that fails verification is kept only as
``model.FAILED_VERIFICATION.tflite`` and the command exits non-zero.
"""
import os

# tfmot's QAT and pruning need tf_keras, which must be chosen before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import collections  # noqa: E402
import dataclasses  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import weakref  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_zoo  # noqa: E402
from export import convert, edgetpu, qat, report as report_lib, verify  # noqa: E402
from export.convert import ExportError  # noqa: E402
from keras_zoo.backend import IS_LEGACY_KERAS, keras, keras_major_version  # noqa: E402

_FLAGS_DEFINED_IN = weakref.WeakSet()


def define_flags(flag_values=flags.FLAGS):
    """Defines this CLI's flags in ``flag_values`` (once). Only ``run`` calls it with the global
    FLAGS, so importing this module next to ``training.train`` (same flag names) is safe."""
    if flag_values in _FLAGS_DEFINED_IN:
        return
    flags.DEFINE_string("model_dir", None, "A training.train output directory (model.keras + config.json).",
                        flag_values=flag_values)
    flags.DEFINE_string("model", None, "Registry name: export a freshly initialised model instead of --model_dir.",
                        flag_values=flag_values)
    flags.DEFINE_bool("tiny", False, "With --model: apply the variant's tiny overrides.", flag_values=flag_values)
    flags.DEFINE_enum("quantization", "int8", list(convert.QUANTIZATIONS), "Converter mode.",
                      flag_values=flag_values)
    flags.DEFINE_bool("edgetpu", False, "Add an Edge TPU readiness report (static check; compiler if on PATH).",
                      flag_values=flag_values)
    flags.DEFINE_string("output", None, "Output directory (default: <model_dir>/tflite_<quantization>).",
                        flag_values=flag_values)
    flags.DEFINE_enum("io_dtype", "int8", list(convert.IO_DTYPES), "Integer models' float I/O type (uint8 for Coral).",
                      flag_values=flag_values)
    flags.DEFINE_integer("qat_epochs", 1, "Epochs of quantization-aware fine-tuning (and of pruning).",
                         flag_values=flag_values)
    flags.DEFINE_integer("steps_per_epoch", None, "Cap on fine-tuning steps per epoch.", flag_values=flag_values)
    flags.DEFINE_float("learning_rate", 1e-4, "Fine-tuning learning rate (qat, --prune).", flag_values=flag_values)
    flags.DEFINE_float("prune", None, "Target sparsity for magnitude pruning during a fine-tune, e.g. 0.5.",
                       flag_values=flag_values)
    flags.DEFINE_bool("allow_select_tf_ops", False, "Allow TF (Flex) ops the builtin TFLite kernels lack.",
                      flag_values=flag_values)
    flags.DEFINE_integer("num_verify", 100, "Held-out examples used to verify the .tflite.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 32, "Batch size of the data used for fine-tuning.", flag_values=flag_values)
    _FLAGS_DEFINED_IN.add(flag_values)



NUM_REPRESENTATIVE = 100
#: Training batches that set the QAT activation ranges before the fine-tune (qat.calibrate_ranges).
CALIBRATION_BATCHES = 20
FAILED_TAG = "FAILED_VERIFICATION"


@dataclasses.dataclass
class ExportData:
    """What the export needs from a dataset bundle (keras_zoo.data.load_dataset returns one).

    ``train`` and ``test``: batched tf.data of ``(inputs, targets)``.
    """

    train: object
    test: object
    vocab: list | None = None
    labels: list | None = None


@dataclasses.dataclass
class _Source:
    model: object
    name: str
    task: str
    config: dict
    info: object = None
    model_dir: str | None = None
    bridged: bool = False


class _Stages:
    def __init__(self, names, log):
        self.names, self.log, self.done = names, log, 0

    def next(self, detail=""):
        self.done += 1
        self.log(f"[{self.done}/{len(self.names)}] {self.names[self.done - 1]}{detail}")


# --- loading -----------------------------------------------------------------------------

def _validate_request(model_dir, model_name, quantization, io_dtype, prune, model):
    if quantization not in convert.QUANTIZATIONS:
        raise ExportError(f"--quantization must be one of {convert.QUANTIZATIONS}. Received: {quantization!r}")
    if io_dtype not in convert.IO_DTYPES:
        raise ExportError(f"--io_dtype must be one of {convert.IO_DTYPES}. Received: {io_dtype!r}")
    if sum(x is not None for x in (model_dir, model_name, model)) != 1:
        raise ExportError(
            "Give exactly one of --model_dir (a trained model) or --model=NAME (fresh weights). "
            f"Received: model_dir={model_dir!r}, model={model_name!r}"
        )
    if prune is not None and not 0.0 < prune < 1.0:
        raise ExportError(f"--prune is the target sparsity, in (0, 1), e.g. 0.5. Received: {prune}")
    if (quantization == "qat" or prune is not None) and not IS_LEGACY_KERAS:
        raise ExportError(
            "qat and --prune need tf_keras: unset TF_USE_LEGACY_KERAS (the CLI then sets it to 1) or "
            f"set it to 1. Received: TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')!r}"
        )


def _check_exportable(info, quantization, edgetpu_requested):
    if not info.export.get("tflite", False):
        raise ExportError(
            f"{info.name!r} is registered with export tflite=False: its graph has no TFLite "
            f"equivalent. Export another variant (see keras_zoo.list_models()) or train a model "
            f"whose metadata allows TFLite. Received: model={info.name!r}"
        )
    unsupported = info.export.get("unsupported_quantization", ())
    if quantization in unsupported:
        raise ExportError(
            f"{info.name!r} does not support --quantization={quantization} "
            f"({info.export.get('reason', 'see its registry metadata')}). Use one of "
            f"{[q for q in convert.QUANTIZATIONS if q not in unsupported]}. Received: {quantization!r}"
        )
    if edgetpu_requested and info.export.get("edgetpu") is not True and info.export.get("edgetpu"):
        return f"registry says: {info.export['edgetpu']}"
    return None


def _read_config(model_dir):
    if not os.path.isdir(model_dir):
        raise ExportError(
            f"--model_dir {model_dir!r} does not exist. Pass the directory training.train wrote "
            f"(it holds model.keras and config.json). Received: model_dir={model_dir!r}"
        )
    missing = [f for f in ("model.keras", "config.json") if not os.path.exists(os.path.join(model_dir, f))]
    if missing:
        raise ExportError(
            f"--model_dir {model_dir!r} lacks {', '.join(missing)}; it is not a finished "
            f"training.train output. Re-run training or pass the right directory. "
            f"Received: files={sorted(os.listdir(model_dir))}"
        )
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"{model_dir}/config.json is not valid JSON ({err}). Re-run training.") from err
    if "model" not in config:
        raise ExportError(f"{model_dir}/config.json names no registry model (key 'model'). Received: {sorted(config)}")
    return config


def _load_data(info, config, batch_size):
    """The model's own dataset via keras_zoo.data.load_dataset, or None with the reason."""
    try:
        from keras_zoo.data import load_dataset
    except ImportError as err:
        return None, f"keras_zoo.data.load_dataset unavailable ({err})"
    name = config.get("dataset") or info.default_dataset
    try:
        bundle = load_dataset(name, task=info.task, input_specs=info.inputs_for(config),
                              batch_size=batch_size, seed=0)
    except Exception as err:  # any loader failure: the caller decides whether data is required
        return None, f"dataset {name!r} failed to load ({type(err).__name__}: {err})"
    return bundle, name


def _load_source(model_dir, model_name, tiny, model, task, data, batch_size):
    """Returns (source, data, data_note)."""
    if model is not None:
        return _Source(model=model, name=model.name, task=task or "unknown", config={}), data, "given"
    if model_dir is not None:
        config = _read_config(model_dir)
        info = keras_zoo.model_info(config["model"])
        build_config = info.resolved_config(tiny=config.get("tiny", False), **config.get("builder_overrides", {}))
        note = "given"
        if data is None:
            data, note = _load_data(info, build_config, batch_size)
        path = os.path.join(model_dir, "model.keras")
        saved_major = qat.saved_keras_major_version(path, config)
        if saved_major == 3 and IS_LEGACY_KERAS:
            inputs = _first_inputs(data, batch=2) or keras_zoo.registry.example_inputs(info, build_config)
            trained = qat.bridge_keras3_model(path, lambda: info.builder(**build_config), inputs)
        else:
            try:
                trained = keras.models.load_model(path, compile=False)
            except Exception as err:  # corrupt archives raise zipfile, OSError, ValueError ...
                raise ExportError(
                    f"{path} could not be loaded under Keras {keras_major_version()} "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). The file is "
                    f"corrupt or incomplete: re-run training.train into this directory. Received: {path}"
                ) from err
        source = _Source(trained, info.name, info.task, build_config, info, model_dir,
                         bridged=saved_major == 3 and IS_LEGACY_KERAS)
        return source, data, note
    info = keras_zoo.model_info(model_name)
    build_config = info.resolved_config(tiny=tiny)
    note = "given"
    if data is None:
        data, note = _load_data(info, build_config, batch_size)
    if data is not None and getattr(data, "model_overrides", None):
        build_config = info.resolved_config(tiny=tiny, **data.model_overrides)
    return _Source(info.builder(**build_config), info.name, info.task, build_config, info), data, note


# --- data ----------------------------------------------------------------------------------

def _as_input_list(inputs):
    if isinstance(inputs, dict):
        return [np.asarray(v) for v in inputs.values()]
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(v) for v in inputs]
    return [np.asarray(inputs)]


def _examples(dataset, count):
    """``count`` single examples as (inputs list with batch 1, targets with batch 1)."""
    pairs = []
    for element in dataset.unbatch().take(count):
        inputs, targets = element[0], element[1]  # a third element (sample weights) is not needed
        targets = tf.nest.map_structure(lambda t: np.asarray(t)[None], targets)
        pairs.append(([x[None] for x in _as_input_list(inputs)], targets))
    return pairs


def _first_inputs(data, batch):
    if data is None:
        return None
    for inputs, _ in data.test.unbatch().batch(batch).take(1):
        return _as_input_list(inputs)
    return None


def _matches(model, example_inputs):
    if len(model.inputs) != len(example_inputs):
        return False
    return all(
        len(t.shape) == x.ndim and all(d is None or d == s for d, s in zip(t.shape[1:], x.shape[1:]))
        for t, x in zip(model.inputs, example_inputs)
    )


def _is_step_graph(model):
    """Single-step graphs take ``[x, *states]`` and return ``[y, *new_states]``."""
    ins, outs = model.inputs, model.outputs
    return len(ins) >= 2 and len(ins) == len(outs) and all(
        tuple(i.shape[1:]) == tuple(o.shape[1:]) for i, o in zip(ins[1:], outs[1:]))


def _step_examples(step_model, pairs, count):
    """Runs a single-step graph over data sequences (teacher forcing), recording every
    step's inputs (realistic states, not random ones) and its target."""
    examples = []
    for inputs, targets in pairs:
        sequence = inputs[0]
        states = [np.zeros((1, *t.shape[1:]), tf.as_dtype(t.dtype).as_numpy_dtype) for t in step_model.inputs[1:]]
        for t in range(sequence.shape[1]):
            step_inputs = [sequence[:, t:t + 1], *states]
            outputs = step_model(step_inputs, training=False)
            examples.append((step_inputs, targets[:, t] if np.ndim(targets) >= 2 else targets))
            states = [np.asarray(o) for o in outputs[1:]]
            if len(examples) >= count:
                return examples
    return examples


def _examples_for(model, dataset, count):
    """Data examples that fit ``model``: directly, stepped through a single-step graph, or
    mapped by the graph's own ``export_examples(pairs) -> pairs`` (an inference graph whose
    inputs the data does not hold, e.g. a decoder fed by the encoder's output, sets it)."""
    pairs = _examples(dataset, count)
    if not pairs:
        return []
    if callable(getattr(model, "export_examples", None)):
        return model.export_examples(pairs)
    if _matches(model, pairs[0][0]):
        return pairs
    first = pairs[0][0]
    if _is_step_graph(model) and len(first) == 1:
        zero_states = [np.zeros((1, *t.shape[1:])) for t in model.inputs[1:]]
        if _matches(model, [first[0][:, :1], *zero_states]):
            return _step_examples(model, pairs, count)
    return []


def _random_examples(model, source, count, seed=0):
    """Inputs drawn from the registry's input spec (or [0, 1)) at the model's static shape."""
    rng = np.random.default_rng(seed)
    specs = source.info.inputs_for(source.config) if source.info else []
    examples = []
    for _ in range(count):
        inputs = []
        for i, tensor in enumerate(model.inputs):
            shape = (1, *[d if d is not None else 16 for d in tensor.shape[1:]])
            dtype = np.dtype(tf.as_dtype(tensor.dtype).as_numpy_dtype)
            spec = specs[i] if i < len(specs) else None
            low, high = (spec.minval, spec.maxval) if spec else (0, 2 if dtype.kind in "iu" else 1)
            if dtype.kind in "iu":
                inputs.append(rng.integers(int(low), max(int(high), int(low) + 1), size=shape).astype(dtype))
            else:
                inputs.append(rng.uniform(low, high, size=shape).astype(dtype))
        examples.append(inputs)
    return examples


# --- the export ----------------------------------------------------------------------------

def _graph_io(graph):
    return [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in graph]


def _default_output(source, quantization):
    if source.model_dir:
        return os.path.join(source.model_dir, f"tflite_{quantization}")
    return os.path.join("out", "export", f"{source.name}_{quantization}")


def export_model(model_dir=None, model_name=None, *, tiny=False, quantization="int8", output=None,
                 edgetpu_check=False, io_dtype="int8", qat_epochs=1, steps_per_epoch=None,
                 learning_rate=1e-4, prune=None, allow_select_tf_ops=False, num_verify=100,
                 batch_size=32, model=None, task=None, data=None, log=print):
    """Exports one model and verifies it; returns the report dict (also written to disk).

    Args:
        model_dir: a training.train output directory, or
        model_name: a registry name (freshly initialised weights, ``tiny`` applies), or
        model: an in-memory Keras model (with ``task``; used by tests and tools).
        quantization: float32 | float16 | dynamic | int8 | qat.
        output: output directory; default ``<model_dir>/tflite_<quantization>``.
        edgetpu_check: add the Edge TPU readiness report.
        io_dtype: int8 or uint8 float I/O of integer models.
        qat_epochs, steps_per_epoch, learning_rate: the QAT / pruning fine-tune.
        prune: target sparsity for magnitude pruning, or None.
        allow_select_tf_ops: let Flex ops through (reported).
        num_verify: held-out examples for verification.
        data: an ``ExportData``-like bundle; default: the model's dataset.
        log: where stage lines go.

    Raises:
        ExportError: bad input, or a conversion the flags do not allow; no file is written.
    """
    _validate_request(model_dir, model_name, quantization, io_dtype, prune, model)
    names = ["loading model and data", "fine-tuning", "converting", "verifying"]
    if edgetpu_check:
        names.append("checking Edge TPU readiness")
    names.append("writing")
    stages = _Stages(names, log)

    stages.next()
    if model_name is not None:
        _check_exportable(keras_zoo.model_info(model_name), quantization, edgetpu_check)
    elif model_dir is not None and os.path.exists(os.path.join(model_dir, "config.json")):
        _check_exportable(keras_zoo.model_info(_read_config(model_dir)["model"]), quantization, edgetpu_check)
    source, data, data_note = _load_source(model_dir, model_name, tiny, model, task, data, batch_size)
    if source.task == "detection":
        # Detectors end in TFLite_Detection_PostProcess (boxes, classes, scores, count), verified by mAP.
        from export import detection

        return detection.export_detection(source.model, source.config, data,
                                          output or _default_output(source, quantization),
                                          quantization=quantization, num_verify=num_verify,
                                          labels=getattr(data, "labels", None), log=log)
    needs_training = quantization == "qat" or prune is not None
    if needs_training:
        qat.loss_for_task(source.task)  # fails early for tasks without a fine-tuning loss
        if data is None:
            raise ExportError(
                f"--quantization={quantization}{' --prune' if prune else ''} fine-tunes on the model's "
                f"training data, which is not available: {data_note}. Use --quantization=int8, or fix "
                f"the dataset. Received: model={source.name!r}"
            )
    out_dir = output or _default_output(source, quantization)
    report = {
        "model": source.name,
        "source": source.model_dir or ("registry, fresh weights" if source.info else "in-memory model"),
        "task": source.task, "quantization": quantization, "keras_runtime": f"Keras {keras_major_version()}",
        "bridged_from_keras3": source.bridged, "io_dtype": io_dtype if quantization in ("int8", "qat") else None,
    }

    stages.next(" (pruning)" if prune else " (quantization-aware)" if quantization == "qat" else ": skipped")
    float_model = source.model
    if prune is not None:
        steps = steps_per_epoch or int(tf.data.experimental.cardinality(data.train))
        float_model, pruning = qat.prune(float_model, data.train, source.task, prune, qat_epochs, steps,
                                         learning_rate)
        sparsities = list(pruning["layer_sparsity"].values())
        pruning["overall_sparsity"] = float(np.mean(sparsities)) if sparsities else 0.0
        report["pruning"] = pruning
    step_graph = source.info is not None and source.info.inference_model is not None
    export_float = source.info.inference_model(float_model, source.config) if step_graph else float_model
    convert_model = export_float
    if quantization == "qat":
        qat_model, coverage = qat.quantize_model(float_model, preserve_sparsity=prune is not None)
        calibrated = qat.calibrate_ranges(qat_model, float_model, data.train.take(CALIBRATION_BATCHES))
        loss = qat.fine_tune(qat_model, data.train, source.task, qat_epochs, steps_per_epoch, learning_rate)
        report["qat"] = {"coverage": coverage, "epochs": qat_epochs, "final_train_loss": loss,
                         "ranges_calibrated": len(calibrated)}
        convert_model = qat_model
        if step_graph:
            # Fine-tuned on sequences; the single-step twin takes its weights and ranges by layer name.
            convert_model, _ = qat.quantize_model(export_float, preserve_sparsity=prune is not None)
            report["qat"]["step_graph_layers_not_from_sequence_model"] = qat.copy_weights_by_name(
                qat_model, convert_model)

    stages.next()
    rep_pairs, verify_pairs = [], []
    if data is not None:
        rep_pairs = _examples_for(export_float, data.train, NUM_REPRESENTATIVE)
        verify_pairs = _examples_for(export_float, data.test, num_verify)
    if rep_pairs:
        report["data"] = {"representative": f"train split, {len(rep_pairs)} examples",
                          "verify": f"test split of {data_note}"}
        if callable(getattr(export_float, "export_examples", None)):
            report["data"]["representative"] += " (mapped to the inference graph's inputs by its export_examples)"
        elif step_graph:
            report["data"]["representative"] += " (single steps run over train sequences)"
    else:
        reason = data_note if data is None else "the data does not fit the exported graph"
        report["data"] = {"representative": f"random inputs ({reason})", "verify": f"random inputs ({reason})"}
    rep_inputs = [inputs for inputs, _ in rep_pairs] or _random_examples(export_float, source, NUM_REPRESENTATIVE)
    signature = convert.input_signature(convert_model, rep_inputs[0])
    content = convert.convert(convert_model, quantization, signature, rep_inputs, io_dtype, allow_select_tf_ops)
    graph = convert.read_graph(content)
    flex = sorted({op.name for op in graph.ops if op.is_flex})
    report.update({
        "size_bytes": len(content), "gzip_size_bytes": len(gzip.compress(content)),
        "inputs": _graph_io(graph.inputs), "outputs": _graph_io(graph.outputs),
        "op_counts": dict(collections.Counter(op.name for op in graph.ops)),
        "select_tf_ops": flex,
    })

    stages.next()
    verify_inputs = [inputs for inputs, _ in verify_pairs]
    targets = [t for _, t in verify_pairs] or None
    if not verify_inputs or any(x.shape[1:] != tuple(s.shape[1:]) for x, s in zip(verify_inputs[0], signature)):
        verify_inputs, targets = _random_examples(export_float, source, min(num_verify, 32), seed=1), None
        report["data"]["verify"] = "random inputs (no held-out data fits the exported graph)"
    try:
        verification = verify.compare(convert_model, content, verify_inputs, source.task, quantization, targets)
        report["latency_ms"] = verify.latency(content, verify_inputs[0])
    except (RuntimeError, ValueError) as err:
        if not flex:
            raise
        verification = {"num_examples": 0, "passed": False, "failures": [
            f"ai_edge_litert cannot run the Flex ops {flex} ({err}); verify on a runtime with the "
            f"Flex delegate"]}
    report["verification"] = verification
    if quantization == "qat" and targets is not None:
        ptq = convert.convert(export_float, "int8", signature, rep_inputs, io_dtype, allow_select_tf_ops)
        report["qat"]["metrics"] = {
            "float_keras": verify.evaluate_keras(export_float, verify_inputs, targets, source.task),
            "qat_keras": verify.evaluate_keras(convert_model, verify_inputs, targets, source.task),
            "qat_tflite": verify.evaluate_tflite(content, verify_inputs, targets, source.task),
            "ptq_int8_tflite": verify.evaluate_tflite(ptq, verify_inputs, targets, source.task),
        }
    report["passed"] = bool(verification["passed"])

    if edgetpu_check:
        stages.next()
        report["edgetpu"] = edgetpu.check(content)
        note = _check_exportable(source.info, quantization, True) if source.info else None
        if note:
            report["edgetpu"]["registry_note"] = note
        log(edgetpu.format_table(report["edgetpu"]))

    stages.next(f" -> {out_dir}")
    os.makedirs(out_dir, exist_ok=True)
    tag = "" if report["passed"] else f".{FAILED_TAG}"
    tflite_path = os.path.join(out_dir, f"model{tag}.tflite")
    report["tflite_file"] = tflite_path
    for name in ("labels.txt", "vocab.txt"):
        if source.model_dir and os.path.exists(os.path.join(source.model_dir, name)):
            if os.path.abspath(source.model_dir) != os.path.abspath(out_dir):
                shutil.copyfile(os.path.join(source.model_dir, name), os.path.join(out_dir, name))
        else:
            entries = getattr(data, "labels" if name == "labels.txt" else "vocab", None) if data else None
            if entries:
                report_lib.write_atomic(os.path.join(out_dir, name), "\n".join(map(str, entries)) + "\n")
    report_lib.write_atomic(tflite_path, content)
    report_lib.write_json(os.path.join(out_dir, f"export_report{tag}.json"), report)
    log(report_lib.format_table(report))
    return report


def main(argv, flag_values=flags.FLAGS):
    """Exports as the parsed ``flag_values`` say (``app.run`` passes only ``argv``: the global FLAGS)."""
    del argv
    fv = flag_values
    try:
        report = export_model(
            model_dir=fv.model_dir, model_name=fv.model, tiny=fv.tiny,
            quantization=fv.quantization, output=fv.output, edgetpu_check=fv.edgetpu,
            io_dtype=fv.io_dtype, qat_epochs=fv.qat_epochs, steps_per_epoch=fv.steps_per_epoch,
            learning_rate=fv.learning_rate, prune=fv.prune,
            allow_select_tf_ops=fv.allow_select_tf_ops, num_verify=fv.num_verify,
            batch_size=fv.batch_size,
        )
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if not report["passed"]:
        print(f"error: verification failed; the file is kept as {report['tflite_file']}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console script ``keras-zoo-export``."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
