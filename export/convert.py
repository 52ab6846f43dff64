"""Keras model -> TFLite flatbuffer, and a reader for the flatbuffer it produces.

The graph is traced at batch 1 with every other dimension fixed (from the data when
the model leaves it open), so recurrent and variable-length models convert to builtin
ops with static shapes (DESIGN.md section 5).
"""
import dataclasses
import re

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8", "qat")
IO_DTYPES = ("int8", "uint8")

_BUILTIN_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
_TENSOR_TYPE_NAMES = {
    value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")
}


class ExportError(ValueError):
    """A problem the user can fix; the message names the fix."""


def input_signature(model, example_inputs=None):
    """Batch-1 TensorSpecs for ``model.inputs``; open dimensions come from ``example_inputs``."""
    specs = []
    for index, tensor in enumerate(model.inputs):
        shape = [1, *tensor.shape[1:]]
        for axis in range(1, len(shape)):
            if shape[axis] is None:
                if example_inputs is None:
                    raise ExportError(
                        f"Input {index} of {model.name!r} has an open dimension (shape "
                        f"{tuple(tensor.shape)}) and no data is available to fix it; TFLite export "
                        f"needs static shapes. Export with --model_dir of a trained model (its data "
                        f"fixes the length) or give the model a static input_shape. "
                        f"Received: shape={tuple(tensor.shape)}"
                    )
                shape[axis] = int(np.shape(example_inputs[index])[axis])
        # The index prefix keeps the Keras input order in the .tflite signature (sorted by name).
        name = f"in{index:02d}_" + re.sub(r"\W", "_", tensor.name.split(":")[0])
        specs.append(tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=name))
    return specs


def _concrete_function(model, signature):
    single = len(signature) == 1

    @tf.function(input_signature=signature)
    def serve(*inputs):
        return model(inputs[0] if single else list(inputs), training=False)

    return serve.get_concrete_function()


def _captured_variables(function):
    """A ``tf.Module`` holding the variables ``function`` reads: the converter's trackable object.

    The converter saves the function with this object as a SavedModel and freezes every
    variable it finds there into a constant. A Keras 3 model is no such object: its
    ``keras.Variable``s save their values but not as the ``tf.Variable``s the function
    captures, so the variables stayed VAR_HANDLE / READ_VARIABLE ops without initial
    values and the .tflite computed garbage. Tracking the captured ``tf.Variable``s
    themselves works in both runtimes and skips tracing every layer's call function
    into the SavedModel (float conversion of a tiny QAT DenseNet under tf_keras: 15 s
    instead of 90 s on a loaded CPU).
    """
    module = tf.Module()
    module.captured_variables = list(function.variables)
    return module


def convert(model, quantization, signature, representative_inputs=None, io_dtype="int8",
            allow_select_tf_ops=False):
    """Converts ``model`` traced at ``signature`` to TFLite bytes.

    Args:
        model: a Keras model (Keras 3 or tf_keras); for ``qat`` already quantize-wrapped.
        quantization: one of ``QUANTIZATIONS``. ``int8`` is full-integer PTQ calibrated on
            ``representative_inputs``; ``qat`` takes its ranges from the fake-quant nodes
            and calibrates any tensor without one on ``representative_inputs``.
        signature: from ``input_signature``.
        representative_inputs: iterable of per-example input lists (batch 1), needed for
            ``int8`` and ``qat``.
        io_dtype: ``int8`` or ``uint8`` (Coral) for float inputs and outputs of integer
            models. Integer inputs (token ids) stay int32.
        allow_select_tf_ops: let TF ops without a builtin kernel through as Flex ops.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"`quantization` must be one of {QUANTIZATIONS}. Received: {quantization!r}")
    if io_dtype not in IO_DTYPES:
        raise ExportError(f"`io_dtype` must be one of {IO_DTYPES}. Received: {io_dtype!r}")
    function = _concrete_function(model, signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], _captured_variables(function))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization in ("int8", "qat"):
        if representative_inputs is None:
            raise ExportError(f"{quantization} export needs representative inputs from the model's data.")
        # Keyed by input name: a plain list is matched to the graph's inputs in an order
        # that need not be the Keras order.
        samples = [{spec.name: np.asarray(x) for spec, x in zip(signature, sample)}
                   for sample in representative_inputs]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.as_dtype(io_dtype)
        converter.inference_output_type = tf.as_dtype(io_dtype)
    if allow_select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    try:
        return converter.convert()
    except Exception as err:  # the converter raises several unrelated types
        raise ExportError(explain_conversion_error(err, quantization, allow_select_tf_ops)) from err


def explain_conversion_error(err, quantization, allow_select_tf_ops):
    """A message naming the offending op(s) and the flag or mode that gets past them."""
    text = str(err)
    tf_ops = sorted(set(re.findall(r"\btf\.([A-Z]\w+)", text)))
    if tf_ops and not allow_select_tf_ops:
        return (
            f"TFLite conversion needs TensorFlow ops without a builtin kernel: {', '.join(tf_ops)}. "
            f"Either re-export with --allow_select_tf_ops (the .tflite then needs the Flex delegate "
            f"on the device), or use ModelInfo.inference_model / static shapes so the graph lowers to "
            f"builtin ops. Received: quantization={quantization!r}"
        )
    unquantizable = sorted(set(re.findall(r"op: '?([A-Z_0-9]+)'?", text)))
    if unquantizable and quantization in ("int8", "qat"):
        return (
            f"Full-integer quantization is not supported for op(s) {', '.join(unquantizable)}. Use "
            f"--quantization=dynamic or float16 for this model. Received: quantization={quantization!r}"
        )
    first_lines = "\n".join(text.strip().splitlines()[-15:])
    return f"TFLite conversion failed ({type(err).__name__}). Converter said:\n{first_lines}"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple
    shape_signature: tuple
    is_constant: bool
    scale: tuple = ()
    zero_point: tuple = ()
    value: object = None  # small integer constants (shapes, axes, paddings) as an ndarray


@dataclasses.dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    version: int
    inputs: tuple
    outputs: tuple
    options: object = None

    @property
    def is_flex(self):
        return self.name.startswith("Flex")


@dataclasses.dataclass(frozen=True)
class Graph:
    """The main subgraph of a .tflite file, in execution order."""

    ops: tuple
    inputs: tuple
    outputs: tuple
    tensors: tuple
    num_subgraphs: int


def read_graph(tflite_bytes):
    """Parses a .tflite flatbuffer with the schema shipped in ai_edge_litert."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    subgraph = model.subgraphs[0]

    def tensor_info(index):
        t = subgraph.tensors[index]
        buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        constant = buffer is not None and (
            (buffer.data is not None and len(buffer.data) > 0) or bool(getattr(buffer, "size", 0))
        )
        q = t.quantization
        scale = tuple(np.ravel(q.scale).tolist()) if q is not None and q.scale is not None else ()
        zero = tuple(np.ravel(q.zeroPoint).tolist()) if q is not None and q.zeroPoint is not None else ()
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        dtype = _TENSOR_TYPE_NAMES.get(t.type, str(t.type))
        value = None
        if constant and dtype in ("int32", "int64") and buffer.data is not None and len(buffer.data):
            value = np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype).reshape(shape)
        return TensorInfo(index, name, dtype, shape, signature, constant, scale, zero, value)

    tensors = tuple(tensor_info(i) for i in range(len(subgraph.tensors)))
    ops = []
    for index, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            name = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        else:
            name = _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        ops.append(OpInfo(
            index=index, name=name, version=int(code.version),
            inputs=tuple(tensors[i] for i in (op.inputs if op.inputs is not None else ()) if i >= 0),
            outputs=tuple(tensors[i] for i in (op.outputs if op.outputs is not None else ())),
            options=op.builtinOptions,
        ))
    return Graph(
        ops=tuple(ops),
        inputs=tuple(tensors[i] for i in subgraph.inputs),
        outputs=tuple(tensors[i] for i in subgraph.outputs),
        tensors=tensors,
        num_subgraphs=len(model.subgraphs),
    )
