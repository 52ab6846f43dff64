"""SoundNet (arXiv:1610.09001): layer sizes, parameter count, KL transfer loss, paired data, training, export."""
import numpy as np
import pytest

import keras_zoo
from keras_zoo.data import load_dataset
from keras_zoo.data.audio import write_wav
from keras_zoo.data.paired_av import SCENES, synthesize
from keras_zoo.models.soundnet import SoundNet, output_length, soundnet_features
from training.tasks_soundnet import kl_divergence

both = pytest.mark.both  # the export test runs under tf_keras only

# (name, filters, kernel, stride, padding, pool) of conv1-conv7: cvondrick/soundnet main_train.lua, paper Table 1.
PAPER_LAYERS = [
    ("conv1", 16, 64, 2, 32, 8), ("conv2", 32, 32, 2, 16, 8), ("conv3", 64, 16, 2, 8, 1),
    ("conv4", 128, 8, 2, 4, 1), ("conv5", 256, 4, 2, 2, 4), ("conv6", 512, 4, 2, 2, 1),
    ("conv7", 1024, 4, 2, 2, 1),
]


@pytest.fixture(scope="module")
def full_model():
    return keras_zoo.create_model("soundnet")


@both
def test_full_size_layers_follow_the_paper(full_model):
    length, channels = 441_000, 1  # 20 s at 22,050 Hz
    assert tuple(full_model.input_shape) == (None, length, 1)
    for name, filters, kernel, stride, padding, pool in PAPER_LAYERS:
        conv = full_model.get_layer(f"{name}_conv")
        assert conv.kernel.shape == (kernel, channels, filters) and conv.strides == (stride,)
        length = (length + 2 * padding - kernel) // stride + 1  # Torch's floor arithmetic
        assert full_model.get_layer(f"{name}_relu").output.shape[1:] == (length, filters)
        if pool > 1:
            length //= pool
            assert full_model.get_layer(f"pool{name[4:]}").output.shape[1:] == (length, filters)
        channels = filters
    assert length == 15
    objects, scenes = full_model.outputs
    assert tuple(objects.shape) == (None, 4, 1000) and tuple(scenes.shape) == (None, 4, 401)  # 4 frames per clip
    assert full_model.get_layer("conv8_objects").kernel.shape == (8, 1024, 1000)
    assert full_model.get_layer("conv8_scenes").kernel.shape == (8, 1024, 401)
    assert output_length(441_000) == 4


@both
def test_parameter_count_matches_hand_formula(full_model):
    conv = sum(k * c_in * c_out + c_out for (_, c_out, k, *_), c_in in
               zip(PAPER_LAYERS, [1, 16, 32, 64, 128, 256, 512]))
    batch_norm = 4 * sum(row[1] for row in PAPER_LAYERS)  # gamma, beta, moving mean and variance
    heads = 8 * 1024 * 1000 + 1000 + 8 * 1024 * 401 + 401
    assert full_model.count_params() == conv + batch_norm + heads == 14_356_777
    assert keras_zoo.model_info("soundnet").reference_params == 14_356_777


@both
def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="input_length"):
        SoundNet(input_length=20_000)
    with pytest.raises(ValueError, match="filters"):
        SoundNet(filters=(16, 32))
    with pytest.raises(ValueError, match="No pretrained"):
        SoundNet(weights="imagenet")


@both
def test_kl_matches_numpy():
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(5), size=3).astype("float32")
    teacher[0] = np.eye(5)[2]  # one-hot rows: 0 log 0 = 0
    logits = rng.normal(size=(3, 4, 5)).astype("float32")
    student = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(teacher[:, None] > 0, teacher[:, None] * np.log(teacher[:, None] / student), 0.0)
    expected = terms.sum(-1).mean(-1)
    np.testing.assert_allclose(kl_divergence(teacher, student).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(kl_divergence(teacher, logits, from_logits=True).numpy(), expected, atol=1e-5)
    per_step = np.repeat(teacher[:, None], 4, axis=1)
    np.testing.assert_allclose(kl_divergence(per_step, student).numpy(), expected, atol=1e-5)
    assert np.all(kl_divergence(np.zeros_like(teacher), student).numpy() == 0.0)  # no target, no loss


@both
def test_digit_sounds_pairs_deterministic_clips():
    info = keras_zoo.model_info("soundnet")
    config = info.resolved_config(tiny=True)
    bundles = [load_dataset("digit_sounds", task="audio_classification", input_specs=info.inputs_for(config),
                            batch_size=8) for _ in range(2)]
    (waves, (objects, scenes, images)), = bundles[0].test.take(1)
    (again, _), = bundles[1].test.take(1)
    assert waves.shape == (8, 16384, 1) and np.abs(waves).max() <= 1.0
    assert objects.shape == (8, 10) and scenes.shape == (8, len(SCENES)) and images.shape == (8, 8, 8)
    np.testing.assert_array_equal(waves.numpy(), again.numpy())
    # A tone sequence: even rows sound 220 * 2^(d/4) Hz, odd rows a fifth up, at the row's ink.
    image = np.ones((8, 8), "float32")
    image[1] = 0.0
    clip = synthesize(image, 3, 0, 0, 8192).numpy()
    for row, (ratio, ink) in enumerate([(1.0, 1.0), (1.5, 0.0), (1.0, 1.0)]):
        segment = clip[row * 1024:(row + 1) * 1024]
        assert abs(np.abs(segment).max() - 0.6 * ink) < 0.06
        if ink:
            peak = np.argmax(np.abs(np.fft.rfft(segment))) * 22050 / segment.size
            assert abs(peak - 220 * 2 ** 0.75 * ratio) < 22050 / segment.size
    assert bundles[0].model_overrides == {"object_classes": 10, "scene_classes": 3}


@both
def test_wav_folder(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("dog", "rain"):
        (tmp_path / label).mkdir()
        for i in range(12):
            write_wav(str(tmp_path / label / f"{i}.wav"), rng.uniform(-0.5, 0.5, 2 * 16384), sample_rate=22050)
    info = keras_zoo.model_info("soundnet")
    bundle = load_dataset(f"soundnet_wavs:{tmp_path}", task="audio_classification",
                          input_specs=info.inputs_for(info.resolved_config(tiny=True)), batch_size=2)
    (waves, (objects, scenes)), = bundle.train.take(1)
    assert waves.shape == (2, 16384, 1) and objects.shape == (2, 2) and bundle.labels == ["dog", "rain"]
    assert np.all(scenes.numpy() == 0)


@both
def test_features_extraction_shape():
    model = keras_zoo.create_model("soundnet", tiny=True)
    waves = np.random.default_rng(0).uniform(-1, 1, (2, 16384, 1)).astype("float32")
    assert soundnet_features(model, "conv5")(waves).shape == (2, 8)
    assert soundnet_features(model, "conv7", pooling=None)(waves).shape == (2, 17, 8)
    with pytest.raises(ValueError, match="layer"):
        soundnet_features(model, "conv8")


@both
def test_tiny_training_decreases_loss(tmp_path):
    from training.loop import train_and_evaluate

    result = train_and_evaluate(dict(model="soundnet", tiny=True, epochs=2, steps_per_epoch=4, validation_steps=1,
                                     batch_size=8, learning_rate=3e-3, verbose=0), str(tmp_path))
    losses = result["history"]["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.isfinite(result["test"]["loss"]) and {"objects_kl", "scenes_kl"} <= set(result["test"])


@pytest.mark.tf_keras
def test_tflite_float_export_matches_keras():
    from export.convert import convert, input_signature
    from export.verify import TFLiteRunner, compare

    model = keras_zoo.create_model("soundnet", tiny=True)
    tflite = convert(model, "float32", input_signature(model))
    rng = np.random.default_rng(1)
    examples = [[rng.uniform(-1, 1, (1, 16384, 1)).astype("float32")] for _ in range(3)]
    runner = TFLiteRunner(tflite)
    for inputs in examples:
        for lite, keras_out in zip(runner(inputs), model(inputs[0], training=False)):
            np.testing.assert_allclose(lite, np.asarray(keras_out), atol=1e-5)
    report = compare(model, tflite, examples, "audio_classification", "float32")
    assert report["passed"], report["failures"]


@both
def test_teacher_dir_supplies_object_targets(tmp_path):
    from keras_zoo.backend import keras
    from training.tasks import get_task

    inputs = keras.Input((8, 8, 1))
    teacher = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    teacher.save(str(tmp_path / "model.keras"))
    config = keras_zoo.model_info("soundnet").resolved_config(tiny=True)
    task = get_task("audio_classification", {"soundnet_teacher_dir": str(tmp_path)})
    trainer = task.prepare(keras_zoo.create_model("soundnet", tiny=True), config)
    images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8)).astype("float32")
    objects, scenes = trainer._targets((np.eye(10, dtype="float32")[:2], np.eye(3, dtype="float32")[:2], images))
    np.testing.assert_allclose(objects.numpy(), teacher(images[..., None]).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="soundnet_teacher_dir"):
        get_task("audio_classification", {"soundnet_teacher_dir": str(tmp_path / "missing")}).prepare(
            trainer.student, config)


@pytest.mark.tf_keras
def test_export_cli_path_handles_distribution_targets(tmp_path):
    """The export stage verifies SoundNet although its targets are teacher distributions, not labels."""
    from export import tflite

    report = tflite.export_model(model_name="soundnet", tiny=True, quantization="float32", num_verify=4,
                                 output=str(tmp_path / "soundnet"), log=lambda *a, **k: None)
    assert report["passed"], report["verification"]
    assert any("not sparse labels" in note for note in report["verification"].get("notes", []))
