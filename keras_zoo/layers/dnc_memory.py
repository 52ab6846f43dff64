"""Differentiable Neural Computer memory access (Graves et al., 2016, Nature 538:471,
"Hybrid computing using a neural network with dynamic external memory", Methods).

Each equation of the paper's Methods section is one pure TensorFlow function on
batch-major tensors, so it can be tested against a NumPy transcription:

========================  =========================================  ==================
function                  paper                                      shapes (batch B)
========================  =========================================  ==================
``split_interface``       interface vector ξ_t and its constraints   (B, WR+3W+5R+3)
``content_weighting``     C(M, k, β), cosine similarity D            (B, H, N)
``memory_retention``      ψ_t = Π_i (1 - f_t^i w_{t-1}^{r,i})        (B, N)
``update_usage``          u_t = (u + w^w - u∘w^w) ∘ ψ_t              (B, N)
``allocation_weighting``  a_t from the free list φ_t                  (B, N)
``write_weighting``       w^w_t = g^w [g^a a_t + (1 - g^a) c^w_t]    (B, N)
``update_memory``         M_t = M ∘ (E - w^w e^T) + w^w v^T          (B, N, W)
``update_precedence``     p_t = (1 - Σ_i w^w[i]) p_{t-1} + w^w       (B, N)
``update_link``           L_t[i,j], zero diagonal                    (B, N, N)
``directional_weightings``f_t = L_t w^r_{t-1}, b_t = L_t^T w^r_{t-1}  (B, R, N)
``read_weighting``        w^r = π[1] b + π[2] c + π[3] f             (B, R, N)
``read_vectors``          r^i_t = M_t^T w^{r,i}_t                    (B, R, W)
========================  =========================================  ==================

Two numerical choices the paper leaves open, both as in DeepMind's reference:
norms in D are ``sqrt(Σx² + ε)`` (ε = 1e-6), since memory starts at zero and the
gradient of ``sqrt`` at 0 is infinite; the allocation's exclusive product over the
sorted usage is a masked ``reduce_prod`` rather than ``tf.math.cumprod``, whose
gradient divides by its input (NaN at zero usage, i.e. at every reset) and which
has no TFLite builtin. The sort is ``tf.math.top_k`` (TFLite TOPK_V2); as in the
paper, no gradient flows through the sort order itself.

``DNCCell`` wires these into one time step with an LSTM controller, for
``keras.layers.RNN``; all its state is explicit (flattened per tensor), so a single
step exports to TFLite with builtin ops.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable

#: Keeps the norms in the cosine similarity differentiable at zero vectors.
EPSILON = 1e-6


def oneplus(x):
    """oneplus(x) = 1 + log(1 + e^x), the paper's map to [1, inf) for strengths."""
    return 1.0 + tf.math.softplus(x)


def interface_size(word_size, num_reads):
    """|ξ_t| = W·R + 3W + 5R + 3."""
    return word_size * num_reads + 3 * word_size + 5 * num_reads + 3


def split_interface(interface, word_size, num_reads):
    """Splits ξ_t (B, W·R + 3W + 5R + 3) into the paper's named, constrained parts.

    Order and constraints as in Methods ("Interface parameters"): read keys (R, W),
    read strengths oneplus (R), write key (W), write strength oneplus (1), erase
    vector sigmoid (W), write vector (W), free gates sigmoid (R), allocation gate
    sigmoid (1), write gate sigmoid (1), read modes softmax over 3 per head (R, 3).
    """
    w, r = word_size, num_reads
    sizes = [r * w, r, w, 1, w, w, r, 1, 1, 3 * r]
    parts = tf.split(interface, sizes, axis=-1)
    return {
        "read_keys": tf.reshape(parts[0], [-1, r, w]),
        "read_strengths": oneplus(parts[1]),
        "write_key": parts[2][:, None, :],
        "write_strength": oneplus(parts[3]),
        "erase_vector": tf.sigmoid(parts[4]),
        "write_vector": parts[5],
        "free_gates": tf.sigmoid(parts[6]),
        "allocation_gate": tf.sigmoid(parts[7]),
        "write_gate": tf.sigmoid(parts[8]),
        "read_modes": tf.nn.softmax(tf.reshape(parts[9], [-1, r, 3]), axis=-1),
    }


def cosine_similarity(memory, keys):
    """D(k, M[i, ·]) for every key and row: (B, N, W), (B, H, W) -> (B, H, N)."""
    dot = tf.matmul(keys, memory, transpose_b=True)
    key_norm = tf.sqrt(tf.reduce_sum(tf.square(keys), axis=-1) + EPSILON)
    memory_norm = tf.sqrt(tf.reduce_sum(tf.square(memory), axis=-1) + EPSILON)
    return dot / (key_norm[:, :, None] * memory_norm[:, None, :])


def content_weighting(memory, keys, strengths):
    """C(M, k, β)[i] = softmax_i(β D(k, M[i, ·])): keys (B, H, W), strengths (B, H)."""
    return tf.nn.softmax(cosine_similarity(memory, keys) * strengths[:, :, None], axis=-1)


def memory_retention(free_gates, prev_read_weights):
    """ψ_t = Π_i (1 - f_t^i w_{t-1}^{r,i}): free gates (B, R), read weights (B, R, N)."""
    return tf.reduce_prod(1.0 - free_gates[:, :, None] * prev_read_weights, axis=1)


def update_usage(prev_usage, prev_write_weights, retention):
    """u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} ∘ w^w_{t-1}) ∘ ψ_t."""
    return (prev_usage + prev_write_weights - prev_usage * prev_write_weights) * retention


def allocation_weighting(usage):
    """a_t[φ_t[j]] = (1 - u_t[φ_t[j]]) Π_{i<j} u_t[φ_t[i]], φ_t = usage sorted ascending."""
    num_slots = usage.shape[-1]
    _, free_list = tf.math.top_k(-usage, k=num_slots)
    sorted_usage = tf.gather(usage, free_list, batch_dims=1)
    # before[j, i] is True for i < j: the strictly-lower-triangular exclusive product.
    before = tf.linalg.band_part(tf.ones([num_slots, num_slots], tf.bool), -1, 0)
    before = tf.logical_and(before, tf.logical_not(tf.eye(num_slots, dtype=tf.bool)))
    products = tf.reduce_prod(
        tf.where(before[None], sorted_usage[:, None, :], tf.ones_like(sorted_usage)[:, None, :]), axis=-1)
    sorted_allocation = (1.0 - sorted_usage) * products
    # Scatter back to slot order: a[k] = Σ_j [φ[j] = k] sorted_allocation[j].
    unsort = tf.one_hot(free_list, num_slots, dtype=usage.dtype)
    return tf.squeeze(tf.matmul(sorted_allocation[:, None, :], unsort), axis=1)


def write_weighting(allocation, write_content, allocation_gate, write_gate):
    """w^w_t = g^w_t [g^a_t a_t + (1 - g^a_t) c^w_t]; gates (B, 1), weightings (B, N)."""
    return write_gate * (allocation_gate * allocation + (1.0 - allocation_gate) * write_content)


def update_memory(memory, write_weights, erase_vector, write_vector):
    """M_t = M_{t-1} ∘ (E - w^w e^T) + w^w v^T."""
    erase = write_weights[:, :, None] * erase_vector[:, None, :]
    return memory * (1.0 - erase) + write_weights[:, :, None] * write_vector[:, None, :]


def update_precedence(prev_precedence, write_weights):
    """p_t = (1 - Σ_i w^w_t[i]) p_{t-1} + w^w_t."""
    return (1.0 - tf.reduce_sum(write_weights, axis=-1, keepdims=True)) * prev_precedence + write_weights


def update_link(prev_link, prev_precedence, write_weights):
    """L_t[i, j] = (1 - w^w[i] - w^w[j]) L_{t-1}[i, j] + w^w[i] p_{t-1}[j], L_t[i, i] = 0."""
    num_slots = write_weights.shape[-1]
    w_i = write_weights[:, :, None]
    w_j = write_weights[:, None, :]
    link = (1.0 - w_i - w_j) * prev_link + w_i * prev_precedence[:, None, :]
    return link * (1.0 - tf.eye(num_slots, dtype=link.dtype))[None]


def directional_weightings(link, prev_read_weights):
    """Forward f_t^i = L_t w^{r,i}_{t-1} and backward b_t^i = L_t^T w^{r,i}_{t-1}, each (B, R, N)."""
    forward = tf.matmul(prev_read_weights, link, transpose_b=True)
    backward = tf.matmul(prev_read_weights, link)
    return forward, backward


def read_weighting(backward, content, forward, read_modes):
    """w^{r,i}_t = π^i[1] b^i_t + π^i[2] c^{r,i}_t + π^i[3] f^i_t; modes (B, R, 3)."""
    return (read_modes[:, :, 0:1] * backward + read_modes[:, :, 1:2] * content
            + read_modes[:, :, 2:3] * forward)


def read_vectors(memory, read_weights):
    """r^i_t = M_t^T w^{r,i}_t: (B, N, W), (B, R, N) -> (B, R, W)."""
    return tf.matmul(read_weights, memory)


def memory_step(interface, memory, usage, link, precedence, read_weights, write_weights,
                word_size, num_reads):
    """One memory access of the paper, in its order: allocate, write, link, read.

    Returns ``(read_vectors, memory, usage, link, precedence, read_weights, write_weights)``
    at time t from the interface ξ_t and the state at t - 1.
    """
    xi = split_interface(interface, word_size, num_reads)
    retention = memory_retention(xi["free_gates"], read_weights)
    usage = update_usage(usage, write_weights, retention)
    write_content = content_weighting(memory, xi["write_key"], xi["write_strength"])[:, 0]
    new_write_weights = write_weighting(allocation_weighting(usage), write_content,
                                        xi["allocation_gate"], xi["write_gate"])
    memory = update_memory(memory, new_write_weights, xi["erase_vector"], xi["write_vector"])
    link = update_link(link, precedence, new_write_weights)
    precedence = update_precedence(precedence, new_write_weights)
    forward, backward = directional_weightings(link, read_weights)
    read_content = content_weighting(memory, xi["read_keys"], xi["read_strengths"])
    new_read_weights = read_weighting(backward, read_content, forward, xi["read_modes"])
    reads = read_vectors(memory, new_read_weights)
    return reads, memory, usage, link, precedence, new_read_weights, new_write_weights


@serializable
class DNCCell(keras.layers.Layer):
    """One DNC time step: LSTM controller, interface, memory access, output.

    The controller sees χ_t = [x_t; r_{t-1}^1..R]; with its hidden state h_t,
    ξ_t = W_ξ h_t and the output is y_t = W_y h_t + W_r [r_t^1..R] (Methods,
    "Controller network"). The controller is one LSTM layer without peepholes.

    State (all flattened, in this order): memory (N·W), usage (N), link (N·N),
    precedence (N), read weights (R·N), write weights (N), read vectors (R·W),
    controller h (H) and c (H). Zeros are the paper's initial state.

    Args:
        output_size: size of y_t (logits).
        memory_size: N, number of memory slots.
        word_size: W, size of each slot.
        num_read_heads: R.
        controller_units: H, LSTM units.
    """

    def __init__(self, output_size, memory_size=256, word_size=64, num_read_heads=4,
                 controller_units=256, **kwargs):
        super().__init__(**kwargs)
        for arg, value in dict(output_size=output_size, memory_size=memory_size, word_size=word_size,
                               num_read_heads=num_read_heads, controller_units=controller_units).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        self.output_size = output_size
        self.memory_size = memory_size
        self.word_size = word_size
        self.num_read_heads = num_read_heads
        self.controller_units = controller_units
        n, w, r, h = memory_size, word_size, num_read_heads, controller_units
        self.state_size = [n * w, n, n * n, n, r * n, n, r * w, h, h]

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        read_dim = self.num_read_heads * self.word_size
        units = self.controller_units
        self.controller_kernel = self.add_weight(
            name="controller_kernel", shape=(input_dim + read_dim + units, 4 * units),
            initializer="glorot_uniform")

        def forget_bias_one(shape, dtype=None):
            # Gate order (i, f, g, o); a forget bias of 1 keeps early gradients flowing (Gers et al., 2000).
            return tf.concat([tf.zeros([units]), tf.ones([units]), tf.zeros([2 * units])], axis=0)

        self.controller_bias = self.add_weight(
            name="controller_bias", shape=(4 * units,), initializer=forget_bias_one)
        self.interface_kernel = self.add_weight(
            name="interface_kernel", shape=(units, interface_size(self.word_size, self.num_read_heads)),
            initializer="glorot_uniform")
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(units, self.output_size), initializer="glorot_uniform")
        self.read_kernel = self.add_weight(
            name="read_kernel", shape=(read_dim, self.output_size), initializer="glorot_uniform")
        self.built = True

    def call(self, inputs, states, training=None):
        n, w, r = self.memory_size, self.word_size, self.num_read_heads
        memory, usage, link, precedence, read_weights, write_weights, reads, h, c = states
        memory = tf.reshape(memory, [-1, n, w])
        link = tf.reshape(link, [-1, n, n])
        read_weights = tf.reshape(read_weights, [-1, r, n])

        gates = tf.matmul(tf.concat([inputs, reads, h], axis=-1), self.controller_kernel)
        i, f, g, o = tf.split(gates + self.controller_bias, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)

        interface = tf.matmul(h, self.interface_kernel)
        new_reads, memory, usage, link, precedence, read_weights, write_weights = memory_step(
            interface, memory, usage, link, precedence, read_weights, write_weights, w, r)
        new_reads = tf.reshape(new_reads, [-1, r * w])
        output = tf.matmul(h, self.output_kernel) + tf.matmul(new_reads, self.read_kernel)
        new_states = [tf.reshape(memory, [-1, n * w]), usage, tf.reshape(link, [-1, n * n]), precedence,
                      tf.reshape(read_weights, [-1, r * n]), write_weights, new_reads, h, c]
        return output, new_states

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "memory_size": self.memory_size,
                "word_size": self.word_size, "num_read_heads": self.num_read_heads,
                "controller_units": self.controller_units}
