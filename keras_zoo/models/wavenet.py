"""WaveNet (van den Oord et al., 2016, arXiv:1609.03499) with Fast WaveNet generation (arXiv:1611.09482).

``WaveNet(...)`` maps mu-law sample ids ``(B, T)`` int32 to next-sample logits
``(B, T, quantization)``: the logits at t are the distribution of sample t + 1 and
depend on samples <= t only. The stack (Sec. 2.1-2.4, Figure 4): one-hot input,
a causal convolution, ``num_blocks`` repetitions of dilations 1, 2, ..., 2^(L-1),
each a gated residual layer ``z = tanh(W_f * x + V_f h) . sigmoid(W_g * x + V_g h)``
with 1x1 residual and skip convolutions, then ReLU, 1x1, ReLU, 1x1 over the summed skips.

``wavenet_step_model`` is the same network for one new sample with an explicit queue
per causal convolution (Paine et al., arXiv:1611.09482): a sample costs O(layers).
It is the TFLite export graph (batch 1, builtin ops).

The paper gives no channel sizes; the defaults (32 residual/dilation channels,
512 skip channels, 5 blocks of dilations 1..512) are those of the widely used
ibab/tensorflow-wavenet ``wavenet_params.json``.
"""
import numpy as np
import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.layers.causal_conv import CausalConv1D, CausalConv1DStep, OneHot
from keras_zoo.layers.masked_conv import GroupedGate
from keras_zoo.registry import InputSpec, register_family

layers = keras.layers


def dilations(num_blocks, layers_per_block):
    """The dilation of every residual layer: ``num_blocks`` times ``1, 2, ..., 2^(L-1)``."""
    return [2 ** i for _ in range(num_blocks) for i in range(layers_per_block)]


def receptive_field(num_blocks=5, layers_per_block=10, kernel_size=2, initial_kernel_size=2):
    """Samples that one output sees: ``(k - 1) * sum(dilations) + (k0 - 1) + 1``.

    E.g. one block of dilations 1..512 with k = 2 after the k0 = 2 input convolution:
    1023 + 1 + 1 = 1025 samples.
    """
    return (kernel_size - 1) * sum(dilations(num_blocks, layers_per_block)) + initial_kernel_size


def _validate(num_blocks, layers_per_block, kernel_size, residual_channels, dilation_channels,
              skip_channels, quantization, global_classes, local_channels, local_upsample, sequence_length):
    for key, value in dict(num_blocks=num_blocks, layers_per_block=layers_per_block, kernel_size=kernel_size,
                           residual_channels=residual_channels, dilation_channels=dilation_channels,
                           skip_channels=skip_channels, local_upsample=local_upsample).items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive int. Received: {key}={value!r}")
    if not isinstance(quantization, int) or quantization < 2:
        raise ValueError(f"`quantization` must be an int >= 2 (256 mu-law levels in the paper). "
                         f"Received: quantization={quantization!r}")
    for key, value in dict(global_classes=global_classes, local_channels=local_channels,
                           sequence_length=sequence_length).items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"`{key}` must be None or a positive int. Received: {key}={value!r}")
    if sequence_length is not None and sequence_length % local_upsample:
        raise ValueError(f"`sequence_length` must be a multiple of `local_upsample`={local_upsample} so the "
                         f"local features cover it. Received: sequence_length={sequence_length}")


class _Conditioning:
    """The ``V h`` terms of Eq. (2)/(3): global (label) and local (feature sequence) projections."""

    def __init__(self, label, label_classes, features):
        self.label, self.label_classes, self.features = label, label_classes, features

    def terms(self, channels, prefix):
        terms = []
        if self.label is not None:
            bias = layers.Embedding(self.label_classes, channels, name=f"{prefix}_global_cond")(self.label)
            terms.append(layers.Reshape((1, channels), name=f"{prefix}_global_cond_reshape")(bias))
        if self.features is not None:
            terms.append(layers.Conv1D(channels, 1, name=f"{prefix}_local_cond")(self.features))
        return terms


def _residual_layer(x, pre, conditioning, config, prefix, last):
    """Gate, skip and residual of one layer, given the dilated convolution's output ``pre``."""
    terms = conditioning.terms(2 * config["dilation_channels"], prefix)
    if terms:
        pre = layers.Add(name=f"{prefix}_cond_add")([pre, *terms])
    z = GroupedGate(1, name=f"{prefix}_gate")(pre)
    skip = layers.Conv1D(config["skip_channels"], 1, name=f"{prefix}_skip_conv")(z)
    if last:  # the last residual output would feed nothing
        return None, skip
    residual = layers.Conv1D(config["residual_channels"], 1, name=f"{prefix}_res_conv")(z)
    return layers.Add(name=f"{prefix}_res_add")([x, residual]), skip


def _network(samples, conditioning, config, step_queues=None):
    """The WaveNet graph: full-sequence, or (``step_queues`` given) one step that also returns new queues."""
    name = config["name"]
    new_queues = []

    def causal(tensor, filters, kernel_size, dilation, layer_name):
        if step_queues is None:
            return CausalConv1D(filters, kernel_size, dilation, name=layer_name)(tensor)
        output, queue = CausalConv1DStep(filters, kernel_size, dilation, name=layer_name)(
            [tensor, step_queues[len(new_queues)]])
        new_queues.append(queue)
        return output

    x = OneHot(config["quantization"], name=f"{name}_one_hot")(samples)
    x = causal(x, config["residual_channels"], 2, 1, f"{name}_input_conv")
    skips = []
    all_dilations = dilations(config["num_blocks"], config["layers_per_block"])
    for index, dilation in enumerate(all_dilations):
        block, layer = divmod(index, config["layers_per_block"])
        prefix = f"{name}_block{block + 1}_layer{layer + 1}"
        pre = causal(x, 2 * config["dilation_channels"], config["kernel_size"], dilation, f"{prefix}_dilated_conv")
        x, skip = _residual_layer(x, pre, conditioning, config, prefix, last=index == len(all_dilations) - 1)
        skips.append(skip)
    x = layers.Add(name=f"{name}_skip_sum")(skips) if len(skips) > 1 else skips[0]
    x = layers.Activation("relu", name=f"{name}_out_1_relu")(x)
    x = layers.Conv1D(config["skip_channels"], 1, name=f"{name}_out_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_out_2_relu")(x)
    logits = layers.Conv1D(config["quantization"], 1, name=f"{name}_logits")(x)
    return logits, new_queues


def _conditioning_inputs(config, step, batch_size=None):
    name, label, features = config["name"], None, None
    inputs = []
    if config["global_classes"] is not None:
        label = layers.Input(shape=(), batch_size=batch_size, dtype="int32", name=f"{name}_global_label")
        inputs.append(label)
    if config["local_channels"] is not None:
        length = 1 if step else (config["sequence_length"] // config["local_upsample"]
                                 if config["sequence_length"] else None)
        features = layers.Input(shape=(length, config["local_channels"]), batch_size=batch_size,
                                name=f"{name}_local_features")
        inputs.append(features)
        if not step and config["local_upsample"] > 1:
            # Sec. 2.5: the lower-rate local features are brought to the audio rate.
            features = layers.UpSampling1D(config["local_upsample"], name=f"{name}_local_upsample")(features)
    return inputs, _Conditioning(label, config["global_classes"], features)


def WaveNet(num_blocks=5, layers_per_block=10, *, kernel_size=2, residual_channels=32, dilation_channels=32,
            skip_channels=512, quantization=256, global_classes=None, local_channels=None, local_upsample=1,
            sequence_length=None, name="wavenet"):
    """WaveNet (arXiv:1609.03499).

    Args:
        num_blocks: repetitions of the dilation cycle.
        layers_per_block: residual layers per cycle, dilations ``1 .. 2^(L-1)`` (10 -> up to 512).
        kernel_size: taps of the dilated convolutions (2 in the paper).
        residual_channels, dilation_channels, skip_channels: widths of the residual
            stream, of each gate's tanh and sigmoid halves, and of the skip / output layers.
        quantization: mu-law levels (256).
        global_classes: None, or the number of global labels ``h`` (e.g. speakers);
            adds an int32 input ``(B,)`` (Eq. 2).
        local_channels: None, or the channels of local features ``h`` (Eq. 3); adds a
            float input ``(B, T / local_upsample, local_channels)``.
        local_upsample: audio samples per local feature step (repeat upsampling).
        sequence_length: static training length T, or None for any length.
        name: model name, prefix of every layer name.

    Returns:
        A ``keras.Model``: ``(B, T)`` int32 [+ conditioning] -> ``(B, T, quantization)`` logits.
    """
    config = dict(locals())
    _validate(num_blocks, layers_per_block, kernel_size, residual_channels, dilation_channels, skip_channels,
              quantization, global_classes, local_channels, local_upsample, sequence_length)
    samples = layers.Input(shape=(sequence_length,), dtype="int32", name=f"{name}_samples")
    cond_inputs, conditioning = _conditioning_inputs(config, step=False)
    logits, _ = _network(samples, conditioning, config)
    inputs = [samples, *cond_inputs]
    return keras.Model(inputs if len(inputs) > 1 else samples, logits, name=name)


def queue_shapes(config):
    """``(length, channels)`` of every step-model queue, in input order."""
    c = {**_DEFAULTS, **config}
    shapes = [(1, c["quantization"])]
    shapes += [((c["kernel_size"] - 1) * d, c["residual_channels"])
               for d in dilations(c["num_blocks"], c["layers_per_block"])]
    return shapes


def wavenet_step_model(config, batch_size=None):
    """The single-step generation graph (arXiv:1611.09482) for a ``WaveNet(**config)``.

    Inputs: ``[sample (B, 1) int32, *queues, (label (B,)), (local features (B, 1, F))]``;
    outputs: ``[logits (B, quantization), *new_queues]``. The queues (see
    ``queue_shapes``) start at zero. Layer names equal the full model's, so
    ``copy_weights(full, step)`` moves trained weights across.
    """
    c = {**_DEFAULTS, **config}
    name = c["name"]
    sample = layers.Input(shape=(1,), batch_size=batch_size, dtype="int32", name=f"{name}_sample")
    queues = [layers.Input(shape=shape, batch_size=batch_size, name=f"{name}_queue{i}")
              for i, shape in enumerate(queue_shapes(c))]
    cond_inputs, conditioning = _conditioning_inputs(c, step=True, batch_size=batch_size)
    logits, new_queues = _network(sample, conditioning, c, step_queues=queues)
    logits = layers.Reshape((c["quantization"],), name=f"{name}_step_logits")(logits)
    return keras.Model([sample, *queues, *cond_inputs], [logits, *new_queues], name=f"{name}_step")


def copy_weights(source, target):
    """Copies every weighted layer of ``target`` from the same-named layer of ``source``."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return target


def inference_model(trained_model, config):
    """The export graph: batch-1 step model carrying ``trained_model``'s weights."""
    return copy_weights(trained_model, wavenet_step_model(config, batch_size=1))


def _draw(logits, uniform, greedy, temperature):
    """Inverse-CDF draw (float64) from ``softmax(logits / temperature)`` given uniforms ``(B,)``."""
    if greedy:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    probs = tf.nn.softmax(tf.cast(logits, tf.float64) / temperature, axis=-1)
    below = tf.cast(tf.math.cumsum(probs, axis=-1) < uniform[:, None], tf.int32)
    return tf.minimum(tf.reduce_sum(below, axis=-1), logits.shape[-1] - 1)


def _cached_loop(step, prime, uniforms, greedy, temperature, cond, local):
    """All of cached generation as one graph: a while loop over single steps (arXiv:1611.09482)."""
    batch, prime_length = prime.shape
    total = prime_length + uniforms.shape[0] - 1
    feed_ids = tf.concat([prime, tf.zeros((batch, uniforms.shape[0]), tf.int32)], axis=1)
    padded_uniforms = tf.concat([tf.zeros((prime_length - 1, batch), tf.float64), uniforms], axis=0)
    queues = [tf.zeros((batch, *q.shape[1:]), q.dtype) for q in step.inputs[1:1 + len(step.outputs) - 1]]

    def body(t, current, queues, draws):
        local_t = [local[:, t][:, None]] if local is not None else []
        results = step([current, *queues, *cond, *local_t], training=False)
        draw = _draw(results[0], padded_uniforms[t], greedy, temperature)
        following = tf.where(t + 1 < prime_length, feed_ids[:, t + 1], draw)
        return t + 1, following[:, None], list(results[1:]), draws.write(t, draw)

    _, _, _, draws = tf.while_loop(
        lambda t, *_: t < total, body,
        (tf.constant(0), feed_ids[:, :1], queues, tf.TensorArray(tf.int32, size=total)))
    return tf.transpose(draws.stack()[prime_length - 1:])


def generate(model, num_samples, *, config, batch_size=1, prime=None, cached=True, greedy=False,
             temperature=1.0, seed=0, labels=None, local_features=None):
    """Ancestral sampling of mu-law ids from a WaveNet.

    Args:
        model: a ``WaveNet`` model.
        num_samples: new samples to draw.
        config: the builder config of ``model`` (e.g. ``model_info(name).resolved_config()``);
            generation rebuilds the graph it runs from it (any length, or one step).
        batch_size: sequences drawn in parallel (ignored when ``prime`` is given).
        prime: int array ``(B, P)`` of given samples that condition the draw, or None
            (generation starts from silence, mu-law id ``quantization // 2``, fed at t = 0).
        cached: True runs the single-step queue model (arXiv:1611.09482, O(layers) per
            sample); False reruns the full model over the last receptive field of
            samples for every new sample (O(receptive field) per sample).
        greedy: take the argmax instead of sampling.
        temperature: logits are divided by it.
        seed: NumPy seed of the draws, consumed identically by both paths.
        labels: int array ``(B,)`` for a globally conditioned model.
        local_features: ``(B, S, local_channels)`` at the feature rate, covering at least
            ``P + num_samples`` audio samples, for a locally conditioned model.

    Returns:
        int32 array ``(B, num_samples)`` of mu-law ids (the prime is not included).
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    c = {**_DEFAULTS, **config, "sequence_length": None}
    if (c["global_classes"] is not None) != (labels is not None) or \
            (c["local_channels"] is not None) != (local_features is not None):
        raise ValueError("Pass `labels` exactly when the model has global_classes and `local_features` exactly "
                         f"when it has local_channels. Received: global_classes={c['global_classes']}, "
                         f"labels given={labels is not None}, local_channels={c['local_channels']}, "
                         f"local_features given={local_features is not None}")
    if prime is None:
        prime = np.full((batch_size, 1), c["quantization"] // 2, "int32")
    history = np.asarray(prime, "int32")
    rng = np.random.default_rng(seed)
    uniforms = tf.constant(rng.random((num_samples, history.shape[0])))
    up = c["local_upsample"]
    if local_features is not None:
        local_features = np.asarray(local_features, "float32")
    cond = [tf.constant(np.asarray(labels, "int32"))] if labels is not None else []
    if cached:
        step = copy_weights(model, wavenet_step_model(c))
        local = (tf.constant(np.repeat(local_features, up, axis=1)) if local_features is not None else None)
        loop = tf.function(lambda: _cached_loop(step, tf.constant(history), uniforms, greedy, temperature,
                                                cond, local))
        return np.asarray(loop())
    full = copy_weights(model, WaveNet(**c))
    run = tf.function(lambda feed: full(feed, training=False), reduce_retracing=True)
    field = receptive_field(c["num_blocks"], c["layers_per_block"], c["kernel_size"])
    draws = []
    for t in range(num_samples):
        # The last output sees exactly the last `field` samples: run on that window
        # (from a whole feature step), zero-padded after the end to whole feature steps.
        start = max(0, history.shape[1] - field) // up * up
        window = history[:, start:]
        length = window.shape[1]
        padded = np.pad(window, ((0, 0), (0, -length % up)))
        local = ([local_features[:, start // up: (start + padded.shape[1]) // up]]
                 if local_features is not None else [])
        feed = [padded, *cond, *local]
        logits = run(feed if len(feed) > 1 else padded)[:, length - 1]
        draws.append(np.asarray(_draw(logits, uniforms[t], greedy, temperature)))
        history = np.concatenate([history, draws[-1][:, None]], axis=1)
    return np.stack(draws, axis=1).astype("int32")


_DEFAULTS = dict(num_blocks=5, layers_per_block=10, kernel_size=2, residual_channels=32, dilation_channels=32,
                 skip_channels=512, quantization=256, global_classes=None, local_channels=None,
                 local_upsample=1, sequence_length=None, name="wavenet")


def _sample_spec(config):
    c = {**_DEFAULTS, **config}
    length = c["sequence_length"] or 2 * receptive_field(c["num_blocks"], c["layers_per_block"], c["kernel_size"])
    specs = [InputSpec((length,), "int32", maxval=c["quantization"])]
    if c["global_classes"] is not None:
        specs.append(InputSpec((), "int32", maxval=c["global_classes"]))
    if c["local_channels"] is not None:
        specs.append(InputSpec((length // c["local_upsample"], c["local_channels"]), "float32", minval=-1.0))
    return specs


register_family(WaveNet, {
    "wavenet": dict(
        config=dict(num_blocks=5, layers_per_block=10, residual_channels=32, dilation_channels=32,
                    skip_channels=512, sequence_length=8192),
        tiny=dict(num_blocks=1, layers_per_block=4, residual_channels=8, dilation_channels=8, skip_channels=16,
                  sequence_length=32),
    ),
}, task="audio_generation", paper="1609.03499", input_spec=_sample_spec, default_dataset="tones",
    inference_model=inference_model,
    export={"tflite": True, "edgetpu": "exported as the single-step queue model (batch 1, builtin ops); "
                                      "int8-convertible, one invocation per audio sample"})
