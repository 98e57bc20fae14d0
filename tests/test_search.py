"""Greedy and beam search on small step models whose probabilities are written down."""
import numpy as np
import pytest

from rnnlab.search import beam_search, decode, greedy_decode

BOS, EOS = 1, 2


class TableModel:
    """A step model whose next-token distribution depends on the previous token and the source:
    log p(next | prev, source row) = table[source id, prev]. State: the previous token and the
    source id; attention: a fixed pattern that shifts with the step."""

    def __init__(self, table):
        self.table = np.log(np.asarray(table, dtype=np.float64))

    def init_decode(self, src, src_mask):
        return {"source": src[:, 0].copy(), "step": np.zeros(len(src), dtype=np.int64),
                "width": np.full(len(src), src.shape[1])}

    def decode_step(self, state, tokens):
        logp = self.table[state["source"], tokens]
        width = int(state["width"][0])
        attn = np.eye(width)[np.minimum(state["step"], width - 1)]
        return logp, {**state, "step": state["step"] + 1}, attn


def random_table(rng, sources=3, vocab=6):
    p = rng.random((sources, vocab, vocab)) + 0.05
    p[:, :, 0] = 1e-12  # never padding
    p[:, :, BOS] = 1e-12  # never <bos>
    return p / p.sum(axis=-1, keepdims=True)


def test_beam_width_one_equals_greedy():
    model = TableModel(random_table(np.random.default_rng(0)))
    src = np.array([[0, 5], [1, 5], [2, 5]])
    greedy = greedy_decode(model, src, None, max_len=8, bos_id=BOS, eos_id=EOS)
    beam = beam_search(model, src, None, beam_width=1, max_len=8, bos_id=BOS, eos_id=EOS)
    assert greedy.tokens == beam.tokens
    np.testing.assert_allclose(greedy.scores, beam.scores)
    for a, b in zip(greedy.attention, beam.attention):
        np.testing.assert_array_equal(a, b)


def test_greedy_follows_the_argmax_and_stops_at_the_end_token():
    # prev -> most likely next: bos -> 3 -> 4 -> eos
    p = np.full((1, 5, 5), 0.1)
    p[0, BOS, 3] = p[0, 3, 4] = p[0, 4, EOS] = 0.6
    model = TableModel(p / p.sum(-1, keepdims=True))
    out = greedy_decode(model, np.array([[0, 0, 0, 0, 0]]), None, max_len=10, bos_id=BOS, eos_id=EOS)
    assert out.tokens == [[3, 4]]
    assert out.attention[0].shape == (3, 5)  # 2 tokens + the end token
    np.testing.assert_allclose(out.scores[0], np.log(0.6 / 1.0) * 3, rtol=1e-6)


def test_max_len_cuts_unfinished_output():
    p = np.full((1, 4, 4), 0.01)
    p[0, :, 3] = 0.97  # always 3, never the end
    model = TableModel(p / p.sum(-1, keepdims=True))
    for width in (1, 3):
        out = decode(model, np.zeros((1, 2), dtype=np.int64), None, max_len=4, bos_id=BOS, eos_id=EOS,
                     beam_width=width)
        assert out.tokens == [[3, 3, 3, 3]]


def test_beam_finds_a_higher_scoring_sequence_than_greedy():
    # From <bos>: A (3) 0.55, B (4) 0.45. After A everything is flat (eos 0.34); after B the end is
    # almost certain (0.9). Greedy takes A and ends with p = 0.55 * 0.34 = 0.187; the best
    # sequence is B <eos> with p = 0.45 * 0.9 = 0.405.
    eps = 1e-9
    p = np.full((1, 5, 5), eps)
    p[0, BOS, 3], p[0, BOS, 4] = 0.55, 0.45
    p[0, 3, EOS], p[0, 3, 3], p[0, 3, 4] = 0.34, 0.33, 0.33
    p[0, 4, EOS], p[0, 4, 3], p[0, 4, 4] = 0.9, 0.05, 0.05
    p[0, EOS] = 1.0 / 5
    model = TableModel(p)
    src = np.zeros((1, 3), dtype=np.int64)
    greedy = greedy_decode(model, src, None, max_len=5, bos_id=BOS, eos_id=EOS)
    beam = beam_search(model, src, None, beam_width=2, max_len=5, bos_id=BOS, eos_id=EOS)
    assert greedy.tokens == [[3]]
    assert beam.tokens == [[4]]
    assert beam.scores[0] > greedy.scores[0]
    np.testing.assert_allclose(beam.scores[0], np.log(0.45 * 0.9), rtol=1e-6)


def test_length_penalty_trades_length_against_probability():
    # <bos> -> eos directly with p 0.4, or 3 (0.6) then eos (0.6): totals 0.4 vs 0.36; the
    # longer 3 4 eos has 0.6 * 0.4 * 0.5 = 0.12.
    p = np.full((1, 5, 5), 1e-9)
    p[0, BOS, EOS], p[0, BOS, 3] = 0.4, 0.6
    p[0, 3, EOS], p[0, 3, 4] = 0.6, 0.4
    p[0, 4, EOS], p[0, 4, 3] = 0.5, 0.5
    model = TableModel(p)
    src = np.zeros((1, 2), dtype=np.int64)
    plain = beam_search(model, src, None, 3, 6, BOS, EOS, length_penalty=0.0)
    per_token = beam_search(model, src, None, 3, 6, BOS, EOS, length_penalty=1.0)
    assert plain.tokens == [[]]  # log 0.4 > log 0.36
    assert per_token.tokens == [[3]]  # log(0.36) / 2 > log(0.4) / 1


def test_beam_search_is_exact_on_small_random_models():
    """Brute force over all sequences up to length 3: a wide beam finds the best."""
    import itertools
    rng = np.random.default_rng(1)
    table = random_table(rng, sources=2, vocab=5)
    model = TableModel(table)
    src = np.array([[0, 0], [1, 0]])
    out = beam_search(model, src, None, beam_width=25, max_len=3, bos_id=BOS, eos_id=EOS, length_penalty=0.0)
    logt = np.log(table)
    for row in range(2):
        best = -np.inf
        for length in range(0, 3):
            for seq in itertools.product([3, 4], repeat=length):
                prev, total = BOS, 0.0
                for tok in (*seq, EOS):
                    total += logt[row, prev, tok]
                    prev = tok
                best = max(best, total)
        assert out.scores[row] == pytest.approx(best)


def test_bad_beam_width():
    with pytest.raises(ValueError, match="beam width"):
        beam_search(TableModel(np.ones((1, 3, 3)) / 3), np.zeros((1, 1), dtype=np.int64), None, 0, 3, BOS, EOS)
