"""How a model of each ``ModelInfo.task`` trains: loss, metrics and, where needed, its own train_step.

Families with other tasks register theirs in their own files ``training/tasks_<topic>.py``,
which this module imports::

    @register_task("image_generation")
    class GANTask(Task):
        OPTIONS = {"label_smoothing": (0.0, "One-sided label smoothing of the real labels.")}

        def prepare(self, model, config):   # e.g. wrap in a keras.Model with a custom train_step
            ... self.options["label_smoothing"] ...

A task's ``OPTIONS`` become flags of ``python -m training.train`` and keys of
``TrainConfig.task_options``. A task with ``ACTIVATED_BY = "option"`` wraps the
model's own task whenever that option is given (distillation: ``--teacher_dir``).
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


def _task_class(name):
    if name not in _TASKS:
        raise ValueError(f"No training task is registered for {name!r}; training supports "
                         f"{', '.join(sorted(_TASKS))}. Register one with training.tasks.register_task. "
                         f"Received: task={name!r}")
    return _TASKS[name]


def get_task(name, options=None):
    """The task a model of ``ModelInfo.task == name`` trains with.

    Args:
        name: the model's task.
        options: ``TrainConfig.task_options``. When it sets a wrapper task's
            ``ACTIVATED_BY`` option, that task is returned, wrapping task ``name``.

    Raises:
        ValueError: for an unknown task, or an option the selected task does not take.
    """
    options = dict(options or {})
    base = _task_class(name)
    wrappers = [cls for cls in _TASKS.values() if cls.ACTIVATED_BY and options.get(cls.ACTIVATED_BY) is not None]
    if len(wrappers) > 1:
        raise ValueError(f"Options {[cls.ACTIVATED_BY for cls in wrappers]} select different tasks; give one. "
                         f"Received: {options}")
    if wrappers:
        return wrappers[0](options, base_task=base(_own_options(base, options)))
    return base(options)


def _own_options(cls, options):
    return {k: v for k, v in options.items() if k in cls.OPTIONS}


def all_task_options():
    """``{option: (default, help)}`` over every registered task (flags are defined from it)."""
    merged = {}
    for cls in _TASKS.values():
        for key, (default, help_text) in cls.OPTIONS.items():
            if key in merged and merged[key][0] != default:
                raise ValueError(f"Task option {key!r} has different defaults in two tasks ({merged[key][0]!r}, "
                                 f"{default!r}); rename one. Received: task {cls.name!r}")
            merged.setdefault(key, (default, help_text))
    return merged


class Task:
    """Default behaviour: ``model.fit`` with ``loss`` and ``metrics``; best model by ``monitor``.

    Attributes:
        OPTIONS: ``{name: (default, help)}`` the task takes (flags of training.train).
        ACTIVATED_BY: for a task that wraps the model's own task, the option that selects it.
        options: this run's options, defaults filled in.
        base_task: the wrapped task (only for ``ACTIVATED_BY`` tasks).
    """

    name = ""
    monitor = "val_loss"
    OPTIONS = {}
    ACTIVATED_BY = None

    def __init__(self, options=None, base_task=None):
        options = dict(options or {})
        accepted = set(self.OPTIONS) | (set(base_task.OPTIONS) if base_task else set())
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(f"Task {self.name!r} does not take the option(s) {unknown}; it takes "
                             f"{sorted(accepted) or 'none'}. Drop the flag(s). Received: {options}")
        self.options = {key: options.get(key, default) for key, (default, _) in self.OPTIONS.items()}
        self.base_task = base_task

    def loss(self, config):
        raise NotImplementedError

    def metrics(self, config):
        return []

    def prepare(self, model, config):
        """The model ``fit`` trains; override to wrap it in a model with a custom ``train_step``."""
        return model

    def compile(self, model, optimizer, config):
        model.compile(optimizer=optimizer, loss=self.loss(config), metrics=self.metrics(config))

    def fit(self, model, train, **fit_kwargs):
        """Trains ``model`` (what ``prepare`` returned); returns a Keras History.

        ``fit_kwargs`` are ``model.fit``'s (validation_data, epochs, steps_per_epoch,
        validation_steps, callbacks, verbose, shuffle). Override for searches that are
        not one ``fit`` (e.g. NAS: many child trainings per controller update).
        """
        return model.fit(train, **fit_kwargs)

    def evaluate(self, model, test, steps, verbose):
        """Test metrics as ``{name: float}``."""
        results = model.evaluate(test, steps=steps, return_dict=True, verbose=verbose)
        return {k: float(v) for k, v in results.items()}

    def after_training(self, model, bundle, write_dir, config):
        """Task-specific results once training and the test evaluation are done.

        Args:
            model: the trained model (as saved to ``model.keras``).
            bundle: the run's DatasetBundle (``test`` split, ``vocab``, ``labels``, ``info``).
            write_dir: the run's output directory, for pictures and sounds.
            config: the builder config.

        Returns:
            A JSON-serializable dict stored as ``metrics.json["task"]`` (e.g. paths of
            sample PNGs, held-out mAP).
        """
        return {}


def _outputs_logits(config):
    return config.get("classifier_activation", "softmax") is None


def _batch_norms(layer):
    """The BatchNormalization layers of ``layer``, including those of nested models (e.g. a
    training wrapper around the network)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer]
    return [norm for sublayer in getattr(layer, "layers", ()) for norm in _batch_norms(sublayer)]


def precise_batch_norm(model, images, num_batches):
    """Replaces every BatchNorm's moving statistics by their average over ``num_batches`` batches.

    Short runs leave the momentum-0.99 moving averages far from the statistics of the
    final weights (fcn_mobilenet after 400 steps: moving variances 0.4-0.8 where the
    inference-mode inputs had variance near 0.01, and every pixel predicted background;
    DenseNet-BC-40 after 175 steps on digits: 99.5% training, 15% validation accuracy),
    so inference-mode outputs collapse. "Precise BN" (Wu & Johnson, arXiv:2105.07576, Sec. 3) recomputes
    them with the weights fixed: the k-th training-mode forward pass uses momentum
    k / (k + 1), so the result is the running mean of the per-batch statistics.
    Forward passes are eager, so the changed ``momentum`` is read on every call.
    """
    norms = _batch_norms(model)
    if not norms:
        return 0
    saved = [layer.momentum for layer in norms]
    count = 0
    try:
        for batch in images.take(num_batches):
            for layer in norms:
                layer.momentum = count / (count + 1)
            model(batch, training=True)
            count += 1
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return count


@register_task("image_classification")
class ClassificationTask(Task):
    """Sparse categorical cross-entropy on probabilities (on logits when ``classifier_activation=None``)."""

    OPTIONS = {
        "precise_bn_batches": (0, "Classification: after training, recompute BatchNorm statistics as the mean over "
                                  "this many training batches (precise BN, for short runs); 0 keeps the moving "
                                  "averages."),
    }

    def fit(self, model, train, **fit_kwargs):
        history = model.fit(train, **fit_kwargs)
        if self.options["precise_bn_batches"] > 0:
            precise_batch_norm(model, train.map(lambda images, *_: images), self.options["precise_bn_batches"])
        return history

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
