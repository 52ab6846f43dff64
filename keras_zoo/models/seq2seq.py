"""Recurrent encoder-decoder with attention: Bahdanau et al. (2014, arXiv:1409.0473) and
Luong et al. (2015, arXiv:1508.04025).

One builder, three graphs sharing layer names (so weights move between them):

- ``mode="train"``: ``[source_ids (B, S), target_in_ids (B, T)] -> logits (B, T, V)``,
  teacher forcing (``target_in`` is the target shifted right behind the start token).
- ``mode="encoder"``: ``source_ids -> [memory, memory_mask, *decoder_initial_states]``.
- ``mode="step"``: ``[token (B, 1), memory, memory_mask, *states] ->
  [logits (B, V), *new_states, attention (B, S)]``, one decoder step with explicit state.

``Seq2SeqDecoder`` drives the last two with keras_zoo.decoding (greedy, beam search).

Departures, for one code path serving both papers: the decoder's initial states come from
``tanh`` layers on the encoder's final state (Bahdanau's ``s_0 = tanh(W_s h_1_backward)``,
applied to every state, including Luong's attentional vector); the Bahdanau readout is a
linear layer on ``[s_i; c_i]`` instead of the paper's maxout deep output. Token id 0 is
padding: attention never looks at padded source positions.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.decoding import beam_search, compiled_inference, greedy_search
from keras_zoo.layers.attention import AttentiveDecoder, PaddingMask
from keras_zoo.models.rnn import recurrent_layer
from keras_zoo.registry import InputSpec, register_family

MODES = ("train", "encoder", "step")
PAD_ID, START_ID, END_ID = 0, 1, 2


def Seq2SeqAttention(source_vocab_size=30000, target_vocab_size=30000, source_len=50,
                     target_len=50, *, attention="bahdanau", cell="gru", embedding_dim=620,
                     units=1000, attention_units=1000, score_function="general",
                     encoder_layers=1, bidirectional_encoder=True, dropout=0.0, mode="train",
                     name="seq2seq_attention"):
    """Attentional encoder-decoder.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (ids 0/1/2 are
            padding/start/end in the target vocabulary, 0 is padding in the source).
        source_len, target_len: fixed input lengths (None: any length, not exportable).
        attention: "bahdanau" (additive, state queries before the step) or "luong"
            (multiplicative, after the step, with input feeding).
        cell: "gru" (Bahdanau's choice) or "lstm" (Luong's).
        embedding_dim: source and target embedding width.
        units: recurrent width of the decoder; of each encoder direction.
        attention_units: width of Bahdanau's alignment model.
        score_function: Luong's score, "general" or "dot" (dot needs a memory as wide
            as ``units``: a unidirectional encoder).
        encoder_layers: stacked encoder layers.
        bidirectional_encoder: read the source in both directions (Bahdanau).
        dropout: dropout on embeddings and before the output layer.
        mode: one of ``MODES`` (see the module docstring).
        name: model name.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if cell not in AttentiveDecoder.CELLS:
        raise ValueError(f"`cell` must be one of {AttentiveDecoder.CELLS}. Received: cell={cell!r}")
    for key, value in dict(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                           embedding_dim=embedding_dim, units=units, encoder_layers=encoder_layers).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
    memory_width = units * (2 if bidirectional_encoder else 1)
    decoder = AttentiveDecoder(units, cell=cell, attention=attention, attention_units=attention_units,
                               score_function=score_function, return_state=mode == "step",
                               return_attention_scores=mode == "step", unroll=mode == "step",
                               name=f"{name}_decoder")
    n_states = len(decoder.state_sizes)

    if mode == "step":
        token = keras.Input(shape=(1,), dtype="int32", name="token")
        memory = keras.Input(shape=(source_len, memory_width), name="memory")
        memory_mask = keras.Input(shape=(source_len,), name="memory_mask")
        states = [keras.Input(shape=(size,), name=f"state_{k}") for k, size in enumerate(decoder.state_sizes)]
        logits, *rest = _decode(token, memory, memory_mask, states, decoder, target_vocab_size,
                                embedding_dim, dropout, name)
        logits = keras.layers.Reshape((target_vocab_size,), name=f"{name}_step_logits")(logits)
        new_states, alignment = rest[:n_states], rest[n_states]
        alignment = keras.layers.Reshape((source_len,), name=f"{name}_step_attention")(alignment)
        return keras.Model([token, memory, memory_mask, *states], [logits, *new_states, alignment],
                           name=f"{name}_step")

    source = keras.Input(shape=(source_len,), dtype="int32", name="source_ids")
    memory, memory_mask, states = _encode(source, cell, units, encoder_layers, bidirectional_encoder,
                                          decoder.state_sizes, source_vocab_size, embedding_dim,
                                          dropout, name)
    if mode == "encoder":
        return keras.Model(source, [memory, memory_mask, *states], name=f"{name}_encoder")
    target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
    logits = _decode(target_in, memory, memory_mask, states, decoder, target_vocab_size,
                     embedding_dim, dropout, name)
    return keras.Model([source, target_in], logits, name=name)


def _encode(source, cell, units, num_layers, bidirectional, state_sizes, vocab_size, embedding_dim,
            dropout, name):
    memory_mask = PaddingMask(PAD_ID, name=f"{name}_source_mask")(source)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_source_embedding")(source)
    x = keras.layers.Dropout(dropout, name=f"{name}_source_dropout")(x)
    for index in range(1, num_layers + 1):
        layer_name = f"{name}_encoder_{index}_{cell}"
        last = index == num_layers
        if bidirectional:
            layer = keras.layers.Bidirectional(
                recurrent_layer(cell, units, return_state=last, name=f"{layer_name}_forward"),
                backward_layer=recurrent_layer(cell, units, return_state=last, go_backwards=True,
                                               name=f"{layer_name}_backward"),
                name=layer_name)
        else:
            layer = recurrent_layer(cell, units, return_state=last, name=layer_name)
        x = layer(x)
    memory, *final_states = x
    # Bahdanau initialises the decoder from the backward encoder's summary of the whole
    # source (its final h); unidirectionally, the final h is the summary.
    summary = final_states[len(final_states) // 2] if bidirectional else final_states[0]
    states = [keras.layers.Dense(size, activation="tanh", name=f"{name}_bridge_{k}")(summary)
              for k, size in enumerate(state_sizes)]
    return memory, memory_mask, states


def _decode(target_in, memory, memory_mask, states, decoder, vocab_size, embedding_dim, dropout,
            name):
    y = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_target_embedding")(target_in)
    y = keras.layers.Dropout(dropout, name=f"{name}_target_dropout")(y)
    outputs = decoder([y, memory, memory_mask, *states])
    sequence = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    sequence = keras.layers.Dropout(dropout, name=f"{name}_output_dropout")(sequence)
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(sequence)
    if isinstance(outputs, (list, tuple)):
        return [logits, *outputs[1:]]
    return logits


def copy_weights_by_layer_name(source_model, target_model):
    """Copies the weights of every layer of ``target_model`` from the same-named layer."""
    for layer in target_model.layers:
        if layer.weights:
            layer.set_weights(source_model.get_layer(layer.name).get_weights())
    return target_model


def encoder_model(model, config):
    """The encoder graph (fixed source length) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, Seq2SeqAttention(**{**config, "mode": "encoder"}))


def step_model(model, config):
    """The single-step decoder graph (explicit state and attention memory) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, Seq2SeqAttention(**{**config, "mode": "step"}))


class Seq2SeqDecoder:
    """Greedy and beam-search translation with a trained ``seq2seq_attention`` model.

    Args:
        model: the teacher-forcing model.
        config: the builder kwargs it was built with.
    """

    def __init__(self, model, config):
        self.encoder = encoder_model(model, config)
        self.step = step_model(model, config)
        self._encoder_fn = compiled_inference(self.encoder)
        self._step_fn = compiled_inference(self.step)
        self.n_states = len(self.step.inputs) - 3

    def _encode(self, source_ids):
        memory, memory_mask, *states = self._encoder_fn(np.asarray(source_ids, np.int32))
        return [np.asarray(memory), np.asarray(memory_mask), *(np.asarray(s) for s in states)]

    def step_fn(self, tokens, state):
        memory, memory_mask, *states = state
        logits, *rest = self._step_fn([tokens[:, None], memory, memory_mask, *states])
        new_states, attention = rest[:self.n_states], rest[self.n_states]
        log_probs = np.asarray(tf.nn.log_softmax(logits, -1))
        return log_probs, [memory, memory_mask, *(np.asarray(s) for s in new_states)], np.asarray(attention)

    def greedy(self, source_ids, max_length):
        """(B, L) tokens and (B,) log-probabilities for a batch of sources."""
        state = self._encode(source_ids)
        start = np.full(len(state[0]), START_ID, np.int32)
        return greedy_search(self.step_fn, state, start, END_ID, max_length)

    def beam(self, source_ids, beam_width, max_length, length_penalty=0.0, coverage_penalty=0.0):
        """Beam search for each source (one row at a time); the best hypotheses per source."""
        results = []
        for row in np.asarray(source_ids, np.int32):
            state = self._encode(row[None])
            results.append(beam_search(self.step_fn, state, START_ID, END_ID, beam_width, max_length,
                                       length_penalty, coverage_penalty, source_mask=state[1][0]))
        return results


def _inputs(config):
    return [InputSpec((config["source_len"],), "int32", maxval=config["source_vocab_size"]),
            InputSpec((config["target_len"],), "int32", maxval=config["target_vocab_size"])]


_TINY = dict(source_vocab_size=30, target_vocab_size=20, source_len=7, target_len=6,
             embedding_dim=8, units=12, attention_units=10)

register_family(
    Seq2SeqAttention,
    {
        # RNNsearch (arXiv:1409.0473, appendix A.2): bidirectional GRU encoder, 1000 units,
        # 620-d embeddings, 1000-unit alignment model, 30k vocabularies.
        "seq2seq_attention": dict(
            config=dict(attention="bahdanau", cell="gru", source_vocab_size=30000,
                        target_vocab_size=30000, source_len=50, target_len=50, embedding_dim=620,
                        units=1000, attention_units=1000, bidirectional_encoder=True,
                        encoder_layers=1),
            tiny=dict(_TINY),
            paper="1409.0473",
        ),
        # Luong et al. (arXiv:1508.04025, section 4.1): 4-layer LSTMs of 1000 units,
        # 1000-d embeddings, 50k vocabularies, global attention, input feeding.
        # The paper's decoder is also 4 layers deep; ours has one attentive layer.
        "seq2seq_luong": dict(
            config=dict(attention="luong", cell="lstm", score_function="general",
                        source_vocab_size=50000, target_vocab_size=50000, source_len=50,
                        target_len=50, embedding_dim=1000, units=1000, encoder_layers=4,
                        bidirectional_encoder=False, dropout=0.2),
            tiny=dict(_TINY, encoder_layers=2),
            paper="1508.04025",
        ),
    },
    task="seq2seq",
    input_spec=_inputs,
    default_dataset="docstrings_reverse",
    inference_model=step_model,
    export={"tflite": True,
            "edgetpu": "two graphs (encoder at fixed length, single decoder step with explicit "
                       "state); the attention softmax/einsum and recurrent cells are not "
                       "verified against Edge TPU compiler 16 (no compiler here)"},
)
