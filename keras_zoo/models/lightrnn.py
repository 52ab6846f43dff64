"""LightRNN: memory-efficient language model with a 2-component word table (Li et al., 2016, arXiv:1610.09893).

Every word sits in one cell (row, column) of an R x C table, R = C = ceil(sqrt(V));
words in a row share the row's embedding, words in a column the column's, so
the model stores 2 sqrt(V) input and 2 sqrt(V) output vectors instead of 2V.
The LSTM reads each word as two steps, its row vector then its column vector
(section 3.1):

    h^c_{t-1} -> P_r(r | h^c_{t-1}) = softmax(Y^r h^c_{t-1})        row of w_t
    h^r_t = LSTM(x^r_{r(w_t)}, h^c_{t-1})                            conditioned on the row
    h^r_t -> P_c(c | h^r_t) = softmax(Y^c h^r_t)                     column of w_t
    P(w_t) = P_r(r(w_t)) P_c(c(w_t))

The model returns log P for every word (batch, T, V): for the column softmax of
each candidate row r, one LSTM step from h^c_{t-1} with input x^r_r. Table cells
without a word (R C > V) get no probability: the output is renormalised over the
V words, so it is a normalised log-distribution and the shared ``language_model``
task's softmax cross-entropy on it is exactly -log P.

Word reallocation (section 3.2): after an epoch, ``reallocate`` sums over the
training data the loss l(w, r, c) = l_r(w, r) + l_c(w, c) of placing word w in
cell (r, c) and solves the minimum-cost assignment of words to cells with
``scipy.optimize.linear_sum_assignment`` (exact; the paper uses a 1/2-approximate
min-cost-flow for speed; the dense V x R C cost matrix limits this to vocabularies
of a few ten thousand words). ``LightRNNReallocation`` runs it as an epoch-end
callback; ``training.train --lightrnn_reallocation_batches=N`` adds it.

The registered ``lightrnn_lm`` (10k words, 512-d vectors, one 512-unit LSTM) is
sized like the other PTB-scale models here, not taken from the paper's
ACLW / One Billion Word configurations.
"""
import math

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family

PAPER = "1610.09893"


def table_size(vocab_size):
    """R = C = ceil(sqrt(V)), the side of the word table."""
    return int(math.ceil(math.sqrt(vocab_size)))


@serializable
class LightRNNCore(keras.layers.Layer):
    """Row/column embeddings, a 1-layer LSTM over row-then-column steps, and the two softmaxes.

    Call on ids (batch, T) int32 -> log P (batch, T, V), the distribution of the
    next word after each position. With ``[ids (batch, 1), h, c]`` it runs one
    word from an explicit state and returns ``[log P (batch, 1, V), h, c]``.
    The allocation (``word_row``, ``word_column``) is a non-trainable weight,
    so it is saved with the model; it starts row-major in word-id order.
    """

    def __init__(self, vocab_size, embedding_dim, units, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.side = table_size(vocab_size)

    def build(self, input_shape):
        side, e, u = self.side, self.embedding_dim, self.units
        # One initializer instance per weight: tf_keras repeats an unseeded instance's values.
        self.row_embedding = self.add_weight(name="row_embedding", shape=(side, e),
                                             initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        self.column_embedding = self.add_weight(name="column_embedding", shape=(side, e),
                                                initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        self.kernel = self.add_weight(name="kernel", shape=(e, 4 * u), initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(u, 4 * u), initializer="orthogonal")
        self.bias = self.add_weight(name="bias", shape=(4 * u,), initializer="zeros")
        self.row_output = self.add_weight(name="row_output", shape=(u, side), initializer="glorot_uniform")
        self.column_output = self.add_weight(name="column_output", shape=(u, side), initializer="glorot_uniform")
        words = np.arange(self.vocab_size)
        self.word_row = self.add_weight(name="word_row", shape=(self.vocab_size,), dtype="int32", trainable=False,
                                        initializer=keras.initializers.Constant(words // side))
        self.word_column = self.add_weight(name="word_column", shape=(self.vocab_size,), dtype="int32",
                                           trainable=False, initializer=keras.initializers.Constant(words % side))
        super().build(input_shape)

    def _cell(self, x_projection, h, c):
        """LSTM step (Hochreiter & Schmidhuber) from the input's projection x W."""
        i, f, g, o = tf.split(x_projection + tf.matmul(h, self.recurrent_kernel) + self.bias, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _read_word(self, ids, h, c):
        rows = tf.gather(tf.convert_to_tensor(self.word_row), ids)
        columns = tf.gather(tf.convert_to_tensor(self.word_column), ids)
        h, c = self._cell(tf.matmul(tf.gather(self.row_embedding, rows), self.kernel), h, c)
        return self._cell(tf.matmul(tf.gather(self.column_embedding, columns), self.kernel), h, c)

    def factor_log_probs(self, h, c):
        """log P_r (..., R) from h^c, and log P_c (..., R, C) for each candidate row."""
        log_rows = tf.nn.log_softmax(tf.matmul(h, self.row_output), axis=-1)
        row_inputs = tf.matmul(tf.convert_to_tensor(self.row_embedding), self.kernel)  # (R, 4u)
        h_rows, _ = self._cell(row_inputs, h[..., None, :], c[..., None, :])
        log_columns = tf.nn.log_softmax(tf.matmul(h_rows, self.column_output), axis=-1)
        return log_rows, log_columns

    def word_log_probs(self, h, c):
        log_rows, log_columns = self.factor_log_probs(h, c)
        joint = log_rows[..., None] + log_columns
        flat = tf.reshape(joint, tf.concat([tf.shape(joint)[:-2], [self.side * self.side]], axis=0))
        slots = tf.convert_to_tensor(self.word_row) * self.side + tf.convert_to_tensor(self.word_column)
        return tf.nn.log_softmax(tf.gather(flat, slots, axis=-1), axis=-1)

    def hidden_states(self, ids):
        """(h, c) after each word's row and column steps, (batch, T, units) each, from zero state."""
        ids = tf.cast(ids, tf.int32)
        zeros = tf.zeros(tf.stack([tf.shape(ids)[0], self.units]), self.compute_dtype)

        def step(carry, word):
            return self._read_word(word, *carry)

        h, c = tf.scan(step, tf.transpose(ids), initializer=(zeros, zeros))
        return tf.transpose(h, [1, 0, 2]), tf.transpose(c, [1, 0, 2])

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            ids, h, c = inputs
            h, c = self._read_word(tf.cast(ids[:, 0], tf.int32), h, c)
            return [self.word_log_probs(h, c)[:, None, :], h, c]
        return self.word_log_probs(*self.hidden_states(inputs))

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            batch = input_shape[0][0]
            return [(batch, 1, self.vocab_size), (batch, self.units), (batch, self.units)]
        return (*tuple(input_shape), self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "units": self.units}


def LightRNNLanguageModel(vocab_size=10000, seq_len=35, *, embedding_dim=512, units=512, step=False,
                          name="lightrnn_lm"):
    """LightRNN language model (arXiv:1610.09893); returns log-probabilities over the vocabulary.

    Args:
        vocab_size: number of token ids V; the table is ceil(sqrt(V)) square.
        seq_len: training length T (None: any length).
        embedding_dim: width of the row and column input vectors.
        units: LSTM units (the row/column output vectors have this width).
        step: build the single-word graph: inputs ``[ids (batch, 1), h, c]``,
            outputs ``[log P (batch, 1, V), h, c]``; zeros are the state before
            the first word.
        name: model name.
    """
    for key, value in dict(vocab_size=vocab_size, embedding_dim=embedding_dim, units=units).items():
        if not isinstance(value, int) or value < (2 if key == "vocab_size" else 1):
            raise ValueError(f"`{key}` must be a positive integer (vocab_size >= 2). Received: {key}={value!r}")
    core = LightRNNCore(vocab_size, embedding_dim, units, name=f"{name}_core")
    ids = keras.Input(shape=(1,) if step else (seq_len,), dtype="int32", name="ids")
    if not step:
        return keras.Model(ids, core(ids), name=name)
    states = [keras.Input(shape=(units,), name=f"{name}_{kind}") for kind in ("h", "c")]
    return keras.Model([ids, *states], core([ids, *states]), name=f"{name}_step")


def _core(model):
    cores = [layer for layer in model.layers if isinstance(layer, LightRNNCore)]
    if len(cores) != 1:
        raise ValueError(f"Expected a LightRNN model built by LightRNNLanguageModel. Received: model {model.name!r}")
    return cores[0]


def inference_model(trained_model, config):
    """Single-word graph with explicit (h, c), sharing the trained weights and allocation."""
    step = LightRNNLanguageModel(**{**config, "seq_len": 1, "step": True})
    step.set_weights(trained_model.get_weights())
    return step


def allocation_costs(model, id_batches):
    """Summed losses l_r (V, R) and l_c (V, C) of moving each word to each row / column (section 3.2).

    ``id_batches``: iterable of int id arrays (batch, T + 1): positions 0..T-1
    are read, positions 1..T are the words whose placement is scored.
    l_r(w, r) = -sum over occurrences of w of log P_r(r | h^c); l_c(w, c) the
    same for log P_c(c) given the word's current row.
    """
    core = _core(model)
    side, vocab = core.side, core.vocab_size
    row_cost, column_cost = np.zeros((vocab, side)), np.zeros((vocab, side))
    current_row = np.asarray(core.word_row)
    for batch in id_batches:
        batch = np.asarray(batch)
        h, c = core.hidden_states(batch[:, :-1])
        log_rows, log_columns = (np.asarray(x) for x in core.factor_log_probs(h, c))
        targets = batch[:, 1:].reshape(-1)
        log_rows = log_rows.reshape(-1, side)
        log_columns = log_columns.reshape(-1, side, side)[np.arange(targets.size), current_row[targets]]
        np.add.at(row_cost, targets, -log_rows)
        np.add.at(column_cost, targets, -log_columns)
    return row_cost, column_cost


def reallocate(model, id_batches):
    """Moves every word to the cell of the minimum-cost assignment; returns the mean cost change per word."""
    from scipy.optimize import linear_sum_assignment

    core = _core(model)
    row_cost, column_cost = allocation_costs(model, id_batches)
    side = core.side
    cost = (row_cost[:, :, None] + column_cost[:, None, :]).reshape(core.vocab_size, side * side)
    words, slots = linear_sum_assignment(cost)
    old_slots = np.asarray(core.word_row) * side + np.asarray(core.word_column)
    before = cost[np.arange(core.vocab_size), old_slots].sum()
    core.word_row.assign(np.asarray(slots // side, "int32")[np.argsort(words)])
    core.word_column.assign(np.asarray(slots % side, "int32")[np.argsort(words)])
    return float((cost[words, slots].sum() - before) / core.vocab_size)


class LightRNNReallocation(keras.callbacks.Callback):
    """Epoch-end word reallocation (section 3.2) on ``num_batches`` batches of a token dataset.

    ``dataset`` yields (inputs, targets) language-model batches; the words of
    inputs followed by the last target are scored.
    """

    def __init__(self, dataset, num_batches=20):
        super().__init__()
        self.dataset, self.num_batches = dataset, num_batches

    def on_epoch_end(self, epoch, logs=None):
        batches = (np.concatenate([np.asarray(x), np.asarray(y)[:, -1:]], axis=1)
                   for x, y in self.dataset.take(self.num_batches))
        change = reallocate(self.model, batches)
        if logs is not None:
            logs["lightrnn_reallocation_cost_change"] = change


def embedding_parameters(vocab_size, embedding_dim, units):
    """Input + output embedding parameters: (LightRNN, standard softmax LM of the same widths, ratio).

    A standard LM stores V input vectors and a V-way softmax (V units weights + V
    biases); LightRNN stores 2 sqrt(V) input and 2 sqrt(V) output vectors.
    """
    side = table_size(vocab_size)
    light = 2 * side * embedding_dim + 2 * side * units
    standard = vocab_size * embedding_dim + vocab_size * units + vocab_size
    return light, standard, standard / light


def _inputs(config):
    return [InputSpec((config["seq_len"] or 32,), "int32", maxval=config["vocab_size"])]


register_family(
    LightRNNLanguageModel,
    {
        "lightrnn_lm": dict(
            config=dict(vocab_size=10000, seq_len=35, embedding_dim=512, units=512, name="lightrnn_lm"),
            tiny=dict(vocab_size=23, seq_len=6, embedding_dim=6, units=8),
        ),
    },
    task="language_model",
    paper=PAPER,
    input_spec=_inputs,
    default_dataset="docstrings_word",
    inference_model=inference_model,
    export={"tflite": True,
            "edgetpu": "the gathers of the row/column tables and the V-way log-softmax gather are not "
                       "verified on Edge TPU compiler 16 (no compiler here)"},
)
