"""Trains small seq2seq models on the embedded docstrings_reverse task for the same number
of steps and prints test BLEU with greedy and beam-search decoding.

    python tools/seq2seq_report.py --steps=300 --source_len=24 --examples=100
    python tools/seq2seq_report.py --models=gnmt_tiny,qrnn_seq2seq --steps=100

Every model trains through training.loop.train_and_evaluate (the seq2seq task: teacher
forcing, label-smoothed cross-entropy) with the same data, batch size, steps and
learning rate; sizes are small (widths 64-128) so each run takes minutes on a CPU.
BLEU is keras_zoo.metrics.corpus_bleu over characters (the task reverses a line of
characters), on the first ``--examples`` lines of the test split. Beam search uses
GNMT's length penalty (alpha) and, for the models whose decoder step reports attention
(seq2seq_attention, gnmt_tiny, qrnn_seq2seq), its coverage penalty (beta).
"""
import argparse
import math
import os
import tempfile
import time

import numpy as np

import keras_zoo
from keras_zoo.backend import keras
from keras_zoo.data import load_dataset
from keras_zoo.metrics import corpus_bleu
from keras_zoo.models.seq2seq import END_ID, PAD_ID

VOCAB = 96  # characters of the docstrings; rarer ones become <unk>


def _setups(source_len):
    """Registry name -> (builder overrides, decoder factory, whether the decoder is batched)."""
    from keras_zoo.models.bytenet import ByteNetDecoder
    from keras_zoo.models.gnmt import GNMTTranslator
    from keras_zoo.models.qrnn_seq2seq import QRNNTranslator
    from keras_zoo.models.seq2seq import Seq2SeqDecoder
    from keras_zoo.models.transformer import TransformerDecoder

    lengths = dict(source_len=source_len, target_len=source_len + 1)
    two_vocabs = dict(source_vocab_size=VOCAB, target_vocab_size=VOCAB, **lengths)
    return {
        "seq2seq_attention": (dict(two_vocabs, embedding_dim=64, units=128, attention_units=128),
                              Seq2SeqDecoder),
        "gnmt_tiny": (dict(two_vocabs), GNMTTranslator),
        "qrnn_seq2seq": (dict(two_vocabs, num_layers=4, units=128, embedding_dim=64), QRNNTranslator),
        "transformer_base": (dict(vocab_size=VOCAB, num_layers=2, d_model=64, num_heads=4, d_ff=256,
                                  dropout=0.1, **lengths), TransformerDecoder),
        # ByteNet unfolds the target to 1.2 |s| (section 3.2): its decoder is that long.
        "bytenet_translation": (dict(vocab_size=VOCAB, source_len=source_len,
                                     target_len=math.ceil(1.2 * source_len) + 1, d=64, num_blocks=6),
                                ByteNetDecoder),
    }


def _text(ids, vocab):
    """Whitespace-separated characters up to the end token (spaces shown as U+2581)."""
    chars = []
    for i in ids:
        if i == END_ID:
            break
        if i != PAD_ID:
            chars.append(vocab[i].replace(" ", "\u2581") if i < len(vocab) else "<unk>")
    return " ".join(chars)


def _decode(name, decoder, sources, max_length, beam_width, alpha, beta):
    """(greedy, beam) token lists for every source row."""
    if name == "bytenet_translation":
        greedy = [tokens for tokens, _ in decoder.greedy(sources)]
        beam = [hyps[0].tokens for hyps in decoder.beam(sources, beam_width, length_penalty=alpha)]
        return greedy, beam
    if name == "transformer_base":
        greedy = list(decoder.greedy(sources, max_length)[0])
        beam = [hyps[0].tokens for hyps in decoder.beam(sources, beam_width, max_length, length_penalty=alpha)]
        return greedy, beam
    greedy = list(decoder.greedy(sources, max_length)[0])
    beam = [hyps[0].tokens for hyps in decoder.beam(sources, beam_width, max_length, length_penalty=alpha,
                                                    coverage_penalty=beta)]
    return greedy, beam


def run(name, overrides, decoder_class, args, work_dir):
    from training.loop import train_and_evaluate

    info = keras_zoo.model_info(name)
    config = info.resolved_config(**overrides)
    start = time.time()
    result = train_and_evaluate(dict(model=name, overrides=overrides, epochs=args.epochs,
                                     steps_per_epoch=max(1, args.steps // args.epochs), validation_steps=4,
                                     batch_size=args.batch_size, learning_rate=args.learning_rate,
                                     seed=args.seed, verbose=0), os.path.join(work_dir, name))
    seconds = time.time() - start
    model = keras.models.load_model(os.path.join(result["write_dir"], "model.keras"), compile=False)
    bundle = load_dataset(info.default_dataset, task=info.task, input_specs=info.inputs_for(config),
                          batch_size=args.examples, seed=args.seed)
    (sources, _), targets = next(iter(bundle.test))
    sources, targets = np.asarray(sources), np.asarray(targets)
    decoder = decoder_class(model, config)
    greedy, beam = _decode(name, decoder, sources, config["target_len"], args.beam_width, args.alpha, args.beta)
    references = [_text(t, bundle.vocab) for t in targets]
    return dict(params=model.count_params(), seconds=seconds, loss=result["test"]["loss"],
                accuracy=result["test"].get("token_accuracy", float("nan")),
                greedy=corpus_bleu([_text(g, bundle.vocab) for g in greedy], references),
                beam=corpus_bleu([_text(b, bundle.vocab) for b in beam], references),
                example=(_text(sources[0], bundle.vocab), _text(beam[0], bundle.vocab)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="seq2seq_attention,gnmt_tiny,qrnn_seq2seq,transformer_base,"
                                            "bytenet_translation")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--epochs", type=int, default=3, help="the steps are split into this many epochs")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--source_len", type=int, default=24)
    parser.add_argument("--examples", type=int, default=100, help="test lines decoded for BLEU")
    parser.add_argument("--beam_width", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty")
    parser.add_argument("--beta", type=float, default=0.2, help="GNMT coverage penalty")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setups = _setups(args.source_len)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(setups))
    if unknown:
        parser.error(f"--models takes names from {sorted(setups)}. Received: {unknown}")
    rows = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for name in names:
            rows[name] = run(name, *setups[name], args, work_dir)
            row = rows[name]
            print(f"{name}: BLEU greedy {row['greedy']:.1f}, beam {row['beam']:.1f} "
                  f"({row['seconds']:.0f} s); e.g. {row['example'][0]!r} -> {row['example'][1]!r}", flush=True)
    print(f"\ndocstrings_reverse, lines of <= {args.source_len} characters; {args.steps} steps of batch "
          f"{args.batch_size}, lr {args.learning_rate}; BLEU on {args.examples} test lines; beam "
          f"{args.beam_width}, alpha {args.alpha}, beta {args.beta} (coverage where attention is reported)")
    print(f"{'model':20s} {'params':>9s} {'seconds':>8s} {'test loss':>9s} {'tok acc':>8s} "
          f"{'BLEU greedy':>11s} {'BLEU beam':>9s}")
    for name, row in rows.items():
        print(f"{name:20s} {row['params']:9d} {row['seconds']:8.0f} {row['loss']:9.3f} {row['accuracy']:8.3f} "
              f"{row['greedy']:11.1f} {row['beam']:9.1f}")


if __name__ == "__main__":
    main()
