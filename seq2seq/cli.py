"""Command line: train a model, evaluate it, translate with it.

    python -m seq2seq train --task reverse --attention additive --out runs/reverse
    python -m seq2seq train --data pairs.tsv --tokens word --cell gru --epochs 30 --out runs/mine
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
import sys
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt_io
from .config import ATTENTIONS, CELLS, LR_SCHEDULES, OPTIMIZERS, PRECISIONS, ModelConfig, TrainConfig
from .data import Seq2SeqData, build_data, check_input_text
from .limits import get_limits
from .data import DataError
from .loaders import load_pairs
from .tasks import TASKS, generate_splits

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


def task_splits(task: str, seed: int, params: dict, n_train: int | None = None, n_valid: int | None = None,
                n_test: int | None = None) -> dict:
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
        seen = task_splits(task, trained_on["seed"], dict(trained_on.get("params", {})), trained_on.get("n_train"),
                           trained_on.get("n_valid"), trained_on.get("n_test"))
        used = {s for split in seen.values() for s, _ in split}
        pairs = [(s, t) for s, t in pairs if s not in used]
    return pairs


def read_pairs(path: str) -> list[tuple[str, str]]:
    """Read a TSV/CSV file of (source, target) pairs with the size limit checked before reading."""
    p = Path(path)
    limit = int(get_limits().max_upload_mb * 2**20)
    try:
        if not p.is_file():
            raise UsageError(f"{path}: no such file")
        if p.stat().st_size > limit:
            raise UsageError(f"{path}: {p.stat().st_size / 2**20:.1f} MB is over the upload limit of "
                             f"{limit / 2**20:.1f} MB (SEQ2SEQ_MAX_UPLOAD_MB)")
        data = p.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    try:
        return load_pairs(data, p.name)
    except DataError as e:
        raise UsageError(f"{path}: {e}") from None


def make_data(args: argparse.Namespace) -> tuple[Seq2SeqData, dict]:
    """The dataset a `train` command asks for, and a JSON-able description of it (saved in metrics.json)."""
    tokens = args.tokens
    if args.valid and not args.data:
        raise UsageError("--valid goes with --data (a task makes its own validation split)")
    if args.task:
        params = _parse_params(args.param)
        splits = task_splits(args.task, args.data_seed if args.data_seed is not None else args.seed, params,
                             args.n_train, args.n_valid, args.n_test)
        tokens = tokens or TASKS[args.task].tokens
        source = {"task": args.task, "params": params, "seed": args.data_seed if args.data_seed is not None
                  else args.seed, "n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test}
    else:
        pairs = read_pairs(args.data)
        source = {"file": Path(args.data).name}
        if args.valid:  # held-out pairs given: the validation set; the test set is still 10% of the data
            splits = {"train": pairs, "valid": read_pairs(args.valid)}
            source["valid_file"] = Path(args.valid).name
        else:
            splits = pairs
        tokens = tokens or "char"
    try:
        data = build_data(splits, tokens=tokens, max_len=args.max_len, seed=args.seed, max_vocab=args.max_vocab)
    except (DataError, ValueError) as e:
        raise UsageError(str(e)) from None
    source.update(tokens=tokens, max_len=data.max_len, n_truncated=data.n_truncated)
    return data, source


# ---------------------------------------------------------------------------------------------------------- train


def _bar(frac: float, width: int = 24) -> str:
    n = int(round(width * min(max(frac, 0.0), 1.0)))
    return "[" + "#" * n + "." * (width - n) + "]"


def train(args: argparse.Namespace, log=sys.stderr) -> ckpt_io.Checkpoint:
    """Train in this process from parsed `train` arguments, save the checkpoint to args.out and return it."""
    from .model import count_parameters
    from .training import Run

    torch.set_num_threads(args.threads)
    data, source = make_data(args)
    try:
        model_cfg = ModelConfig(src_vocab_size=len(data.src_vocab), tgt_vocab_size=len(data.tgt_vocab),
                                cell=args.cell, embed=args.embed, hidden=args.hidden, layers=args.layers,
                                bidirectional=args.bidirectional, attention=args.attention,
                                dropout=args.dropout).validate()
        train_cfg = TrainConfig(optimizer=args.optimizer, lr=args.lr, lr_schedule=args.lr_schedule,
                                batch_size=args.batch_size, bucket_by_length=args.bucket_by_length,
                                epochs=args.epochs or None, max_seconds=args.max_seconds or None, clip=args.clip,
                                teacher_forcing=args.teacher_forcing, seed=args.seed, eval_every=args.eval_every,
                                threads=args.threads, precision=args.precision).validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    limits = get_limits()
    n_params = count_parameters(model_cfg)["total"]
    if n_params > limits.max_params:
        raise UsageError(f"the model has {n_params:,} parameters, over the limit of {limits.max_params:,} "
                         "(SEQ2SEQ_MAX_PARAMS): use fewer hidden units, layers or a smaller embedding")

    print(f"data: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test pairs, "
          f"vocab {len(data.src_vocab)} -> {len(data.tgt_vocab)}, {data.tokens} tokens; model: {n_params:,} "
          f"parameters", file=log)
    run = Run(data, model_cfg, train_cfg)
    tty = hasattr(log, "isatty") and log.isatty()
    last_print, last_decile = 0.0, -1
    while not run.done:
        m = run.step()
        now, frac = time.perf_counter(), run.progress()
        if run.done or (tty and now - last_print > 0.1) or (not tty and int(frac * 10) > last_decile):
            em = run.last_eval.get("exact_match", float("nan"))
            line = (f"{_bar(frac)} {frac:4.0%} step {run.step_count} epoch {run.epoch:.2f} "
                    f"loss {m.get('train_loss', float('nan')):.4f} valid exact match {em:.3f} {run.seconds:.1f}s")
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=log, flush=True)
            last_print, last_decile = now, int(frac * 10)
    if tty:
        print(file=log)
    if run.status in ("diverged", "error"):
        raise UsageError(f"training {run.status}: {run.message}")

    test = run.evaluate("test")
    metrics = {k: test[k] for k in ("exact_match", "token_accuracy", "loss", "n")}
    metrics.update(split="test", valid_exact_match=run.last_eval.get("exact_match"), steps=run.step_count,
                   epochs=round(run.epoch, 3), seconds=round(run.seconds, 2), n_params=n_params, data=source,
                   precision=run.precision, message=run.message)
    ckpt = ckpt_io.Checkpoint(model=run.model.eval(), model_cfg=model_cfg, train_cfg=train_cfg, tokens=data.tokens,
                              src_vocab=data.src_vocab, tgt_vocab=data.tgt_vocab, metrics=metrics,
                              history=run.snapshot()["history"], task=args.task)
    ckpt_io.save(ckpt, args.out)
    return ckpt


# ----------------------------------------------------------------------------------------------------- eval, predict


def _load(path: str) -> ckpt_io.Checkpoint:
    try:
        return ckpt_io.load(path)
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
    data = Seq2SeqData(tokens=ckpt.tokens, src_vocab=ckpt.src_vocab, tgt_vocab=ckpt.tgt_vocab, train=pairs[:1],
                       valid=pairs[:1], test=pairs, max_len=max_len)
    run = Run(data, ckpt.model_cfg, TrainConfig(), state_dict=ckpt.model.state_dict())
    return run.evaluate("test")


def eval_command(args: argparse.Namespace) -> dict:
    ckpt = _load(args.checkpoint)
    if args.data:
        pairs = read_pairs(args.data)
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
        _, warnings = check_input_text(args.text, ckpt.src_vocab, ckpt.tokens, get_limits().max_seq_len)
    except DataError as e:
        raise UsageError(str(e)) from None
    for w in warnings:
        print(f"note: {w}", file=sys.stderr)
    if not 1 <= args.beam <= 64:
        raise UsageError("--beam must be between 1 and 64")
    return translate(ckpt.model, (ckpt.src_vocab, ckpt.tgt_vocab, ckpt.tokens), args.text, beam=args.beam)


def export_command(args: argparse.Namespace) -> str:
    from .export import ExportError, export

    ckpt = _load(args.checkpoint)
    try:
        py, weights = export(ckpt, args.out)
    except ExportError as e:
        raise UsageError(str(e)) from None
    return f"wrote {py} and {weights}: run  python {py} \"input text\""


# ---------------------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m seq2seq", description="Train, evaluate and run RNN encoder-decoder models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d_model, d_train = ModelConfig(5, 5), TrainConfig()

    t = sub.add_parser("train", help="train a model and save a checkpoint folder")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help=f"built-in task: {', '.join(TASKS)}")
    src.add_argument("--data", metavar="FILE", help="TSV (source<TAB>target) or CSV (header source,target)")
    t.add_argument("--valid", metavar="FILE", help="validation pairs (with --data); without it 10%% of the data is "
                   "held out for validation (and always 10%% for the final test)")
    t.add_argument("--param", action="append", metavar="KEY=N", help="task parameter, e.g. digits=3, min_len=5")
    t.add_argument("--n-train", type=int, default=None, help="task examples for training (default: the task's)")
    t.add_argument("--n-valid", type=int, default=None)
    t.add_argument("--n-test", type=int, default=None)
    t.add_argument("--data-seed", type=int, default=None, help="seed of the task data (default: --seed)")
    t.add_argument("--tokens", choices=("char", "word"), default=None, help="default: the task's, or char")
    t.add_argument("--max-len", type=int, default=50, help="timesteps kept per sequence (default 50)")
    t.add_argument("--max-vocab", type=int, default=None)
    t.add_argument("--cell", choices=CELLS, default=d_model.cell)
    t.add_argument("--embed", type=int, default=d_model.embed)
    t.add_argument("--hidden", type=int, default=d_model.hidden)
    t.add_argument("--layers", type=int, default=d_model.layers)
    t.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=d_model.bidirectional,
                   help="bidirectional encoder (default: on; --no-bidirectional for one direction)")
    t.add_argument("--attention", choices=ATTENTIONS, default=d_model.attention)
    t.add_argument("--dropout", type=float, default=d_model.dropout)
    t.add_argument("--epochs", type=float, default=d_train.epochs, help="0 = no epoch limit (then set --max-seconds)")
    t.add_argument("--max-seconds", type=float, default=None, help="training time budget in seconds")
    t.add_argument("--batch-size", type=int, default=d_train.batch_size)
    t.add_argument("--lr", type=float, default=d_train.lr)
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d_train.lr_schedule,
                   help="plateau: halve the rate when the validation loss stops improving; constant; halving")
    t.add_argument("--bucket-by-length", action=argparse.BooleanOptionalAction, default=d_train.bucket_by_length,
                   help="batch examples of about the same length together (default: on)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d_train.optimizer)
    t.add_argument("--clip", type=float, default=d_train.clip, help="max gradient norm, 0 = off")
    t.add_argument("--teacher-forcing", type=float, default=d_train.teacher_forcing)
    t.add_argument("--eval-every", type=int, default=d_train.eval_every)
    t.add_argument("--seed", type=int, default=d_train.seed)
    t.add_argument("--threads", type=int, default=d_train.threads)
    t.add_argument("--precision", choices=PRECISIONS, default=d_train.precision,
                   help="matrix products of the training steps: fp32, or bf16 (mixed precision: weights, gradients "
                        "and every evaluation stay fp32); auto (default): bf16 where the CPU has it natively")
    t.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")

    e = sub.add_parser("eval", help="evaluate a checkpoint; prints one JSON object")
    e.add_argument("checkpoint", metavar="DIR")
    e.add_argument("--data", metavar="FILE")
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
    x.add_argument("--out", required=True, metavar="FILE.py",
                   help="the Python file to write; the weights go to FILE.safetensors beside it")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            ckpt = train(args)
            m = ckpt.metrics
            print(f"test exact_match {m['exact_match']:.4f} token_accuracy {m['token_accuracy']:.4f} "
                  f"loss {m['loss']:.4f} n {m['n']} steps {m['steps']} seconds {m['seconds']} -> {args.out}")
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
