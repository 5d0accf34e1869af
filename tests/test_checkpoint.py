"""Checkpoints: exact round trips, and hostile files that must fail cleanly (CheckpointError) without running code.

The fuzz tests print how many cases each loader saw (run with -s to read them)."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq import checkpoint as C
from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import Vocab, build_data
from seq2seq.decoding import beam_search, greedy, translate
from seq2seq.model import Seq2Seq

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
COUNTS: dict[str, int] = {}


def make_ckpt(cell="gru", attention="additive", bidirectional=True, layers=1) -> C.Checkpoint:
    pairs = [
        (w, w[::-1])
        for w in ["abc", "hello", "world", "tiny", "model", "cab", "ba", "dcba", "xyz", "zzz", "seq", "two"]
    ]
    data = build_data(pairs, tokens="char", max_len=20, seed=0)
    cfg = ModelConfig(
        len(data.src_vocab),
        len(data.tgt_vocab),
        cell=cell,
        embed=8,
        hidden=12,
        layers=layers,
        bidirectional=bidirectional,
        attention=attention,
    )
    torch.manual_seed(0)
    model = Seq2Seq(cfg).eval()
    return C.Checkpoint(
        model=model,
        model_cfg=cfg,
        train_cfg=TrainConfig(epochs=3, seed=4),
        tokens="char",
        src_vocab=data.src_vocab,
        tgt_vocab=data.tgt_vocab,
        metrics={"exact_match": 0.5, "loss": 1.25, "n": 2},
        history={"step": [1, 2], "train_loss": [2.0, float("nan")]},
        task="reverse",
    )


@pytest.fixture(scope="module")
def ckpt() -> C.Checkpoint:
    return make_ckpt()


@pytest.fixture(scope="module")
def files(ckpt) -> dict[str, bytes]:
    """The five files without the manifest, as checkpoints written before it had one: the hostile-file tests below
    edit one file at a time and must reach the checks behind the manifest's (tested on its own further down)."""
    return {k: v for k, v in C.to_files(ckpt).items() if k != C.MANIFEST}


@pytest.fixture(scope="module")
def zip_bytes(ckpt) -> bytes:
    return C.to_zip_bytes(ckpt)


def _same(a: C.Checkpoint, b: C.Checkpoint) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k  # bit-identical
    assert a.model_cfg == b.model_cfg and a.train_cfg == b.train_cfg and a.tokens == b.tokens and a.task == b.task
    assert a.src_vocab.itos == b.src_vocab.itos and a.tgt_vocab.itos == b.tgt_vocab.itos
    ids = a.src_vocab.encode(list("hello"))
    assert greedy(a.model, ids, 10) == greedy(b.model, ids, 10)
    assert beam_search(a.model, ids, 3, 10).best == beam_search(b.model, ids, 3, 10).best


@pytest.mark.parametrize(
    "cell,attention,bidirectional,layers",
    [("rnn", "none", False, 1), ("gru", "additive", True, 2), ("lstm", "dot", True, 3), ("lstm", "none", True, 1)],
)
def test_folder_round_trip(tmp_path, cell, attention, bidirectional, layers):
    a = make_ckpt(cell, attention, bidirectional, layers)
    C.save(a, tmp_path / "ck")
    assert sorted(os.listdir(tmp_path / "ck")) == sorted(C.FILES)
    b = C.load(tmp_path / "ck")
    _same(a, b)
    assert not b.model.training
    assert b.metrics == {"exact_match": 0.5, "loss": 1.25, "n": 2}
    assert b.history == {"step": [1, 2], "train_loss": [2.0, None]}  # NaN is stored as null (strict JSON)
    assert translate(a.model, a, "hello") == translate(b.model, b, "hello")


def test_zip_round_trip_and_determinism(tmp_path, ckpt):
    z = C.to_zip_bytes(ckpt)
    assert z == C.to_zip_bytes(ckpt)  # same model, same bytes (fixed timestamps)
    _same(ckpt, C.from_zip_bytes(z))
    (tmp_path / "m.zip").write_bytes(z)
    _same(ckpt, C.load(tmp_path / "m.zip"))  # load() also takes a .zip file


def test_zip_of_a_folder_is_accepted(tmp_path, files, ckpt):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("my_model/", b"")
        for name, data in files.items():
            zf.writestr(f"my_model/{name}", data)
        zf.writestr("__MACOSX/my_model/._config.json", b"junk")
    _same(ckpt, C.from_zip_bytes(buf.getvalue()))


def test_save_accepts_parts_dict(tmp_path, ckpt):
    parts = {
        k: getattr(ckpt, k)
        for k in ("model", "model_cfg", "train_cfg", "tokens", "src_vocab", "tgt_vocab", "metrics", "history", "task")
    }
    C.save(parts, tmp_path / "p")
    _same(ckpt, C.load(tmp_path / "p"))


# --------------------------------------------------------------------------------------------- targeted hostile files


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _raises(files: dict[str, bytes], match: str) -> None:
    with pytest.raises(C.CheckpointError, match=match):
        C.from_files(files)


class Evil:
    """Unpickling this would create the marker file: the test asserts it never exists."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_renamed_to_safetensors_runs_no_code(tmp_path, files):
    marker = tmp_path / "PWNED"
    payloads = [pickle.dumps(Evil(str(marker)), protocol=p) for p in (0, 2, 4, 5)]
    buf = io.BytesIO()
    torch.save({"x": Evil(str(marker))}, buf)  # torch.save's zip-of-pickles format
    payloads.append(buf.getvalue())
    for i, payload in enumerate(payloads):
        folder = tmp_path / f"ck{i}"
        folder.mkdir()
        for name, data in {**files, C.WEIGHTS: payload}.items():
            (folder / name).write_bytes(data)
        with pytest.raises(C.CheckpointError, match="safetensors"):
            C.load(folder)
        with pytest.raises(C.CheckpointError):
            C.from_zip_bytes(_zip({**files, C.WEIGHTS: payload}))
    assert not marker.exists()


def test_zip_bomb_refused_before_decompressing(files):
    bomb = _zip({**files, C.HISTORY: b"0" * (6 * 2**20)})  # 6 MB of zeros deflates to a few KB
    assert len(bomb) < 100_000
    with pytest.raises(C.CheckpointError, match="(upload limit|zip bomb)"):
        C.from_zip_bytes(bomb)
    small_bomb = _zip({**files, C.HISTORY: b" " * (2 * 2**20)})  # under the size limit, but a 1000x ratio
    with pytest.raises(C.CheckpointError, match="zip bomb"):
        C.from_zip_bytes(small_bomb)


def test_zip_lying_about_sizes(files):
    z = bytearray(_zip(files, compression=zipfile.ZIP_STORED))
    # Shrink the declared size of the first member in its central directory entry: reads stop at the declared size
    cd = z.find(b"PK\x01\x02")
    size_at = cd + 24
    real = struct.unpack("<I", z[size_at : size_at + 4])[0]
    z[size_at : size_at + 4] = struct.pack("<I", max(real - 10, 0))
    with pytest.raises(C.CheckpointError):
        C.from_zip_bytes(bytes(z))


@pytest.mark.parametrize(
    "name", ["../config.json", "/etc/config.json", "a/b/config.json", "..\\config.json", "c:config.json"]
)
def test_zip_path_traversal_names(files, name):
    with pytest.raises(C.CheckpointError):
        C.from_zip_bytes(_zip({**{k: v for k, v in files.items() if k != C.CONFIG}, name: files[C.CONFIG]}))


def test_zip_symlink_member(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            if name == C.VOCAB:
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16  # a symlink to /etc/passwd
                zf.writestr(info, "/etc/passwd")
            else:
                zf.writestr(name, data)
    with pytest.raises(C.CheckpointError, match="symbolic link"):
        C.from_zip_bytes(buf.getvalue())


def test_zip_extra_duplicate_missing_and_not_zip(files):
    with pytest.raises(C.CheckpointError, match="unexpected file"):
        C.from_zip_bytes(_zip({**files, "run_me.py": b"print('hi')"}))
    with pytest.raises(C.CheckpointError, match="lacks"):
        C.from_zip_bytes(_zip({k: v for k, v in files.items() if k != C.METRICS}))
    with pytest.raises(C.CheckpointError, match="more than one folder"):
        C.from_zip_bytes(
            _zip({**{f"a/{k}": v for k, v in files.items() if k != C.CONFIG}, f"b/{C.CONFIG}": files[C.CONFIG]})
        )
    with pytest.raises(C.CheckpointError, match="not a .zip"):
        C.from_zip_bytes(b"hello world")
    with pytest.raises(C.CheckpointError, match="upload limit"):
        C.from_zip_bytes(b"PK" + b"\x00" * (6 * 2**20))


def test_folder_symlink_and_oversized_files(tmp_path, files):
    folder = tmp_path / "ck"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / C.VOCAB).unlink()
    (folder / C.VOCAB).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(C.CheckpointError, match="symbolic link"):
        C.load(folder)
    (folder / C.VOCAB).unlink()
    (folder / C.VOCAB).write_bytes(b" " * (6 * 2**20))  # huge JSON: refused by size before reading
    with pytest.raises(C.CheckpointError, match="upload limit"):
        C.load(folder)
    (folder / C.VOCAB).unlink()
    with pytest.raises(C.CheckpointError, match="missing"):
        C.load(folder)
    with pytest.raises(C.CheckpointError, match="cannot open"):
        C.load(tmp_path / "does-not-exist")


def test_mismatched_weights(ckpt, files):
    sd = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    from safetensors.torch import save

    k0 = next(iter(sd))
    _raises({**files, C.WEIGHTS: save({k: v for k, v in sd.items() if k != k0})}, "lacks")
    _raises({**files, C.WEIGHTS: save({**sd, "evil.weight": torch.zeros(2)})}, "no place")
    _raises({**files, C.WEIGHTS: save({**sd, k0: torch.zeros(3, 3)})}, "shape")
    _raises({**files, C.WEIGHTS: save({**sd, k0: sd[k0].double()})}, "dtype")
    _raises({**files, C.WEIGHTS: save({**sd, k0: sd[k0].half()})}, "dtype")
    bad = sd[k0].clone()
    bad.view(-1)[3] = float("nan")
    _raises({**files, C.WEIGHTS: save({**sd, k0: bad})}, "NaN or infinite")
    bad.view(-1)[3] = float("inf")
    _raises({**files, C.WEIGHTS: save({**sd, k0: bad})}, "NaN or infinite")
    # another model's weights (different hidden size) under this config
    other = C.to_files(make_ckpt("lstm", "dot", False))[C.WEIGHTS]
    _raises({**files, C.WEIGHTS: other}, "(lacks|no place|shape)")


def test_format_version_1_loads_only_without_attention(files):
    """Version 1 models had the same weights but another attention decoder: refused with a clear message; a version 1
    model without attention computes exactly what it did then and still loads."""
    cfg = json.loads(files[C.CONFIG])
    assert cfg["format_version"] == C.FORMAT_VERSION == 2 and cfg["model"]["attention"] != "none"
    _raises({**files, C.CONFIG: json.dumps({**cfg, "format_version": 1}).encode()}, "older version.*Train it again")
    plain = {k: v for k, v in C.to_files(make_ckpt("lstm", "none", True)).items() if k != C.MANIFEST}  # v1: none
    old = json.loads(plain[C.CONFIG])
    ck = C.from_files({**plain, C.CONFIG: json.dumps({**old, "format_version": 1}).encode()})
    assert ck.model_cfg.attention == "none"


def test_bad_json(files):
    cfg = json.loads(files[C.CONFIG])
    voc = json.loads(files[C.VOCAB])
    _raises({**files, C.CONFIG: b"{not json"}, "not valid JSON")
    _raises({**files, C.CONFIG: b"\xff\xfe"}, "UTF-8")
    _raises({**files, C.CONFIG: b"[" * 100_000 + b"]" * 100_000}, "nested")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "extra": 1}).encode()}, "unknown key")
    _raises({**files, C.CONFIG: json.dumps({k: v for k, v in cfg.items() if k != "tokens"}).encode()}, "missing")
    _raises(
        {**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "hidden": 10**7}}).encode()},
        "hidden|parameters",
    )
    _raises({**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "hidden": 4000}}).encode()}, "parameters")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "cell": "transformer"}}).encode()}, "cell")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "train": {**cfg["train"], "lr": "fast"}}).encode()}, "lr")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "format_version": 99}).encode()}, "format_version")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "tokens": "bytes"}).encode()}, "tokens")
    _raises({**files, C.CONFIG: b"NaN"}, "JSON object")
    _raises({**files, C.VOCAB: json.dumps({**voc, "src": voc["src"][:-1]}).encode()}, "tokens but")
    _raises({**files, C.VOCAB: json.dumps({**voc, "src": voc["src"][1:] + ["q"]}).encode()}, "start with")
    _raises({**files, C.VOCAB: json.dumps({**voc, "src": voc["src"][:-1] + ["a"]}).encode()}, "twice")
    _raises({**files, C.VOCAB: json.dumps({"src": voc["src"]}).encode()}, "missing")
    _raises({**files, C.METRICS: b"[1, 2]"}, "JSON object")
    _raises({**files, C.METRICS: b'{"exact_match": 7}'}, "exact_match")


# ------------------------------------------------------------------------------------------------------------- fuzzing


def _check(loader: str, fn, *args) -> None:
    """Every input either loads a usable model or raises CheckpointError: nothing else may escape."""
    COUNTS[loader] = COUNTS.get(loader, 0) + 1
    try:
        c = fn(*args)
    except C.CheckpointError as e:
        assert str(e)
        return
    assert isinstance(c.model, Seq2Seq) and len(c.src_vocab) == c.model_cfg.src_vocab_size
    for t in c.model.state_dict().values():
        assert torch.isfinite(t).all()


@FUZZ
@given(data=st.data())
def test_fuzz_truncated_and_bit_flipped_zip(zip_bytes, data):
    z = bytearray(zip_bytes)
    if data.draw(st.booleans(), label="truncate"):
        z = z[: data.draw(st.integers(0, len(z) - 1), label="cut at")]
    for _ in range(data.draw(st.integers(0 if len(z) < len(zip_bytes) else 1, 8), label="n flips")):
        if z:
            i = data.draw(st.integers(0, len(z) - 1), label="byte")
            z[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    _check("zip bytes (truncated / bit flips)", C.from_zip_bytes, bytes(z))


@FUZZ
@given(data=st.data())
def test_fuzz_truncated_and_bit_flipped_files(ckpt, files, data):
    name = data.draw(st.sampled_from(C.MODEL_FILES), label="file")
    b = bytearray(files[name])
    if data.draw(st.booleans(), label="truncate"):
        b = b[: data.draw(st.integers(0, max(len(b) - 1, 0)), label="cut at")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="n flips")):
            i = data.draw(st.integers(0, len(b) - 1), label="byte")
            b[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    _check("folder files (truncated / bit flips)", C.from_files, {**files, name: bytes(b)})


@FUZZ
@given(data=st.data())
def test_fuzz_safetensors_header(ckpt, files, data):
    """Edits inside the safetensors JSON header: wrong dtypes, shapes, offsets, names."""
    w = files[C.WEIGHTS]
    n = struct.unpack("<Q", w[:8])[0]
    header = json.loads(w[8 : 8 + n])
    key = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")), label="tensor")
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "name", "delete"]), label="field")
    junk = st.one_of(
        st.integers(-(2**40), 2**40),
        st.text(max_size=5),
        st.none(),
        st.lists(st.integers(-5, 2**33), max_size=4),
        st.sampled_from(["F16", "F64", "I64", "BOOL", "U8"]),
    )
    if field == "delete":
        del header[key]
    elif field == "name":
        header[data.draw(st.text(max_size=20), label="new name")] = header.pop(key)
    else:
        header[key][field] = data.draw(junk, label="value")
    hb = json.dumps(header).encode()
    _check("safetensors header edits", C.from_files, {**files, C.WEIGHTS: struct.pack("<Q", len(hb)) + hb + w[8 + n :]})


def _json_value():
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
        max_leaves=10,
    )


def _edit(obj, data, depth=0):
    """Replace, delete or add one key somewhere in a JSON document."""
    if isinstance(obj, dict) and obj and depth < 3 and data.draw(st.booleans(), label="descend"):
        k = data.draw(st.sampled_from(sorted(obj)), label="key")
        return {**obj, k: _edit(obj[k], data, depth + 1)}
    if isinstance(obj, list) and obj and depth < 3 and data.draw(st.booleans(), label="descend list"):
        i = data.draw(st.integers(0, len(obj) - 1), label="index")
        return obj[:i] + [_edit(obj[i], data, depth + 1)] + obj[i + 1 :]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    if isinstance(obj, dict) and obj and action == "delete":
        k = data.draw(st.sampled_from(sorted(obj)), label="key to delete")
        return {kk: v for kk, v in obj.items() if kk != k}
    if isinstance(obj, dict) and action == "add":
        return {**obj, data.draw(st.text(max_size=8), label="new key"): data.draw(_json_value(), label="new value")}
    return data.draw(_json_value(), label="replacement")


@FUZZ
@given(data=st.data())
def test_fuzz_json_edits(ckpt, files, data):
    name = data.draw(st.sampled_from([C.CONFIG, C.VOCAB, C.METRICS, C.HISTORY]), label="file")
    doc = _edit(json.loads(files[name]), data)
    _check(
        "JSON edits (config/vocab/metrics/history)",
        C.from_files,
        {**files, name: json.dumps(doc, allow_nan=True).encode()},
    )


@FUZZ
@given(blob=st.binary(max_size=2000), name=st.sampled_from(C.FILES))
def test_fuzz_random_bytes(files, blob, name):
    _check("random bytes (zip and each file)", C.from_zip_bytes, blob)
    _check("random bytes (zip and each file)", C.from_files, {**files, name: blob})


def test_zz_print_fuzz_counts(capsys):
    """Runs last in this file: how many hostile cases each loader saw (printed even without -s)."""
    assert COUNTS, "the fuzz tests did not run"
    with capsys.disabled():
        for loader, n in sorted(COUNTS.items()):
            print(f"\ncheckpoint fuzz: {n} cases tried on {loader}", end="")
        print()


# ------------------------------------------------------------------------- replaced whole: manifest, lock, faults
def _other_ckpt() -> C.Checkpoint:
    """Another model of the same shape, its vocabularies the same tokens in another order: a mix with make_ckpt()
    (the old vocabulary, the new weights) would load and predict garbage."""
    a = make_ckpt()
    src, tgt = (Vocab(v.itos[:4] + v.itos[4:][::-1]) for v in (a.src_vocab, a.tgt_vocab))
    torch.manual_seed(1)
    model = Seq2Seq(a.model_cfg).eval()
    return C.Checkpoint(
        model=model,
        model_cfg=a.model_cfg,
        train_cfg=a.train_cfg,
        tokens="char",
        src_vocab=src,
        tgt_vocab=tgt,
        metrics={"exact_match": 0.25},
        history={},
        task="reverse",
    )


INPUTS = ["hello", "abc", "two", "pqr", "zzz"]


def _predictions(ck: C.Checkpoint) -> list[str]:
    return [translate(ck.model, ck, s) for s in INPUTS]


def _fingerprint(ck: C.Checkpoint):
    return (
        _predictions(ck),
        ck.src_vocab.itos,
        ck.tgt_vocab.itos,
        ck.metrics,
        {k: v.clone() for k, v in ck.model.state_dict().items()},
    )


def _which(folder, a_print, b_print) -> str:
    """'old' or 'new': the folder loads and predicts exactly as one of the two checkpoints (weights included)."""
    ck = C.load(folder)
    got = _fingerprint(ck)
    for name, ref in (("old", a_print), ("new", b_print)):
        if got[:4] == ref[:4] and all(torch.equal(got[4][k], ref[4][k]) for k in ref[4]):
            return name
    raise AssertionError(f"{folder} loads but is neither the old nor the new checkpoint: {got[:2]}")


def test_manifest_refuses_files_of_two_saves(tmp_path):
    a, b = make_ckpt(), _other_ckpt()
    fa, fb = C.to_files(a), C.to_files(b)
    m = json.loads(fa[C.MANIFEST])
    assert m["format"] == "seq2seq-checkpoint" and set(m["files"]) == set(C.MODEL_FILES) and len(m["set_id"]) == 32
    differ = [n for n in C.MODEL_FILES if fa[n] != fb[n]]
    assert differ == [C.WEIGHTS, C.VOCAB, C.METRICS, C.HISTORY]  # config.json: the same bytes, so it belongs
    for name in differ:  # any one file from the other save: refused, saying so
        with pytest.raises(C.CheckpointError, match=f"{name} does not belong with the other files"):
            C.from_files({**fa, name: fb[name]})
    # the mix that loaded silently before the manifest (old vocabulary, new weights) is refused in a folder too
    folder = tmp_path / "mix"
    C.save(a, folder)
    (folder / C.VOCAB).write_bytes(fb[C.VOCAB])
    with pytest.raises(C.CheckpointError, match="vocab.json does not belong"):
        C.load(folder)
    without = {k: v for k, v in fa.items() if k != C.MANIFEST}
    assert _predictions(C.from_files({**without, C.VOCAB: fb[C.VOCAB]})) != _predictions(a)  # what it guards
    # a damaged or hostile manifest, an unlisted or a missing training file
    _raises({**fa, C.MANIFEST: fb[C.MANIFEST]}, "does not belong")
    _raises({**fa, C.MANIFEST: b"[]"}, "manifest.json: expected a JSON object")
    _raises({**fa, C.MANIFEST: json.dumps({**m, "set_id": "0" * 32}).encode()}, "set id")
    _raises({**fa, C.MANIFEST: json.dumps({**m, "files": {**m["files"], "../x": {}}}).encode()}, "unknown file")
    _raises({**fa, C.TRAIN_STATE: b"{}", C.TRAIN_TENSORS: C.st_save({})}, "training.*does not belong")
    # the zip download carries the manifest and the upload checks it
    z = C.to_zip_bytes(a)
    assert C.MANIFEST in zipfile.ZipFile(io.BytesIO(z)).namelist()
    _same(a, C.from_zip_bytes(z))
    with pytest.raises(C.CheckpointError, match="does not belong"):
        C.from_zip_bytes(_zip({**fa, C.WEIGHTS: fb[C.WEIGHTS]}))
    _same(a, C.from_zip_bytes(_zip(without)))  # zips made before the manifest still load


def test_training_files_round_trip_and_are_checked(tmp_path):
    a = make_ckpt()
    a.training = {
        "state": {"step": 7, "x": [1.5, None]},
        "tensors": {"optim.0.exp_avg": torch.ones(3), "rng": torch.arange(4, dtype=torch.uint8)},
    }
    C.save(a, tmp_path / "t")
    assert sorted(os.listdir(tmp_path / "t")) == sorted(C.ALL_FILES)
    assert C.load(tmp_path / "t").training is None  # read only when asked for
    t = C.load(tmp_path / "t", training=True).training
    assert t["state"] == {"step": 7, "x": [1.5, None]} and torch.equal(t["tensors"]["optim.0.exp_avg"], torch.ones(3))
    assert t["tensors"]["rng"].dtype == torch.uint8
    (tmp_path / "t" / C.TRAIN_STATE).write_bytes(b'{"step": 8}')
    with pytest.raises(C.CheckpointError, match="training.json does not belong"):
        C.load(tmp_path / "t", training=True)
    (tmp_path / "t" / C.TRAIN_STATE).unlink()
    with pytest.raises(C.CheckpointError, match="training.json is missing"):
        C.load(tmp_path / "t")


def test_save_replaces_a_checkpoint_but_never_other_files(tmp_path):
    a, b = make_ckpt(), _other_ckpt()
    pa, pb = _fingerprint(a), _fingerprint(b)
    C.save(a, tmp_path / "ck")
    C.save(b, tmp_path / "ck")
    assert _which(tmp_path / "ck", pa, pb) == "new"
    assert sorted(os.listdir(tmp_path)) == [".ck.lock", "ck"]  # no temporary folder left
    legacy = tmp_path / "legacy"  # a folder of an older version (no manifest) is a checkpoint too
    legacy.mkdir()
    for name, data in C.to_files(a).items():
        if name != C.MANIFEST:
            (legacy / name).write_bytes(data)
    C.save(b, legacy)
    assert _which(legacy, pa, pb) == "new"
    (tmp_path / "empty").mkdir()
    C.save(a, tmp_path / "empty")
    assert _which(tmp_path / "empty", pa, pb) == "old"
    home = tmp_path / "home"  # a folder of other files: refused, untouched
    home.mkdir()
    (home / "thesis.txt").write_text("years of work")
    for bad, match in ((home, "other files"), (home / "thesis.txt", "is a file"), ("", "empty")):
        with pytest.raises(C.CheckpointError, match=match):
            C.save(a, bad)
        with pytest.raises(C.CheckpointError, match=match):
            C.check_target(bad, 1000)
    assert os.listdir(home) == ["thesis.txt"] and (home / "thesis.txt").read_text() == "years of work"
    with pytest.raises(C.CheckpointError, match="MB free"):
        C.check_target(tmp_path / "big", 2**62)
    C.check_target(tmp_path / "new" / "deeper", 1000)  # folders that save() would create: fine


def test_a_second_writer_is_refused_and_told_who(tmp_path):
    a = make_ckpt()
    C.save(a, tmp_path / "ck")
    code = (
        "import sys; from seq2seq import checkpoint as C\n"
        "lock = C.CheckpointLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "ck")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(C.CheckpointLocked, match=f"process {holder.pid}") as e:
            C.save(_other_ckpt(), tmp_path / "ck")
        assert e.value.pid == holder.pid
        with pytest.raises(C.CheckpointLocked):
            C.CheckpointLock(tmp_path / "ck").acquire()
    finally:
        holder.stdin.close()
        holder.wait(30)
    _same(a, C.load(tmp_path / "ck"))  # untouched
    with C.CheckpointLock(tmp_path / "ck"):  # free again once its holder ends; a holder's own saves go through
        C.save(_other_ckpt(), tmp_path / "ck")


def test_load_reads_the_new_folder_of_a_swap_killed_between_its_renames(tmp_path):
    a, b = make_ckpt(), _other_ckpt()
    pa, pb = _fingerprint(a), _fingerprint(b)
    C.save(a, tmp_path / "scratch" / "old")
    C.save(b, tmp_path / "scratch" / "new")
    os.mkdir(tmp_path / "p")
    os.rename(tmp_path / "scratch" / "old", tmp_path / "p" / ".ck.old-1-ab")  # the instant between the renames
    os.rename(tmp_path / "scratch" / "new", tmp_path / "p" / ".ck.new-1-ab")
    (tmp_path / "p" / ".ck.new-2-cd").mkdir()  # and an older writer's unfinished folder
    assert _which(tmp_path / "p" / "ck", pa, pb) == "new"
    assert C.describe_target(tmp_path / "p" / "ck") == "checkpoint"
    C.save(a, tmp_path / "p" / "ck")  # the next save finishes the swap and removes the leftovers
    assert _which(tmp_path / "p" / "ck", pa, pb) == "old"
    assert sorted(os.listdir(tmp_path / "p")) == [".ck.lock", "ck"]


STEPS = ("mkdir", "write", "fsync", "rename", "exchange", "rmtree")


def _inject(monkeypatch, at: int, action) -> list[str]:
    """Wrap every file-system step of a save; at step `at` (1-based) call action(kind, real, args) instead."""
    seen: list[str] = []
    for kind in STEPS:
        real = getattr(C.FS, kind)

        def step(*args, _kind=kind, _real=real, **kw):
            seen.append(_kind)
            if len(seen) == at:
                return action(_kind, _real, args, kw)
            return _real(*args, **kw)

        monkeypatch.setattr(C.FS, kind, step)
    return seen


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_killed_at_every_step_of_a_save_the_folder_is_old_or_new(tmp_path, monkeypatch, exchange):
    """Fault injection: a child process saves the new checkpoint over the old one and SIGKILLs itself at step k
    (k = 1, 2, ... until a save completes): in the middle of a write (half the bytes written), or just before an
    fsync, a rename, the exchange, or the removal of the old folder (after deleting one of its files). Each time,
    the folder must load and predict exactly as the old checkpoint or exactly as the new one."""
    import signal

    a, b = make_ckpt(), _other_ckpt()
    pa, pb = _fingerprint(a), _fingerprint(b)
    if not exchange:
        monkeypatch.setattr(C.FS, "exchange", lambda x, y: False)

    def die(kind, real, args, kw):
        if kind == "write":
            os.write(args[0], bytes(args[1][: max(len(args[1]) // 2, 1)]))
        if kind == "rmtree" and os.path.isdir(args[0]) and os.listdir(args[0]):
            os.unlink(os.path.join(args[0], sorted(os.listdir(args[0]))[0]))
        os.kill(os.getpid(), signal.SIGKILL)

    outcomes, k = [], 0
    while True:
        k += 1
        folder = tmp_path / f"k{k}" / "ck"
        C.save(a, folder)
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                _inject(monkeypatch, k, die)
                C.save(b, folder)
                os._exit(0)
            except BaseException:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) or os.WTERMSIG(status) == signal.SIGKILL, status
        finished = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert os.WIFSIGNALED(status) or finished, f"the writer failed at step {k}"
        outcomes.append(_which(folder, pa, pb))
        C.save(a if outcomes[-1] == "new" else b, folder)  # the next save recovers and cleans up
        assert _which(folder, pa, pb) == ("old" if outcomes[-1] == "new" else "new")
        assert sorted(os.listdir(folder.parent)) == [".ck.lock", "ck"]
        if finished:
            break
    assert k > 15 and outcomes[-1] == "new" and "old" in outcomes, outcomes
    swap = outcomes.index("new")  # before the swap: old; from the swap on: new
    assert outcomes == ["old"] * swap + ["new"] * (k - swap), outcomes
    COUNTS[f"killed save ({'exchange' if exchange else 'two renames'}), steps"] = k


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_a_failing_disk_at_any_step_leaves_the_old_checkpoint(tmp_path, monkeypatch, err):
    """ENOSPC (a full disk) or EIO at each step of a save, in turn: one-line CheckpointError, no temporary folder
    left, the old checkpoint's files byte for byte as they were; or, for a failure after the swap, the new one."""
    a, b = make_ckpt(), _other_ckpt()
    pa, pb = _fingerprint(a), _fingerprint(b)
    monkeypatch.setattr(C.FS, "exchange", lambda x, y: False)  # the longer dance: more steps to fail

    def fail(kind, real, args, kw):
        raise OSError(err, os.strerror(err))

    k = 0
    while True:
        k += 1
        folder = tmp_path / f"k{k}" / "ck"
        with monkeypatch.context() as m:
            m.setattr(C.FS, "exchange", lambda x, y: False)
            C.save(a, folder)
            before = {p.name: p.read_bytes() for p in folder.iterdir()}
            seen = _inject(m, k, fail)
            try:
                C.save(b, folder)
                raised = None
            except C.CheckpointError as e:
                raised = str(e)
        assert sorted(p for p in os.listdir(folder.parent) if ".old-" not in p) == [".ck.lock", "ck"]
        if raised is not None:
            assert (
                "\n" not in raised
                and ("no space left" in raised if err == errno.ENOSPC else "cannot save" in raised)
                and "nothing was replaced" in raised
            ), raised
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
            assert _which(folder, pa, pb) == "old"
        else:
            assert _which(folder, pa, pb) == "new"
        if len(seen) < k:  # no step left to fail
            break
    assert k > 15
