"""Pointer sentinel mixture language model (Merity, Xiong, Bradbury & Socher, 2016, arXiv:1609.07843).

An LSTM language model whose next-word distribution mixes the softmax over the
vocabulary with a pointer over the last ``L`` input words (section 2):

    q = tanh(W h_N + b)                 query from the current hidden state
    z_i = q . h_i                       scores of the window's hidden states
    [a; g] = softmax([z; q . s])        the sentinel s is one extra slot
    p(y) = g p_vocab(y) + sum_{i in I(y, x)} a_i

``g`` is the sentinel's share of the joint softmax and ``1 - g = sum_i a_i``, so
``(1 - g) p_ptr(y) = sum_{i in I(y, x)} a_i`` with ``I(y, x)`` the window
positions holding word ``y``: pointer mass reaches only words seen in the window.

Output convention: the model returns **log-probabilities** ``log p(y)`` (batch,
T, vocab). They are normalised, so the softmax cross-entropy "from logits" of
the shared ``language_model`` task is exactly ``-log p(y)`` (log_softmax of a
normalised log-distribution is itself), and Perplexity/BitsPerToken are exact.

The PTB model of the paper (section 5.2) is the Zaremba et al. "medium" LSTM:
2 layers of 650 units, 650-d embeddings, dropout 0.5, a window of L = 100 words
over 100-step BPTT; the paper's Table 2 lists it at 21M parameters (the
hand count ``pointer_sentinel_params`` gives 20,199,000 for the 10k-word PTB).
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.models.rnn import recurrent_layer
from keras_zoo.registry import InputSpec, register_family

PAPER = "1609.07843"
_NEGATIVE = -1e9  # masked pointer scores: exp underflows to exactly 0 in float32


@serializable
class PointerSentinelMixture(keras.layers.Layer):
    """The pointer sentinel mixture of arXiv:1609.07843 (section 2), in log space.

    Args:
        window: L, the number of most recent words (the current one included)
            the pointer can copy.

    Call on ``[h, logits, ids]``: RNN outputs (batch, T, H), vocabulary logits
    (batch, T, V) and the input ids (batch, T) int32; position ``t`` points at
    ``ids[t - L + 1 .. t]``. Returns log p (batch, T, V).

    Call on ``[h, logits, ids, memory_h, memory_ids, memory_valid]`` to continue
    a sequence: the memory (batch, M, ...) holds the M previous steps' hidden
    states, ids and a 0/1 validity flag (zeros before the first word). Returns
    ``[log p, new_memory_h, new_memory_ids, new_memory_valid]`` (the last M steps).
    """

    def __init__(self, window=100, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` (L) must be a positive integer. Received: window={window!r}")
        self.window = window

    def build(self, input_shape):
        units = int(input_shape[0][-1])
        self.query_kernel = self.add_weight(name="query_kernel", shape=(units, units),
                                            initializer="glorot_uniform")
        self.query_bias = self.add_weight(name="query_bias", shape=(units,), initializer="zeros")
        self.sentinel = self.add_weight(name="sentinel", shape=(units, 1), initializer="glorot_uniform")
        super().build(input_shape)

    def call(self, inputs):
        h, logits, ids = inputs[0], inputs[1], tf.cast(inputs[2], tf.int32)
        steps = tf.shape(h)[1]
        with_memory = len(inputs) == 6
        if with_memory:
            memory_h, memory_ids, memory_valid = inputs[3], tf.cast(inputs[4], tf.int32), inputs[5]
            keys = tf.concat([tf.cast(memory_h, h.dtype), h], axis=1)
            key_ids = tf.concat([memory_ids, ids], axis=1)
            key_valid = tf.concat([tf.cast(memory_valid, h.dtype), tf.ones_like(h[..., 0])], axis=1)
            memory_size = tf.shape(memory_h)[1]
        else:
            keys, key_ids, key_valid, memory_size = h, ids, tf.ones_like(h[..., 0]), 0
        kernel, bias, sentinel = (tf.convert_to_tensor(w) for w in (self.query_kernel, self.query_bias, self.sentinel))
        query = tf.tanh(tf.matmul(h, kernel) + bias)
        scores = tf.matmul(query, keys, transpose_b=True)  # (batch, T, M + T)
        position = tf.range(steps)[:, None] + memory_size
        key_position = tf.range(tf.shape(keys)[1])[None, :]
        in_window = (key_position <= position) & (key_position > position - self.window)
        allowed = in_window[None] & (key_valid[:, None, :] > 0.5)
        scores = tf.where(allowed, scores, tf.fill(tf.shape(scores), tf.constant(_NEGATIVE, scores.dtype)))
        sentinel_score = tf.matmul(query, sentinel)  # (batch, T, 1)
        joint = tf.nn.softmax(tf.concat([scores, sentinel_score], axis=-1), axis=-1)
        attention, gate = joint[..., :-1], joint[..., -1:]
        vocab = tf.shape(logits)[-1]
        copies = tf.one_hot(key_ids, vocab, dtype=h.dtype)  # (batch, M + T, V)
        pointer = tf.matmul(attention, copies)
        probabilities = gate * tf.nn.softmax(logits, axis=-1) + pointer
        log_p = tf.math.log(tf.maximum(probabilities, 1e-30))
        if not with_memory:
            return log_p
        return [log_p, keys[:, -memory_size:], key_ids[:, -memory_size:], key_valid[:, -memory_size:]]

    def compute_output_shape(self, input_shape):
        out = tuple(input_shape[1])
        if len(input_shape) == 6:
            return [out, tuple(input_shape[3]), tuple(input_shape[4]), tuple(input_shape[5])]
        return out

    def get_config(self):
        return {**super().get_config(), "window": self.window}


def _check(name, value, ok, fix):
    if not ok:
        raise ValueError(f"`{name}` {fix}. Received: {name}={value!r}")


def PointerSentinelLM(vocab_size=10000, seq_len=100, *, embedding_dim=650, units=650, num_layers=2,
                      window=100, dropout=0.5, step=False, name="pointer_sentinel_lm"):
    """Pointer sentinel-LSTM language model (arXiv:1609.07843); returns log-probabilities.

    Args:
        vocab_size: number of token ids (10,000 for the Mikolov PTB).
        seq_len: training length T (paper: 100-step BPTT), or None.
        embedding_dim: word embedding width (paper: 650).
        units: LSTM units of every layer (paper: 650).
        num_layers: stacked LSTM layers (paper: 2).
        window: L, how many recent words the pointer can copy (paper: 100).
        dropout: dropout on the embedding and every LSTM output (paper: 0.5).
        step: build the single-step inference graph: inputs ``[ids (batch, 1),
            h and c of every layer, memory_h (batch, L - 1, units), memory_ids
            (batch, L - 1) int32, memory_valid (batch, L - 1)]``, outputs
            ``[log p (batch, 1, vocab), new states..., new memories...]``; zeros
            are the states before the first word.
        name: model name.

    Input: int32 ids (batch, T). Output: log p (batch, T, vocab_size).
    """
    for key, value in dict(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units,
                           num_layers=num_layers).items():
        _check(key, value, isinstance(value, int) and value > 0, "must be a positive integer")
    _check("window", window, isinstance(window, int) and window >= 2,
           "must be an integer >= 2 (the pointer window L, paper: 100)")
    _check("dropout", dropout, 0.0 <= dropout < 1.0, "must be in [0, 1)")
    ids = keras.Input(shape=(1,) if step else (seq_len,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")(ids)
    x = keras.layers.Dropout(dropout, name=f"{name}_embedding_dropout")(x)
    states_in, states_out = [], []
    for index in range(1, num_layers + 1):
        layer = recurrent_layer("lstm", units, return_state=step, unroll=step, name=f"{name}_{index}_lstm")
        if step:
            initial = [keras.Input(shape=(units,), name=f"{name}_{index}_lstm_{kind}") for kind in ("h", "c")]
            x, *new_states = layer(x, initial_state=initial)
            states_in += initial
            states_out += new_states
        else:
            x = layer(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_{index}_dropout")(x)
    logits = keras.layers.Dense(vocab_size, name=f"{name}_logits")(x)
    mixture = PointerSentinelMixture(window, name=f"{name}_pointer_sentinel")
    if not step:
        return keras.Model(ids, mixture([x, logits, ids]), name=name)
    memory = [
        keras.Input(shape=(window - 1, units), name=f"{name}_memory_h"),
        keras.Input(shape=(window - 1,), dtype="int32", name=f"{name}_memory_ids"),
        keras.Input(shape=(window - 1,), name=f"{name}_memory_valid"),
    ]
    log_p, *new_memory = mixture([x, logits, ids, *memory])
    return keras.Model([ids, *states_in, *memory], [log_p, *states_out, *new_memory], name=f"{name}_step")


def inference_model(trained_model, config):
    """Single-step graph with explicit LSTM states and pointer memory, sharing the weights."""
    step = PointerSentinelLM(**{**config, "seq_len": 1, "step": True})
    step.set_weights(trained_model.get_weights())
    return step


def pointer_sentinel_params(vocab_size, embedding_dim, units, num_layers):
    """Parameter count by hand: embedding + LSTMs + softmax + query (W, b) + sentinel."""
    count, width = vocab_size * embedding_dim, embedding_dim
    for _ in range(num_layers):
        count += 4 * units * (width + units + 1)
        width = units
    return count + units * vocab_size + vocab_size + units * units + units + units


def _inputs(config):
    return [InputSpec((config["seq_len"] or 32,), "int32", maxval=config["vocab_size"])]


register_family(
    PointerSentinelLM,
    {
        "pointer_sentinel_lm": dict(
            config=dict(vocab_size=10000, seq_len=100, embedding_dim=650, units=650, num_layers=2,
                        window=100, dropout=0.5, name="pointer_sentinel_lm"),
            tiny=dict(vocab_size=30, seq_len=12, embedding_dim=8, units=8, window=5),
        ),
    },
    task="language_model",
    paper=PAPER,
    input_spec=_inputs,
    default_dataset="docstrings_word",
    inference_model=inference_model,
    export={"tflite": True,
            "edgetpu": "the pointer's one-hot scatter (ONE_HOT, BATCH_MATMUL over the vocabulary) and "
                       "the float log are not verified on Edge TPU compiler 16 (no compiler here)"},
)
