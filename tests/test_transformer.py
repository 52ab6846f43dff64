"""Transformer: positions against the paper's formula, parameter count at full size,
causality, padding masks, the warm-up schedule and the label-smoothed loss."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.layers.positional import SinusoidalPositionEncoding
from keras_zoo.models.transformer import TransformerDecoder, TransformerSchedule
from training.tasks_seq2seq import LabelSmoothedCrossEntropy, MaskedTokenAccuracy
from tests.helpers import assert_int8_decoder_verified_on_held_out_text

pytestmark = pytest.mark.both


def test_sinusoidal_encoding_matches_the_paper():
    x = np.zeros((1, 50, 16), "float32")
    encoded = np.asarray(SinusoidalPositionEncoding()(x))[0]
    pos, i = np.arange(50)[:, None], np.arange(8)[None, :]
    angle = pos / 10000 ** (2 * i / 16)
    np.testing.assert_allclose(encoded[:, 0::2], np.sin(angle), atol=1e-5)
    np.testing.assert_allclose(encoded[:, 1::2], np.cos(angle), atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEncoding()(np.zeros((1, 3, 5), "float32"))


def test_transformer_base_parameter_count_at_full_size():
    """65M in Table 3. We count every trainable weight once: the 37,000 x 512 embedding is
    shared by the source, the target and the pre-softmax projection (no output bias)."""
    model = keras_zoo.create_model("transformer_base")
    d, d_ff, vocab, layers = 512, 2048, 37000, 6
    attention = 4 * (d * d + d)
    ffn = d * d_ff + d_ff + d_ff * d + d
    norm = 2 * d
    encoder = layers * (attention + ffn + 2 * norm)
    decoder = layers * (2 * attention + ffn + 3 * norm)
    expected = vocab * d + encoder + decoder
    assert model.count_params() == expected == 63_082_496
    reference = keras_zoo.model_info("transformer_base").reference_params
    assert abs(model.count_params() - reference) / reference < 0.03


def test_unshared_source_embedding_adds_one_matrix():
    shared = keras_zoo.create_model("transformer_base", tiny=True)
    separate = keras_zoo.create_model("transformer_base", tiny=True, share_embeddings=False)
    assert separate.count_params() - shared.count_params() == 40 * 16


def _batch(rng, source_len=7, target_len=6, vocab=40):
    source = rng.integers(3, vocab, (2, source_len)).astype("int32")
    source[1, -3:] = 0
    target = rng.integers(3, vocab, (2, target_len)).astype("int32")
    target[:, 0] = 1
    return source, target


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_decoder_is_causal(norm_position):
    model = keras_zoo.create_model("transformer_base", tiny=True, norm_position=norm_position)
    source, target = _batch(np.random.default_rng(0))
    logits = np.asarray(model([source, target], training=False))
    changed = target.copy()
    changed[:, 4:] = (changed[:, 4:] + 5) % 40
    other = np.asarray(model([source, changed], training=False))
    np.testing.assert_allclose(logits[:, :4], other[:, :4], atol=1e-5)
    assert not np.allclose(logits[:, 4:], other[:, 4:])


def test_padded_source_positions_are_never_attended():
    model = keras_zoo.create_model("transformer_base", tiny=True)
    source, target = _batch(np.random.default_rng(1))
    logits = np.asarray(model([source, target], training=False))
    embedding = model.get_layer("transformer_embedding")
    table = embedding.get_weights()[0]
    table[0] = np.random.default_rng(2).standard_normal(table.shape[1]) * 10
    embedding.set_weights([table])
    other = np.asarray(model([source, target], training=False))
    # Column 0 is the pad token's own logit (the output projection is the shared embedding).
    np.testing.assert_allclose(logits[1, :, 1:], other[1, :, 1:], atol=1e-4)


def test_decoder_graph_reproduces_teacher_forcing():
    info = keras_zoo.model_info("transformer_base")
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    source, target = _batch(np.random.default_rng(3))
    logits = np.asarray(tf.nn.log_softmax(model([source, target], training=False)))
    decoder = TransformerDecoder(model, config)
    state = decoder._state(source)
    for t in range(config["target_len"]):
        log_probs, state, _ = decoder.step_fn(target[:, t], state)
        np.testing.assert_allclose(log_probs, logits[:, t], atol=1e-4)
    tokens, _ = decoder.greedy(source, max_length=4)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 4


def test_warmup_schedule_matches_the_paper_and_round_trips():
    schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
    for step in (1, 100, 3999, 4000, 10000, 100000):
        expected = 512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
        assert float(schedule(step - 1)) == pytest.approx(expected, rel=1e-5)
    rates = [float(schedule(s)) for s in range(0, 8000, 500)]
    assert int(np.argmax(rates)) == 8  # rises for 4000 steps, then decays
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(clone, TransformerSchedule)
    assert float(clone(123)) == pytest.approx(float(schedule(123)))
    optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_2=0.98, epsilon=1e-9)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert restored.get_config()["learning_rate"] == optimizer.get_config()["learning_rate"]


def test_label_smoothed_loss_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((2, 3, 5)).astype("float32")
    targets = np.array([[3, 4, 0], [1, 0, 0]], "int32")
    eps = 0.1
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.eye(5)[targets] * (1 - eps) + eps / 5
    token_loss = -(q * log_p).sum(-1)
    mask = targets != 0
    expected = token_loss[mask].mean()
    loss = LabelSmoothedCrossEntropy(eps)(targets, logits)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    plain = LabelSmoothedCrossEntropy(0.0)(targets, logits)
    assert float(plain) == pytest.approx(-log_p[mask, targets[mask]].mean(), rel=1e-5)
    metric = MaskedTokenAccuracy()
    metric.update_state(targets, np.eye(5)[np.array([[3, 2, 1], [1, 4, 4]])])
    assert float(metric.result()) == pytest.approx(2 / 3)


@pytest.mark.tf_keras
def test_int8_decoder_export_is_verified_on_held_out_text(tmp_path):
    """The decoder graph exported with the encoder's output on test-split text stays within int8's threshold."""
    assert_int8_decoder_verified_on_held_out_text("transformer_base", tmp_path)
