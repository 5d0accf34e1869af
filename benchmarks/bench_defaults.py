"""Do the defaults generalize? Every family of benchmarks/families.py, trained from its pair file the way
`python -m seq2seq train --data FILE --tokens T` does, with the defaults, with other configurations, and with a
minimal plain-PyTorch loop (benchmarks/plain_seq2seq.py), each for the same budget of CPU seconds.

    python benchmarks/bench_defaults.py --quick                      # every family, small files, 3 CPU-s (~2 min)
    python benchmarks/bench_defaults.py --half held-out              # the held-out table (long: run it with nohup)
    python benchmarks/bench_defaults.py --half tuning --configs defaults,dot+constant --budget 30
    python benchmarks/bench_defaults.py --table artifacts/bench_defaults.jsonl   # print the table of earlier results

Each run: the data are read with the CLI's loader and split 80/10/10 by `seq2seq.cli.make_data`; the model and
training settings are the CLI's flags (`seq2seq.cli.configs`) with the configuration's overrides. The run trains for
at most `--budget` seconds of process CPU time (time.process_time, one torch thread: about the wall time of the same
work on an idle core; the machine is shared, so wall time would measure the neighbours) or until its own budget
(epochs, early stopping) ends it. After every evaluation whose validation exact match (256 examples) reaches 99%,
the test split is checked (untimed); the run ends there if it reaches 99% too. The score is the TEST split's exact
match (token accuracy for the families that say so), and "t99" the CPU seconds to 99% test exact match.

"best" is the best score of all the configurations run for a family (the defaults included); the table prints
defaults / best and whether the defaults beat the plain loop. One seed (0) per run: read differences of a few
points as noise. Results are appended as JSON lines to --out as each run ends (so a long run can be read early).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from families import BY_NAME, FAMILIES, HALVES, write_tsv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "artifacts" / "families"
QUICK_PAIRS = 1500
LEARNED = 0.05  # a best score below this: nothing was learned in the budget, so no defaults / best ratio  # --quick: pairs per family file

# Overrides of the CLI's flags ("defaults" = none: whatever the library's defaults are when this runs).
CONFIGS: dict[str, dict] = {
    "defaults": {},
    "old-defaults": {
        "attention": "none",
        "lr_schedule": "plateau",
        "lr_patience": 1,
        "epochs": 20.0,
        "stop_patience": 0,
    },  # the defaults before issue 13
    "dot": {"attention": "dot"},
    "constant": {"lr_schedule": "constant"},
    "dot+constant": {"attention": "dot", "lr_schedule": "constant"},
    "additive+constant": {"attention": "additive", "lr_schedule": "constant"},
    "dot+plateau1": {"attention": "dot", "lr_schedule": "plateau", "lr_patience": 1},
    "dot+plateau4": {"attention": "dot", "lr_schedule": "plateau", "lr_patience": 4},
    "dot+constant+h256": {"attention": "dot", "lr_schedule": "constant", "hidden": 256},
    "dot+constant+lr1e-3": {"attention": "dot", "lr_schedule": "constant", "lr": 1e-3},
    "dot+constant+b32": {"attention": "dot", "lr_schedule": "constant", "batch_size": 32},
    "dot+plateau4+lr1e-3": {"attention": "dot", "lr_schedule": "plateau", "lr_patience": 4, "lr": 1e-3},
    "none+plateau4": {"attention": "none", "lr_schedule": "plateau", "lr_patience": 4},
}
PLAIN = "plain-loop"
DEFAULT_CONFIGS = "defaults,old-defaults,dot+constant,additive+constant,dot+plateau4"


def family_file(name: str, quick: bool) -> Path:
    """The family's TSV (written on first use; --quick files hold the first QUICK_PAIRS pairs)."""
    fam = BY_NAME[name]
    folder = FILES / ("quick" if quick else "full")
    path = folder / f"{name}.tsv"
    if not path.exists():
        tmp = write_tsv(fam, folder / f".tmp-{os.getpid()}", QUICK_PAIRS if quick else None)
        tmp.replace(path)
        tmp.parent.rmdir()
    return path


def cli_setup(path: Path, tokens: str, overrides: dict):
    """(data, model_cfg, train_cfg) exactly as `python -m seq2seq train --data PATH --tokens TOKENS` builds them,
    with `overrides` applied to the parsed flags."""
    from seq2seq import cli

    args = cli.build_parser().parse_args(["train", "--data", str(path), "--tokens", tokens, "--out", "unused"])
    for k, v in overrides.items():
        if not hasattr(args, k):
            raise KeyError(f"no train flag {k!r}")
        setattr(args, k, v)
    data, _ = cli.make_data(args)
    model_cfg, train_cfg = cli.configs(args, data)
    return data, model_cfg, train_cfg


def run_library(data, model_cfg, train_cfg, budget: float, target: float = 0.99) -> dict:
    from seq2seq.training import Run

    run = Run(data, model_cfg, train_cfg)
    cpu, last_eval_step, reached = 0.0, -1, None
    while not run.done and cpu < budget:
        c0 = time.process_time()
        run.step()
        cpu += time.process_time() - c0
        e = run.last_eval
        if e and e["step"] != last_eval_step and not run.done:
            last_eval_step = e["step"]
            if e["exact_match"] >= target and run.evaluate("test")["exact_match"] >= target:
                reached = cpu
                break
    test = run.evaluate("test")
    return {
        "exact_match": test["exact_match"],
        "token_accuracy": test["token_accuracy"],
        "n": test["n"],
        "cpu_s": round(cpu, 2),
        "steps": run.step_count,
        "to_target_s": None if reached is None else round(reached, 2),
        "stopped": run.message if run.done else "",
    }


def run_one(family: str, config: str, budget: float, quick: bool = False, n_pairs: int | None = None) -> dict:
    """One (family, configuration) run; a JSON-able row. `n_pairs` overrides the file (tests: tiny data)."""
    torch.set_num_threads(1)
    fam = BY_NAME[family]
    if n_pairs is not None:
        path = write_tsv(fam, FILES / f"n{n_pairs}", n_pairs)
    else:
        path = family_file(family, quick)
    data, mc, tc = cli_setup(path, fam.tokens, {} if config == PLAIN else CONFIGS[config])
    t0 = time.perf_counter()
    if config == PLAIN:
        from plain_seq2seq import train_plain

        r = train_plain(data, budget)
    else:
        r = run_library(data, mc, tc, budget)
    r.update(
        family=family,
        half=fam.half,
        config=config,
        budget_s=budget,
        score_name=fam.score,
        score=r[fam.score],
        wall_s=round(time.perf_counter() - t0, 1),
        n_train=len(data.train),
        quick=quick,
        settings="plain LSTM E128 H256 Adam 1e-3"
        if config == PLAIN
        else f"{mc.cell} H{mc.hidden} E{mc.embed} att={mc.attention} {tc.lr_schedule}/p{tc.lr_patience} lr={tc.lr:g} "
        f"batch={tc.batch_size} epochs={tc.epochs} stop={tc.stop_patience}",
    )
    return r


# ----------------------------------------------------------------------------------------------------- the table
def table(rows: list[dict]) -> str:
    """Markdown: one line per family (tuning half first), defaults vs the best configuration vs the plain loop."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["family"], {})[r["config"]] = r  # a later row of the same run replaces an earlier one
    fmt = lambda r: (
        "-"
        if r is None
        else (
            f"{r['score']:.3f}"
            + (
                f" ({r['to_target_s']:.0f} s)"  # noqa: E731
                if r.get("to_target_s") is not None
                else ""
            )
            + f", {r['steps']:,} st"
        )
    )
    out = [
        "| half | family | score | defaults (t99) | best config | best (t99) | plain loop (t99) | "
        "defaults / best | defaults > plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {h: [0, 0, 0] for h in HALVES}
    seen = {BY_NAME[r["family"]].half for r in rows}
    for fam in FAMILIES:
        runs = by.get(fam.name)
        if not runs:
            continue
        d, p = runs.get("defaults"), runs.get(PLAIN)
        lib = {k: v for k, v in runs.items() if k != PLAIN}
        # the best: the fastest to 99% among those that got there, else the highest score
        rank = lambda k: (1, -lib[k]["to_target_s"]) if lib[k].get("to_target_s") is not None else (0, lib[k]["score"])  # noqa: E731
        best_name = max(lib, key=rank) if lib else None
        b = lib.get(best_name)
        # below LEARNED, no configuration learned the task in the budget: no ratio (a longer budget is needed)
        ratio = d["score"] / b["score"] if d and b and b["score"] >= LEARNED else float("nan")
        beats = (
            "-"
            if not (d and p)
            else (
                "yes"
                if d["score"] > p["score"]
                or (d["score"] == p["score"] and (d["to_target_s"] or 1e9) < (p["to_target_s"] or 1e9))
                else "NO"
            )
        )
        if d and ratio == ratio:  # not NaN
            s = summary[fam.half]
            s[0] += 1
            s[1] += ratio >= 0.9
            s[2] += beats == "yes"
        out.append(
            f"| {fam.half} | {fam.name} | {fam.score.replace('_', ' ')} | {fmt(d)} | {best_name or '-'} | "
            f"{fmt(b)} | {fmt(p)} | {ratio:.2f} | {beats} |"
        )
    budgets = sorted({r["budget_s"] for r in rows})
    out.append("")
    for h, (n, ok, beat) in summary.items():
        if h in seen:
            out.append(
                f"{h}: defaults >= 90% of the best on {ok}/{n} families, beat the plain loop on {beat}/{n} "
                f"(budget {'/'.join(f'{b:g}' for b in budgets)} CPU-s per run, seed 0; families where no "
                f"configuration reached {LEARNED:.0%} are left out: ratio nan)."
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"files of {QUICK_PAIRS} pairs, budget 3 CPU-s, defaults and the plain loop only",
    )
    ap.add_argument("--half", choices=("all",) + HALVES, default="all")
    ap.add_argument("--families", default="", help="comma-separated family names (default: the half's)")
    ap.add_argument(
        "--configs",
        default=None,
        help=f"comma-separated: {', '.join(CONFIGS)} (default: {DEFAULT_CONFIGS}); the plain loop always runs",
    )
    ap.add_argument("--no-plain", action="store_true", help="skip the plain loop (tuning runs)")
    ap.add_argument("--budget", type=float, default=None, help="CPU seconds per run (default 30; --quick 3)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "bench_defaults.jsonl"))
    ap.add_argument("--table", metavar="JSONL", help="only print the table of the results in JSONL")
    args = ap.parse_args()
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return
    os.environ.setdefault("SEQ2SEQ_MAX_ROWS", "200000")  # the 100,000-pair family is over the app's upload limit
    budget = args.budget or (3.0 if args.quick else 30.0)
    configs = (args.configs or ("defaults" if args.quick else DEFAULT_CONFIGS)).split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration(s): {', '.join(unknown)}")
    fams = [f.name for f in FAMILIES if args.half in ("all", f.half)]
    if args.families:
        fams = args.families.split(",")
        bad = [f for f in fams if f not in BY_NAME]
        if bad:
            ap.error(f"unknown family(ies): {', '.join(bad)}")
    for f in fams:
        family_file(f, args.quick)  # write the files once, before the workers read them
    jobs = [(f, c) for f in fams for c in [*configs, *([] if args.no_plain else [PLAIN])]]
    print(
        f"{len(jobs)} runs of {budget:g} CPU-s, {args.jobs} at once; torch {torch.__version__}, load average "
        f"{os.getloadavg()[0]:.1f} (shared machine); results -> {args.out}",
        flush=True,
    )
    rows = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool, open(args.out, "a") as log:
        futures = {pool.submit(run_one, f, c, budget, args.quick): (f, c) for f, c in jobs}
        for fut in as_completed(futures):
            r = fut.result()
            rows.append(r)
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(
                f"  {r['half']:8s} {r['family']:22s} {r['config']:20s} {r['score_name']} {r['score']:.3f} "
                f"t99 {r['to_target_s']} cpu {r['cpu_s']} s wall {r['wall_s']} s steps {r['steps']} "
                f"{r.get('stopped', '')[:60]} [{r['settings']}]",
                flush=True,
            )
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
