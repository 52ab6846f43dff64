"""PredNet (Lotter, Kreiman and Cox, 2016, arXiv:1605.08104): deep predictive coding for video.

Every layer l holds representation units R_l (a convolutional LSTM), a prediction
Â_l, a target A_l and error units E_l. One time step is the paper's Algorithm 1:

- top-down: R_l^t = ConvLSTM(E_l^{t-1}, R_l^{t-1}, Upsample(R_{l+1}^t)), from the top
  layer (which has no upsampled input) down to layer 0;
- bottom-up: Â_l^t = ReLU(Conv(R_l^t)) (clipped at ``pixel_max`` at layer 0, the
  paper's SatLU); E_l^t = [ReLU(A_l^t - Â_l^t); ReLU(Â_l^t - A_l^t)];
  A_{l+1}^t = MaxPool(ReLU(Conv(E_l^t))), with A_0^t the frame x_t.

All states start at zero, so the prediction Â_0^t of frame t uses frames < t only
(the first one is a constant of the weights). The ConvLSTM has no peepholes and
convolves the concatenation [R_l^{t-1}, E_l^{t-1}, Upsample(R_{l+1}^t)]; its gates
use ``recurrent_activation``, by default the hard sigmoid max(0, min(1, 0.2x + 0.5))
of the reference implementation (coxlab/prednet, Keras 1), written out because
Keras 2 and 3 define ``hard_sigmoid`` differently.

The model maps frames (B, T, H, W, C) in [0, ``pixel_max``] to ``[predictions
(B, T, H, W, C), errors (B, T, L)]``: ``predictions[:, t]`` is Â_0^t and
``errors[:, t, l]`` the mean of E_l^t (the reference's "error" output mode). The
training loss weights the errors over layers (L_0: λ = [1, 0, 0, 0]; L_all:
λ = [1, 0.1, 0.1, 0.1]) and time (the first frame gets weight 0): ``prednet_loss``.
The reference's extrapolation mode (feeding predictions back) is not included.

``prednet_step_model`` builds one step with explicit states (R, C, E per layer) for
TFLite export.

``--preset=paper`` trains with the reference recipe (``TRAINING_PRESET``); on moving
digits the tiny variant trained with it beats copying the last frame within minutes
on a CPU. Its batch of 4 matters there: at batch 32 and the same learning rate, every
frame prediction was zero (dead ReLUs) within 25 updates, and under L_0 a dead Â_0
gets no gradient.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family

PAPER = "1605.08104"
RECURRENT_ACTIVATIONS = ("hard_sigmoid", "sigmoid")
#: Layer weightings λ_l of the paper's two KITTI models (section 3.2): layer 0 only, or all layers.
LAYER_WEIGHTINGS = ("L_0", "L_all")


def hard_sigmoid(x):
    """max(0, min(1, 0.2 x + 0.5)): Keras 1/2's hard sigmoid, used by the reference's ConvLSTM gates."""
    return tf.clip_by_value(0.2 * x + 0.5, 0.0, 1.0)


def upsample2x(x):
    """Nearest-neighbour 2x upsampling (TFLite RESIZE_NEAREST_NEIGHBOR)."""
    return tf.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), method="nearest")


def error_units(target, prediction):
    """E = [ReLU(A - Â); ReLU(Â - A)] along channels (the paper's equation 3)."""
    return tf.concat([tf.nn.relu(target - prediction), tf.nn.relu(prediction - target)], axis=-1)


@serializable
class PredNetLayer(keras.layers.Layer):
    """The PredNet stack: all of Algorithm 1 over a clip, or one step with explicit states.

    Args:
        stack_sizes: channels of A_l / Â_l per layer; ``stack_sizes[0]`` is the frame's channels.
        r_stack_sizes: channels of R_l per layer.
        filter_size: side of every convolution kernel (paper: 3).
        pixel_max: the SatLU bound of Â_0 (the largest pixel value).
        recurrent_activation: ConvLSTM gate activation, "hard_sigmoid" (reference) or "sigmoid".
        step: False: call on frames (B, T, H, W, C), return ``[predictions, errors]``.
            True: call on ``[frame (B, H, W, C), *states]`` with the states ordered
            R_0..R_{L-1}, C_0..C_{L-1}, E_0..E_{L-1} (zeros at the first frame), return
            ``[prediction (B, H, W, C), errors (B, L), *new_states]``.
    """

    def __init__(self, stack_sizes, r_stack_sizes, filter_size=3, pixel_max=1.0,
                 recurrent_activation="hard_sigmoid", step=False, **kwargs):
        super().__init__(**kwargs)
        self.stack_sizes = tuple(int(s) for s in stack_sizes)
        self.r_stack_sizes = tuple(int(s) for s in r_stack_sizes)
        self.filter_size = int(filter_size)
        self.pixel_max = float(pixel_max)
        self.recurrent_activation = recurrent_activation
        self.step = bool(step)
        self.num_layers = len(self.stack_sizes)
        self._gate = hard_sigmoid if recurrent_activation == "hard_sigmoid" else tf.sigmoid

    def build(self, input_shape):
        frame_shape = input_shape[0] if self.step else input_shape
        self.height, self.width = int(frame_shape[-3]), int(frame_shape[-2])
        k, s, r = self.filter_size, self.stack_sizes, self.r_stack_sizes
        self.lstm_kernels, self.lstm_biases, self.ahat_kernels, self.ahat_biases = [], [], [], []
        self.a_kernels, self.a_biases = [], []
        for l in range(self.num_layers):
            inputs = r[l] + 2 * s[l] + (r[l + 1] if l < self.num_layers - 1 else 0)
            # The four gates (i, f, c, o) of the ConvLSTM share one kernel, split along its outputs.
            self.lstm_kernels.append(self.add_weight(name=f"lstm_kernel_{l}", shape=(k, k, inputs, 4 * r[l]),
                                                     initializer="glorot_uniform"))
            self.lstm_biases.append(self.add_weight(name=f"lstm_bias_{l}", shape=(4 * r[l],), initializer="zeros"))
            self.ahat_kernels.append(self.add_weight(name=f"ahat_kernel_{l}", shape=(k, k, r[l], s[l]),
                                                     initializer="glorot_uniform"))
            self.ahat_biases.append(self.add_weight(name=f"ahat_bias_{l}", shape=(s[l],), initializer="zeros"))
            if l < self.num_layers - 1:
                self.a_kernels.append(self.add_weight(name=f"a_kernel_{l}", shape=(k, k, 2 * s[l], s[l + 1]),
                                                      initializer="glorot_uniform"))
                self.a_biases.append(self.add_weight(name=f"a_bias_{l}", shape=(s[l + 1],), initializer="zeros"))
        super().build(input_shape)

    def state_shapes(self):
        """(H, W, C) of every state, ordered R_0..R_{L-1}, C_0..C_{L-1}, E_0..E_{L-1}."""
        sides = [(self.height // 2**l, self.width // 2**l) for l in range(self.num_layers)]
        r = [(*side, c) for side, c in zip(sides, self.r_stack_sizes)]
        e = [(*side, 2 * c) for side, c in zip(sides, self.stack_sizes)]
        return r + r + e

    @staticmethod
    def _conv(x, kernel, bias):
        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME") + bias

    def step_fn(self, frame, states):
        """One step of Algorithm 1: ``(x_t, states_{t-1}) -> (Â_0^t, mean E_l^t (B, L), states_t)``."""
        n = self.num_layers
        r_prev, c_prev, e_prev = states[:n], states[n:2 * n], states[2 * n:]
        r, c = [None] * n, [None] * n
        for l in reversed(range(n)):
            inputs = [r_prev[l], e_prev[l]] + ([upsample2x(r[l + 1])] if l < n - 1 else [])
            gates = self._conv(tf.concat(inputs, axis=-1), self.lstm_kernels[l], self.lstm_biases[l])
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c[l] = self._gate(f) * c_prev[l] + self._gate(i) * tf.tanh(g)
            r[l] = self._gate(o) * tf.tanh(c[l])
        errors, target = [], frame
        for l in range(n):
            ahat = tf.nn.relu(self._conv(r[l], self.ahat_kernels[l], self.ahat_biases[l]))
            if l == 0:
                ahat = tf.minimum(ahat, self.pixel_max)
                prediction = ahat
            errors.append(error_units(target, ahat))
            if l < n - 1:
                target = tf.nn.relu(self._conv(errors[l], self.a_kernels[l], self.a_biases[l]))
                target = tf.nn.max_pool2d(target, ksize=2, strides=2, padding="VALID")
        mean_errors = tf.stack([tf.reduce_mean(e, axis=[1, 2, 3]) for e in errors], axis=-1)
        return prediction, mean_errors, r + c + errors

    def call(self, inputs):
        if self.step:
            frame, *states = inputs
            prediction, mean_errors, new_states = self.step_fn(frame, states)
            return [prediction, mean_errors, *new_states]
        frames = tf.convert_to_tensor(inputs)
        batch = tf.shape(frames)[0]
        states = [tf.zeros(tf.concat([[batch], shape], 0), frames.dtype) for shape in self.state_shapes()]

        def time_step(carry, frame):
            prediction, mean_errors, new_states = self.step_fn(frame, carry[2])
            return prediction, mean_errors, new_states

        initial = (tf.zeros_like(frames[:, 0]), tf.zeros(tf.stack([batch, self.num_layers]), frames.dtype), states)
        predictions, mean_errors, _ = tf.scan(time_step, tf.transpose(frames, [1, 0, 2, 3, 4]), initializer=initial)
        return [tf.transpose(predictions, [1, 0, 2, 3, 4]), tf.transpose(mean_errors, [1, 0, 2])]

    def compute_output_shape(self, input_shape):
        if self.step:
            frame_shape = tuple(input_shape[0])
            return [frame_shape, (frame_shape[0], self.num_layers), *[tuple(s) for s in input_shape[1:]]]
        input_shape = tuple(input_shape)
        return [input_shape, (*input_shape[:2], self.num_layers)]

    def get_config(self):
        return {**super().get_config(), "stack_sizes": list(self.stack_sizes),
                "r_stack_sizes": list(self.r_stack_sizes), "filter_size": self.filter_size,
                "pixel_max": self.pixel_max, "recurrent_activation": self.recurrent_activation, "step": self.step}


def _validate(input_shape, stack_sizes, r_stack_sizes, filter_size, recurrent_activation):
    if len(input_shape) != 4 or any(not isinstance(d, int) or d <= 0 for d in input_shape[1:]):
        raise ValueError("`input_shape` must be (frames, height, width, channels) with static height, width "
                         f"and channels (frames may be None). Received: input_shape={input_shape!r}")
    if not stack_sizes or any(not isinstance(s, int) or s <= 0 for s in stack_sizes):
        raise ValueError(f"`stack_sizes` must be positive integers, one per layer. Received: "
                         f"stack_sizes={stack_sizes!r}")
    if stack_sizes[0] != input_shape[-1]:
        raise ValueError("`stack_sizes[0]` is layer 0's A = the frame, so it must equal the input channels "
                         f"{input_shape[-1]}. Received: stack_sizes={stack_sizes!r}")
    if len(r_stack_sizes) != len(stack_sizes) or any(not isinstance(s, int) or s <= 0 for s in r_stack_sizes):
        raise ValueError(f"`r_stack_sizes` must be {len(stack_sizes)} positive integers (one per layer). "
                         f"Received: r_stack_sizes={r_stack_sizes!r}")
    factor = 2 ** (len(stack_sizes) - 1)
    if input_shape[1] % factor or input_shape[2] % factor:
        raise ValueError(f"Height and width must be divisible by 2^(layers - 1) = {factor} (each layer halves "
                         f"them). Received: input_shape={input_shape!r}")
    if not isinstance(filter_size, int) or filter_size <= 0:
        raise ValueError(f"`filter_size` must be a positive integer. Received: filter_size={filter_size!r}")
    if recurrent_activation not in RECURRENT_ACTIVATIONS:
        raise ValueError(f"`recurrent_activation` must be one of {RECURRENT_ACTIVATIONS}. "
                         f"Received: recurrent_activation={recurrent_activation!r}")


def PredNet(input_shape=(10, 128, 160, 3), stack_sizes=(3, 48, 96, 192), r_stack_sizes=(3, 48, 96, 192),
            filter_size=3, pixel_max=1.0, recurrent_activation="hard_sigmoid", name="prednet"):
    """PredNet video model (arXiv:1605.08104): frames -> [next-frame predictions, layer errors].

    Args:
        input_shape: (frames, height, width, channels); the paper's KITTI model
            takes 10 frames of 128x160x3. Height and width must be divisible by
            2^(layers - 1).
        stack_sizes: channels of A_l and Â_l per layer (KITTI: 3, 48, 96, 192);
            the first equals the input channels.
        r_stack_sizes: channels of the representation R_l (KITTI: as stack_sizes).
        filter_size: kernel side of every convolution (paper: 3).
        pixel_max: the SatLU bound of the frame prediction.
        recurrent_activation: ConvLSTM gates: "hard_sigmoid" (reference code) or "sigmoid".
        name: model name; the recurrent stack is the layer ``name + "_stack"``.

    Returns:
        A keras.Model: frames (B, T, H, W, C) -> ``[predictions (B, T, H, W, C),
        errors (B, T, L)]`` (see the module docstring).
    """
    input_shape = tuple(input_shape)
    stack_sizes, r_stack_sizes = tuple(stack_sizes), tuple(r_stack_sizes)
    _validate(input_shape, stack_sizes, r_stack_sizes, filter_size, recurrent_activation)
    frames = keras.Input(input_shape, name="frames")
    predictions, errors = PredNetLayer(stack_sizes, r_stack_sizes, filter_size=filter_size, pixel_max=pixel_max,
                                       recurrent_activation=recurrent_activation, name=f"{name}_stack")(frames)
    return keras.Model(frames, [predictions, errors], name=name)


def _stack_layer(model):
    stacks = [layer for layer in model.layers if isinstance(layer, PredNetLayer)]
    if len(stacks) != 1:
        raise ValueError("`prednet_step_model` needs a PredNet model (one PredNetLayer). Received: model "
                         f"{model.name!r} with layers {[layer.__class__.__name__ for layer in model.layers]}")
    return stacks[0]


def prednet_step_model(model, config=None):
    """One PredNet step at batch 1 with explicit states, sharing ``model``'s weights (for TFLite).

    Inputs: ``frame`` (1, H, W, C), then ``r0..``, ``c0..``, ``e0..`` (zeros before the
    first frame). Outputs: ``[prediction, errors, *new_states]``; ``prediction`` is
    Â_0^t, the guess of this very frame made from the earlier ones (it does not
    depend on ``frame``), ``errors`` the mean E_l^t per layer. ``config`` is not
    needed: the structure is read from the model.
    """
    del config
    stack = _stack_layer(model)
    step_layer = PredNetLayer.from_config({**stack.get_config(), "step": True, "name": f"{stack.name}_step"})
    frame = keras.Input((stack.height, stack.width, stack.stack_sizes[0]), batch_size=1, name="frame")
    names = [f"{kind}{l}" for kind in "rce" for l in range(stack.num_layers)]
    states = [keras.Input(shape, batch_size=1, name=n) for shape, n in zip(stack.state_shapes(), names)]
    outputs = step_layer([frame, *states])
    step_layer.set_weights(stack.get_weights())
    return keras.Model([frame, *states], outputs, name=f"{model.name}_step")


def layer_loss_weights(weighting, num_layers):
    """λ_l: "L_0" = [1, 0, ...], "L_all" = [1, 0.1, ...] (paper section 3.2)."""
    if weighting not in LAYER_WEIGHTINGS:
        raise ValueError(f"The PredNet layer weighting must be one of {LAYER_WEIGHTINGS}. "
                         f"Received: {weighting!r}")
    rest = 0.0 if weighting == "L_0" else 0.1
    return np.array([1.0] + [rest] * (num_layers - 1), "float32")


def time_loss_weights(num_frames):
    """Weight 0 for the first frame (nothing to predict it from), 1 / (T - 1) for the others (reference)."""
    weights = np.full((num_frames,), 1.0 / max(num_frames - 1, 1), "float32")
    weights[0] = 0.0
    return weights


def prednet_loss(errors, layer_weights, time_weights):
    """Per-clip loss Σ_t w_t Σ_l λ_l errors[:, t, l]: errors (B, T, L) -> (B,)."""
    return tf.einsum("btl,l,t->b", errors, tf.constant(layer_weights), tf.constant(time_weights))


def _input_spec(config):
    return [InputSpec(tuple(config["input_shape"]), maxval=config.get("pixel_max", 1.0))]


# The reference's KITTI recipe (coxlab/prednet kitti_train.py, for arXiv:1605.08104): Adam at lr 1e-3,
# 1e-4 from epoch 75 of 150, batch 4, loss L_0 (the video_prediction task's default `prednet_layer_loss`).
# Its epoch is 500 clips (125 updates): add --steps_per_epoch=125 to match its 18,750 updates.
TRAINING_PRESET = dict(
    optimizer="adam", learning_rate=1e-3, batch_size=4, epochs=150,
    lr_schedule=dict(boundaries_epochs=(75,), rates=(1e-3, 1e-4)),
    source="coxlab/prednet kitti_train.py (arXiv:1605.08104): Adam lr 1e-3 then 1e-4 after 75 of 150 epochs of "
           "500 clips, batch 4, L_0",
)

VARIANTS = {
    "prednet_kitti": dict(
        config=dict(input_shape=(10, 128, 160, 3), stack_sizes=(3, 48, 96, 192), r_stack_sizes=(3, 48, 96, 192),
                    filter_size=3, name="prednet_kitti"),
        # Gray 32x32 moving digits, 3 layers: trains in minutes on a CPU.
        tiny=dict(input_shape=(8, 32, 32, 1), stack_sizes=(1, 16, 32), r_stack_sizes=(1, 16, 32)),
        reference_params=(6_915_948, "coxlab/prednet at the KITTI config (Keras model summary of the PredNet "
                                     "layer, coxlab/prednet issue #74); equal to the hand count"),
    ),
}

register_family(
    PredNet, VARIANTS, task="video_prediction", paper=PAPER, input_spec=_input_spec,
    default_dataset="moving_digits", inference_model=prednet_step_model, training_preset=TRAINING_PRESET,
    export={"tflite": True,
            "edgetpu": "the step graph is convolutions, ReLU, tanh, min/max, max-pool and nearest resize; int8 "
                       "mapping of the LSTM gates is not verified (no compiler here)"},
)

__all__ = ["PredNet", "PredNetLayer", "prednet_step_model", "prednet_loss", "layer_loss_weights",
           "time_loss_weights", "error_units", "hard_sigmoid"]
