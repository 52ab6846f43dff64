"""PixelCNN, Gated PixelCNN and PixelRNN (Row LSTM and Diagonal BiLSTM).

- PixelCNN and PixelRNN: van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent
  Neural Networks", arXiv:1601.06759.
- Gated PixelCNN: van den Oord et al., "Conditional Image Generation with PixelCNN
  Decoders", arXiv:1606.05328.

Every model maps an image to logits over its ``levels`` intensity values, one
distribution per sub-pixel:

- input: ``(B, H, W, C)`` float32, the intensity level divided by ``levels - 1``
  (so in [0, 1]; C is 1 for grey/binary images, 3 for RGB);
- output: ``(B, H, W, C, levels)`` logits, where the distribution at ``(i, j, c)``
  depends only on the sub-pixels before it in raster order (rows, then columns, then
  R, G, B). The negative log-likelihood is the categorical cross-entropy against the
  integer levels; divided by ``ln 2`` and averaged over ``H * W * C`` it is bits/dim.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras, serializable
from keras_zoo.layers.masked_conv import GroupedGate, MaskedConv2D, RowLSTM, causal_mask, channel_groups
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers


def _validate(input_shape, levels, **positive):
    if len(tuple(input_shape)) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError("`input_shape` must be (height, width, channels) with 1 (grey) or 3 (RGB) "
                         f"channels. Received: input_shape={input_shape}")
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"`levels` must be an int >= 2 (256 for 8-bit images, 2 for binary). "
                         f"Received: levels={levels!r}")
    for key, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")


def _image_input(input_shape, name):
    image = layers.Input(shape=tuple(input_shape), name=f"{name}_image")
    # [0, 1] -> [-1, 1]: centred inputs for the first masked convolution.
    return image, layers.Rescaling(2.0, offset=-1.0, name=f"{name}_rescale")(image)


def _output_head(x, output_units, input_shape, levels, name):
    """ReLU, 1x1 mask-B conv, ReLU, 1x1 mask-B conv to ``C * levels`` logits (arXiv:1601.06759)."""
    height, width, colors = input_shape
    x = layers.Activation("relu", name=f"{name}_out_1_relu")(x)
    x = MaskedConv2D(output_units, 1, "B", colors, name=f"{name}_out_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_out_2_relu")(x)
    x = MaskedConv2D(colors * levels, 1, "B", colors, name=f"{name}_out_2_conv")(x)
    return layers.Reshape((height, width, colors, levels), name=f"{name}_logits")(x)


def residual_block(x, hidden, color_channels, name):
    """PixelCNN residual block (arXiv:1601.06759, Figure 5): 2h -> 1x1 -> h -> 3x3 -> h -> 1x1 -> 2h."""
    y = layers.Activation("relu", name=f"{name}_1_relu")(x)
    y = MaskedConv2D(hidden, 1, "B", color_channels, name=f"{name}_1_conv")(y)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = MaskedConv2D(hidden, 3, "B", color_channels, name=f"{name}_2_conv")(y)
    y = layers.Activation("relu", name=f"{name}_3_relu")(y)
    y = MaskedConv2D(2 * hidden, 1, "B", color_channels, name=f"{name}_3_conv")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def PixelCNN(num_layers=15, hidden=128, output_units=1024, *, input_shape=(8, 8, 1), levels=256,
             name="pixelcnn"):
    """PixelCNN (arXiv:1601.06759, Sec. 3.5).

    A 7x7 mask-A convolution to ``2 * hidden`` maps, ``num_layers`` residual blocks
    with 3x3 mask-B convolutions, and two 1x1 mask-B output layers. The defaults
    are the paper's CIFAR-10 PixelCNN (15 layers, h=128); ``output_units`` (the
    width of the first output layer) is our choice.

    Args:
        num_layers: residual blocks.
        hidden: ``h``; the residual stream has ``2h`` maps.
        output_units: maps of the first 1x1 output layer.
        input_shape: ``(H, W, C)``, C in {1, 3}.
        levels: values per sub-pixel (256 for 8-bit images, 2 for binary).
        name: model name, prefix of every layer name.

    Returns:
        A ``keras.Model`` from ``(B, H, W, C)`` images in [0, 1] to ``(B, H, W, C, levels)`` logits.
    """
    _validate(input_shape, levels, num_layers=num_layers, hidden=hidden, output_units=output_units)
    colors = input_shape[-1]
    image, x = _image_input(input_shape, name)
    x = MaskedConv2D(2 * hidden, 7, "A", colors, name=f"{name}_stem_conv")(x)
    for i in range(1, num_layers + 1):
        x = residual_block(x, hidden, colors, name=f"{name}_block{i}")
    logits = _output_head(x, output_units, input_shape, levels, name)
    return keras.Model(image, logits, name=name)


def gated_layer(v, h, filters, kernel_size, color_channels, condition, first, name):
    """One Gated PixelCNN layer (arXiv:1606.05328, Figure 2).

    The vertical stack ``v`` sees only the rows above the current pixel, through a
    ``(k//2 + 1) x k`` convolution padded on top (the image is shifted down one
    row before the first layer). The horizontal stack ``h`` sees the current row up
    to the current sub-pixel through a ``1 x k`` masked convolution, plus a 1x1
    projection of the vertical pre-activation; together there is no blind spot.
    Both stacks use ``tanh(a) * sigmoid(b)`` gates; the horizontal stack has a
    residual connection (except in the first layer, whose input is the image).
    """
    k = kernel_size
    v_pre = layers.ZeroPadding2D(((k // 2, 0), (k // 2, k // 2)), name=f"{name}_v_pad")(v)
    v_pre = layers.Conv2D(2 * filters, (k // 2 + 1, k), name=f"{name}_v_conv")(v_pre)
    h_pre = MaskedConv2D(2 * filters, (1, k), "A" if first else "B", color_channels,
                         name=f"{name}_h_conv")(h)
    v_to_h = layers.Conv2D(2 * filters, 1, name=f"{name}_v_to_h_conv")(v_pre)
    h_terms = [h_pre, v_to_h]
    if condition is not None:
        v_bias = _condition_bias(condition, 2 * filters, f"{name}_v_cond")
        h_terms.append(_condition_bias(condition, 2 * filters, f"{name}_h_cond"))
        v_pre = layers.Add(name=f"{name}_v_cond_add")([v_pre, v_bias])
    h_pre = layers.Add(name=f"{name}_h_add")(h_terms)
    v_out = GroupedGate(1, name=f"{name}_v_gate")(v_pre)
    h_out = GroupedGate(color_channels, name=f"{name}_h_gate")(h_pre)
    h_out = MaskedConv2D(filters, 1, "B", color_channels, name=f"{name}_h_1x1_conv")(h_out)
    if not first:
        h_out = layers.Add(name=f"{name}_h_residual")([h, h_out])
    return v_out, h_out


def _condition_bias(condition, channels, name):
    """``V^T y`` of arXiv:1606.05328 Eq. 4 for a class label y, broadcast over H and W."""
    bias = layers.Embedding(condition.num_classes, channels, name=f"{name}_embedding")(condition.label)
    return layers.Reshape((1, 1, channels), name=f"{name}_reshape")(bias)


class _Condition:
    def __init__(self, label, num_classes):
        self.label, self.num_classes = label, num_classes


def GatedPixelCNN(num_layers=20, filters=384, kernel_size=5, output_units=1024, *, input_shape=(8, 8, 1),
                  levels=256, num_classes=None, name="gated_pixelcnn"):
    """Gated PixelCNN with vertical and horizontal stacks (arXiv:1606.05328, Sec. 2.2-2.3).

    Defaults follow the paper's large ImageNet model (20 layers, 384 hidden units,
    5x5 filters). With ``num_classes`` the model is class-conditional (Eq. 4)
    and takes a second input, the int32 label ``(B,)``.

    Args:
        num_layers: gated layers.
        filters: gated maps ``p`` per stack (the convolutions produce ``2p``); a
            multiple of the colour channels.
        kernel_size: odd filter size ``k``.
        output_units: maps of the first 1x1 output layer (our choice, not in the paper).
        input_shape: ``(H, W, C)``, C in {1, 3}.
        levels: values per sub-pixel.
        num_classes: None (unconditional) or the number of class labels.
        name: model name, prefix of every layer name.
    """
    _validate(input_shape, levels, num_layers=num_layers, filters=filters, output_units=output_units)
    colors = input_shape[-1]
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be an odd int >= 3. Received: kernel_size={kernel_size!r}")
    if filters % colors:
        raise ValueError(f"`filters` must be a multiple of the {colors} colour channels so each colour "
                         f"owns the same number of gated maps. Received: filters={filters}")
    image, x = _image_input(input_shape, name)
    inputs, condition = [image], None
    if num_classes is not None:
        label = layers.Input(shape=(), dtype="int32", name=f"{name}_label")
        inputs.append(label)
        condition = _Condition(label, num_classes)
    v = layers.ZeroPadding2D(((1, 0), (0, 0)), name=f"{name}_shift_pad")(x)
    v = layers.Cropping2D(((0, 1), (0, 0)), name=f"{name}_shift_crop")(v)
    h = x
    for i in range(1, num_layers + 1):
        v, h = gated_layer(v, h, filters, kernel_size, colors, condition, first=i == 1,
                           name=f"{name}_layer{i}")
    logits = _output_head(h, output_units, input_shape, levels, name)
    return keras.Model(inputs if len(inputs) > 1 else image, logits, name=name)


def PixelRNNRowLSTM(num_layers=12, hidden=128, output_units=1024, *, input_shape=(8, 8, 1), levels=256,
                    name="pixelrnn_row_lstm"):
    """PixelRNN with Row LSTM layers (arXiv:1601.06759, Sec. 3.1 and 3.3).

    A 7x7 mask-A convolution to ``2h`` maps, then ``num_layers`` Row LSTM layers,
    each ``2h -> h`` with a 1x1 mask-B convolution back to ``2h`` and a residual
    connection, then two 1x1 mask-B output layers. The defaults are the paper's
    CIFAR-10 Row LSTM (12 layers, h=128).
    """
    _validate(input_shape, levels, num_layers=num_layers, hidden=hidden, output_units=output_units)
    colors = input_shape[-1]
    image, x = _image_input(input_shape, name)
    x = MaskedConv2D(2 * hidden, 7, "A", colors, name=f"{name}_stem_conv")(x)
    for i in range(1, num_layers + 1):
        y = RowLSTM(hidden, 3, colors, name=f"{name}_layer{i}_row_lstm")(x)
        y = MaskedConv2D(2 * hidden, 1, "B", colors, name=f"{name}_layer{i}_1x1_conv")(y)
        x = layers.Add(name=f"{name}_layer{i}_add")([x, y])
    logits = _output_head(x, output_units, input_shape, levels, name)
    return keras.Model(image, logits, name=name)


def skew(x):
    """Shifts row i of ``(B, H, W, C)`` right by i: ``(B, H, W + H - 1, C)``, zeros elsewhere.

    The diagonals of the image become the columns (arXiv:1601.06759, Sec. 3.2, Figure 3).
    Written as pad + reshape: rows padded to width ``W + H`` and re-read with width
    ``W + H - 1`` each start one column further right than the row above.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    padded = tf.pad(x, [[0, 0], [0, 0], [0, height], [0, 0]])
    flat = tf.reshape(padded, [-1, height * (width + height), channels])[:, : height * (width + height - 1)]
    return tf.reshape(flat, [-1, height, width + height - 1, channels])


def unskew(x, width):
    """Inverse of ``skew``: row i of ``(B, H, width + H - 1, C)`` read from column i on, ``(B, H, width, C)``."""
    height, channels = x.shape[1], x.shape[3]
    flat = tf.reshape(x, [-1, height * (width + height - 1), channels])
    flat = tf.pad(flat, [[0, 0], [0, height], [0, 0]])
    return tf.reshape(flat, [-1, height, width + height, channels])[:, :, :width]


def diagonal_lstm_step(gate_inputs, state, state_kernel):
    """One column of the skewed map (arXiv:1601.06759, Eq. 3 with the 2x1 state-to-state kernel).

    Args:
        gate_inputs: ``K_is * x`` of this column, ``(B, H, 4h)`` in gate order o, f, i, g.
        state: ``(hidden, cell)`` of the previous column, each ``(B, H, h)``.
        state_kernel: ``K_ss``, ``(2, h, 4h)``; tap 0 reads row ``r - 1``, tap 1 row ``r``
            of the previous column, i.e. the pixel above and the pixel to the left.

    Returns:
        ``(hidden, cell)`` of this column.
    """
    hidden, cell = state
    above_and_left = tf.pad(hidden, [[0, 0], [1, 0], [0, 0]])
    gates = gate_inputs + tf.nn.conv1d(above_and_left, state_kernel, 1, "VALID")
    o, f, i, g = tf.split(gates, 4, axis=-1)
    cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(cell), cell


@serializable
class DiagonalBiLSTM(keras.layers.Layer):
    """The Diagonal BiLSTM layer of PixelRNN (arXiv:1601.06759, Sec. 3.2).

    Each direction computes a 1x1 mask-B input-to-state convolution ``K_is`` (to the
    four gates), skews the map, scans its columns with the 2x1 state-to-state
    convolution ``K_ss`` (``diagonal_lstm_step``) and unskews: the state at ``(r, c)``
    follows from the states at ``(r, c - 1)`` and ``(r - 1, c)``. The right-to-left
    direction runs on the mirrored map; its output is mirrored back and shifted down
    one row before it is added to the left-to-right output, so ``(r, c)`` never sees
    ``(r, c + 1)``. The ``units`` hidden maps are split into ``color_channels``
    groups; a unit's gates see its own and earlier colours of the current pixel.
    On its input map the layer's dependency field is complete; behind a mask-A
    stem, the last pixel of the row above reaches row r only through the stem's
    window (the input map at ``(r - 1, W - 1)`` excludes that pixel by causality).

    ``K_is`` is applied before the skew (a 1x1 convolution commutes with it): the
    positions the skew pads then hold exactly zero gate inputs, no bias, and their
    states stay zero, as an LSTM's initial state at the image border.

    Args:
        units: hidden maps ``h`` per direction (the output has ``h`` maps).
        color_channels: 3 for RGB, 1 otherwise.
    """

    DIRECTIONS = ("left_to_right", "right_to_left")

    def __init__(self, units, color_channels=3, **kwargs):
        super().__init__(**kwargs)
        if units < color_channels:
            raise ValueError(f"DiagonalBiLSTM needs at least one unit per colour: units >= {color_channels}. "
                             f"Received: units={units}")
        self.units = units
        self.color_channels = color_channels

    def build(self, input_shape):
        in_channels, h = int(input_shape[-1]), self.units
        self.input_kernels, self.state_kernels, self.biases = {}, {}, {}
        for direction in self.DIRECTIONS:
            self.input_kernels[direction] = self.add_weight(
                name=f"{direction}_input_kernel", shape=(1, 1, in_channels, 4 * h), initializer="glorot_uniform")
            self.state_kernels[direction] = self.add_weight(
                name=f"{direction}_state_kernel", shape=(2, h, 4 * h), initializer="orthogonal")
            self.biases[direction] = self.add_weight(name=f"{direction}_bias", shape=(4 * h,), initializer="zeros")
        unit_groups = channel_groups(h, self.color_channels)
        self.input_kernel_mask = tf.constant(causal_mask(
            (1, 1), "B", channel_groups(in_channels, self.color_channels), np.tile(unit_groups, 4)))
        super().build(input_shape)

    def _skewed_gate_inputs(self, inputs, direction):
        gate_inputs = tf.nn.conv2d(inputs, self.input_kernels[direction] * self.input_kernel_mask, 1, "VALID")
        return tf.transpose(skew(gate_inputs + self.biases[direction]), [2, 0, 1, 3])  # columns first

    def call(self, inputs):
        width = inputs.shape[2]
        left_columns = self._skewed_gate_inputs(inputs, "left_to_right")
        right_columns = self._skewed_gate_inputs(tf.reverse(inputs, axis=[2]), "right_to_left")
        left_kernel, right_kernel = (self.state_kernels[d] for d in self.DIRECTIONS)

        def step(states, columns):  # both directions in one scan: half the loop iterations
            return (*diagonal_lstm_step(columns[0], states[:2], left_kernel),
                    *diagonal_lstm_step(columns[1], states[2:], right_kernel))

        zeros = tf.zeros_like(left_columns[0][..., : self.units])
        left, _, right, _ = tf.scan(step, (left_columns, right_columns), initializer=(zeros,) * 4)
        left = unskew(tf.transpose(left, [1, 2, 0, 3]), width)
        right = tf.reverse(unskew(tf.transpose(right, [1, 2, 0, 3]), width), axis=[2])
        right_shifted_down = tf.pad(right[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])
        return left + right_shifted_down

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "color_channels": self.color_channels}


def PixelRNNDiagonalBiLSTM(num_layers=12, hidden=128, output_units=1024, *, input_shape=(8, 8, 1), levels=256,
                           name="pixelrnn_diagonal_bilstm"):
    """PixelRNN with Diagonal BiLSTM layers (arXiv:1601.06759, Sec. 3.2 and 3.3).

    A 7x7 mask-A convolution to ``2h`` maps, then ``num_layers`` Diagonal BiLSTM
    layers (1x1 input-to-state, 2x1 state-to-state), each ``2h -> h`` with a 1x1
    mask-B convolution back to ``2h`` and a residual connection, then two 1x1 mask-B
    output layers, as the Row LSTM. The defaults are the paper's CIFAR-10 Diagonal
    BiLSTM (12 layers, h=128, Sec. 5); its binarized-MNIST model has 7 layers, h=16.
    """
    _validate(input_shape, levels, num_layers=num_layers, hidden=hidden, output_units=output_units)
    colors = input_shape[-1]
    image, x = _image_input(input_shape, name)
    x = MaskedConv2D(2 * hidden, 7, "A", colors, name=f"{name}_stem_conv")(x)
    for i in range(1, num_layers + 1):
        y = DiagonalBiLSTM(hidden, colors, name=f"{name}_layer{i}_diagonal_bilstm")(x)
        y = MaskedConv2D(2 * hidden, 1, "B", colors, name=f"{name}_layer{i}_1x1_conv")(y)
        x = layers.Add(name=f"{name}_layer{i}_add")([x, y])
    logits = _output_head(x, output_units, input_shape, levels, name)
    return keras.Model(image, logits, name=name)


def sample_images(model, num, *, seed=0, temperature=1.0, labels=None):
    """Ancestral sampling, one sub-pixel at a time in raster and colour order.

    Args:
        model: a model of this family (input ``(B, H, W, C)`` in [0, 1]).
        num: number of images.
        seed: NumPy seed of the categorical draws.
        temperature: logits are divided by it (1.0 samples the model's distribution).
        labels: int array ``(num,)`` for class-conditional models, else None.

    Returns:
        float32 array ``(num, H, W, C)`` in [0, 1].
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    height, width, colors, levels = model.output_shape[1:]
    conditional = len(model.inputs) > 1
    if conditional and labels is None:
        raise ValueError("This model is class-conditional: pass `labels`, an int array of shape (num,). "
                         "Received: labels=None")
    rng = np.random.default_rng(seed)
    images = np.zeros((num, height, width, colors), dtype="float32")
    forward = tf.function(lambda x: model(x, training=False))
    for i in range(height):
        for j in range(width):
            for c in range(colors):
                feed = [images, np.asarray(labels, "int32")] if conditional else images
                logits = np.asarray(forward(feed))[:, i, j, c].astype("float64") / temperature
                probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
                probs /= probs.sum(axis=-1, keepdims=True)
                draws = [rng.choice(levels, p=p) for p in probs]
                images[:, i, j, c] = np.asarray(draws, "float32") / (levels - 1)
    return images


def _image_spec(config):
    specs = [InputSpec(tuple(config.get("input_shape", (8, 8, 1))), "float32")]
    if config.get("num_classes"):
        specs.append(InputSpec((), "int32", maxval=config["num_classes"]))
    return specs


_FAMILY = dict(task="image_generation", paper="1601.06759", input_spec=_image_spec, default_dataset="digits",
               export={"tflite": True,
                       "edgetpu": "RGB logits (1, H, W, 3, levels) have four dimensions > 1, beyond the Edge "
                                  "TPU's three, so the final reshape runs on the CPU (grey images map fully)"})

_RECURRENT_INT8 = dict(unsupported_quantization=("int8", "qat"),
                       reason="TF 2.21's int8 calibrator crashes (segmentation fault) on the TensorList while "
                              "loop of the recurrence; float32, float16 and dynamic export work")

register_family(PixelCNN, {
    "pixelcnn": dict(config=dict(num_layers=15, hidden=128),
                     tiny=dict(num_layers=2, hidden=8, output_units=16, levels=16)),
}, **_FAMILY)
register_family(GatedPixelCNN, {
    "gated_pixelcnn": dict(config=dict(num_layers=20, filters=384, kernel_size=5),
                           tiny=dict(num_layers=2, filters=8, kernel_size=3, output_units=16, levels=16)),
}, **{**_FAMILY, "paper": "1606.05328"})
register_family(PixelRNNRowLSTM, {
    "pixelrnn_row_lstm": dict(config=dict(num_layers=12, hidden=128),
                              tiny=dict(num_layers=2, hidden=8, output_units=16, levels=16),
                              export={"tflite": True, "edgetpu": "the row recurrence is a TensorList while "
                                                                "loop, which the Edge TPU does not run",
                                      **_RECURRENT_INT8}),
}, **_FAMILY)
register_family(PixelRNNDiagonalBiLSTM, {
    "pixelrnn_diagonal_bilstm": dict(
        config=dict(num_layers=12, hidden=128),
        tiny=dict(num_layers=2, hidden=8, output_units=16, levels=16),
        export={"tflite": True, "edgetpu": "the diagonal recurrence is a TensorList while loop, which the Edge "
                                           "TPU does not run", **_RECURRENT_INT8}),
}, **_FAMILY)
