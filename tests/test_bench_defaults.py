"""The defaults benchmark's machinery on tiny data (the full table: benchmarks/bench_defaults.py, minutes to hours)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_defaults as bench  # noqa: E402
from families import BY_NAME, FAMILIES  # noqa: E402

# The split was fixed (and committed) before any tuning: moving a family between halves must be a visible change.
TUNING = [
    "add3-uniform",
    "reverse-digits-1k",
    "sort-10letters-100k",
    "dates-iso-to-long",
    "copy-noisy10",
    "digits-to-words",
    "lexicon1000-reverse",
]
HELD_OUT = [
    "add4-uniform",
    "sub3-uniform",
    "mul2-uniform",
    "reverse-long",
    "dates-us-short",
    "add2-noisy10-1.5k",
    "lexicon3000-monotone",
    "tatoeba-eng-fra",
]


def test_the_halves_are_the_committed_ones_and_the_issue_file_is_tuning():
    assert [f.name for f in FAMILIES if f.half == "tuning"] == TUNING
    assert [f.name for f in FAMILIES if f.half == "held-out"] == HELD_OUT
    assert {f.tokens for f in FAMILIES} == {"char", "word"}
    sizes = [f.n_pairs for f in FAMILIES]
    assert min(sizes) <= 1000 and max(sizes) >= 100_000


def test_families_are_deterministic_and_the_issue_file_matches_its_description(tmp_path):
    fam = BY_NAME["add3-uniform"]
    a, b = fam.pairs(500), fam.pairs(500)
    assert a == b and len({s for s, _ in a}) == 500
    for s, t in a:
        x, y = s.split("+")
        assert int(x) + int(y) == int(t) and 0 <= int(x) <= 999
    assert sum(len(s.split("+")[0]) == 3 for s, _ in a) > 400  # uniform operands: ~90% have 3 digits
    noisy = BY_NAME["copy-noisy10"].pairs(1000)
    wrong = sum(s != t for s, t in noisy)
    assert 60 < wrong < 140  # ~10% of labels corrupted
    path = bench.write_tsv(BY_NAME["tatoeba-eng-fra"], tmp_path, 50)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50 and all(line.count("\t") == 1 for line in lines)  # first two of the three columns


def test_one_run_per_kind_and_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "FILES", tmp_path)
    rows = [bench.run_one("reverse-digits-1k", c, budget=0.3, n_pairs=200) for c in ("defaults", "dot+constant")]
    rows.append(bench.run_one("reverse-digits-1k", bench.PLAIN, budget=0.3, n_pairs=200))
    rows.append(bench.run_one("digits-to-words", "defaults", budget=0.3, n_pairs=200))
    for r in rows:
        assert 0.0 <= r["score"] <= 1.0 and r["steps"] >= 1 and r["cpu_s"] >= 0.3 * 0.9 and r["n_train"] == 160
    assert "att=dot" in rows[1]["settings"] and rows[2]["settings"].startswith("plain LSTM")
    text = bench.table(rows)
    assert "| tuning | reverse-digits-1k | exact match |" in text and "| tuning | digits-to-words |" in text
    assert "tuning: defaults >= 90% of the best on" in text
    line = next(x for x in text.splitlines() if "reverse-digits-1k" in x)
    assert line.rstrip(" |").split("| ")[-1] in ("yes", "NO")


def test_cli_setup_is_the_cli(tmp_path):
    path = bench.write_tsv(BY_NAME["dates-iso-to-long"], tmp_path, 300)
    data, mc, tc = bench.cli_setup(path, "char", {"hidden": 64})
    assert (len(data.train), len(data.valid), len(data.test)) == (240, 30, 30)
    assert mc.hidden == 64 and tc == bench.cli_setup(path, "char", {})[2]
    with pytest.raises(KeyError):
        bench.cli_setup(path, "char", {"no_such_flag": 1})
