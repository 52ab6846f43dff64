"""ByteNet (Kalchbrenner et al., 2016, arXiv:1610.10099).

A 1-D convolutional encoder and a masked (causal) 1-D convolutional decoder stacked on
top of it, both built from residual blocks whose dilation rates run 1, 2, 4, 8, 16 and
repeat. Blocks carry 2d channels; inside, a 1x1 convolution halves them to d, the
dilated k-wide convolution (masked in the decoder) works at d, a 1x1 convolution
restores 2d, each preceded by LayerNorm and ReLU (Figure 3). The translation model
uses this ReLU block; the language model uses the Multiplicative Unit block (Figure 3,
right) where the middle convolution is a Multiplicative Unit (Kalchbrenner et al.,
2016, arXiv:1610.00527, section 4).

Dynamic unfolding (section 3.2): the source is padded to the target bound
``|t_hat| = a |s| + b`` and the decoder runs over the encoder's representation of it,
position by position, until it emits the end token or reaches |t_hat|
(``ByteNetDecoder``, ``keras_zoo.decoding.dynamic_unfolding_length``).

Choice where the paper is not explicit: the decoder input at position t is the
concatenation of the encoder output and the target embedding, brought back to 2d
channels by a 1x1 convolution.
"""
import functools

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.decoding import (beam_search, compiled_inference, dynamic_unfolding_length, greedy_search,
                                initial_prefix_state, prefix_step_fn)
from keras_zoo.models.seq2seq import END_ID, PAD_ID, START_ID, copy_weights_by_layer_name
from keras_zoo.registry import InputSpec, register_family

DILATIONS = (1, 2, 4, 8, 16)
BLOCK_TYPES = ("relu", "mu")
MODES = ("train", "encoder", "decoder")


@serializable
class MultiplicativeUnit(keras.layers.Layer):
    """Multiplicative Unit (arXiv:1610.00527, eq. 6-10) with dilated causal convolutions.

    ``g1, g2, g3 = sigmoid(W1 * h), sigmoid(W2 * h), sigmoid(W3 * h)``, ``u = tanh(W4 * h)``,
    ``MU(h) = g1 * tanh(g2 * h + g3 * u)``; the four convolutions are one ``kernel``
    (k, channels, 4 * channels) with ``bias``.

    Args:
        kernel_size: k.
        dilation_rate: dilation of the convolutions.
        causal: left padding only (the decoder's masked convolution).
    """

    def __init__(self, kernel_size=3, dilation_rate=1, causal=True, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.causal = causal

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, channels, 4 * channels),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(4 * channels,), initializer="zeros")
        self.built = True

    def call(self, inputs):
        reach = (self.kernel_size - 1) * self.dilation_rate
        padding = [reach, 0] if self.causal else [reach // 2, reach - reach // 2]
        padded = tf.pad(inputs, [[0, 0], padding, [0, 0]])
        z = tf.nn.convolution(padded, self.kernel, padding="VALID", dilations=self.dilation_rate) + self.bias
        g1, g2, g3, u = tf.split(z, 4, axis=-1)
        return tf.sigmoid(g1) * tf.tanh(tf.sigmoid(g2) * inputs + tf.sigmoid(g3) * tf.tanh(u))

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "causal": self.causal}


def residual_block(x, d, kernel_size, dilation_rate, causal, block_type, name):
    """ByteNet residual block (Figure 3): 2d channels in and out, d inside."""
    shortcut = x
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_1_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_1_relu")(x)
    x = keras.layers.Conv1D(d, 1, name=f"{name}_1_conv")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_2_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_2_relu")(x)
    if block_type == "mu":
        x = MultiplicativeUnit(kernel_size, dilation_rate, causal=causal, name=f"{name}_2_mu")(x)
    else:
        x = keras.layers.Conv1D(d, kernel_size, dilation_rate=dilation_rate,
                                padding="causal" if causal else "same", name=f"{name}_2_conv")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_3_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_3_relu")(x)
    x = keras.layers.Conv1D(2 * d, 1, name=f"{name}_3_conv")(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


def _stack(x, num_blocks, d, kernel_size, causal, block_type, name):
    for index in range(num_blocks):
        x = residual_block(x, d, kernel_size, DILATIONS[index % len(DILATIONS)], causal, block_type,
                           f"{name}_block{index + 1}")
    return x


def _check(d, num_blocks, kernel_size, block_type):
    for key, value in dict(d=d, num_blocks=num_blocks, kernel_size=kernel_size).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")
    if block_type not in BLOCK_TYPES:
        raise ValueError(f"`block_type` must be one of {BLOCK_TYPES}. Received: block_type={block_type!r}")


def ByteNetTranslation(vocab_size=256, source_len=100, target_len=120, *, d=800, num_blocks=30,
                       kernel_size=3, block_type="relu", mode="train", name="bytenet"):
    """ByteNet encoder-decoder (arXiv:1610.10099, section 7 settings by default).

    Args:
        vocab_size: shared source/target vocabulary (256 for bytes; ids 0/1/2 are
            padding/start/end).
        source_len: fixed source length.
        target_len: fixed target length |t_hat| >= source_len; the source is padded to it
            (the paper picks |t_hat| = 1.2 |s| for English to German).
        d: hidden units; blocks carry 2d channels and embeddings are 2d wide.
        num_blocks: residual blocks in each of the encoder and decoder.
        kernel_size: width of the (masked) dilated convolutions.
        block_type: "relu" (Figure 3, left) or "mu" (right).
        mode: "train" (``[source_ids, target_in_ids] -> logits``), "encoder"
            (``source_ids -> representation (B, target_len, 2d)``) or "decoder"
            (``[target_in_ids, representation] -> logits``).
        name: model name.
    """
    _check(d, num_blocks, kernel_size, block_type)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if source_len is None or target_len is None or source_len > target_len:
        raise ValueError("ByteNet pads the source to the target bound |t_hat|: give fixed lengths with "
                         f"source_len <= target_len. Received: source_len={source_len}, "
                         f"target_len={target_len}")
    source = keras.Input(shape=(source_len,), dtype="int32", name="source_ids")
    target_in = keras.Input(shape=(target_len,), dtype="int32", name="target_in_ids")
    if mode == "decoder":
        representation = keras.Input(shape=(target_len, 2 * d), name="representation")
    else:
        x = keras.layers.Embedding(vocab_size, 2 * d, name=f"{name}_source_embedding")(source)
        x = keras.layers.ZeroPadding1D((0, target_len - source_len), name=f"{name}_unfold_padding")(x)
        representation = _stack(x, num_blocks, d, kernel_size, False, block_type, f"{name}_encoder")
        if mode == "encoder":
            return keras.Model(source, representation, name=f"{name}_encoder")
    y = keras.layers.Embedding(vocab_size, 2 * d, name=f"{name}_target_embedding")(target_in)
    y = keras.layers.Concatenate(name=f"{name}_stack_concat")([representation, y])
    y = keras.layers.Conv1D(2 * d, 1, name=f"{name}_stack_conv")(y)
    y = _stack(y, num_blocks, d, kernel_size, True, block_type, f"{name}_decoder")
    logits = _output(y, vocab_size, name)
    if mode == "decoder":
        return keras.Model([target_in, representation], logits, name=f"{name}_decoder")
    return keras.Model([source, target_in], logits, name=name)


def _output(y, vocab_size, name):
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_output_norm")(y)
    y = keras.layers.ReLU(name=f"{name}_output_relu")(y)
    return keras.layers.Conv1D(vocab_size, 1, name=f"{name}_logits")(y)


def ByteNetLM(vocab_size=256, seq_len=512, *, d=512, num_blocks=30, kernel_size=3, block_type="mu",
              name="bytenet_lm"):
    """ByteNet decoder as a byte-level language model (arXiv:1610.10099, section 6).

    Args:
        vocab_size: 256 for bytes.
        seq_len: input length (None: any length).
        d: hidden units (blocks carry 2d channels).
        num_blocks: residual blocks, dilations 1, 2, 4, 8, 16 repeated.
        kernel_size: masked kernel width.
        block_type: "mu" (paper's LM block) or "relu".
        name: model name.

    Returns a model mapping int32 ids (batch, seq_len) to next-token logits.
    """
    _check(d, num_blocks, kernel_size, block_type)
    ids = keras.Input(shape=(seq_len,), dtype="int32", name="ids")
    y = keras.layers.Embedding(vocab_size, 2 * d, name=f"{name}_embedding")(ids)
    y = _stack(y, num_blocks, d, kernel_size, True, block_type, f"{name}_decoder")
    return keras.Model(ids, _output(y, vocab_size, name), name=name)


def encoder_model(model, config):
    """The encoder graph (source padded to |t_hat|) with ``model``'s weights."""
    return copy_weights_by_layer_name(model, ByteNetTranslation(**{**config, "mode": "encoder"}))


def decoder_model(model, config):
    """The decoder graph (fixed |t_hat|, re-reads its prefix) with ``model``'s weights.

    Its ``export_examples`` maps the data's ``([source, target_in], target_out)`` pairs to the
    graph's inputs, so the export calibrates and verifies on held-out text (export/tflite.py).
    """
    decoder = copy_weights_by_layer_name(model, ByteNetTranslation(**{**config, "mode": "decoder"}))
    decoder.export_examples = functools.partial(_decoder_examples, model, config)
    return decoder


def _decoder_examples(model, config, pairs):
    """``[(inputs, targets)]`` batch-1 data pairs -> ``[([target_in, representation], targets)]``."""
    sources = np.concatenate([inputs[0] for inputs, _ in pairs]).astype(np.int32)
    representation = np.asarray(encoder_model(model, config)(sources, training=False))
    return [([inputs[1], representation[i:i + 1]], targets) for i, (inputs, targets) in enumerate(pairs)]


class ByteNetDecoder:
    """Greedy and beam-search decoding with dynamic unfolding (|t_hat| = a |s| + b)."""

    def __init__(self, model, config, a=1.2, b=0):
        self.encoder = encoder_model(model, config)
        self.decoder = decoder_model(model, config)
        self._encoder_fn = compiled_inference(self.encoder)
        self._decoder_fn = compiled_inference(self.decoder)
        self.target_len = config["target_len"]
        self.a, self.b = a, b
        self.step_fn = prefix_step_fn(self._predict, self.target_len)

    def _predict(self, context, prefix):
        return self._decoder_fn([prefix, context[0]])

    def unfolding_length(self, source_row):
        """|t_hat| for one source row (its non-padding length), capped at the model's target_len."""
        length = int(np.count_nonzero(np.asarray(source_row) != PAD_ID))
        return min(dynamic_unfolding_length(length, self.a, self.b), self.target_len)

    def _state(self, source_ids):
        representation = np.asarray(self._encoder_fn(np.asarray(source_ids, np.int32)))
        return initial_prefix_state([representation], self.target_len, PAD_ID)

    def greedy(self, source_ids):
        """Row by row, each unfolded to its own |t_hat|: a list of (tokens, log_prob)."""
        results = []
        for row in np.asarray(source_ids, np.int32):
            tokens, log_prob = greedy_search(self.step_fn, self._state(row[None]),
                                             np.array([START_ID], np.int32), END_ID,
                                             self.unfolding_length(row))
            results.append((tokens[0], float(log_prob[0])))
        return results

    def beam(self, source_ids, beam_width, length_penalty=0.0):
        return [beam_search(self.step_fn, self._state(row[None]), START_ID, END_ID, beam_width,
                            self.unfolding_length(row), length_penalty)
                for row in np.asarray(source_ids, np.int32)]


def _translation_inputs(config):
    return [InputSpec((config["source_len"],), "int32", maxval=config["vocab_size"]),
            InputSpec((config["target_len"],), "int32", maxval=config["vocab_size"])]


def _lm_inputs(config):
    return [InputSpec((config["seq_len"],), "int32", maxval=config["vocab_size"])]


_EXPORT = {"tflite": True,
           "edgetpu": "dilated Conv1D and LayerNormalization convert to builtins at fixed length; "
                      "Edge TPU mapping of LayerNorm's mean/rsqrt is not verified (no compiler here)"}

register_family(
    ByteNetTranslation,
    {
        # Section 7: 30 ReLU residual blocks in each of encoder and decoder, d = 800, k = 3.
        "bytenet_translation": dict(
            config=dict(vocab_size=256, source_len=100, target_len=120, d=800, num_blocks=30,
                        kernel_size=3, block_type="relu"),
            tiny=dict(vocab_size=40, source_len=6, target_len=8, d=8, num_blocks=6),
        ),
    },
    task="seq2seq",
    paper="1610.10099",
    input_spec=_translation_inputs,
    default_dataset="docstrings_reverse",
    inference_model=decoder_model,
    export=_EXPORT,
)

register_family(
    ByteNetLM,
    {
        # Section 6: 30 residual blocks (six sets of rates 1..16), d = 512, masked kernel 3.
        "bytenet_lm": dict(
            config=dict(vocab_size=256, seq_len=512, d=512, num_blocks=30, kernel_size=3, block_type="mu"),
            tiny=dict(seq_len=16, d=8, num_blocks=6),
        ),
    },
    task="language_model",
    paper="1610.10099",
    input_spec=_lm_inputs,
    default_dataset="docstrings_char",
    export=_EXPORT,
)
