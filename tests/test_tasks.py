"""Built-in tasks: right answers, determinism, disjoint splits, parameters, graceful shrinking."""

import datetime as dt
import random
import re

import pytest

from seq2seq.data import build_data
from seq2seq.tasks import ADJECTIVES, DATE_FORMATS, NOUNS, TASKS, VERBS, generate_splits

SMALL = {"n_train": 300, "n_valid": 50, "n_test": 50}


def test_registry():
    assert set(TASKS) == {"copy", "reverse", "sort", "addition", "dates", "translate", "tatoeba"}
    for name, spec in TASKS.items():
        assert spec.name == name and len(spec.description) > 20
        assert spec.tokens == ("word" if name in ("translate", "tatoeba") else "char")
        assert spec.n_train >= 1000 and spec.n_valid >= 100 and spec.n_test >= 100
        src, tgt = spec.example(seed=1)
        assert src and tgt
    assert TASKS["reverse"].params["min_len"] == 5 and TASKS["reverse"].params["max_len"] == 15


@pytest.mark.parametrize("name", list(TASKS))
def test_splits_deterministic_disjoint_and_sized(name):
    a = generate_splits(name, seed=7, **SMALL)
    b = generate_splits(name, seed=7, **SMALL)
    c = generate_splits(name, seed=8, **SMALL)
    assert a == b and a != c and a.notes == []
    srcs = [set(s for s, _ in a[k]) for k in ("train", "valid", "test")]
    if TASKS[name].file is None:
        assert {k: len(v) for k, v in a.items()} == {"train": 300, "valid": 50, "test": 50}
    else:  # a file task counts sources; each comes with all its targets (Tatoeba: several translations)
        assert [len(x) for x in srcs] == [300, 50, 50] and len(a["train"]) > 300
    assert len(srcs[0] | srcs[1] | srcs[2]) == 400  # distinct within and across splits


def test_default_sizes_come_from_the_task():
    s = generate_splits("reverse", seed=0)
    assert (len(s["train"]), len(s["valid"]), len(s["test"])) == (20000, 500, 500)


def test_copy_reverse_sort_answers_and_lengths():
    for name, f in (("copy", lambda x: x), ("reverse", lambda x: x[::-1]), ("sort", lambda x: "".join(sorted(x)))):
        for src, tgt in generate_splits(name, seed=1, min_len=3, max_len=6, **SMALL)["train"]:
            assert tgt == f(src) and 3 <= len(src) <= 6 and src.isalpha() and src.islower()
    for src, _ in generate_splits("reverse", seed=1, **SMALL)["train"]:
        assert 5 <= len(src) <= 15
    src, _ = TASKS["copy"].example(alphabet="01")
    assert set(src) <= {"0", "1"}


def test_addition():
    pairs = generate_splits("addition", seed=2, **SMALL)["train"]
    for src, tgt in pairs:
        a, b = re.fullmatch(r"(\d{1,3})\+(\d{1,3})", src).groups()
        assert int(tgt) == int(a) + int(b) and str(int(a)) == a and str(int(b)) == b  # no leading zeros
    assert any(len(s) < 5 for s, _ in pairs) and any(len(s) == 7 for s, _ in pairs)
    for src, tgt in generate_splits("addition", seed=2, digits=5, min_digits=5, **SMALL)["train"]:
        a, b = src.split("+")
        assert len(a) == len(b) == 5 and int(tgt) == int(a) + int(b)


def _parse_any(src: str) -> dt.date:
    """An independent reader of the human formats, to check the generator's targets."""
    months = {
        m[:3].lower(): i + 1
        for i, m in enumerate(
            [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ]
        )
    }
    if m := re.fullmatch(r"(\d+)/(\d+)/(\d{4})", src):
        return dt.date(int(m[3]), int(m[1]), int(m[2]))
    if m := re.fullmatch(r"(\d\d)\.(\d\d)\.(\d{4})", src):
        return dt.date(int(m[3]), int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d+)-([a-z]{3})-(\d\d)", src):
        return dt.date(2000 + int(m[3]), months[m[2]], int(m[1]))
    day = re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b(?!\d)", src)
    year = re.search(r"\b(\d{4})\b", src)
    month = next(v for k, v in months.items() if re.search(rf"\b{k.capitalize()}", src))
    d = dt.date(int(year[1]), month, int(day[1]))
    if src.split()[0].rstrip(",") in (
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
        "Sat",
        "Sun",
    ):
        assert d.strftime("%a") == src[:3], src  # the weekday is the true one
    return d


def test_dates_targets_are_right():
    pairs = generate_splits("dates", seed=3, n_train=2000, n_valid=10, n_test=10)["train"]
    for src, tgt in pairs:
        assert _parse_any(src).isoformat() == tgt, src
    # every format appears, including the examples from the issue
    d = dt.date(2026, 11, 24)
    shown = {f(d) for f in DATE_FORMATS}
    assert {"24 Nov 2026", "November 24, 2026", "11/24/2026", "24.11.2026", "Tuesday, 24 November 2026"} <= shown
    assert len({re.sub(r"\d", "9", s) for s, _ in pairs}) >= 2 * len(DATE_FORMATS) - 5
    for y in (1950, 2049):
        assert all(1950 <= int(t[:4]) <= 2049 for _, t in pairs)
    few = generate_splits("dates", seed=0, min_year=2026, max_year=2026, **SMALL)["train"]
    assert all(t.startswith("2026-") for _, t in few)


def test_translate_grammar():
    spec = TASKS["translate"]
    pairs = generate_splits("translate", seed=4, **SMALL)["train"]
    en_words, toy_words = set(), set()
    plural = {p for p, _ in NOUNS.values()}
    for src, tgt in pairs:
        en, toy = src.split(), tgt.split()
        en_words |= set(en)
        toy_words |= set(toy)
        assert 4 <= len(en) <= 12
        assert len(toy) == len(en)  # one Toyish word per English word, reordered
        verb_en = next(w for w in en if w in VERBS or w in {v[0] for v in VERBS.values()})
        verb_toy = next(v[1] for k, v in VERBS.items() if verb_en in (k, v[0]))
        assert toy[-1] == verb_toy  # verb-final
        subj_noun = next(w for w in en if w in NOUNS or w in plural)
        assert (verb_en in VERBS) == (subj_noun in NOUNS)  # subject-verb agreement in English
        for i, w in enumerate(en):  # adjectives follow their noun in Toyish
            if w in ADJECTIVES:
                j = toy.index(ADJECTIVES[w]) if ADJECTIVES[w] in toy else toy.index(ADJECTIVES[w] + "j")
                assert toy[j - 1].rstrip("j") in {n for _, n in NOUNS.values()} | set(ADJECTIVES.values())
    assert 50 <= len(en_words) <= 110 and 50 <= len(toy_words) <= 110
    d = build_data(generate_splits("translate", seed=0, n_train=2000, n_valid=100, n_test=100), tokens=spec.tokens)
    assert 50 <= len(d.src_vocab) <= 110 and 50 <= len(d.tgt_vocab) <= 110
    short = generate_splits("translate", seed=4, min_len=5, max_len=5, **SMALL)["train"]
    assert all(len(s.split()) == 5 for s, _ in short)


def test_small_space_shrinks_and_says_so():
    s = generate_splits("copy", seed=0, min_len=1, max_len=2, alphabet="abc")  # only 12 distinct sources
    assert s.notes and "12" in s.notes[0]
    assert 3 <= sum(map(len, s.values())) <= 12 and len(s["valid"]) >= 1 and len(s["test"]) >= 1
    srcs = [x for k in s for x, _ in s[k]]
    assert len(srcs) == len(set(srcs))
    s = generate_splits("addition", digits=1, seed=0)
    assert s.notes and len(s["train"]) + len(s["valid"]) + len(s["test"]) <= 100


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown task"):
        generate_splits("nope")
    with pytest.raises(ValueError, match="no parameter"):
        generate_splits("reverse", digits=3)
    with pytest.raises(ValueError):
        generate_splits("reverse", min_len=9, max_len=3)
    with pytest.raises(ValueError):
        generate_splits("addition", digits=0)
    with pytest.raises(ValueError):
        generate_splits("reverse", n_train=0)


def test_independent_of_global_random_state():
    random.seed(123)
    a = generate_splits("sort", seed=5, **SMALL)
    random.seed(456)
    assert generate_splits("sort", seed=5, **SMALL) == a
