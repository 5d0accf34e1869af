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
TINY = [
    "--task",
    "reverse",
    "--param",
    "min_len=3",
    "--param",
    "max_len=5",
    "--n-train",
    "300",
    "--n-valid",
    "40",
    "--n-test",
    "40",
    "--embed",
    "8",
    "--hidden",
    "16",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--threads",
    "1",
]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


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
    assert sorted(p.name for p in trained.iterdir()) == sorted(C.ALL_FILES)  # with the training state (--resume)
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
    rows = [
        f"{w}\t{w[::-1]}"
        for w in [
            "ab",
            "abc",
            "bca",
            "cab",
            "dab",
            "bad",
            "cad",
            "dac",
            "acd",
            "bcd",
            "dcb",
            "abd",
            "bda",
            "adb",
            "cba",
            "cdb",
            "dbc",
        ]
    ]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "valid.csv").write_text("source,target\naab,baa\nbbc,cbb\n")
    args = [
        "train",
        "--data",
        str(tmp_path / "train.tsv"),
        "--valid",
        str(tmp_path / "valid.csv"),
        "--embed",
        "4",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--cell",
        "lstm",
        "--bidirectional",
        "--attention",
        "additive",
        "--seed",
        "3",
    ]
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


@pytest.mark.parametrize(
    "argv,message",
    [
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
    ],
)
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


# ------------------------------------------------------------------ --out, the lock, Ctrl-C, --resume, best weights
def _one_line_error(capsys, *parts) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for p in parts:
        assert p in err, err
    return err


def test_out_is_checked_before_training(trained, tmp_path, capsys, monkeypatch):
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    for out, part in (
        (tmp_path / "f.txt", "is a file"),
        ("", "empty"),
        (tmp_path / "home", "other files"),
        (trained, "already holds a checkpoint; add --overwrite"),
    ):
        assert main(["train", *TINY, "--out", str(out)]) == 2
        _one_line_error(capsys, part)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))  # 1 MB free
    assert main(["train", *TINY, "--overwrite", "--out", str(trained)]) == 2
    _one_line_error(capsys, "MB free", "needs about")
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == before  # nothing trained, nothing replaced
    assert (tmp_path / "home" / "notes.txt").read_text() == "mine" and (tmp_path / "f.txt").read_text() == "x"


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_old_checkpoint(trained, tmp_path, capsys, monkeypatch):
    import errno
    import shutil

    out = tmp_path / "m"
    shutil.copytree(trained, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def full(fd, data):
        calls.append(len(data))
        if len(calls) > 3:  # a few files fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    monkeypatch.setattr(C.FS, "write", full)
    assert main(["train", *TINY, "--overwrite", "--out", str(out)]) == 2
    _one_line_error(capsys, "no space left", "nothing was replaced")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == [".m.lock", "m"]  # the temporary folder is gone


def test_ctrl_c_saves_a_whole_checkpoint_and_resume_continues_it_exactly(tmp_path, capsys, monkeypatch):
    """SIGINT at step 12 (sent by the process to itself, from a wrapped Run.step): the run stops after that step,
    saves a checkpoint that loads, and exits 130 with one line; --resume then finishes the same run, exactly as if
    it had never stopped (same weights, curves and test metrics as a run without the interruption)."""
    import signal

    from seq2seq import training

    args = [
        "train",
        *TINY,
        "--epochs",
        "3",
        "--dropout",
        "0.2",
        "--layers",
        "2",
        "--teacher-forcing",
        "0.8",
        "--eval-every",
        "5",
    ]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    real_step = training.Run.step

    def step(self):
        out = real_step(self)
        if self.step_count == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(training.Run, "step", step)
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted at step 12: saved the best evaluation" in err
    assert f"--resume {tmp_path / 'cut'}" in err.strip().splitlines()[-1]
    cut = C.load(tmp_path / "cut", training=True)
    assert cut.metrics["interrupted"] is True and cut.metrics["steps"] == 12 and cut.training is not None
    assert cut.metrics["best_step"] == 10  # the evaluation at step 10 (every 5 steps), not step 12's weights
    monkeypatch.setattr(training.Run, "step", real_step)
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 0  # the rest of its budget, into the same folder
    a, b = C.load(tmp_path / "straight"), C.load(tmp_path / "cut")
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    for k in ("exact_match", "loss", "steps", "best_step", "valid_exact_match"):
        assert a.metrics[k] == b.metrics[k], k
    assert {k: v for k, v in a.history.items() if "seconds" not in k} == {
        k: v for k, v in b.history.items() if "seconds" not in k
    }
    # a finished run continues only when told how much longer; its configuration cannot change
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 2
    _one_line_error(capsys, "finished its run", "--epochs")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--hidden", "32", "--epochs", "1"]) == 2
    _one_line_error(capsys, "--hidden", "keeps its configuration")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "1", "--out", str(tmp_path / "straight")]) == 2
    _one_line_error(capsys, "already holds a checkpoint")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "0.5", "--out", str(tmp_path / "more")]) == 0
    assert C.load(tmp_path / "more").metrics["steps"] == 35
    assert C.load(tmp_path / "cut").metrics["steps"] == 30  # --out elsewhere: the resumed folder is untouched
    old = tmp_path / "old"  # a checkpoint without training state cannot be resumed
    old.mkdir()
    for name in C.MODEL_FILES:
        (old / name).write_bytes((tmp_path / "cut" / name).read_bytes())
    assert main(["train", "--resume", str(old), "--epochs", "1"]) == 2
    _one_line_error(capsys, "no training state")


def test_sgd_lr_50_saves_the_best_weights_and_says_it_got_worse(tmp_path, capsys):
    """Issue 19's case: SGD at lr 50 ends far above its starting loss. The checkpoint holds the best evaluation's
    weights (here: the untrained model's), its metrics and the final line say the run got worse."""
    from seq2seq.model import build

    assert (
        main(
            [
                "train",
                *TINY,
                "--optimizer",
                "sgd",
                "--lr",
                "50",
                "--epochs",
                "4",
                "--attention",
                "none",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "it got worse" in out.strip().splitlines()[-1] and "saved the best evaluation, step 0" in out
    assert "warning:" in err and "Traceback" not in err
    ck = C.load(tmp_path / "m")
    assert ck.metrics["best_step"] == 0 and ck.metrics["worse"]["loss"] > 1.5 * ck.metrics["worse"]["lowest_loss"]
    untrained = build(ck.model_cfg, torch.Generator().manual_seed(ck.train_cfg.seed)).state_dict()
    assert all(torch.equal(untrained[k], ck.model.state_dict()[k]) for k in untrained)


def test_a_second_train_into_the_same_folder_is_told_who_holds_it_and_ctrl_c_in_a_real_process(tmp_path):
    """A real `python -m seq2seq train`: a second train --out into its folder fails at once naming its pid; SIGINT
    after an evaluation leaves a checkpoint that loads, exit 130 and one line."""
    import signal
    import time

    out = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seq2seq",
            "train",
            *TINY,
            "--epochs",
            "0",
            "--max-seconds",
            "120",
            "--eval-every",
            "5",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stderr.readline().startswith("data:")  # the lock is held from before this line
        second = cli("train", *TINY, "--out", str(out))
        assert second.returncode == 2 and f"process {first.pid}" in second.stderr, second.stderr
        assert second.stderr.count("\n") == 1  # refused before it read any data (no "data:" line)
        time.sleep(1.0)  # several evaluations (every 5 steps)
        first.send_signal(signal.SIGINT)
        rest = first.communicate(timeout=120)[1]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130 and "Traceback" not in rest, rest
    assert rest.strip().splitlines()[-1].startswith("error: interrupted at step "), rest
    ck = C.load(out, training=True)
    assert ck.metrics["interrupted"] and ck.metrics["steps"] >= 5 and ck.training is not None
