"""QRNN encoder-decoder with attention (Bradbury et al., 2016, arXiv:1611.01576, section 2.1).

Encoder: stacked QRNN layers (keras_zoo.layers.qrnn) over the source, read reversed
(section 3.3: "inputs were supplied to the encoder reversed"; the real tokens are
reversed, padding stays at the end). ``h~_T^l`` is layer l's output at the last real step.

Decoder: stacked QRNN layers whose gate pre-activations are conditioned on the
encoder: every timestep of decoder layer l adds a linear projection of the matching
encoder layer's last state (``ConditionedQRNN``)::

    Z^l = tanh(W_z^l * X^l + V_z^l h~_T^l),  F^l = sigma(W_f^l * X^l + V_f^l h~_T^l),
    O^l = sigma(W_o^l * X^l + V_o^l h~_T^l)

with fo-pooling. The last layer's un-gated pooled state ``c_t`` attends over the last
encoder layer's outputs and the output gate is applied after the attention::

    alpha_st = softmax_s(c_t . h~_s^L),  k_t = sum_s alpha_st h~_s^L,
    h_t^L = o_t * (W_k k_t + W_c c_t)

then a softmax layer over the target vocabulary. Nothing in the decoder is recurrent
except the elementwise pooling, so teacher forcing runs every step at once.

Graphs, sharing layer names as seq2seq.py:

- ``mode="train"``: ``[source_ids (B, S), target_in_ids (B, T)] -> logits (B, T, V)``.
- ``mode="encoder"``: ``source_ids -> [memory, memory_mask, h~_T^1, ..., h~_T^L]``.
- ``mode="step"``: ``[token (B, 1), memory, memory_mask, h~_T^1..L, *states] ->
  [logits (B, V), *new_states, attention (B, S)]`` with the states ``c, previous_inputs``
  of every decoder layer (as ``QRNN``'s states; zeros at the start).

Section 3.3 sizes (IWSLT De-En, characters): 4 layers of 320 units, encoder filter
width 6 in the first layer and 2 above. Departures: the paper's encoder convolutions
are not masked (they see later source characters); ours are causal, as the QRNN layer
is. The decoder filter width (2) and the embedding width (= units) are our choices;
the paper does not state them here. The vocabulary and lengths of ``qrnn_seq2seq`` are
ours (the paper's character vocabulary size is not given).

Export: ``inference_model`` is the single-step graph, and ``encoder_model`` the encoder at
its fixed source length; both convert to TFLite builtins without a WHILE loop (tested: the
QRNN pooling is unrolled at a static length).
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.decoding import StepGraphDecoder
from keras_zoo.layers.attention import LuongAttention, PaddingMask
from keras_zoo.layers.qrnn import QRNN, qrnn_pooling
from keras_zoo.models.seq2seq import END_ID, PAD_ID, START_ID, copy_weights_by_layer_name
from keras_zoo.registry import InputSpec, register_family

MODES = ("train", "encoder", "step")


@serializable
class ReverseRealTokens(keras.layers.Layer):
    """Reverses the non-padding prefix of every row of token ids; padding stays at the end."""

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, ids):
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, self.pad_id), tf.int32), axis=1)
        return tf.reverse_sequence(ids, lengths, seq_axis=1, batch_axis=0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@serializable
class LastRealStep(keras.layers.Layer):
    """``[sequence (B, S, d), mask (B, S)] -> sequence[b, length_b - 1]`` (B, d), where
    ``length_b`` counts the mask's ones (padding is at the end). A one-hot contraction,
    not a gather, so that it lowers to TFLite builtins."""

    def call(self, inputs):
        sequence, mask = inputs
        last = tf.maximum(tf.cast(tf.reduce_sum(mask, axis=1), tf.int32) - 1, 0)
        pick = tf.one_hot(last, tf.shape(sequence)[1], dtype=sequence.dtype)
        return tf.einsum("bs,bsd->bd", pick, sequence)


@serializable
class ConditionedQRNN(keras.layers.Layer):
    """A fo-pooling QRNN layer whose gate pre-activations get a per-sequence vector added at
    every timestep (arXiv:1611.01576, section 2.1): ``Z = tanh(W_z * X + V_z s)``, ``F =
    sigma(W_f * X + V_f s)``, ``O = sigma(W_o * X + V_o s)``, ``c_t = f_t c_{t-1} + (1 - f_t)
    z_t``, ``h_t = o_t c_t``.

    ``kernel`` (window * input_dim, 3 units) and ``bias`` (3 units,) are laid out as in
    ``QRNN`` (taps oldest first; columns Z, F, O); ``condition_kernel`` (condition_dim,
    3 units) holds V_z, V_f, V_o. The pooling is ``keras_zoo.layers.qrnn.qrnn_pooling``.

    Call on ``[inputs (B, T, d), condition (B, condition_dim)]``, or with the states
    ``[inputs, condition, c (B, units), previous_inputs (B, window - 1, d)]`` (no
    ``previous_inputs`` when ``window == 1``), as ``QRNN``'s states. Returns ``h`` (B, T,
    units), or with ``split_output_gate`` the pair ``[c, o]`` (the pooled state before the
    output gate, and the gate), then with ``return_state`` the final states.

    Args:
        units: hidden units.
        window: causal filter width.
        split_output_gate: return ``[c, o]`` instead of ``o * c`` (the paper's attention
            layer applies ``o`` after attending with ``c``).
        return_state: also return ``[c_T, previous_inputs]``.
    """

    def __init__(self, units, window=2, split_output_gate=False, return_state=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` must be a positive integer. Received: window={window!r}")
        self.units, self.window = units, window
        self.split_output_gate, self.return_state = split_output_gate, return_state

    def build(self, input_shape):
        self.input_dim, condition_dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.window * self.input_dim, 3 * self.units),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(3 * self.units,), initializer="zeros")
        self.condition_kernel = self.add_weight(name="condition_kernel", shape=(condition_dim, 3 * self.units),
                                                initializer="glorot_uniform")
        self.built = True

    def call(self, inputs):
        x, condition, *states = inputs
        # A static length keeps qrnn_pooling on its unrolled path (single steps lower to builtins).
        batch, time = tf.shape(x)[0], x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
        expected = 1 if self.window == 1 else 2
        if states and len(states) != expected:
            raise ValueError(f"A ConditionedQRNN with window={self.window} takes {expected} state(s). "
                             f"Received: {len(states)} tensors.")
        c0 = states[0] if states else tf.zeros([batch, self.units], x.dtype)
        previous = None
        if self.window > 1:
            previous = states[1] if states else tf.zeros([batch, self.window - 1, self.input_dim], x.dtype)
            extended = tf.concat([previous, x], axis=1)
            windows = tf.concat([extended[:, tap:tap + time] for tap in range(self.window)], axis=-1)
            previous = extended[:, 1 - self.window:]
        else:
            windows = x
        flat = tf.reshape(windows, [-1, self.window * self.input_dim])
        convolved = tf.reshape(tf.matmul(flat, self.kernel), [batch, time, 3 * self.units])
        pre = convolved + (tf.matmul(condition, self.condition_kernel) + self.bias)[:, tf.newaxis]
        # Z is stored as sigmoid(2a) (tanh(a) = 2 sigmoid(2a) - 1), as qrnn_pooling expects.
        scale = tf.constant(np.repeat([2.0, 1.0, 1.0], self.units), pre.dtype)
        gates = tf.sigmoid(pre * scale)
        if self.split_output_gate:
            c, c_last = qrnn_pooling(gates[..., :2 * self.units], c0, None, "f")
            outputs = [c, gates[..., 2 * self.units:]]
        else:
            h, c_last = qrnn_pooling(gates, c0, None, "fo")
            outputs = [h]
        if self.return_state:
            outputs += [c_last] + ([previous] if self.window > 1 else [])
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        return {**super().get_config(), "units": self.units, "window": self.window,
                "split_output_gate": self.split_output_gate, "return_state": self.return_state}


def QRNNSeq2Seq(source_vocab_size=256, target_vocab_size=256, source_len=100, target_len=100, *,
                num_layers=4, units=320, embedding_dim=320, encoder_windows=(6, 2), decoder_window=2,
                mode="train", name="qrnn_seq2seq"):
    """QRNN encoder-decoder with attention (arXiv:1611.01576, section 2.1).

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (ids 0/1/2 are
            padding/start/end).
        source_len, target_len: fixed input lengths.
        num_layers: QRNN layers of the encoder and of the decoder (decoder layer l is
            conditioned on encoder layer l).
        units: width of every QRNN layer.
        embedding_dim: source and target embedding width.
        encoder_windows: (first layer, other layers) filter widths of the encoder.
        decoder_window: filter width of the decoder layers.
        mode: one of ``MODES`` (see the module docstring).
        name: model name.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    for key, value in dict(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                           num_layers=num_layers, units=units, embedding_dim=embedding_dim,
                           decoder_window=decoder_window, source_len=source_len,
                           target_len=target_len).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
    if len(tuple(encoder_windows)) != 2:
        raise ValueError("`encoder_windows` is (first layer width, other layers width). "
                         f"Received: encoder_windows={encoder_windows!r}")

    if mode == "step":
        token = keras.Input(shape=(1,), dtype="int32", name="token")
        memory = keras.Input(shape=(source_len, units), name="memory")
        memory_mask = keras.Input(shape=(source_len,), name="memory_mask")
        summaries = [keras.Input(shape=(units,), name=f"summary_{k}") for k in range(1, num_layers + 1)]
        states = []
        for k in range(1, num_layers + 1):
            states.append(keras.Input(shape=(units,), name=f"state_{k}_c"))
            if decoder_window > 1:
                width = embedding_dim if k == 1 else units
                states.append(keras.Input(shape=(decoder_window - 1, width), name=f"state_{k}_inputs"))
        logits, new_states, alignment = _decode(token, memory, memory_mask, summaries, states, num_layers,
                                                units, embedding_dim, decoder_window, target_vocab_size, name)
        logits = keras.layers.Reshape((target_vocab_size,), name=f"{name}_step_logits")(logits)
        alignment = keras.layers.Reshape((source_len,), name=f"{name}_step_attention")(alignment)
        return keras.Model([token, memory, memory_mask, *summaries, *states],
                           [logits, *new_states, alignment], name=f"{name}_step")

    source = keras.Input(shape=(source_len,), dtype="int32", name="source_ids")
    memory, memory_mask, summaries = _encode(source, num_layers, units, embedding_dim,
                                             tuple(encoder_windows), source_vocab_size, name)
    if mode == "encoder":
        return keras.Model(source, [memory, memory_mask, *summaries], name=f"{name}_encoder")
    target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
    logits = _decode(target_in, memory, memory_mask, summaries, None, num_layers, units, embedding_dim,
                     decoder_window, target_vocab_size, name)
    return keras.Model([source, target_in], logits, name=name)


def _encode(source, num_layers, units, embedding_dim, windows, vocab_size, name):
    memory_mask = PaddingMask(PAD_ID, name=f"{name}_source_mask")(source)
    reversed_source = ReverseRealTokens(PAD_ID, name=f"{name}_reverse_source")(source)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_source_embedding")(reversed_source)
    summaries = []
    for index in range(1, num_layers + 1):
        # Causal and padded at the end: real steps never read padding, which attention masks.
        x = QRNN(units, window=windows[0] if index == 1 else windows[1], pooling="fo", return_sequences=True,
                 name=f"{name}_encoder_{index}_qrnn")(x)
        summaries.append(LastRealStep(name=f"{name}_encoder_{index}_last")([x, memory_mask]))
    return x, memory_mask, summaries


def _decode(target_in, memory, memory_mask, summaries, states, num_layers, units, embedding_dim, window,
            vocab_size, name):
    """Logits (and, with ``states``, the new states and the attention weights)."""
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_target_embedding")(target_in)
    per_layer = 1 if window == 1 else 2
    new_states = []
    for index in range(1, num_layers + 1):
        last = index == num_layers
        layer = ConditionedQRNN(units, window, split_output_gate=last, return_state=states is not None,
                                name=f"{name}_decoder_{index}_qrnn")
        layer_states = [] if states is None else states[(index - 1) * per_layer:index * per_layer]
        outputs = layer([x, summaries[index - 1], *layer_states])
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        if states is not None:
            new_states += list(outputs[-per_layer:])
            outputs = outputs[:-per_layer]
        if not last:
            x = outputs[0]
    cell, output_gate = outputs
    context, alignment = LuongAttention("dot", return_attention_scores=True,
                                        name=f"{name}_attention")([cell, memory, memory_mask])
    combined = keras.layers.Dense(units, use_bias=False, name=f"{name}_attention_output")(
        keras.layers.Concatenate(name=f"{name}_attention_concat")([context, cell]))
    h = keras.layers.Multiply(name=f"{name}_output_gate")([output_gate, combined])
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(h)
    if states is None:
        return logits
    return logits, new_states, alignment


def qrnn_seq2seq_params(source_vocab_size, target_vocab_size, num_layers, units, embedding_dim,
                        encoder_windows=(6, 2), decoder_window=2):
    """Parameter count of ``QRNNSeq2Seq`` by hand."""

    def qrnn(window, inputs):
        return window * inputs * 3 * units + 3 * units

    first, rest = encoder_windows
    encoder = qrnn(first, embedding_dim) + (num_layers - 1) * qrnn(rest, units)
    # Decoder layers add V (units x 3 units) for the encoder summary.
    decoder = (qrnn(decoder_window, embedding_dim) + (num_layers - 1) * qrnn(decoder_window, units)
               + num_layers * units * 3 * units)
    attention = 2 * units * units  # W_k, W_c
    embeddings = (source_vocab_size + target_vocab_size) * embedding_dim
    return embeddings + encoder + decoder + attention + units * target_vocab_size + target_vocab_size


def encoder_model(model, config):
    """The encoder graph (fixed source length) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, QRNNSeq2Seq(**{**config, "mode": "encoder"}))


def step_model(model, config):
    """The single-step decoder graph (explicit states, attention memory, encoder summaries)."""
    return copy_weights_by_layer_name(model, QRNNSeq2Seq(**{**config, "mode": "step"}))


class QRNNTranslator(StepGraphDecoder):
    """Greedy and beam search with a trained ``qrnn_seq2seq`` model.

    Args:
        model: the teacher-forcing model.
        config: the builder kwargs it was built with.
    """

    def __init__(self, model, config):
        self.num_layers = config.get("num_layers", 4)
        super().__init__(encoder_model(model, config), step_model(model, config),
                         num_context=2 + self.num_layers, start_id=START_ID, end_id=END_ID, mask_index=1)

    def initial_state(self, source_ids):
        context = super().initial_state(source_ids)
        batch = len(context[0])
        zeros = [np.zeros((batch, *t.shape[1:]), np.float32) for t in self.step.inputs[len(context) + 1:]]
        return context + zeros


def _inputs(config):
    return [InputSpec((config["source_len"],), "int32", maxval=config["source_vocab_size"]),
            InputSpec((config["target_len"],), "int32", maxval=config["target_vocab_size"])]


register_family(
    QRNNSeq2Seq,
    {
        # Section 3.3: 4 layers of 320 units; encoder filter widths 6 (first layer) and 2.
        "qrnn_seq2seq": dict(
            config=dict(source_vocab_size=256, target_vocab_size=256, source_len=100, target_len=100,
                        num_layers=4, units=320, embedding_dim=320, encoder_windows=(6, 2), decoder_window=2),
            tiny=dict(source_vocab_size=30, target_vocab_size=30, source_len=7, target_len=6, num_layers=2,
                      units=8, embedding_dim=6, encoder_windows=(3, 2)),
        ),
    },
    task="seq2seq",
    paper="1611.01576",
    input_spec=_inputs,
    default_dataset="docstrings_reverse",
    inference_model=step_model,
    export={"tflite": True,
            "edgetpu": "two graphs (encoder at fixed length, single decoder step with explicit "
                       "state); the attention softmax/einsum and the pooling's elementwise ops are "
                       "not verified against Edge TPU compiler 16 (no compiler here)"},
)
