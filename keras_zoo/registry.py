"""The model registry: every variant is a name, a builder, its config and metadata.

A family file declares its variants as data and registers them in one call::

    VARIANTS = {
        "densenet121": dict(config=dict(blocks=(6, 12, 24, 16)),
                            reference_params=(8_062_504, "keras.applications")),
    }
    register_family(DenseNet, VARIANTS, task="image_classification",
                    paper="1608.06993", input_spec=image_input_spec, ...)

``create_model(name, **overrides)`` then calls ``DenseNet(**config, **overrides)``.
"""
import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

import numpy as np

TASKS = (
    "image_classification",
    "language_model",
    "sequence_classification",
    "seq2seq",
    "image_generation",
    "gan",
    "video_generation",
    "image_to_image",
    "video_prediction",
    "audio_generation",
    "audio_classification",
    "memory",
    "policy_value",
    "meta_optimizer",
    "nas",
    "representation",
    "word2vec",
    "dialogue",
    "segmentation",
    "detection",
)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input, without the batch dimension.

    ``maxval`` bounds integer inputs (token ids); random example inputs are drawn
    from ``[0, maxval)``. Float inputs are drawn from ``[minval, maxval)``.
    """

    shape: tuple
    dtype: str = "float32"
    maxval: float = 1.0
    minval: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered variant.

    Attributes:
        name: registry name, snake_case.
        builder: the family's general builder, called as ``builder(**config)``.
        config: the variant's builder keyword arguments (the paper's defaults).
        task: one of ``TASKS``.
        paper: arXiv id (or journal reference) of the paper.
        input_spec: ``config -> [InputSpec, ...]``, the inputs a model built with
            ``config`` takes.
        reference_params: parameter count from the paper or a reference
            implementation, or None where none is published.
        reference_source: where ``reference_params`` comes from, and which
            convention it counts (e.g. "trainable").
        default_dataset: what ``training.train --model=NAME`` trains on.
        tiny: config overrides that make the variant small enough for tests.
        export: ``{"tflite": bool, "edgetpu": bool or the reason it cannot run}``.
        inference_model: optional ``(trained_model, config) -> keras.Model`` that
            builds the graph exported to TFLite: static shapes, batch 1, and for
            recurrent models a single step with explicit state tensors. None means
            the model itself (at batch 1) is exported.
        training_preset: the paper's training recipe, or None: ``optimizer``,
            ``learning_rate``, ``weight_decay``, ``batch_size``, ``epochs``,
            optimizer parameters (``momentum``, ``nesterov``, ``rho``, ``epsilon``),
            ``lr_schedule`` (see training.optimizers.learning_rate_schedule),
            ``augmentation`` and ``source`` (for reference; not applied).
            ``training.train --preset=paper`` trains with it.
        family: the module that registered it.

    Output conventions: classifiers (image or sequence) end in
    ``classifier_activation`` (softmax by default, as keras.applications);
    language models and per-step generators return logits.
    """

    name: str
    builder: Callable[..., Any]
    config: dict
    task: str
    paper: str
    input_spec: Callable[[dict], list]
    reference_params: int | None = None
    reference_source: str = ""
    default_dataset: str = ""
    tiny: dict = dataclasses.field(default_factory=dict)
    export: dict = dataclasses.field(default_factory=lambda: {"tflite": True, "edgetpu": False})
    inference_model: Callable[..., Any] | None = None
    training_preset: dict | None = None
    family: str = ""

    def resolved_config(self, tiny=False, **overrides):
        """The builder kwargs: variant config, then tiny overrides, then ``overrides``."""
        return {**self.config, **(self.tiny if tiny else {}), **overrides}

    def inputs_for(self, config):
        return list(self.input_spec(config))


_REGISTRY: dict[str, ModelInfo] = {}


def register_family(builder, variants, **family_defaults):
    """Registers every variant of a family.

    Args:
        builder: the family's general builder function.
        variants: ``{name: dict(config=..., <ModelInfo field>=...)}``; a variant's
            fields override ``family_defaults``.
        **family_defaults: ModelInfo fields shared by the family (task, paper,
            input_spec, export, ...).
    """
    for name, variant in variants.items():
        fields = {**family_defaults, **variant}
        reference = fields.pop("reference_params", None)
        if isinstance(reference, tuple):
            fields["reference_params"], fields["reference_source"] = reference
        else:
            fields["reference_params"] = reference
        register_model(ModelInfo(name=name, builder=builder, family=builder.__module__, **fields))


def register_model(info):
    """Adds one ModelInfo to the registry. A name can be registered only once."""
    if info.name in _REGISTRY:
        raise ValueError(
            f"Model name {info.name!r} is already registered by "
            f"{_REGISTRY[info.name].family}; pick a different name. "
            f"Received: a second registration from {info.family}."
        )
    if info.task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={info.task!r} for {info.name!r}")
    _REGISTRY[info.name] = info
    return info


def list_models(pattern="*", task=None):
    """Sorted registry names matching an fnmatch ``pattern`` (and ``task``)."""
    return sorted(
        name
        for name, info in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern) and (task is None or info.task == task)
    )


def model_info(name):
    """The ModelInfo of a registered name; unknown names raise a ValueError."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} "
            f"See keras_zoo.list_models() or `keras-zoo list` for the {len(_REGISTRY)} "
            f"registered names."
        )
    return _REGISTRY[name]


def create_model(name, tiny=False, **overrides):
    """Builds a registered variant.

    Args:
        name: registry name, e.g. ``"qrnn_lm_char"``.
        tiny: apply the variant's ``tiny`` overrides (small model for tests).
        **overrides: builder keyword arguments that replace the variant's.
    """
    info = model_info(name)
    return info.builder(**info.resolved_config(tiny=tiny, **overrides))


def example_inputs(info, config, batch_size=2, seed=0):
    """Random inputs that fit ``info.input_spec(config)``, as a list of arrays."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in info.inputs_for(config):
        shape = (batch_size, *spec.shape)
        if np.issubdtype(np.dtype(spec.dtype), np.integer):
            arrays.append(rng.integers(int(spec.minval), int(spec.maxval), size=shape).astype(spec.dtype))
        else:
            arrays.append(rng.uniform(spec.minval, spec.maxval, size=shape).astype(spec.dtype))
    return arrays
