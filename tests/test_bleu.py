"""keras_zoo.metrics.bleu.corpus_bleu against sacrebleu (the oracle) on ordinary and edge-case corpora."""
import random

import pytest
import sacrebleu

from keras_zoo.metrics.bleu import corpus_bleu, corpus_statistics

pytestmark = pytest.mark.both


def _sacrebleu(hypotheses, references, smooth):
    return sacrebleu.corpus_bleu(
        hypotheses, [references], tokenize="none", force=True,
        smooth_method="exp" if smooth else "none",
    ).score


CORPORA = {
    "identical": (["the cat sat on the mat", "a b c d e"], ["the cat sat on the mat", "a b c d e"]),
    "partial": (
        ["the cat is on the mat today", "there is a dog in the garden"],
        ["the cat sat on the mat", "a dog is in the garden"],
    ),
    "short_hypothesis_brevity": (["the cat on the"], ["the cat sat on the mat again and again"]),
    "long_hypothesis": (["a a a a b b b b c c c"], ["a b c d"]),
    "clipping": (["the the the the the the the"], ["the cat is on the mat"]),
    "no_4gram_match": (["a b c x d e f"], ["a b c y d e f"]),
    "no_match": (["x y z w"], ["a b c d"]),
    "too_short_for_4grams": (["a b c"], ["a b c"]),
    "empty_hypothesis": (["", "a b c d e"], ["a b c d", "a b c d e"]),
    "all_empty_hypotheses": (["", ""], ["a b", "c d"]),
    "punctuation_as_tokens": (["hello , world !"], ["hello , world ."]),
    "extra_whitespace": (["  the  cat sat   on the mat "], ["the cat sat on the mat"]),
}


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_matches_sacrebleu(corpus, smooth):
    hypotheses, references = CORPORA[corpus]
    assert corpus_bleu(hypotheses, references, smooth=smooth) == pytest.approx(
        _sacrebleu(hypotheses, references, smooth), abs=1e-9
    )


@pytest.mark.parametrize("smooth", [False, True])
def test_matches_sacrebleu_on_random_corpora(smooth):
    rng = random.Random(0)
    vocabulary = "a b c d e f g".split()
    for _ in range(25):
        size = rng.randint(1, 6)
        hypotheses = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 12))) for _ in range(size)]
        references = [" ".join(rng.choices(vocabulary, k=rng.randint(1, 12))) for _ in range(size)]
        assert corpus_bleu(hypotheses, references, smooth=smooth) == pytest.approx(
            _sacrebleu(hypotheses, references, smooth), abs=1e-9
        )


def test_is_corpus_level_not_mean_of_sentences():
    hypotheses = ["a b c d e f", "x y z w"]
    references = ["a b c d e f", "x y q w"]
    sentence_scores = [corpus_bleu([h], [r]) for h, r in zip(hypotheses, references)]
    assert sentence_scores == [pytest.approx(100.0), 0.0]
    corpus = corpus_bleu(hypotheses, references)
    assert 0.0 < corpus < 100.0
    assert corpus != pytest.approx(sum(sentence_scores) / 2)


def test_statistics_clip_repeated_ngrams():
    matches, totals, hyp_length, ref_length = corpus_statistics(["the the the"], ["the cat the"])
    assert matches[0] == 2 and totals[0] == 3
    assert (hyp_length, ref_length) == (3, 3)


def test_returns_python_float_in_range():
    score = corpus_bleu(["a b c d e"], ["a b c d f"])
    assert isinstance(score, float) and 0.0 <= score <= 100.0


def test_mismatched_lengths_and_bare_strings_are_rejected():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(["a b"], ["a b", "c d"])
    with pytest.raises(TypeError, match="lists of strings"):
        corpus_bleu("a b c", "a b c")
