"""Static Edge TPU readiness check of a .tflite, against the compiler's documented rules.

Google's ``edgetpu_compiler`` is only distributed as an x86-64 Debian package, so the
export checks the rules it documents instead, and runs the compiler as well when it is
on PATH. Sources:

- coral.ai/docs/edgetpu/models-intro, "Model requirements": tensor parameters int8 or
  uint8; tensor sizes constant at compile time; bias tensors constant; tensors 1-, 2- or
  3-dimensional, or, with more dimensions, only the 3 innermost larger than 1; only the
  supported operations. The compiler cuts the graph once: from the first op it cannot
  map, that op and every op after it run on the CPU.
- the same page, "Supported operations" (per-op limitations, encoded in ``_OP_RULES``).
- op versions: compiler 16.0.384591198 parses the .tflite with a TF Lite op resolver of
  the TF 2.5 era. A builtin op newer than that resolver, or of a newer version, makes the
  whole model unparsable ("Didn't find op for builtin opcode 'CONV_2D' version '6'";
  nothing is compiled), whatever device the op itself would run on.
  ``RESOLVER_MAX_VERSIONS`` holds the maxima of TF Lite's ``BuiltinOpResolver``
  (tensorflow/lite/kernels/register.cc) as of TF 2.5. It agrees with every rejection
  reported against compiler 16: CONV_2D v6 (google-coral/edgetpu#631), TRANSPOSE_CONV v4
  (#845), QUANTIZE v3 (#879) and EXP v2 (google-coral/libedgetpu#71).
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from export.convert import read_graph

COMPILER_VERSION = "16.0"

# Builtin op -> newest version the compiler's resolver registers; ops not listed here are
# registered at version 1 only (RESOLVER_VERSION_1_OPS) or not at all.
RESOLVER_MAX_VERSIONS = {
    "ABS": 3, "RELU": 3, "RELU6": 3, "TANH": 3, "LOGISTIC": 3, "AVERAGE_POOL_2D": 3,
    "MAX_POOL_2D": 3, "CONV_2D": 5, "DEPTHWISE_CONV_2D": 6, "SVDF": 4, "RNN": 3,
    "BIDIRECTIONAL_SEQUENCE_RNN": 3, "UNIDIRECTIONAL_SEQUENCE_RNN": 3, "EMBEDDING_LOOKUP": 3,
    "FULLY_CONNECTED": 9, "SOFTMAX": 3, "CONCATENATION": 3, "ADD": 3, "SPACE_TO_BATCH_ND": 3,
    "BATCH_TO_SPACE_ND": 3, "MUL": 4, "L2_NORMALIZATION": 2, "LSTM": 4,
    "BIDIRECTIONAL_SEQUENCE_LSTM": 3, "UNIDIRECTIONAL_SEQUENCE_LSTM": 3, "PAD": 3, "PADV2": 3,
    "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4, "SPACE_TO_DEPTH": 2, "DEPTH_TO_SPACE": 2,
    "GATHER": 5, "TRANSPOSE": 5, "MEAN": 3, "DIV": 2, "SUB": 5, "SPLIT": 4, "SPLIT_V": 2,
    "SQUEEZE": 2, "STRIDED_SLICE": 5, "TOPK_V2": 2, "LOG_SOFTMAX": 2, "DEQUANTIZE": 4,
    "MAXIMUM": 4, "MINIMUM": 4, "ARG_MAX": 2, "ARG_MIN": 2, "GREATER": 2, "GREATER_EQUAL": 2,
    "LESS": 2, "LESS_EQUAL": 2, "SELECT": 2, "SLICE": 5, "TRANSPOSE_CONV": 3, "TILE": 2,
    "SUM": 2, "REDUCE_MAX": 3, "REDUCE_MIN": 3, "SPARSE_TO_DENSE": 3, "EQUAL": 3,
    "NOT_EQUAL": 3, "RSQRT": 2, "FAKE_QUANT": 2, "PACK": 3, "UNPACK": 4, "FLOOR_DIV": 2,
    "LEAKY_RELU": 2, "SQUARED_DIFFERENCE": 2, "FILL": 3, "MIRROR_PAD": 2, "REVERSE_V2": 3,
    "GATHER_ND": 3, "QUANTIZE": 2, "BATCH_MATMUL": 4, "BROADCAST_TO": 3,
}
RESOLVER_VERSION_1_OPS = frozenset({
    "HARD_SWISH", "RELU_N1_TO_1", "L2_POOL_2D", "EMBEDDING_LOOKUP_SPARSE", "LSH_PROJECTION",
    "HASHTABLE_LOOKUP", "LOCAL_RESPONSE_NORMALIZATION", "RESHAPE", "SKIP_GRAM", "EXP", "LOG",
    "CAST", "PRELU", "FLOOR", "CEIL", "ROUND", "NEG", "SELECT_V2", "SIN", "COS", "REDUCE_PROD",
    "REDUCE_ANY", "EXPAND_DIMS", "SQRT", "SHAPE", "RANK", "POW", "ONE_HOT", "LOGICAL_OR",
    "LOGICAL_AND", "LOGICAL_NOT", "SQUARE", "ZEROS_LIKE", "FLOOR_MOD", "RANGE", "UNIQUE",
    "ADD_N", "WHERE", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "MATRIX_SET_DIAG", "IF", "WHILE",
    "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "DENSIFY", "SEGMENT_SUM",
    "CUMSUM", "CALL_ONCE", "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE",
    "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
})
_BUILTIN_OP_NAMES = frozenset(name for name in vars(schema.BuiltinOperator) if not name.startswith("_"))


def parse_problem(op):
    """Why compiler 16 could not even parse a model containing ``op`` (None if it can)."""
    if op.name not in _BUILTIN_OP_NAMES:
        return None  # a custom op (e.g. TFLite_Detection_PostProcess): left to the CPU
    newest = 1 if op.name in RESOLVER_VERSION_1_OPS else RESOLVER_MAX_VERSIONS.get(op.name)
    if newest is None:
        return f"{op.name} is newer than the op resolver of edgetpu_compiler {COMPILER_VERSION} (TF 2.5)"
    if op.version > newest:
        return f"{op.name} version {op.version} > {newest}, the newest edgetpu_compiler {COMPILER_VERSION} parses"
    return None


def _non_unit_dims(shape):
    return [d for d in shape if d != 1]


def _const_axis(op, position):
    if len(op.inputs) <= position or op.inputs[position].value is None:
        return None
    return [int(a) for a in np.ravel(op.inputs[position].value)]


def _axes_normalised(axes, rank):
    return sorted(a % rank for a in axes) if rank else axes


def _no_fused_activation(op):
    fused = getattr(op.options, "fusedActivationFunction", 0)
    return [f"fused activation {fused} (the Edge TPU allows none on {op.name})"] if fused else []


def _same_dilation(op):
    h, w = getattr(op.options, "dilationHFactor", 1), getattr(op.options, "dilationWFactor", 1)
    return [] if h == w else [f"dilation differs in y ({h}) and x ({w})"]


def _concatenation(op):
    problems = _no_fused_activation(op)
    constants = [t for t in op.inputs if t.is_constant]
    if constants and len(op.inputs) != 2:
        problems.append("a constant input is allowed only with exactly 2 inputs (zero padding)")
    return problems


def _fully_connected(op):
    problems = []
    if getattr(op.options, "weightsFormat", 0) != 0:
        problems.append("weights not in the default format")
    if op.outputs and len(_non_unit_dims(op.outputs[0].shape)) > 1:
        problems.append(f"output {op.outputs[0].shape} is not one-dimensional")
    return problems


def _reduction(z_multiple_of_4):
    def check(op):
        axes = _const_axis(op, 1)
        if axes is None:
            return ["reduction axes are not a compile-time constant"]
        rank = len(op.inputs[0].shape)
        axes = _axes_normalised(axes, rank)
        problems = []
        if 0 in axes:
            problems.append("reduces over the batch dimension")
        if z_multiple_of_4 and rank - 1 in axes and op.inputs[0].shape[-1] % 4:
            problems.append(f"z-reduction over {op.inputs[0].shape[-1]} channels (must be a multiple of 4)")
        return problems
    return check


def _pad(op):
    paddings = op.inputs[1].value if len(op.inputs) > 1 else None
    if paddings is None:
        return ["paddings are not a compile-time constant"]
    return ["pads the batch dimension"] if np.any(np.asarray(paddings)[0]) else []


def _axis_not_batch(what, position=None):
    def check(op):
        if position is None:
            axis = getattr(op.options, "axis", 0)
        else:
            values = _const_axis(op, position)
            if values is None:
                return [f"{what} axis is not a compile-time constant"]
            axis = values[0]
        rank = len(op.inputs[-1].shape) if what == "split" else len(op.inputs[0].shape) + 1
        return [f"{what} along the batch dimension"] if axis % rank == 0 else []
    return check


def _softmax(op):
    dims = _non_unit_dims(op.inputs[0].shape)
    problems = []
    if len(dims) > 1:
        problems.append(f"input {op.inputs[0].shape} is not one-dimensional")
    if int(np.prod(op.inputs[0].shape)) > 16000:
        problems.append(f"{int(np.prod(op.inputs[0].shape))} elements (max 16000)")
    return problems


def _resize(op):
    shape = op.inputs[0].shape
    return [] if len(shape) == 4 and shape[0] == 1 else [f"input {shape} is not 3-dimensional (batch 1)"]


def _strided_slice(op):
    strides = op.inputs[3].value if len(op.inputs) > 3 else None
    problems = []
    if strides is None or np.any(np.asarray(strides) != 1):
        problems.append("strides other than 1")
    if getattr(op.options, "ellipsisMask", 0) or getattr(op.options, "newAxisMask", 0):
        problems.append("ellipsis or new-axis mask set")
    return problems


def _prelu(op):
    alpha = op.inputs[1].shape if len(op.inputs) > 1 else ()
    return [] if len(_non_unit_dims(alpha)) <= 1 else [f"alpha {alpha} is not 1-dimensional"]


def _none(op):
    return []


# Op -> its documented limitations (coral.ai "Supported operations", compiler 16).
_OP_RULES = {
    "ADD": _none, "SUB": _none, "MUL": _none, "MAXIMUM": _none, "MINIMUM": _none,
    "LOGISTIC": _none, "RELU": _none, "RELU6": _none, "RELU_N1_TO_1": _none, "TANH": _none,
    "L2_NORMALIZATION": _none, "RESHAPE": _none, "SLICE": _none, "SPACE_TO_DEPTH": _none,
    "EXPAND_DIMS": _none, "SQUEEZE": _none, "QUANTIZE": _none, "RSQRT": _none,
    "SQUARED_DIFFERENCE": _none, "TRANSPOSE": _none, "TRANSPOSE_CONV": _none,
    "LSTM": _none, "UNIDIRECTIONAL_SEQUENCE_LSTM": _none,
    "AVERAGE_POOL_2D": _no_fused_activation, "MAX_POOL_2D": _no_fused_activation,
    "CONCATENATION": _concatenation, "CONV_2D": _same_dilation,
    "DEPTHWISE_CONV_2D": _same_dilation, "FULLY_CONNECTED": _fully_connected,
    "MEAN": _reduction(z_multiple_of_4=True), "SUM": _reduction(False),
    "REDUCE_MAX": _reduction(False), "REDUCE_MIN": _reduction(False), "PAD": _pad,
    "PACK": _axis_not_batch("packing"), "SPLIT": _axis_not_batch("split", position=0),
    "SOFTMAX": _softmax, "RESIZE_BILINEAR": _resize, "RESIZE_NEAREST_NEIGHBOR": _resize,
    "STRIDED_SLICE": _strided_slice, "PRELU": _prelu,
}


def _tensor_problems(op):
    """int32 is allowed for constants only (biases, shapes, axes, paddings, slice bounds); the
    rank rule applies to activations (conv filters are 4-D OHWI constants)."""
    problems = []
    for tensor in op.inputs + op.outputs:
        if tensor.dtype not in ("int8", "uint8") and not (tensor.dtype == "int32" and tensor.is_constant):
            problems.append(f"tensor {tensor.name!r} is {tensor.dtype} (needs int8/uint8)")
        if any(d < 0 for d in tensor.shape_signature):
            problems.append(f"tensor {tensor.name!r} has a dynamic shape {tensor.shape_signature}")
        if not tensor.is_constant and len(tensor.shape) > 3 and any(d > 1 for d in tensor.shape[:-3]):
            problems.append(f"tensor {tensor.name!r} {tensor.shape}: beyond 3 dims only the innermost 3 may exceed 1")
    return problems


def check_op(op):
    """The reasons ``op`` cannot be mapped to the Edge TPU (empty if it can)."""
    if op.name not in _OP_RULES:
        return [f"{op.name} is not in the Edge TPU supported-operations table"]
    problems = _OP_RULES[op.name](op)
    problems += _tensor_problems(op)
    return problems


def check(tflite_content):
    """Edge TPU readiness of a .tflite: per-op table, first CPU op, share mappable."""
    graph = read_graph(tflite_content)
    rows, first_cpu = [], None
    for op in graph.ops:
        problems = check_op(op)
        if problems and first_cpu is None:
            first_cpu = {"index": op.index, "op": op.name, "problems": problems}
        rows.append({
            "index": op.index, "op": op.name, "version": op.version, "supported": not problems,
            "runs_on": "cpu" if first_cpu is not None else "edgetpu", "problems": problems,
        })
    model_problems = []
    unparsable = [(op, problem) for op in graph.ops for problem in [parse_problem(op)] if problem]
    if unparsable:
        # The compiler stops at parsing: no op of the model reaches the Edge TPU.
        op, problem = unparsable[0]
        model_problems.append(f"edgetpu_compiler {COMPILER_VERSION} cannot parse the model: "
                              + "; ".join(p for _, p in unparsable))
        first_cpu = {"index": op.index, "op": op.name, "problems": [problem]}
        too_new = {op.index: problem for op, problem in unparsable}
        for row in rows:
            row["runs_on"] = "cpu"
            if row["index"] in too_new:
                row["problems"].append(too_new[row["index"]])
                row["supported"] = False
    if graph.num_subgraphs > 1:
        model_problems.append(f"{graph.num_subgraphs} subgraphs (the compiler maps only one)")
    mapped = sum(row["runs_on"] == "edgetpu" for row in rows)
    return {
        "compiler_rules": f"edgetpu_compiler {COMPILER_VERSION} (static check)",
        "ops": rows,
        "total_ops": len(rows),
        "mapped_ops": mapped,
        "mapped_share": mapped / len(rows) if rows else 0.0,
        "first_cpu_op": first_cpu,
        "model_problems": model_problems,
        "ready": first_cpu is None and not model_problems,
        "compiler": run_compiler(tflite_content),
    }


def run_compiler(tflite_content):
    """Runs ``edgetpu_compiler`` when it is on PATH; returns its log, or None."""
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(tflite_content)
        proc = subprocess.run([compiler, "-s", "-o", tmp, path], capture_output=True, text=True)
        log_path = os.path.join(tmp, "model_edgetpu.log")
        log = open(log_path).read() if os.path.exists(log_path) else ""
    return {"path": compiler, "returncode": proc.returncode, "stdout": proc.stdout + proc.stderr, "log": log}


def format_table(report):
    """The per-op table as text, for the CLI."""
    lines = [f"{'#':>4}  {'op':<26}{'v':>3}  {'runs on':<8} problems"]
    for row in report["ops"]:
        lines.append(f"{row['index']:>4}  {row['op']:<26}{row['version']:>3}  {row['runs_on']:<8} "
                     + "; ".join(row["problems"]))
    first = report["first_cpu_op"]
    lines.append(
        f"Edge TPU: {report['mapped_ops']}/{report['total_ops']} ops mappable "
        f"({report['mapped_share']:.0%}); "
        + (f"falls back to CPU at op {first['index']} ({first['op']})" if first else "whole graph maps")
    )
    return "\n".join(lines)
