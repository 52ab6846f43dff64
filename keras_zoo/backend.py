"""The one place that decides which Keras keras_zoo builds on.

TensorFlow 2.21 serves Keras 3 as ``tf.keras``; with ``TF_USE_LEGACY_KERAS=1``
set before TensorFlow is imported, ``tf.keras`` is tf_keras (Keras 2), which
tensorflow-model-optimization needs for quantization-aware training. Every
builder and layer imports Keras from here, so one source serves both runtimes.
"""
import tensorflow as tf

keras = tf.keras

#: True when ``keras`` is tf_keras (Keras 2), False for Keras 3.
IS_LEGACY_KERAS = not hasattr(keras, "version")


def keras_major_version():
    """2 under tf_keras, 3 under Keras 3."""
    return 2 if IS_LEGACY_KERAS else 3


def serializable(cls):
    """Registers a custom layer, loss or schedule for (de)serialization."""
    return keras.utils.register_keras_serializable(package="keras_zoo")(cls)
