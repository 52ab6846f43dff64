"""The export report: JSON on disk, the same figures as a table on stdout."""
import json
import os
import tempfile


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_atomic(path, content):
    """Writes ``content`` (bytes or str) to a temp file in the same directory, then os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def markdown_table(rows):
    """A list of same-keyed dicts as a markdown table (floats to 4 significant digits)."""
    columns = list(rows[0])

    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows])


def write_json(path, report):
    write_atomic(path, json.dumps(_jsonable(report), indent=2, sort_keys=False) + "\n")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(report):
    """Two columns: what was measured, and its value (TFLite next to Keras where both exist)."""
    verification = report.get("verification", {})
    rows = [
        ("model", report.get("model")),
        ("quantization", report.get("quantization")),
        ("file", report.get("tflite_file")),
        ("size (KiB)", report.get("size_bytes", 0) / 1024),
        ("gzip size (KiB)", report.get("gzip_size_bytes", 0) / 1024),
        ("inputs", ", ".join(f"{i['dtype']}{i['shape']}" for i in report.get("inputs", []))),
        ("outputs", ", ".join(f"{o['dtype']}{o['shape']}" for o in report.get("outputs", []))),
        ("verified on", f"{verification.get('num_examples')} examples ({report.get('data', {}).get('verify')})"),
        ("max abs diff", verification.get("max_abs_diff")),
        ("RMS error / output std", verification.get("rel_rmse")),
        ("top-1 agreement", verification.get("top1_agreement")),
        ("  on decisive examples", verification.get("top1_agreement_decisive")),
    ]
    for metric in ("accuracy", "bits_per_token"):
        if f"keras_{metric}" in verification:
            rows.append((f"{metric} keras / tflite",
                         f"{_fmt(verification[f'keras_{metric}'])} / {_fmt(verification[f'tflite_{metric}'])}"))
    for threads, ms in report.get("latency_ms", {}).items():
        rows.append((f"latency {threads.replace('_', ' ')} (ms)", ms))
    qat = report.get("qat")
    if qat:
        for key in ("float_keras", "qat_tflite", "ptq_int8_tflite"):
            if key in qat.get("metrics", {}):
                rows.append((f"held-out {key}", ", ".join(f"{k}={_fmt(v)}" for k, v in qat["metrics"][key].items())))
        rows.append(("custom layers quantized", ", ".join(qat["coverage"]["custom_quantized"]) or "-"))
        rows.append(("left unquantized", ", ".join(
            f"{u['layer']} ({u['class']})" for u in qat["coverage"]["left_unquantized"]) or "-"))
    pruning = report.get("pruning")
    if pruning:
        rows.append(("sparsity (pruned kernels)", pruning.get("overall_sparsity")))
    if report.get("select_tf_ops"):
        rows.append(("SELECT_TF_OPS (Flex)", ", ".join(report["select_tf_ops"])))
    edgetpu = report.get("edgetpu")
    if edgetpu:
        first = edgetpu["first_cpu_op"]
        rows.append(("Edge TPU mappable", f"{edgetpu['mapped_ops']}/{edgetpu['total_ops']} ops"
                     + (f", CPU from op {first['index']} {first['op']}" if first else "")))
    rows.append(("verification", "PASSED" if report.get("passed") else
                 "FAILED: " + "; ".join(verification.get("failures", []))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_fmt(value)}" for name, value in rows if value is not None)
