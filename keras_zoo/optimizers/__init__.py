"""Optimizers Keras lacks: Eve (arXiv:1611.01505)."""
from keras_zoo.optimizers.eve import Eve, eve_feedback, eve_parameter_update

__all__ = ["Eve", "eve_feedback", "eve_parameter_update"]
