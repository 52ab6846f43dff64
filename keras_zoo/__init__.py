"""keras_zoo: Keras builders for the landmark models of 2016-era deep learning."""
from keras_zoo import models  # noqa: F401  (registers every family)
from keras_zoo.registry import create_model, list_models, model_info

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "model_info", "__version__"]
