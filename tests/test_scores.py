"""Real-text scores: BLEU/chrF against several references (sacrebleu's own numbers), exact match against any
reference, columns of multi-column files, the CLI on the Tatoeba file as published."""

import json
from dataclasses import replace

import pytest
import sacrebleu
import torch

from seq2seq import cli
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import build_data
from seq2seq.loaders import DataError, load_pairs, read_table
from seq2seq.scores import corpus_scores, reference_streams
from seq2seq.tasks import TATOEBA_FILE
from seq2seq.training import Run

torch.set_num_threads(1)

# sacrebleu's README example: two outputs, two reference streams
HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REFS = [
    ["The dog bit the man.", "The dog had bit the man."],
    ["It was not unexpected.", "No one was surprised."],
    ["The man bit him first.", "The man had bitten the dog."],
]


def test_multi_reference_scores_are_sacrebleus_own():
    streams = [[r[0] for r in REFS], [r[1] for r in REFS]]
    want_bleu = sacrebleu.corpus_bleu(HYPS, streams).score
    want_chrf = sacrebleu.corpus_chrf(HYPS, streams).score
    got = corpus_scores(HYPS, REFS)
    assert got["bleu"] == pytest.approx(want_bleu) and got["chrf"] == pytest.approx(want_chrf)
    assert got["bleu"] == pytest.approx(48.53, abs=0.01)  # the number sacrebleu's README prints for this example
    # more references can only help: each single stream scores lower than both together
    assert all(sacrebleu.corpus_bleu(HYPS, [s]).score < got["bleu"] for s in streams)


def test_variable_numbers_of_references():
    refs = [["The dog bit the man."], ["It was not unexpected.", "No one was surprised."], ["The man bit him first."]]
    assert reference_streams(refs)[1] == [None, "No one was surprised.", None]
    streams = [[r[0] for r in refs], [None, "No one was surprised.", None]]
    assert corpus_scores(HYPS, refs)["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, streams).score)
    with pytest.raises(ValueError):
        corpus_scores(HYPS, refs[:2])


def _memorized(pairs, tokens="word", steps=300):
    data = build_data({"train": pairs}, tokens=tokens, seed=0, valid_frac=0, test_frac=0)
    data = replace(data, valid=list(pairs), test=list(pairs))  # score on what it memorized
    run = Run(
        data,
        ModelConfig(len(data.src_vocab), len(data.tgt_vocab), hidden=64, attention="dot"),
        TrainConfig(lr=1e-2, epochs=10_000, eval_every=10_000),
    )
    for _ in range(steps):
        run.step()
    return run


def test_exact_match_counts_any_reference_and_bleu_uses_all():
    # "go" has two right answers; a model can only write one of them, and must still score 100% exact match
    verbs = ["stop", "come", "eat", "run", "sit", "see", "sing", "read", "swim", "walk"]
    pairs = [("go there now .", "va là-bas maintenant ."), ("go there now .", "allez là-bas maintenant .")]
    pairs += [(f"{v} there now .", f"{v}e là-bas maintenant .") for v in verbs]
    run = _memorized(pairs)
    r = run.evaluate("valid")
    assert r["n"] == len(pairs) and r["n_sources"] == len(pairs) - 1
    assert r["exact_match"] == 1.0 and r["bleu"] > 99 and r["chrf"] > 99
    assert any("va " in ref and "allez " in ref for _, _, ref in run.samples)  # samples show every reference
    # per pair, one of the two "go" pairs must miss: the any-reference rule is what makes it 100%
    per_pair = run.evaluate("valid", bleu_limit=0)
    assert per_pair["token_accuracy"] < 1.0 and "bleu" not in per_pair


def test_char_tasks_keep_exact_match_only():
    pairs = [(w, w[::-1]) for w in ["abc", "bca", "cab", "aab", "bba", "abb", "cca", "acc", "bab", "aba", "cbc"]]
    r = _memorized(pairs, "char", steps=5).evaluate("valid")
    assert "bleu" not in r and {"exact_match", "token_accuracy"} <= set(r)


# ------------------------------------------------------------------------------------------------ columns
TSV3 = b"Go.\tVa !\tCC-BY 2.0 (France) #1 (a)\nGo.\tAllez !\tCC-BY #2\nHi.\tSalut !\tCC-BY #3\n"
CSV3 = b"id,English,French\n1,Go.,Va !\n2,Hi.,Salut !\n"


def test_tsv_columns_are_1_based_and_default_to_the_first_two():
    assert load_pairs(TSV3, "x.tsv") == [("Go.", "Va !"), ("Go.", "Allez !"), ("Hi.", "Salut !")]
    assert load_pairs(TSV3, "x.tsv", columns=("2", "1"))[0] == ("Va !", "Go.")
    assert load_pairs(TSV3, "x.tsv", columns=("1", "3"))[2] == ("Hi.", "CC-BY #3")
    for bad, msg in ((("1", "4"), "has 3 columns"), (("1", "1"), "two different"), (("a", "b"), "numbers")):
        with pytest.raises(DataError, match=msg):
            load_pairs(TSV3, "x.tsv", columns=bad)
    with pytest.raises(DataError, match="Line 2 has 1 TAB but line 1 has 2"):
        load_pairs(b"a\tb\tc\nd\te\n", "x.tsv")


def test_csv_columns_by_header_name():
    assert load_pairs(CSV3, "x.csv", columns=("english", " French ")) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    with pytest.raises(DataError, match="Pick the columns"):
        load_pairs(CSV3, "x.csv")
    with pytest.raises(DataError, match="no column 'German'"):
        load_pairs(CSV3, "x.csv", columns=("English", "German"))


def test_read_table_previews_the_first_rows():
    cols, rows = read_table(TSV3, "x.tsv", n_rows=2)
    assert cols == ["1", "2", "3"] and rows == [
        ["Go.", "Va !", "CC-BY 2.0 (France) #1 (a)"],
        ["Go.", "Allez !", "CC-BY #2"],
    ]
    cols, rows = read_table(CSV3, "x.csv")
    assert cols == ["id", "English", "French"] and rows[1] == ["2", "Hi.", "Salut !"]
    with pytest.raises(DataError):
        read_table(b"\xff\xfe", "x.tsv")


def test_dedup_is_a_choice():
    pairs = [(f"s{i}", f"t{i}") for i in range(20)] + [("s0", "t0"), ("s0", "other")]
    kept = {k: build_data(pairs, dedup=k, seed=0) for k in ("pairs", "source", "none")}
    n = {k: sum(map(len, (d.train, d.valid, d.test))) for k, d in kept.items()}
    assert n == {"pairs": 21, "source": 20, "none": 22}
    assert kept["pairs"].n_duplicates == 1 and "repeat an earlier" in " ".join(kept["pairs"].notes)
    assert "several targets" in " ".join(kept["pairs"].notes)


# ------------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_trains_on_the_tatoeba_file_as_published(tmp_path, capsys):
    out = tmp_path / "fr"
    rc = cli.main(
        [
            "train",
            "--data",
            str(TATOEBA_FILE),
            "--tokens",
            "subword",
            "--vocab-size",
            "500",
            "--lowercase",
            "--attention",
            "dot",
            "--hidden",
            "64",
            "--max-seconds",
            "8",
            "--out",
            str(out),
        ]
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 0 and " bleu " in line and " chrf " in line and "truncated 0" in line
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["bleu"] <= 100 and 0 <= m["chrf"] <= 100 and m["data"]["dedup"] == "pairs"
    assert m["n_sources"] < m["n"]  # several references per source are kept in the test split
    rc = cli.main(["eval", str(out), "--data", str(TATOEBA_FILE), "--columns", "1,2"])
    e = json.loads(capsys.readouterr().out)
    assert rc == 0 and {"bleu", "chrf", "exact_match"} <= set(e) and e["n"] == 5000 and e["n_sources"] == 2597
    assert cli.main(["predict", str(out), "Tom's here!"]) == 0


def test_cli_usage_errors_for_the_new_flags(tmp_path, capsys):
    for argv, msg in (
        (["--columns", "1"], "SRC,TGT"),
        (["--columns", "1,9"], "Column 9"),
        (["--tokens", "subword", "--vocab-size", "3"], "vocab"),
        (["--max-len", "100000"], "--max-len"),
    ):
        rc = cli.main(["train", "--data", str(TATOEBA_FILE), *argv, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1, err


def test_truncation_is_reported_in_the_final_line(tmp_path, capsys):
    p = tmp_path / "long.tsv"
    p.write_text("".join(f"w{i} {'w ' * (5 + i % 3)}\t{'x ' * (4 * i + 1)}\n" for i in range(60)), encoding="utf-8")
    rc = cli.main(
        [
            "train",
            "--data",
            str(p),
            "--tokens",
            "word",
            "--max-len",
            "200",
            "--epochs",
            "0.1",
            "--hidden",
            "16",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 0 and "truncated" in line and "(of max-len 200)" in line
