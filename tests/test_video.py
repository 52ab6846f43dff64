"""Video models: moving digits, PredNet (arXiv:1605.08104) and the video GAN (arXiv:1609.02612)."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import IS_LEGACY_KERAS, keras
from keras_zoo.data import moving_digits as md
from keras_zoo.models import prednet as pn
from keras_zoo.registry import example_inputs

pytestmark = pytest.mark.both

ATOL = 1e-5


# ------------------------------- moving digits -------------------------------

def test_clips_are_deterministic_and_held_out_splits_differ():
    a, labels_a = md.moving_digit_clips("validation", 6, 5, 32, 32)
    b, labels_b = md.moving_digit_clips("validation", 6, 5, 32, 32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(labels_a, labels_b)
    assert a.shape == (6, 5, 32, 32) and a.dtype == np.uint8 and a.max() == 255
    test_clips, _ = md.moving_digit_clips("test", 6, 5, 32, 32)
    assert not np.array_equal(a, test_clips)
    # Every frame holds ink, and the digits move.
    assert (a.reshape(6, 5, -1).max(-1) > 128).all()
    assert (a[:, 0] != a[:, -1]).any(axis=(1, 2)).all()


def test_trajectory_bounces_inside_the_canvas():
    corners = md.trajectory(200, 10, 20, 1.5, np.random.default_rng(0))
    assert corners.shape == (200, 2)
    assert corners.min() >= 0 and corners[:, 0].max() <= 10 and corners[:, 1].max() <= 20
    assert corners[:, 0].min() <= 1 and corners[:, 0].max() >= 9  # reaches both walls and comes back
    assert 0 < np.abs(np.diff(corners, axis=0)).max() <= 2  # 1.5 px per frame, never a jump


def test_copy_last_baseline_is_the_mse_of_the_previous_frame():
    clips = np.random.default_rng(0).uniform(size=(3, 4, 5, 5, 1)).astype("float32")
    expected = np.mean([np.mean((clips[b, t] - clips[b, t - 1]) ** 2) for b in range(3) for t in range(1, 4)])
    assert md.copy_last_mse(clips) == pytest.approx(expected, rel=1e-6)
    from training.tasks_video import copy_last_frame_mse, next_frame_mse

    np.testing.assert_allclose(np.mean(copy_last_frame_mse(clips)), expected, rtol=1e-5)
    # A predictor that copies the previous frame scores exactly the baseline.
    shifted = np.concatenate([clips[:, :1], clips[:, :-1]], axis=1)
    np.testing.assert_allclose(next_frame_mse(shifted, clips), copy_last_frame_mse(clips), rtol=1e-6)


def test_load_moving_digits_shapes_for_both_tasks():
    from keras_zoo.data import load_dataset
    from keras_zoo.registry import InputSpec

    specs = [InputSpec((4, 16, 16, 1))]
    bundle = load_dataset("moving_digits", task="video_prediction", input_specs=specs, batch_size=8)
    x, y = next(iter(bundle.test))
    assert x.shape == (8, 4, 16, 16, 1) and np.array_equal(x, y)
    assert 0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1
    again = load_dataset("moving_digits", task="video_prediction", input_specs=specs, batch_size=8)
    np.testing.assert_array_equal(next(iter(again.test))[0], x)
    assert bundle.info["copy_last_baseline_mse"] > 0
    gan = load_dataset("moving_digits", task="gan", input_specs=[InputSpec((100,)), InputSpec((4, 16, 16, 3))],
                       batch_size=8)
    clips, classes = next(iter(gan.train))
    assert clips.shape == (8, 4, 16, 16, 3) and classes.shape == (8,) and classes.dtype == tf.int32
    with pytest.raises(ValueError, match="serves the tasks video_prediction, gan, video_generation"):
        load_dataset("moving_digits", task="image_classification", input_specs=specs, batch_size=8)
    with pytest.raises(ValueError, match="frames, height, width"):
        load_dataset("moving_digits", task="gan", input_specs=[InputSpec((100,))], batch_size=8)


# ---------------------------------- PredNet ----------------------------------

def _conv(x, kernel, bias):
    """'same' convolution for odd kernels, by explicit shifts."""
    k = kernel.shape[0]
    pad = k // 2
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((*x.shape[:3], kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += padded[:, i:i + height, j:j + width] @ kernel[i, j]
    return out + bias


def _relu(x):
    return np.maximum(x, 0)


def _hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0, 1)


def _numpy_step(layer, frame, states):
    """Algorithm 1 of arXiv:1605.08104, one time step, in NumPy."""
    n = layer.num_layers
    w = lambda variables: [np.asarray(v, "float64") for v in variables]  # noqa: E731
    lstm_k, lstm_b, ahat_k, ahat_b = w(layer.lstm_kernels), w(layer.lstm_biases), w(layer.ahat_kernels), \
        w(layer.ahat_biases)
    a_k, a_b = w(layer.a_kernels), w(layer.a_biases)
    r_prev, c_prev, e_prev = states[:n], states[n:2 * n], states[2 * n:]
    r, c = [None] * n, [None] * n
    for l in reversed(range(n)):
        parts = [r_prev[l], e_prev[l]]
        if l < n - 1:
            parts.append(np.repeat(np.repeat(r[l + 1], 2, axis=1), 2, axis=2))
        gates = _conv(np.concatenate(parts, -1), lstm_k[l], lstm_b[l])
        i, f, g, o = np.split(gates, 4, axis=-1)
        c[l] = _hard_sigmoid(f) * c_prev[l] + _hard_sigmoid(i) * np.tanh(g)
        r[l] = _hard_sigmoid(o) * np.tanh(c[l])
    a, e = frame, []
    for l in range(n):
        ahat = _relu(_conv(r[l], ahat_k[l], ahat_b[l]))
        if l == 0:
            ahat = np.minimum(ahat, layer.pixel_max)
            prediction = ahat
        e.append(np.concatenate([_relu(a - ahat), _relu(ahat - a)], -1))
        if l < n - 1:
            pooled = _relu(_conv(e[l], a_k[l], a_b[l]))
            b, h, wd, ch = pooled.shape
            a = pooled.reshape(b, h // 2, 2, wd // 2, 2, ch).max(axis=(2, 4))
    return prediction, np.stack([x.mean(axis=(1, 2, 3)) for x in e], -1), r + c + e


def _tiny_prednet():
    keras.utils.set_random_seed(0)
    info = keras_zoo.model_info("prednet_kitti")
    config = info.resolved_config(tiny=True)
    return info, config, info.builder(**config)


def test_prednet_kitti_parameter_count_matches_the_reference():
    model = keras_zoo.create_model("prednet_kitti")
    assert model.count_params() == keras_zoo.model_info("prednet_kitti").reference_params == 6_915_948
    assert model.output_shape == [(None, 10, 128, 160, 3), (None, 10, 4)]


def test_error_units_are_the_rectified_differences():
    rng = np.random.default_rng(0)
    target, prediction = rng.uniform(size=(2, 3, 3, 4)), rng.uniform(size=(2, 3, 3, 4))
    e = np.asarray(pn.error_units(tf.constant(target), tf.constant(prediction)))
    np.testing.assert_allclose(e, np.concatenate([_relu(target - prediction), _relu(prediction - target)], -1),
                               atol=ATOL)
    assert e.shape == (2, 3, 3, 8) and (e[..., :4] * e[..., 4:] == 0).all()


def test_one_step_matches_the_numpy_transcription_of_algorithm_1():
    _, config, model = _tiny_prednet()
    layer = model.get_layer("prednet_kitti_stack")
    rng = np.random.default_rng(1)
    height, width = config["input_shape"][1:3]
    frame = rng.uniform(size=(2, height, width, 1))
    # Non-zero states, so the recurrent and error paths are all exercised.
    states = [rng.uniform(-0.5, 0.5, size=(2, *shape)) for shape in layer.state_shapes()]
    prediction, errors, new_states = layer.step_fn(tf.constant(frame, tf.float32),
                                                   [tf.constant(s, tf.float32) for s in states])
    expected = _numpy_step(layer, frame, states)
    np.testing.assert_allclose(np.asarray(prediction), expected[0], atol=ATOL)
    np.testing.assert_allclose(np.asarray(errors), expected[1], atol=ATOL)
    for got, want in zip(new_states, expected[2]):
        np.testing.assert_allclose(np.asarray(got), want, atol=ATOL)


def test_clip_outputs_follow_the_step_recurrence_from_zero_states():
    info, config, model = _tiny_prednet()
    clip = example_inputs(info, config, batch_size=1)[0]
    predictions, errors = (np.asarray(o) for o in model(clip))
    step = pn.prednet_step_model(model)
    states = [np.zeros((1, *i.shape[1:]), "float32") for i in step.inputs[1:]]
    for t in range(clip.shape[1]):
        prediction, step_errors, *states = (np.asarray(o) for o in step([clip[:, t], *states]))
        np.testing.assert_allclose(prediction, predictions[:, t], atol=ATOL)
        np.testing.assert_allclose(step_errors, errors[:, t], atol=ATOL)
    # The prediction of frame t is made before frame t is seen.
    other = step([np.ones_like(clip[:, 0]), *states])[0]
    again = step([np.zeros_like(clip[:, 0]), *states])[0]
    np.testing.assert_allclose(np.asarray(other), np.asarray(again), atol=ATOL)
    assert predictions.min() >= 0 and predictions.max() <= 1  # ReLU then SatLU


def test_loss_weightings():
    np.testing.assert_allclose(pn.layer_loss_weights("L_0", 4), [1, 0, 0, 0])
    np.testing.assert_allclose(pn.layer_loss_weights("L_all", 4), [1, 0.1, 0.1, 0.1])
    time_weights = pn.time_loss_weights(5)
    assert time_weights[0] == 0 and time_weights.sum() == pytest.approx(1.0)
    errors = np.random.default_rng(0).uniform(size=(2, 5, 4)).astype("float32")
    expected = (errors * pn.layer_loss_weights("L_all", 4)).sum(-1) @ time_weights
    np.testing.assert_allclose(pn.prednet_loss(errors, pn.layer_loss_weights("L_all", 4), time_weights), expected,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="L_0"):
        pn.layer_loss_weights("L_1", 4)


def test_paper_preset_is_the_reference_kitti_recipe():
    """--preset=paper: Adam, batch 4, lr 1e-3 dropping to 1e-4 halfway (coxlab/prednet kitti_train.py)."""
    from training.loop import TrainConfig, apply_preset
    from training.optimizers import learning_rate_schedule

    info = keras_zoo.model_info("prednet_kitti")
    config, _, lr_schedule = apply_preset(TrainConfig(model="prednet_kitti", preset="paper"), info)
    assert (config.optimizer, config.batch_size, config.epochs) == ("adam", 4, 150)
    schedule = learning_rate_schedule(config.learning_rate, lr_schedule, steps_per_epoch=125, epochs=config.epochs)
    rates = [float(np.asarray(schedule(step))) for step in (0, 75 * 125, 75 * 125 + 1, 150 * 125)]
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-6)


def test_bad_prednet_arguments_are_rejected():
    with pytest.raises(ValueError, match="stack_sizes\\[0\\]"):
        pn.PredNet(input_shape=(4, 16, 16, 1), stack_sizes=(3, 8), r_stack_sizes=(3, 8))
    with pytest.raises(ValueError, match="divisible"):
        pn.PredNet(input_shape=(4, 18, 16, 1), stack_sizes=(1, 4, 8), r_stack_sizes=(1, 4, 8))
    with pytest.raises(ValueError, match="recurrent_activation"):
        pn.PredNet(input_shape=(4, 16, 16, 1), stack_sizes=(1, 4), r_stack_sizes=(1, 4), recurrent_activation="relu")


@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_prednet_trains_through_the_shared_loop(tmp_path):
    from keras_zoo.data import load_dataset
    from training.loop import train_and_evaluate

    info = keras_zoo.model_info("prednet_kitti")
    config = info.resolved_config(tiny=True)
    clips = next(iter(load_dataset("moving_digits", task="video_prediction", input_specs=info.inputs_for(config),
                                   batch_size=32).test))[0]
    weights = pn.layer_loss_weights("L_all", 3), pn.time_loss_weights(config["input_shape"][0])

    def loss_on_clips(model):
        return float(tf.reduce_mean(pn.prednet_loss(model(clips)[1], *weights)))

    keras.utils.set_random_seed(0)  # train_and_evaluate starts from the weights of seed 0
    before = loss_on_clips(info.builder(**config))
    result = train_and_evaluate(dict(model="prednet_kitti", tiny=True, epochs=2, steps_per_epoch=3,
                                     validation_steps=1, batch_size=32, learning_rate=3e-3, verbose=0,
                                     task_options={"prednet_layer_loss": "L_all"}), str(tmp_path))
    assert np.isfinite(result["history"]["loss"]).all()
    assert loss_on_clips(keras.models.load_model(str(tmp_path / "model.keras"))) < before
    task = result["task"]
    assert task["copy_last_mse"] > 0 and task["mse_ratio_vs_copy_last"] > 0
    assert (tmp_path / "prednet_strip.png").exists()


@pytest.mark.tf_keras
@pytest.mark.skipif(not IS_LEGACY_KERAS, reason="export runs under tf_keras (the module runs in both runtimes)")
def test_prednet_step_converts_to_builtin_tflite_and_agrees():
    from ai_edge_litert.interpreter import Interpreter

    info, config, model = _tiny_prednet()
    step = info.inference_model(model, config)
    converter = tf.lite.TFLiteConverter.from_keras_model(step)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    names = [i.name for i in step.inputs]
    inputs = {n: next(d for k, d in by_name.items() if k.startswith(f"serving_default_{n}:")) for n in names}
    clip = example_inputs(info, config, batch_size=1)[0]
    states = [np.zeros((1, *i.shape[1:]), "float32") for i in step.inputs[1:]]
    for t in range(2):
        expected = [np.asarray(o) for o in step([clip[:, t], *states])]
        for name, value in zip(names, [clip[:, t], *states]):
            interpreter.set_tensor(inputs[name]["index"], value)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        for e in expected:  # TFLite does not keep the output order: match by shape and value
            assert any(o.shape == e.shape and np.allclose(o, e, atol=1e-4) for o in outputs)
        states = expected[2:]


# --------------------------------- Video GAN ---------------------------------

def _tiny_videogan():
    keras.utils.set_random_seed(0)
    info = keras_zoo.model_info("videogan")
    config = info.resolved_config(tiny=True)
    return info, config, info.builder(**config)


def test_videogan_paper_shapes():
    from keras_zoo.models.videogan import discriminator_of, generator_of

    model = keras_zoo.create_model("videogan")
    assert model.output_shape == [(None, 32, 64, 64, 3), (None, 32, 64, 64, 1), (None, 1), (None, 1)]
    generator = generator_of(model)
    widths = [generator.get_layer(f"videogan_generator_fg{i}_deconv").filters for i in range(1, 5)]
    assert widths == [512, 256, 128, 64]
    assert generator.get_layer("videogan_generator_fg1_deconv").output.shape[1:] == (2, 4, 4, 512)
    assert generator.get_layer("videogan_generator_background").output.shape[1:] == (64, 64, 3)
    assert [discriminator_of(model).get_layer(f"videogan_discriminator_conv{i}").filters for i in range(1, 5)] == \
        [64, 128, 256, 512]


def test_videogan_output_is_the_mask_composite_of_the_two_streams():
    from keras_zoo.models.videogan import generator_of

    _, config, model = _tiny_videogan()
    generator = generator_of(model)
    streams = keras.Model(generator.inputs, [generator.get_layer(f"{generator.name}_{part}").output
                                             for part in ("foreground", "mask", "background")])
    z = np.random.default_rng(0).standard_normal((2, config["z_dim"])).astype("float32")
    video, mask = (np.asarray(o) for o in generator(z))
    foreground, stream_mask, background = (np.asarray(o) for o in streams(z))
    np.testing.assert_allclose(mask, stream_mask, atol=ATOL)
    assert 0 < mask.min() and mask.max() < 1
    np.testing.assert_allclose(video, mask * foreground + (1 - mask) * background[:, None], atol=ATOL)
    # Forcing the mask to 0 leaves the static background in every frame; to 1, the foreground.
    mask_layer = generator.get_layer(f"{generator.name}_mask")
    kernel, bias = mask_layer.get_weights()
    for value, expected in ((-30.0, np.broadcast_to(background[:, None], video.shape)), (30.0, foreground)):
        mask_layer.set_weights([np.zeros_like(kernel), np.full_like(bias, value)])
        np.testing.assert_allclose(np.asarray(generator(z)[0]), expected, atol=ATOL)


def test_videogan_sampler_is_the_generator_at_batch_one():
    info, config, model = _tiny_videogan()
    sampler = info.inference_model(model, config)
    z = np.random.default_rng(1).standard_normal((1, config["z_dim"])).astype("float32")
    assert sampler.input_shape == (1, config["z_dim"])
    np.testing.assert_allclose(np.asarray(sampler(z)), np.asarray(model.get_layer("videogan_generator")(z)[0]),
                               atol=ATOL)


def test_bad_videogan_arguments_are_rejected():
    from keras_zoo.models.videogan import VideoGAN

    with pytest.raises(ValueError, match="size // 2"):
        VideoGAN(frames=16, size=64)
    with pytest.raises(ValueError, match="power of two"):
        VideoGAN(frames=24, size=48)


def _spread_weights(model, rng):
    """He-scaled kernels and random batch-norm statistics: at the reference N(0, 0.01) init the
    video is ~3e-4 everywhere, which hides conversion errors under any absolute tolerance (and
    int8 TANH / LOGISTIC outputs, fixed at steps of 1/128 and 1/256, round it to a constant)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _spread_weights(layer, rng)
        elif isinstance(layer, (keras.layers.Conv3DTranspose, keras.layers.Conv2DTranspose)):
            kernel, bias = layer.get_weights()  # kernel: (*window, out, in)
            # Each output of a stride-s transposed convolution sums window / s^d taps of every input channel.
            taps = np.prod(kernel.shape[:-2]) / np.prod(layer.strides) * kernel.shape[-1]
            layer.set_weights([rng.normal(0, np.sqrt(2 / taps), kernel.shape), rng.normal(0, 0.1, bias.shape)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape), rng.normal(0, 0.1, shape),
                               rng.uniform(0.5, 1.5, shape)])


@pytest.mark.tf_keras
@pytest.mark.skipif(not IS_LEGACY_KERAS, reason="export runs under tf_keras (the module runs in both runtimes)")
def test_videogan_sampler_exports_to_builtin_tflite_float_and_int8():
    from export import convert, verify

    info, config, model = _tiny_videogan()
    sampler = info.inference_model(model, config)
    _spread_weights(sampler, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    representative = [[rng.uniform(-1, 1, (1, config["z_dim"])).astype("float32")] for _ in range(50)]
    held_out = [[rng.uniform(-1, 1, (1, config["z_dim"])).astype("float32")] for _ in range(16)]
    expected = verify.keras_outputs(sampler, held_out)
    assert expected.std() > 0.1 and expected.min() < -0.5 and expected.max() > 0.5
    signature = convert.input_signature(sampler)

    content = convert.convert(sampler, "float32", signature)
    ops = {op.name for op in convert.read_graph(content).ops}
    assert "CONV_3D_TRANSPOSE" in ops and "TRANSPOSE_CONV" in ops and not any(op.startswith("Flex") for op in ops)
    runner = verify.TFLiteRunner(content)
    np.testing.assert_allclose(np.concatenate([runner(z)[0] for z in held_out]), expected, atol=1e-4)

    # TFLite has no int8 CONV_3D_TRANSPOSE: the converter keeps it in float between DEQUANTIZE and QUANTIZE.
    content = convert.convert(sampler, "int8", signature, representative)
    graph = convert.read_graph(content)
    assert [t.dtype for t in graph.inputs + graph.outputs] == ["int8", "int8"]
    assert not any(op.is_flex for op in graph.ops)
    result = verify.compare(sampler, content, held_out, info.task, "int8")
    assert result["passed"], result["failures"]
    assert result["rel_rmse"] < 0.1  # measured 0.022; the int8 output step is ~0.006 on a [-0.7, 0.8] video


@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_videogan_trains_through_the_shared_loop(tmp_path):
    from training.loop import train_and_evaluate

    result = train_and_evaluate(dict(model="videogan", tiny=True, epochs=2, steps_per_epoch=3, validation_steps=1,
                                     batch_size=16, learning_rate=2e-4, verbose=0), str(tmp_path))
    history = result["history"]
    assert all(np.isfinite(history[k]).all() for k in ("d_loss", "g_loss", "mask_mean"))
    assert history["d_loss"][-1] < history["d_loss"][0]
    assert (tmp_path / result["task"]["samples_gif"]).exists() and (tmp_path / "videogan_samples.png").exists()
