"""Generated datasets: seeded, distinct, correct answers, every date format parses back."""
import datetime as dt
import re

import numpy as np
import pytest

from rnnlab.data import generated


def test_addition_answers_are_sums_and_questions_distinct():
    pairs = generated.addition(2000, seed=1)
    assert len({s for s, _ in pairs}) == 2000
    for source, target in pairs:
        assert re.fullmatch(r"\d{1,3}\+\d{1,3}", source)
        a, b = map(int, source.split("+"))
        assert int(target) == a + b and target == str(a + b)
    assert generated.addition(50, seed=1) == pairs[:50]  # same seed, same data
    assert generated.addition(50, seed=2) != pairs[:50]


def test_addition_operands_have_one_to_three_digits():
    lengths = {len(s.split("+")[0]) for s, _ in generated.addition(500, seed=0)}
    assert lengths == {1, 2, 3}  # short operands are as common as long ones


def _parse_human(source: str) -> dt.date:
    """An independent reader of the human formats (no shared code with the generator)."""
    months = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
              "october", "november", "december"]
    s = source.lower()
    s = re.sub(r"^(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun), ", "", s)
    if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", s):
        mo, d, y = int(m[1]), int(m[2]), m[3]
    elif m := re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", s):
        d, mo, y = int(m[1]), int(m[2]), m[3]
    elif m := re.fullmatch(r"the (\d{1,2})(st|nd|rd|th) of ([a-z]+) (\d{4})", s):
        d, mo, y = int(m[1]), [x for x in months if x == m[3]][0], m[4]
        mo = months.index(mo) + 1
    elif m := re.fullmatch(r"([a-z]+) (\d{1,2}), (\d{4})", s):
        mo, d, y = [i + 1 for i, x in enumerate(months) if x.startswith(m[1])][0], int(m[2]), m[3]
    elif m := re.fullmatch(r"(\d{1,2}) ([a-z]+) (\d{2}|\d{4})", s):
        d, mo, y = int(m[1]), [i + 1 for i, x in enumerate(months) if x.startswith(m[2])][0], m[3]
    else:
        raise AssertionError(f"unparsed {source!r}")
    year = int(y) if len(y) == 4 else (1900 + int(y) if int(y) >= 50 else 2000 + int(y))
    return dt.date(year, mo, d)


def test_dates_every_format_gives_the_right_iso_date():
    pairs = generated.dates(3000, seed=3)
    assert len({s for s, _ in pairs}) == 3000
    for source, target in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        day = _parse_human(source)
        assert day.isoformat() == target, source
        if re.match(r"[A-Za-z]+, ", source):  # a weekday is the true weekday
            assert source.split(",")[0].lower()[:3] == day.strftime("%A").lower()[:3]
    assert len(generated.DATE_FORMATS) >= 8


def test_dates_use_every_format_and_the_whole_range():
    pairs = generated.dates(4000, seed=0)
    seen = set()
    for name, fmt in generated.DATE_FORMATS.items():
        d = dt.date(1994, 9, 27)
        seen.add(fmt(d))
    assert len(seen) == len(generated.DATE_FORMATS)  # the formats differ
    years = [int(t[:4]) for _, t in pairs]
    assert min(years) < 1955 and max(years) > 2044
    shapes = {re.sub(r"[a-z]+", "a", re.sub(r"[A-Z][a-z]+", "Aa", re.sub(r"[A-Z]{2,}", "A", re.sub(r"\d+", "9", s))))
              for s, _ in pairs}
    assert len(shapes) >= 8


def test_dates_select_formats_and_reject_unknown():
    pairs = generated.dates(20, seed=0, formats=["dd.mm.yyyy"])
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4}", s) for s, _ in pairs)
    with pytest.raises(ValueError, match="unknown date formats"):
        generated.dates(5, formats=["yyyy"])
    with pytest.raises(ValueError, match="at least 1"):
        generated.dates(0)


def test_adding_problem_targets_are_the_marked_sums():
    x, y = generated.adding_problem(50, length=12, seed=0)
    assert x.shape == (50, 12, 2) and y.shape == (50, 1)
    assert (x[:, :, 1].sum(axis=1) == 2).all()
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)


def test_copy_task_output_repeats_the_input_after_the_delay():
    x, y = generated.copy_task(10, length=4, delay=5, n_symbols=8, seed=0)
    assert x.shape == y.shape == (10, 13)
    np.testing.assert_array_equal(y[:, 9:], x[:, :4])
    assert (y[:, :9] == 0).all() and (x[:, 8] == 9).all()
    pairs = generated.copy_pairs(5, seed=0)
    assert all(s == t for s, t in pairs)


def test_write_tsv_round_trip(tmp_path):
    from rnnlab.data.pairs import read_pairs
    pairs = generated.dates(30, seed=4)
    path = generated.write_tsv(pairs, tmp_path / "d.tsv")
    assert read_pairs(path) == pairs
