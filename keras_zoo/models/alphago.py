"""AlphaGo policy and value networks (Silver et al., 2016, Nature 529:484) and the
AlphaGo Zero dual-head residual network (Silver et al., 2017, Nature 550:354).

Architectures as in each paper's Methods:

- ``alphago_policy`` (SL/RL policy network p_σ/p_ρ): 19×19×48 feature planes; layer 1
  is a 5×5 convolution with k = 192 filters, layers 2–12 are 3×3 convolutions with k
  filters (each zero-padded to keep 19×19, ReLU); layer 13 is a 1×1 convolution with
  one filter and a different bias for each position, then a softmax over the 361 points.
- ``alphago_value`` (v_θ): 48 planes plus the colour to play (49); layers 1–11 as the
  policy network, layer 12 an additional 3×3 convolution, layer 13 a 1×1 convolution
  with one filter, layer 14 a fully connected layer of 256 ReLU units, then one tanh unit.
- ``alphago_zero`` / ``alphago_zero_40b``: 19×19×17 planes (8 moves of history for
  each colour, plus the colour to play); a convolutional block (256 3×3 filters, batch
  norm, ReLU) then 19 or 39 residual blocks (the paper's 20- and 40-block networks);
  policy head (2 1×1 filters, BN, ReLU, fully connected to 19² + 1 = 362 moves incl.
  pass) and value head (1 1×1 filter, BN, ReLU, FC 256, ReLU, FC 1, tanh). Trained with
  ``alphago_zero_loss``: l = (z - v)² - πᵀ log p + c‖θ‖².

Convolutions followed by batch norm carry no bias (BN's β is the bias). The papers do
not give initializations; the 1×1 convolutions that start the value (and AGZ policy)
heads draw non-negative weights (``head_initializer``). Their inputs are ReLU outputs
(≥ 0), so with a symmetric initialization every position of a 1-filter head is ≤ 0
in about a quarter of fresh networks (measured: 20–30 % at tiny sizes, batch norm in
inference mode), and the head's ReLU passes no signal or gradient at all. Policies are
returned as probabilities (softmax), as in the papers. Go rules and search are out of
scope; the default dataset is tic-tac-toe positions labelled by exhaustive minimax
(``keras_zoo.data.tictactoe``), on which the networks are built at 3×3.
"""
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.registry import InputSpec, register_family


@serializable
class PositionBias(keras.layers.Layer):
    """Adds a learned bias per position of a (batch, H, W, 1) map and flattens it to (batch, H·W).

    The AlphaGo policy network's output layer: "1 filter of kernel size 1×1 with a
    different bias for each position" (Silver et al., 2016, Methods).
    """

    def build(self, input_shape):
        if input_shape[-1] != 1 or None in input_shape[1:3]:
            raise ValueError(f"PositionBias takes a static (batch, H, W, 1) map. Received: shape {input_shape}")
        self.positions = int(input_shape[1]) * int(input_shape[2])
        self.bias = self.add_weight(name="bias", shape=(self.positions,), initializer="zeros")
        self.built = True

    def call(self, inputs):
        return tf.reshape(inputs, [-1, self.positions]) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(input_shape[1]) * int(input_shape[2]))


def head_initializer(fan_in):
    """U[0, sqrt(6 / (fan_in + 1))]: the positive half of Glorot's range for a 1-filter head."""
    return keras.initializers.RandomUniform(minval=0.0, maxval=(6.0 / (fan_in + 1)) ** 0.5)


def _check(**values):
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}")


def _conv_trunk(x, filters, num_3x3, name):
    """Layer 1 (5×5) and ``num_3x3`` 3×3 layers, all with k filters, 'same' padding and ReLU."""
    x = keras.layers.Conv2D(filters, 5, padding="same", activation="relu", name=f"{name}_conv1")(x)
    for index in range(2, num_3x3 + 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv{index}")(x)
    return x


def AlphaGoPolicy(input_planes=48, board_size=19, filters=192, *, name="alphago_policy"):
    """AlphaGo policy network (Silver et al., 2016, Methods): 13 convolutional layers.

    Args:
        input_planes: feature planes of the input (48 in the paper).
        board_size: the board is board_size × board_size (19).
        filters: k, filters of layers 1–12 (192 in the match version; 128–384 studied).
        name: model name.

    Returns:
        A model (batch, board, board, input_planes) -> (batch, board²) move probabilities.
    """
    _check(input_planes=input_planes, board_size=board_size, filters=filters)
    planes = keras.Input(shape=(board_size, board_size, input_planes), name="planes")
    x = _conv_trunk(planes, filters, 11, name)
    x = keras.layers.Conv2D(1, 1, use_bias=False, name=f"{name}_conv13")(x)
    x = PositionBias(name=f"{name}_position_bias")(x)
    policy = keras.layers.Softmax(name=f"{name}_policy")(x)
    return keras.Model(planes, policy, name=name)


def AlphaGoValue(input_planes=49, board_size=19, filters=192, hidden_units=256, *, name="alphago_value"):
    """AlphaGo value network (Silver et al., 2016, Methods).

    Args:
        input_planes: feature planes (the policy network's 48 plus the colour to play).
        board_size: the board is board_size × board_size.
        filters: k, filters of the convolutional layers 1–12.
        hidden_units: width of the fully connected layer 14 (256).
        name: model name.

    Returns:
        A model (batch, board, board, input_planes) -> (batch, 1) value in [-1, 1].
    """
    _check(input_planes=input_planes, board_size=board_size, filters=filters, hidden_units=hidden_units)
    planes = keras.Input(shape=(board_size, board_size, input_planes), name="planes")
    x = _conv_trunk(planes, filters, 11, name)
    x = keras.layers.Conv2D(1, 1, activation="relu", kernel_initializer=head_initializer(filters),
                            name=f"{name}_conv13")(x)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(hidden_units, activation="relu", name=f"{name}_fc14")(x)
    value = keras.layers.Dense(1, activation="tanh", name=f"{name}_value")(x)
    return keras.Model(planes, value, name=name)


def _conv_bn(x, filters, kernel_size, name, relu=True, kernel_initializer="glorot_uniform"):
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                            kernel_initializer=kernel_initializer, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def residual_block(x, filters, name):
    """conv-BN-ReLU, conv-BN, skip connection, ReLU (Silver et al., 2017, Methods)."""
    y = _conv_bn(x, filters, 3, name=f"{name}_1")
    y = _conv_bn(y, filters, 3, name=f"{name}_2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def AlphaGoZero(input_planes=17, board_size=19, filters=256, residual_blocks=19, value_units=256, *,
                name="alphago_zero"):
    """AlphaGo Zero dual-head residual network (Silver et al., 2017, Methods).

    Args:
        input_planes: 17 in the paper (2 × 8 history planes and the colour to play).
        board_size: the board is board_size × board_size.
        filters: filters of every tower convolution (256).
        residual_blocks: 19 (the "20-block" network) or 39 (the "40-block" one).
        value_units: hidden units of the value head (256).
        name: model name.

    Returns:
        A model (batch, board, board, planes) -> [policy (batch, board² + 1) move
        probabilities, the last entry being pass; value (batch, 1) in [-1, 1]].
    """
    _check(input_planes=input_planes, board_size=board_size, filters=filters,
           residual_blocks=residual_blocks, value_units=value_units)
    planes = keras.Input(shape=(board_size, board_size, input_planes), name="planes")
    x = _conv_bn(planes, filters, 3, name=f"{name}_stem")
    for index in range(1, residual_blocks + 1):
        x = residual_block(x, filters, name=f"{name}_block{index}")

    p = _conv_bn(x, 2, 1, name=f"{name}_policy_head", kernel_initializer=head_initializer(filters))
    p = keras.layers.Flatten(name=f"{name}_policy_flatten")(p)
    p = keras.layers.Dense(board_size * board_size + 1, name=f"{name}_policy_logits")(p)
    policy = keras.layers.Softmax(name=f"{name}_policy")(p)

    v = _conv_bn(x, 1, 1, name=f"{name}_value_head", kernel_initializer=head_initializer(filters))
    v = keras.layers.Flatten(name=f"{name}_value_flatten")(v)
    v = keras.layers.Dense(value_units, activation="relu", name=f"{name}_value_fc")(v)
    value = keras.layers.Dense(1, activation="tanh", name=f"{name}_value")(v)
    return keras.Model(planes, [policy, value], name=name)


def alphago_zero_loss(pi, z, p, v, weights=(), c=1e-4):
    """l = (z - v)² - πᵀ log p + c‖θ‖², averaged over the batch (Silver et al., 2017, eq. 1).

    Args:
        pi: (batch, moves) search probabilities π.
        z: (batch,) or (batch, 1) game outcomes in {-1, 0, 1} from the player to move.
        p: (batch, moves) predicted move probabilities.
        v: (batch, 1) or (batch,) predicted values.
        weights: the parameters θ that are L2-regularised (e.g. ``model.trainable_weights``).
        c: L2 coefficient (1e-4 in the paper).
    """
    z = tf.reshape(tf.cast(z, tf.float32), [-1])
    v = tf.reshape(tf.cast(v, tf.float32), [-1])
    log_p = tf.math.log(tf.clip_by_value(tf.cast(p, tf.float32), 1e-12, 1.0))
    loss = tf.reduce_mean(tf.square(z - v) - tf.reduce_sum(tf.cast(pi, tf.float32) * log_p, axis=-1))
    if weights:
        loss += c * tf.add_n([tf.reduce_sum(tf.square(tf.cast(w, tf.float32))) for w in weights])
    return loss


def _planes(config):
    board = config["board_size"]
    return [InputSpec((board, board, config["input_planes"]))]


_EXPORT = {"tflite": True, "edgetpu": "convolutions, dense and softmax only; int8 Edge TPU mapping "
                                      "is expected but not verified (no compiler here)"}

register_family(
    AlphaGoPolicy,
    {"alphago_policy": dict(config=dict(input_planes=48, board_size=19, filters=192),
                            tiny=dict(input_planes=4, board_size=5, filters=8),
                            reference_params=(3_882_793, "hand count from the Methods architecture "
                                                         "(k=192; trainable)"),
                            default_dataset="tictactoe_moves")},
    task="policy_value", paper="Nature 529:484 (2016)", input_spec=_planes, export=_EXPORT,
)

register_family(
    AlphaGoValue,
    {"alphago_value": dict(config=dict(input_planes=49, board_size=19, filters=192, hidden_units=256),
                           tiny=dict(input_planes=4, board_size=5, filters=8, hidden_units=16),
                           reference_params=(3_980_162, "hand count from the Methods architecture "
                                                        "(k=192; trainable)"),
                           default_dataset="tictactoe_values")},
    task="policy_value", paper="Nature 529:484 (2016)", input_spec=_planes, export=_EXPORT,
)

register_family(
    AlphaGoZero,
    {
        "alphago_zero": dict(
            config=dict(input_planes=17, board_size=19, filters=256, residual_blocks=19, value_units=256),
            reference_params=(22_827_877, "hand count from the Methods architecture (20 blocks; "
                                          "trainable, BN gamma/beta included)")),
        "alphago_zero_40b": dict(
            config=dict(input_planes=17, board_size=19, filters=256, residual_blocks=39, value_units=256),
            reference_params=(46_441_317, "hand count from the Methods architecture (40 blocks; "
                                          "trainable, BN gamma/beta included)")),
    },
    task="policy_value", paper="Nature 550:354 (2017)", input_spec=_planes, export=_EXPORT,
    tiny=dict(input_planes=3, board_size=5, filters=8, residual_blocks=2, value_units=16),
    default_dataset="tictactoe",
)
