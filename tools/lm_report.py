"""Word-level language models side by side on docstrings_word, same budget each.

    python tools/lm_report.py [--steps=150 --units=128 --seq_len=35 --batch_size=32]

Trains rnn_lm (LSTM, arXiv:1409.2329), qrnn_lm_word (arXiv:1611.01576),
pointer_sentinel_lm (arXiv:1609.07843) and lightrnn_lm (arXiv:1610.09893, with
epoch-end word reallocation) through ``python -m training.train`` at the same
width, sequence length, batch size, optimizer and number of steps, and prints
held-out (test split) perplexity, parameters and wall time as a markdown table.
The transformer and ByteNet families are left out: they do not take
docstrings_word with ``--model=NAME`` alone.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("rnn_lm", "qrnn_lm_word", "pointer_sentinel_lm", "lightrnn_lm")
EXTRA_FLAGS = {"lightrnn_lm": ["--lightrnn_reallocation_batches=20"]}


def run(name, args, out_dir):
    overrides = {"embedding_dim": args.units, "units": args.units, "seq_len": args.seq_len}
    model_dir = os.path.join(out_dir, name)
    command = [sys.executable, "-m", "training.train", f"--model={name}", "--dataset=docstrings_word",
               f"--model_dir={model_dir}", f"--epochs={args.epochs}", f"--steps_per_epoch={args.steps // args.epochs}",
               f"--batch_size={args.batch_size}", "--optimizer=adam", f"--learning_rate={args.learning_rate}",
               f"--validation_steps={args.eval_batches}", f"--overrides={json.dumps(overrides)}",
               *EXTRA_FLAGS.get(name, [])]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(model_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {"model": name, "test_perplexity": metrics["test"]["perplexity"], "seconds": time.time() - start,
            "unigram_bits": metrics.get("baselines", {}).get("unigram_baseline_bits_per_token_test")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--seq_len", type=int, default=35)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--eval_batches", type=int, default=20)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    out_dir = tempfile.mkdtemp(prefix="lm_report_")
    rows = [run(name, args, out_dir) for name in args.models.split(",")]
    unigram = rows[0]["unigram_bits"]
    print(f"docstrings_word, {args.steps} steps of batch {args.batch_size} x {args.seq_len}, width {args.units}; "
          f"unigram baseline perplexity {2 ** unigram:.1f}" if unigram else "")
    print("| model | test perplexity | seconds |\n|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['test_perplexity']:.1f} | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
