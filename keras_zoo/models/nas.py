"""The NAS controller (Zoph & Le, 2016, "Neural Architecture Search with Reinforcement
Learning", arXiv:1611.01578, Sec. 3.1-3.3) and the child CNNs it describes.

The controller is a 2-layer LSTM with 35 units (Sec. 4, CIFAR-10: "two layers, 35
hidden units", weights initialised uniformly in [-0.08, 0.08]) that emits a CNN
layer by layer. Per layer it emits, in order:

- an anchor point (when ``skip_connections``): layer i (0-based) has i sigmoids,
  P(layer j feeds layer i) = sigmoid(vᵀ tanh(W_prev h_j + W_curr h_i)) for j < i,
  where h_j is the controller's top hidden state at layer j's anchor (Sec. 3.3);
- filter height, filter width, number of filters and stride, each a softmax over
  its choice set (Sec. 4: heights and widths {1, 3, 5, 7}, filters {24, 36, 48, 64},
  strides {1, 2, 3} or fixed to 1). A choice set with one value is not predicted.

Each prediction's embedding is the next step's input (Sec. 3.1). What follows an
anchor is not specified in the paper; here it is the mean of the selected layers'
anchor states, (Σ_j s_ij h_j) / (1 + Σ_j s_ij), as ENAS (arXiv:1802.03268) does.

The registered Keras model is the unrolled controller with teacher forcing: it
takes a description, ``choices`` (batch, layers, tokens) int32 and ``skips``
(batch, layers, layers) float32 (s_ij for j < i), and returns the logits of every
prediction, ``{token_name: (batch, layers, choices), "skip": (batch, layers,
layers)}`` (skip logits are 0 where j >= i). ``sample_architecture`` runs the
same unroll step by step, drawing each prediction; ``log_prob`` scores a
description under the outputs, which is what REINFORCE differentiates.

Child networks (``build_child``) follow Sec. 3.3: every layer is conv + BN + ReLU;
a layer with no selected input takes the image; inputs of different sizes are
zero-padded (bottom/right) to the largest and concatenated on channels; the
outputs no layer consumed are concatenated before the classifier (global average
pooling and softmax, our choice: the paper does not describe the head).
"""
import dataclasses

import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers

#: Sec. 4 (CIFAR-10) choice sets, in the order the controller emits them per layer.
PAPER_CHOICES = {
    "filter_height": (1, 3, 5, 7),
    "filter_width": (1, 3, 5, 7),
    "num_filters": (24, 36, 48, 64),
    "stride": (1, 2, 3),
}
TOKEN_NAMES = tuple(PAPER_CHOICES)


@serializable
class NASControllerRNN(keras.layers.Layer):
    """The controller's unrolled LSTM with one softmax head per token type and the anchor attention.

    Args:
        num_layers: layers of the child network it describes.
        choices: ``{token: tuple of values}`` for every name of ``TOKEN_NAMES``; tokens
            with more than one value are predicted, in ``TOKEN_NAMES`` order.
        skip_connections: emit an anchor point per layer (Sec. 3.3).
        units: LSTM units (paper: 35).
        lstm_layers: stacked LSTM layers (paper: 2).
        init_range: weights are initialised uniformly in [-init_range, init_range] (paper: 0.08).
    """

    def __init__(self, num_layers, choices, skip_connections=True, units=35, lstm_layers=2,
                 init_range=0.08, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.choices = {name: tuple(int(v) for v in choices[name]) for name in TOKEN_NAMES}
        self.tokens = predicted_tokens(self.choices)
        self.choice_counts = tuple(len(self.choices[name]) for name in self.tokens)
        self.skip_connections = bool(skip_connections)
        self.units = int(units)
        self.lstm_layers = int(lstm_layers)
        self.init_range = float(init_range)

    def build(self, input_shape):
        u = self.units

        def init():
            # A fresh initializer per weight: tf_keras repeats the values of a reused unseeded instance.
            return keras.initializers.RandomUniform(-self.init_range, self.init_range)

        self.go = self.add_weight(name="go_embedding", shape=(1, u), initializer=init())
        self.token_embedding = self.add_weight(name="token_embedding", shape=(sum(self.choice_counts), u),
                                               initializer=init())
        self.lstm_kernels = [self.add_weight(name=f"lstm{k}_kernel", shape=(2 * u, 4 * u), initializer=init())
                             for k in range(self.lstm_layers)]
        self.lstm_biases = [self.add_weight(name=f"lstm{k}_bias", shape=(4 * u,), initializer="zeros")
                            for k in range(self.lstm_layers)]
        self.head_kernels = [self.add_weight(name=f"head{t}_kernel", shape=(u, n), initializer=init())
                             for t, n in enumerate(self.choice_counts)]
        self.head_biases = [self.add_weight(name=f"head{t}_bias", shape=(n,), initializer="zeros")
                            for t, n in enumerate(self.choice_counts)]
        if self.skip_connections:
            self.w_prev = self.add_weight(name="anchor_w_prev", shape=(u, u), initializer=init())
            self.w_curr = self.add_weight(name="anchor_w_curr", shape=(u, u), initializer=init())
            self.v = self.add_weight(name="anchor_v", shape=(u, 1), initializer=init())
        super().build(input_shape)

    def lstm_step(self, x, state):
        """One step of the stacked LSTM (gates i, f, g, o); returns (top h, new state)."""
        new_state = []
        for kernel, bias, (h, c) in zip(self.lstm_kernels, self.lstm_biases, state):
            z = tf.matmul(tf.concat([x, h], axis=-1), kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            new_state.append((h, c))
            x = h
        return x, new_state

    def unroll(self, batch_size, choose_token, choose_skips):
        """Runs the controller over a whole description.

        Args:
            batch_size: a scalar (tensor or int).
            choose_token: ``(layer, token, logits) -> (batch,) int32`` choice.
            choose_skips: ``(layer, logits (batch, layer)) -> (batch, layer) float32`` s_ij.

        Returns:
            ``(token_logits, skip_logits)``: a list per token type of (batch, layers, n)
            and (batch, layers, layers) (zeros where j >= i), or None without skips.
        """
        zeros = tf.zeros(tf.stack([batch_size, self.units]), dtype=self.compute_dtype)
        state = [(zeros, zeros) for _ in range(self.lstm_layers)]
        x = tf.tile(tf.cast(self.go, self.compute_dtype), tf.stack([batch_size, 1]))
        offsets = np.cumsum((0,) + self.choice_counts[:-1])
        token_logits = [[] for _ in self.choice_counts]
        skip_rows, anchors, projected = [], [], []
        for i in range(self.num_layers):
            if self.skip_connections:
                h, state = self.lstm_step(x, state)
                row = tf.zeros(tf.stack([batch_size, 0]), dtype=h.dtype)
                selected_mean = zeros
                if i:
                    query = tf.matmul(h, self.w_curr)[:, None, :]
                    row = tf.squeeze(tf.matmul(tf.tanh(tf.stack(projected, axis=1) + query), self.v), -1)
                    selected = tf.cast(choose_skips(i, row), h.dtype)
                    selected_mean = (tf.einsum("bj,bju->bu", selected, tf.stack(anchors, axis=1))
                                     / (1.0 + tf.reduce_sum(selected, axis=-1, keepdims=True)))
                skip_rows.append(tf.pad(row, [[0, 0], [0, self.num_layers - i]]))
                anchors.append(h)
                projected.append(tf.matmul(h, self.w_prev))
                x = selected_mean
            for t in range(len(self.choice_counts)):
                h, state = self.lstm_step(x, state)
                logits = tf.matmul(h, self.head_kernels[t]) + self.head_biases[t]
                token_logits[t].append(logits)
                choice = tf.cast(choose_token(i, t, logits), tf.int32)
                x = tf.gather(self.token_embedding, choice + int(offsets[t]))
        stacked = [tf.stack(per_layer, axis=1) for per_layer in token_logits]
        return stacked, (tf.stack(skip_rows, axis=1) if self.skip_connections else None)

    def call(self, inputs):
        choices, skips = inputs
        choices = tf.cast(choices, tf.int32)
        skips = tf.cast(skips, self.compute_dtype)
        token_logits, skip_logits = self.unroll(
            tf.shape(choices)[0],
            choose_token=lambda i, t, logits: choices[:, i, t],
            choose_skips=lambda i, logits: skips[:, i, :i])
        return token_logits + ([skip_logits] if self.skip_connections else [])

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "choices": self.choices,
                "skip_connections": self.skip_connections, "units": self.units,
                "lstm_layers": self.lstm_layers, "init_range": self.init_range}


def predicted_tokens(choices):
    """The token types the controller predicts: those with more than one choice."""
    return tuple(name for name in TOKEN_NAMES if len(choices[name]) > 1)


def _check_choices(choices):
    if set(choices) != set(TOKEN_NAMES):
        raise ValueError(f"`choices` needs exactly the keys {TOKEN_NAMES}. Received: {sorted(choices)}")
    for name, values in choices.items():
        if not values or any(int(v) != v or v < 1 for v in values):
            raise ValueError(f"choices[{name!r}] must be a non-empty tuple of positive integers, e.g. "
                             f"{PAPER_CHOICES[name]}. Received: {values!r}")


def NASController(num_layers=6, choices=None, skip_connections=True, units=35, lstm_layers=2, init_range=0.08,
                  name="nas_controller"):
    """The NAS controller (arXiv:1611.01578), unrolled over ``num_layers`` child layers.

    Args:
        num_layers: layers of the child CNN it describes.
        choices: ``{token: tuple}`` for ``TOKEN_NAMES``; default ``PAPER_CHOICES``.
            ``stride=(1,)`` fixes the stride (the paper's second CIFAR-10 setting).
        skip_connections: predict skip connections with anchor points (Sec. 3.3).
        units, lstm_layers: the LSTM (paper: 35 units, 2 layers).
        init_range: uniform initialisation range (paper: 0.08).
        name: model name.

    Returns:
        A keras.Model: ``[choices (L, T) int32, skips (L, L) float32] -> {token: logits, "skip": logits}``.
    """
    choices = {k: tuple(v) for k, v in (choices or PAPER_CHOICES).items()}
    _check_choices(choices)
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer. Received: num_layers={num_layers!r}")
    tokens = predicted_tokens(choices)
    if not tokens:
        raise ValueError(f"Every choice set has one value: there is nothing to search. Received: {choices}")
    choice_input = layers.Input((num_layers, len(tokens)), dtype="int32", name="choices")
    skip_input = layers.Input((num_layers, num_layers), dtype="float32", name="skips")
    rnn = NASControllerRNN(num_layers, choices, skip_connections, units, lstm_layers, init_range,
                           name=f"{name}_rnn")
    outputs = rnn([choice_input, skip_input])
    names = list(tokens) + (["skip"] if skip_connections else [])
    # Identity activations give the dict outputs stable names in both runtimes.
    named = {key: layers.Activation("linear", name=key)(out) for key, out in zip(names, outputs)}
    return keras.Model([choice_input, skip_input], named, name=name)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One child layer: conv (filter_height x filter_width, num_filters, stride) and its input layers."""

    filter_height: int
    filter_width: int
    num_filters: int
    stride: int
    inputs: tuple = ()


def controller_rnn(controller):
    return next(layer for layer in controller.layers if isinstance(layer, NASControllerRNN))


def sample_architecture(controller, rng):
    """Draws one description from the controller, step by step (eager).

    Args:
        controller: a model built by ``NASController``.
        rng: a ``numpy.random.Generator``.

    Returns:
        ``(choices (1, L, T) int32, skips (1, L, L) float32, log_prob)``: log_prob is
        the log-probability of the draw under the sampling distribution (float64).
    """
    rnn = controller_rnn(controller)
    choices = np.zeros((1, rnn.num_layers, len(rnn.choice_counts)), "int32")
    skips = np.zeros((1, rnn.num_layers, rnn.num_layers), "float32")
    log_prob = []

    def choose_token(i, t, logits):
        p = tf.nn.softmax(tf.cast(logits, tf.float64)).numpy()[0]
        choices[0, i, t] = rng.choice(len(p), p=p / p.sum())
        log_prob.append(np.log(p[choices[0, i, t]]))
        return tf.constant(choices[0, i, t:t + 1])

    def choose_skips(i, logits):
        p = tf.sigmoid(tf.cast(logits, tf.float64)).numpy()[0]
        skips[0, i, :i] = rng.random(i) < p
        log_prob.append(np.sum(np.where(skips[0, i, :i] > 0, np.log(p), np.log1p(-p))))
        return tf.constant(skips[:, i, :i])

    rnn.unroll(1, choose_token, choose_skips)
    return choices, skips, float(np.sum(log_prob))


def log_prob(outputs, choices, skips):
    """log P(description) under the controller's ``outputs`` (its call on ``choices``, ``skips``).

    Returns a (batch,) tensor: Σ log softmax(token logits)[choice] + Σ_{j<i} log Bernoulli(s_ij; σ(e_ij)).
    """
    choices = tf.cast(choices, tf.int32)
    token_names = [name for name in TOKEN_NAMES if name in outputs]
    total = 0.0
    for t, key in enumerate(token_names):
        logits = tf.cast(outputs[key], tf.float32)
        total += -tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(choices[..., t], logits), -1)
    if "skip" in outputs:
        logits = tf.cast(outputs["skip"], tf.float32)
        num_layers = logits.shape[-1]
        below_diagonal = tf.constant(np.tril(np.ones((num_layers, num_layers), "float32"), -1))
        bernoulli = -tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(skips, tf.float32), logits=logits)
        total += tf.reduce_sum(bernoulli * below_diagonal, axis=[-2, -1])
    return total


def decode(choices, skips, choice_sets):
    """The child description as LayerSpecs from one controller draw.

    Args:
        choices: (L, T) indices into the choice sets of the predicted tokens.
        skips: (L, L) s_ij (j < i used), or None for a plain chain (layer i reads layer i-1).
        choice_sets: the controller's ``choices`` (all of ``TOKEN_NAMES``), e.g.
            ``controller_rnn(controller).choices``.
    """
    choices = np.asarray(choices)
    tokens = predicted_tokens(choice_sets)
    specs = []
    for i, row in enumerate(choices):
        values = {name: choice_sets[name][0] for name in TOKEN_NAMES}
        values.update({name: choice_sets[name][int(row[t])] for t, name in enumerate(tokens)})
        if skips is None:
            inputs = (i - 1,) if i else ()
        else:
            inputs = tuple(int(j) for j in np.flatnonzero(np.asarray(skips)[i, :i] > 0.5))
        specs.append(LayerSpec(**{k: int(v) for k, v in values.items()}, inputs=inputs))
    return specs


def _concat_padded(tensors, name):
    """Zero-pads (bottom/right) to the largest height and width, then concatenates channels (Sec. 3.3)."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[1] for t in tensors)
    width = max(t.shape[2] for t in tensors)
    padded = []
    for k, t in enumerate(tensors):
        if (t.shape[1], t.shape[2]) != (height, width):
            t = layers.ZeroPadding2D(((0, height - t.shape[1]), (0, width - t.shape[2])), name=f"{name}_pad{k}")(t)
        padded.append(t)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")(padded)


def build_child(specs, input_shape=(8, 8, 1), classes=10, name="nas_child"):
    """The child CNN of a description (Sec. 3.3): conv + BN + ReLU layers, skips by padded concatenation.

    Args:
        specs: LayerSpecs (``decode``). A layer with no inputs reads the image.
        input_shape: (H, W, C) of the images.
        classes: softmax outputs.
        name: model name; layers are ``layer{i}_conv/_bn/_relu``.
    """
    if not specs:
        raise ValueError("A child network needs at least one layer. Received: specs=[]")
    image = layers.Input(input_shape, name="image")
    outputs, consumed = [], set()
    for i, spec in enumerate(specs):
        if any(not 0 <= j < i for j in spec.inputs):
            raise ValueError(f"Layer {i} can only read earlier layers (0..{i - 1}). Received: inputs={spec.inputs}")
        consumed.update(spec.inputs)
        x = _concat_padded([outputs[j] for j in spec.inputs], f"layer{i}") if spec.inputs else image
        x = layers.Conv2D(spec.num_filters, (spec.filter_height, spec.filter_width), strides=spec.stride,
                          padding="same", use_bias=False, name=f"layer{i}_conv")(x)
        x = layers.BatchNormalization(name=f"layer{i}_bn")(x)
        outputs.append(layers.Activation("relu", name=f"layer{i}_relu")(x))
    x = _concat_padded([out for j, out in enumerate(outputs) if j not in consumed], "head")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(image, x, name=name)


def _input_spec(config):
    num_layers = config.get("num_layers", 6)
    tokens = predicted_tokens({k: tuple(v) for k, v in (config.get("choices") or PAPER_CHOICES).items()})
    # maxval 3 keeps random choices valid for every paper choice set (the smallest has 3 values).
    return [InputSpec((num_layers, len(tokens)), "int32", maxval=3),
            InputSpec((num_layers, num_layers), "float32")]


VARIANTS = {
    # Sec. 4: CIFAR-10 searches start at 6 layers (grown by 2 every 1,600 samples) with 2x35 LSTM units.
    "nas_controller": dict(config=dict(num_layers=6), tiny=dict(num_layers=3, units=8)),
    "nas_controller_fixed_stride": dict(config=dict(num_layers=6, choices={**PAPER_CHOICES, "stride": (1,)}),
                                        tiny=dict(num_layers=3, units=8)),
}

register_family(
    NASController, VARIANTS, task="nas", paper="1611.01578", input_spec=_input_spec, default_dataset="digits",
    export={"tflite": False, "edgetpu": "the controller is used at search time only; export the best child"},
)
