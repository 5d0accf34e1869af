"""What BLEU/chrF add to a periodic evaluation: Run.evaluate on 256 validation pairs with BLEU on the first 128
sources (the Train page's periodic evaluation) against the same evaluation without BLEU, interleaved, on the shipped
`tatoeba` model and the Tatoeba validation split.

    python benchmarks/bench_bleu_eval.py [--repeats 7]
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seq2seq.checkpoint import load  # noqa: E402
from seq2seq.config import TrainConfig  # noqa: E402
from seq2seq.data import build_data  # noqa: E402
from seq2seq.tasks import generate_splits  # noqa: E402
from seq2seq.training import BLEU_SOURCES, EVAL_EXAMPLES, Run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = load(Path(__file__).resolve().parents[1] / "pretrained" / "tatoeba")
    data = build_data(dict(generate_splits("tatoeba")), tokens=ck.tokenizer, max_len=50)
    data = replace(data, src_vocab=ck.src_vocab, tgt_vocab=ck.tgt_vocab)  # the model's own token ids
    run = Run(data, ck.model_cfg, TrainConfig(), state_dict=ck.model.state_dict())
    times = {"without BLEU": [], "with BLEU": []}
    for _ in range(a.repeats):
        for name, bl in (("without BLEU", 0), ("with BLEU", BLEU_SOURCES)):
            t = time.perf_counter()
            run.evaluate("valid", EVAL_EXAMPLES, bl)
            times[name].append(time.perf_counter() - t)
    base, bleu = statistics.median(times["without BLEU"]), statistics.median(times["with BLEU"])
    print(
        f"periodic evaluation ({EVAL_EXAMPLES} pairs; BLEU/chrF on {BLEU_SOURCES} sources), median of {a.repeats}, "
        f"interleaved: without BLEU {base * 1000:.0f} ms, with BLEU {bleu * 1000:.0f} ms, ratio {bleu / base:.2f}"
    )
    print(f"at eval_every={TrainConfig().eval_every} steps that is {(bleu - base) * 1000:.0f} ms per evaluation")


if __name__ == "__main__":
    main()
