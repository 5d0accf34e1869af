"""Checkpoints: a trained model as a folder of safetensors weights + JSON, or the same files in a .zip.

A checkpoint folder holds these files:

    model.safetensors   the weights (tensors only: the safetensors format cannot hold code); after training, the
                        weights of the run's best evaluation (training.py), not necessarily its last step's
    config.json         {"format_version": 2, "model": ModelConfig, "train": TrainConfig | null,
                         "tokens": "char" | "word" | "subword", "task": name | null,
                         "tokenizer": {"mode", "lowercase", "bpe": the learned subword model (HF tokenizers JSON)}}
    vocab.json          {"src": [itos...], "tgt": [itos...]}   (ids are list positions; 0..3 are the specials)
    metrics.json        held-out metrics measured when it was saved (exact_match, token_accuracy, loss, n, ...)
    history.json        the training curves (dict of lists)
    manifest.json       {"format": "seq2seq-checkpoint", "set_id": ..., "files": {name: {"sha256", "bytes"}}}
    training.safetensors, training.json   (optional, written by `train`) what `train --resume` needs to continue
                        the run exactly: its latest weights, the optimizer state, the random streams, the counters,
                        the learning-rate schedule and the curves (training.Run.training_state)

The manifest ties the files into one set: each file's sha256, and a set id computed from them. `load` refuses a
folder or zip whose files do not match their manifest (files of two different saves); folders written before the
manifest existed (no manifest.json, e.g. the shipped pretrained/ models) load as before.

Saving replaces a checkpoint whole or not at all. `save(ckpt, DIR)`:
  1. takes the writer's lock: fcntl.flock on `.DIR.lock` beside DIR (the holder's pid written inside); a second
     writer fails at once with CheckpointLocked, which names that pid. The lock file is never deleted;
  2. completes a swap that a killed writer left half done (see 5) and removes a killed writer's leftovers;
  3. writes every file into a fresh folder `.DIR.new-<pid>-<random>` beside DIR (same file system), each file
     written in full and fsynced, the manifest last, then fsyncs the folder;
  4. swaps it in: where Linux can exchange two names atomically (renameat2 RENAME_EXCHANGE: ext4, xfs, btrfs,
     tmpfs), DIR and the new folder trade places in one step; elsewhere DIR -> `.DIR.old-<same id>`, then the new
     folder -> DIR. The parent folder is fsynced, then the old checkpoint removed;
  5. the one instant where DIR does not exist is between the two renames of the fallback. Both folders are then
     complete, so `load` reads the `.DIR.new-<id>` of an `.old-<id>`/`.new-<id>` pair when DIR is missing, and the
     next save finishes the swap (step 2).
So at every instant DIR is the old checkpoint or the new one (tests/test_checkpoint.py kills a writer at every
write, fsync and rename of a save and checks it). A failure before the swap (a full disk: ENOSPC) removes the new
folder, leaves DIR untouched and raises CheckpointError in one line. DIR itself must be a new or empty folder or
hold a checkpoint: a folder holding other files is never replaced.

`load` reads a folder through one open descriptor of it, so a save that swaps the folder while it is read cannot
give it a mix: files vanish (it reads again, up to 3 times) but never change.

Loading treats every byte as hostile. Nothing is ever unpickled (no torch.load, no pickle), sizes are checked before
anything is read or parsed, zips are read member by member into memory (never extracted to disk) after their declared
sizes and compression ratios are checked, and the weights must match, name for name, shape for shape and dtype for
dtype, the model that config.json describes, with every value finite. Any problem raises CheckpointError with a
message a student can act on; no other exception escapes `load` or `from_zip_bytes`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import stat
import struct
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ModelConfig, TrainConfig
from .data import SPECIALS, Vocab
from .limits import get_limits
from .model import Seq2Seq, count_parameters
from .tokens import Tokenizer, as_tokenizer

FORMAT_VERSION = 2  # 2: the attention decoder feeds c_t (computed from s_{t-1}) into its cell (see model.py)
WEIGHTS, CONFIG, VOCAB, METRICS, HISTORY = (
    "model.safetensors",
    "config.json",
    "vocab.json",
    "metrics.json",
    "history.json",
)
MANIFEST = "manifest.json"
TRAIN_TENSORS, TRAIN_STATE = "training.safetensors", "training.json"
MODEL_FILES = (WEIGHTS, CONFIG, VOCAB, METRICS, HISTORY)  # every checkpoint has these
TRAINING_FILES = (TRAIN_TENSORS, TRAIN_STATE)  # optional, both or neither
FILES = MODEL_FILES + (MANIFEST,)  # what save() writes for a checkpoint without training state
ALL_FILES = FILES + TRAINING_FILES
MANIFEST_FORMAT = "seq2seq-checkpoint"
MAX_ZIP_RATIO = 200  # uncompressed / compressed size per zip member; zeros deflate ~1000x, real checkpoints ~1.1x
MAX_TOKEN_CHARS = 200  # one vocabulary entry
MAX_JSON_DEPTH = 20


class CheckpointError(ValueError):
    """A checkpoint could not be saved or loaded. The message says which file and what is wrong."""


class CheckpointLocked(CheckpointError):
    """Another process holds the writer's lock of this checkpoint folder (`pid`: its process id, None if unknown)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


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
    training: dict | None = None  # {"state": JSON-able dict, "tensors": {name: Tensor}} (training.Run), optional
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


def _dump(obj) -> bytes:
    return json.dumps(_plain(obj), indent=1, allow_nan=False, ensure_ascii=False).encode("utf-8")


def make_manifest(files: dict[str, bytes]) -> dict:
    """{"format", "set_id", "files": {name: {"sha256", "bytes"}}} for a checkpoint's files (the manifest excluded).
    The set id is a hash of the names and hashes: the same files always give the same manifest (and zip bytes)."""
    entries = {
        name: {"sha256": hashlib.sha256(files[name]).hexdigest(), "bytes": len(files[name])}
        for name in sorted(files)
        if name != MANIFEST
    }
    set_id = hashlib.sha256("".join(f"{n} {e['sha256']}\n" for n, e in entries.items()).encode()).hexdigest()[:32]
    return {"format": MANIFEST_FORMAT, "set_id": set_id, "files": entries}


def to_files(ckpt: Checkpoint) -> dict[str, bytes]:
    """The checkpoint's files, as bytes: the five model files, the training files if any, and the manifest."""
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
    files = {
        WEIGHTS: st_save(weights, metadata={"format": "pt"}),
        CONFIG: _dump(config),
        VOCAB: _dump(vocab),
        METRICS: _dump(ckpt.metrics or {}),
        HISTORY: _dump(ckpt.history or {}),
    }
    if ckpt.training is not None:
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in ckpt.training["tensors"].items()}
        files[TRAIN_TENSORS] = st_save(tensors, metadata={"format": "pt"})
        files[TRAIN_STATE] = _dump(ckpt.training["state"])
    files[MANIFEST] = _dump(make_manifest(files))
    return files


class _FS:
    """Every file-system step of a save, in one place: the fault-injection tests wrap these to fail or die at
    step k (tests/test_checkpoint.py)."""

    mkdir = staticmethod(os.mkdir)
    write = staticmethod(os.write)
    fsync = staticmethod(os.fsync)
    rename = staticmethod(os.rename)
    rmtree = staticmethod(shutil.rmtree)

    @staticmethod
    def exchange(a: Path, b: Path) -> bool:
        """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE). False where the system cannot."""
        fn = _renameat2()
        if fn is None:
            return False
        if fn(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
            return True
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
            return False  # this file system cannot exchange: fall back to two renames
        raise OSError(err, os.strerror(err), str(b))


FS = _FS()
_RENAMEAT2: list = []


def _renameat2():
    if not _RENAMEAT2:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            except (OSError, AttributeError):
                fn = None
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        FS.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view, done = memoryview(data), 0
        while done < len(data):
            done += FS.write(fd, view[done:])
        FS.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the writer's lock
_HELD: dict[str, CheckpointLock] = {}  # locks this process holds, by target
_SAVE_LOCK = threading.Lock()  # one save at a time within a process


def _key(target: Path) -> str:
    return os.path.join(os.path.realpath(target.parent), target.name)


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


class CheckpointLock:
    """The writer's lock of a checkpoint folder: an exclusive fcntl.flock on `.NAME.lock` beside it, with the
    holder's pid written inside. `acquire` never waits: if another process holds it, CheckpointLocked names it.
    The lock goes when it is released or the process ends (the kernel drops a dead process's flock)."""

    def __init__(self, path: str | os.PathLike):
        self.target = Path(path)
        self._fd: int | None = None

    def acquire(self) -> CheckpointLock:
        t = self.target
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(_lock_path(t), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise CheckpointError(f"cannot lock {t} for writing: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                text = ""
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"cannot lock {t} for writing: {e.strerror or e}") from None
            pid = int(text) if text.isdigit() else None
            who = f"process {pid}" if pid is not None else "another process"
            raise CheckpointLocked(
                f"{t} is being written by {who} (another train --out or save into it); wait for "
                "it to finish or choose another folder",
                pid,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _HELD[_key(t)] = self
        return self

    def release(self) -> None:
        if self._fd is not None:
            _HELD.pop(_key(self.target), None)
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> CheckpointLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------------------------- the target folder
def _siblings(target: Path) -> dict[str, dict[str, Path]]:
    """Leftovers of saves into `target`: {"new": {id: path}, "old": {id: path}}."""
    out: dict[str, dict[str, Path]] = {"new": {}, "old": {}}
    try:
        names = os.listdir(target.parent)
    except OSError:
        return out
    for name in names:
        for kind in ("new", "old"):
            prefix = f".{target.name}.{kind}-"
            if name.startswith(prefix) and len(name) > len(prefix):
                out[kind][name[len(prefix) :]] = target.parent / name
    return out


def _interrupted_swap(target: Path) -> Path | None:
    """When `target` is missing: the complete new folder of a swap killed between its two renames, if any."""
    sib = _siblings(target)
    pairs = [sib["new"][i] for i in sib["new"] if i in sib["old"]]
    if not pairs:
        return None
    return max(pairs, key=lambda p: p.stat().st_mtime_ns if p.exists() else 0)


def _recover(target: Path) -> None:
    """(Holding the lock.) Finish a swap a killed writer left half done, and remove killed writers' leftovers."""
    if not os.path.lexists(target):
        new = _interrupted_swap(target)
        if new is not None:
            FS.rename(new, target)
            _fsync_dir(target.parent)
    for kind in _siblings(target).values():
        for p in kind.values():
            _remove(p)


def describe_target(path: str | os.PathLike) -> str:
    """ "missing" | "empty" (an empty folder) | "checkpoint" | "file" | "other" (a folder holding other files) |
    "link" — what a save into `path` would replace."""
    p = Path(path)
    try:
        st_ = os.lstat(p)
    except FileNotFoundError:
        return "checkpoint" if _interrupted_swap(p) is not None else "missing"
    except OSError:
        return "other"
    if stat.S_ISLNK(st_.st_mode):
        return "link"
    if not stat.S_ISDIR(st_.st_mode):
        return "file"
    try:
        names = set(os.listdir(p))
    except OSError:
        return "other"
    if not names:
        return "empty"
    return "checkpoint" if names <= set(ALL_FILES) else "other"


def _check_replaceable(target: Path) -> None:
    kind = describe_target(target)
    if kind == "file":
        raise CheckpointError(f"{target} is a file, not a checkpoint folder")
    if kind == "link":
        raise CheckpointError(f"{target} is a symbolic link; give the checkpoint folder itself")
    if kind == "other":
        raise CheckpointError(
            f"{target} is a folder holding other files than a checkpoint's; it is never "
            "replaced: give a new or empty folder"
        )


def check_target(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse, before any work, a save into `path` that cannot succeed: an empty name, a file, a folder holding
    other files, a folder that cannot be written, or a disk without `nbytes` free. Raises CheckpointError."""
    if str(path).strip() == "":
        raise CheckpointError("the checkpoint folder's name is empty")
    target = Path(path)
    _check_replaceable(target)
    parent = target.parent
    while not parent.exists() and parent != parent.parent:  # the folders save() would create
        parent = parent.parent
    if not parent.is_dir():
        raise CheckpointError(f"{parent} is a file, so {target} cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(f"{parent} is not writable, so {target} cannot be saved there")
    free = shutil.disk_usage(parent).free
    if free < nbytes:
        raise CheckpointError(
            f"{parent} has {free / 2**20:.1f} MB free; the checkpoint needs about {nbytes / 2**20:.1f} MB"
        )


def _os_message(e: OSError, target: Path) -> str:
    if e.errno == errno.ENOSPC:
        return (
            f"no space left on the device to save {target}; nothing was replaced (the previous checkpoint, if "
            "any, is untouched): free some space and save again"
        )
    if e.errno == errno.EDQUOT:
        return f"disk quota exceeded saving {target}; nothing was replaced"
    return f"cannot save the checkpoint to {target}: {e.strerror or e}; nothing was replaced"


def save(ckpt: Checkpoint | dict, path: str | os.PathLike) -> Path:
    """Write a checkpoint folder, replacing whatever checkpoint it held, whole (see the top of this file).
    Returns the folder. Raises CheckpointError (one line) on a full disk, a folder holding other files, or
    CheckpointLocked when another process is writing it.

    `ckpt` is a Checkpoint or a dict of its fields (model, model_cfg, train_cfg, tokens, src_vocab, tgt_vocab,
    metrics, history, task, training)."""
    if isinstance(ckpt, dict):
        ckpt = Checkpoint(**ckpt)
    target = Path(path)
    if str(path).strip() == "":
        raise CheckpointError("the checkpoint folder's name is empty")
    _check_replaceable(target)  # before the lock file is made beside it (and again under the lock)
    files = to_files(ckpt)
    with _SAVE_LOCK:
        held = _HELD.get(_key(target)) if target.parent.exists() else None
        lock = None if held is not None else CheckpointLock(target).acquire()
        try:
            return _save_locked(files, target)
        finally:
            if lock is not None:
                lock.release()


def _save_locked(files: dict[str, bytes], target: Path) -> Path:
    parent, token = target.parent, f"{os.getpid()}-{secrets.token_hex(4)}"
    new, old = parent / f".{target.name}.new-{token}", parent / f".{target.name}.old-{token}"
    try:  # 1. the complete new checkpoint in a fresh folder, flushed to disk
        _recover(target)
        _check_replaceable(target)
        FS.mkdir(new)
        for name in sorted(files, key=lambda n: n == MANIFEST):  # the manifest last
            _write_file(new / name, files[name])
        _fsync_dir(new)
    except OSError as e:
        _remove(new)
        raise CheckpointError(_os_message(e, target)) from None
    try:  # 2. swapped in: at every instant `target` is the old checkpoint or the new one
        if not os.path.lexists(target) or describe_target(target) == "empty":
            FS.rename(new, target)  # rename() replaces an empty folder atomically
        elif FS.exchange(new, target):  # one atomic step: `new` now names the old checkpoint
            old = new
        else:
            FS.rename(target, old)  # target missing until the next rename: load reads `new` (see the top)
            try:
                FS.rename(new, target)
            except OSError as e:
                try:
                    FS.rename(old, target)  # put the old one back
                except OSError:  # both folders are complete: load reads the new one, the next save finishes
                    raise CheckpointError(
                        f"cannot finish saving {target} ({e.strerror or e}); the new checkpoint "
                        f"is complete in {new.name} and the next save or load uses it"
                    ) from None
                raise
    except OSError as e:
        _remove(new)
        raise CheckpointError(_os_message(e, target)) from None
    try:  # 3. the swap is done (an error now cannot undo it): make it durable, remove the old checkpoint
        _fsync_dir(parent)
    except OSError:
        pass  # the rename itself succeeded; only its flush to disk could not be confirmed
    _remove(old)  # a leftover is removed by the next save
    return target


def _remove(path: Path) -> None:
    try:
        FS.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def to_zip_bytes(ckpt: Checkpoint) -> bytes:
    """The checkpoint as a .zip (its files, manifest included, at the root), for a download button."""
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


def training_bytes_limit() -> int:
    """Most bytes the training files may hold: the latest weights and up to three optimizer tensors per weight
    (Adam: exp_avg, exp_avg_sq) for the largest model allowed, plus the curves."""
    return 16 * get_limits().max_params + 32 * 2**20


class _Replaced(Exception):
    """The folder was replaced by a save while it was read: read it again."""


def load(path: str | os.PathLike, training: bool = False) -> Checkpoint:
    """Load a checkpoint folder, or a .zip file holding one. Raises CheckpointError on any problem.

    With `training`, also the training files (Checkpoint.training; None when it has none), for `train --resume`."""
    p = Path(path)
    for _ in range(3):
        try:
            return _load_once(p, training)
        except _Replaced:
            continue
    raise CheckpointError(f"{p} kept being replaced while it was read (another process is saving into it); try again")


def _load_once(p: Path, training: bool) -> Checkpoint:
    try:
        st_mode = os.lstat(p).st_mode
    except FileNotFoundError as e:
        swapped = _interrupted_swap(p)  # a save killed between its two renames: its new folder is complete
        if swapped is None:
            raise CheckpointError(f"cannot open checkpoint {p}: {e.strerror or e}") from None
        p, st_mode = swapped, stat.S_IFDIR
    except OSError as e:
        raise CheckpointError(f"cannot open checkpoint {p}: {e.strerror or e}") from None
    if stat.S_ISLNK(st_mode):
        raise CheckpointError(f"{p} is a symbolic link; give the checkpoint folder itself")
    if stat.S_ISREG(st_mode):
        return from_zip_bytes(_read_file(p, _max_bytes()), training=training)
    if not stat.S_ISDIR(st_mode):
        raise CheckpointError(f"{p} is neither a checkpoint folder nor a .zip file")
    try:
        dfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _Replaced() from None
    except OSError as e:
        raise CheckpointError(f"cannot open checkpoint {p}: {e.strerror or e}") from None
    try:
        try:
            names = set(os.listdir(dfd))
        except OSError as e:
            raise CheckpointError(f"cannot list checkpoint {p}: {e.strerror or e}") from None
        wanted = list(MODEL_FILES)
        if MANIFEST in names:
            wanted.append(MANIFEST)
        if training and all(n in names for n in TRAINING_FILES):
            wanted.extend(TRAINING_FILES)
        budget, files = _max_bytes(), {}
        for name in wanted:
            limit = training_bytes_limit() if name in TRAINING_FILES else budget
            try:
                data = _read_file(p / name, limit, dfd)
            except CheckpointError:
                if _replaced(p, dfd):
                    raise _Replaced() from None
                raise
            if name not in TRAINING_FILES:
                budget -= len(data)
            files[name] = data
        if MANIFEST in files:  # files the manifest lists but this load does not read must exist
            for name in _listed(files[MANIFEST]) - set(files):
                if name not in names:
                    if _replaced(p, dfd):
                        raise _Replaced()
                    raise CheckpointError(f"{name} is missing from the checkpoint {p} (manifest.json lists it)")
    finally:
        os.close(dfd)
    return from_files(files, training=training)


def _replaced(p: Path, dfd: int) -> bool:
    """Whether the path no longer names the folder open as `dfd` (a save swapped it in the meantime)."""
    try:
        a, b = os.stat(p), os.fstat(dfd)
    except OSError:
        return True
    return (a.st_ino, a.st_dev) != (b.st_ino, b.st_dev)


def _listed(manifest: bytes) -> set[str]:
    try:
        m = json.loads(manifest.decode("utf-8"))
        return {n for n in m["files"] if n in ALL_FILES}
    except Exception:  # noqa: BLE001 - from_files reports a damaged manifest
        return set()


def _read_file(f: Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """Read one regular file (not a link, not a device), refusing it if it is larger than max_bytes. With dir_fd,
    `f.name` is opened inside that open folder."""
    where = dict(dir_fd=dir_fd) if dir_fd is not None else {}
    target = f.name if dir_fd is not None else f
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, **where)
    except FileNotFoundError:
        raise CheckpointError(f"{f.name} is missing from the checkpoint {f.parent}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CheckpointError(f"{f.name} is a symbolic link; checkpoints must hold plain files") from None
        raise CheckpointError(f"cannot open {f}: {e.strerror or e}") from None
    try:
        st_ = os.fstat(fd)
        if not stat.S_ISREG(st_.st_mode):
            raise CheckpointError(f"{f.name} is not a plain file")
        if st_.st_size > max_bytes:
            raise CheckpointError(
                f"{f.name} is {st_.st_size / 2**20:.1f} MB, over the upload limit of "
                f"{max_bytes / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)"
            )
        try:
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read(max_bytes + 1)  # the file may grow between stat and read
        except OSError as e:
            raise CheckpointError(f"cannot read {f}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise CheckpointError(f"{f.name} is over the upload limit of {max_bytes / 2**20:.1f} MB")
    return data


def from_zip_bytes(b: bytes, training: bool = False) -> Checkpoint:
    """Load a checkpoint from the bytes of a .zip (e.g. an upload). Members are read into memory, never to disk.

    The zip may hold the checkpoint's files (the five model files, and its manifest and training files if it has
    them) at its root or inside one folder (what zipping a checkpoint folder gives).
    Declared sizes, the total, and each member's compression ratio are checked before anything is decompressed,
    and each read is capped at its declared size, so a zip bomb costs nothing."""
    max_bytes = _max_bytes()
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise CheckpointError("expected the bytes of a .zip file")
    if len(b) > max_bytes:
        raise CheckpointError(
            f"the file is {len(b) / 2**20:.1f} MB, over the upload limit of "
            f"{max_bytes / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)"
        )
    if bytes(b[:2]) != b"PK":
        raise CheckpointError(
            "not a .zip file: upload the .zip downloaded from the app (model.safetensors, "
            "config.json, vocab.json, metrics.json, history.json, manifest.json)"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(b)))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError, OSError) as e:
        raise CheckpointError(f"the .zip file is damaged or unsupported ({e})") from None
    with zf:
        if len(infos) > 3 * len(ALL_FILES):
            raise CheckpointError(
                f"the .zip holds {len(infos)} entries; a checkpoint has {len(MODEL_FILES)} to {len(ALL_FILES)} files"
            )
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
            if len(parts) > 2 or parts[-1] not in ALL_FILES:
                raise CheckpointError(
                    f"unexpected file {name!r} in the .zip; a checkpoint holds only {', '.join(ALL_FILES)}"
                )
            if parts[-1] in members:
                raise CheckpointError(f"the .zip holds {parts[-1]} twice")
            prefixes.add(parts[0] if len(parts) == 2 else "")
            members[parts[-1]] = info
        if len(prefixes) > 1:
            raise CheckpointError("the .zip holds files from more than one folder; zip one checkpoint folder")
        missing = [n for n in MODEL_FILES if n not in members]
        if missing:
            raise CheckpointError(f"the .zip lacks {', '.join(missing)}")
        total = sum(i.file_size for i in members.values())
        if total > max_bytes:
            raise CheckpointError(
                f"the .zip unpacks to {total / 2**20:.1f} MB, over the upload limit of {max_bytes / 2**20:.1f} MB"
            )
        for name, info in members.items():
            if info.file_size > 1024 * 1024 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                raise CheckpointError(
                    f"{name} in the .zip is compressed {info.file_size / max(info.compress_size, 1):.0f}"
                    f"x; refused as a possible zip bomb"
                )
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
    return from_files(files, training=training)


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


def _read_header(data: bytes, name: str = WEIGHTS) -> dict:
    """The safetensors JSON header {name: {dtype, shape, data_offsets}} read by hand, to check it before loading."""
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    if not 2 <= n <= len(data) - 8:
        if data[:1] == b"\x80" or data[:2] == b"PK":  # pickle protocol 2+ / torch.save's zip of pickles
            raise CheckpointError(
                f"{name} is not a safetensors file (it looks like a pickle or a "
                "torch.save file); only safetensors weights are accepted, and nothing is unpickled"
            )
        raise CheckpointError(f"{name} is truncated or damaged (its header length is out of range)")
    if data[8:9] != b"{":
        raise CheckpointError(f"{name} is not a safetensors file (its header is not JSON)")
    header = _parse_json(name + " header", data[8 : 8 + n])
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} has a damaged header")
    header.pop("__metadata__", None)
    return header


_DTYPES = {torch.float32: "F32"}


def _check_weights(data: bytes, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    header = _read_header(data)
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing:
        raise CheckpointError(
            f"model.safetensors lacks {len(missing)} tensor(s) the config needs, e.g. {missing[0]!r}"
            " (weights and config.json do not match)"
        )
    if extra:
        raise CheckpointError(
            f"model.safetensors holds {len(extra)} tensor(s) the config has no place for, "
            f"e.g. {extra[0][:80]!r} (weights and config.json do not match)"
        )
    for k, ref in expected.items():
        h = header[k]
        if not isinstance(h, dict):
            raise CheckpointError(f"model.safetensors: damaged header entry for {k!r}")
        want = _DTYPES.get(ref.dtype, str(ref.dtype))
        if h.get("dtype") != want:
            raise CheckpointError(f"model.safetensors: {k} has dtype {h.get('dtype')!r}, expected {want}")
        if h.get("shape") != list(ref.shape):
            raise CheckpointError(
                f"model.safetensors: {k} has shape {h.get('shape')!r}, the config needs {list(ref.shape)}"
            )
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


def check_manifest(files: dict[str, bytes]) -> None:
    """Refuse files that do not belong together: each must have the sha256 that manifest.json records, every file
    the manifest lists must be here (the training files only if any is), and none may be unlisted."""
    m = _expect_keys(MANIFEST, _parse_json(MANIFEST, files[MANIFEST]), {"format", "set_id", "files"})
    if m["format"] != MANIFEST_FORMAT or not isinstance(m["files"], dict) or not isinstance(m["set_id"], str):
        raise CheckpointError("manifest.json is not a checkpoint manifest")
    listed = m["files"]
    for name, entry in listed.items():
        if name not in ALL_FILES or name == MANIFEST:
            raise CheckpointError(f"manifest.json lists an unknown file {name[:80]!r}")
        if not (
            isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
        ):
            raise CheckpointError(f"manifest.json: damaged entry for {name}")
    expect = {n: {"sha256": e["sha256"], "bytes": e["bytes"]} for n, e in listed.items()}
    if (
        m["set_id"]
        != hashlib.sha256("".join(f"{n} {expect[n]['sha256']}\n" for n in sorted(expect)).encode()).hexdigest()[:32]
    ):
        raise CheckpointError("manifest.json is damaged (its set id does not match the files it lists)")
    set_id = m["set_id"][:8]
    for name in MODEL_FILES:
        if name not in listed:
            raise CheckpointError(f"manifest.json does not list {name}: the files do not belong together")
    reading_training = any(n in files for n in TRAINING_FILES)
    for name in ALL_FILES:
        if name == MANIFEST:
            continue
        if name in files and name not in listed:
            raise CheckpointError(
                f"{name} does not belong with the other files of this checkpoint (manifest.json "
                f"of set {set_id} does not list it): the files come from different saves; save "
                "or download the checkpoint again"
            )
        if name in listed and name not in files and (name in MODEL_FILES or reading_training):
            raise CheckpointError(f"{name} is missing (manifest.json of set {set_id} lists it)")
        if name in files and hashlib.sha256(files[name]).hexdigest() != listed[name]["sha256"]:
            raise CheckpointError(
                f"{name} does not belong with the other files of this checkpoint (its sha256 "
                f"differs from the one manifest.json records for set {set_id}): the files come "
                "from different saves; save or download the checkpoint again"
            )


def _training(files: dict[str, bytes]) -> dict | None:
    """The training files as {"state": dict, "tensors": {name: Tensor}} (checked by training.Run when used)."""
    have = [n for n in TRAINING_FILES if n in files]
    if not have:
        return None
    if len(have) != len(TRAINING_FILES):
        raise CheckpointError(
            f"the checkpoint has {have[0]} without {next(n for n in TRAINING_FILES if n not in have)}"
        )
    state = _parse_json(TRAIN_STATE, files[TRAIN_STATE])
    if not isinstance(state, dict):
        raise CheckpointError(f"{TRAIN_STATE}: expected a JSON object")
    data = files[TRAIN_TENSORS]
    _read_header(data, TRAIN_TENSORS)
    try:
        tensors = st_load(bytes(data))
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends
        raise CheckpointError(f"{TRAIN_TENSORS} is damaged ({e})") from None
    for k, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{TRAIN_TENSORS}: {k} holds NaN or infinite values")
    return {"state": state, "tensors": tensors}


def from_files(files: dict[str, bytes], training: bool = False) -> Checkpoint:
    """Build a Checkpoint from its files' bytes, checking everything (the manifest, when there is one: the files
    must belong together). With `training`, also the training files, if any. Raises CheckpointError."""
    limits = get_limits()
    if MANIFEST in files:
        check_manifest(files)
    config = _expect_keys(
        CONFIG,
        _parse_json(CONFIG, files[CONFIG]),
        {"format_version", "model", "train", "tokens", "task"},
        {"tokenizer"},
    )
    if config["format_version"] not in (1, FORMAT_VERSION):
        raise CheckpointError(
            f"config.json: format_version {config['format_version']!r} is not supported "
            f"(this version reads 1 and {FORMAT_VERSION})"
        )
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
        train_cfg = None if config["train"] is None else TrainConfig.from_dict(config["train"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"config.json: {e}") from None
    if config["format_version"] == 1 and model_cfg.attention != "none":  # same weights, different decoder math
        raise CheckpointError(
            "this model was saved by an older version whose attention decoder worked differently "
            "(format_version 1); its weights would give wrong outputs here. Train it again."
        )
    if config["tokens"] not in ("char", "word", "subword"):
        raise CheckpointError(f"config.json: tokens must be 'char', 'word' or 'subword', got {config['tokens']!r}")
    try:
        tokenizer = Tokenizer.from_dict(config.get("tokenizer", config["tokens"]))
    except Exception as e:  # ValueError from our checks; anything else from a malformed object: still a message
        raise CheckpointError(f"config.json: {e}") from None
    if tokenizer.mode != config["tokens"]:
        raise CheckpointError(
            f"config.json: the tokenizer cuts {tokenizer.mode} tokens but tokens says {config['tokens']!r}"
        )
    task = config["task"]
    if task is not None and (not isinstance(task, str) or len(task) > 100):
        raise CheckpointError("config.json: task must be a short name or null")
    for side, size in (("source", model_cfg.src_vocab_size), ("target", model_cfg.tgt_vocab_size)):
        if size > limits.max_vocab:
            raise CheckpointError(
                f"config.json: the {side} vocabulary has {size} tokens, over the limit of "
                f"{limits.max_vocab} (SEQ2SEQ_MAX_VOCAB)"
            )

    n_params = count_parameters(model_cfg)["total"]  # arithmetic on the config: nothing allocated yet
    if n_params > limits.max_params:
        raise CheckpointError(
            f"config.json describes a model with {n_params:,} parameters, over the limit of "
            f"{limits.max_params:,} (SEQ2SEQ_MAX_PARAMS)"
        )
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
    if "exact_match" in metrics and not (
        isinstance(metrics["exact_match"], (int, float)) and 0 <= metrics["exact_match"] <= 1
    ):
        raise CheckpointError("metrics.json: exact_match must be a number between 0 and 1")

    weights = _check_weights(files[WEIGHTS], expected)
    model = Seq2Seq(model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"model.safetensors does not fit the model in config.json ({e})") from None
    model.eval()
    return Checkpoint(
        model=model,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        tokens=config["tokens"],
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        metrics=metrics,
        history=history,
        task=task,
        training=_training(files) if training else None,
        tokenizer=tokenizer,
    )
