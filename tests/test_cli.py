"""The command line: train -> eval -> predict on a tiny task, and user mistakes -> one line on stderr, exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq import checkpoint as C
from seq2seq.cli import main

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--task", "reverse", "--param", "min_len=3", "--param", "max_len=5", "--n-train", "300", "--n-valid", "40",
        "--n-test", "40", "--embed", "8", "--hidden", "16", "--epochs", "2", "--batch-size", "32", "--threads", "1"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "seq2seq", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    r = cli("train", *TINY, "--attention", "dot", "--cell", "gru", "--out", str(out))
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("test exact_match ") and "token_accuracy" in last and "loss" in last, last
    assert "100%" in r.stderr and "step" in r.stderr  # the progress bar
    return out


def test_train_writes_a_checkpoint_with_test_metrics(trained):
    assert sorted(p.name for p in trained.iterdir()) == sorted(C.FILES)
    m = json.loads((trained / "metrics.json").read_text())
    assert m["split"] == "test" and m["n"] == 40 and 0 <= m["exact_match"] <= 1
    assert m["data"]["task"] == "reverse" and m["data"]["params"] == {"min_len": 3, "max_len": 5}
    ck = C.load(trained)
    assert ck.model_cfg.cell == "gru" and ck.model_cfg.attention == "dot" and ck.model_cfg.hidden == 16
    assert ck.train_cfg.epochs == 2 and ck.task == "reverse" and ck.tokens == "char"
    assert ck.history["train_loss"] and len(ck.history["step"]) == m["steps"]


def test_eval_prints_one_json_object(trained, tmp_path):
    r = cli("eval", str(trained), "--task", "reverse", "--seed", "5", "--n", "60")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert {"exact_match", "token_accuracy", "loss", "n"} <= set(out)
    assert 0 < out["n"] <= 60 and 0 <= out["exact_match"] <= 1 and out["loss"] > 0


def test_eval_on_a_file(trained, tmp_path, capsys):
    tsv = tmp_path / "held.tsv"
    tsv.write_text("abc\tcba\nhello\tolleh\nxyz\tzyx\n")
    assert main(["eval", str(trained), "--data", str(tsv)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3


def test_eval_matches_saved_test_metric(trained, capsys):
    """eval on the training run's own test split reproduces metrics.json (same measurement code)."""
    from seq2seq.cli import evaluate_pairs, task_splits

    ck = C.load(trained)
    d = ck.metrics["data"]
    test = task_splits("reverse", d["seed"], d["params"], d["n_train"], d["n_valid"], d["n_test"])["test"]
    r = evaluate_pairs(ck, test)
    assert r["n"] == ck.metrics["n"]
    assert r["exact_match"] == pytest.approx(ck.metrics["exact_match"], abs=1e-9)
    assert r["loss"] == pytest.approx(ck.metrics["loss"], rel=1e-5)


def test_predict_prints_the_decoded_output(trained):
    r = cli("predict", str(trained), "abcd", "--beam", "3")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1
    ck = C.load(trained)
    from seq2seq.decoding import translate

    assert r.stdout.rstrip("\n") == translate(ck.model, ck, "abcd", beam=3)


def test_train_is_deterministic_and_reads_files(tmp_path):
    rows = [f"{w}\t{w[::-1]}" for w in ["ab", "abc", "bca", "cab", "dab", "bad", "cad", "dac", "acd", "bcd", "dcb",
                                         "abd", "bda", "adb", "cba", "cdb", "dbc"]]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "valid.csv").write_text("source,target\naab,baa\nbbc,cbb\n")
    args = ["train", "--data", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.csv"), "--embed", "4",
            "--hidden", "8", "--epochs", "2", "--batch-size", "4", "--cell", "lstm", "--bidirectional",
            "--attention", "additive", "--seed", "3"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    for name in ("model.safetensors", "config.json", "vocab.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["data"]["file"] == "train.tsv" and m["data"]["valid_file"] == "valid.csv"
    # the defaults can be turned off from the command line, and the checkpoint records what was used
    off = ["--no-bidirectional", "--lr-schedule", "plateau", "--no-bucket-by-length", "--stop-patience", "0"]
    assert main(args + off + ["--out", str(tmp_path / "c")]) == 0
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["model"]["bidirectional"] is False
    assert cfg["train"]["lr_schedule"] == "plateau" and cfg["train"]["bucket_by_length"] is False
    assert cfg["train"]["stop_patience"] == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["model"]["bidirectional"] is True and cfg["train"]["lr_schedule"] == "constant"
    assert cfg["train"]["stop_patience"] == 10 and cfg["train"]["epochs"] == 2


@pytest.mark.parametrize("argv,message", [
    (["train", "--task", "nope", "--out", "x"], "unknown task"),
    (["train", "--task", "reverse", "--hidden", "many", "--out", "x"], "invalid int"),
    (["train", "--task", "reverse", "--cell", "transformer", "--out", "x"], "invalid choice"),
    (["train", "--task", "reverse", "--hidden", "0", "--out", "x"], "hidden"),
    (["train", "--task", "reverse", "--lr", "-1", "--out", "x"], "learning rate"),
    (["train", "--task", "reverse", "--hidden", "5000", "--out", "x"], "parameters"),
    (["train", "--task", "reverse", "--param", "digits", "--out", "x"], "KEY=VALUE"),
    (["train", "--task", "reverse"], "--out"),
    (["train", "--out", "x"], "--task"),
    (["train", "--data", "/nonexistent.tsv", "--out", "x"], "no such file"),
    (["eval", "/nonexistent"], "cannot open"),
    (["predict", "/nonexistent", "abc"], "cannot open"),
    ([], "command"),
])
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and message in err, err


def test_bad_files_and_inputs(trained, tmp_path, capsys):
    (tmp_path / "bad.tsv").write_bytes(b"only one column\nand another\n")
    assert main(["train", "--data", str(tmp_path / "bad.tsv"), "--out", str(tmp_path / "o")]) == 2
    assert main(["eval", str(trained), "--data", str(tmp_path / "bad.tsv")]) == 2
    assert main(["predict", str(trained), "   "]) == 2
    assert main(["predict", str(trained), "a" * 1000]) == 2
    assert main(["predict", str(trained), "abc", "--beam", "0"]) == 2
    assert main(["eval", str(trained)]) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in trained.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x80\x04junk")
    assert main(["predict", str(broken), "abc"]) == 2
    errs = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errs) == 7 and all(e.startswith("error:") for e in errs), errs


def test_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "x.tsv").write_bytes(b"\xff\xfe\x00garbage")
    r = cli("train", "--data", str(tmp_path / "x.tsv"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error:"), r.stderr
