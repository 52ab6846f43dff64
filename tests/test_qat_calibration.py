"""QAT activation ranges start at the float tensors' min/max instead of tfmot's [-6, 6]."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from export import qat

pytestmark = pytest.mark.tf_keras


def _range_values(model):
    return {w.name.split(":")[0]: float(w.numpy()) for layer in model.layers for w in layer.non_trainable_weights
            if w.name.split("/")[-1].split(":")[0] in ("output_min", "output_max", "post_activation_min",
                                                      "post_activation_max")}


def test_calibrated_ranges_are_the_float_extremes_and_bring_qat_outputs_to_float():
    keras_zoo.backend.keras.utils.set_random_seed(0)
    model = keras_zoo.create_model("qrnn_lm_char", tiny=True)
    tokens = np.random.default_rng(0).integers(0, 20, size=(8, 20)).astype("int32")
    batches = tf.data.Dataset.from_tensor_slices((tokens, tokens)).batch(4)
    qat_model, _ = qat.quantize_model(model)
    assert set(_range_values(qat_model).values()) == {-6.0, 6.0}, "tfmot's initial ranges"
    before = np.abs(qat_model.predict(tokens, verbose=0) - model.predict(tokens, verbose=0)).max()

    calibrated = qat.calibrate_ranges(qat_model, model, batches)

    assert len(calibrated) == 3, "two QRNN outputs and the logits"
    logits = model.predict(tokens, verbose=0)
    ranges = _range_values(qat_model)
    assert ranges["quant_qrnn_lm_char_logits/post_activation_min"] == pytest.approx(min(logits.min(), 0.0), rel=1e-5)
    assert ranges["quant_qrnn_lm_char_logits/post_activation_max"] == pytest.approx(max(logits.max(), 0.0), rel=1e-5)
    after = np.abs(qat_model.predict(tokens, verbose=0) - logits).max()
    # At [-6, 6] every 8-bit step (0.047) is wider than these untrained logits (|z| < 0.01).
    assert before > 0.5 * np.abs(logits).max()
    assert after < before / 5


def test_binarynet_float_twin_quantizes_its_hard_tanh_activations():
    """BinaryNet's real-valued twin (the compression report's float row) goes through QAT,
    with and without pruning preserved: HardTanh gets an output quantizer."""
    model = keras_zoo.create_model("binarynet_cifar", tiny=True, binarize=False)
    for preserve_sparsity in (False, True):
        _, coverage = qat.quantize_model(model, preserve_sparsity=preserve_sparsity)
        hard_tanh = [layer.name for layer in model.layers if type(layer).__name__ == "HardTanh"]
        assert hard_tanh and set(hard_tanh) <= set(coverage["custom_quantized"])
