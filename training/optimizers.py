"""Optimizers by name. ``@register_optimizer(name)`` adds one: a factory of (learning_rate, weight_decay)."""
from keras_zoo.backend import keras

_OPTIMIZERS = {}


def register_optimizer(name):
    def decorator(factory):
        if name in _OPTIMIZERS:
            raise ValueError(f"Optimizer {name!r} is already registered. Received: {factory}")
        _OPTIMIZERS[name] = factory
        return factory

    return decorator


def list_optimizers():
    return sorted(_OPTIMIZERS)


def check_optimizer(name):
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer; use one of {', '.join(list_optimizers())}. "
                         f"Received: optimizer={name!r}")


def create_optimizer(name, learning_rate, weight_decay=0.0):
    """Builds optimizer ``name``; build it inside ``strategy.scope()``."""
    check_optimizer(name)
    return _OPTIMIZERS[name](learning_rate, weight_decay or None)


@register_optimizer("sgd")
def _sgd(learning_rate, weight_decay):
    return keras.optimizers.SGD(learning_rate=learning_rate, weight_decay=weight_decay)


@register_optimizer("momentum")
def _momentum(learning_rate, weight_decay):
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True,
                                weight_decay=weight_decay)


@register_optimizer("adam")
def _adam(learning_rate, weight_decay):
    return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)


@register_optimizer("adamw")
def _adamw(learning_rate, weight_decay):
    # AdamW's decoupled decay is its point; Loshchilov & Hutter (arXiv:1711.05101) use 1e-4..1e-2.
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay or 1e-4)


@register_optimizer("rmsprop")
def _rmsprop(learning_rate, weight_decay):
    return keras.optimizers.RMSprop(learning_rate=learning_rate, weight_decay=weight_decay)


@register_optimizer("eve")
def _eve(learning_rate, weight_decay):
    from keras_zoo.optimizers import Eve

    return Eve(learning_rate=learning_rate, weight_decay=weight_decay)
