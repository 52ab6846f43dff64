"""Transformer (Vaswani et al., 2017, arXiv:1706.03762).

Encoder and decoder stacks of ``keras.layers.MultiHeadAttention`` and position-wise
feed-forward layers, sinusoidal positions, embeddings scaled by sqrt(d_model), one
shared source/target vocabulary whose embedding matrix is also the pre-softmax
projection (section 3.4), residual dropout. ``norm_position="post"`` is the paper's
``LayerNorm(x + Sublayer(x))``; ``"pre"`` is ``x + Sublayer(LayerNorm(x))`` with a final
LayerNorm on each stack (Xiong et al., 2020, arXiv:2002.04745), which trains without
warm-up tuning. Label smoothing lives in the seq2seq task's loss
(training/tasks_seq2seq.py); the warm-up schedule is ``TransformerSchedule``.

Graphs (shared layer names): ``mode="train"``: ``[source_ids, target_in_ids] -> logits``;
``mode="encoder"``: ``source_ids -> memory``; ``mode="decoder"``: ``[target_in_ids, memory,
source_ids] -> logits`` (the decoder re-reads its whole prefix: static shapes for export).
Token id 0 is padding; attention never looks at padded source positions.
"""
import functools

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.decoding import (beam_search, compiled_inference, greedy_search, initial_prefix_state,
                                prefix_step_fn)
from keras_zoo.layers.positional import SinusoidalPositionEncoding
from keras_zoo.models.seq2seq import END_ID, PAD_ID, START_ID, copy_weights_by_layer_name
from keras_zoo.registry import InputSpec, register_family

MODES = ("train", "encoder", "decoder")
NORM_POSITIONS = ("post", "pre")


@serializable
class SharedEmbedding(keras.layers.Layer):
    """Token embedding scaled by sqrt(d_model), and its transpose as the output projection.

    ``layer(ids)`` embeds; ``layer(x, mode="logits")`` returns ``x E^T`` (batch, T, vocab).
    """

    def __init__(self, vocab_size, d_model, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.d_model = int(d_model)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.vocab_size, self.d_model),
            initializer=keras.initializers.RandomNormal(stddev=self.d_model ** -0.5))
        self.built = True

    def call(self, inputs, mode="embed"):
        if mode == "logits":
            return tf.matmul(inputs, self.embeddings, transpose_b=True)
        return tf.gather(self.embeddings, inputs) * (self.d_model ** 0.5)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "d_model": self.d_model}


@serializable
class KeyPaddingMask(keras.layers.Layer):
    """Attention mask (batch, Tq, Tk), True where the key token is not padding.

    Called on ``[queries, key_ids]``; ``queries`` (batch, Tq, ...) only sets Tq.
    """

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, inputs):
        queries, key_ids = inputs
        keep = tf.not_equal(key_ids, self.pad_id)[:, tf.newaxis, :]
        return tf.tile(keep, [1, tf.shape(queries)[1], 1])

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@serializable
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`` (section 5.3),
    steps counted from 1."""

    def __init__(self, d_model=512, warmup_steps=4000, scale=1.0):
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        return self.scale * self.d_model ** -0.5 * tf.minimum(
            tf.math.rsqrt(step), step * float(self.warmup_steps) ** -1.5)

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


def _sublayer(x, sublayer_fn, norm_position, dropout, name):
    """Residual connection around ``sublayer_fn`` with post- or pre-LayerNorm."""
    normed = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x) \
        if norm_position == "pre" else x
    y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(sublayer_fn(normed))
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    if norm_position == "post":
        x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)
    return x


def _feed_forward(d_model, d_ff, name):
    def apply(x):
        x = keras.layers.Dense(d_ff, activation="relu", name=f"{name}_1")(x)
        return keras.layers.Dense(d_model, name=f"{name}_2")(x)
    return apply


def encoder_layer(x, mask, d_model, num_heads, d_ff, dropout, norm_position, name):
    attention = keras.layers.MultiHeadAttention(num_heads, d_model // num_heads, name=f"{name}_self_attention")
    x = _sublayer(x, lambda h: attention(h, h, attention_mask=mask), norm_position, dropout,
                  f"{name}_self_attention")
    return _sublayer(x, _feed_forward(d_model, d_ff, f"{name}_ffn"), norm_position, dropout, f"{name}_ffn")


def decoder_layer(y, memory, cross_mask, d_model, num_heads, d_ff, dropout, norm_position, name):
    self_attention = keras.layers.MultiHeadAttention(num_heads, d_model // num_heads,
                                                     name=f"{name}_self_attention")
    cross_attention = keras.layers.MultiHeadAttention(num_heads, d_model // num_heads,
                                                      name=f"{name}_cross_attention")
    y = _sublayer(y, lambda h: self_attention(h, h, use_causal_mask=True), norm_position, dropout,
                  f"{name}_self_attention")
    y = _sublayer(y, lambda h: cross_attention(h, memory, attention_mask=cross_mask), norm_position,
                  dropout, f"{name}_cross_attention")
    return _sublayer(y, _feed_forward(d_model, d_ff, f"{name}_ffn"), norm_position, dropout, f"{name}_ffn")


def Transformer(vocab_size=37000, source_len=64, target_len=64, *, num_layers=6, d_model=512,
                num_heads=8, d_ff=2048, dropout=0.1, norm_position="post", share_embeddings=True,
                mode="train", name="transformer"):
    """Encoder-decoder Transformer (arXiv:1706.03762).

    Args:
        vocab_size: shared vocabulary size (ids 0/1/2: padding/start/end).
        source_len, target_len: fixed input lengths (None: any length, not exportable).
        num_layers: N, layers in each stack.
        d_model: model width.
        num_heads: h; d_model must be divisible by it.
        d_ff: inner width of the feed-forward layers.
        dropout: P_drop on every sublayer output and on the embedding sums.
        norm_position: "post" (paper) or "pre" (see the module docstring).
        share_embeddings: one embedding matrix for source, target and pre-softmax (the
            paper's setting for a shared vocabulary); False gives the source its own
            matrix (target and pre-softmax stay tied).
        mode: one of ``MODES``.
        name: model name.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if norm_position not in NORM_POSITIONS:
        raise ValueError(f"`norm_position` must be one of {NORM_POSITIONS}. "
                         f"Received: norm_position={norm_position!r}")
    if d_model % num_heads:
        raise ValueError("`d_model` must be divisible by `num_heads`. "
                         f"Received: d_model={d_model}, num_heads={num_heads}")
    target_embedding = SharedEmbedding(vocab_size, d_model, name=f"{name}_embedding")
    source_embedding = target_embedding if share_embeddings else SharedEmbedding(
        vocab_size, d_model, name=f"{name}_source_embedding")

    def encode(source_ids):
        x = source_embedding(source_ids)
        x = SinusoidalPositionEncoding(name=f"{name}_encoder_positions")(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_encoder_dropout")(x)
        mask = KeyPaddingMask(PAD_ID, name=f"{name}_encoder_mask")([x, source_ids])
        for index in range(1, num_layers + 1):
            x = encoder_layer(x, mask, d_model, num_heads, d_ff, dropout, norm_position,
                              f"{name}_encoder_{index}")
        if norm_position == "pre":
            x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_encoder_norm")(x)
        return x

    def decode(target_in, memory, source_ids):
        y = target_embedding(target_in)
        y = SinusoidalPositionEncoding(name=f"{name}_decoder_positions")(y)
        y = keras.layers.Dropout(dropout, name=f"{name}_decoder_dropout")(y)
        cross_mask = KeyPaddingMask(PAD_ID, name=f"{name}_cross_mask")([y, source_ids])
        for index in range(1, num_layers + 1):
            y = decoder_layer(y, memory, cross_mask, d_model, num_heads, d_ff, dropout, norm_position,
                              f"{name}_decoder_{index}")
        if norm_position == "pre":
            y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_decoder_norm")(y)
        return target_embedding(y, mode="logits")

    source = keras.Input(shape=(source_len,), dtype="int32", name="source_ids")
    if mode == "decoder":
        target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
        memory = keras.Input(shape=(source_len, d_model), name="memory")
        return keras.Model([target_in, memory, source], decode(target_in, memory, source),
                           name=f"{name}_decoder")
    memory = encode(source)
    if mode == "encoder":
        return keras.Model(source, memory, name=f"{name}_encoder")
    target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
    return keras.Model([source, target_in], decode(target_in, memory, source), name=name)


def encoder_model(model, config):
    return copy_weights_by_layer_name(model, Transformer(**{**config, "mode": "encoder"}))


def decoder_model(model, config):
    """The decoder graph (fixed target length, re-reads its prefix) with ``model``'s weights.

    Its ``export_examples`` maps the data's ``([source, target_in], target_out)`` pairs to the
    graph's inputs, so the export calibrates and verifies on held-out text (export/tflite.py).
    """
    decoder = copy_weights_by_layer_name(model, Transformer(**{**config, "mode": "decoder"}))
    decoder.export_examples = functools.partial(_decoder_examples, model, config)
    return decoder


def _decoder_examples(model, config, pairs):
    """``[(inputs, targets)]`` batch-1 data pairs -> ``[([target_in, memory, source], targets)]``."""
    sources = np.concatenate([inputs[0] for inputs, _ in pairs]).astype(np.int32)
    memory = np.asarray(encoder_model(model, config)(sources, training=False))
    return [([inputs[1], memory[i:i + 1], inputs[0]], targets) for i, (inputs, targets) in enumerate(pairs)]


class TransformerDecoder:
    """Greedy and beam-search decoding with a trained ``transformer_*`` model."""

    def __init__(self, model, config):
        self.encoder = encoder_model(model, config)
        self.decoder = decoder_model(model, config)
        self._encoder_fn = compiled_inference(self.encoder)
        self._decoder_fn = compiled_inference(self.decoder)
        self.target_len = config["target_len"]
        self.step_fn = prefix_step_fn(self._predict, self.target_len)

    def _predict(self, context, prefix):
        memory, source = context
        return self._decoder_fn([prefix, memory, source])

    def _state(self, source_ids):
        source_ids = np.asarray(source_ids, np.int32)
        memory = np.asarray(self._encoder_fn(source_ids))
        return initial_prefix_state([memory, source_ids], self.target_len, PAD_ID)

    def greedy(self, source_ids, max_length=None):
        state = self._state(source_ids)
        start = np.full(len(state[0]), START_ID, np.int32)
        return greedy_search(self.step_fn, state, start, END_ID, max_length or self.target_len)

    def beam(self, source_ids, beam_width, max_length=None, length_penalty=0.6):
        return [beam_search(self.step_fn, self._state(row[None]), START_ID, END_ID, beam_width,
                            max_length or self.target_len, length_penalty)
                for row in np.asarray(source_ids, np.int32)]


def _inputs(config):
    return [InputSpec((config["source_len"],), "int32", maxval=config["vocab_size"]),
            InputSpec((config["target_len"],), "int32", maxval=config["vocab_size"])]


_TINY = dict(vocab_size=40, source_len=7, target_len=6, num_layers=2, d_model=16, num_heads=2,
             d_ff=32)

register_family(
    Transformer,
    {
        # Table 3 "base": N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1, 65M parameters with the
        # shared 37k BPE vocabulary of WMT'14 En-De. Ours: 63,082,496 (embedding counted once).
        "transformer_base": dict(
            config=dict(vocab_size=37000, num_layers=6, d_model=512, num_heads=8, d_ff=2048,
                        dropout=0.1),
            reference_params=(65_000_000, "arXiv:1706.03762 Table 3 (base, rounded to 1e6)"),
            tiny=dict(_TINY),
        ),
        # Table 3 "big": d_model=1024, d_ff=4096, h=16, P_drop=0.3 (0.1 for En-Fr); 213M.
        # Ours by the same count: 214,245,376 (computed; too large to build in the tests).
        "transformer_big": dict(
            config=dict(vocab_size=37000, num_layers=6, d_model=1024, num_heads=16, d_ff=4096,
                        dropout=0.3),
            reference_params=(213_000_000, "arXiv:1706.03762 Table 3 (big, rounded to 1e6)"),
            tiny=dict(_TINY, norm_position="pre"),
        ),
    },
    task="seq2seq",
    paper="1706.03762",
    input_spec=_inputs,
    default_dataset="docstrings_reverse",
    inference_model=decoder_model,
    export={"tflite": True,
            "edgetpu": "encoder and prefix decoder at fixed length; MultiHeadAttention's "
                       "einsum/softmax and LayerNormalization are not verified against Edge TPU "
                       "compiler 16 (no compiler here)"},
)
