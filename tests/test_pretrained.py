"""The shipped models in pretrained/: each loads, is small, and still scores what its metrics.json says on freshly
generated held-out examples (a seed never used in training; sources seen in training are dropped)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from seq2seq import checkpoint as C
from seq2seq.cli import evaluate_pairs, fresh_task_pairs
from seq2seq.make_pretrained import MODELS, command
from seq2seq.tasks import TASKS, generate_splits

SYNTHETIC = [n for n in MODELS if TASKS[MODELS[n][1][1]].file is None]  # tasks that draw fresh examples
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent / "pretrained"
FRESH_SEED, N_FRESH = 20261124, 1000


@functools.cache
def load(name: str) -> C.Checkpoint:
    return C.load(ROOT / name)


@pytest.fixture(scope="module")
def models() -> dict[str, C.Checkpoint]:
    return {name: load(name) for name in MODELS}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_pretrained_model_scores_on_fresh_data(name):
    ck = load(name)
    folder = ROOT / name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2 * 2**20, "over the 2 MB budget"
    m = ck.metrics
    assert m["split"] == "test" and m["n"] >= 500 and m["data"]["task"] == ck.task
    assert "time budget" not in m["message"], "stopped by the time cap: not reproducible"
    pairs = fresh_task_pairs(ck, ck.task, FRESH_SEED, N_FRESH)
    # enough unseen examples to judge by (addition's short sums are nearly all in its 100,000 training pairs: ~300
    # of 1,000 fresh draws are new; the other tasks keep ~all)
    assert len(pairs) >= 0.25 * N_FRESH
    r = evaluate_pairs(ck, pairs)
    print(f"\n{name}: fresh exact match {r['exact_match']:.4f} (n={r['n']}), metrics.json {m['exact_match']:.4f}")
    assert r["exact_match"] >= 0.95
    assert abs(r["exact_match"] - m["exact_match"]) <= 0.02


def test_tatoeba_model_bleu_and_chrf_are_remeasured_on_its_test_split():
    ck = load("tatoeba")
    assert sum(p.stat().st_size for p in (ROOT / "tatoeba").iterdir()) < 2 * 2**20, "over the 2 MB budget"
    m = ck.metrics
    assert m["split"] == "test" and m["data"]["task"] == "tatoeba" and "time budget" not in m["message"]
    test = generate_splits("tatoeba", seed=m["data"]["seed"])["test"]  # the held-out split it never trained on
    train = {s for s, _ in generate_splits("tatoeba", seed=m["data"]["seed"])["train"]}
    assert not train & {s for s, _ in test}
    r = evaluate_pairs(ck, test)
    print(
        f"\ntatoeba: test BLEU {r['bleu']:.2f} chrF {r['chrf']:.2f} exact match {r['exact_match']:.3f} "
        f"(n={r['n']} pairs, {r['n_sources']} sources); metrics.json {m['bleu']:.2f} / {m['chrf']:.2f}"
    )
    assert r["n"] == m["n"] and r["n_sources"] == m["n_sources"] < r["n"]  # several references per source
    assert r["bleu"] == pytest.approx(m["bleu"], abs=0.5) and r["chrf"] == pytest.approx(m["chrf"], abs=0.5)
    assert r["bleu"] > 10 and r["chrf"] > 25  # far above a model that has not learned (BLEU 0, chrF ~4-10)
    assert ck.tokenizer.lowercase and ck.tokens == "word"


def test_pretrained_set_covers_the_model_space(models):
    cfgs = [c.model_cfg for c in models.values()]
    assert len(models) >= 4
    assert {c.cell for c in cfgs} == {"rnn", "gru", "lstm"}
    assert "none" in {c.attention for c in cfgs} and {"additive", "dot"} <= {c.attention for c in cfgs}
    assert any(c.bidirectional for c in cfgs)
    assert any(c.tokens == "word" for c in models.values())


def test_readme_lists_every_model_and_the_command(models):
    text = (ROOT / "README.md").read_text()
    assert "python -m seq2seq.make_pretrained" in text
    for name in models:
        assert f"`{name}`" in text and " ".join(command(name)) in text


def test_make_pretrained_help_and_unknown_names(capsys):
    from seq2seq.make_pretrained import main

    assert main(["--help"]) == 0 and "usage: python -m seq2seq.make_pretrained" in capsys.readouterr().out
    assert main(["nope"]) == 2 and "unknown model(s) nope" in capsys.readouterr().err
