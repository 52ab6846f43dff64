"""Additive (Bahdanau) and multiplicative (Luong) attention, and an attentive RNN decoder.

- ``BahdanauAttention``: Bahdanau, Cho & Bengio (2014, arXiv:1409.0473), eq. 6 and
  appendix A.1.2: ``e_ij = v^T tanh(W s_{i-1} + U h_j)``, ``a_ij = softmax_j(e_ij)``,
  ``c_i = sum_j a_ij h_j``.
- ``LuongAttention``: Luong, Pham & Manning (2015, arXiv:1508.04025), eq. 8:
  ``score(h_t, hbar_s) = h_t^T hbar_s`` ("dot") or ``h_t^T W_a hbar_s`` ("general").
- ``AttentiveDecoder``: the recurrent decoder of either paper, run over a whole
  target sequence (teacher forcing) or one step with explicit states (inference).

Both attention layers are called on a list ``[query, memory]`` or ``[query, memory,
memory_mask]``: ``query`` (batch, dq) or (batch, Tq, dq), ``memory`` (batch, Tk, dk) and
``memory_mask`` (batch, Tk), 1 for real source positions and 0 for padding. They
return the context vectors (and optionally the attention weights). Lists, not extra
call arguments, so that tf_keras builds them with every input's shape.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable

_NEG_INF = -1e9


def _masked_softmax(scores, memory_mask):
    if memory_mask is not None:
        mask = tf.cast(memory_mask, scores.dtype)
        if scores.shape.rank == 3:
            mask = mask[:, tf.newaxis, :]
        scores = scores + (1.0 - mask) * _NEG_INF
    return tf.nn.softmax(scores, axis=-1)


def _unpack_attention_inputs(inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
        raise ValueError("Attention layers are called on [query, memory] or [query, memory, "
                         f"memory_mask]. Received: {type(inputs).__name__} of "
                         f"{len(inputs) if isinstance(inputs, (list, tuple)) else 1} tensors")
    return inputs[0], inputs[1], (inputs[2] if len(inputs) == 3 else None)


class _Attention(keras.layers.Layer):
    """Shared call logic: ``score`` gives (batch, [Tq,] Tk) energies."""

    def __init__(self, return_attention_scores=False, **kwargs):
        super().__init__(**kwargs)
        self.return_attention_scores = return_attention_scores

    def call(self, inputs):
        query, memory, memory_mask = _unpack_attention_inputs(inputs)
        weights = _masked_softmax(self.score(query, memory), memory_mask)
        if query.shape.rank == 2:
            context = tf.einsum("bk,bkd->bd", weights, memory)
        else:
            context = tf.einsum("bqk,bkd->bqd", weights, memory)
        if self.return_attention_scores:
            return context, weights
        return context

    def get_config(self):
        return {**super().get_config(), "return_attention_scores": self.return_attention_scores}


@serializable
class BahdanauAttention(_Attention):
    """Additive attention (arXiv:1409.0473): ``v^T tanh(W query + U memory)``.

    Args:
        units: width of the alignment model (the paper's n' = 1000).
        return_attention_scores: also return the weights ``a`` (batch, [Tq,] Tk).

    Weights: ``query_kernel`` W (dq, units), ``memory_kernel`` U (dk, units),
    ``bias`` (units,), ``energy`` v (units,).
    """

    def __init__(self, units, return_attention_scores=False, **kwargs):
        super().__init__(return_attention_scores=return_attention_scores, **kwargs)
        self.units = int(units)

    def build(self, input_shape):
        query_shape, memory_shape = input_shape[0], input_shape[1]
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(int(query_shape[-1]), self.units), initializer="glorot_uniform")
        self.memory_kernel = self.add_weight(
            name="memory_kernel", shape=(int(memory_shape[-1]), self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.energy = self.add_weight(name="energy", shape=(self.units,), initializer="glorot_uniform")
        self.built = True

    def score(self, query, memory):
        keys = tf.einsum("bkd,du->bku", memory, self.memory_kernel)
        queries = tf.matmul(query, self.query_kernel) + self.bias
        if query.shape.rank == 2:
            hidden = tf.tanh(queries[:, tf.newaxis, :] + keys)
            return tf.einsum("bku,u->bk", hidden, self.energy)
        hidden = tf.tanh(queries[:, :, tf.newaxis, :] + keys[:, tf.newaxis, :, :])
        return tf.einsum("bqku,u->bqk", hidden, self.energy)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@serializable
class LuongAttention(_Attention):
    """Multiplicative attention (arXiv:1508.04025, eq. 8).

    Args:
        score_function: "general" (``h_t^T W_a hbar_s``, weight ``kernel`` (dq, dk))
            or "dot" (``h_t^T hbar_s``, no weights; dq must equal dk).
        return_attention_scores: also return the weights (batch, [Tq,] Tk).
    """

    SCORES = ("general", "dot")

    def __init__(self, score_function="general", return_attention_scores=False, **kwargs):
        super().__init__(return_attention_scores=return_attention_scores, **kwargs)
        if score_function not in self.SCORES:
            raise ValueError(f"`score_function` must be one of {self.SCORES}. "
                             f"Received: score_function={score_function!r}")
        self.score_function = score_function

    def build(self, input_shape):
        query_shape, memory_shape = input_shape[0], input_shape[1]
        query_dim, memory_dim = int(query_shape[-1]), int(memory_shape[-1])
        if self.score_function == "general":
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim, memory_dim), initializer="glorot_uniform")
        elif query_dim != memory_dim:
            raise ValueError("The 'dot' score needs query and memory of the same width; use "
                             f"score_function='general'. Received: query width {query_dim}, "
                             f"memory width {memory_dim}")
        self.built = True

    def score(self, query, memory):
        if self.score_function == "general":
            query = tf.matmul(query, self.kernel)
        if query.shape.rank == 2:
            return tf.einsum("bd,bkd->bk", query, memory)
        return tf.einsum("bqd,bkd->bqk", query, memory)

    def get_config(self):
        return {**super().get_config(), "score_function": self.score_function}


def _attention_inputs(query, memory, memory_mask):
    return [query, memory] if memory_mask is None else [query, memory, memory_mask]


@serializable
class PaddingMask(keras.layers.Layer):
    """``ids != pad_id`` as float32 (batch, T): the ``memory_mask`` of attention layers."""

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, ids):
        return tf.cast(tf.not_equal(ids, self.pad_id), tf.float32)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@serializable
class AttentiveDecoder(keras.layers.Layer):
    """Recurrent decoder with attention over an encoder memory.

    ``attention="bahdanau"`` (arXiv:1409.0473, appendix A.2.2): the previous state
    queries the memory and the context enters the recurrence,
    ``c_i = attend(s_{i-1})``, ``s_i = cell([y_{i-1}; c_i], s_{i-1})``; the output
    is ``[s_i; c_i]`` (the paper's deep-output readout takes the same inputs).

    ``attention="luong"`` (arXiv:1508.04025, sections 3 and 3.3): the new state
    queries the memory and an attentional vector is fed to the next step,
    ``s_i = cell([y_{i-1}; htilde_{i-1}], s_{i-1})``, ``c_i = attend(s_i)``,
    ``htilde_i = tanh(W_c [c_i; s_i])``; the output is ``htilde_i``.

    Call on ``[inputs, memory]``, ``[inputs, memory, memory_mask]`` or ``[inputs, memory,
    memory_mask, *initial_states]``; ``inputs`` are the embedded previous target tokens
    (batch, T, d), ``memory_mask`` as for the attention layers. Returns the outputs
    (batch, T, out) and, with ``return_state``, the final states: the cell states
    ((h, c) for LSTM, h for GRU), then for Luong ``htilde``. With
    ``return_attention_scores`` the attention weights (batch, T, Tk) come next.

    Args:
        units: recurrent width.
        cell: "lstm" or "gru".
        attention: "bahdanau" or "luong".
        attention_units: alignment-model width (Bahdanau only).
        score_function: Luong score, "general" or "dot".
        return_state, return_attention_scores: see above.
        unroll: a Python loop over a static number of steps instead of a
            ``tf.while_loop`` (single-step inference graphs convert to builtins).
    """

    CELLS = ("lstm", "gru")
    ATTENTIONS = ("bahdanau", "luong")

    def __init__(self, units, cell="lstm", attention="bahdanau", attention_units=None,
                 score_function="general", return_state=False, return_attention_scores=False,
                 unroll=False, **kwargs):
        super().__init__(**kwargs)
        if cell not in self.CELLS:
            raise ValueError(f"`cell` must be one of {self.CELLS}. Received: cell={cell!r}")
        if attention not in self.ATTENTIONS:
            raise ValueError(f"`attention` must be one of {self.ATTENTIONS}. "
                             f"Received: attention={attention!r}")
        self.units = int(units)
        self.cell_type = cell
        self.attention_type = attention
        self.attention_units = int(attention_units or units)
        self.score_function = score_function
        self.return_state = return_state
        self.return_attention_scores = return_attention_scores
        self.unroll = unroll
        cell_class = keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        self.cell = cell_class(self.units, name="cell")
        if attention == "bahdanau":
            self.attention = BahdanauAttention(self.attention_units, return_attention_scores=True,
                                               name="attention")
        else:
            self.attention = LuongAttention(score_function, return_attention_scores=True,
                                            name="attention")
            self.attentional = keras.layers.Dense(self.units, activation="tanh", use_bias=False,
                                                  name="attentional")

    @property
    def state_sizes(self):
        """Widths of the state tensors, in the order of ``initial_state``."""
        sizes = [self.units] * (2 if self.cell_type == "lstm" else 1)
        return sizes + ([self.units] if self.attention_type == "luong" else [])

    def build(self, input_shape):
        input_dim, memory_dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        batch_query = (None, self.units)
        self.attention.build([batch_query, (None, None, memory_dim)])
        if self.attention_type == "bahdanau":
            self.cell.build((None, input_dim + memory_dim))
        else:
            self.cell.build((None, input_dim + self.units))
            self.attentional.build((None, memory_dim + self.units))
        self.built = True

    def _step(self, x, states, memory, memory_mask):
        if self.attention_type == "bahdanau":
            cell_states = states
            context, weights = self.attention(_attention_inputs(cell_states[0], memory, memory_mask))
            h, new_cell_states = self.cell(tf.concat([x, context], -1), cell_states)
            new_cell_states = tf.nest.flatten(new_cell_states)
            return tf.concat([h, context], -1), new_cell_states, weights
        cell_states, previous_attentional = states[:-1], states[-1]
        h, new_cell_states = self.cell(tf.concat([x, previous_attentional], -1), cell_states)
        new_cell_states = tf.nest.flatten(new_cell_states)
        context, weights = self.attention(_attention_inputs(h, memory, memory_mask))
        attentional = self.attentional(tf.concat([context, h], -1))
        return attentional, new_cell_states + [attentional], weights

    def call(self, inputs):
        inputs, memory, *rest = inputs
        memory_mask, states = (rest[0] if rest else None), list(rest[1:])
        batch = tf.shape(inputs)[0]
        if not states:
            states = [tf.zeros((batch, size), inputs.dtype) for size in self.state_sizes]
        else:
            if len(states) != len(self.state_sizes):
                raise ValueError(
                    f"This decoder ({self.cell_type}, {self.attention_type}) takes "
                    f"{len(self.state_sizes)} initial states of widths {self.state_sizes}. "
                    f"Received: {len(states)} tensors.")
        if self.unroll:
            if inputs.shape[1] is None:
                raise ValueError("`unroll=True` needs a static number of decoder steps. "
                                 f"Received: inputs of shape {inputs.shape}")
            outputs, alignments = [], []
            for t in range(inputs.shape[1]):
                output, states, weights = self._step(inputs[:, t], states, memory, memory_mask)
                outputs.append(output)
                alignments.append(weights)
            outputs, alignments = tf.stack(outputs, 1), tf.stack(alignments, 1)
        else:
            outputs, alignments, states = self._scan(inputs, states, memory, memory_mask)
        result = [outputs]
        if self.return_state:
            result += list(states)
        if self.return_attention_scores:
            result.append(alignments)
        return result[0] if len(result) == 1 else result

    def _scan(self, inputs, states, memory, memory_mask):
        steps = tf.shape(inputs)[1]
        time_major = tf.transpose(inputs, [1, 0, 2])
        outputs_ta = tf.TensorArray(inputs.dtype, size=steps)
        weights_ta = tf.TensorArray(inputs.dtype, size=steps)

        def body(t, states, outputs_ta, weights_ta):
            output, new_states, weights = self._step(time_major[t], list(states), memory, memory_mask)
            return t + 1, new_states, outputs_ta.write(t, output), weights_ta.write(t, weights)

        _, states, outputs_ta, weights_ta = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), states, outputs_ta, weights_ta))
        outputs = tf.transpose(outputs_ta.stack(), [1, 0, 2])
        alignments = tf.transpose(weights_ta.stack(), [1, 0, 2])
        return outputs, alignments, list(states)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell_type,
            "attention": self.attention_type,
            "attention_units": self.attention_units,
            "score_function": self.score_function,
            "return_state": self.return_state,
            "return_attention_scores": self.return_attention_scores,
            "unroll": self.unroll,
        }
