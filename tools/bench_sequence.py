"""Training-step and decoding throughput of the sequence models against an LSTM baseline.

Every model is a language model of the same width (recurrent units, or 2d channels
for ByteNet) on the same random batch; ratios are against ``rnn_lm`` with
``cell="lstm"`` measured in the same run. Training: tokens per second of a compiled
``train_on_batch`` (forward + backward + Adam). Decoding: tokens per second of greedy
generation, one token per step: recurrent models run their single-step graph with
explicit state, ByteNet re-reads its whole prefix each step (no cached activations).

    python tools/bench_sequence.py [--width 128] [--seq_len 32] [--batch 32]
"""
import argparse
import importlib.util
import time

import numpy as np

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.decoding import compiled_inference, greedy_search, prefix_step_fn
from keras_zoo.models import rnn


def _candidates(width, seq_len, vocab):
    cells = [c for c in rnn.CELLS if c != "qrnn" or importlib.util.find_spec("keras_zoo.layers.qrnn")]
    common = dict(vocab_size=vocab, seq_len=seq_len, embedding_dim=width, units=width, num_layers=2,
                  dropout=0.0)
    models = [(f"rnn_lm cell={cell}", "rnn_lm", dict(common, cell=cell)) for cell in cells]
    models.append(("bytenet_lm (10 MU blocks)", "bytenet_lm",
                   dict(vocab_size=vocab, seq_len=seq_len, d=width // 2, num_blocks=10)))
    return models


def _time(fn, repeats):
    fn()  # trace / warm up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _train_tokens_per_second(model, ids, targets, repeats):
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return ids.size / _time(lambda: model.train_on_batch(ids, targets), repeats)


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _decode_tokens_per_second(name, model, config, batch, steps):
    if name == "rnn_lm":
        step = compiled_inference(keras_zoo.model_info(name).inference_model(model, config))
        shapes = [shape for input_dim in (config["embedding_dim"], config["units"])
                  for shape in rnn.state_shapes(config["cell"], config["units"], input_dim)]
        state = [np.zeros((batch, *shape), "float32") for shape in shapes]

        def step_fn(tokens, state):
            logits, *new_state = step([tokens[:, None], *state])
            return _log_softmax(logits), [np.asarray(s) for s in new_state], None
    else:
        predict = compiled_inference(model)
        step_fn = prefix_step_fn(lambda context, prefix: predict(prefix), config["seq_len"])
        # No context: the language model reads only its prefix.
        state = [np.zeros((batch, config["seq_len"]), np.int32), np.zeros(batch, np.int32)]
    start_tokens = np.ones(batch, np.int32)
    return batch * steps / _time(
        lambda: greedy_search(step_fn, state, start_tokens, end_id=-1, max_length=steps), 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seq_len", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--train_repeats", type=int, default=3)
    parser.add_argument("--decode_steps", type=int, default=16)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, (args.batch, args.seq_len)).astype("int32")
    targets = np.roll(ids, -1, axis=1)
    rows = []
    for label, name, config in _candidates(args.width, args.seq_len, args.vocab):
        keras.backend.clear_session()
        model = keras_zoo.create_model(name, **config)
        train = _train_tokens_per_second(model, ids, targets, args.train_repeats)
        decode = _decode_tokens_per_second(name, model, config, 8, args.decode_steps)
        rows.append((label, model.count_params(), train, decode))
        print(f"measured {label}", flush=True)
    base_train, base_decode = rows[0][2], rows[0][3]
    print(f"\nwidth={args.width} seq_len={args.seq_len} batch={args.batch} vocab={args.vocab} "
          f"(decoding: batch 8, {args.decode_steps} tokens)")
    print(f"{'model':<28}{'params':>10}{'train tok/s':>14}{'x LSTM':>8}{'decode tok/s':>14}{'x LSTM':>8}")
    for label, params, train, decode in rows:
        print(f"{label:<28}{params:>10,}{train:>14,.0f}{train / base_train:>8.2f}"
              f"{decode:>14,.0f}{decode / base_decode:>8.2f}")


if __name__ == "__main__":
    main()
