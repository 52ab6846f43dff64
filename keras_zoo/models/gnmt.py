"""GNMT: Google's Neural Machine Translation system (Wu et al., 2016, arXiv:1609.08144).

Section 3 and figure 1: a stacked LSTM encoder whose bottom layer is bidirectional
(forward and backward outputs concatenated), a stacked LSTM decoder, and residual
connections ``x^{i+1} = LSTM_i(x^i) + x^i`` from the third layer up in both stacks. The
attention is a one-hidden-layer feed-forward network (additive, ``BahdanauAttention``)
queried by the *bottom* decoder layer's output of the previous step, over the *top*
encoder layer's outputs; its context ``a_i`` is fed to every decoder layer (concatenated
with that layer's input). The softmax reads the top decoder layer. Section 8.1 sizes:
8 encoder and 8 decoder layers of 1024 LSTM units, a 1024-unit attention network, and a
shared 32k wordpiece vocabulary.

Graphs, sharing layer names (weights move between them by name), as seq2seq.py:

- ``mode="train"``: ``[source_ids (B, S), target_in_ids (B, T)] -> logits (B, T, V)``.
- ``mode="encoder"``: ``source_ids -> [memory, memory_mask, *decoder_initial_states]``.
- ``mode="step"``: ``[token (B, 1), memory, memory_mask, *states] ->
  [logits (B, V), *new_states, attention (B, S)]``; the states are ``(h, c)`` of every
  decoder layer, bottom first. ``GNMTTranslator`` drives the last two with
  keras_zoo.decoding (greedy; beam search with GNMT's length and coverage penalties).

Not stated in the paper and taken from the reference implementation (tensorflow/nmt,
``gnmt_model.py``): decoder layer 1 starts from the final state of the backward encoder
LSTM, decoder layer k >= 2 from the final state of encoder layer k (so both stacks have
``num_layers`` layers). Departures: source and target embeddings are separate matrices
over the shared vocabulary (the paper does not say they are tied); the model-parallel
placement, quantized inference and RL refinement (sections 5, 6, 8.3) are not modelled.
Token id 0 is padding: the encoder masks it and attention never looks at it.

Export: ``inference_model`` is the single-step graph, which converts to TFLite builtins
(tested). The encoder graph converts to builtins too at batch 1 and its fixed source length
(export.convert's signature; tested in float32): the masked Keras LSTMs become the builtin WHILE
op. Only a dynamic batch (``TFLiteConverter.from_keras_model``) leaves a TensorList that needs
SELECT_TF_OPS.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.decoding import StepGraphDecoder
from keras_zoo.layers.attention import AttentiveDecoder, BahdanauAttention, PaddingMask
from keras_zoo.models.rnn import recurrent_layer
from keras_zoo.models.seq2seq import END_ID, PAD_ID, START_ID, copy_weights_by_layer_name
from keras_zoo.registry import InputSpec, register_family

MODES = ("train", "encoder", "step")


@serializable
class GNMTDecoder(keras.layers.Layer):
    """GNMT's stacked LSTM decoder with bottom-layer attention (arXiv:1609.08144, section 3).

    At target step i, with ``h^1_{i-1}`` the bottom layer's previous output::

        a_i = attend(h^1_{i-1}, memory)                       (additive attention)
        x^1 = y_{i-1};  x^{l+1} = LSTM_l([x^l; a_i]) (+ x^l for l >= residual_start)

    and the output is ``x^{L+1}``, the top layer's (residual) output.

    Call on ``[inputs, memory, memory_mask]`` or ``[inputs, memory, memory_mask,
    *initial_states]`` with ``inputs`` the embedded previous tokens (B, T, d) and the
    states ``h_1, c_1, ..., h_L, c_L``. Returns the outputs (B, T, units), then with
    ``return_state`` the final states, then with ``return_attention_scores`` the
    attention weights (B, T, S).

    Args:
        units: LSTM width of every layer.
        num_layers: decoder depth L.
        attention_units: hidden width of the attention network.
        residual_start: first layer (1-based) with a residual connection.
        return_state, return_attention_scores: see above.
        unroll: a Python loop over a static number of steps (single-step graphs).
    """

    def __init__(self, units, num_layers, attention_units=None, residual_start=3, return_state=False,
                 return_attention_scores=False, unroll=False, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.attention_units = int(attention_units or units)
        self.residual_start = int(residual_start)
        self.return_state = return_state
        self.return_attention_scores = return_attention_scores
        self.unroll = unroll
        # The encoder's padding mask rides on `memory`; attention takes the explicit one.
        self.supports_masking = True
        self.cells = [keras.layers.LSTMCell(self.units, name=f"lstm_{k}")
                      for k in range(1, self.num_layers + 1)]
        self.attention = BahdanauAttention(self.attention_units, return_attention_scores=True,
                                           name="attention")

    @property
    def state_sizes(self):
        return [self.units] * (2 * self.num_layers)

    def build(self, input_shape):
        input_dim, memory_dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        self.attention.build([(None, self.units), (None, None, memory_dim)])
        for index, cell in enumerate(self.cells):
            cell.build((None, (input_dim if index == 0 else self.units) + memory_dim))
        self.built = True

    def _step(self, x, states, memory, memory_mask):
        context, weights = self.attention([states[0], memory, memory_mask])
        new_states = []
        for index, cell in enumerate(self.cells):
            h, (h, c) = cell(tf.concat([x, context], -1), states[2 * index:2 * index + 2])
            x = h + x if index + 1 >= self.residual_start else h
            new_states += [h, c]
        return x, new_states, weights

    # The time loop is AttentiveDecoder's (it only calls `_step`).
    _scan = AttentiveDecoder._scan

    def call(self, inputs):
        inputs, memory, memory_mask, *states = inputs
        # A new tensor without the encoder's Keras mask (Keras 3 would hand it to the attention).
        memory = tf.identity(memory)
        if not states:
            states = [tf.zeros((tf.shape(inputs)[0], self.units), inputs.dtype)] * len(self.state_sizes)
        elif len(states) != len(self.state_sizes):
            raise ValueError(f"This decoder takes {len(self.state_sizes)} initial states (h, c of each "
                             f"of its {self.num_layers} layers). Received: {len(states)} tensors.")
        if self.unroll:
            outputs, alignments = [], []
            for t in range(inputs.shape[1]):
                output, states, weights = self._step(inputs[:, t], states, memory, memory_mask)
                outputs.append(output)
                alignments.append(weights)
            outputs, alignments = tf.stack(outputs, 1), tf.stack(alignments, 1)
        else:
            outputs, alignments, states = self._scan(inputs, list(states), memory, memory_mask)
        result = [outputs] + (list(states) if self.return_state else [])
        result += [alignments] if self.return_attention_scores else []
        return result[0] if len(result) == 1 else result

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_layers": self.num_layers,
                "attention_units": self.attention_units, "residual_start": self.residual_start,
                "return_state": self.return_state, "return_attention_scores": self.return_attention_scores,
                "unroll": self.unroll}


def GNMT(source_vocab_size=32000, target_vocab_size=32000, source_len=50, target_len=50, *,
         num_layers=8, units=1024, embedding_dim=1024, attention_units=1024, residual_start=3,
         dropout=0.0, mode="train", name="gnmt"):
    """GNMT encoder-decoder (arXiv:1609.08144).

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (the paper shares one 32k
            wordpiece vocabulary; equal sizes make the data loader share it). Ids 0/1/2
            are padding/start/end.
        source_len, target_len: fixed input lengths.
        num_layers: LSTM layers of the encoder (the bottom one bidirectional) and of the
            decoder; at least 2.
        units: LSTM width (each direction of the bidirectional layer).
        embedding_dim: source and target embedding width.
        attention_units: hidden width of the attention network.
        residual_start: first layer (1-based) of each stack with a residual connection;
            the paper's 3 (layers below change width or are the attention's query).
        dropout: dropout on the embeddings and before the softmax.
        mode: one of ``MODES`` (see the module docstring).
        name: model name.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    for key, value in dict(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                           units=units, embedding_dim=embedding_dim, attention_units=attention_units,
                           source_len=source_len, target_len=target_len).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
    if not isinstance(num_layers, int) or num_layers < 2:
        raise ValueError("`num_layers` must be an integer >= 2 (a bidirectional bottom layer and a "
                         f"unidirectional one above it). Received: num_layers={num_layers!r}")
    if not isinstance(residual_start, int) or residual_start < 3:
        raise ValueError("`residual_start` must be an integer >= 3: layers 1 and 2 change width. "
                         f"Received: residual_start={residual_start!r}")
    decoder = GNMTDecoder(units, num_layers, attention_units, residual_start, return_state=mode == "step",
                          return_attention_scores=mode == "step", unroll=mode == "step",
                          name=f"{name}_decoder")

    if mode == "step":
        token = keras.Input(shape=(1,), dtype="int32", name="token")
        memory = keras.Input(shape=(source_len, units), name="memory")
        memory_mask = keras.Input(shape=(source_len,), name="memory_mask")
        states = [keras.Input(shape=(units,), name=f"state_{k}") for k in range(2 * num_layers)]
        logits, *rest = _decode(token, memory, memory_mask, states, decoder, target_vocab_size,
                                embedding_dim, dropout, name)
        logits = keras.layers.Reshape((target_vocab_size,), name=f"{name}_step_logits")(logits)
        new_states, alignment = rest[:-1], rest[-1]
        alignment = keras.layers.Reshape((source_len,), name=f"{name}_step_attention")(alignment)
        return keras.Model([token, memory, memory_mask, *states], [logits, *new_states, alignment],
                           name=f"{name}_step")

    source = keras.Input(shape=(source_len,), dtype="int32", name="source_ids")
    memory, memory_mask, states = _encode(source, num_layers, units, residual_start, source_vocab_size,
                                          embedding_dim, dropout, name)
    if mode == "encoder":
        return keras.Model(source, [memory, memory_mask, *states], name=f"{name}_encoder")
    target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
    logits = _decode(target_in, memory, memory_mask, states, decoder, target_vocab_size, embedding_dim,
                     dropout, name)
    return keras.Model([source, target_in], logits, name=name)


def _encode(source, num_layers, units, residual_start, vocab_size, embedding_dim, dropout, name):
    memory_mask = PaddingMask(PAD_ID, name=f"{name}_source_mask")(source)
    # mask_zero: the LSTMs skip padding, so the backward layer starts at the last real token.
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                               name=f"{name}_source_embedding")(source)
    x = keras.layers.Dropout(dropout, name=f"{name}_source_dropout")(x)
    layer_name = f"{name}_encoder_1_bilstm"
    x, _, _, backward_h, backward_c = keras.layers.Bidirectional(
        recurrent_layer("lstm", units, return_state=True, name=f"{layer_name}_forward"),
        backward_layer=recurrent_layer("lstm", units, return_state=True, go_backwards=True,
                                       name=f"{layer_name}_backward"),
        name=layer_name)(x)
    states = [backward_h, backward_c]
    for index in range(2, num_layers + 1):
        y, h, c = recurrent_layer("lstm", units, return_state=True, name=f"{name}_encoder_{index}_lstm")(x)
        if index >= residual_start:
            y = keras.layers.Add(name=f"{name}_encoder_{index}_residual")([y, x])
        x = y
        states += [h, c]
    return x, memory_mask, states


def _decode(target_in, memory, memory_mask, states, decoder, vocab_size, embedding_dim, dropout, name):
    y = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_target_embedding")(target_in)
    y = keras.layers.Dropout(dropout, name=f"{name}_target_dropout")(y)
    outputs = decoder([y, memory, memory_mask, *states])
    sequence = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    sequence = keras.layers.Dropout(dropout, name=f"{name}_output_dropout")(sequence)
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(sequence)
    if isinstance(outputs, (list, tuple)):
        return [logits, *outputs[1:]]
    return logits


def gnmt_params(source_vocab_size, target_vocab_size, num_layers, units, embedding_dim, attention_units):
    """Parameter count of ``GNMT`` by hand (Keras LSTM: ``4u (in + u) + 4u`` per layer)."""

    def lstm(inputs):
        return 4 * units * (inputs + units) + 4 * units

    encoder = 2 * lstm(embedding_dim) + lstm(2 * units) + (num_layers - 2) * lstm(units)
    # Every decoder layer also reads the attention context (width `units`, the top encoder layer).
    decoder = lstm(embedding_dim + units) + (num_layers - 1) * lstm(2 * units)
    attention = 2 * units * attention_units + 2 * attention_units
    embeddings = (source_vocab_size + target_vocab_size) * embedding_dim
    softmax = units * target_vocab_size + target_vocab_size
    return embeddings + encoder + decoder + attention + softmax


def encoder_model(model, config):
    """The encoder graph (fixed source length) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, GNMT(**{**config, "mode": "encoder"}))


def step_model(model, config):
    """The single-step decoder graph (explicit states and attention memory) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, GNMT(**{**config, "mode": "step"}))


class GNMTTranslator(StepGraphDecoder):
    """Greedy and beam search (GNMT length and coverage penalties) with a trained GNMT.

    Args:
        model: the teacher-forcing model.
        config: the builder kwargs it was built with.
    """

    def __init__(self, model, config):
        super().__init__(encoder_model(model, config), step_model(model, config), num_context=2,
                         start_id=START_ID, end_id=END_ID, mask_index=1)


def _inputs(config):
    return [InputSpec((config["source_len"],), "int32", maxval=config["source_vocab_size"]),
            InputSpec((config["target_len"],), "int32", maxval=config["target_vocab_size"])]


_PAPER = dict(source_vocab_size=32000, target_vocab_size=32000, num_layers=8, units=1024, embedding_dim=1024,
              attention_units=1024, residual_start=3)
_TINY = dict(source_vocab_size=30, target_vocab_size=30, source_len=7, target_len=6, num_layers=3, units=8,
             embedding_dim=8, attention_units=6)

register_family(
    GNMT,
    {
        # Section 8.1: 8+8 layers of 1024 LSTM units, 1024-unit attention, 32k shared wordpieces.
        # The paper gives no total parameter count; ours is gnmt_params(**_PAPER) = 280,859,904.
        "gnmt_8x1024": dict(
            config=dict(_PAPER, source_len=50, target_len=50),
            reference_params=(gnmt_params(**{k: v for k, v in _PAPER.items() if k != "residual_start"}),
                              "hand count of the section 8.1 configuration (gnmt_params); "
                              "the paper publishes no total"),
            tiny=dict(_TINY),
        ),
        # The same architecture at a size that trains on a CPU in minutes (the seq2seq report).
        "gnmt_tiny": dict(
            config=dict(source_vocab_size=128, target_vocab_size=128, source_len=32, target_len=33,
                        num_layers=4, units=128, embedding_dim=64, attention_units=128, residual_start=3),
            tiny=dict(_TINY),
        ),
    },
    task="seq2seq",
    paper="1609.08144",
    input_spec=_inputs,
    default_dataset="docstrings_reverse",
    inference_model=step_model,
    export={"tflite": True,
            "edgetpu": "two graphs (encoder at fixed length, single decoder step with explicit "
                       "state); the attention softmax/einsum and LSTM cells are not verified "
                       "against Edge TPU compiler 16 (no compiler here)"},
)
