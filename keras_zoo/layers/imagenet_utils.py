"""Shared plumbing for image classifiers with the keras.applications signature.

Every image-classification builder follows the same order::

    check_classifier_args(weights=..., include_top=..., pooling=..., classes=...,
                          classifier_activation=..., features_only=..., out_indices=...)
    inputs, x = resolve_image_input(input_shape, input_tensor, default_size=224,
                                    min_size=32, name="densenet121")
    ...                                 # the backbone, collecting stage outputs
    x = classification_head(x, include_top, pooling, classes, classifier_activation)
    return finish_model(inputs, x, name, weights=weights, features=stages,
                        features_only=features_only, out_indices=out_indices)

``features_only=True`` (the timm idea) returns the backbone's stage outputs
instead of the classifier, for detection and segmentation heads; the head
arguments are then ignored. ``feature_extractor(name, out_indices)`` does the
same for any registered classifier.

Only channels-last images are supported. No pretrained weights are downloaded:
``weights`` is None or a local file written by ``model.save_weights``.
"""
import os

from keras_zoo.backend import keras
from keras_zoo.registry import InputSpec, create_model, model_info

POOLING_MODES = (None, "avg", "max")


def check_weights(weights):
    """Validates ``weights``: None or an existing local file."""
    if weights is None:
        return
    if weights == "imagenet":
        raise ValueError(
            "keras_zoo does not download pretrained weights. Pass `weights=None` to start "
            "from random initialisation, or the path of a local weights file written by "
            "`model.save_weights(...)` (e.g. one copied from keras.applications by layer "
            "name). Received: weights='imagenet'"
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None or the path of a local weights file. "
            f"Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    # A TensorFlow checkpoint is a prefix whose files end in .index / .data-*.
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise ValueError(
            "`weights` must be None or the path of an existing local weights file; "
            f"no file exists at that path. Received: weights={weights!r}"
        )


def check_classifier_args(*, weights, include_top, pooling, classes, classifier_activation,
                          features_only=False, out_indices=None):
    """Validates the keras.applications arguments before anything is built."""
    check_weights(weights)
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if pooling not in POOLING_MODES:
        raise ValueError(
            f"`pooling` must be one of {POOLING_MODES}: None keeps the 4D feature map, "
            f"'avg'/'max' add global pooling when include_top=False. Received: pooling={pooling!r}"
        )
    if include_top and not features_only:
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise ValueError(
                f"`classes` must be a positive integer (the size of the classifier). "
                f"Received: classes={classes!r}"
            )
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "`classifier_activation` must be None, a Keras activation name such as "
                "'softmax' or 'linear', or a callable. "
                f"Received: classifier_activation={classifier_activation!r}"
            ) from error
    if not isinstance(features_only, bool):
        raise ValueError(
            f"`features_only` must be True or False. Received: features_only={features_only!r}"
        )
    if out_indices is not None and not features_only:
        raise ValueError(
            "`out_indices` selects stage outputs and needs `features_only=True`. "
            f"Received: out_indices={out_indices!r} with features_only=False"
        )


def resolve_image_input(input_shape, input_tensor, default_size, min_size, name, *,
                        default_channels=3):
    """Returns ``(model_inputs, x)`` for an image backbone.

    Args:
        input_shape: ``(height, width, channels)`` or None for
            ``(default_size, default_size, default_channels)``. Height and width
            may be None (any size); channels may be any positive number.
        input_tensor: optional Keras tensor (``keras.Input`` or a layer output)
            to build on; its model inputs become the model's inputs. As in
            keras.applications, ``input_shape`` is then ignored.
        default_size: the variant's native resolution (224 ImageNet, 32 CIFAR).
        min_size: the smallest height/width the backbone's downsampling accepts.
        name: the model name, used in error messages.
        default_channels: channels when ``input_shape`` is None.

    Returns:
        ``(model_inputs, x)``: what ``keras.Model`` takes as inputs, and the
        image tensor the backbone starts from.
    """
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                f"{name}: `input_tensor` must be a Keras tensor, e.g. `keras.Input(shape=(224, 224, 3))` "
                f"or a layer output. Received: input_tensor of type {type(input_tensor).__name__}"
            )
        tensor_shape = tuple(input_tensor.shape)
        if len(tensor_shape) != 4:
            raise ValueError(
                f"{name}: `input_tensor` must be a batch of images, rank 4 (batch, height, width, "
                f"channels). Received: input_tensor with shape {tensor_shape}"
            )
        _check_image_shape(tensor_shape[1:], min_size, name, "input_tensor shape[1:]")
        return keras.utils.get_source_inputs(input_tensor), input_tensor

    if input_shape is None:
        input_shape = (default_size, default_size, default_channels)
    if not isinstance(input_shape, (tuple, list)):
        raise ValueError(
            f"{name}: `input_shape` must be a tuple (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    input_shape = tuple(input_shape)
    _check_image_shape(input_shape, min_size, name, "input_shape")
    image = keras.Input(shape=input_shape)
    return image, image


def _check_image_shape(shape, min_size, name, what):
    if len(shape) != 3:
        raise ValueError(
            f"{name}: `{what}` must have 3 entries (height, width, channels), channels last; "
            f"a batch dimension is not part of it. Received: {what}={shape}"
        )
    height, width, channels = shape
    if channels is None or int(channels) < 1:
        raise ValueError(
            f"{name}: the number of channels must be known and positive. Received: {what}={shape}"
        )
    for size in (height, width):
        if size is not None and int(size) < min_size:
            raise ValueError(
                f"{name}: height and width must be at least {min_size}, the smallest size its "
                f"downsampling stages accept; resize the images or pick a smaller variant. "
                f"Received: {what}={shape}"
            )


def global_pool(x, pooling):
    """Global 'avg' or 'max' pooling (keras.applications layer names), or ``x`` for None."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classification_head(x, include_top, pooling, classes, classifier_activation):
    """keras.applications' head: avg-pool + Dense ``predictions``, or optional pooling."""
    if not include_top:
        return global_pool(x, pooling)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def select_features(features, out_indices, name):
    """The stage outputs picked by ``out_indices`` (all of them for None)."""
    if out_indices is None:
        return list(features)
    count = len(features)
    indices = tuple(out_indices) if isinstance(out_indices, (tuple, list)) else None
    if (
        not indices
        or any(isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count for i in indices)
    ):
        raise ValueError(
            f"{name}: `out_indices` must be a non-empty tuple of stage indices in "
            f"[0, {count}) (negative counts from the end); this backbone has {count} stages "
            f"with shapes {[tuple(f.shape[1:]) for f in features]}. Received: out_indices={out_indices!r}"
        )
    return [features[i] for i in indices]


def finish_model(inputs, outputs, name, *, weights=None, features=None, features_only=False,
                 out_indices=None):
    """Builds the Model (classifier or stage features) and loads ``weights``."""
    if features_only:
        outputs = select_features(features, out_indices, name)
    model = keras.Model(inputs, outputs, name=name)
    load_weights_or_raise(model, weights)
    return model


def load_weights_or_raise(model, weights):
    """Loads a local weights file into ``model``; 'imagenet' or a bad path raises ValueError."""
    check_weights(weights)
    if weights is not None:
        model.load_weights(os.fspath(weights))
    return model


def image_input_spec(default_size, channels=3):
    """The registry ``input_spec`` of an image classifier: one float image in [0, 1)."""

    def spec(config):
        shape = config.get("input_shape") or (default_size, default_size, channels)
        return [InputSpec(shape=tuple(shape), dtype="float32")]

    return spec


def feature_extractor(model_name, out_indices=None, **overrides):
    """A registered classifier's backbone returning its stage outputs (timm ``features_only``).

    Args:
        model_name: registry name, e.g. ``"densenet121"``.
        out_indices: stage indices to return, e.g. ``(1, 2, 3, 4)``; None returns all.
        **overrides: builder keywords (``input_shape``, ``tiny`` ...).
    """
    if model_info(model_name).task != "image_classification":
        raise ValueError(
            f"feature_extractor works on image classifiers; {model_name!r} is a "
            f"{model_info(model_name).task} model. Received: model_name={model_name!r}"
        )
    return create_model(model_name, features_only=True, out_indices=out_indices, **overrides)
