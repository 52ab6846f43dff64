"""How a model of each ``ModelInfo.task`` trains: loss, metrics and, where needed, its own train_step.

Families with other tasks register theirs in their own files ``training/tasks_<topic>.py``,
which this module imports::

    @register_task("image_generation")
    class GANTask(Task):
        def prepare(self, model, config):   # e.g. wrap in a keras.Model with a custom train_step
            ...
"""
import importlib
import os
import pkgutil

from keras_zoo.backend import keras
from keras_zoo.metrics import BitsPerToken, Perplexity

_TASKS = {}


def register_task(name):
    """Class decorator: registers a Task subclass for ModelInfo.task ``name``."""

    def decorator(cls):
        if name in _TASKS:
            raise ValueError(f"Task {name!r} is already registered by {_TASKS[name].__module__}. "
                             f"Received: {cls.__name__}")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return decorator


def get_task(name):
    if name not in _TASKS:
        raise ValueError(f"No training task is registered for {name!r}; training supports "
                         f"{', '.join(sorted(_TASKS))}. Register one with training.tasks.register_task. "
                         f"Received: task={name!r}")
    return _TASKS[name]()


class Task:
    """Default behaviour: ``model.fit`` with ``loss`` and ``metrics``; best model by ``monitor``."""

    name = ""
    monitor = "val_loss"

    def loss(self, config):
        raise NotImplementedError

    def metrics(self, config):
        return []

    def prepare(self, model, config):
        """The model ``fit`` trains; override to wrap it in a model with a custom ``train_step``."""
        return model

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer, loss=self.loss(config), metrics=self.metrics(config))


def _outputs_logits(config):
    return config.get("classifier_activation", "softmax") is None


@register_task("image_classification")
class ClassificationTask(Task):
    """Sparse categorical cross-entropy on probabilities (on logits when ``classifier_activation=None``)."""

    def loss(self, config):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=_outputs_logits(config))

    def metrics(self, config):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


@register_task("sequence_classification")
class SequenceClassificationTask(ClassificationTask):
    pass


@register_task("language_model")
class LanguageModelTask(Task):
    """Next-token cross-entropy from logits, reported also as bits per token and perplexity."""

    def loss(self, config):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self, config):
        return [BitsPerToken(), Perplexity()]


def _import_task_modules():
    for module in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if module.name.startswith("tasks_"):
            importlib.import_module(f"{__package__}.{module.name}")


_import_task_modules()
