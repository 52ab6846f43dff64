"""LightRNN word reallocation between epochs (arXiv:1610.09893, section 3.2) in the shared training loop.

``--lightrnn_reallocation_batches=N`` wraps the model's own task (``language_model``):
training is unchanged, and after every epoch the words of a ``lightrnn_lm`` are
moved to the minimum-cost table cells scored on N training batches
(keras_zoo.models.lightrnn.LightRNNReallocation).
"""
from keras_zoo.models.lightrnn import LightRNNCore, LightRNNReallocation
from training.tasks import Task, register_task


@register_task("lightrnn_reallocation")
class LightRNNReallocationTask(Task):
    """The base language-model task plus LightRNN's epoch-end word reallocation."""

    ACTIVATED_BY = "lightrnn_reallocation_batches"
    OPTIONS = {
        "lightrnn_reallocation_batches": (None, "LightRNN: reallocate words after every epoch, scoring the "
                                                "table cells on this many training batches (e.g. 50)."),
    }

    def __init__(self, options=None, base_task=None):
        super().__init__(options, base_task)
        value = self.options["lightrnn_reallocation_batches"]
        try:
            self.num_batches = int(value)
        except (TypeError, ValueError):
            self.num_batches = 0
        if self.num_batches <= 0:
            raise ValueError(f"--lightrnn_reallocation_batches must be a positive integer. "
                             f"Received: lightrnn_reallocation_batches={value!r}")
        if base_task is None or base_task.name != "language_model":
            raise ValueError(f"--lightrnn_reallocation_batches trains LightRNN language models (task "
                             f"language_model, --model=lightrnn_lm); drop the flag for this model. "
                             f"Received: task={getattr(base_task, 'name', None)!r}")
        self.monitor = base_task.monitor

    def loss(self, config):
        return self.base_task.loss(config)

    def metrics(self, config):
        return self.base_task.metrics(config)

    def prepare(self, model, config):
        if not any(isinstance(layer, LightRNNCore) for layer in model.layers):
            raise ValueError(f"--lightrnn_reallocation_batches needs a LightRNN model (--model=lightrnn_lm). "
                             f"Received: model {model.name!r}")
        return self.base_task.prepare(model, config)

    def compile(self, model, optimizer, config):
        self.base_task.compile(model, optimizer, config)

    def fit(self, model, train, **fit_kwargs):
        callbacks = list(fit_kwargs.pop("callbacks", None) or [])
        callbacks.append(LightRNNReallocation(train, num_batches=self.num_batches))
        return self.base_task.fit(model, train, callbacks=callbacks, **fit_kwargs)

    def evaluate(self, model, test, steps, verbose):
        return self.base_task.evaluate(model, test, steps, verbose)

    def after_training(self, model, bundle, write_dir, config):
        return self.base_task.after_training(model, bundle, write_dir, config)
