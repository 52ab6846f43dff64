"""Runs an exported .tflite in ai_edge_litert next to its Keras model and checks they agree."""
import re
import statistics
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

CLASSIFIER_TASKS = ("image_classification", "sequence_classification", "audio_classification")
LANGUAGE_MODEL_TASKS = ("language_model",)
#: Logits over target tokens (teacher-forced decoder graphs); padding targets (id 0) are not scored.
SEQ2SEQ_TASKS = ("seq2seq",)
PAD_ID = 0

# Per-mode pass thresholds.
# `max_rel_rmse`: RMS of (TFLite - Keras) over the standard deviation of the Keras outputs.
# `min_top1`: argmax agreement with Keras on *decisive* examples, those whose Keras top-1
#   margin is at least `DECISIVE_MARGIN` of the Keras output range (an untrained model's
#   flat outputs make raw argmax agreement a coin toss; raw agreement is reported too).
# `max_rel_metric_delta`: |bits/token (TFLite) - bits/token (Keras)| / bits/token (Keras).
THRESHOLDS = {
    "float32": dict(min_top1=0.999, max_rel_rmse=1e-3, max_rel_metric_delta=1e-4),
    "float16": dict(min_top1=0.99, max_rel_rmse=2e-2, max_rel_metric_delta=5e-3),
    "dynamic": dict(min_top1=0.98, max_rel_rmse=0.15, max_rel_metric_delta=0.03),
    "int8": dict(min_top1=0.98, max_rel_rmse=0.3, max_rel_metric_delta=0.05),
    "qat": dict(min_top1=0.98, max_rel_rmse=0.3, max_rel_metric_delta=0.05),
}
DECISIVE_MARGIN = 0.1
MIN_DECISIVE = 10


class TFLiteRunner:
    """Batch-1 inference on a .tflite, quantizing float inputs and dequantizing outputs.

    Goes through the signature runner so that inputs and outputs keep the Keras order:
    inputs are named ``inNN_...`` by ``convert.input_signature``, outputs ``output_N``.
    """

    def __init__(self, model_content, num_threads=1):
        self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        self.input_names = sorted(self.input_details)
        self.output_names = sorted(self.output_details, key=lambda n: int(re.sub(r"\D", "", n) or 0))

    def _feed(self, inputs):
        feed = {}
        for name, value in zip(self.input_names, inputs):
            detail, value = self.input_details[name], np.asarray(value)
            scale, zero_point = detail["quantization"]
            if np.issubdtype(detail["dtype"], np.integer) and np.issubdtype(value.dtype, np.floating):
                info = np.iinfo(detail["dtype"])
                value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
            feed[name] = value.astype(detail["dtype"]).reshape(detail["shape"])
        return feed

    def __call__(self, inputs):
        """``inputs``: one array per model input, batch 1. Returns float outputs, batch 1."""
        raw = self.runner(**self._feed(inputs))
        outputs = []
        for name in self.output_names:
            value = raw[name]
            scale, zero_point = self.output_details[name]["quantization"]
            if scale:
                value = (value.astype(np.float32) - zero_point) * scale
            outputs.append(value.astype(np.float32))
        return outputs

    def median_latency_ms(self, inputs, repeats=20):
        feed = self._feed(inputs)
        self.runner(**feed)  # warm-up: the first run prepares the XNNPACK delegate
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.runner(**feed)
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)


def keras_outputs(model, examples, batch_size=64):
    """The model's first output on batch-1 ``examples``, run in batches (eager calls are slow)."""
    batch_size = model.inputs[0].shape[0] or batch_size  # graphs built at a fixed batch
    outputs = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = [np.concatenate(parts) for parts in zip(*chunk)]
        outputs.append(_as_list(model(batch[0] if len(batch) == 1 else batch, training=False))[0])
    return np.concatenate(outputs).astype(np.float32)


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [np.asarray(v) for v in outputs.values()]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v) for v in outputs]
    return [np.asarray(outputs)]


def _labels(targets, outputs):
    """Sparse integer labels shaped like ``outputs`` without its class axis, or None when the
    targets are something else (e.g. SoundNet's teacher distributions per head)."""
    try:
        labels = np.concatenate([np.ravel(np.asarray(t)) for t in targets])
    except ValueError:
        return None
    if labels.size != int(np.prod(outputs.shape[:-1])) or not np.array_equal(labels, np.round(labels)):
        return None
    return labels.reshape(outputs.shape[:-1])


def _bits_per_token(logits, targets):
    logits = logits.astype(np.float64)
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None].astype(np.int64), -1)[..., 0]
    return float(-picked.mean() / np.log(2.0))


def compare(keras_model, tflite_content, examples, task, quantization, targets=None):
    """Runs both models on ``examples`` and returns agreement, metrics and a pass flag.

    Args:
        keras_model: the model that was converted (for ``qat`` the quantize-wrapped one).
        tflite_content: .tflite bytes.
        examples: list of per-example input lists, batch 1.
        task: the registry task; classifiers report accuracy, language models bits/token,
            seq2seq decoder graphs bits/token and token accuracy over non-padding targets.
        quantization: selects the thresholds in ``THRESHOLDS``.
        targets: per-example targets aligned with ``examples``, or None (random inputs).
    """
    runner = TFLiteRunner(tflite_content)
    keras_out = keras_outputs(keras_model, examples)
    lite_out = np.concatenate([runner(inputs)[0] for inputs in examples])
    limits = THRESHOLDS[quantization]
    step = float(runner.output_details[runner.output_names[0]]["quantization"][0])
    diff = keras_out - lite_out
    spread = float(keras_out.std()) or 1.0
    result = dict(
        num_examples=len(examples),
        max_abs_diff=float(np.max(np.abs(diff))),
        rel_rmse=float(np.sqrt(np.mean(diff ** 2))) / spread,
        thresholds=dict(limits),
        failures=[],
    )
    # An int8 output cannot resolve less than its quantization step: flat outputs (an
    # untrained classifier's softmax) are judged against the step, not their tiny std.
    result["output_quant_step"] = step
    rmse = float(np.sqrt(np.mean(diff ** 2)))
    if rmse > max(limits["max_rel_rmse"] * spread, step):
        result["failures"].append(
            f"RMS error is {result['rel_rmse']:.3g} of the output std (limit {limits['max_rel_rmse']}"
            + (f", or one output quantization step {step:.3g}" if step else "") + ")")
    if task in CLASSIFIER_TASKS + LANGUAGE_MODEL_TASKS:
        agree = keras_out.argmax(-1) == lite_out.argmax(-1)
        top2 = np.sort(keras_out, axis=-1)[..., -2:]
        # A margin below two output quantization steps cannot survive int8 rounding.
        margin = max(DECISIVE_MARGIN * (float(np.ptp(keras_out)) or 1.0), 2 * step)
        decisive = (top2[..., 1] - top2[..., 0]) >= margin
        result["top1_agreement"] = float(np.mean(agree))
        result["decisive_examples"] = int(decisive.sum())
        if decisive.sum() >= MIN_DECISIVE:
            result["top1_agreement_decisive"] = float(np.mean(agree[decisive]))
            if result["top1_agreement_decisive"] < limits["min_top1"]:
                result["failures"].append(
                    f"top-1 agreement {result['top1_agreement_decisive']:.2%} on {int(decisive.sum())} "
                    f"decisive examples < {limits['min_top1']:.2%}")
        else:
            result["notes"] = [f"only {int(decisive.sum())} examples have a clear top-1 (outputs too flat, "
                               f"untrained model?): top-1 agreement not judged"]
    labels = _labels(targets, keras_out) if targets is not None else None
    if targets is not None and labels is None:
        result.setdefault("notes", []).append("targets are not sparse labels of the first output: "
                                              "no accuracy or bits/token against them")
    if labels is not None and task in CLASSIFIER_TASKS + LANGUAGE_MODEL_TASKS + SEQ2SEQ_TASKS:
        if task in SEQ2SEQ_TASKS:
            keep = labels != PAD_ID
            keras_out, lite_out, labels = keras_out[keep], lite_out[keep], labels[keep]
            result["scored_tokens"] = int(keep.sum())
            result["keras_token_accuracy"] = float(np.mean(keras_out.argmax(-1) == labels))
            result["tflite_token_accuracy"] = float(np.mean(lite_out.argmax(-1) == labels))
        if task in CLASSIFIER_TASKS:
            result["keras_accuracy"] = float(np.mean(keras_out.argmax(-1) == labels))
            result["tflite_accuracy"] = float(np.mean(lite_out.argmax(-1) == labels))
            result["metric_delta"] = result["tflite_accuracy"] - result["keras_accuracy"]
        else:
            result["keras_bits_per_token"] = _bits_per_token(keras_out, labels)
            result["tflite_bits_per_token"] = _bits_per_token(lite_out, labels)
            delta = result["tflite_bits_per_token"] - result["keras_bits_per_token"]
            result["metric_delta"] = delta
            if abs(delta) > limits["max_rel_metric_delta"] * max(result["keras_bits_per_token"], 1e-9):
                result["failures"].append(
                    f"bits/token moved by {delta:+.4f} (limit {limits['max_rel_metric_delta']:.1%} "
                    f"of {result['keras_bits_per_token']:.4f})"
                )
    result["passed"] = not result["failures"]
    return result


def latency(tflite_content, example, threads=(1, 2)):
    """Median invoke latency in ms per thread count (XNNPACK is the default CPU delegate)."""
    return {f"{n}_thread{'s' if n > 1 else ''}": TFLiteRunner(tflite_content, n).median_latency_ms(example)
            for n in threads}


def evaluate_tflite(tflite_content, examples, targets, task):
    """Accuracy (classifiers) or bits/token (language models) of a .tflite alone."""
    runner = TFLiteRunner(tflite_content)
    outputs = np.concatenate([runner(inputs)[0] for inputs in examples])
    return _metric(outputs, targets, task)


def _metric(outputs, targets, task):
    if task in CLASSIFIER_TASKS:
        return {"accuracy": float(np.mean(outputs.argmax(-1) == _labels(targets, outputs)))}
    if task in LANGUAGE_MODEL_TASKS:
        return {"bits_per_token": _bits_per_token(outputs, _labels(targets, outputs))}
    if task in SEQ2SEQ_TASKS:
        labels = _labels(targets, outputs)
        keep = labels != PAD_ID
        return {"bits_per_token": _bits_per_token(outputs[keep], labels[keep]),
                "token_accuracy": float(np.mean(outputs[keep].argmax(-1) == labels[keep]))}
    return {}


def evaluate_keras(model, examples, targets, task):
    """The same metric as ``evaluate_tflite``, for a Keras model."""
    outputs = keras_outputs(model, examples)
    return _metric(outputs, targets, task)

