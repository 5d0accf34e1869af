"""Checkpoints: a trained model as a folder of safetensors weights + JSON, or the same files in a .zip.

A checkpoint folder holds five files:

    model.safetensors   the weights (tensors only: the safetensors format cannot hold code)
    config.json         {"format_version": 2, "model": ModelConfig, "train": TrainConfig | null,
                         "tokens": "char" | "word" | "subword", "task": name | null,
                         "tokenizer": {"mode", "lowercase", "bpe": the learned subword model (HF tokenizers JSON)}}
    vocab.json          {"src": [itos...], "tgt": [itos...]}   (ids are list positions; 0..3 are the specials)
    metrics.json        held-out metrics measured when it was saved (exact_match, token_accuracy, loss, n, ...)
    history.json        the training curves (dict of lists)

Loading treats every byte as hostile. Nothing is ever unpickled (no torch.load, no pickle), sizes are checked before
anything is read or parsed, zips are read member by member into memory (never extracted to disk) after their declared
sizes and compression ratios are checked, and the weights must match, name for name, shape for shape and dtype for
dtype, the model that config.json describes, with every value finite. Any problem raises CheckpointError with a
message a student can act on; no other exception escapes `load` or `from_zip_bytes`.
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ModelConfig, TrainConfig
from .data import SPECIALS, Vocab
from .tokens import Tokenizer, as_tokenizer
from .limits import get_limits
from .model import Seq2Seq, count_parameters

FORMAT_VERSION = 2  # 2: the attention decoder feeds c_t (computed from s_{t-1}) into its cell (see model.py)
WEIGHTS, CONFIG, VOCAB, METRICS, HISTORY = "model.safetensors", "config.json", "vocab.json", "metrics.json", "history.json"
FILES = (WEIGHTS, CONFIG, VOCAB, METRICS, HISTORY)
MAX_ZIP_RATIO = 200  # uncompressed / compressed size per zip member; zeros deflate ~1000x, real checkpoints ~1.1x
MAX_TOKEN_CHARS = 200  # one vocabulary entry
MAX_JSON_DEPTH = 20


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded. The message says which file and what is wrong."""


@dataclass
class Checkpoint:
    model: Seq2Seq
    model_cfg: ModelConfig
    train_cfg: TrainConfig | None
    tokens: str  # "char" | "word" | "subword" (= tokenizer.mode)
    src_vocab: Vocab
    tgt_vocab: Vocab
    metrics: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    task: str | None = None
    tokenizer: Tokenizer | None = None  # None: the plain tokenizer of `tokens`

    def __post_init__(self):
        if self.tokenizer is None:
            self.tokenizer = as_tokenizer(self.tokens)


# ----------------------------------------------------------------------------------------------------------- saving


def _plain(x):
    """JSON-safe copy: tensors/numpy to numbers, non-finite floats to null (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "tolist"):  # torch / numpy scalars and arrays
        return _plain(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_files(ckpt: Checkpoint) -> dict[str, bytes]:
    """The five files of a checkpoint, as bytes."""
    weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.model.state_dict().items()}
    config = {
        "format_version": FORMAT_VERSION,
        "model": ckpt.model_cfg.to_dict(),
        "train": ckpt.train_cfg.to_dict() if ckpt.train_cfg is not None else None,
        "tokens": ckpt.tokens,
        "task": ckpt.task,
        "tokenizer": ckpt.tokenizer.to_dict(),
    }
    vocab = {"src": list(ckpt.src_vocab.itos), "tgt": list(ckpt.tgt_vocab.itos)}

    def dump(obj) -> bytes:
        return json.dumps(_plain(obj), indent=1, allow_nan=False, ensure_ascii=False).encode("utf-8")

    return {
        WEIGHTS: st_save(weights, metadata={"format": "pt"}),
        CONFIG: dump(config),
        VOCAB: dump(vocab),
        METRICS: dump(ckpt.metrics or {}),
        HISTORY: dump(ckpt.history or {}),
    }


def save(ckpt: Checkpoint | dict, path: str | os.PathLike) -> Path:
    """Write a checkpoint folder (created if needed; the five files are overwritten). Returns the folder.

    `ckpt` is a Checkpoint or a dict of its fields (model, model_cfg, train_cfg, tokens, src_vocab, tgt_vocab,
    metrics, history, task)."""
    if isinstance(ckpt, dict):
        ckpt = Checkpoint(**ckpt)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in to_files(ckpt).items():
        tmp = out / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out / name)  # atomic: a crash never leaves half a file under the real name
    return out


def to_zip_bytes(ckpt: Checkpoint) -> bytes:
    """The checkpoint as a .zip (the five files at its root), for a download button."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in to_files(ckpt).items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed date: same model, same bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------- loading


def _max_bytes() -> int:
    return get_limits().max_upload_bytes


def load(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint folder, or a .zip file holding one. Raises CheckpointError on any problem."""
    p = Path(path)
    try:
        st_mode = os.lstat(p).st_mode
    except OSError as e:
        raise CheckpointError(f"cannot open checkpoint {p}: {e.strerror or e}") from None
    if stat.S_ISLNK(st_mode):
        raise CheckpointError(f"{p} is a symbolic link; give the checkpoint folder itself")
    if stat.S_ISREG(st_mode):
        return from_zip_bytes(_read_file(p, _max_bytes()))
    if not stat.S_ISDIR(st_mode):
        raise CheckpointError(f"{p} is neither a checkpoint folder nor a .zip file")
    budget = _max_bytes()
    files = {}
    for name in FILES:
        data = _read_file(p / name, budget)
        budget -= len(data)
        files[name] = data
    return from_files(files)


def _read_file(f: Path, max_bytes: int) -> bytes:
    """Read one regular file (not a link, not a device), refusing it if it is larger than max_bytes."""
    try:
        st_ = os.lstat(f)
    except FileNotFoundError:
        raise CheckpointError(f"{f.name} is missing from the checkpoint {f.parent}") from None
    except OSError as e:
        raise CheckpointError(f"cannot open {f}: {e.strerror or e}") from None
    if stat.S_ISLNK(st_.st_mode):
        raise CheckpointError(f"{f.name} is a symbolic link; checkpoints must hold plain files")
    if not stat.S_ISREG(st_.st_mode):
        raise CheckpointError(f"{f.name} is not a plain file")
    if st_.st_size > max_bytes:
        raise CheckpointError(f"{f.name} is {st_.st_size / 2**20:.1f} MB, over the upload limit of "
                              f"{max_bytes / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)")
    try:
        with open(f, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may grow between stat and read
    except OSError as e:
        raise CheckpointError(f"cannot read {f}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise CheckpointError(f"{f.name} is over the upload limit of {max_bytes / 2**20:.1f} MB")
    return data


def from_zip_bytes(b: bytes) -> Checkpoint:
    """Load a checkpoint from the bytes of a .zip (e.g. an upload). Members are read into memory, never to disk.

    The zip may hold the five files at its root or inside one folder (what zipping a checkpoint folder gives).
    Declared sizes, the total, and each member's compression ratio are checked before anything is decompressed,
    and each read is capped at its declared size, so a zip bomb costs nothing."""
    max_bytes = _max_bytes()
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise CheckpointError("expected the bytes of a .zip file")
    if len(b) > max_bytes:
        raise CheckpointError(f"the file is {len(b) / 2**20:.1f} MB, over the upload limit of "
                              f"{max_bytes / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)")
    if bytes(b[:2]) != b"PK":
        raise CheckpointError("not a .zip file: upload the .zip downloaded from the app (model.safetensors, "
                              "config.json, vocab.json, metrics.json, history.json)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(b)))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError, OSError) as e:
        raise CheckpointError(f"the .zip file is damaged or unsupported ({e})") from None
    with zf:
        if len(infos) > 3 * len(FILES):
            raise CheckpointError(f"the .zip holds {len(infos)} entries; a checkpoint has {len(FILES)} files")
        members: dict[str, zipfile.ZipInfo] = {}
        prefixes = set()
        for info in infos:
            name = info.filename
            if "\\" in name or name.startswith("/") or ".." in name.split("/") or ":" in name or "\x00" in name:
                raise CheckpointError(f"the .zip holds an unsafe path name {name!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise CheckpointError(f"the .zip holds a symbolic link {name!r}; checkpoints hold plain files")
            if info.flag_bits & 0x1:
                raise CheckpointError("the .zip is encrypted; upload an unencrypted checkpoint")
            if info.is_dir():
                continue
            parts = name.split("/")
            if parts[-1].startswith("._") or parts[0] == "__MACOSX":
                continue  # macOS resource forks from Finder's "Compress"
            if len(parts) > 2 or parts[-1] not in FILES:
                raise CheckpointError(f"unexpected file {name!r} in the .zip; a checkpoint holds only "
                                      f"{', '.join(FILES)}")
            if parts[-1] in members:
                raise CheckpointError(f"the .zip holds {parts[-1]} twice")
            prefixes.add(parts[0] if len(parts) == 2 else "")
            members[parts[-1]] = info
        if len(prefixes) > 1:
            raise CheckpointError("the .zip holds files from more than one folder; zip one checkpoint folder")
        missing = [n for n in FILES if n not in members]
        if missing:
            raise CheckpointError(f"the .zip lacks {', '.join(missing)}")
        total = sum(i.file_size for i in members.values())
        if total > max_bytes:
            raise CheckpointError(f"the .zip unpacks to {total / 2**20:.1f} MB, over the upload limit of "
                                  f"{max_bytes / 2**20:.1f} MB")
        for name, info in members.items():
            if info.file_size > 1024 * 1024 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                raise CheckpointError(f"{name} in the .zip is compressed {info.file_size / max(info.compress_size, 1):.0f}"
                                      f"x; refused as a possible zip bomb")
        files = {}
        for name, info in members.items():
            try:
                with zf.open(info) as fh:
                    data = fh.read(info.file_size + 1)  # zipfile never yields more than the declared size
            except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError, RuntimeError) as e:
                raise CheckpointError(f"{name} in the .zip is damaged ({e})") from None
            except Exception as e:  # zlib.error, lzma.LZMAError, bz2 errors: damaged compressed data
                raise CheckpointError(f"{name} in the .zip is damaged ({type(e).__name__}: {e})") from None
            if len(data) != info.file_size:
                raise CheckpointError(f"{name} in the .zip is truncated")
            files[name] = data
    return from_files(files)


def _parse_json(name: str, data: bytes) -> object:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{name} is not UTF-8 text (byte {e.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{name} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(f"{name} is nested too deeply") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
    return obj


def _depth(obj, d: int = 0) -> int:
    stack, deepest = [(obj, d)], d
    while stack:
        o, k = stack.pop()
        deepest = max(deepest, k)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(o, dict):
            stack.extend((v, k + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, k + 1) for v in o)
    return deepest


def _expect_keys(name: str, d: object, required: set[str], optional: set[str] = frozenset()) -> dict:
    if not isinstance(d, dict):
        raise CheckpointError(f"{name}: expected a JSON object, got {type(d).__name__}")
    missing, extra = required - set(d), set(d) - required - set(optional)
    if missing:
        raise CheckpointError(f"{name}: missing key(s) {', '.join(sorted(missing))}")
    if extra:
        raise CheckpointError(f"{name}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    return d


def _vocab(name: str, itos: object, size: int) -> Vocab:
    if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
        raise CheckpointError(f"vocab.json: {name!r} must be a list of strings")
    if len(itos) != size:
        raise CheckpointError(f"vocab.json: {name!r} has {len(itos)} tokens but config.json says {size}")
    if itos[: len(SPECIALS)] != SPECIALS:
        raise CheckpointError(f"vocab.json: {name!r} must start with {', '.join(SPECIALS)}")
    if len(set(itos)) != len(itos):
        raise CheckpointError(f"vocab.json: {name!r} lists a token twice")
    if any(len(t) == 0 or len(t) > MAX_TOKEN_CHARS for t in itos):
        raise CheckpointError(f"vocab.json: {name!r} has an empty token or one over {MAX_TOKEN_CHARS} characters")
    return Vocab(itos)


def _read_header(data: bytes) -> dict:
    """The safetensors JSON header {name: {dtype, shape, data_offsets}} read by hand, to check it before loading."""
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    if not 2 <= n <= len(data) - 8:
        if data[:1] == b"\x80" or data[:2] == b"PK":  # pickle protocol 2+ / torch.save's zip of pickles
            raise CheckpointError("model.safetensors is not a safetensors file (it looks like a pickle or a "
                                  "torch.save file); only safetensors weights are accepted, and nothing is unpickled")
        raise CheckpointError("model.safetensors is truncated or damaged (its header length is out of range)")
    if data[8:9] != b"{":
        raise CheckpointError("model.safetensors is not a safetensors file (its header is not JSON)")
    header = _parse_json(WEIGHTS + " header", data[8 : 8 + n])
    if not isinstance(header, dict):
        raise CheckpointError("model.safetensors has a damaged header")
    header.pop("__metadata__", None)
    return header


_DTYPES = {torch.float32: "F32"}


def _check_weights(data: bytes, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    header = _read_header(data)
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing:
        raise CheckpointError(f"model.safetensors lacks {len(missing)} tensor(s) the config needs, e.g. {missing[0]!r}"
                              " (weights and config.json do not match)")
    if extra:
        raise CheckpointError(f"model.safetensors holds {len(extra)} tensor(s) the config has no place for, "
                              f"e.g. {extra[0][:80]!r} (weights and config.json do not match)")
    for k, ref in expected.items():
        h = header[k]
        if not isinstance(h, dict):
            raise CheckpointError(f"model.safetensors: damaged header entry for {k!r}")
        want = _DTYPES.get(ref.dtype, str(ref.dtype))
        if h.get("dtype") != want:
            raise CheckpointError(f"model.safetensors: {k} has dtype {h.get('dtype')!r}, expected {want}")
        if h.get("shape") != list(ref.shape):
            raise CheckpointError(f"model.safetensors: {k} has shape {h.get('shape')!r}, the config needs "
                                  f"{list(ref.shape)}")
    try:
        weights = st_load(bytes(data))
    except Exception as e:  # SafetensorError and friends: the Rust parser validates offsets and coverage
        raise CheckpointError(f"model.safetensors is damaged ({e})") from None
    for k, t in weights.items():
        if t.dtype != expected[k].dtype or tuple(t.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"model.safetensors: {k} does not match the config")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"model.safetensors: {k} holds NaN or infinite values (a diverged model?)")
    return weights


def from_files(files: dict[str, bytes]) -> Checkpoint:
    """Build a Checkpoint from the five files' bytes, checking everything. Raises CheckpointError."""
    limits = get_limits()
    config = _expect_keys(CONFIG, _parse_json(CONFIG, files[CONFIG]),
                          {"format_version", "model", "train", "tokens", "task"}, {"tokenizer"})
    if config["format_version"] not in (1, FORMAT_VERSION):
        raise CheckpointError(f"config.json: format_version {config['format_version']!r} is not supported "
                              f"(this version reads 1 and {FORMAT_VERSION})")
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
        train_cfg = None if config["train"] is None else TrainConfig.from_dict(config["train"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"config.json: {e}") from None
    if config["format_version"] == 1 and model_cfg.attention != "none":  # same weights, different decoder math
        raise CheckpointError("this model was saved by an older version whose attention decoder worked differently "
                              "(format_version 1); its weights would give wrong outputs here. Train it again.")
    if config["tokens"] not in ("char", "word", "subword"):
        raise CheckpointError(f"config.json: tokens must be 'char', 'word' or 'subword', got {config['tokens']!r}")
    try:
        tokenizer = Tokenizer.from_dict(config.get("tokenizer", config["tokens"]))
    except Exception as e:  # ValueError from our checks; anything else from a malformed object: still a message
        raise CheckpointError(f"config.json: {e}") from None
    if tokenizer.mode != config["tokens"]:
        raise CheckpointError(f"config.json: the tokenizer cuts {tokenizer.mode} tokens but tokens says "
                              f"{config['tokens']!r}")
    task = config["task"]
    if task is not None and (not isinstance(task, str) or len(task) > 100):
        raise CheckpointError("config.json: task must be a short name or null")
    for side, size in (("source", model_cfg.src_vocab_size), ("target", model_cfg.tgt_vocab_size)):
        if size > limits.max_vocab:
            raise CheckpointError(f"config.json: the {side} vocabulary has {size} tokens, over the limit of "
                                  f"{limits.max_vocab} (SEQ2SEQ_MAX_VOCAB)")

    n_params = count_parameters(model_cfg)["total"]  # arithmetic on the config: nothing allocated yet
    if n_params > limits.max_params:
        raise CheckpointError(f"config.json describes a model with {n_params:,} parameters, over the limit of "
                              f"{limits.max_params:,} (SEQ2SEQ_MAX_PARAMS)")
    # Expected names, shapes and dtypes from the model built on the "meta" device (shapes only, no memory).
    try:
        with torch.device("meta"):
            expected = Seq2Seq(model_cfg).state_dict()
    except Exception as e:
        raise CheckpointError(f"config.json describes a model that cannot be built ({e})") from None

    vocab = _expect_keys(VOCAB, _parse_json(VOCAB, files[VOCAB]), {"src", "tgt"})
    src_vocab = _vocab("src", vocab["src"], model_cfg.src_vocab_size)
    tgt_vocab = _vocab("tgt", vocab["tgt"], model_cfg.tgt_vocab_size)
    metrics = _parse_json(METRICS, files[METRICS])
    history = _parse_json(HISTORY, files[HISTORY])
    for name, obj in ((METRICS, metrics), (HISTORY, history)):
        if not isinstance(obj, dict):
            raise CheckpointError(f"{name}: expected a JSON object, got {type(obj).__name__}")
    if "exact_match" in metrics and not (isinstance(metrics["exact_match"], (int, float))
                                         and 0 <= metrics["exact_match"] <= 1):
        raise CheckpointError("metrics.json: exact_match must be a number between 0 and 1")

    weights = _check_weights(files[WEIGHTS], expected)
    model = Seq2Seq(model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"model.safetensors does not fit the model in config.json ({e})") from None
    model.eval()
    return Checkpoint(model=model, model_cfg=model_cfg, train_cfg=train_cfg, tokens=config["tokens"],
                      src_vocab=src_vocab, tgt_vocab=tgt_vocab, metrics=metrics, history=history, task=task,
                      tokenizer=tokenizer)
