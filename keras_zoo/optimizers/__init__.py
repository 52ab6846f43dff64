"""Optimizers Keras lacks: Eve (arXiv:1611.01505) and the learned LSTM optimizer (arXiv:1606.04474)."""
from keras_zoo.optimizers.eve import Eve, eve_feedback, eve_parameter_update
from keras_zoo.optimizers.learned import (LearnedOptimizer, LSTMOptimizerNet, QuadraticProblems,
                                          digits_mlp_problem, meta_train, preprocess_gradients)

__all__ = ["Eve", "LSTMOptimizerNet", "LearnedOptimizer", "QuadraticProblems", "digits_mlp_problem",
           "eve_feedback", "eve_parameter_update", "meta_train", "preprocess_gradients"]
