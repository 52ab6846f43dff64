"""Quasi-recurrent layer (Bradbury et al., 2016, arXiv:1611.01576).

A QRNN layer is a masked (causal) convolution of width ``window`` over time,
which computes every gate of every step at once, followed by a recurrent
*pooling* that is elementwise across channels (paper eqs. 1-5):

    Z = tanh(W_z * X),  F = sigmoid(W_f * X),  O = sigmoid(W_o * X),  I = sigmoid(W_i * X)
    f-pooling:    h_t = f_t * h_{t-1} + (1 - f_t) * z_t
    fo-pooling:   c_t = f_t * c_{t-1} + (1 - f_t) * z_t,   h_t = o_t * c_t
    ifo-pooling:  c_t = f_t * c_{t-1} + i_t * z_t,         h_t = o_t * c_t

Every pooling is the first-order linear recurrence ``c_t = a_t c_{t-1} + b_t``,
evaluated without a per-timestep graph by a chunked scan: sequential inside
chunks of about sqrt(T) steps, vectorised over all chunks, then a short carry
over the chunk ends. It never divides by a cumulative product, so it is exact
for forget gates arbitrarily close to 0 or 1. ``qrnn_pooling`` fuses the gate
nonlinearities, the pooling and the output gate into that scan and writes the
gradient by hand (the adjoint is the same recurrence run backwards);
``linear_recurrence`` is the plain scan with its own gradient, used for masks.
Measured in tools/bench_qrnn.py against the gate computation alone.
"""
import math

import numpy as np

import tensorflow as tf

from keras_zoo.backend import keras, serializable

POOLINGS = {"f": 2, "fo": 3, "ifo": 4}  # pooling -> number of gates (Z, F, O, I in that order)

# Sequences up to this length are unrolled step by step: for a single step (the
# TFLite export graph) this is just mul/add, and short loops beat the chunked scan.
_UNROLL_MAX_STEPS = 16


def _unrolled(a, b, c0, reverse):
    steps_a, steps_b = tf.unstack(a, axis=1), tf.unstack(b, axis=1)
    order = range(len(steps_a) - 1, -1, -1) if reverse else range(len(steps_a))
    c, outputs = c0, [None] * len(steps_a)
    for t in order:
        c = steps_a[t] * c + steps_b[t]
        outputs[t] = c
    return tf.stack(outputs, axis=1)


def _chunk_length(steps):
    """About sqrt(T), preferably a divisor of T so that no padding copy is needed.

    Balances the in-chunk steps against the carry over chunk ends (measured
    with tools/bench_qrnn.py).
    """
    if steps is None:
        return 16
    target = max(4, int(round(math.sqrt(steps))))
    divisors = [length for length in range(max(4, target // 2), 2 * target + 1) if steps % length == 0]
    return min(divisors, key=lambda length: abs(length - target)) if divisors else target


def _chunked(x, chunk, padded, pad_row, groups=1):
    """(batch, time, channels) -> the ``chunk`` steps of every chunk, each (batch, chunks, channels).

    With ``groups`` > 1 the channels of a step are split too (the gates Z, F,
    O, I): ``chunk * groups`` tensors (batch, chunks, channels / groups), step
    ``i`` group ``g`` at index ``i * groups + g``, all from one unstack.
    """
    batch, channels = tf.shape(x)[0], x.shape[-1]
    if padded:
        padding = (-tf.shape(x)[1]) % chunk
        x = tf.concat([x, tf.broadcast_to(pad_row, [batch, padding, channels])], axis=1)
    return tf.unstack(tf.reshape(x, [batch, -1, chunk * groups, channels // groups]), axis=2)


def _unchunked(slices, time, padded, channels):
    """Inverse of ``_chunked``: (batch, time, channels) from per-step (or per-step-and-group) slices."""
    x = tf.stack(slices, axis=2)
    x = tf.reshape(x, [tf.shape(x)[0], -1, channels])
    return x[:, :time] if padded else x


def _over_chunks(a, b, init, reverse, single_chunk):
    """Inclusive states of the recurrence over chunk ends (batch, chunks, channels)."""
    if single_chunk:
        return a * init[:, None] + b
    if a.shape[1] is not None:
        return _scan(a, b, init, reverse)
    states = tf.scan(
        lambda c, ab: ab[0] * c + ab[1],
        (tf.transpose(a, [1, 0, 2]), tf.transpose(b, [1, 0, 2])),
        initializer=init,
        reverse=reverse,
    )
    return tf.transpose(states, [1, 0, 2])


def _scan(a, b, c0, reverse=False):
    """All states of ``c_t = a_t * c_{t-1} + b_t`` (or, reversed, ``c_t = a_t * c_{t+1} + b_t``).

    Args:
        a, b: (batch, time, channels) tensors.
        c0: (batch, channels), the state before the first processed step.
    """
    steps, channels = a.shape[1], a.shape[-1]
    if steps is not None and steps <= _UNROLL_MAX_STEPS:
        return _unrolled(a, b, c0, reverse)
    chunk = _chunk_length(steps)
    padded = steps is None or steps % chunk != 0
    # Padded steps (a=1, b=0) are the identity; they sit after the end, where
    # the reverse scan starts, so they leave the reverse carry c0 unchanged.
    a_steps = _chunked(a, chunk, padded, tf.ones([channels], a.dtype))
    b_steps = _chunked(b, chunk, padded, tf.zeros([channels], b.dtype))
    order = list(range(chunk - 1, -1, -1) if reverse else range(chunk))

    # Inside every chunk at once: local states from a zero start, and the
    # product of the a's since the chunk start (never a quotient: stable).
    local, gain = [None] * chunk, [None] * chunk
    previous = None
    for i in order:
        if previous is None:
            local[i], gain[i] = b_steps[i], a_steps[i]
        else:
            local[i] = a_steps[i] * local[previous] + b_steps[i]
            gain[i] = a_steps[i] * gain[previous]
        previous = i

    # The state entering each chunk: the same recurrence over chunk ends.
    after = _over_chunks(gain[order[-1]], local[order[-1]], c0, reverse, single_chunk=False)
    if reverse:
        entering = tf.concat([after[:, 1:], c0[:, None]], axis=1)
    else:
        entering = tf.concat([c0[:, None], after[:, :-1]], axis=1)
    return _unchunked([local[i] + gain[i] * entering for i in range(chunk)], tf.shape(a)[1], padded, channels)


@tf.custom_gradient
def linear_recurrence(a, b, c0):
    """``c_t = a_t * c_{t-1} + b_t`` for every t, from ``c0``; returns (batch, time, channels).

    The gradient is the adjoint recurrence ``g_t = dc_t + a_{t+1} g_{t+1}`` run
    backwards with the same scan: ``da_t = g_t c_{t-1}``, ``db_t = g_t``,
    ``dc0 = a_0 g_0``.
    """
    c = _scan(a, b, c0)

    def grad(dc):
        a_next = tf.concat([a[:, 1:], tf.ones_like(a[:, :1])], axis=1)
        g = _scan(a_next, dc, tf.zeros_like(c0), reverse=True)
        c_previous = tf.concat([c0[:, None], c[:, :-1]], axis=1)
        return g * c_previous, g, a[:, 0] * g[:, 0]

    return c, grad


def qrnn_pooling(gates, c0, forget_keep, pooling):
    """Fused QRNN pooling: ``(h, c_last)`` from the gate sigmoids, with a hand-written gradient.

    Args:
        gates: (batch, time, n_gates * units) sigmoid outputs, Z stored as
            ``sigmoid(2 W_z * X)`` so that ``z = 2 g - 1 = tanh(W_z * X)``, then F, O, I.
        c0: (batch, units) initial pooling state.
        forget_keep: None, or (batch, time, units) 0/1 zoneout keep mask:
            ``f = 1 - keep * (1 - f)``.
        pooling: "f", "fo" or "ifo".

    The chunked scan of ``_scan`` runs on slices of the gate tensor, so the
    nonlinearity folding, pooling and output gate happen chunk-step by
    chunk-step on cache-sized tensors: the full-size tensors are read once
    (gates) and written once (h) in each direction.
    """
    units = c0.shape[-1]
    n_gates = POOLINGS[pooling]
    steps = gates.shape[1]
    single_chunk = steps is not None and steps <= _UNROLL_MAX_STEPS
    chunk = steps if single_chunk else _chunk_length(steps)
    padded = steps is None or steps % chunk != 0
    time = tf.shape(gates)[1]
    # Sigmoid outputs of an identity step: z = 0, f = 1, o = 1, i = 0.
    identity = tf.repeat(tf.constant([0.5, 1.0, 1.0, 0.0][:n_gates], gates.dtype), units)

    @tf.custom_gradient
    def pool(gates, c0, *keep):
        # (batch, chunks, chunk * n_gates, units): one unstack yields every gate of every chunk step.
        slices = _chunked(gates, chunk, padded, identity, groups=n_gates)
        keep_slices = _chunked(keep[0], chunk, padded, tf.ones([units], gates.dtype)) if keep else None
        z, f, o, i = [], [], [], []
        for step in range(chunk):
            gate = [slices[step * n_gates + g] for g in range(n_gates)]
            z.append(2.0 * gate[0] - 1.0)
            f.append(gate[1] if keep_slices is None else 1.0 - keep_slices[step] * (1.0 - gate[1]))
            o.append(gate[2] if n_gates > 2 else None)
            i.append(gate[3] if n_gates > 3 else None)
        local, gain = [], []
        for step in range(chunk):
            update = i[step] * z[step] if n_gates > 3 else (1.0 - f[step]) * z[step]
            local.append(update if step == 0 else f[step] * local[-1] + update)
            gain.append(f[step] if step == 0 else f[step] * gain[-1])
        after = _over_chunks(gain[-1], local[-1], c0, False, single_chunk)
        entering = c0[:, None] if single_chunk else tf.concat([c0[:, None], after[:, :-1]], axis=1)
        c = [local[step] + gain[step] * entering for step in range(chunk)]
        h = _unchunked(c if n_gates == 2 else [o[step] * c[step] for step in range(chunk)], time, padded, units)
        c_last = after[:, -1]

        def grad(dh, dc_last):
            # Adjoint: g_t = dh_t o_t + u_{t+1}, with u_t = f_t g_t the gradient
            # reaching c_{t-1}: the same recurrence, run backwards.
            dc_last = tf.zeros_like(c0) if dc_last is None else dc_last
            dh = _chunked(dh, chunk, padded, tf.zeros([units], gates.dtype))
            direct = dh if n_gates == 2 else [dh[step] * o[step] for step in range(chunk)]
            local_g, local_u, gain_r = [None] * chunk, [None] * chunk, [None] * chunk
            for step in reversed(range(chunk)):
                local_g[step] = direct[step] if step == chunk - 1 else direct[step] + local_u[step + 1]
                local_u[step] = f[step] * local_g[step]
                gain_r[step] = f[step] if step == chunk - 1 else f[step] * gain_r[step + 1]
            u_first = _over_chunks(gain_r[0], local_u[0], dc_last, True, single_chunk)
            beyond = dc_last[:, None] if single_chunk else tf.concat([u_first[:, 1:], dc_last[:, None]], axis=1)
            d_gates = []
            for step in range(chunk):
                g = local_g[step] + (beyond if step == chunk - 1 else gain_r[step + 1] * beyond)
                c_previous = entering if step == 0 else c[step - 1]
                if n_gates > 3:
                    dz, df = g * i[step], g * c_previous
                else:
                    dz, df = g * (1.0 - f[step]), g * (c_previous - z[step])
                if keep_slices is not None:
                    df = df * keep_slices[step]
                d_gates += [2.0 * dz, df] + ([dh[step] * c[step]] if n_gates > 2 else [])
                d_gates += [g * z[step]] if n_gates > 3 else []
            return [_unchunked(d_gates, time, padded, n_gates * units), u_first[:, 0]] + ([None] if keep else [])

        return (h, c_last), grad

    h, c_last = pool(gates, c0, *([] if forget_keep is None else [forget_keep]))
    # The chunk reshapes lose a static length when the batch is open; the next layer needs it to
    # take the unrolled path (a tf.scan there leaves a TensorList TFLite builtins cannot lower).
    h.set_shape(gates.shape[:2].concatenate([units]))
    return h, c_last


def _forward_fill(values, keep, initial):
    """Replaces the steps where ``keep`` is 0 by the last kept value (``initial`` before any)."""
    return linear_recurrence(tf.broadcast_to(1.0 - keep, tf.shape(values)), keep * values, initial)


@serializable
class QRNN(keras.layers.Layer):
    """Quasi-recurrent layer (Bradbury et al., 2016, arXiv:1611.01576).

    The causal convolution is one fused matmul: ``kernel`` has shape
    ``(window * input_dim, n_gates * units)``; its rows are the taps from the
    oldest step ``x_{t-window+1}`` to ``x_t`` and its columns the gates Z, F, O, I
    (as many as ``pooling`` needs), and ``bias`` has shape ``(n_gates * units,)``.

    States (``initial_state`` and what ``return_state`` returns) are
    ``[c, previous_inputs]``: the pooling state ``c`` of shape (batch, units)
    and, when ``window > 1``, the last ``window - 1`` input steps
    (batch, window - 1, input_dim) that the convolution needs to continue the
    sequence exactly. With ``window=1`` the states are just ``[c]``. Feeding
    one step ``(batch, 1, input_dim)`` plus states gives a single-step cell
    made of matmul/sigmoid/tanh/mul/add/concat/slice only (TFLite builtins).

    Args:
        units: number of hidden units (channels of Z, F, O).
        window: width of the causal convolution (the paper's k).
        pooling: "f", "fo" or "ifo" (paper section 2).
        zoneout: probability of keeping the previous state of a channel at a
            training step, applied as ``F = 1 - dropout(1 - sigmoid(W_f * X))``
            without rescaling (paper sections 2.1 and 3.2). Identity at inference.
        return_sequences: return all steps (batch, time, units) or the last one.
        return_state: also return the final states (see above).
        go_backwards: process the sequence reversed; outputs are in processing
            order, as Keras RNNs (``keras.layers.Bidirectional`` flips them back).
        stateful: keep the final states of a batch as the initial states of the
            next one (needs a fixed batch size); ``reset_states()`` zeroes them.
        zero_output_for_mask: with a mask and ``return_sequences``, output zeros
            at masked steps instead of the last unmasked output (Keras RNN
            convention; ``Bidirectional`` sets it).
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as in ``keras.layers.Dense``.

    Masked steps (``mask`` or a preceding ``Masking``/``Embedding(mask_zero=True)``)
    leave every state unchanged, so a padded sequence ends in the same state as
    the unpadded one.
    """

    def __init__(
        self,
        units,
        window=2,
        pooling="fo",
        zoneout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        zero_output_for_mask=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` must be a positive integer (the convolution width). Received: window={window!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {sorted(POOLINGS)}. Received: pooling={pooling!r}")
        if not 0.0 <= zoneout < 1.0:
            raise ValueError(f"`zoneout` must be a probability in [0, 1). Received: zoneout={zoneout!r}")
        self.units = units
        self.window = window
        self.pooling = pooling
        self.zoneout = float(zoneout)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.zero_output_for_mask = zero_output_for_mask
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_masking = True
        self.gates = POOLINGS[pooling]

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"The last (feature) axis of a QRNN input must be known. Received: input_shape={input_shape}")
        self.input_dim = int(input_dim)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.window * self.input_dim, self.gates * self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(self.gates * self.units,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
        )
        if self.stateful:
            batch = input_shape[0]
            if batch is None:
                raise ValueError(
                    "A stateful QRNN needs a fixed batch size: give the Input a `batch_size` "
                    f"(or `batch_input_shape`). Received: input_shape={input_shape}"
                )
            self.state_c = self.add_weight(
                name="state_c", shape=(batch, self.units), initializer="zeros", trainable=False
            )
            self.state_inputs = None
            if self.window > 1:
                self.state_inputs = self.add_weight(
                    name="state_inputs",
                    shape=(batch, self.window - 1, self.input_dim),
                    initializer="zeros",
                    trainable=False,
                )
        self.built = True

    def reset_states(self):
        if not self.stateful:
            raise ValueError("`reset_states()` needs a layer built with `stateful=True`. Received: stateful=False")
        for state in (self.state_c, self.state_inputs):
            if state is not None:
                state.assign(tf.zeros_like(state))

    # Keras 3 calls it reset_state.
    reset_state = reset_states

    def gate_sigmoids(self, windows):
        """(batch, time, n_gates * units) gate sigmoids from the causal windows; Z as sigmoid(2 W_z * X).

        tanh(x) = 2 sigmoid(2x) - 1, so one sigmoid (which grappler fuses with
        the matmul) covers every gate, with no slicing before the nonlinearity.
        """
        scale = tf.constant(np.repeat([2.0] + [1.0] * (self.gates - 1), self.units), self.kernel.dtype)
        flat = tf.reshape(windows, [-1, self.window * self.input_dim])
        gates = tf.sigmoid(tf.nn.bias_add(tf.matmul(flat, self.kernel * scale), self.bias * scale))
        return tf.reshape(gates, [tf.shape(windows)[0], -1, self.gates * self.units])

    def gate_activations(self, windows):
        """[Z, F, (O), (I)], each (batch, time, units), from the causal windows."""
        z, *sigmoids = tf.split(self.gate_sigmoids(windows), self.gates, axis=-1)
        return [2.0 * z - 1.0] + sigmoids

    def causal_windows(self, inputs, previous_inputs):
        """(batch, time, window * input_dim): each step with the window - 1 steps before it."""
        if self.window == 1:
            return inputs
        extended = tf.concat([previous_inputs, inputs], axis=1)
        time = tf.shape(inputs)[1]
        return tf.concat([extended[:, tap : tap + time] for tap in range(self.window)], axis=-1)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        inputs = tf.cast(tf.convert_to_tensor(sequences), self.compute_dtype)
        batch = tf.shape(inputs)[0]
        if self.go_backwards:
            inputs = tf.reverse(inputs, axis=[1])
            if mask is not None:
                mask = tf.reverse(mask, axis=[1])
        c0, previous_inputs = self._initial_states(initial_state, batch, inputs.dtype)
        keep = None if mask is None else tf.cast(mask, inputs.dtype)[:, :, None]

        zoning = bool(training) and self.zoneout > 0.0
        if keep is not None:
            windows, new_previous = self._masked_windows(inputs, previous_inputs, keep)
            output, c_last = self._masked_pooling(windows, c0, keep, zoning)
        else:
            windows = self.causal_windows(inputs, previous_inputs)
            new_previous = tf.concat([previous_inputs, inputs], axis=1)[:, 1 - self.window :] if self.window > 1 else None
            gates = self.gate_sigmoids(windows)
            forget_keep = None
            if zoning:
                shape = [tf.shape(gates)[0], tf.shape(gates)[1], self.units]
                forget_keep = tf.cast(tf.random.uniform(shape) >= self.zoneout, gates.dtype)
            h, c_last = qrnn_pooling(gates, c0, forget_keep, self.pooling)
            output = h if self.return_sequences else h[:, -1]

        states = [c_last] + ([new_previous] if self.window > 1 else [])
        if self.stateful:
            self.state_c.assign(c_last)
            if self.window > 1:
                self.state_inputs.assign(new_previous)
        if self.return_state:
            return [output] + states
        return output

    def _masked_pooling(self, windows, c0, keep, zoning):
        """Pooling where masked steps (keep = 0) leave c unchanged and repeat (or zero) the output."""
        z, f, *rest = self.gate_activations(windows)
        if zoning:
            f = 1.0 - tf.cast(tf.random.uniform(tf.shape(f)) >= self.zoneout, f.dtype) * (1.0 - f)
        update = rest[1] * z if self.pooling == "ifo" else (1.0 - f) * z
        c = linear_recurrence(1.0 - keep * (1.0 - f), keep * update, c0)
        h = c if self.pooling == "f" else rest[0] * c
        if self.return_sequences and self.zero_output_for_mask:
            h = keep * h
        else:
            h = _forward_fill(h, keep, tf.zeros_like(c0))
        return (h if self.return_sequences else h[:, -1]), c[:, -1]

    def _initial_states(self, initial_state, batch, dtype):
        previous = None
        if initial_state is None and self.stateful:
            initial_state = [self.state_c] + ([self.state_inputs] if self.window > 1 else [])
        if initial_state is None:
            c0 = tf.zeros([batch, self.units], dtype)
        else:
            initial_state = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            expected = 1 if self.window == 1 else 2
            if len(initial_state) != expected:
                raise ValueError(
                    f"A QRNN with window={self.window} takes {expected} initial state(s): "
                    "[c (batch, units)" + (", previous inputs (batch, window - 1, input_dim)]" if expected == 2 else "]")
                    + f". Received: {len(initial_state)} tensors."
                )
            c0 = tf.cast(tf.convert_to_tensor(initial_state[0]), dtype)
            if expected == 2:
                previous = tf.cast(tf.convert_to_tensor(initial_state[1]), dtype)
        if self.window > 1 and previous is None:
            previous = tf.zeros([batch, self.window - 1, self.input_dim], dtype)
        return c0, previous

    def _masked_windows(self, inputs, previous_inputs, keep):
        """Causal windows over the unmasked steps only, and the last window - 1 of them.

        Tap j of a step is the j-th unmasked input before it, so a masked step
        changes nothing, not even what the convolution sees next. With
        ``newest[j]`` the (j+1)-th most recent unmasked input up to each step:
        ``newest[j] = fill(tap j)`` and tap j+1 is ``newest[j]`` one step late.
        """
        if self.window == 1:
            return inputs, None
        tap, taps, newest_last = inputs, [inputs], []
        for lag in range(1, self.window):
            before_start = previous_inputs[:, self.window - 1 - lag]
            newest = _forward_fill(tap, keep, before_start)
            newest_last.insert(0, newest[:, -1])
            tap = tf.concat([before_start[:, None], newest[:, :-1]], axis=1)
            taps.insert(0, tap)
        return tf.concat(taps, axis=-1), tf.stack(newest_last, axis=1)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        output = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if not self.return_state:
            return output
        states = [(batch, self.units)] + ([(batch, self.window - 1, sequences_shape[-1])] if self.window > 1 else [])
        return [output] + states

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (1 if self.window == 1 else 2)
        return output_mask

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            window=self.window,
            pooling=self.pooling,
            zoneout=self.zoneout,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            zero_output_for_mask=self.zero_output_for_mask,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
        )
        return config
