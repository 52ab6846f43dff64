"""ByteNet: dilation schedule, masked decoder, Multiplicative Units against NumPy, dynamic unfolding."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.bytenet import ByteNetDecoder, MultiplicativeUnit
from tests.helpers import assert_int8_decoder_verified_on_held_out_text

pytestmark = pytest.mark.both


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("causal", [True, False])
def test_multiplicative_unit_matches_numpy(causal):
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 9, 3)).astype("float32")
    layer = MultiplicativeUnit(kernel_size=3, dilation_rate=2, causal=causal)
    layer(h)
    kernel = rng.standard_normal((3, 3, 12)).astype("float32") * 0.5
    bias = rng.standard_normal(12).astype("float32") * 0.1
    layer.set_weights([kernel, bias])
    pad = (4, 0) if causal else (2, 2)
    padded = np.pad(h, ((0, 0), pad, (0, 0)))
    z = sum(padded[:, tap * 2:tap * 2 + 9] @ kernel[tap] for tap in range(3)) + bias
    g1, g2, g3, u = np.split(z, 4, -1)
    expected = _sigmoid(g1) * np.tanh(_sigmoid(g2) * h + _sigmoid(g3) * np.tanh(u))
    np.testing.assert_allclose(np.asarray(layer(h)), expected, atol=1e-5)


def test_dilation_rates_repeat_1_to_16_in_both_stacks():
    model = keras_zoo.create_model("bytenet_translation", tiny=True, num_blocks=10)
    for stack, padding in (("encoder", "same"), ("decoder", "causal")):
        convs = [model.get_layer(f"bytenet_{stack}_block{i}_2_conv") for i in range(1, 11)]
        assert [c.dilation_rate[0] for c in convs] == [1, 2, 4, 8, 16] * 2
        assert {c.padding for c in convs} == {padding}
        assert {c.kernel_size[0] for c in convs} == {3}
    block = [layer.name for layer in model.layers if layer.name.startswith("bytenet_decoder_block1_")]
    assert block == [f"bytenet_decoder_block1_{n}" for n in
                     ("1_norm", "1_relu", "1_conv", "2_norm", "2_relu", "2_conv", "3_norm", "3_relu",
                      "3_conv", "add")]


def _ids(rng, shape, vocab=40):
    return rng.integers(3, vocab, shape).astype("int32")


def test_translation_decoder_is_causal_and_encoder_sees_the_whole_source():
    model = keras_zoo.create_model("bytenet_translation", tiny=True)
    rng = np.random.default_rng(1)
    source, target = _ids(rng, (2, 6)), _ids(rng, (2, 8))
    logits = np.asarray(model([source, target], training=False))
    assert logits.shape == (2, 8, 40)
    changed = target.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % 40
    other = np.asarray(model([source, changed], training=False))
    np.testing.assert_allclose(logits[:, :5], other[:, :5], atol=1e-5)
    assert not np.allclose(logits[:, 5:], other[:, 5:])
    # The encoder is not masked: the last source byte reaches the first target position.
    last_changed = source.copy()
    last_changed[:, -1] = (last_changed[:, -1] + 1) % 40
    assert not np.allclose(logits[:, 0], np.asarray(model([last_changed, target], training=False))[:, 0])


@pytest.mark.parametrize("block_type", ["mu", "relu"])
def test_byte_language_model_is_causal(block_type):
    model = keras_zoo.create_model("bytenet_lm", tiny=True, block_type=block_type)
    ids = _ids(np.random.default_rng(2), (2, 16), 256)
    logits = np.asarray(model(ids, training=False))
    assert logits.shape == (2, 16, 256)
    changed = ids.copy()
    changed[:, 9:] = (changed[:, 9:] + 7) % 256
    other = np.asarray(model(changed, training=False))
    np.testing.assert_allclose(logits[:, :9], other[:, :9], atol=1e-5)
    assert not np.allclose(logits[:, 9:], other[:, 9:])


def test_dynamic_unfolding_bounds_the_decoded_length_and_steps_match_teacher_forcing():
    info = keras_zoo.model_info("bytenet_translation")
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    source = np.array([[5, 6, 7, 0, 0, 0], [5, 6, 7, 8, 9, 10]], "int32")
    decoder = ByteNetDecoder(model, config, a=1.2, b=0)
    assert [decoder.unfolding_length(row) for row in source] == [4, 8]  # ceil(1.2*3), min(ceil(7.2), 8)
    for (tokens, _), row in zip(decoder.greedy(source), source):
        assert len(tokens) <= decoder.unfolding_length(row)
    # Batch 1 throughout: the decoding graphs are traced once per batch size.
    source = source[1:]
    target = _ids(np.random.default_rng(3), (1, 8))
    target[:, 0] = 1
    log_probs = np.asarray(tf.nn.log_softmax(model([source, target], training=False)))
    state = decoder._state(source)
    for t in range(8):
        step_log_probs, state, _ = decoder.step_fn(target[:, t], state)
        np.testing.assert_allclose(step_log_probs, log_probs[:, t], atol=1e-4)


def test_lengths_are_validated():
    with pytest.raises(ValueError, match="source_len <= target_len"):
        keras_zoo.create_model("bytenet_translation", tiny=True, source_len=9, target_len=8)
    with pytest.raises(ValueError, match="block_type"):
        keras_zoo.create_model("bytenet_lm", tiny=True, block_type="gated")


@pytest.mark.tf_keras
def test_int8_decoder_export_is_verified_on_held_out_text(tmp_path):
    """The decoder graph exported with the encoder's output on test-split text stays within int8's threshold."""
    assert_int8_decoder_verified_on_held_out_text("bytenet_translation", tmp_path)
