"""Knowledge distillation (Hinton, Vinyals and Dean, 2015, arXiv:1503.02531).

A wrapper task: ``--teacher_dir`` turns any classifier run into distillation, the
``--model`` being the student::

    python -m training.train --model=mobilenet --overrides='{"alpha": 0.25, "input_shape": [32, 32, 1]}' \
        --teacher_dir=runs/densenet --temperature=4 --alpha=0.1

Per example, with teacher logits ``t``, student logits ``s`` and label ``y`` (Sec. 2):

    loss = alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

The T^2 factor keeps the soft term's gradient magnitude independent of the temperature
(the gradient of the KL term scales as 1/T^2). A negative label (``MISSING_LABEL``, -1)
marks an example of the transfer set without a label: its hard term is dropped and
only the soft term remains. The batch loss is the mean over examples (labelled or not).

Classifiers that end in softmax are distilled from ``log(p)``, which equals the logits up
to a per-example constant and so gives the same ``softmax(. / T)``. The saved
``model.keras`` is the plain student: the training loop saves the model it built, and the
wrapper only carries the teacher during ``fit``.
"""
import json
import math
import os

import numpy as np
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import IS_LEGACY_KERAS, keras, keras_major_version
from training.tasks import ClassificationTask, Task, register_task

MISSING_LABEL = -1

#: Files looked for in ``teacher_dir``, best first.
TEACHER_FILES = ("best_model.keras", "model.keras")

_TINY = float(np.finfo(np.float32).tiny)


def log_probabilities(outputs, from_logits):
    """Per-class scores usable as logits: the logits themselves, or ``log(p)`` of softmax outputs."""
    outputs = tf.cast(outputs, tf.float32)
    return outputs if from_logits else tf.math.log(tf.maximum(outputs, _TINY))


def distillation_losses(labels, student_logits, teacher_logits, temperature, alpha):
    """Per-example ``(total, hard, soft)`` distillation losses (module docstring).

    Args:
        labels: int class ids, shape ``(B,)`` (or ``(B, 1)``); negative means no label.
        student_logits, teacher_logits: ``(B, classes)`` logits (or log-probabilities).
        temperature: T > 0.
        alpha: weight of the hard-label cross-entropy, in [0, 1].

    Returns:
        Three ``(B,)`` float32 tensors: the weighted total, the unweighted hard
        cross-entropy (0 where the label is missing) and the unweighted ``T^2 * KL``.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    student_logits = tf.cast(student_logits, tf.float32)
    teacher_logits = tf.cast(teacher_logits, tf.float32)
    labelled = labels >= 0
    hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(labelled, labels, 0),
                                                          logits=student_logits)
    hard = tf.where(labelled, hard, 0.0)
    teacher_log_p = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_p = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    soft = temperature ** 2 * kl
    return alpha * hard + (1.0 - alpha) * soft, hard, soft


class DistillationTrainer(keras.Model):
    """Wraps a student and a frozen teacher for ``fit``; ``call`` is the student.

    ``fit`` / ``evaluate`` take ``(inputs, labels)`` batches (labels < 0: unlabelled).
    Metrics: ``loss`` (the distillation objective), ``hard_loss`` (student
    cross-entropy on the labelled examples), ``soft_loss`` (``T^2 * KL``) and
    ``accuracy`` (student, labelled examples).
    """

    def __init__(self, student, teacher, temperature, alpha, student_logits=False, teacher_logits=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.student_logits, self.teacher_logits = student_logits, teacher_logits
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.hard_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_tracker = keras.metrics.Mean(name="soft_loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        # No weights of its own and both models are built: Keras 3's BackupAndRestore requires built models.
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.hard_tracker, self.soft_tracker, self.accuracy_metric]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _distill(self, data, training):
        inputs, labels = data[0], data[1]
        teacher = log_probabilities(self.teacher(inputs, training=False), self.teacher_logits)
        student = log_probabilities(self.student(inputs, training=training), self.student_logits)
        total, hard, soft = distillation_losses(labels, student, tf.stop_gradient(teacher),
                                                self.temperature, self.alpha)
        return tf.reshape(tf.cast(labels, tf.int32), [-1]), student, total, hard, soft

    def _report(self, labels, student, total, hard, soft):
        labelled = tf.cast(labels >= 0, tf.float32)
        self.loss_tracker.update_state(total)
        self.hard_tracker.update_state(hard, sample_weight=labelled)
        self.soft_tracker.update_state(soft)
        self.accuracy_metric.update_state(tf.maximum(labels, 0), student, sample_weight=labelled)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            labels, student, total, hard, soft = self._distill(data, training=True)
            loss = tf.nn.compute_average_loss(total)
            if self.student.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))
        weights = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(labels, student, total, hard, soft)

    def test_step(self, data):
        return self._report(*self._distill(data, training=False))


def _outputs_logits(model, config):
    """True for logits, False for softmax probabilities; anything else is an error."""
    if config is not None and "classifier_activation" in config:
        activation = config["classifier_activation"]
    else:
        activation = getattr(model.layers[-1], "activation", None)
        activation = getattr(activation, "__name__", activation)
        activation = None if activation == "linear" else activation
    if activation not in (None, "softmax"):
        raise ValueError(f"Distillation needs classifiers that output logits or softmax probabilities; "
                         f"{model.name!r} ends in {activation!r}. Build it with classifier_activation='softmax' "
                         f"or None. Received: classifier_activation={activation!r}")
    return activation is None


def _check_number(name, value, low, high, low_open):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"--{name} must be a number in {interval}. Received: {name}={value!r}")


@register_task("distillation")
class DistillationTask(Task):
    """Trains the ``--model`` (student) on a teacher's softened outputs plus the labels.

    Options (flags of training.train): ``teacher_dir`` (a training.train output
    directory, or a registered model name built with fresh weights), ``temperature``
    and ``alpha`` (module docstring).
    """

    ACTIVATED_BY = "teacher_dir"
    OPTIONS = {
        "teacher_dir": (None, "Distil from this teacher: a training.train model_dir (best_model.keras or "
                              "model.keras), or a registered model name (fresh weights)."),
        "temperature": (4.0, "Distillation temperature T (> 0) of the softened teacher and student outputs."),
        "alpha": (0.1, "Weight in [0, 1] of the hard-label cross-entropy; 1 - alpha weighs T^2 * KL."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        if not isinstance(base_task, ClassificationTask):
            received = base_task.name if base_task else None
            raise ValueError(f"Distillation (--teacher_dir) trains classifiers (image_classification, "
                             f"sequence_classification); drop --teacher_dir for this model. "
                             f"Received: task={received!r}")
        _check_number("temperature", self.options["temperature"], 0.0, 1e6, low_open=True)
        _check_number("alpha", self.options["alpha"], 0.0, 1.0, low_open=False)
        self.teacher_path, self.teacher_name = self._locate_teacher(self.options["teacher_dir"])
        self.monitor = base_task.monitor

    @staticmethod
    def _locate_teacher(teacher_dir):
        if not isinstance(teacher_dir, str) or not teacher_dir:
            raise ValueError(f"--teacher_dir must name a training.train output directory or a registered model. "
                             f"Received: teacher_dir={teacher_dir!r}")
        if os.path.isdir(teacher_dir):
            for filename in TEACHER_FILES:
                path = os.path.join(teacher_dir, filename)
                if os.path.exists(path):
                    return path, None
            raise ValueError(f"--teacher_dir {teacher_dir!r} holds neither {' nor '.join(TEACHER_FILES)}; train the "
                             f"teacher first (python -m training.train --model=TEACHER --model_dir={teacher_dir}). "
                             f"Received: files={sorted(os.listdir(teacher_dir))}")
        if teacher_dir in keras_zoo.list_models():
            return None, teacher_dir
        raise ValueError(f"--teacher_dir {teacher_dir!r} is neither a directory nor a registered model. Pass the "
                         f"model_dir of a trained teacher (or a name from keras_zoo.list_models()). "
                         f"Received: teacher_dir={teacher_dir!r}")

    def _teacher_config(self):
        config_path = os.path.join(os.path.dirname(self.teacher_path), "config.json")
        if not os.path.exists(config_path):
            return {}
        try:
            with open(config_path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{config_path} is not valid JSON ({err}); re-run the teacher's training. "
                             f"Received: {config_path}") from err

    def load_teacher(self, student, student_config):
        """The teacher model and its builder config (None when unknown)."""
        if self.teacher_name is not None:
            info = keras_zoo.model_info(self.teacher_name)
            config = info.resolved_config(classes=student_config.get("classes", student.output_shape[-1]),
                                          input_shape=tuple(student.input_shape[1:]))
            return info.builder(**config), config
        run_config = self._teacher_config()
        saved = run_config.get("keras_version")
        if saved == 3 and IS_LEGACY_KERAS:
            # tf_keras cannot read Keras 3 files: rebuild the twin and copy the weights across.
            from export.qat import bridge_keras3_model

            info = keras_zoo.model_info(run_config["model"])
            config = info.resolved_config(tiny=run_config.get("tiny", False), **run_config.get("builder_overrides", {}))
            inputs = keras_zoo.registry.example_inputs(info, config)
            return bridge_keras3_model(self.teacher_path, lambda: info.builder(**config), inputs), config
        try:
            teacher = keras.models.load_model(self.teacher_path, compile=False)
        except Exception as err:  # corrupt archives raise zipfile, OSError, ValueError ...
            hint = (" It was saved by tf_keras: train the student under tf_keras (the CLI default) too."
                    if saved == 2 and not IS_LEGACY_KERAS else "")
            first_line = str(err).splitlines()[0] if str(err) else ""
            raise ValueError(f"The teacher {self.teacher_path} could not be loaded under Keras "
                             f"{keras_major_version()} ({type(err).__name__}: {first_line}). The file is corrupt or "
                             f"incomplete: re-run the teacher's training.{hint} Received: {self.teacher_path}") from err
        return teacher, run_config.get("builder_config")

    def prepare(self, model, config):
        teacher, teacher_config = self.load_teacher(model, config)
        if teacher.output_shape[-1] != model.output_shape[-1]:
            raise ValueError(f"The teacher predicts {teacher.output_shape[-1]} classes, the student "
                             f"{model.output_shape[-1]}; distil between models trained on the same labels. "
                             f"Received: teacher output {teacher.output_shape}, student output {model.output_shape}")
        if tuple(teacher.input_shape[1:]) != tuple(model.input_shape[1:]):
            raise ValueError(f"The teacher takes inputs of shape {teacher.input_shape[1:]}, the student "
                             f"{model.input_shape[1:]}; both see the same batches, so build the student with the "
                             f"teacher's input_shape (--overrides). Received: teacher {teacher.input_shape}, "
                             f"student {model.input_shape}")
        return DistillationTrainer(model, teacher, self.options["temperature"], self.options["alpha"],
                                   student_logits=_outputs_logits(model, config),
                                   teacher_logits=_outputs_logits(teacher, teacher_config),
                                   name=f"{model.name}_distillation")

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)

    def after_training(self, model, bundle, write_dir, config):
        results = dict(self.base_task.after_training(model, bundle, write_dir, config))
        results["distillation"] = {"teacher": self.teacher_path or self.teacher_name,
                                   "temperature": self.options["temperature"], "alpha": self.options["alpha"]}
        return results
