"""Corpus-level BLEU (Papineni et al., 2002, ACL "BLEU: a Method for Automatic
Evaluation of Machine Translation").

The score is computed from corpus-level sufficient statistics: clipped n-gram
matches and hypothesis n-gram totals summed over all segments for n = 1..4, the
summed hypothesis and reference lengths for the brevity penalty. Inputs are
already tokenized: tokens are whitespace-separated, nothing else is normalized
(the same as sacrebleu with ``tokenize="none"``).
"""
import collections
import math

MAX_ORDER = 4


def _ngram_counts(tokens, max_order):
    counts = collections.Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def corpus_statistics(hypotheses, references, max_order=MAX_ORDER):
    """Sufficient statistics of BLEU.

    Returns:
        ``(matches, totals, hypothesis_length, reference_length)`` where
        ``matches[n - 1]`` counts hypothesis n-grams also in the reference
        (clipped to their reference count) and ``totals[n - 1]`` counts all
        hypothesis n-grams, summed over the corpus.
    """
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError(
            "`hypotheses` and `references` must be lists of strings (one segment each), "
            "not a single string. Wrap one segment in a list. "
            f"Received: hypotheses={type(hypotheses).__name__}, references={type(references).__name__}"
        )
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            "`hypotheses` and `references` must have one reference per hypothesis. "
            f"Received: {len(hypotheses)} hypotheses and {len(references)} references."
        )
    matches, totals = [0] * max_order, [0] * max_order
    hyp_length = ref_length = 0
    for hypothesis, reference in zip(hypotheses, references):
        hyp_tokens, ref_tokens = hypothesis.split(), reference.split()
        hyp_length += len(hyp_tokens)
        ref_length += len(ref_tokens)
        hyp_counts = _ngram_counts(hyp_tokens, max_order)
        ref_counts = _ngram_counts(ref_tokens, max_order)
        for ngram, count in hyp_counts.items():
            totals[len(ngram) - 1] += count
            matches[len(ngram) - 1] += min(count, ref_counts.get(ngram, 0))
    return matches, totals, hyp_length, ref_length


def corpus_bleu(hypotheses, references, smooth=False):
    """Corpus BLEU-4 in [0, 100], one reference per hypothesis.

    Args:
        hypotheses: list of whitespace-tokenized hypothesis strings.
        references: list of whitespace-tokenized reference strings, aligned
            with ``hypotheses``.
        smooth: False gives the plain score of Papineni et al. (0 when some
            n-gram order has no match). True applies the NIST geometric
            smoothing (method 3 of Chen & Cherry, 2014, WMT "A Systematic
            Comparison of Smoothing Techniques for Sentence-Level BLEU"): the
            k-th order without matches gets precision 1 / (2^k * total).

    Returns:
        The score as a Python float; sacrebleu's ``corpus_bleu(hypotheses,
        [references], tokenize="none", smooth_method="none" or "exp")`` agrees.
    """
    matches, totals, hyp_length, ref_length = corpus_statistics(hypotheses, references)
    if hyp_length == 0 or not any(matches):
        return 0.0
    brevity_penalty = 1.0 if hyp_length >= ref_length else math.exp(1.0 - ref_length / hyp_length)
    log_precision_sum = 0.0
    smoothing_denominator = 1.0
    for match, total in zip(matches, totals):
        if total == 0:
            # The corpus has no n-grams of this order at all: BLEU-4 is undefined, scored 0.
            return 0.0
        if match == 0:
            if not smooth:
                return 0.0
            smoothing_denominator *= 2.0
            log_precision_sum += math.log(1.0 / (smoothing_denominator * total))
        else:
            log_precision_sum += math.log(match / total)
    return 100.0 * brevity_penalty * math.exp(log_precision_sum / MAX_ORDER)
