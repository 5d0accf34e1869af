"""Checkpoints: exact round trips, and hostile files that must fail cleanly (CheckpointError) without running code.

The fuzz tests print how many cases each loader saw (run with -s to read them)."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
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
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
COUNTS: dict[str, int] = {}


def make_ckpt(cell="gru", attention="additive", bidirectional=True, layers=1) -> C.Checkpoint:
    pairs = [(w, w[::-1]) for w in ["abc", "hello", "world", "tiny", "model", "cab", "ba", "dcba", "xyz", "zzz",
                                    "seq", "two"]]
    data = build_data(pairs, tokens="char", max_len=20, seed=0)
    cfg = ModelConfig(len(data.src_vocab), len(data.tgt_vocab), cell=cell, embed=8, hidden=12, layers=layers,
                      bidirectional=bidirectional, attention=attention)
    torch.manual_seed(0)
    model = Seq2Seq(cfg).eval()
    return C.Checkpoint(model=model, model_cfg=cfg, train_cfg=TrainConfig(epochs=3, seed=4), tokens="char",
                        src_vocab=data.src_vocab, tgt_vocab=data.tgt_vocab,
                        metrics={"exact_match": 0.5, "loss": 1.25, "n": 2}, history={"step": [1, 2],
                        "train_loss": [2.0, float("nan")]}, task="reverse")


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


@pytest.mark.parametrize("cell,attention,bidirectional,layers", [
    ("rnn", "none", False, 1), ("gru", "additive", True, 2), ("lstm", "dot", True, 3), ("lstm", "none", True, 1)])
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
    parts = {k: getattr(ckpt, k) for k in ("model", "model_cfg", "train_cfg", "tokens", "src_vocab", "tgt_vocab",
                                           "metrics", "history", "task")}
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
    real = struct.unpack("<I", z[size_at:size_at + 4])[0]
    z[size_at:size_at + 4] = struct.pack("<I", max(real - 10, 0))
    with pytest.raises(C.CheckpointError):
        C.from_zip_bytes(bytes(z))


@pytest.mark.parametrize("name", ["../config.json", "/etc/config.json", "a/b/config.json", "..\\config.json",
                                  "c:config.json"])
def test_zip_path_traversal_names(files, name):
    with pytest.raises(C.CheckpointError):
        C.from_zip_bytes(_zip({**{k: v for k, v in files.items() if k != C.CONFIG}, name: files[C.CONFIG]}))


def test_zip_symlink_member(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            if name == C.VOCAB:
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o120777 << 16)  # a symlink to /etc/passwd
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
        C.from_zip_bytes(_zip({**{f"a/{k}": v for k, v in files.items() if k != C.CONFIG},
                               f"b/{C.CONFIG}": files[C.CONFIG]}))
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
    _raises({**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "hidden": 10**7}}).encode()},
            "hidden|parameters")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "hidden": 4000}}).encode()},
            "parameters")
    _raises({**files, C.CONFIG: json.dumps({**cfg, "model": {**cfg["model"], "cell": "transformer"}}).encode()},
            "cell")
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
    header = json.loads(w[8:8 + n])
    key = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")), label="tensor")
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "name", "delete"]), label="field")
    junk = st.one_of(st.integers(-2**40, 2**40), st.text(max_size=5), st.none(),
                     st.lists(st.integers(-5, 2**33), max_size=4), st.sampled_from(["F16", "F64", "I64", "BOOL", "U8"]))
    if field == "delete":
        del header[key]
    elif field == "name":
        header[data.draw(st.text(max_size=20), label="new name")] = header.pop(key)
    else:
        header[key][field] = data.draw(junk, label="value")
    hb = json.dumps(header).encode()
    _check("safetensors header edits", C.from_files, {**files, C.WEIGHTS: struct.pack("<Q", len(hb)) + hb + w[8 + n:]})


def _json_value():
    return st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                                  st.text(max_size=8)),
                        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=10)


def _edit(obj, data, depth=0):
    """Replace, delete or add one key somewhere in a JSON document."""
    if isinstance(obj, dict) and obj and depth < 3 and data.draw(st.booleans(), label="descend"):
        k = data.draw(st.sampled_from(sorted(obj)), label="key")
        return {**obj, k: _edit(obj[k], data, depth + 1)}
    if isinstance(obj, list) and obj and depth < 3 and data.draw(st.booleans(), label="descend list"):
        i = data.draw(st.integers(0, len(obj) - 1), label="index")
        return obj[:i] + [_edit(obj[i], data, depth + 1)] + obj[i + 1:]
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
    _check("JSON edits (config/vocab/metrics/history)", C.from_files,
           {**files, name: json.dumps(doc, allow_nan=True).encode()})


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
