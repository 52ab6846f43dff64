"""Training tasks for the DNC (``memory``) and the AlphaGo networks (``policy_value``)."""
from keras_zoo.backend import keras
from training.tasks import Task, register_task


@register_task("memory")
class MemoryTask(Task):
    """Bit targets from logits (DNC copy/repeat-copy, Graves et al. 2016).

    The datasets weight only the answer steps (sample weights of shape (batch, time)),
    so loss and bit accuracy count what the model must recall, not the input phase.
    """

    def loss(self, config):
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def metrics(self, config):
        return [keras.metrics.BinaryAccuracy(threshold=0.0, name="bit_accuracy")]


@register_task("policy_value")
class PolicyValueTask(Task):
    """Cross-entropy on move distributions and squared error on outcomes.

    A model with both heads (AlphaGo Zero) trains on (z − v)² − πᵀ log p; the c‖θ‖²
    term is ``--weight_decay``. Single-head models (the 2016 policy or value
    network) get the loss of their head: a policy output has more than one unit.
    """

    def compile(self, model, optimizer, config):
        policy = [output.shape[-1] > 1 for output in model.outputs]
        losses = [keras.losses.CategoricalCrossentropy() if p else keras.losses.MeanSquaredError()
                  for p in policy]
        metrics = [[keras.metrics.CategoricalAccuracy(name="move_accuracy")] if p else [] for p in policy]
        if len(losses) == 1:
            model.compile(optimizer=optimizer, loss=losses[0], metrics=metrics[0])
        else:
            model.compile(optimizer=optimizer, loss=losses, metrics=metrics)
