"""DNC memory equations (Graves et al., 2016, Nature 538:471, Methods) against a plain
NumPy transcription written slot by slot, plus the invariants the paper states."""
import numpy as np
import pytest
import tensorflow as tf

import keras_zoo
from keras_zoo.layers import dnc_memory as dm
from keras_zoo.registry import example_inputs

pytestmark = pytest.mark.both

B, N, W, R = 3, 6, 5, 2
ATOL = 1e-5
rng = np.random.default_rng(0)


def _simplex(*shape, total=1.0):
    """Random weightings with sum <= total over the last axis."""
    x = rng.uniform(size=(*shape[:-1], 1 + shape[-1]))
    return (total * x / x.sum(-1, keepdims=True))[..., :-1].astype("float32")


def _f32(x):
    return np.asarray(x, dtype="float32")


# ---------- NumPy transcription, one memory slot / head at a time ----------

def np_oneplus(x):
    return 1 + np.log1p(np.exp(x))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_cosine(u, v):
    eps = dm.EPSILON
    return u @ v / (np.sqrt(u @ u + eps) * np.sqrt(v @ v + eps))


def np_content(memory, key, beta):
    scores = np.array([beta * np_cosine(key, memory[i]) for i in range(memory.shape[0])])
    e = np.exp(scores - scores.max())
    return e / e.sum()


def np_allocation(usage):
    order = np.argsort(usage, kind="stable")
    a = np.zeros_like(usage)
    for j, slot in enumerate(order):
        a[slot] = (1 - usage[slot]) * np.prod([usage[order[i]] for i in range(j)])
    return a


def np_link(prev_link, prev_p, ww):
    n = ww.shape[0]
    link = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                link[i, j] = (1 - ww[i] - ww[j]) * prev_link[i, j] + ww[i] * prev_p[j]
    return link


# ---------------------------- equation tests ----------------------------

def test_interface_size_and_split():
    assert dm.interface_size(W, R) == W * R + 3 * W + 5 * R + 3
    xi = rng.standard_normal((B, dm.interface_size(W, R))).astype("float32")
    parts = {k: np.asarray(v) for k, v in dm.split_interface(tf.constant(xi), W, R).items()}
    x = xi[0]
    o = 0

    def take(n):
        nonlocal o
        o += n
        return x[o - n:o]

    np.testing.assert_allclose(parts["read_keys"][0], take(R * W).reshape(R, W), atol=ATOL)
    np.testing.assert_allclose(parts["read_strengths"][0], np_oneplus(take(R)), atol=ATOL)
    np.testing.assert_allclose(parts["write_key"][0, 0], take(W), atol=ATOL)
    np.testing.assert_allclose(parts["write_strength"][0], np_oneplus(take(1)), atol=ATOL)
    np.testing.assert_allclose(parts["erase_vector"][0], np_sigmoid(take(W)), atol=ATOL)
    np.testing.assert_allclose(parts["write_vector"][0], take(W), atol=ATOL)
    np.testing.assert_allclose(parts["free_gates"][0], np_sigmoid(take(R)), atol=ATOL)
    np.testing.assert_allclose(parts["allocation_gate"][0], np_sigmoid(take(1)), atol=ATOL)
    np.testing.assert_allclose(parts["write_gate"][0], np_sigmoid(take(1)), atol=ATOL)
    modes = take(3 * R).reshape(R, 3)
    modes = np.exp(modes) / np.exp(modes).sum(-1, keepdims=True)
    np.testing.assert_allclose(parts["read_modes"][0], modes, atol=ATOL)
    assert o == xi.shape[1]
    assert np.all(parts["read_strengths"] >= 1) and np.all(parts["write_strength"] >= 1)


def test_content_weighting():
    memory = rng.standard_normal((B, N, W)).astype("float32")
    memory[0, 2] = 0.0  # a never-written slot
    keys = rng.standard_normal((B, R, W)).astype("float32")
    strengths = _f32(np_oneplus(rng.standard_normal((B, R))))
    got = np.asarray(dm.content_weighting(memory, keys, strengths))
    for b in range(B):
        for h in range(R):
            np.testing.assert_allclose(got[b, h], np_content(memory[b], keys[b, h], strengths[b, h]), atol=ATOL)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=ATOL)


def test_content_weighting_gradient_is_finite_on_zero_memory():
    memory = tf.zeros((B, N, W))
    keys = tf.constant(rng.standard_normal((B, R, W)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch([memory, keys])
        out = tf.reduce_sum(dm.content_weighting(memory, keys, tf.ones((B, R))) * rng.standard_normal((B, R, N)))
    for grad in tape.gradient(out, [memory, keys]):
        assert np.all(np.isfinite(grad))


def test_retention_and_usage():
    free = rng.uniform(size=(B, R)).astype("float32")
    prev_read = _simplex(B, R, N)
    prev_usage = rng.uniform(size=(B, N)).astype("float32")
    prev_write = _simplex(B, N)
    psi = np.asarray(dm.memory_retention(free, prev_read))
    usage = np.asarray(dm.update_usage(prev_usage, prev_write, psi))
    for b in range(B):
        for i in range(N):
            expected_psi = np.prod([1 - free[b, h] * prev_read[b, h, i] for h in range(R)])
            assert abs(psi[b, i] - expected_psi) < ATOL
            u, w = prev_usage[b, i], prev_write[b, i]
            assert abs(usage[b, i] - (u + w - u * w) * expected_psi) < ATOL
    assert np.all((usage >= 0) & (usage <= 1))


def test_allocation_weighting():
    usage = rng.uniform(size=(B, N)).astype("float32")
    usage[1, :2] = 0.0  # free slots
    got = np.asarray(dm.allocation_weighting(tf.constant(usage)))
    for b in range(B):
        np.testing.assert_allclose(got[b], np_allocation(usage[b].astype("float64")), atol=ATOL)
    assert np.all(got.sum(-1) <= 1 + ATOL)
    # With all slots free, the first slot in the free list gets everything.
    fresh = np.asarray(dm.allocation_weighting(tf.zeros((1, N))))
    assert fresh.max() == pytest.approx(1.0) and fresh.sum() == pytest.approx(1.0)


def test_allocation_gradient_is_finite_at_zero_usage():
    usage = tf.zeros((B, N))
    with tf.GradientTape() as tape:
        tape.watch(usage)
        out = tf.reduce_sum(dm.allocation_weighting(usage) * rng.standard_normal((B, N)))
    assert np.all(np.isfinite(tape.gradient(out, usage)))


def test_write_weighting_and_memory_update():
    allocation = _simplex(B, N)
    content = _simplex(B, N, total=1.0)
    ga = rng.uniform(size=(B, 1)).astype("float32")
    gw = rng.uniform(size=(B, 1)).astype("float32")
    ww = np.asarray(dm.write_weighting(allocation, content, ga, gw))
    memory = rng.standard_normal((B, N, W)).astype("float32")
    erase = rng.uniform(size=(B, W)).astype("float32")
    vector = rng.standard_normal((B, W)).astype("float32")
    new_memory = np.asarray(dm.update_memory(memory, ww, erase, vector))
    for b in range(B):
        for i in range(N):
            expected_w = gw[b, 0] * (ga[b, 0] * allocation[b, i] + (1 - ga[b, 0]) * content[b, i])
            assert abs(ww[b, i] - expected_w) < ATOL
            for j in range(W):
                expected = memory[b, i, j] * (1 - expected_w * erase[b, j]) + expected_w * vector[b, j]
                assert abs(new_memory[b, i, j] - expected) < ATOL
    assert np.all(ww.sum(-1) <= 1 + ATOL)


def test_precedence_and_link():
    prev_p = _simplex(B, N)
    ww = _simplex(B, N)
    prev_link = np.zeros((B, N, N), "float32")
    for b in range(B):  # a valid link matrix: built from earlier writes
        for _ in range(3):
            w = _simplex(1, N)[0]
            prev_link[b] = np_link(prev_link[b], prev_p[b], w)
    link = np.asarray(dm.update_link(prev_link, prev_p, ww))
    p = np.asarray(dm.update_precedence(prev_p, ww))
    for b in range(B):
        np.testing.assert_allclose(link[b], np_link(prev_link[b], prev_p[b], ww[b]), atol=ATOL)
        np.testing.assert_allclose(p[b], (1 - ww[b].sum()) * prev_p[b] + ww[b], atol=ATOL)
    assert np.all(np.diagonal(link, axis1=1, axis2=2) == 0)
    assert np.all(link >= -ATOL)
    assert np.all(link.sum(1) <= 1 + ATOL) and np.all(link.sum(2) <= 1 + ATOL)
    assert np.all(p.sum(-1) <= 1 + ATOL)


def test_directional_and_read_weightings():
    link = rng.uniform(size=(B, N, N)).astype("float32") / N
    prev_read = _simplex(B, R, N)
    forward, backward = map(np.asarray, dm.directional_weightings(link, prev_read))
    content = _simplex(B, R, N, total=1.0)
    modes = _simplex(B, R, 3, total=1.0)
    modes = modes / modes.sum(-1, keepdims=True)
    read = np.asarray(dm.read_weighting(backward, content, forward, modes))
    memory = rng.standard_normal((B, N, W)).astype("float32")
    reads = np.asarray(dm.read_vectors(memory, read))
    for b in range(B):
        for h in range(R):
            f = np.array([sum(link[b, i, j] * prev_read[b, h, j] for j in range(N)) for i in range(N)])
            bw = np.array([sum(link[b, i, j] * prev_read[b, h, i] for i in range(N)) for j in range(N)])
            np.testing.assert_allclose(forward[b, h], f, atol=ATOL)
            np.testing.assert_allclose(backward[b, h], bw, atol=ATOL)
            expected = modes[b, h, 0] * bw + modes[b, h, 1] * content[b, h] + modes[b, h, 2] * f
            np.testing.assert_allclose(read[b, h], expected, atol=ATOL)
            np.testing.assert_allclose(reads[b, h], memory[b].T @ expected, atol=ATOL)


def test_memory_step_invariants_over_a_sequence():
    state = [tf.zeros((B, N, W)), tf.zeros((B, N)), tf.zeros((B, N, N)), tf.zeros((B, N)),
             tf.zeros((B, R, N)), tf.zeros((B, N))]
    for _ in range(12):
        xi = tf.constant(3 * rng.standard_normal((B, dm.interface_size(W, R))).astype("float32"))
        _, *state = dm.memory_step(xi, *state, word_size=W, num_reads=R)
        memory, usage, link, precedence, read_weights, write_weights = map(np.asarray, state)
        assert np.all((usage >= -ATOL) & (usage <= 1 + ATOL))
        assert np.all(write_weights.sum(-1) <= 1 + ATOL) and np.all(write_weights >= -ATOL)
        assert np.all(read_weights.sum(-1) <= 1 + ATOL) and np.all(read_weights >= -ATOL)
        assert np.all(precedence.sum(-1) <= 1 + ATOL)
        assert np.all(np.diagonal(link, axis1=1, axis2=2) == 0)
        assert np.all(link.sum(1) <= 1 + ATOL) and np.all(link.sum(2) <= 1 + ATOL)


def test_writes_then_forward_reads_follow_write_order():
    """Written in slots 0, 1, 2 in turn, a forward read from slot 0 lands on slot 1."""
    link, p = tf.zeros((1, N, N)), tf.zeros((1, N))
    for slot in range(3):
        ww = tf.one_hot([slot], N)
        link = dm.update_link(link, p, ww)
        p = dm.update_precedence(p, ww)
    forward, backward = dm.directional_weightings(link, tf.one_hot([[1]], N))
    np.testing.assert_allclose(np.asarray(forward)[0, 0], np.eye(N)[2], atol=ATOL)
    np.testing.assert_allclose(np.asarray(backward)[0, 0], np.eye(N)[0], atol=ATOL)


# ----------------------------- the cell and model -----------------------------

def test_cell_output_is_controller_plus_reads():
    """y_t = W_y h_t + W_r r_t, with the controller reading [x_t; r_{t-1}]."""
    cell = dm.DNCCell(3, memory_size=N, word_size=W, num_read_heads=R, controller_units=7)
    x = tf.constant(rng.standard_normal((B, 4)).astype("float32"))
    states = [tf.zeros((B, s)) for s in cell.state_size]
    states[6] = tf.constant(rng.standard_normal((B, R * W)).astype("float32"))  # previous reads
    y, new = cell(x, states)
    h, reads = np.asarray(new[7]), np.asarray(new[6])
    gates = np.concatenate([x, states[6], np.zeros((B, 7))], -1) @ np.asarray(cell.controller_kernel)
    i, f, g, o = np.split(gates + np.asarray(cell.controller_bias), 4, -1)
    c = np_sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(h, np_sigmoid(o) * np.tanh(c), atol=ATOL)
    expected = h @ np.asarray(cell.output_kernel) + reads @ np.asarray(cell.read_kernel)
    np.testing.assert_allclose(np.asarray(y), expected, atol=ATOL)


def test_step_model_matches_sequence_model():
    info = keras_zoo.model_info("dnc")
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    sequence = example_inputs(info, config, batch_size=1)[0]
    expected = np.asarray(model(sequence))
    step = info.inference_model(model, config)
    states = [np.zeros((1, *i.shape[1:]), "float32") for i in step.inputs[1:]]
    for t in range(sequence.shape[1]):
        y, *states = step([sequence[:, t], *states])
        states = [np.asarray(s) for s in states]
        np.testing.assert_allclose(np.asarray(y), expected[:, t], atol=ATOL)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="memory_size"):
        dm.DNCCell(4, memory_size=0)
    with pytest.raises(ValueError, match="time_steps"):
        keras_zoo.create_model("dnc", tiny=True, time_steps=-1)


# ----------------------------- copy-task data -----------------------------

def test_copy_examples_replay_the_sequence_after_the_delimiter():
    from keras_zoo.data.copy_task import copy_examples

    inputs, targets, weights = copy_examples(50, 4, 11, np.random.default_rng(3))
    assert inputs.shape == (50, 11, 5) and targets.shape == (50, 11, 4) and weights.shape == (50, 11)
    for x, y, w in zip(inputs, targets, weights):
        delimiter = int(np.flatnonzero(x[:, 4])[0])
        assert 1 <= delimiter <= 5 and x[:, 4].sum() == 1
        np.testing.assert_array_equal(y[delimiter + 1:2 * delimiter + 1], x[:delimiter, :4])
        np.testing.assert_array_equal(w, (np.arange(11) > delimiter) & (np.arange(11) <= 2 * delimiter))
        assert not x[delimiter + 1:].any() and not y[:delimiter + 1].any()


def test_copy_lengths_can_be_bounded_for_curricula_and_generalisation():
    from keras_zoo.data.copy_task import copy_examples

    _, _, weights = copy_examples(200, 3, 21, np.random.default_rng(5), min_length=4, max_length=6)
    assert set(weights.sum(-1).astype(int)) == {4, 5, 6}
    _, _, weights = copy_examples(10, 3, 21, np.random.default_rng(5), min_length=10, max_length=10)
    assert (weights.sum(-1) == 10).all()
    with pytest.raises(ValueError, match="raise time_steps to 2 \\* max_length \\+ 1"):
        copy_examples(1, 3, 9, np.random.default_rng(5), max_length=5)


def test_repeat_copy_examples_repeat_then_mark_the_end():
    from keras_zoo.data.copy_task import MAX_REPEATS, repeat_copy_examples

    inputs, targets, weights = repeat_copy_examples(50, 3, 16, np.random.default_rng(4))
    for x, y, w in zip(inputs, targets, weights):
        step = int(np.flatnonzero(x[:, 4])[0])
        repeats = round(x[step, 4] * MAX_REPEATS)
        sequence = x[:step, :3]
        replay = y[step + 1:step + 1 + repeats * step, :3]
        np.testing.assert_array_equal(replay, np.tile(sequence, (repeats, 1)))
        end = step + 1 + repeats * step
        assert y[end, 3] == 1 and y[:, 3].sum() == 1 and end < 16
        assert w.sum() == repeats * step + 1


def test_repeat_copy_bounds_lengths_and_repeats_and_keeps_the_training_scale():
    from keras_zoo.data.copy_task import repeat_copy_examples

    inputs, targets, weights = repeat_copy_examples(200, 3, 40, np.random.default_rng(6), max_repeats=6,
                                                    min_length=2, max_length=5, min_repeats=5, repeat_scale=4)
    seen = set()
    for x, y, w in zip(inputs, targets, weights):
        step = int(np.flatnonzero(x[:, 4])[0])
        repeats = round(x[step, 4] * 4)
        seen.add((step, repeats))
        np.testing.assert_array_equal(y[step + 1:step + 1 + repeats * step, :3], np.tile(x[:step, :3], (repeats, 1)))
        assert y[step + 1 + repeats * step, 3] == 1 and w.sum() == repeats * step + 1
    assert seen == {(length, n) for length in range(2, 6) for n in (5, 6)}
    with pytest.raises(ValueError, match="raise time_steps to 37"):
        repeat_copy_examples(1, 3, 36, np.random.default_rng(6), max_repeats=6, max_length=5)
    with pytest.raises(ValueError, match="min_length needs an explicit max_length"):
        repeat_copy_examples(1, 3, 36, np.random.default_rng(6), min_length=2)


def test_load_copy_fits_the_model_inputs():
    from keras_zoo.data import load_dataset

    info = keras_zoo.model_info("dnc")
    config = info.resolved_config(tiny=True)
    bundle = load_dataset("copy", task="memory", input_specs=info.inputs_for(config), batch_size=8)
    x, y, w = next(iter(bundle.train))
    assert x.shape == (8, 7, 5) and y.shape == (8, 7, 4) and w.shape == (8, 7)
    assert bundle.model_overrides == {"output_size": 4}
    with pytest.raises(ValueError, match="serves the tasks memory"):
        load_dataset("copy", task="language_model", input_specs=info.inputs_for(config), batch_size=8)
    bundle = load_dataset("repeat_copy", task="memory", input_specs=info.inputs_for(config), batch_size=8)
    assert bundle.model_overrides == {"output_size": 4}
    assert next(iter(bundle.test))[1].shape == (8, 7, 4)


def test_step_model_converts_to_builtin_tflite_and_agrees():
    from ai_edge_litert.interpreter import Interpreter

    info = keras_zoo.model_info("dnc")
    config = info.resolved_config(tiny=True)
    model = info.builder(**config)
    step = info.inference_model(model, config)
    converter = tf.lite.TFLiteConverter.from_keras_model(step)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    names = [i.name for i in step.inputs]
    inputs = {n: next(d for k, d in by_name.items() if k.startswith(f"serving_default_{n}:")) for n in names}
    sequence = example_inputs(info, config, batch_size=1)[0]
    states = [np.zeros((1, *i.shape[1:]), "float32") for i in step.inputs[1:]]
    for t in range(3):
        expected = [np.asarray(o) for o in step([sequence[:, t], *states])]
        for name, value in zip(names, [sequence[:, t], *states]):
            interpreter.set_tensor(inputs[name]["index"], value)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        # Output order in TFLite is not guaranteed; match each Keras output by shape and value.
        for e in expected:
            assert any(o.shape == e.shape and np.allclose(o, e, atol=1e-4) for o in outputs)
        states = expected[1:]
