"""Command line: train a model, evaluate it, translate with it.

    python -m seq2seq train --task reverse --attention additive --out runs/reverse
    python -m seq2seq train --data pairs.tsv --tokens word --cell gru --epochs 30 --out runs/mine
    python -m seq2seq train --data eng-fra.tsv --columns 1,2 --tokens subword --vocab-size 1000 --out runs/fr
    python -m seq2seq eval runs/reverse --task reverse --seed 7        # one JSON object on stdout
    python -m seq2seq eval runs/mine --data held_out.tsv
    python -m seq2seq predict runs/reverse "hello world" --beam 4
    python -m seq2seq export runs/reverse --out reverse_model.py   # standalone code + weights (seq2seq/export.py)

`train` runs in this process (training.Run, no worker pool), draws a progress bar on stderr, saves a checkpoint
folder (see checkpoint.py) whose metrics.json holds the exact match on the held-out test split, and ends with one line
of metrics on stdout. User mistakes (a bad file, a bad flag value) print one line starting "error:" and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from .config import ATTENTIONS, CELLS, LR_SCHEDULES, OPTIMIZERS, PRECISIONS, ModelConfig, TrainConfig
from .data import DEDUP, DataError, Seq2SeqData, build_data, check_input_text
from .limits import get_limits
from .loaders import load_pairs
from .tasks import TASKS, generate_splits
from .tokens import MODES as TOKEN_MODES


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message; we want one line and status 2
        raise UsageError(f"{self.prog}: {message} (see --help)")


# ---------------------------------------------------------------------------------------------------------- data


def _parse_params(items: list[str] | None) -> dict[str, int | float | str]:
    """["digits=3", "p_plural=0.5", "alphabet=abc"] -> {"digits": 3, "p_plural": 0.5, "alphabet": "abc"}."""
    params: dict[str, int | float | str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--param expects KEY=VALUE (e.g. --param digits=3), got {item!r}")
        for kind in (int, float, str):
            try:
                params[key] = kind(value)
                break
            except ValueError:
                continue
    return params


def task_splits(
    task: str,
    seed: int,
    params: dict,
    n_train: int | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
) -> dict:
    """A built-in task's train/valid/test splits (deterministic from the seed; sizes default to the task's)."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    try:
        return generate_splits(task, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed, **params)
    except (TypeError, ValueError) as e:  # an unknown parameter name or a bad value
        raise UsageError(f"task {task}: {e}") from None


def fresh_task_pairs(ckpt: ckpt_io.Checkpoint, task: str, seed: int, n: int, params: dict | None = None) -> list:
    """n new examples of a task, drawn with `seed`, minus any whose source the checkpoint was trained on (when its
    metrics.json records the task data it was trained on): a truly held-out set. Parameters default to training's."""
    trained_on = ckpt.metrics.get("data") if isinstance(ckpt.metrics.get("data"), dict) else {}
    same_task = trained_on.get("task") == task
    if params is None:
        params = dict(trained_on.get("params", {})) if same_task else {}
    pairs = task_splits(task, seed, params, n_train=n, n_valid=0, n_test=0)["train"]
    if same_task and isinstance(trained_on.get("seed"), int):
        seen = task_splits(
            task,
            trained_on["seed"],
            dict(trained_on.get("params", {})),
            trained_on.get("n_train"),
            trained_on.get("n_valid"),
            trained_on.get("n_test"),
        )
        used = {s for split in seen.values() for s, _ in split}
        pairs = [(s, t) for s, t in pairs if s not in used]
    return pairs


def parse_columns(spec: str | None) -> tuple[str, str] | None:
    """--columns SRC,TGT: 1-based column numbers (TSV) or header names (CSV)."""
    if spec is None:
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UsageError(
            f"--columns expects SRC,TGT (e.g. --columns 1,2, or header names for a CSV: "
            f"--columns english,french), got {spec!r}"
        )
    return parts[0], parts[1]


def read_pairs(path: str, columns: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """Read a TSV/CSV file of (source, target) pairs with the size limit checked before reading."""
    p = Path(path)
    limit = int(get_limits().max_upload_mb * 2**20)
    try:
        if not p.is_file():
            raise UsageError(f"{path}: no such file")
        if p.stat().st_size > limit:
            raise UsageError(
                f"{path}: {p.stat().st_size / 2**20:.1f} MB is over the upload limit of "
                f"{limit / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)"
            )
        data = p.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    try:
        return load_pairs(data, p.name, columns=columns)
    except DataError as e:
        raise UsageError(f"{path}: {e}") from None


def make_data(args: argparse.Namespace) -> tuple[Seq2SeqData, dict]:
    """The dataset a `train` command asks for, and a JSON-able description of it (saved in metrics.json)."""
    tokens = args.tokens
    if args.valid and not args.data:
        raise UsageError("--valid goes with --data (a task makes its own validation split)")
    if args.task:
        params = _parse_params(args.param)
        splits = task_splits(
            args.task,
            args.data_seed if args.data_seed is not None else args.seed,
            params,
            args.n_train,
            args.n_valid,
            args.n_test,
        )
        tokens = tokens or TASKS[args.task].tokens
        source = {
            "task": args.task,
            "params": params,
            "seed": args.data_seed if args.data_seed is not None else args.seed,
            "n_train": args.n_train,
            "n_valid": args.n_valid,
            "n_test": args.n_test,
        }
    else:
        columns = parse_columns(args.columns)
        pairs = read_pairs(args.data, columns)
        source = {"file": Path(args.data).name, "columns": list(columns) if columns else None}
        if args.valid:  # held-out pairs given: the validation set; the test set is still 10% of the data
            splits = {"train": pairs, "valid": read_pairs(args.valid, columns)}
            source["valid_file"] = Path(args.valid).name
        else:
            splits = pairs
        tokens = tokens or "char"
    if args.columns and not args.data:
        raise UsageError("--columns goes with --data")
    limit = get_limits().max_seq_len
    if not 1 <= args.max_len <= limit:
        raise UsageError(f"--max-len must be between 1 and {limit} (SEQ2SEQ_MAX_SEQ_LEN), got {args.max_len}")
    try:
        data = build_data(
            splits,
            tokens=tokens,
            max_len=args.max_len,
            seed=args.seed,
            max_vocab=args.max_vocab,
            lowercase=args.lowercase,
            vocab_size=args.vocab_size,
            dedup=args.dedup,
        )
    except (DataError, ValueError) as e:
        raise UsageError(str(e)) from None
    source.update(
        tokens=tokens,
        lowercase=args.lowercase,
        vocab_size=args.vocab_size,
        dedup=args.dedup,
        max_len=data.max_len,
        n_truncated=data.n_truncated,
        n_duplicates=data.n_duplicates,
    )
    return data, source


# ---------------------------------------------------------------------------------------------------------- train


def _bar(frac: float, width: int = 24) -> str:
    n = int(round(width * min(max(frac, 0.0), 1.0)))
    return "[" + "#" * n + "." * (width - n) + "]"


def configs(args: argparse.Namespace, data: Seq2SeqData) -> tuple[ModelConfig, TrainConfig]:
    """The model and training settings a parsed `train` command asks for (the flags' defaults: the library's)."""
    try:
        model_cfg = ModelConfig(
            src_vocab_size=len(data.src_vocab),
            tgt_vocab_size=len(data.tgt_vocab),
            cell=args.cell,
            embed=args.embed,
            hidden=args.hidden,
            layers=args.layers,
            bidirectional=args.bidirectional,
            attention=args.attention,
            dropout=args.dropout,
        ).validate()
        train_cfg = TrainConfig(
            optimizer=args.optimizer,
            lr=args.lr,
            lr_schedule=args.lr_schedule,
            lr_patience=args.lr_patience,
            batch_size=args.batch_size,
            bucket_by_length=args.bucket_by_length,
            epochs=args.epochs or None,
            max_seconds=args.max_seconds or None,
            clip=args.clip,
            teacher_forcing=args.teacher_forcing,
            seed=args.seed,
            eval_every=args.eval_every,
            stop_patience=args.stop_patience,
            threads=args.threads,
            precision=args.precision,
        ).validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    return model_cfg, train_cfg


RESUME_FLAGS = {"resume", "out", "overwrite", "epochs", "max_seconds", "threads", "data", "valid"}
DATA_ARGS = (
    "task",
    "data",
    "valid",
    "param",
    "n_train",
    "n_valid",
    "n_test",
    "data_seed",
    "tokens",
    "max_len",
    "max_vocab",
    "seed",
    "columns",
    "dedup",
    "vocab_size",
    "lowercase",
)
DATA_ARG_DEFAULTS = {"dedup": "pairs", "lowercase": False}  # for runs saved before these flags existed


def _check_out(args: argparse.Namespace) -> None:
    """--out before any work: a name, not a file, not a folder of other files, and not a checkpoint unless
    --overwrite (or it is the run being resumed)."""
    out = args.out
    if out is None:
        raise UsageError("train needs --out DIR, the checkpoint folder to write (or --resume DIR)")
    if out.strip() == "":
        raise UsageError("--out is empty; give the checkpoint folder to write")
    kind = ckpt_io.describe_target(out)
    if kind == "file":
        raise UsageError(f"--out {out} is a file; give a folder (new, empty, or holding a checkpoint)")
    if kind == "link":
        raise UsageError(f"--out {out} is a symbolic link; give the folder itself")
    if kind == "other":
        raise UsageError(
            f"--out {out} is a folder holding other files; give a new or empty folder (a checkpoint "
            "folder is replaced whole)"
        )
    same_run = args.resume is not None and os.path.realpath(args.resume) == os.path.realpath(out)
    if kind == "checkpoint" and not args.overwrite and not same_run:
        raise UsageError(
            f"--out {out} already holds a checkpoint; add --overwrite to replace it, or --resume {out} to continue it"
        )


def _resume(args: argparse.Namespace, given: set[str]):
    """The run saved in args.resume, ready to continue: (run, data, source, model_cfg, train_cfg, data args)."""
    from .training import Run

    changed = sorted(given - RESUME_FLAGS)
    if changed:
        flags = ", ".join("--" + f.replace("_", "-") for f in changed)
        raise UsageError(
            f"{flags}: a resumed run keeps its configuration (see {args.resume}/config.json); only "
            "--out, --overwrite, --epochs, --max-seconds, --threads, --data and --valid may be given"
        )
    ck = _load(args.resume, training=True)
    if ck.training is None or not isinstance(ck.training["state"].get("cli"), dict):
        raise UsageError(
            f"{args.resume} holds no training state to resume (saved by an older version or not by "
            "train); train a new run with --out"
        )
    saved = ck.training["state"]["cli"]
    kinds = {
        "task": str,
        "data": str,
        "valid": str,
        "param": list,
        "n_train": int,
        "n_valid": int,
        "n_test": int,
        "data_seed": int,
        "tokens": str,
        "max_len": int,
        "max_vocab": int,
        "seed": int,
        "columns": str,
        "dedup": str,
        "vocab_size": int,
        "lowercase": bool,
    }
    bad = [
        k
        for k, kind in kinds.items()
        if saved.get(k) is not None
        and (not isinstance(saved[k], kind) or (kind is not bool and isinstance(saved[k], bool)))
    ]
    if bad or not all(isinstance(p, str) for p in saved.get("param") or []) or saved.get("max_len") is None:
        raise UsageError(f"{args.resume}/training.json is damaged (its data arguments: {', '.join(bad) or 'param'})")
    data_args = argparse.Namespace(**{k: saved.get(k, DATA_ARG_DEFAULTS.get(k)) for k in DATA_ARGS})
    for k in ("data", "valid"):
        if k in given:
            setattr(data_args, k, getattr(args, k))
        elif getattr(data_args, k) and not Path(getattr(data_args, k)).is_file():
            raise UsageError(
                f"the run's {k} file {getattr(data_args, k)} is not there any more; give it with --{k} FILE"
            )
    data, source = make_data(data_args)
    if data.src_vocab.itos != ck.src_vocab.itos or data.tgt_vocab.itos != ck.tgt_vocab.itos:
        raise UsageError("the data differ from those the run was trained on (other vocabularies)")
    train_cfg = ck.train_cfg
    if "threads" in given:
        train_cfg = TrainConfig(**{**train_cfg.to_dict(), "threads": args.threads})
    torch.set_num_threads(train_cfg.threads)
    run = Run(data, ck.model_cfg, train_cfg)
    try:
        run.load_training_state(ck.training, ck.model.state_dict())
    except ValueError as e:
        raise UsageError(f"cannot resume {args.resume}: {e}") from None
    if run.status in ("diverged", "error"):
        raise UsageError(f"{args.resume}: the run {run.status}; it cannot continue")
    epochs = args.epochs if "epochs" in given else None
    seconds = args.max_seconds if "max_seconds" in given else None
    if epochs is None and seconds is None:
        if run.status == "finished":
            raise UsageError(
                f"{args.resume} finished its run ({run.step_count} steps); give --epochs N or "
                "--max-seconds S to train it longer"
            )
        epochs = None if run.max_epochs is None else run.max_epochs - run.epoch  # the rest of its budget
        seconds = None if run.max_seconds is None else run.max_seconds - run.seconds
    try:
        run.extend(epochs=epochs or None, seconds=seconds or None)
    except ValueError as e:
        raise UsageError(str(e)) from None
    run.resume()
    return run, data, source, ck.model_cfg, train_cfg, data_args


def _new_run(args: argparse.Namespace):
    from .training import Run

    if not args.task and not args.data:
        raise UsageError("train needs --task NAME or --data FILE (or --resume DIR)")
    torch.set_num_threads(args.threads)
    data, source = make_data(args)
    model_cfg, train_cfg = configs(args, data)
    _check_size(model_cfg)
    return Run(data, model_cfg, train_cfg), data, source, model_cfg, train_cfg, args


def _check_size(model_cfg: ModelConfig) -> int:
    from .model import count_parameters

    limits = get_limits()
    n_params = count_parameters(model_cfg)["total"]
    if n_params > limits.max_params:
        raise UsageError(
            f"the model has {n_params:,} parameters, over the limit of {limits.max_params:,} "
            "(SEQ2SEQ_MAX_PARAMS): use fewer hidden units, layers or a smaller embedding"
        )
    return n_params


def checkpoint_bytes(n_params: int) -> int:
    """Disk space a checkpoint of `train` needs, at most: the best weights, the latest weights and two optimizer
    tensors per weight (Adam), 4 bytes each, plus the JSON files (curves: well under 8 MB)."""
    return 16 * n_params + 8 * 2**20


class _Interrupt:
    """SIGINT (Ctrl-C) during training: the first stops the run at the end of the current step, so that it is
    saved whole; a second one quits at once (KeyboardInterrupt), leaving any previous checkpoint untouched."""

    def __init__(self, log):
        self.count, self.log, self._old = 0, log, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):  # only a flag: printing here could re-enter a print in progress
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(
    args: argparse.Namespace, log=sys.stderr, given: set[str] | None = None, training_state: bool = True
) -> ckpt_io.Checkpoint:
    """Train in this process from parsed `train` arguments, save the checkpoint to args.out and return it.

    The checkpoint holds the weights of the run's best evaluation (training.Run.best_state_dict) and, with
    `training_state`, what `--resume` needs. `given`: the flags given on the command line (with --resume). Ctrl-C
    stops the run after the current step and saves it (metrics["interrupted"] is then True)."""
    args.resume = getattr(args, "resume", None)
    args.overwrite = getattr(args, "overwrite", False)
    if args.resume is not None and args.out is None:
        args.out = args.resume
    _check_out(args)
    try:
        lock = ckpt_io.CheckpointLock(args.out).acquire()  # one writer at a time, from now until it is saved
    except ckpt_io.CheckpointError as e:
        raise UsageError(str(e)) from None
    try:
        return _train_locked(args, log, given or set(), training_state)
    finally:
        lock.release()


def _train_locked(args, log, given: set[str], training_state: bool) -> ckpt_io.Checkpoint:
    run, data, source, model_cfg, train_cfg, data_args = (
        _resume(args, given) if args.resume is not None else _new_run(args)
    )
    n_params = _check_size(model_cfg)
    try:
        ckpt_io.check_target(args.out, checkpoint_bytes(n_params))
    except ckpt_io.CheckpointError as e:
        raise UsageError(f"--out {e}") from None

    print(
        f"data: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test pairs, "
        f"vocab {len(data.src_vocab)} -> {len(data.tgt_vocab)}, {data.tokenizer.describe()}; model: {n_params:,} "
        f"parameters" + (f"; resuming at step {run.step_count}" if args.resume else ""),
        file=log,
    )
    for note in data.notes:
        print(f"note: {note}", file=log)
    tty = hasattr(log, "isatty") and log.isatty()
    last_print, last_decile = 0.0, -1
    with _Interrupt(log) as interrupt:
        while not run.done:
            if interrupt.count:
                print(
                    "\ninterrupted: stopping to save the run (Ctrl-C again quits without saving)", file=log, flush=True
                )
                run.stop()
                break
            m = run.step()
            now, frac = time.perf_counter(), run.progress()
            if (
                run.done
                or (tty and now - last_print > 0.1)
                or (not tty and (int(frac * 10) > last_decile or now - last_print > 10))
            ):
                em = run.last_eval.get("exact_match", float("nan"))
                line = (
                    f"{_bar(frac)} {frac:4.0%} step {run.step_count} epoch {run.epoch:.2f} "
                    f"loss {m.get('train_loss', float('nan')):.4f} valid exact match {em:.3f} {run.seconds:.1f}s"
                )
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=log, flush=True)
                last_print, last_decile = now, int(frac * 10)
        if tty:
            print(file=log)
        if run.status in ("diverged", "error"):
            raise UsageError(f"training {run.status}: {run.message}")

        state = run.training_state() if training_state else None
        if state is not None:
            state["state"]["cli"] = {k: getattr(data_args, k, None) for k in DATA_ARGS}
            for k in ("data", "valid"):
                if state["state"]["cli"][k]:
                    state["state"]["cli"][k] = os.path.abspath(state["state"]["cli"][k])
        run.model.load_state_dict(run.best_state_dict())  # what is saved and measured: the best evaluation
        test = run.evaluate("test")
        best, worse = run.best or {}, run.worse_than_best()
        metrics = {
            k: test[k] for k in ("exact_match", "token_accuracy", "loss", "n", "n_sources", "bleu", "chrf") if k in test
        }
        if "bleu" in best or "bleu" in run.last_eval:
            scored = best if "bleu" in best else run.last_eval
            metrics.update(valid_bleu=scored["bleu"], valid_chrf=scored["chrf"])
        metrics.update(
            split="test",
            valid_exact_match=best.get("exact_match"),
            steps=run.step_count,
            best_step=best.get("step"),
            epochs=round(run.epoch, 3),
            seconds=round(run.seconds, 2),
            n_params=n_params,
            data=source,
            precision=run.precision,
            message=run.message,
            worse=None if worse is None else {k: v for k, v in worse.items() if k != "message"},
            interrupted=interrupt.count > 0,
        )
        ckpt = ckpt_io.Checkpoint(
            model=run.model.eval(),
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            tokens=data.tokens,
            src_vocab=data.src_vocab,
            tgt_vocab=data.tgt_vocab,
            metrics=metrics,
            history=run.snapshot()["history"],
            task=data_args.task,
            training=state,
            tokenizer=data.tokenizer,
        )
        try:
            ckpt_io.save(ckpt, args.out)
        except ckpt_io.CheckpointError as e:
            raise UsageError(str(e)) from None
    return ckpt


# ----------------------------------------------------------------------------------------------------- eval, predict


def _load(path: str, training: bool = False) -> ckpt_io.Checkpoint:
    try:
        return ckpt_io.load(path, training=training)
    except ckpt_io.CheckpointError as e:
        raise UsageError(str(e)) from None


def evaluate_pairs(ckpt: ckpt_io.Checkpoint, pairs: list[tuple[str, str]]) -> dict:
    """Teacher-forced loss and token accuracy, greedy exact match of a checkpoint's model on (source, target) pairs:
    the same measurement as training.Run.evaluate (it is that function), with the checkpoint's vocabularies."""
    from .training import Run

    max_len = ckpt.metrics.get("data", {}).get("max_len") if isinstance(ckpt.metrics.get("data"), dict) else None
    if not isinstance(max_len, int) or not 1 <= max_len <= get_limits().max_seq_len:
        max_len = get_limits().max_seq_len
    pairs = list(pairs)
    data = Seq2SeqData(
        tokens=ckpt.tokens,
        src_vocab=ckpt.src_vocab,
        tgt_vocab=ckpt.tgt_vocab,
        train=pairs[:1],
        valid=pairs[:1],
        test=pairs,
        max_len=max_len,
        tokenizer=ckpt.tokenizer,
    )
    run = Run(data, ckpt.model_cfg, TrainConfig(), state_dict=ckpt.model.state_dict())
    return run.evaluate("test")


def eval_command(args: argparse.Namespace) -> dict:
    ckpt = _load(args.checkpoint)
    if args.data:
        pairs = read_pairs(args.data, parse_columns(args.columns))
    elif args.task:
        pairs = fresh_task_pairs(ckpt, args.task, args.seed, args.n, _parse_params(args.param) or None)
    else:
        raise UsageError("eval needs --data FILE or --task NAME")
    if not pairs:
        raise UsageError("no pairs to evaluate")
    result = evaluate_pairs(ckpt, pairs)
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in result.items()}


def predict_command(args: argparse.Namespace) -> str:
    from .decoding import translate

    ckpt = _load(args.checkpoint)
    try:
        _, warnings = check_input_text(args.text, ckpt.src_vocab, ckpt.tokenizer, get_limits().max_seq_len)
    except DataError as e:
        raise UsageError(str(e)) from None
    for w in warnings:
        print(f"note: {w}", file=sys.stderr)
    if not 1 <= args.beam <= 64:
        raise UsageError("--beam must be between 1 and 64")
    return translate(ckpt.model, (ckpt.src_vocab, ckpt.tgt_vocab, ckpt.tokenizer), args.text, beam=args.beam)


def export_command(args: argparse.Namespace) -> str:
    from .export import ExportError, export

    ckpt = _load(args.checkpoint)
    try:
        py, weights = export(ckpt, args.out)
    except ExportError as e:
        raise UsageError(str(e)) from None
    return f'wrote {py} and {weights}: run  python {py} "input text"'


# ---------------------------------------------------------------------------------------------------------- parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already says its default or there is none."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return h
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    prog = "seq2seq" if os.path.basename(sys.argv[0]) == "seq2seq" else "python -m seq2seq"
    p = _Parser(prog=prog, description="Train, evaluate and run RNN encoder-decoder models.")
    p.add_argument("--version", action="version", version=f"seq2seq-explorer {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d_model, d_train = ModelConfig(5, 5), TrainConfig()

    t = sub.add_parser("train", help="train a model and save a checkpoint folder", formatter_class=_DefaultsFormatter)
    g_data = t.add_argument_group("data")
    g_model = t.add_argument_group("model")
    g_train = t.add_argument_group("training")
    g_out = t.add_argument_group("output")
    src = g_data.add_mutually_exclusive_group()
    src.add_argument("--task", help=f"built-in task: {', '.join(TASKS)}")
    src.add_argument(
        "--data",
        metavar="FILE",
        help="TSV (source<TAB>target[<TAB>more columns]) or CSV (a header "
        "naming the columns; source,target by default)",
    )
    g_data.add_argument(
        "--columns",
        metavar="SRC,TGT",
        help="the source and target columns: 1-based numbers for a TSV "
        "(default 1,2), header names for a CSV (default source,target)",
    )
    g_data.add_argument(
        "--dedup",
        choices=DEDUP,
        default="pairs",
        help="duplicates to remove: pairs = repeated (source, "
        "target) pairs (default; several targets of one source are all kept), source = all but the first "
        "target of each source, none",
    )
    g_data.add_argument(
        "--valid",
        metavar="FILE",
        help="validation pairs (with --data); without it 10%% of the data is "
        "held out for validation (and always 10%% for the final test)",
    )
    g_data.add_argument("--param", action="append", metavar="KEY=N", help="task parameter, e.g. digits=3, min_len=5")
    g_data.add_argument("--n-train", type=int, default=None, help="task examples for training (default: the task's)")
    g_data.add_argument("--n-valid", type=int, default=None)
    g_data.add_argument("--n-test", type=int, default=None)
    g_data.add_argument("--data-seed", type=int, default=None, help="seed of the task data (default: --seed)")
    g_data.add_argument(
        "--tokens",
        choices=TOKEN_MODES,
        default=None,
        help="char, word (words and punctuation marks) "
        "or subword (byte-pair encoding learned on the training split); default: the task's, or char",
    )
    g_data.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        metavar="N",
        help="subword: pieces to learn (default "
        "1000); char/word: keep the N most frequent tokens (the rest become <unk>)",
    )
    g_data.add_argument("--lowercase", action="store_true", help="lowercase the text before cutting it into tokens")
    g_data.add_argument(
        "--max-len",
        type=int,
        default=50,
        help="timesteps kept per sequence (default 50; the rest is cut and the final line says how many examples were)",
    )
    g_data.add_argument("--max-vocab", type=int, default=None)
    g_model.add_argument("--cell", choices=CELLS, default=d_model.cell)
    g_model.add_argument("--embed", type=int, default=d_model.embed)
    g_model.add_argument("--hidden", type=int, default=d_model.hidden)
    g_model.add_argument("--layers", type=int, default=d_model.layers)
    g_model.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=d_model.bidirectional,
        help="bidirectional encoder (default: on; --no-bidirectional for one direction)",
    )
    g_model.add_argument("--attention", choices=ATTENTIONS, default=d_model.attention)
    g_model.add_argument("--dropout", type=float, default=d_model.dropout)
    g_train.add_argument(
        "--epochs",
        type=float,
        default=d_train.epochs,
        help="stop after this many epochs (default: no epoch limit; 0 = none)",
    )
    g_train.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="training time budget in wall-clock seconds of training (evaluations included; default: none)",
    )
    g_train.add_argument("--batch-size", type=int, default=d_train.batch_size)
    g_train.add_argument("--lr", type=float, default=d_train.lr)
    g_train.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=d_train.lr_schedule,
        help="plateau: halve the rate when the validation loss stops improving; constant; halving",
    )
    g_train.add_argument(
        "--lr-patience",
        type=int,
        default=d_train.lr_patience,
        help="plateau: evaluations without a new best validation loss before the rate halves",
    )
    g_train.add_argument(
        "--stop-patience",
        type=int,
        default=d_train.stop_patience,
        help="stop after this many evaluations without a new best validation exact match or loss "
        f"(default {d_train.stop_patience}: train until it stops improving; 0 = off)",
    )
    g_train.add_argument(
        "--bucket-by-length",
        action=argparse.BooleanOptionalAction,
        default=d_train.bucket_by_length,
        help="batch examples of about the same length together (default: on)",
    )
    g_train.add_argument("--optimizer", choices=OPTIMIZERS, default=d_train.optimizer)
    g_train.add_argument("--clip", type=float, default=d_train.clip, help="max gradient norm, 0 = off")
    g_train.add_argument("--teacher-forcing", type=float, default=d_train.teacher_forcing)
    g_train.add_argument("--eval-every", type=int, default=d_train.eval_every)
    g_train.add_argument("--seed", type=int, default=d_train.seed)
    g_train.add_argument("--threads", type=int, default=d_train.threads)
    g_train.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d_train.precision,
        help="matrix products of the training steps: fp32, or bf16 (mixed precision: weights, gradients "
        "and every evaluation stay fp32); auto (default): bf16 where the CPU has it natively",
    )
    g_out.add_argument(
        "--out",
        metavar="DIR",
        help="checkpoint folder to write (replaced whole; default with --resume: the resumed folder)",
    )
    g_out.add_argument("--overwrite", action="store_true", help="replace the checkpoint that --out already holds")
    g_out.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run saved in DIR (after Ctrl-C, or with --epochs N "
        "/ --max-seconds S more after it finished); its model, data and settings are kept",
    )

    e = sub.add_parser("eval", help="evaluate a checkpoint; prints one JSON object")
    e.add_argument("checkpoint", metavar="DIR")
    e.add_argument("--data", metavar="FILE")
    e.add_argument("--columns", metavar="SRC,TGT", help="as for train")
    e.add_argument("--task")
    e.add_argument("--param", action="append", metavar="KEY=N", help="task parameters (default: the training ones)")
    e.add_argument("--seed", type=int, default=12345, help="seed of the generated task examples")
    e.add_argument("--n", type=int, default=1000, help="generated task examples (those seen in training are dropped)")

    r = sub.add_parser("predict", help="decode one input with a checkpoint")
    r.add_argument("checkpoint", metavar="DIR")
    r.add_argument("text")
    r.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")

    x = sub.add_parser("export", help="write the model as one standalone Python file (+ its weights beside it)")
    x.add_argument("checkpoint", metavar="DIR")
    x.add_argument(
        "--out",
        required=True,
        metavar="FILE.py",
        help="the Python file to write; the weights go to FILE.safetensors beside it",
    )
    for parser in (t, e, r):  # every option's default in --help: options without a help text get their name
        parser.formatter_class = _DefaultsFormatter
        for action in parser._actions:
            if action.help is None and action.option_strings:
                action.help = action.dest.replace("_", " ")
    return p


def given_flags(argv: list[str]) -> set[str]:
    """The `train` options given on the command line (dest names), whatever their values."""
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    for a in sub._actions:
        a.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv))) - {"command"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            ckpt = train(args, given=given_flags(argv))
            m = ckpt.metrics
            scores = f"bleu {m['bleu']:.2f} chrf {m['chrf']:.2f} " if "bleu" in m else ""
            cut, max_len = m["data"].get("n_truncated", 0), m["data"].get("max_len")
            line = (
                f"test exact_match {m['exact_match']:.4f} {scores}token_accuracy {m['token_accuracy']:.4f} "
                f"loss {m['loss']:.4f} n {m['n']} steps {m['steps']} seconds {m['seconds']} truncated {cut}"
                + (f" (of max-len {max_len})" if cut else "")
                + f" -> {args.out}"
            )
            if m["worse"] is not None:
                line += (
                    f" (it got worse: validation loss {m['worse']['loss']:.3f}, lowest "
                    f"{m['worse']['lowest_loss']:.3f}; saved the best evaluation, step {m['best_step']})"
                )
            print(line)
            if m["worse"] is not None:
                print(f"warning: {m['message'].split('It got worse: ', 1)[-1]}", file=sys.stderr)
            if m["interrupted"]:
                print(
                    f"error: interrupted at step {m['steps']}: saved the best evaluation (step {m['best_step']}) "
                    f"to {args.out}; continue with: python -m seq2seq train --resume {args.out}",
                    file=sys.stderr,
                )
                return 130
        elif args.command == "eval":
            print(json.dumps(eval_command(args)))
        elif args.command == "export":
            print(export_command(args))
        else:
            print(predict_command(args))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
