"""Search for the best output of a conditional language model: greedy search and beam search.

Both work with any *step model*, an object with three methods (``Seq2Seq`` has them):

- ``init_decode(src, src_mask) -> state``: encode a batch of sources; ``state`` is a dict of
  arrays whose first axis is the batch row;
- ``decode_step(state, tokens) -> (log_probs, state, attention)``: feed the previous tokens
  (N,) and get log-probabilities (N, V) of the next one, the new state, and the attention
  weights of this step (N, S) (or None for a model without attention);
- ``select_state(state, rows) -> state``: the state of the given rows (beam search uses it to
  copy a sentence's state into its beams and to follow the surviving hypotheses).

Greedy search takes the most probable token at each step. Beam search keeps the ``beam_width``
best partial hypotheses by total log-probability; a hypothesis ends when it emits ``eos_id``,
and the finished ones are compared by ``log p / length ** length_penalty`` (length counting
the end token): with 0 the plain total, which favours short outputs; with 1 the mean per
token. A sentence stops once it has ``beam_width`` finished hypotheses or ``max_len`` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import backend


@dataclass
class Decoded:
    """Decoding results, one entry per source row: token ids (end token removed), total
    log-probability, and attention weights (steps, S) with one row per emitted token including
    the end token (None without attention)."""
    tokens: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    attention: list = field(default_factory=list)


def _select(model, state, rows):
    if hasattr(model, "select_state"):
        return model.select_state(state, rows)
    return {k: (v[rows] if v is not None else None) for k, v in state.items()}


def greedy_decode(model, src, src_mask, max_len: int, bos_id: int, eos_id: int) -> Decoded:
    """Most probable token at each step, for a whole batch at once."""
    xp = backend.xp
    n = int(src.shape[0])
    state = model.init_decode(src, src_mask)
    tokens = xp.full((n,), bos_id, dtype=np.int64)
    out = np.zeros((n, max_len), dtype=np.int64)
    scores = np.zeros(n)
    lengths = np.full(n, max_len)
    done = np.zeros(n, dtype=bool)
    attention = []
    for t in range(max_len):
        logp, state, attn = model.decode_step(state, tokens)
        tokens = logp.argmax(axis=-1)
        host_tokens = backend.to_numpy(tokens)
        best = backend.to_numpy(logp[xp.arange(n), tokens])
        scores[~done] += best[~done]
        out[:, t] = host_tokens
        if attn is not None:
            attention.append(backend.to_numpy(attn))
        ended = (host_tokens == eos_id) & ~done
        lengths[ended] = t
        done |= ended
        if done.all():
            break
    result = Decoded()
    for i in range(n):
        length = int(lengths[i])
        result.tokens.append(out[i, :length].tolist())
        result.scores.append(float(scores[i]))
        steps = min(length + 1, len(attention))
        result.attention.append(np.stack([a[i] for a in attention[:steps]]) if attention else None)
    return result


def beam_search(model, src, src_mask, beam_width: int, max_len: int, bos_id: int, eos_id: int,
                length_penalty: float = 1.0) -> Decoded:
    """The best hypothesis per source row by beam search (see the module docstring)."""
    xp = backend.xp
    if beam_width < 1:
        raise ValueError(f"beam width must be at least 1, got {beam_width}")
    n, k = int(src.shape[0]), int(beam_width)
    state = model.init_decode(src, src_mask)
    state = _select(model, state, xp.asarray(np.repeat(np.arange(n), k)))
    # only the first beam of each sentence is alive at the start: the others are copies
    scores = np.full((n, k), -np.inf)
    scores[:, 0] = 0.0
    tokens = np.full((n, k), bos_id, dtype=np.int64)
    history = np.zeros((n, k, 0), dtype=np.int64)
    attn_history = None
    finished: list[list] = [[] for _ in range(n)]
    active = np.ones(n, dtype=bool)

    def normalized(total, length):
        return total / (length ** length_penalty) if length_penalty else total

    for t in range(max_len):
        logp, state, attn = model.decode_step(state, xp.asarray(tokens.reshape(-1)))
        logp = backend.to_numpy(logp).astype(np.float64).reshape(n, k, -1)
        vocab = logp.shape[-1]
        if attn is not None:
            attn = backend.to_numpy(attn).reshape(n, k, 1, -1)
            attn_history = attn if attn_history is None else np.concatenate([attn_history, attn], axis=2)
        candidates = (scores[:, :, None] + logp).reshape(n, k * vocab)
        # the 2k best: at most k of them end here, so at least k stay alive
        top = np.argsort(-candidates, axis=1, kind="stable")[:, :2 * k]
        top_scores = np.take_along_axis(candidates, top, axis=1)
        beam, token = top // vocab, top % vocab
        is_end = token == eos_id
        for i in np.flatnonzero(active):
            # a hypothesis ending among the k best candidates is finished
            for j in np.flatnonzero(is_end[i, :k]):
                if np.isfinite(top_scores[i, j]):
                    b = beam[i, j]
                    finished[i].append((normalized(top_scores[i, j], t + 1), float(top_scores[i, j]),
                                        history[i, b].tolist(),
                                        attn_history[i, b] if attn_history is not None else None))
            if len(finished[i]) >= k:
                active[i] = False
        # the k best candidates that do not end continue
        rank = np.cumsum(~is_end, axis=1)
        keep = ~is_end & (rank <= k)
        chosen = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        new_beam = np.take_along_axis(beam, chosen, axis=1)
        tokens = np.take_along_axis(token, chosen, axis=1)
        scores = np.take_along_axis(top_scores, chosen, axis=1)
        scores[~np.take_along_axis(keep, chosen, axis=1)] = -np.inf  # fewer than k candidates left
        scores[~active] = -np.inf
        history = np.concatenate([np.take_along_axis(history, new_beam[:, :, None], axis=1),
                                  tokens[:, :, None]], axis=2)
        if attn_history is not None:
            attn_history = np.take_along_axis(attn_history, new_beam[:, :, None, None], axis=1)
        if not active.any():
            break
        rows = (np.arange(n)[:, None] * k + new_beam).reshape(-1)
        state = _select(model, state, xp.asarray(rows))
    result = Decoded()
    for i in range(n):
        if not finished[i]:  # nothing ended within max_len: take the best unfinished hypothesis
            b = int(np.argmax(scores[i]))
            finished[i].append((normalized(scores[i, b], max_len), float(scores[i, b]), history[i, b].tolist(),
                                attn_history[i, b] if attn_history is not None else None))
        best = max(finished[i], key=lambda h: h[0])
        result.tokens.append(best[2])
        result.scores.append(best[1])
        result.attention.append(best[3])
    return result


def decode(model, src, src_mask, max_len: int, bos_id: int, eos_id: int, beam_width: int = 1,
           length_penalty: float = 1.0) -> Decoded:
    """Greedy search for ``beam_width`` 1, beam search otherwise."""
    if beam_width <= 1:
        return greedy_decode(model, src, src_mask, max_len, bos_id, eos_id)
    return beam_search(model, src, src_mask, beam_width, max_len, bos_id, eos_id, length_penalty)


class StepEnsemble:
    """Several step models over one target vocabulary, decoding as one step model: at every step
    the members' next-token probabilities are averaged,

        log p(y | ...) = log (1/M) sum_m p_m(y | ...)      (as a log-sum-exp of the log-probs)

    so ``greedy_decode`` and ``beam_search`` run on an ensemble unchanged. Each member keeps its
    own state (the ensemble's state is the list of theirs); attention weights are averaged when
    every member has them, else None. Members independently trained make partly independent
    errors, which averaging cancels (``train/ensemble.py``)."""

    def __init__(self, members):
        self.members = list(members)
        if not self.members:
            raise ValueError("StepEnsemble: give at least one member model")
        first = self.members[0]
        self.bos_id, self.eos_id = getattr(first, "bos_id", None), getattr(first, "eos_id", None)
        for member in self.members[1:]:
            if (getattr(member, "bos_id", None), getattr(member, "eos_id", None)) != (self.bos_id, self.eos_id):
                raise ValueError(f"StepEnsemble: the members' start / end tokens differ ({self.bos_id}, "
                                 f"{self.eos_id} and {member.bos_id}, {member.eos_id}): they must share a vocabulary")

    def search(self, src, src_mask=None, max_len: int = 50, beam_width: int = 1,
               length_penalty: float = 1.0) -> Decoded:
        """Greedy (``beam_width`` 1) or beam search of the ensemble, every member in eval mode
        (each member's mode is restored after)."""
        modes = [member.training for member in self.members]
        for member in self.members:
            member.eval()
        try:
            return decode(self, src, src_mask, max_len, self.bos_id, self.eos_id, beam_width, length_penalty)
        finally:
            for member, mode in zip(self.members, modes):
                member.train(mode)

    translate_batch = search       # the name seq2seq evaluation calls (``Seq2Seq.translate_batch``)

    def init_decode(self, src, src_mask=None) -> list:
        return [member.init_decode(src, src_mask) for member in self.members]

    def decode_step(self, state, tokens):
        xp = backend.xp
        steps = [member.decode_step(s, tokens) for member, s in zip(self.members, state)]
        logps = xp.stack([logp for logp, _, _ in steps])            # (M, N, V)
        top = logps.max(axis=0)
        logp = top + xp.log(xp.exp(logps - top).mean(axis=0))
        weights = [attention for _, _, attention in steps]
        attention = None if any(w is None for w in weights) else sum(weights) / len(weights)
        return logp, [s for _, s, _ in steps], attention

    def select_state(self, state, rows) -> list:
        return [_select(member, s, rows) for member, s in zip(self.members, state)]
