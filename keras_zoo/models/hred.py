"""HRED (Serban et al., 2016, arXiv:1507.04808) and VHRED (Serban et al., 2017, arXiv:1605.06069).

A dialogue is a fixed ``(turns, utterance_len)`` grid of token ids: each row is one
utterance ending in ``END_ID`` and padded with ``PAD_ID`` (0); missing turns are all-zero
rows. Three GRUs:

- the utterance encoder reads each turn (padding masked) and keeps its final state
  (forward, or ``[forward; backward]`` with ``bidirectional_encoder``);
- the context RNN reads the utterance encodings turn by turn: ``c_n`` summarises turns
  ``1..n``;
- the decoder generates turn ``n + 1`` conditioned on ``c_n``. As the reference code's
  ``decoder_bias_type='all'`` (julianser/hed-dlg-truncated, the authors' code): the
  conditioning vector both initialises the decoder, ``d_0 = tanh(D_0 cond + b_0)``, and
  is concatenated to the embedded previous token at every step. The readout is the
  paper's deep output, a linear layer on ``[d_m; w_{m-1}; cond]`` to the embedding width,
  then the vocabulary logits.

VHRED adds a Gaussian latent ``z_n`` per utterance (arXiv:1605.06069, section 3): the
prior ``N(mu, diag(exp(logvar)))`` is a one-hidden-layer tanh network on ``c_n``; the
approximate posterior the same on ``[c_n; e_{n+1}]``, where ``e_{n+1}`` is the encoding of
the target utterance itself. The decoder's conditioning is ``[c_n; z_n]``; ``z_n`` is a
posterior sample when training (:class:`~keras_zoo.models.autoencoder.Reparameterize`) and
the posterior mean otherwise. The KL term and its annealing live in the ``dialogue``
training task (training/tasks_dialogue.py); :func:`gaussian_kl_between` is the KL.

One builder, three graphs with the same layer names (weights move between them):

- ``mode="train"``: ``dialogue_ids (B, T, L) -> logits (B, T-1, L, V)`` (turn ``n + 1``
  given turns ``1..n``, teacher forcing); VHRED also returns ``prior_mean, prior_log_var,
  posterior_mean, posterior_log_var`` of shape ``(B, T-1, latent_dim)``;
- ``mode="context"``: ``dialogue_ids -> [conditioning (B, T, C), decoder_state (B, T, H)]``,
  the decoder's conditioning and initial state for the reply after each turn (VHRED: z at
  the prior mean);
- ``mode="step"``: ``[token (B, 1), conditioning (B, C), decoder_state (B, H)] ->
  [logits (B, V), new_decoder_state]``, one decoder step with explicit state (TFLite).

Departures: no word dropout on decoder inputs (VHRED's 0.25) and no layer normalization
(the later reference code's ``normop_type``); the VHRED reference configuration decodes
with an LSTM, ours with a GRU as HRED.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.decoding import compiled_inference, greedy_search
from keras_zoo.models.autoencoder import Reparameterize
from keras_zoo.models.seq2seq import END_ID, PAD_ID, START_ID, copy_weights_by_layer_name
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers
MODES = ("train", "context", "step")
#: Token ids the data and the model agree on (keras_zoo/data/dialogues.py).
UNK_ID = 3


def gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p):
    """``KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p)))`` in nats, summed over the last axis.

    ``0.5 * sum(log_var_p - log_var_q + (exp(log_var_q) + (mean_q - mean_p)^2) / exp(log_var_p) - 1)``
    for diagonal Gaussians; with ``mean_p = log_var_p = 0`` it is the VAE's
    :func:`keras_zoo.models.autoencoder.gaussian_kl`.
    """
    mean_q, log_var_q, mean_p, log_var_p = (tf.cast(t, tf.float32) for t in (mean_q, log_var_q, mean_p, log_var_p))
    return 0.5 * tf.reduce_sum(
        log_var_p - log_var_q + (tf.exp(log_var_q) + tf.square(mean_q - mean_p)) * tf.exp(-log_var_p) - 1.0,
        axis=-1)


@serializable
class FoldTurns(layers.Layer):
    """``(B, T, ...) -> (B * T, ...)``: each turn becomes its own row for the per-utterance RNNs."""

    def call(self, inputs):
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])

    def get_config(self):
        return super().get_config()


@serializable
class UnfoldTurns(layers.Layer):
    """``(B * turns, ...) -> (B, turns, ...)``, the inverse of :class:`FoldTurns`."""

    def __init__(self, turns, **kwargs):
        super().__init__(**kwargs)
        self.turns = int(turns)

    def call(self, inputs):
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[-1, self.turns], shape[1:]], 0))

    def compute_output_shape(self, input_shape):
        return (None, self.turns, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "turns": self.turns}


@serializable
class TurnSlice(layers.Layer):
    """Turns ``start:stop`` (axis 1) of a ``(B, T, ...)`` tensor."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs):
        return inputs[:, self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.stop - self.start, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@serializable
class TokenMask(layers.Layer):
    """``ids != pad_id`` as a boolean mask, for the utterance encoder."""

    def __init__(self, pad_id=PAD_ID, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, ids):
        return tf.not_equal(ids, self.pad_id)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@serializable
class ShiftRight(layers.Layer):
    """Decoder inputs from target ids: ``[start_id, y_1, ..., y_{L-1}]`` (teacher forcing)."""

    def __init__(self, start_id=START_ID, **kwargs):
        super().__init__(**kwargs)
        self.start_id = int(start_id)

    def call(self, ids):
        start = tf.fill([tf.shape(ids)[0], 1], tf.constant(self.start_id, ids.dtype))
        return tf.concat([start, ids[:, :-1]], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "start_id": self.start_id}


def _validate(vocab_size, turns, utterance_len, mode, **widths):
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= UNK_ID:
        raise ValueError(f"`vocab_size` must be an int > {UNK_ID} (ids 0-3 are padding, start, end and "
                         f"unknown). Received: vocab_size={vocab_size!r}")
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 2:
        raise ValueError(f"`turns` must be an int >= 2 (at least one context turn and one reply). "
                         f"Received: turns={turns!r}")
    if isinstance(utterance_len, bool) or not isinstance(utterance_len, int) or utterance_len < 2:
        raise ValueError(f"`utterance_len` must be an int >= 2 (a token and the end token). "
                         f"Received: utterance_len={utterance_len!r}")
    for key, value in widths.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and key != "latent_dim"):
            raise ValueError(f"`{key}` must be a positive int{' (0: no latent, HRED)' if key == 'latent_dim' else ''}. "
                             f"Received: {key}={value!r}")


def HRED(vocab_size=10000, turns=3, utterance_len=32, *, embedding_dim=300, encoder_units=600,
         context_units=1200, decoder_units=600, bidirectional_encoder=False, latent_dim=0,
         latent_hidden_units=0, mode="train", name="hred"):
    """Hierarchical recurrent encoder-decoder for dialogue (arXiv:1507.04808).

    Args:
        vocab_size: output and input vocabulary; ids 0/1/2/3 are padding, start, end, unknown.
        turns: utterances per dialogue (the data's fixed grid; triples: 3).
        utterance_len: tokens per utterance, including its end token.
        embedding_dim: word embedding width (shared by encoder and decoder; also the
            width of the deep-output readout).
        encoder_units: utterance encoder GRU width (per direction).
        context_units: context GRU width.
        decoder_units: decoder GRU width.
        bidirectional_encoder: encode each utterance forwards and backwards and
            concatenate the final states (the papers' bidirectional variant).
        latent_dim: VHRED's latent width per utterance; 0 builds HRED.
        latent_hidden_units: width of the tanh hidden layer of the prior and posterior
            networks (VHRED only).
        mode: one of ``MODES`` (see the module docstring).
        name: model name (layer-name prefix).

    Returns:
        A keras.Model; see the module docstring for each mode's inputs and outputs.
    """
    _validate(vocab_size, turns, utterance_len, mode, embedding_dim=embedding_dim, encoder_units=encoder_units,
              context_units=context_units, decoder_units=decoder_units, latent_dim=latent_dim)
    if latent_dim and (isinstance(latent_hidden_units, bool) or not isinstance(latent_hidden_units, int)
                       or latent_hidden_units <= 0):
        raise ValueError(f"`latent_hidden_units` must be a positive int when latent_dim > 0. "
                         f"Received: latent_hidden_units={latent_hidden_units!r}")
    conditioning_dim = context_units + latent_dim
    embedding = layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")
    decoder_parts = _decoder_layers(vocab_size, embedding_dim, decoder_units, mode == "step", name)

    if mode == "step":
        token = keras.Input(shape=(1,), dtype="int32", name="token")
        conditioning = keras.Input(shape=(conditioning_dim,), name="conditioning")
        state = keras.Input(shape=(decoder_units,), name="decoder_state")
        repeated = layers.RepeatVector(1, name=f"{name}_repeat_conditioning")(conditioning)
        logits, new_state = _decode(embedding(token), repeated, state, decoder_parts, name)
        logits = layers.Reshape((vocab_size,), name=f"{name}_step_logits")(logits)
        return keras.Model([token, conditioning, state], [logits, new_state], name=f"{name}_step")

    dialogue = keras.Input(shape=(turns, utterance_len), dtype="int32", name="dialogue_ids")
    encodings = _encode_utterances(dialogue, embedding, turns, encoder_units, bidirectional_encoder, name)
    context = layers.GRU(context_units, return_sequences=True, name=f"{name}_context_rnn")(encodings)
    latent = _latent_layers(latent_dim, latent_hidden_units, name) if latent_dim else None
    init_state = layers.Dense(decoder_units, activation="tanh", name=f"{name}_decoder_init")

    if mode == "context":
        conditioning = context
        if latent:
            prior_mean, _ = _gaussian(latent["prior"], context)
            conditioning = layers.Concatenate(name=f"{name}_conditioning")([context, prior_mean])
        return keras.Model(dialogue, [conditioning, init_state(conditioning)], name=f"{name}_context")

    # Turn n + 1 is generated from the context after turn n.
    context = TurnSlice(0, turns - 1, name=f"{name}_context_before_reply")(context)
    conditioning, latent_outputs = context, []
    if latent:
        reply_encodings = TurnSlice(1, turns, name=f"{name}_reply_encodings")(encodings)
        prior = _gaussian(latent["prior"], context)
        posterior_input = layers.Concatenate(name=f"{name}_posterior_input")([context, reply_encodings])
        posterior = _gaussian(latent["posterior"], posterior_input)
        z = Reparameterize(name=f"{name}_reparameterize")(list(posterior))
        conditioning = layers.Concatenate(name=f"{name}_conditioning")([context, z])
        latent_outputs = [*prior, *posterior]

    replies = FoldTurns(name=f"{name}_fold_replies")(TurnSlice(1, turns, name=f"{name}_replies")(dialogue))
    decoder_inputs = ShiftRight(START_ID, name=f"{name}_shift_right")(replies)
    conditioning = FoldTurns(name=f"{name}_fold_conditioning")(conditioning)
    repeated = layers.RepeatVector(utterance_len, name=f"{name}_repeat_conditioning")(conditioning)
    logits = _decode(embedding(decoder_inputs), repeated, init_state(conditioning), decoder_parts, name)
    logits = UnfoldTurns(turns - 1, name=f"{name}_unfold_logits")(logits)
    return keras.Model(dialogue, [logits, *latent_outputs] if latent_outputs else logits, name=name)


def VHRED(vocab_size=20000, turns=3, utterance_len=32, *, embedding_dim=400, encoder_units=1000,
          context_units=500, decoder_units=1000, bidirectional_encoder=True, latent_dim=100,
          latent_hidden_units=500, mode="train", name="vhred"):
    """Latent variable hierarchical encoder-decoder (arXiv:1605.06069): :func:`HRED` with a
    Gaussian latent per utterance. Args as :func:`HRED`; ``latent_dim`` must be positive."""
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"VHRED needs `latent_dim` > 0 (use HRED for none). Received: latent_dim={latent_dim!r}")
    return HRED(vocab_size, turns, utterance_len, embedding_dim=embedding_dim, encoder_units=encoder_units,
                context_units=context_units, decoder_units=decoder_units,
                bidirectional_encoder=bidirectional_encoder, latent_dim=latent_dim,
                latent_hidden_units=latent_hidden_units, mode=mode, name=name)


def _encode_utterances(dialogue, embedding, turns, units, bidirectional, name):
    utterances = FoldTurns(name=f"{name}_fold_utterances")(dialogue)
    mask = TokenMask(PAD_ID, name=f"{name}_utterance_mask")(utterances)
    encoder = layers.GRU(units, name=f"{name}_utterance_encoder")
    if bidirectional:
        encoder = layers.Bidirectional(encoder, name=f"{name}_utterance_encoder_bidirectional")
    encodings = encoder(embedding(utterances), mask=mask)
    return UnfoldTurns(turns, name=f"{name}_unfold_utterances")(encodings)


def _latent_layers(latent_dim, hidden_units, name):
    def network(role):
        return (layers.Dense(hidden_units, activation="tanh", name=f"{name}_{role}_hidden"),
                layers.Dense(latent_dim, name=f"{name}_{role}_mean"),
                layers.Dense(latent_dim, name=f"{name}_{role}_log_var"))

    return {"prior": network("prior"), "posterior": network("posterior")}


def _gaussian(network, inputs):
    hidden, mean, log_var = network
    h = hidden(inputs)
    return mean(h), log_var(h)


def _decoder_layers(vocab_size, embedding_dim, units, step, name):
    return {
        "concat_inputs": layers.Concatenate(name=f"{name}_decoder_inputs"),
        "rnn": layers.GRU(units, return_sequences=True, return_state=step, unroll=step, name=f"{name}_decoder"),
        "concat_readout": layers.Concatenate(name=f"{name}_readout_inputs"),
        "readout": layers.Dense(embedding_dim, name=f"{name}_readout"),
        "logits": layers.Dense(vocab_size, name=f"{name}_logits"),
    }


def _decode(embedded, repeated_conditioning, initial_state, parts, name):
    """Decoder over ``(N, L)`` steps; returns logits (and the final state for the step graph)."""
    x = parts["concat_inputs"]([embedded, repeated_conditioning])
    outputs = parts["rnn"](x, initial_state=initial_state)
    states, final = (outputs[0], outputs[1]) if isinstance(outputs, (list, tuple)) else (outputs, None)
    readout = parts["readout"](parts["concat_readout"]([states, embedded, repeated_conditioning]))
    logits = parts["logits"](readout)
    return (logits, final) if final is not None else logits


def context_model(model, config):
    """The context graph (conditioning and initial decoder state after each turn) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, HRED(**{**config, "mode": "context", "name": model.name}))


def step_model(model, config):
    """The single decoder step with explicit state, sharing ``model``'s weights (the TFLite graph)."""
    return copy_weights_by_layer_name(model, HRED(**{**config, "mode": "step", "name": model.name}))


class DialogueResponder:
    """Greedy replies of a trained ``hred``/``vhred`` model (VHRED: z at the prior mean).

    Args:
        model: the trained teacher-forcing model.
        config: its builder kwargs.
    """

    def __init__(self, model, config):
        self.context = compiled_inference(context_model(model, config))
        self.step = compiled_inference(step_model(model, config))
        self.utterance_len = int(model.inputs[0].shape[-1])

    def _step_fn(self, tokens, state):
        conditioning, decoder_state = state
        logits, new_state = self.step([tokens[:, None], conditioning, decoder_state])
        log_probs = np.asarray(tf.nn.log_softmax(logits, -1))
        return log_probs, [conditioning, np.asarray(new_state)], None

    def reply(self, dialogues, num_context_turns):
        """Greedy replies ``(N, utterance_len)`` to the first ``num_context_turns[i]`` turns of each dialogue.

        Turns after the context are ignored (the context RNN is causal).
        """
        dialogues = np.asarray(dialogues, np.int32)
        conditioning, states = (np.asarray(t) for t in self.context(dialogues))
        rows = np.arange(len(dialogues))
        last = np.asarray(num_context_turns) - 1
        state = [conditioning[rows, last], states[rows, last]]
        start = np.full(len(dialogues), START_ID, np.int32)
        tokens, _ = greedy_search(self._step_fn, state, start, END_ID, self.utterance_len)
        return tokens


def _inputs(config):
    return [InputSpec((config["turns"], config["utterance_len"]), "int32", maxval=config["vocab_size"])]


_COMMON = dict(
    task="dialogue",
    input_spec=_inputs,
    default_dataset="docstring_dialogues",
    inference_model=step_model,
    export={"tflite": True,
            "edgetpu": "the exported graph is one decoder step (GRU, explicit state); the utterance and "
                       "context encoders run separately and are not exported; Edge TPU compiler 16 "
                       "support of the unrolled GRU is unverified (no compiler here)"},
)
_TINY = dict(vocab_size=40, turns=3, utterance_len=6, embedding_dim=8, encoder_units=8, context_units=12,
             decoder_units=10)

register_family(HRED, {
    # MovieTriples HRED, the authors' reference configuration (julianser/hed-dlg-truncated
    # state.py, prototype_moviedic, first commit): GRU utterance encoder and decoder of
    # qdim=600 units, context GRU of sdim=1200, word embeddings rankdim=300 (the
    # pretrained Word2Vec width); 10K vocabulary (arXiv:1507.04808, MovieTriples); triples.
    # 19,255,300 parameters (no published count to compare with).
    "hred": dict(config=dict(vocab_size=10000, turns=3, utterance_len=32, embedding_dim=300, encoder_units=600,
                             context_units=1200, decoder_units=600, bidirectional_encoder=False),
                 tiny=dict(_TINY)),
}, paper="1507.04808", **_COMMON)

register_family(VHRED, {
    # Twitter VHRED, the authors' reference configuration (julianser/hed-dlg-truncated
    # state.py, prototype_twitter_GaussOnly_VHRED_NormOp_ClusterExp1): bidirectional
    # utterance encoder of qdim_encoder=1000 units, decoder qdim_decoder=1000, context
    # sdim=500, word embeddings rankdim=400, Gaussian latent of 100 per utterance, KL
    # annealed linearly over 60,000 batches (the task's default). The width of the
    # prior/posterior hidden layer is not given there; we use the context width.
    # vocab_size 20000 is a placeholder: training replaces it with the data's vocabulary.
    # 37,293,800 parameters (no published count to compare with).
    "vhred": dict(config=dict(vocab_size=20000, turns=3, utterance_len=32, embedding_dim=400, encoder_units=1000,
                              context_units=500, decoder_units=1000, bidirectional_encoder=True, latent_dim=100,
                              latent_hidden_units=500),
                  tiny=dict(_TINY, bidirectional_encoder=True, latent_dim=4, latent_hidden_units=8)),
}, paper="1605.06069", **_COMMON)
