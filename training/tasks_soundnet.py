"""SoundNet's teacher-student transfer (arXiv:1610.09001, Sec. 3.2): match visual teachers by KL.

The sound network ``g`` is trained so that at every output time step its object and
scene distributions match the teachers' ``f``:
``sum_k KL(f_k(frame) || g_k(sound))`` over the heads ``k``. As the authors' Torch code
(cvondrick/soundnet main_train.lua: ``DistKLDivCriterion`` over the 8 head/time
outputs, divided by 8), the loss here is the KL averaged over time steps and summed
over the two heads; its ``lambda = 250`` scale is left to the learning rate.

Data (keras_zoo.data.paired_av) yields ``(waveform, (objects, scenes[, image]))``
with per-clip teacher distributions ``(B, C)`` (broadcast over the student's time
steps) or per-step ones ``(B, T, C)``. With ``--soundnet_teacher_dir`` the object
targets become the softmax of that trained image classifier on the paired image;
without it they are the data's one-hot labels.
"""
import os

import tensorflow as tf

from keras_zoo.backend import keras
from keras_zoo.data._base import adapt_images
from training.tasks import Task, register_task
from training.tasks_distill import TEACHER_FILES

_TINY = 1e-12
HEADS = ("objects", "scenes")


def kl_divergence(teacher, student, from_logits=False):
    """Per-example ``KL(teacher || student)`` averaged over time, shape ``(B,)``.

    Args:
        teacher: distributions ``(B, C)`` (one per clip) or ``(B, T, C)``; rows may be
            all zero (no target: contributes 0).
        student: ``(B, T, C)`` probabilities (or logits with ``from_logits``).
    """
    teacher = tf.cast(teacher, tf.float32)
    if teacher.shape.rank == 2:
        teacher = teacher[:, None, :]
    student = tf.cast(student, tf.float32)
    log_student = tf.nn.log_softmax(student) if from_logits else tf.math.log(tf.maximum(student, _TINY))
    # 0 log 0 = 0: one-hot teachers give plain cross-entropy, without log(0) NaNs.
    terms = tf.where(teacher > 0, teacher * (tf.math.log(tf.maximum(teacher, _TINY)) - log_student), 0.0)
    return tf.reduce_mean(tf.reduce_sum(terms, axis=-1), axis=-1)


class SoundNetTrainer(keras.Model):
    """Wraps SoundNet for ``fit``: KL per head against (optionally teacher-made) distributions."""

    def __init__(self, student, teacher=None, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.from_logits = from_logits
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "objects_kl", "scenes_kl")]
        self.accuracy = keras.metrics.Mean(name="objects_accuracy")
        # No weights of its own and the wrapped models are built: Keras 3's BackupAndRestore requires built models.
        self.built = True

    @property
    def metrics(self):
        return [*self.trackers, self.accuracy]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _targets(self, targets):
        objects, scenes = targets[0], targets[1]
        if self.teacher is not None:
            if len(targets) < 3:
                raise ValueError("--soundnet_teacher_dir needs data with paired images (digit_sounds); this "
                                 "dataset has sound only. Drop the option or use paired data.")
            shape = tuple(self.teacher.input_shape[1:])
            images = adapt_images(targets[2][..., None], shape, 1.0)
            objects = tf.cast(self.teacher(images, training=False), tf.float32)
        return objects, scenes

    def _step(self, data, training):
        waves, targets = data
        objects, scenes = self._targets(targets)
        outputs = self.student(waves, training=training)
        per_head = [kl_divergence(t, o, self.from_logits) for t, o in zip((objects, scenes), outputs)]
        return objects, outputs, per_head, per_head[0] + per_head[1]

    def _report(self, objects, outputs, per_head, per_example):
        for tracker, value in zip(self.trackers, (per_example, *per_head)):
            tracker.update_state(value)
        clip_scores = tf.reduce_mean(tf.cast(outputs[0], tf.float32), axis=1)
        teacher_top = tf.argmax(objects if objects.shape.rank == 2 else tf.reduce_mean(objects, axis=1), axis=-1)
        self.accuracy.update_state(tf.cast(tf.equal(tf.argmax(clip_scores, axis=-1), teacher_top), tf.float32))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            objects, outputs, per_head, per_example = self._step(data, training=True)
            loss = tf.nn.compute_average_loss(per_example)
        weights = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._report(objects, outputs, per_head, per_example)

    def test_step(self, data):
        return self._report(*self._step(data, training=False))


@register_task("audio_classification")
class SoundNetTransferTask(Task):
    """Teacher-student KL transfer for two-head sound models (SoundNet)."""

    monitor = "val_loss"
    OPTIONS = {
        "soundnet_teacher_dir": (None, "SoundNet transfer: a training.train model_dir of an image classifier whose "
                                       "softmax on the paired images replaces the one-hot object targets."),
    }

    def prepare(self, model, config):
        if len(model.outputs) != 2:
            raise ValueError("The audio_classification task trains two-head sound models (objects, scenes) such as "
                             f"soundnet. Received: a model with {len(model.outputs)} output(s)")
        return SoundNetTrainer(model, self._load_teacher(model),
                               from_logits=config.get("classifier_activation", "softmax") is None,
                               name=f"{model.name}_trainer")

    def _load_teacher(self, student):
        teacher_dir = self.options["soundnet_teacher_dir"]
        if teacher_dir is None:
            return None
        paths = [os.path.join(str(teacher_dir), f) for f in TEACHER_FILES]
        path = next((p for p in paths if os.path.exists(p)), None)
        if path is None:
            raise ValueError(f"--soundnet_teacher_dir must be a training.train model_dir holding "
                             f"{' or '.join(TEACHER_FILES)} (train an image classifier on digits first). "
                             f"Received: soundnet_teacher_dir={teacher_dir!r}")
        teacher = keras.models.load_model(path, compile=False)
        teacher.trainable = False
        if teacher.output_shape[-1] != student.outputs[0].shape[-1]:
            raise ValueError(f"The teacher predicts {teacher.output_shape[-1]} classes but the object head has "
                             f"{student.outputs[0].shape[-1]}; train the teacher on the same labels. "
                             f"Received: soundnet_teacher_dir={teacher_dir!r}")
        return teacher

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer)
