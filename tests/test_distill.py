"""Knowledge distillation (training/tasks_distill.py, arXiv:1503.02531): the loss against a
NumPy transcription, the T^2 scaling, the alpha=1 and missing-label cases, option errors,
and an end-to-end run of training.loop with a teacher model_dir (both runtimes)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_zoo.backend import keras
from training import tasks
from training.loop import train_and_evaluate
from training.tasks_distill import MISSING_LABEL, DistillationTask, DistillationTrainer, distillation_losses

pytestmark = pytest.mark.both


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def numpy_distillation(labels, s, t, temperature, alpha):
    """Hinton et al., Sec. 2: alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(p_T(t) || p_T(s))."""
    s, t = _float64(s, t)
    p_teacher = np.exp(_log_softmax(t / temperature))
    kl = np.sum(p_teacher * (np.log(p_teacher) - _log_softmax(s / temperature)), axis=-1)
    hard = np.array([-_log_softmax(s)[i, y] if y >= 0 else 0.0 for i, y in enumerate(labels)])
    return alpha * hard + (1 - alpha) * temperature ** 2 * kl


def _float64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def _batch(seed=0, batch=8, classes=5, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, classes, batch).astype("int32"),
            (scale * rng.standard_normal((batch, classes))).astype("float32"),
            (scale * rng.standard_normal((batch, classes))).astype("float32"))


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.1), (10.0, 0.0)])
def test_loss_matches_numpy_transcription(temperature, alpha):
    labels, s, t = _batch()
    total, _, _ = distillation_losses(labels, s, t, temperature, alpha)
    # float32 rounding of the KL is multiplied by T^2: compare relative to the value.
    np.testing.assert_allclose(total.numpy(), numpy_distillation(labels, s, t, temperature, alpha),
                               rtol=1e-5, atol=1e-5)


def test_t_squared_scaling_keeps_soft_gradients_independent_of_temperature():
    """d(T^2 KL)/ds = T (p_T(s) - p_T(t)); at high T with zero-mean logits that tends to (s - t) / N (Eq. 4)."""
    labels, s, t = _batch(scale=0.5)
    s, t = s - s.mean(-1, keepdims=True), t - t.mean(-1, keepdims=True)
    classes = s.shape[-1]
    student = tf.constant(s)
    for temperature, tolerance in ((50.0, 5e-3), (200.0, 1e-3)):
        with tf.GradientTape() as tape:
            tape.watch(student)
            _, _, soft = distillation_losses(labels, student, t, temperature, 0.0)
            total = tf.reduce_sum(soft)
        gradient = tape.gradient(total, student).numpy()
        s64, t64 = _float64(s, t)
        exact = temperature * (np.exp(_log_softmax(s64 / temperature)) - np.exp(_log_softmax(t64 / temperature)))
        np.testing.assert_allclose(gradient, exact, atol=1e-4)
        np.testing.assert_allclose(gradient, (s - t) / classes, atol=tolerance)
    _, _, soft = distillation_losses(labels, s, t, 3.0, 0.0)
    kl_only = numpy_distillation(labels, s, t, 3.0, 0.0) / 9.0
    np.testing.assert_allclose(soft.numpy(), 9.0 * kl_only, atol=1e-5)


def test_alpha_one_is_plain_cross_entropy():
    labels, s, t = _batch(seed=1)
    total, hard, _ = distillation_losses(labels, s, t, 4.0, 1.0)
    plain = keras.losses.sparse_categorical_crossentropy(labels, s, from_logits=True)
    np.testing.assert_allclose(total.numpy(), np.asarray(plain), atol=1e-5)
    np.testing.assert_allclose(hard.numpy(), np.asarray(plain), atol=1e-5)


def test_missing_labels_leave_only_the_soft_term():
    labels, s, t = _batch(seed=2)
    labels[::2] = MISSING_LABEL
    total, hard, soft = distillation_losses(labels, s, t, 4.0, 0.3)
    np.testing.assert_allclose(total.numpy(), numpy_distillation(labels, s, t, 4.0, 0.3), atol=1e-5)
    np.testing.assert_array_equal(hard.numpy()[::2], 0.0)
    np.testing.assert_allclose(total.numpy()[::2], 0.7 * soft.numpy()[::2], atol=1e-6)
    assert np.all(hard.numpy()[1::2] > 0)


def _softmax_classifier(classes=5, name="clf", seed=0):
    inputs = keras.layers.Input((6,))
    logits = keras.layers.Dense(classes, name=f"{name}_dense",
                                kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed))(inputs)
    return keras.Model(inputs, keras.layers.Activation("softmax", name=f"{name}_predictions")(logits), name=name)


def test_trainer_works_from_softmax_outputs_and_skips_unlabelled_examples_in_metrics():
    """log(softmax) as logits gives the same loss as the logits; unlabelled examples do not count for accuracy."""
    student, teacher = _softmax_classifier(name="student", seed=1), _softmax_classifier(name="teacher", seed=2)
    trainer = DistillationTrainer(student, teacher, temperature=2.0, alpha=0.4)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    x = np.random.default_rng(0).standard_normal((16, 6)).astype("float32")
    labels = np.arange(16).astype("int32") % 5
    labels[8:] = MISSING_LABEL
    logs = trainer.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    s_logits = np.asarray(keras.Model(student.inputs, student.get_layer("student_dense").output)(x))
    t_logits = np.asarray(keras.Model(teacher.inputs, teacher.get_layer("teacher_dense").output)(x))
    expected = numpy_distillation(labels, s_logits, t_logits, 2.0, 0.4)
    np.testing.assert_allclose(logs["loss"], expected.mean(), rtol=1e-4)
    accuracy = np.mean(s_logits[:8].argmax(-1) == labels[:8])
    np.testing.assert_allclose(logs["accuracy"], accuracy, atol=1e-6)
    before = [w.numpy().copy() for w in teacher.weights]
    trainer.compile(optimizer=keras.optimizers.SGD(0.5))
    trainer.fit(x, labels, batch_size=8, epochs=1, verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, teacher.weights)), "the teacher must stay frozen"


def _options(tmp_path, **options):
    return {"teacher_dir": str(tmp_path), **options}


@pytest.mark.parametrize("options,message", [
    (dict(temperature=0.0), "temperature must be a number in (0"),
    (dict(temperature=-2.0), "temperature must be a number in (0"),
    (dict(alpha=1.5), "alpha must be a number in [0.0, 1.0]"),
    (dict(alpha=-0.1), "alpha must be a number in [0.0, 1.0]"),
])
def test_bad_temperature_and_alpha_are_rejected(tmp_path, options, message):
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        tasks.get_task("image_classification", _options(tmp_path, **options))


def test_missing_teacher_dir_and_non_classifiers_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="neither a directory nor a registered model"):
        tasks.get_task("image_classification", {"teacher_dir": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError, match="holds neither best_model.keras nor model.keras"):
        tasks.get_task("image_classification", {"teacher_dir": str(tmp_path)})
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="trains classifiers"):
        tasks.get_task("language_model", {"teacher_dir": str(tmp_path)})
    task = tasks.get_task("image_classification", {"teacher_dir": str(tmp_path), "alpha": 0.5})
    assert isinstance(task, DistillationTask) and task.options["temperature"] == 4.0 and task.options["alpha"] == 0.5


def test_corrupt_teacher_file_is_a_clear_error(tmp_path):
    (tmp_path / "best_model.keras").write_bytes(b"not a zip archive")
    task = tasks.get_task("image_classification", {"teacher_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="could not be loaded .* corrupt or incomplete"):
        task.prepare(_softmax_classifier(), {"classes": 5})


def test_teacher_student_class_mismatch_is_a_clear_error(tmp_path):
    _softmax_classifier(classes=7, name="teacher").save(str(tmp_path / "model.keras"))
    task = tasks.get_task("image_classification", {"teacher_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="teacher predicts 7 classes, the student 5"):
        task.prepare(_softmax_classifier(classes=5), {"classes": 5})


def _run(model, model_dir, **settings):
    config = dict(model=model, dataset="digits", tiny=True, epochs=1, steps_per_epoch=3, validation_steps=1,
                  batch_size=16, verbose=0, **settings)
    return train_and_evaluate(config, str(model_dir))


@pytest.mark.slow  # 55-110 s on 2 cores: the suite budget is 25 minutes
def test_distillation_end_to_end_saves_the_plain_student(tmp_path):
    teacher_dir = tmp_path / "teacher"
    _run("squeezenet1_1", teacher_dir, overrides={"stem_filters": 24})
    result = _run("squeezenet1_1", tmp_path / "student",
                  task_options={"teacher_dir": str(teacher_dir), "temperature": 3.0, "alpha": 0.2})
    assert {"loss", "hard_loss", "soft_loss", "accuracy", "val_soft_loss"} <= set(result["history"])
    assert all(np.isfinite(v).all() for v in result["history"].values())
    assert 0.0 <= result["test"]["accuracy"] <= 1.0
    student = keras.models.load_model(str(tmp_path / "student" / "model.keras"), compile=False)
    teacher = keras.models.load_model(str(teacher_dir / "model.keras"), compile=False)
    assert student.name == "squeezenet1_1" and student.get_layer("conv1").filters == 16
    assert teacher.get_layer("conv1").filters == 24
    assert student.count_params() < teacher.count_params()
    with open(tmp_path / "student" / "metrics.json") as f:
        assert json.load(f)["task"]["distillation"] == {"teacher": os.path.join(str(teacher_dir), "best_model.keras"),
                                                         "temperature": 3.0, "alpha": 0.2}
