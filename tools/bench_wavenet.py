"""Fast WaveNet generation (arXiv:1611.09482) against naive generation, measured in one run.

Naive generation reruns the full convolutional model over the whole prefix for
every new sample (O(receptive field) per sample); cached generation runs the
single-step model with per-layer queues (O(layers) per sample). Both are primed
with the same receptive-field-long random prefix and decode greedily, so they
must produce the same samples, which is checked. The per-sample time is the
marginal cost ``(t(n2) - t(n1)) / (n2 - n1)``, which cancels graph building and
tracing.

    python tools/bench_wavenet.py [--layers_per_block=10] [--num_blocks=1]
"""
import argparse
import time

import numpy as np


def _timed(fn):
    """(wall seconds, process CPU seconds, result); CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_blocks", type=int, default=1)
    parser.add_argument("--layers_per_block", type=int, default=10)
    parser.add_argument("--residual_channels", type=int, default=32)
    parser.add_argument("--skip_channels", type=int, default=256)
    args = parser.parse_args()

    from keras_zoo.models.wavenet import WaveNet, generate, receptive_field

    config = dict(num_blocks=args.num_blocks, layers_per_block=args.layers_per_block,
                  residual_channels=args.residual_channels, dilation_channels=args.residual_channels,
                  skip_channels=args.skip_channels)
    field = receptive_field(args.num_blocks, args.layers_per_block)
    model = WaveNet(**config)
    prime = np.random.default_rng(0).integers(0, 256, (1, field)).astype("int32")
    runs = {"naive (full model per sample)": (False, 4, 24), "cached queues (Fast WaveNet)": (True, 20, 420)}
    per_sample, first = {}, {}
    for label, (cached, n1, n2) in runs.items():
        w1, c1, samples = _timed(lambda: generate(model, n1, config=config, prime=prime, cached=cached,
                                                  greedy=True))
        w2, c2, _ = _timed(lambda: generate(model, n2, config=config, prime=prime, cached=cached, greedy=True))
        per_sample[label] = ((w2 - w1) / (n2 - n1), (c2 - c1) / (n2 - n1))
        first[label] = samples[0, :4]
    (naive_wall, naive_cpu), _ = per_sample.values()
    agree = np.array_equal(*first.values())

    print(f"WaveNet: {args.num_blocks} x {args.layers_per_block} layers, residual {args.residual_channels}, "
          f"skip {args.skip_channels}, receptive field {field} samples, batch 1, greedy")
    print(f"{'method':<32}{'wall ms/sample':>15}{'speed-up':>10}{'CPU ms/sample':>15}{'speed-up':>10}")
    for label, (wall, cpu) in per_sample.items():
        print(f"{label:<32}{1000 * wall:>15.2f}{naive_wall / wall:>9.1f}x{1000 * cpu:>15.2f}{naive_cpu / cpu:>9.1f}x")
    print(f"same samples from both methods: {agree}")
    if not agree:
        raise SystemExit("cached and naive generation disagree")


if __name__ == "__main__":
    main()
