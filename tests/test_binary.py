"""Binary layers (BinaryNet arXiv:1602.02830, XNOR-Net arXiv:1603.05279) and the binary model families."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import IS_LEGACY_KERAS, keras
from keras_zoo.layers.binary import (
    BinaryConv2D,
    BinaryDense,
    ClipWeights,
    HardTanh,
    activation_scale_map,
    channel_scale,
    packed_size,
    ste_sign,
)

pytestmark = pytest.mark.both


def _np_sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


def _np_conv2d(x, w, stride, padding):
    """Plain cross-correlation, TensorFlow's padding convention ("same": extra row/column at the end)."""
    n, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    if padding == "same":
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, f), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def _np_xnor_conv(inputs, kernel, bias, stride, padding, scale, activation_scale):
    """XNOR-Net Sec. 3.2: (sign(I) * sign(W)) . K alpha, K = (mean_c |I|) * box filter."""
    weights = _np_sign(kernel)
    if scale == "channel":
        weights = weights * np.abs(kernel).mean(axis=(0, 1, 2))
    out = _np_conv2d(_np_sign(inputs), weights, stride, padding)
    if activation_scale:
        kh, kw = kernel.shape[:2]
        mean_abs = np.abs(inputs).mean(axis=-1, keepdims=True)
        out = out * _np_conv2d(mean_abs, np.full((kh, kw, 1, 1), 1.0 / (kh * kw)), stride, padding)
    return out + bias


# --- the quantizer ---------------------------------------------------------------------------

def test_ste_sign_forward_and_exact_gradient():
    x = tf.constant([-3.0, -1.0, -0.999, -0.25, 0.0, 0.25, 0.999, 1.0, 1.0001, 3.0])
    upstream = tf.constant(np.arange(1, 11, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ste_sign(x)
        loss = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y.numpy(), [-1, -1, -1, -1, 1, 1, 1, 1, 1, 1])  # sign(0) = +1
    # BinaryNet Eq. 4: g_r = g_q 1{|r| <= 1}, the boundary included.
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), upstream.numpy() * [0, 1, 1, 1, 1, 1, 1, 1, 0, 0])


def test_channel_scale_is_mean_abs_per_output_channel():
    rng = np.random.default_rng(0)
    conv_kernel = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    dense_kernel = rng.standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_allclose(channel_scale(tf.constant(conv_kernel)).numpy(),
                               np.abs(conv_kernel).mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(channel_scale(tf.constant(dense_kernel)).numpy(),
                               np.abs(dense_kernel).mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("stride, padding, size", [(1, "same", (3, 3)), (2, "same", (3, 3)), (1, "valid", (2, 3))])
def test_activation_scale_map_against_numpy(stride, padding, size):
    inputs = np.random.default_rng(1).standard_normal((2, 7, 6, 4)).astype(np.float32)
    expected = _np_conv2d(np.abs(inputs).mean(-1, keepdims=True), np.full((*size, 1, 1), 1 / np.prod(size)),
                          stride, padding)
    got = activation_scale_map(tf.constant(inputs), size, (stride, stride), padding)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


# --- the layers ------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["none", "channel"])
def test_effective_kernel_holds_only_plus_minus_alpha(scale):
    layer = BinaryConv2D(6, 3, scale=scale)
    layer.build((None, 8, 8, 4))
    kernel = np.random.default_rng(2).uniform(-1, 1, layer.kernel.shape).astype(np.float32)
    kernel[0, 0, 0, :] = 0.0  # sign(0) = +1
    layer.kernel.assign(kernel)
    effective = layer.effective_kernel().numpy()
    alpha = np.abs(kernel).mean(axis=(0, 1, 2)) if scale == "channel" else np.ones(6, np.float32)
    for channel in range(6):
        values = np.unique(effective[..., channel])
        np.testing.assert_allclose(values, [-alpha[channel], alpha[channel]], rtol=1e-6)
    np.testing.assert_array_equal(np.sign(effective), _np_sign(kernel))


@pytest.mark.parametrize("stride, padding, scale, activation_scale", [
    (1, "same", "none", False),     # BinaryNet
    (2, "same", "channel", True),   # XNOR-Net
    (1, "valid", "channel", True),
])
def test_binary_conv_forward_against_numpy(stride, padding, scale, activation_scale):
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    layer = BinaryConv2D(4, 3, strides=stride, padding=padding, scale=scale, activation_scale=activation_scale,
                         bias_initializer="random_normal")
    outputs = layer(inputs).numpy()
    kernel, bias = (w.numpy() for w in (layer.kernel, layer.bias))
    expected = _np_xnor_conv(inputs, kernel, bias, stride, padding, scale, activation_scale)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_binary_conv_reads_only_the_sign_of_its_inputs():
    rng = np.random.default_rng(4)
    inputs = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    rescaled = inputs * rng.uniform(0.01, 100, inputs.shape).astype(np.float32)  # same signs
    layer = BinaryConv2D(4, 3, padding="same", scale="channel")
    np.testing.assert_array_equal(layer(inputs).numpy(), layer(rescaled).numpy())
    real_inputs = BinaryConv2D(4, 3, padding="same", binarize_inputs=False)
    assert not np.allclose(real_inputs(inputs).numpy(), real_inputs(rescaled).numpy())


def test_binary_dense_forward_against_numpy():
    rng = np.random.default_rng(5)
    inputs = rng.standard_normal((3, 10)).astype(np.float32)
    layer = BinaryDense(4, scale="channel", activation_scale=True, bias_initializer="random_normal")
    outputs = layer(inputs).numpy()
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    beta = np.abs(inputs).mean(-1, keepdims=True)  # XNOR-Net's K for a dot product
    expected = (_np_sign(inputs) @ (_np_sign(kernel) * np.abs(kernel).mean(0))) * beta + bias
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_kernel_gradient_is_straight_through_with_the_clip_window():
    layer = BinaryConv2D(3, 3, scale="none", use_bias=False)
    layer.build((None, 5, 5, 2))
    kernel = np.random.default_rng(6).uniform(-0.9, 0.9, layer.kernel.shape).astype(np.float32)
    kernel[1, 1, 0, :] = [1.5, -2.0, 1.0]  # outside, outside, on the boundary
    layer.kernel.assign(kernel)
    inputs = tf.constant(np.random.default_rng(7).standard_normal((2, 5, 5, 2)).astype(np.float32))
    binary = tf.constant(_np_sign(kernel))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs) ** 2)
    with tf.GradientTape() as reference_tape:
        reference_tape.watch(binary)
        reference = tf.reduce_sum(tf.nn.conv2d(ste_sign(inputs), binary, 1, "VALID") ** 2)
    expected = reference_tape.gradient(reference, binary).numpy() * (np.abs(kernel) <= 1)
    gradient = tape.gradient(loss, layer.kernel).numpy()
    np.testing.assert_allclose(gradient, expected, atol=1e-5)
    assert np.all(gradient[1, 1, 0, :2] == 0) and gradient[1, 1, 0, 2] != 0


def test_clip_constraint_keeps_latent_weights_in_range():
    np.testing.assert_array_equal(ClipWeights(1.0)(tf.constant([-3.0, -0.5, 2.0])).numpy(), [-1.0, -0.5, 1.0])
    layer = BinaryDense(2, kernel_constraint=ClipWeights(1.0))
    layer.build((None, 3))
    layer.kernel.assign(np.full((3, 2), 0.9, np.float32))
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    optimizer.apply_gradients([(tf.fill((3, 2), -5.0), layer.kernel)])  # would move weights to 5.9
    np.testing.assert_array_equal(layer.kernel.numpy(), np.ones((3, 2), np.float32))


@pytest.mark.parametrize("kwargs, match", [
    (dict(scale="alpha"), "`scale` must be one of"),
    (dict(activation_scale=True, binarize_inputs=False), "needs `binarize_inputs=True`"),
    (dict(padding="causal"), "padding"),
])
def test_bad_layer_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BinaryConv2D(4, 3, **kwargs)


def test_layers_round_trip_through_config():
    for layer in (BinaryConv2D(4, 3, strides=2, scale="channel", activation_scale=True,
                               kernel_constraint=ClipWeights(0.5)),
                  BinaryDense(3, binarize_inputs=False, scale="channel"), HardTanh()):
        config = layer.get_config()
        clone = layer.__class__.from_config(config)
        assert clone.get_config() == config


# --- packed size -----------------------------------------------------------------------------

def test_packed_size_counts_one_bit_per_binary_weight():
    inputs = keras.Input((8, 8, 3))
    x = BinaryConv2D(4, 3, binarize_inputs=False, scale="channel", name="b1")(inputs)  # 108 bits, 4 alpha, 4 bias
    x = keras.layers.BatchNormalization(name="bn")(x)  # 16 floats
    x = keras.layers.Flatten()(x)
    x = BinaryDense(5, use_bias=False, name="b2")(x)  # 144 * 5 bits
    outputs = keras.layers.Dense(2, name="real")(x)  # 12 floats
    size = packed_size(keras.Model(inputs, outputs))
    assert (size.binary_weights, size.scale_values, size.real_values) == (108 + 720, 4, 4 + 16 + 12)
    assert size.bits == 828 + 32 * 36
    assert size.bytes == -(-size.bits // 8)
    assert size.float32_bytes == 4 * (828 + 32)


# --- model families --------------------------------------------------------------------------

def _bn(channels, affine=True):
    return (4 if affine else 2) * channels


def _binarynet_params(filters, units, classes=10, size=32):
    count, channels = 0, 3
    for width in filters:
        count += (9 * channels * width + width) + (9 * width * width + width) + 2 * _bn(width)
        channels = width
    features = channels * (size // 8) ** 2
    for width in (*units, classes):
        count += features * width + width + _bn(width)
        features = width
    return count


def _xnornet_params(filters, units, classes=1000):
    count = 121 * 3 * filters[0] + filters[0] + _bn(filters[0], False)
    for c_in, width, size in zip(filters, filters[1:], (5, 3, 3, 3)):
        count += _bn(c_in, False) + size * size * c_in * width + width
    count += _bn(filters[-1], False) + 36 * filters[-1] * units[0] + units[0]
    count += _bn(units[0], False) + units[0] * units[1] + units[1]
    return count + _bn(units[1], False) + units[1] * classes + classes


def test_hand_formulas_give_the_documented_counts():
    assert _binarynet_params((128, 256, 512), (1024, 1024)) == 14_041_266
    assert _xnornet_params((96, 256, 384, 384, 256), (4096, 4096)) == 62_397_672


@pytest.mark.parametrize("name, formula", [
    ("binarynet_cifar", lambda: _binarynet_params((128, 256, 512), (1024, 1024))),
    ("xnornet_alexnet", lambda: _xnornet_params((96, 256, 384, 384, 256), (4096, 4096))),
])
def test_full_size_parameter_count(name, formula):
    model = keras_zoo.create_model(name)
    assert model.count_params() == formula()


def _layers_by_type(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def test_binarynet_binarizes_every_layer_but_the_image_input():
    model = keras_zoo.create_model("binarynet_cifar", tiny=True)
    binary = _layers_by_type(model, (BinaryConv2D, BinaryDense))
    assert [layer.name for layer in binary] == [f"block{s}_conv{i}" for s in (1, 2, 3) for i in (1, 2)] + [
        "fc1", "fc2", "fc3"]
    assert [layer.binarize_inputs for layer in binary] == [False] + [True] * 8
    assert {layer.scale for layer in binary} == {"none"}
    assert all(isinstance(layer.kernel_constraint, ClipWeights) for layer in binary)
    # Reference order: conv, max-pool, BN; the last layer is Dense then BN.
    assert model.get_layer("block1_bn2").input is model.get_layer("block1_pool").output
    assert model.get_layer("predictions").input is model.get_layer("fc3_bn").output
    # Inference-mode BN starts at the variance of a sum of fan-in +-1 products (tiny widths 8, 8, 16),
    # with its sign threshold between integers; the first BN (real image input) keeps the defaults.
    for layer, mean, variance in (("block1_bn1", 0, 1), ("block2_bn1", -0.5, 9 * 8), ("block3_bn2", -0.5, 9 * 16),
                                  ("fc1_bn", -0.5, 16 * 16)):
        np.testing.assert_array_equal(model.get_layer(layer).moving_mean.numpy(), mean)
        np.testing.assert_array_equal(model.get_layer(layer).moving_variance.numpy(), variance)


@pytest.mark.parametrize("name", ["binarynet_cifar", "xnornet_alexnet"])
def test_binarize_false_is_the_same_network_with_real_weights(name):
    binary = keras_zoo.create_model(name, tiny=True)
    real = keras_zoo.create_model(name, tiny=True, binarize=False)
    assert real.count_params() == binary.count_params()
    assert not _layers_by_type(real, (BinaryConv2D, BinaryDense))
    binary_names = {layer.name for layer in _layers_by_type(binary, (BinaryConv2D, BinaryDense))}
    real_names = {layer.name for layer in real.layers if type(layer) in (keras.layers.Conv2D, keras.layers.Dense)}
    assert binary_names <= real_names
    # hard tanh where the binary net takes the sign: one per binary layer with binary inputs.
    assert len(_layers_by_type(real, HardTanh)) == sum(
        layer.binarize_inputs for layer in _layers_by_type(binary, (BinaryConv2D, BinaryDense)))
    # Weights move between the twins by layer name (set_weights raises on any shape mismatch).
    for layer in real.layers:
        if layer.weights:
            binary.get_layer(layer.name).set_weights(layer.get_weights())


def test_xnornet_keeps_first_and_last_layers_real_with_bn_before_binarize():
    model = keras_zoo.create_model("xnornet_alexnet", tiny=True)
    binary = _layers_by_type(model, (BinaryConv2D, BinaryDense))
    assert [layer.name for layer in binary] == ["conv2_conv", "conv3_conv", "conv4_conv", "conv5_conv", "fc6", "fc7"]
    assert all(layer.scale == "channel" and layer.activation_scale and layer.binarize_inputs for layer in binary)
    assert type(model.get_layer("conv1_conv")) is keras.layers.Conv2D
    assert type(model.get_layer("predictions")) is keras.layers.Dense
    for index in (2, 3, 4, 5):
        assert model.get_layer(f"conv{index}_conv").input is model.get_layer(f"conv{index}_bn").output
    assert not model.get_layer("conv2_bn").weights[0].trainable  # affine-free BN, as the reference
    plain = keras_zoo.create_model("xnornet_alexnet", tiny=True, activation_scale=False)
    assert not any(layer.activation_scale for layer in _layers_by_type(plain, (BinaryConv2D, BinaryDense)))


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="`binarize` must be True or False"):
        keras_zoo.create_model("binarynet_cifar", tiny=True, binarize="yes")
    with pytest.raises(ValueError, match="`filters` must be a tuple of 3"):
        keras_zoo.create_model("binarynet_cifar", filters=(8, 8))
    with pytest.raises(ValueError, match="height and width must be fixed"):
        keras_zoo.create_model("binarynet_cifar", tiny=True, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="no pretrained weights|does not download"):
        keras_zoo.create_model("xnornet_alexnet", tiny=True, weights="imagenet")


def _sd_binary_params(n, widths, classes=10):
    count = 27 * widths[0] + _bn(widths[0])
    c_in = widths[0]
    for width in widths:
        for _ in range(n):
            count += _bn(c_in) + 9 * c_in * width + _bn(width) + 9 * width * width
            c_in = width
    return count + _bn(widths[-1]) + widths[-1] * classes + classes


def test_binarized_stochastic_depth_resnet(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("stochastic_depth_resnet110", tiny=True, binarize=True)
    assert model.count_params() == _sd_binary_params(1, (4, 8, 8))
    binary = _layers_by_type(model, BinaryConv2D)
    assert len(binary) == 6 and all(layer.scale == "channel" and layer.binarize_inputs for layer in binary)
    assert type(model.get_layer("conv1_conv")) is keras.layers.Conv2D
    assert model.get_layer("conv2_block1_1_conv").input is model.get_layer("conv2_block1_1_bn").output
    images = np.random.default_rng(8).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images, training=False) * tf.constant([[1.0, -2.0] * 5, [0.5, 3.0] * 5]))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.any(np.asarray(g)) for g in grads)
    path = str(tmp_path / "sd_binary.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(images).numpy(), model(images).numpy(), atol=1e-6)
    assert keras_zoo.create_model("stochastic_depth_resnet110", tiny=True).count_params() != model.count_params()


# --- export (tf_keras) -----------------------------------------------------------------------

def _small_xnor_model():
    inputs = keras.Input((8, 8, 3))
    x = BinaryConv2D(8, 3, padding="same", binarize_inputs=False, scale="channel", name="b1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = BinaryConv2D(8, 3, padding="same", scale="channel", name="b2")(x)
    x = keras.layers.MaxPooling2D(2, name="p2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = BinaryDense(10, scale="channel", name="b3")(x)
    return keras.Model(inputs, keras.layers.BatchNormalization(name="bn3")(x))


@pytest.mark.tf_keras
@pytest.mark.skipif(not IS_LEGACY_KERAS, reason="export runs in the tf_keras pass")
def test_int8_tflite_keeps_plus_minus_alpha_and_agrees_with_keras():
    from ai_edge_litert.interpreter import Interpreter

    from export import convert, verify

    keras.utils.set_random_seed(0)
    model = _small_xnor_model()
    rng = np.random.default_rng(9)
    # Binary images: every conv sum is alpha times an integer, so no sign sits within int8 rounding of 0.
    images = [[rng.integers(0, 2, (1, 8, 8, 3)).astype(np.float32)] for _ in range(40)]
    tflite = convert.convert(model, "int8", convert.input_signature(model), representative_inputs=images)

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    weight_ops = [op for op in convert.read_graph(tflite).ops if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    assert [op.name for op in weight_ops] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    kernels = {}
    for name, op in zip(("b1", "b2", "b3"), weight_ops):
        weight = op.inputs[1]
        assert weight.dtype == "int8" and len(weight.scale) == weight.shape[0]  # per output channel
        values = interpreter.get_tensor(weight.index).astype(np.float32)
        kernels[name] = values * np.reshape(weight.scale, (-1, *[1] * (values.ndim - 1)))  # (out, ...)
    for name, dequantized in kernels.items():
        for channel in dequantized:
            assert len(np.unique(channel)) == 2  # +-alpha (times a folded BN scale for b3)
    for name in ("b1", "b2"):  # not followed by a BN the converter folds into the kernel
        alpha = np.abs(model.get_layer(name).kernel.numpy()).mean(axis=(0, 1, 2))
        np.testing.assert_allclose(np.abs(kernels[name]).max(axis=(1, 2, 3)), alpha, rtol=1e-6)
        expected = np.transpose(model.get_layer(name).effective_kernel().numpy(), (3, 0, 1, 2))
        np.testing.assert_allclose(kernels[name], expected, rtol=1e-6)

    result = verify.compare(model, tflite, images, "image_classification", "int8")
    assert result["passed"], result
    assert result["max_abs_diff"] <= 2 * result["output_quant_step"], result
    size = packed_size(model)
    print(f"\npacked 1-bit: {size.bytes} B, int8 .tflite: {len(tflite)} B, float32 weights: {size.float32_bytes} B")
    assert size.bytes < size.float32_bytes / 4
