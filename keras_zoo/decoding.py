"""Greedy and beam-search decoding for any step-wise sequence model.

A model is seen through a ``step_fn(tokens, state) -> (log_probs, new_state, attention)``:
``tokens`` are the last tokens of N hypotheses (int32, (N,)), ``state`` a list of arrays
whose first dimension is N (recurrent states, attention memory, or the token prefix
of a model that re-reads it), ``log_probs`` the (N, vocab) next-token log-probabilities
and ``attention`` the (N, source_len) attention weights of this step, or None.

Beam search scores finished hypotheses as in GNMT (Wu et al., 2016, arXiv:1609.08144,
section 7): ``s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)`` with the length penalty
``lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha`` and the coverage penalty
``cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1))`` (p_ij: attention of target step j on
source position i). |Y| counts the generated tokens including the end token.
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf


def gnmt_length_penalty(length, alpha):
    """``((5 + length) / 6) ** alpha`` (arXiv:1609.08144, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def gnmt_coverage_penalty(coverage, beta, source_mask=None):
    """``beta * sum_i log(min(coverage_i, 1))`` over the real source positions.

    Args:
        coverage: (..., source_len) attention summed over the target steps.
        beta: penalty weight; 0 disables it.
        source_mask: optional (source_len,) 1 for real positions, 0 for padding.
    """
    if beta == 0.0:
        return 0.0
    # A real source word is never attended with weight exactly 0; the floor only guards log(0).
    logs = np.log(np.clip(np.minimum(coverage, 1.0), 1e-12, None))
    if source_mask is not None:
        logs = logs * np.asarray(source_mask, dtype=logs.dtype)
    return beta * logs.sum(-1)


def dynamic_unfolding_length(source_length, a=1.2, b=0):
    """ByteNet's target length bound ``|t_hat| = a |s| + b`` (arXiv:1610.10099, section 3.2)."""
    return int(math.ceil(a * source_length + b))


@dataclasses.dataclass
class Hypothesis:
    """One decoded sequence: ``tokens`` (without the start token, with the end token if
    it was produced), its total ``log_prob`` and its beam ``score``."""

    tokens: list
    log_prob: float
    score: float
    finished: bool


def _gather(state, indices):
    return [np.asarray(s)[indices] for s in state]


def greedy_search(step_fn, state, start_tokens, end_id, max_length):
    """Picks the most probable token at each step, for a batch of N sequences.

    Args:
        step_fn: see the module docstring.
        state: initial state, a list of arrays with first dimension N.
        start_tokens: (N,) int32 first input tokens (the start-of-sequence id).
        end_id: the end-of-sequence id; a sequence stops after producing it.
        max_length: most tokens generated per sequence.

    Returns:
        ``(tokens, log_probs)``: (N, L) int32 tokens, each row padded with ``end_id``
        after its first ``end_id``, and (N,) summed log-probabilities.
    """
    tokens = np.asarray(start_tokens, dtype=np.int32)
    done = np.zeros(len(tokens), dtype=bool)
    total = np.zeros(len(tokens))
    outputs = []
    for _ in range(max_length):
        log_probs, state, _ = step_fn(tokens, state)
        log_probs = np.asarray(log_probs)
        tokens = np.where(done, end_id, log_probs.argmax(-1)).astype(np.int32)
        total += np.where(done, 0.0, log_probs[np.arange(len(tokens)), tokens])
        outputs.append(tokens)
        done |= tokens == end_id
        if done.all():
            break
    return np.stack(outputs, 1), total


def beam_search(step_fn, state, start_id, end_id, beam_width, max_length,
                length_penalty=0.0, coverage_penalty=0.0, source_mask=None):
    """Beam search for one input, GNMT scoring.

    At every step each live hypothesis is extended by every token; the
    ``beam_width`` extensions with the highest log-probability are kept. Those that
    end in ``end_id`` are finished and scored with the length and coverage
    penalties; the others stay live. At ``max_length`` the live ones are finished as
    they are. With ``beam_width >= vocab ** max_length`` nothing is pruned and the
    result is the exact optimum of the score.

    Args:
        step_fn: see the module docstring; called with up to ``beam_width`` rows.
        state: initial state for this one input (first dimension 1).
        start_id: start-of-sequence id fed at the first step.
        end_id: end-of-sequence id.
        beam_width: hypotheses kept per step.
        max_length: most tokens generated.
        length_penalty: GNMT alpha (0: raw log-probability).
        coverage_penalty: GNMT beta (0: none); needs ``step_fn`` to return attention.
        source_mask: optional (source_len,) mask of real source positions for the
            coverage penalty.

    Returns:
        Finished hypotheses, best score first.
    """
    if beam_width < 1 or max_length < 1:
        raise ValueError("`beam_width` and `max_length` must be positive. "
                         f"Received: beam_width={beam_width}, max_length={max_length}")
    live_tokens = np.full((1, 0), start_id, dtype=np.int32)
    live_log_probs = np.zeros(1)
    coverage = None
    finished = []

    def score(log_prob, length, cov):
        penalty = 0.0 if cov is None else gnmt_coverage_penalty(cov, coverage_penalty, source_mask)
        return float(log_prob / gnmt_length_penalty(length, length_penalty) + penalty)

    for step in range(1, max_length + 1):
        last = live_tokens[:, -1] if step > 1 else np.full(len(live_tokens), start_id, np.int32)
        log_probs, state, attention = step_fn(last.astype(np.int32), state)
        log_probs = np.asarray(log_probs, dtype=np.float64)
        if attention is not None:
            attention = np.asarray(attention, dtype=np.float64)
            coverage = attention if coverage is None else coverage + attention
        vocab = log_probs.shape[-1]
        candidates = (live_log_probs[:, None] + log_probs).reshape(-1)
        order = np.argsort(-candidates, kind="stable")[:beam_width]
        parents, tokens = order // vocab, (order % vocab).astype(np.int32)
        keep = []
        for rank, (parent, token) in enumerate(zip(parents, tokens)):
            sequence = [*live_tokens[parent].tolist(), int(token)]
            cov = coverage[parent] if coverage is not None else None
            if token == end_id or step == max_length:
                finished.append(Hypothesis(sequence, float(candidates[order[rank]]),
                                           score(candidates[order[rank]], step, cov),
                                           finished=bool(token == end_id)))
            else:
                keep.append(rank)
        if not keep:
            break
        keep = np.asarray(keep)
        live_tokens = np.concatenate([live_tokens[parents[keep]], tokens[keep, None]], 1)
        live_log_probs = candidates[order[keep]]
        state = _gather(state, parents[keep])
        if coverage is not None:
            coverage = coverage[parents[keep]]
    return sorted(finished, key=lambda h: -h.score)


def prefix_step_fn(predict_fn, max_length):
    """A ``step_fn`` for models that re-read the whole target prefix every step
    (Transformer, ByteNet): no recurrent state, static shapes.

    Args:
        predict_fn: ``(context, prefix) -> logits (N, max_length, vocab)`` where
            ``context`` is a list of per-hypothesis arrays (e.g. the encoder memory)
            and ``prefix`` the (N, max_length) decoder inputs, padded past the current step.
            The model must be causal: position t may only read the prefix up to t.
        max_length: the decoder's fixed input length.

    The state is ``[*context, prefix, position]``; start it with
    ``initial_prefix_state(context, max_length)``.
    """

    def step_fn(tokens, state):
        *context, prefix, position = state
        prefix = np.array(prefix)
        t = int(position[0])
        if t >= max_length:
            raise ValueError(f"The decoder reads at most {max_length} tokens; decode with "
                             f"max_length <= {max_length}. Received: step {t + 1}")
        prefix[:, t] = tokens
        logits = np.asarray(predict_fn(context, prefix), dtype=np.float64)[:, t]
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        return log_probs, [*context, prefix, position + 1], None

    return step_fn


def initial_prefix_state(context, max_length, pad_id=0):
    """The first state of ``prefix_step_fn`` for a batch of ``len(context[0])`` inputs."""
    batch = len(context[0])
    return [*context, np.full((batch, max_length), pad_id, np.int32), np.zeros(batch, np.int32)]


def compiled_inference(model):
    """``model(inputs, training=False)`` as a ``tf.function``: decoding calls a model once
    per step, and eager Keras calls dominate the time otherwise."""
    return tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)


def step_graph_fn(step_call, num_context):
    """A ``step_fn`` for a single-step decoder graph with explicit state.

    The graph maps ``[token (N, 1), *context, *states]`` to ``[logits (N, vocab),
    *new_states, attention (N, source_len)]``: ``context`` are per-hypothesis arrays that
    stay fixed while decoding (the encoder memory, its padding mask, encoder summaries),
    ``states`` the recurrent state. The search state is ``[*context, *states]``; the
    attention probabilities are passed on for GNMT's coverage penalty.

    Args:
        step_call: ``list of arrays -> list of outputs``, e.g. ``compiled_inference(step)``.
        num_context: how many leading state arrays are context.
    """

    def step_fn(tokens, state):
        context, states = state[:num_context], state[num_context:]
        logits, *rest = step_call([np.asarray(tokens, np.int32)[:, None], *context, *states])
        logits = np.asarray(logits, dtype=np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        new_states, attention = rest[:-1], rest[-1]
        return log_probs, [*context, *(np.asarray(s) for s in new_states)], np.asarray(attention)

    return step_fn


class StepGraphDecoder:
    """Greedy and beam search with an encoder graph and a single-step decoder graph.

    Args:
        encoder: ``keras.Model`` mapping source ids (B, S) to the initial search state
            ``[*context, *states]`` (see ``step_graph_fn``).
        step: the single-step ``keras.Model``.
        num_context: leading encoder outputs that are context.
        start_id, end_id: start- and end-of-sequence ids.
        mask_index: index of the source padding mask in the context (used by the
            coverage penalty), or None.
    """

    def __init__(self, encoder, step, num_context, start_id, end_id, mask_index=None):
        self.encoder, self.step = encoder, step
        self.start_id, self.end_id, self.mask_index = start_id, end_id, mask_index
        self._encoder_fn = compiled_inference(encoder)
        self.step_fn = step_graph_fn(compiled_inference(step), num_context)

    def initial_state(self, source_ids):
        outputs = self._encoder_fn(np.asarray(source_ids, np.int32))
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

    def greedy(self, source_ids, max_length):
        """(B, L) tokens and (B,) log-probabilities for a batch of sources."""
        state = self.initial_state(source_ids)
        start = np.full(len(state[0]), self.start_id, np.int32)
        return greedy_search(self.step_fn, state, start, self.end_id, max_length)

    def beam(self, source_ids, beam_width, max_length, length_penalty=0.0, coverage_penalty=0.0):
        """GNMT-scored beam search for each source row; the hypotheses per row, best first."""
        results = []
        for row in np.asarray(source_ids, np.int32):
            state = self.initial_state(row[None])
            mask = None if self.mask_index is None else state[self.mask_index][0]
            results.append(beam_search(self.step_fn, state, self.start_id, self.end_id, beam_width,
                                       max_length, length_penalty, coverage_penalty, source_mask=mask))
        return results
