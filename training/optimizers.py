"""Optimizers by name, and the learning-rate schedules of the papers' training presets.

``@register_optimizer(name)`` adds one: a factory of ``(learning_rate, weight_decay,
**params)`` where ``params`` are optimizer settings a preset may give (e.g. momentum).

``learned:PATH`` names a meta-trained LSTM optimizer (arXiv:1606.04474) saved as an
``.npz`` by ``LSTMOptimizerNet.save`` or tools/learned_optimizer_report.py. The
learning rate multiplies its update, so ``--learning_rate=1`` applies it as
meta-trained. The file is read and checked by ``check_optimizer``, i.e. before any
training work.
"""
import inspect

from absl import logging

from keras_zoo.backend import keras

_OPTIMIZERS = {}
LEARNED_PREFIX = "learned:"


def register_optimizer(name):
    def decorator(factory):
        if name in _OPTIMIZERS:
            raise ValueError(f"Optimizer {name!r} is already registered. Received: {factory}")
        _OPTIMIZERS[name] = factory
        return factory

    return decorator


def list_optimizers():
    return sorted(_OPTIMIZERS)


def _learned_path(name):
    """The weights path of ``learned:PATH``, or None for a registered name."""
    if isinstance(name, str) and name.startswith(LEARNED_PREFIX):
        return name[len(LEARNED_PREFIX):]
    return None


def check_optimizer(name):
    """Rejects an unknown name; for ``learned:PATH``, loads and checks the weights file."""
    path = _learned_path(name)
    if path is not None:
        if not path:
            raise ValueError("learned:PATH needs the path of an .npz written by LSTMOptimizerNet.save, e.g. "
                             f"--optimizer=learned:/tmp/learned_optimizer_report/mlp.npz. Received: optimizer={name!r}")
        from keras_zoo.optimizers.learned import load_weights

        load_weights(path)
        return
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer; use one of {', '.join(list_optimizers())} or learned:PATH (a "
                         f"meta-trained LSTM optimizer's .npz). Received: optimizer={name!r}")


def optimizer_params(name):
    """The settings optimizer ``name`` takes besides learning rate and weight decay."""
    check_optimizer(name)
    if _learned_path(name) is not None:
        return []
    return list(inspect.signature(_OPTIMIZERS[name]).parameters)[2:]


def create_optimizer(name, learning_rate, weight_decay=0.0, **params):
    """Builds optimizer ``name``; build it inside ``strategy.scope()``.

    Args:
        name: a registered optimizer name.
        learning_rate: a float or a ``keras.optimizers.schedules.LearningRateSchedule``.
        weight_decay: decoupled weight decay (0: none).
        **params: settings of that optimizer (``optimizer_params(name)``).
    """
    unknown = sorted(set(params) - set(optimizer_params(name)))
    if unknown:
        raise ValueError(f"Optimizer {name!r} takes {optimizer_params(name) or 'no settings'} besides the learning "
                         f"rate and weight decay. Received: {unknown}")
    path = _learned_path(name)
    if path is not None:
        return _learned(path, learning_rate, weight_decay or None)
    return _OPTIMIZERS[name](learning_rate, weight_decay or None, **params)


def _learned(path, learning_rate, weight_decay):
    from keras_zoo.optimizers.learned import LearnedOptimizer

    if isinstance(learning_rate, (int, float)) and learning_rate < 0.1:
        logging.warning("The learned optimizer's update is multiplied by the learning rate %g, which shrinks "
                        "the steps it was meta-trained to take; pass --learning_rate=1 to apply them as trained.",
                        learning_rate)
    return LearnedOptimizer(weights=path, learning_rate=learning_rate, weight_decay=weight_decay)


def learning_rate_schedule(learning_rate, lr_schedule, steps_per_epoch, epochs):
    """A Keras schedule from a preset's ``lr_schedule`` dict, in epochs, starting at ``learning_rate``.

    Forms:
        ``{"boundaries_epochs": (...), "rates": (...)}``: piecewise constant; the rates
            are scaled so that the first equals ``learning_rate``.
        ``{"polynomial_power": p, "end_learning_rate": e}``: polynomial decay over all ``epochs``.
        ``{"exponential_decay_rate": r, "decay_every_epochs": n}``: times ``r`` every ``n`` epochs.
    """
    if not lr_schedule:
        return learning_rate
    if steps_per_epoch < 1:
        raise ValueError(f"A learning-rate schedule needs the steps per epoch. Received: {steps_per_epoch}")
    schedules = keras.optimizers.schedules
    if "boundaries_epochs" in lr_schedule:
        rates = lr_schedule["rates"]
        scale = learning_rate / rates[0]
        return schedules.PiecewiseConstantDecay(
            boundaries=[int(e * steps_per_epoch) for e in lr_schedule["boundaries_epochs"]],
            values=[float(r * scale) for r in rates])
    if "polynomial_power" in lr_schedule:
        return schedules.PolynomialDecay(learning_rate, decay_steps=max(1, epochs * steps_per_epoch),
                                         end_learning_rate=lr_schedule["end_learning_rate"],
                                         power=lr_schedule["polynomial_power"])
    if "exponential_decay_rate" in lr_schedule:
        return schedules.ExponentialDecay(learning_rate,
                                          decay_steps=int(lr_schedule["decay_every_epochs"] * steps_per_epoch),
                                          decay_rate=lr_schedule["exponential_decay_rate"], staircase=True)
    raise ValueError(f"Unknown lr_schedule form; use boundaries_epochs/rates, polynomial_power/end_learning_rate "
                     f"or exponential_decay_rate/decay_every_epochs. Received: {lr_schedule}")


@register_optimizer("sgd")
def _sgd(learning_rate, weight_decay):
    return keras.optimizers.SGD(learning_rate=learning_rate, weight_decay=weight_decay)


@register_optimizer("momentum")
def _momentum(learning_rate, weight_decay, momentum=0.9, nesterov=True):
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay)


@register_optimizer("adam")
def _adam(learning_rate, weight_decay):
    return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)


@register_optimizer("adamw")
def _adamw(learning_rate, weight_decay):
    # AdamW's decoupled decay is its point; Loshchilov & Hutter (arXiv:1711.05101) use 1e-4..1e-2.
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay or 1e-4)


@register_optimizer("rmsprop")
def _rmsprop(learning_rate, weight_decay, rho=0.9, epsilon=1e-7):
    return keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho, epsilon=epsilon, weight_decay=weight_decay)


@register_optimizer("eve")
def _eve(learning_rate, weight_decay):
    from keras_zoo.optimizers import Eve

    return Eve(learning_rate=learning_rate, weight_decay=weight_decay)
