"""`python -m seq2seq export`: the standalone file decodes exactly as `predict` does, for every shipped model and for
fresh models of every architecture; its training loop trains; what it cannot export is refused in one line."""

from __future__ import annotations

import ast
import copy
import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq import checkpoint as C
from seq2seq import export as X
from seq2seq.cli import main
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import DataError, check_input_text
from seq2seq.decoding import translate
from seq2seq.limits import get_limits
from seq2seq.model import Seq2Seq
from seq2seq.tasks import generate_splits

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = sorted(p for p in (ROOT / "pretrained").iterdir() if (p / "config.json").is_file())


def load_exported(ckpt, folder: Path, stem: str = "exported_model"):
    """Export `ckpt` into `folder` and import the file as a module (in-process: fast)."""
    py, weights = X.export(ckpt, folder / f"{stem}.py")
    spec = importlib.util.spec_from_file_location(f"{stem}_{id(ckpt)}", py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, py


def inputs_for(ckpt, n: int = 100) -> list[str]:
    """n inputs: fresh examples of the model's task (sources never seen in training, mostly) plus awkward ones:
    unknown tokens, a typed "<eos>", one token, spaces, a repeated token, an over-long input."""
    rng = random.Random(0)
    awkward = ["<eos>", "x", "zz zz", "?", "a <eos> b", "  hello  ", "1+1", "é€😀", "the the the the"]
    toks = [t for t in ckpt.src_vocab.itos[4:]]
    sep = "" if ckpt.tokens == "char" else " "
    awkward += [sep.join(rng.choice(toks) for _ in range(k)) for k in (1, 3, 7, 20, 45)]
    awkward.append(sep.join(rng.choice(toks) for _ in range(get_limits().max_seq_len + 1)))  # too long: refused
    task = generate_splits(ckpt.task, n_train=n, n_valid=0, n_test=0, seed=98765)["train"] if ckpt.task else []
    texts = awkward + [s for s, _ in task]
    return texts[:n]


def predicted(ckpt, text: str) -> str:
    """What `predict` prints for `text` (or its error line): the library's own functions."""
    try:
        check_input_text(text, ckpt.src_vocab, ckpt.tokenizer, get_limits().max_seq_len)
    except DataError as e:
        return f"error: {e}"
    return translate(ckpt.model, (ckpt.src_vocab, ckpt.tgt_vocab, ckpt.tokenizer), text)


def exported(mod, model, text: str) -> str:
    try:
        mod.check_input(text)
    except mod.InputError as e:
        return f"error: {e}"
    return mod.translate(model, text)


@pytest.mark.parametrize("folder", PRETRAINED, ids=[p.name for p in PRETRAINED])
def test_every_shipped_model_decodes_like_predict_on_100_inputs(folder, tmp_path):
    ckpt = C.load(folder)
    mod, _ = load_exported(ckpt, tmp_path)
    model = mod.load_model()
    texts = inputs_for(ckpt)
    assert len(texts) == 100
    mismatches = [
        (t, predicted(ckpt, t), exported(mod, model, t)) for t in texts if predicted(ckpt, t) != exported(mod, model, t)
    ]
    assert not mismatches, mismatches[:5]
    assert any(predicted(ckpt, t).startswith("error:") for t in texts)  # the refusals were compared too
    if ckpt.metrics.get("exact_match", 0) > 0.9 and ckpt.task:  # and the outputs are the model's real answers
        pairs = generate_splits(ckpt.task, n_train=30, n_valid=0, n_test=0, seed=98765)["train"]
        assert sum(exported(mod, model, s) == t for s, t in pairs) >= 24


@pytest.mark.parametrize("folder", PRETRAINED, ids=[p.name for p in PRETRAINED])
def test_exported_file_run_as_a_script_prints_what_predict_prints(folder, tmp_path, capsys):
    ckpt = C.load(folder)
    py, _ = X.export(ckpt, tmp_path / "model_code.py")
    text = inputs_for(ckpt)[-1] + ("~" if ckpt.tokens == "char" else " zebra")  # a task example + an unknown token
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, str(py), text], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )  # cwd and no PYTHONPATH: this project cannot be imported from there
    assert main(["predict", str(folder), text]) == r.returncode == 0, r.stderr
    out = capsys.readouterr()
    assert (r.stdout, r.stderr) == (out.out, out.err) and r.stdout.strip()
    assert "note:" in r.stderr


def test_exported_file_imports_only_torch_safetensors_and_the_standard_library(tmp_path):
    py, _ = X.export(C.load(PRETRAINED[0]), tmp_path / "m.py")
    tree = ast.parse(py.read_text())
    roots = {
        (a.name if isinstance(n, ast.Import) else n.module).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert roots <= {"argparse", "random", "re", "sys", "pathlib", "torch", "safetensors"}, roots
    assert "seq2seq" not in py.read_text().replace("Seq2Seq", "").replace("seq2seq predict", "")


ARCHS = [
    dict(cell=c, attention=a, bidirectional=b, layers=l)
    for c in ("rnn", "gru", "lstm")
    for a in ("none", "dot", "additive")
    for b in (False, True)
    for l in (1, 2)
]


def fresh_ckpt(tokens="char", seed=0, **arch) -> C.Checkpoint:
    from seq2seq.data import build_data

    data = build_data(generate_splits("reverse", 60, 10, 10, seed=0, min_len=2, max_len=6), tokens=tokens)
    torch.manual_seed(seed)
    cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), embed=8, hidden=12, **arch)
    model = Seq2Seq(cfg).eval()
    with torch.no_grad():  # biases away from 0 so every term of the math shows in the outputs
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return C.Checkpoint(
        model=model,
        model_cfg=cfg,
        train_cfg=TrainConfig(),
        tokens=tokens,
        src_vocab=data.src_vocab,
        tgt_vocab=data.tgt_vocab,
        metrics={},
        history={},
        task="reverse",
    )


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: "-".join(str(v) for v in a.values()))
def test_every_architecture_matches_the_library(arch, tmp_path):
    """Random models of every cell x attention x direction x depth: the same greedy outputs, and the same
    teacher-forced logits on a padded batch (the training loop's forward) as Seq2Seq's."""
    ckpt = fresh_ckpt(**arch)
    mod, _ = load_exported(ckpt, tmp_path)
    model = mod.load_model()
    texts = ["abc", "zyxwv", "a", "hello", "qq", "mnopqrstu"]
    assert [exported(mod, model, t) for t in texts] == [predicted(ckpt, t) for t in texts]
    pairs = [("abc", "cba"), ("hello", "olleh"), ("a", "a"), ("mnopqr", "rqponm")]
    src, src_len, tgt_in, tgt_out = mod.make_batch(pairs)
    with torch.no_grad():
        want = ckpt.model(src, src_len, tgt_in)
        got = model(src, src_len, tgt_in)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_exported_training_loop_trains(tmp_path):
    """A few steps run on every shipped model's file; on a fresh small model the loss falls."""
    for folder in PRETRAINED:
        (tmp_path / folder.name).mkdir()
        ckpt = C.load(folder)
        mod, _ = load_exported(ckpt, tmp_path / folder.name)
        model = mod.load_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        pairs = generate_splits(ckpt.task, n_train=40, n_valid=0, n_test=0, seed=3)["train"]
        losses = mod.train(model, pairs, steps=3, batch_size=8, log=None)
        assert len(losses) == 3 and all(0 <= x < 50 for x in losses)
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    ckpt = fresh_ckpt(cell="gru", attention="dot", bidirectional=True, layers=1)
    mod, _ = load_exported(ckpt, tmp_path, "fresh")
    model = mod.load_model()
    pairs = [("abc", "cba"), ("bca", "acb"), ("cab", "bac"), ("aab", "baa")]
    losses = mod.train(model, pairs, steps=60, lr=0.01, batch_size=4, log=None)
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_exported_cli_trains_from_a_tsv_and_saves(tmp_path):
    ckpt = fresh_ckpt(cell="lstm", attention="additive", bidirectional=True, layers=1)
    py, _ = X.export(ckpt, tmp_path / "m.py")
    (tmp_path / "pairs.tsv").write_text("abc\tcba\nab\tba\nbca\tacb\n")
    r = subprocess.run(
        [sys.executable, str(py), "--train", "pairs.tsv", "--steps", "5", "--save", "new.safetensors", "abc"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "step 5: loss" in r.stderr and (tmp_path / "new.safetensors").is_file() and r.stdout.strip() != ""
    bad = subprocess.run(
        [sys.executable, str(py), "--train", "missing.tsv"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_unknown_tokenization_is_refused_in_one_line(tmp_path, capsys):
    ckpt = fresh_ckpt()
    ckpt = copy.copy(ckpt)
    ckpt.tokens = "bpe"
    with pytest.raises(X.ExportError, match="'bpe' tokens.*'char' and 'word'"):
        X.export(ckpt, tmp_path / "m.py")
    assert not (tmp_path / "m.py").exists()


def test_cli_export_usage_errors(tmp_path, capsys):
    assert main(["export", str(PRETRAINED[0]), "--out", str(tmp_path / "m.txt")]) == 2
    assert "must name a .py file" in capsys.readouterr().err
    assert main(["export", str(PRETRAINED[0]), "--out", str(tmp_path / "nowhere" / "m.py")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m.py")]) == 2  # not a checkpoint
    assert capsys.readouterr().err.startswith("error:")
    assert main(["export", str(PRETRAINED[0]), "--out", str(tmp_path / "ok.py")]) == 0
    assert (tmp_path / "ok.py").is_file() and (tmp_path / "ok.safetensors").is_file()


def test_format_version_guard(monkeypatch):
    monkeypatch.setattr(C, "FORMAT_VERSION", 3)
    with pytest.raises(X.ExportError, match="format 3"):
        X.source(fresh_ckpt(), "w.safetensors")


def test_zip_holds_both_files():
    import io
    import zipfile

    z = zipfile.ZipFile(io.BytesIO(X.zip_bytes(fresh_ckpt(), "my_model")))
    assert sorted(z.namelist()) == ["my_model.py", "my_model.safetensors"]
    assert "my_model.safetensors" in z.read("my_model.py").decode()
