"""WaveNet (arXiv:1609.03499): mu-law, causality, receptive field, fast generation (arXiv:1611.09482)."""
import os
import wave

import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.data import load_dataset
from keras_zoo.data.audio import (mu_law_decode, mu_law_encode, read_wav, synthetic_tones, write_wav)
from keras_zoo.layers.causal_conv import CausalConv1D, CausalConv1DStep
from keras_zoo.models.wavenet import (WaveNet, generate, inference_model, queue_shapes, receptive_field,
                                      wavenet_step_model)

pytestmark = pytest.mark.both

SMALL = dict(num_blocks=2, layers_per_block=3, residual_channels=8, dilation_channels=8, skip_channels=16)


def test_mu_law_matches_the_paper_formula():
    x = np.linspace(-1, 1, 1001)
    mu = 255.0
    f = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
    expected = np.floor((f + 1) / 2 * mu + 0.5).astype(int)
    ids = np.asarray(mu_law_encode(x))
    np.testing.assert_array_equal(ids, expected)
    assert ids.min() == 0 and ids.max() == 255 and ids[500] in (127, 128)
    g = 2 * np.arange(256) / mu - 1
    np.testing.assert_allclose(np.asarray(mu_law_decode(np.arange(256))),
                               np.sign(g) * ((1 + mu) ** np.abs(g) - 1) / mu, atol=1e-5)
    # Round trip: the error stays within half a companded step.
    error = np.abs(np.asarray(mu_law_decode(ids)) - x)
    assert error.max() < 0.035 and error[np.abs(x) < 0.01].max() < 1e-3


def test_causal_conv_matches_numpy():
    rng = np.random.default_rng(0)
    layer = CausalConv1D(4, 3, dilation_rate=2)
    x = rng.standard_normal((2, 10, 3)).astype("float32")
    y = np.asarray(layer(x))
    kernel, bias = [np.asarray(w) for w in layer.get_weights()]
    padded = np.pad(x, ((0, 0), (4, 0), (0, 0)))
    expected = np.stack([sum(padded[:, t + 2 * k] @ kernel[k] for k in range(3)) for t in range(10)], 1) + bias
    np.testing.assert_allclose(y, expected, atol=1e-5)

    step = CausalConv1DStep(4, 3, dilation_rate=2)
    queue = np.zeros((2, 4, 3), "float32")
    step([x[:, :1], queue])
    step.set_weights(layer.get_weights())
    for t in range(10):
        out, queue = step([x[:, t:t + 1], queue])
        np.testing.assert_allclose(np.asarray(out)[:, 0], y[:, t], atol=1e-5)


def test_receptive_field():
    assert receptive_field(1, 10) == 1025  # dilations 1..512 and the k=2 input convolution
    assert receptive_field(5, 10) == 5 * 1023 + 2
    assert receptive_field(2, 3, kernel_size=3) == 2 * 2 * 7 + 2


def test_output_is_causal_and_sees_exactly_its_receptive_field():
    """Output t has zero gradient w.r.t. one-hot inputs after t and non-zero ones within the field."""
    model = WaveNet(**SMALL)
    field = receptive_field(2, 3)  # 2 * 7 + 2 = 16
    length = 24
    ids = np.random.default_rng(0).integers(0, 256, (1, length)).astype("int32")
    one_hot = model.get_layer("wavenet_one_hot")
    after_one_hot = keras.Model(one_hot.output, model.output)
    x = tf.one_hot(ids, 256)
    t = 20
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(after_one_hot(x)[0, t] * tf.random.stateless_normal((256,), (1, 2)))
    per_step = np.abs(np.asarray(tape.gradient(out, x))[0]).sum(-1)
    assert not np.any(per_step[t + 1:]), "output t depends on a later sample"
    assert np.all(per_step[t - field + 1: t + 1] > 0), "a sample inside the receptive field is ignored"
    assert not np.any(per_step[: t - field + 1]), "a sample outside the receptive field is seen"
    # The same with integer inputs: changing future samples leaves earlier logits untouched.
    changed = ids.copy()
    changed[0, t + 1:] = (changed[0, t + 1:] + 7) % 256
    np.testing.assert_array_equal(np.asarray(model(ids))[0, : t + 1], np.asarray(model(changed))[0, : t + 1])


def test_paper_configuration():
    model = keras_zoo.create_model("wavenet")
    assert model.output_shape == (None, 8192, 256)
    dilated = [l for l in model.layers if l.name.endswith("_dilated_conv")]
    assert [l.dilation_rate for l in dilated] == [2 ** i for i in range(10)] * 5


@pytest.mark.parametrize("extra", [{}, dict(global_classes=3), dict(local_channels=2, local_upsample=4)],
                         ids=["plain", "global", "local"])
def test_cached_generation_equals_naive_generation(extra):
    config = {**SMALL, **extra}
    model = WaveNet(**config)
    kwargs = dict(batch_size=2, config=config)
    if "global_classes" in extra:
        kwargs["labels"] = np.array([0, 2])
    if "local_channels" in extra:
        kwargs["local_features"] = np.random.default_rng(1).standard_normal((2, 8, 2))
    prime = np.random.default_rng(2).integers(0, 256, (2, 5))
    # Greedy decoding for the plain model; the conditioned ones draw with a fixed seed.
    greedy = not extra
    cached = generate(model, 12, prime=prime, greedy=greedy, seed=7, **kwargs)
    naive = generate(model, 12, prime=prime, greedy=greedy, seed=7, cached=False, **kwargs)
    assert cached.shape == (2, 12)
    np.testing.assert_array_equal(cached, naive)


def test_conditioning_changes_the_output():
    model = WaveNet(**SMALL, global_classes=3, local_channels=2, local_upsample=2, sequence_length=8)
    ids = np.zeros((1, 8), "int32")
    features = np.ones((1, 4, 2), "float32")
    base = np.asarray(model([ids, np.array([0]), features]))
    assert np.abs(base - np.asarray(model([ids, np.array([1]), features]))).max() > 1e-5
    assert np.abs(base - np.asarray(model([ids, np.array([0]), -features]))).max() > 1e-5


def test_export_step_model_has_static_batch_one_and_the_trained_weights():
    config = keras_zoo.model_info("wavenet").resolved_config(tiny=True)
    model = keras_zoo.create_model("wavenet", tiny=True)
    step = inference_model(model, config)
    assert all(i.shape[0] == 1 for i in step.inputs)
    assert [tuple(i.shape[1:]) for i in step.inputs[1:]] == queue_shapes(config)
    probe = step.get_layer("wavenet_block1_layer2_dilated_conv")
    np.testing.assert_array_equal(probe.get_weights()[0],
                                  model.get_layer("wavenet_block1_layer2_dilated_conv").get_weights()[0])
    assert isinstance(wavenet_step_model(config), keras.Model)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_blocks.*Received: num_blocks=0"):
        WaveNet(num_blocks=0)
    with pytest.raises(ValueError, match="multiple of `local_upsample`=4.*Received: sequence_length=10"):
        WaveNet(local_channels=2, local_upsample=4, sequence_length=10)
    with pytest.raises(ValueError, match="Pass `labels` exactly when"):
        generate(WaveNet(**SMALL, global_classes=2), 3, config={**SMALL, "global_classes": 2})


def test_tones_and_wav_io(tmp_path):
    audio, kinds = synthetic_tones(8, 400, seed=0)
    assert audio.shape == (8, 400) and np.abs(audio).max() <= 0.9 + 1e-6
    assert set(kinds) <= {0, 1, 2, 3}
    path = write_wav(str(tmp_path / "a.wav"), audio[0])
    with wave.open(path) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
    back, rate = read_wav(path)
    np.testing.assert_allclose(back, audio[0], atol=1e-4)


def test_wav_folder_loader(tmp_path):
    audio, _ = synthetic_tones(30, 200, seed=1)
    for i, clip in enumerate(audio):
        os.makedirs(tmp_path / f"spk{i % 2}", exist_ok=True)
        write_wav(str(tmp_path / f"spk{i % 2}" / f"clip{i}.wav"), clip)
    info = keras_zoo.model_info("wavenet")
    config = info.resolved_config(tiny=True, global_classes=2)
    bundle = load_dataset(f"wavfolder:{tmp_path}", task="audio_generation", input_specs=info.inputs_for(config),
                          batch_size=2)
    (ids, label), targets = next(iter(bundle.train))
    assert ids.shape == (2, 32) and label.shape == (2,) and targets.shape == (2, 32)
    assert bundle.info["labels"] == ["spk0", "spk1"]
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="holds no .wav files"):
        load_dataset(f"wavfolder:{tmp_path / 'empty'}", task="audio_generation",
                     input_specs=info.inputs_for(config), batch_size=2)


def test_tiny_wavenet_learns_tones():
    from training.tasks_generative import AudioGenerationTask

    info = keras_zoo.model_info("wavenet")
    config = info.resolved_config(tiny=True)
    bundle = load_dataset("tones", task="audio_generation", input_specs=info.inputs_for(config), batch_size=32)
    inputs, targets = next(iter(bundle.train))
    np.testing.assert_array_equal(np.asarray(inputs)[:, 1:], np.asarray(targets)[:, :-1])
    keras.utils.set_random_seed(0)
    model = info.builder(**config)
    AudioGenerationTask().compile(model, keras.optimizers.Adam(1e-2), config)
    history = model.fit(bundle.train.take(8), epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 0.5, history["loss"]
    assert bundle.info["unigram_baseline_bits_per_sample"] > 3.0


def test_sample_program_writes_wav_files(tmp_path):
    import json

    from keras_zoo.backend import keras_major_version
    from training.sample import write_samples

    config = keras_zoo.model_info("wavenet").resolved_config(tiny=True)
    keras_zoo.create_model("wavenet", tiny=True).save(str(tmp_path / "model.keras"))
    (tmp_path / "config.json").write_text(json.dumps(
        {"model": "wavenet", "tiny": True, "builder_config": config, "keras_version": keras_major_version()}))
    paths = write_samples(str(tmp_path), num=2, length=50)
    assert [os.path.basename(p) for p in paths] == ["sample_000.wav", "sample_001.wav"]
    audio, rate = read_wav(paths[1])
    assert rate == 8000 and audio.shape == (50,) and np.abs(audio).max() <= 1.0
