"""LightRNN (arXiv:1610.09893): the factorised probability against NumPy, reallocation, step graph, sizes."""
import numpy as np
import pytest

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.models.lightrnn import (LightRNNLanguageModel, allocation_costs, embedding_parameters,
                                       inference_model, reallocate, table_size)


def _tiny():
    info = keras_zoo.model_info("lightrnn_lm")
    config = info.resolved_config(tiny=True)
    keras.utils.set_random_seed(0)
    return info.builder(**config), config


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _numpy_lightrnn(weights, ids, side, vocab):
    """Section 3.1, one word at a time: row step, column step, P = P_r(row) P_c(col | row input)."""
    er, ec, W, U, b, yr, yc, word_row, word_col = weights

    def cell(x, h, c):
        i, f, g, o = np.split(x @ W + h @ U + b, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c

    def log_softmax(z):
        return z - z.max() - np.log(np.exp(z - z.max()).sum())

    h = c = np.zeros(U.shape[0])
    out = []
    for word in ids:
        h, c = cell(er[word_row[word]], h, c)
        h, c = cell(ec[word_col[word]], h, c)
        p = np.zeros(vocab)
        log_rows = log_softmax(h @ yr)
        for w in range(vocab):
            h_row, _ = cell(er[word_row[w]], h, c)
            p[w] = np.exp(log_rows[word_row[w]] + log_softmax(h_row @ yc)[word_col[w]])
        out.append(np.log(p / p.sum()))  # cells without a word carry no probability
    return np.array(out)


@pytest.mark.both
def test_probabilities_equal_numpy_transcription_and_sum_to_one():
    model, config = _tiny()
    ids = np.random.default_rng(0).integers(0, 23, (2, 6)).astype("int32")
    log_p = np.asarray(model(ids, training=False))
    assert log_p.shape == (2, 6, 23)
    np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)
    weights = [np.asarray(w, "float64") if w.dtype.kind == "f" else np.asarray(w) for w in model.get_weights()]
    for n in range(2):
        np.testing.assert_allclose(log_p[n], _numpy_lightrnn(weights, ids[n], table_size(23), 23), atol=1e-5)


@pytest.mark.both
def test_single_step_graph_reproduces_the_full_sequence():
    model, config = _tiny()
    ids = np.random.default_rng(1).integers(0, 23, 6).astype("int32")
    expected = np.asarray(model(ids[None], training=False))[0]
    step = inference_model(model, config)
    h = c = np.zeros((1, config["units"]), "float32")
    got = []
    for token in ids:
        log_p, h, c = (np.asarray(x) for x in step([np.array([[token]], "int32"), h, c], training=False))
        got.append(np.asarray(log_p)[0, 0])
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)


@pytest.mark.both
def test_reallocation_is_the_minimum_cost_assignment_of_words_to_cells():
    model, _ = _tiny()
    core = model.get_layer("lightrnn_lm_core")
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 23, (4, 7)).astype("int32") for _ in range(3)]
    row_cost, column_cost = allocation_costs(model, batches)

    def cost(slots):  # the paper's l(w, r, c) = l_r(w, r) + l_c(w, c), summed over words
        return (row_cost[np.arange(23), slots // core.side] + column_cost[np.arange(23), slots % core.side]).sum()

    before = cost(np.asarray(core.word_row) * core.side + np.asarray(core.word_column))
    change = reallocate(model, batches)
    slots = np.asarray(core.word_row) * core.side + np.asarray(core.word_column)
    assert len(set(slots.tolist())) == 23 and slots.max() < core.side ** 2  # one word per cell
    np.testing.assert_allclose(change, (cost(slots) - before) / 23, rtol=1e-6)
    random_allocations = [rng.permutation(core.side ** 2)[:23] for _ in range(300)]
    assert cost(slots) <= before and cost(slots) <= min(cost(s) for s in random_allocations)


@pytest.mark.both
def test_embedding_parameter_saving_and_paper_size():
    light, standard, ratio = embedding_parameters(10000, 512, 512)
    assert light == 2 * 100 * 512 * 2 == 204_800
    assert standard == 10000 * 512 * 2 + 10000
    assert ratio == pytest.approx(50.0488, abs=1e-4)  # 10,250,000 / 204,800
    model = LightRNNLanguageModel()
    lstm = 4 * 512 * (512 + 512 + 1)
    assert model.count_params() == light + lstm + 2 * 10000  # + the non-trainable allocation table


@pytest.mark.both
def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: vocab_size=1"):
        LightRNNLanguageModel(vocab_size=1)


@pytest.mark.tf_keras  # the export stage runs under tf_keras (as tests/test_export.py)
def test_single_step_graph_converts_to_builtin_float_tflite_matching_keras():
    from export.convert import convert, input_signature
    from export.verify import TFLiteRunner

    model, config = _tiny()
    step = inference_model(model, config)
    runner = TFLiteRunner(convert(step, "float32", input_signature(step)))  # builtins only: no Flex ops
    rng = np.random.default_rng(3)
    feed = [np.array([[5]], "int32")] + [rng.uniform(-1, 1, (1, config["units"])).astype("float32")] * 2
    for got, want in zip(runner(feed), step(feed, training=False)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)


@pytest.mark.both
def test_reallocation_task_wraps_the_language_model_task_and_reallocates_after_each_epoch():
    import tensorflow as tf

    from training.tasks import get_task

    with pytest.raises(ValueError, match="Received: lightrnn_reallocation_batches='x'"):
        get_task("language_model", {"lightrnn_reallocation_batches": "x"})
    task = get_task("language_model", {"lightrnn_reallocation_batches": "2"})
    assert task.base_task.name == "language_model" and task.num_batches == 2
    model, _ = _tiny()
    core = model.get_layer("lightrnn_lm_core")
    ids = np.random.default_rng(4).integers(0, 23, (8, 7)).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((ids[:, :-1], ids[:, 1:])).batch(4)
    task.compile(task.prepare(model, {}), keras.optimizers.Adam(0.0), {})  # lr 0: only the table moves
    row_cost, column_cost = allocation_costs(model, [ids[:4], ids[4:]])
    history = task.fit(model, train, epochs=1, verbose=0)
    slots = np.asarray(core.word_row) * core.side + np.asarray(core.word_column)
    assert "lightrnn_reallocation_cost_change" in history.history
    assert len(set(slots.tolist())) == 23
    best = (row_cost[np.arange(23), slots // core.side] + column_cost[np.arange(23), slots % core.side]).sum()
    initial = (row_cost[np.arange(23), np.arange(23) // core.side]
               + column_cost[np.arange(23), np.arange(23) % core.side]).sum()
    assert best < initial
