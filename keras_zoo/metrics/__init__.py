"""Metrics that Keras lacks, one module per kind of task.

- ``language``: bits per token and perplexity of next-token predictions.
- ``bleu``: corpus BLEU (Papineni et al. 2002) on whitespace-tokenized text.
"""
from keras_zoo.metrics.bleu import corpus_bleu
from keras_zoo.metrics.language import BitsPerToken, Perplexity

__all__ = ["BitsPerToken", "Perplexity", "corpus_bleu"]
