"""Task families for the defaults benchmark (benchmarks/bench_defaults.py): pair files as users bring them.

Each family is a distribution of (source, target) pairs, written once, deterministically (the seed is the family's
name), as a TSV file `source<TAB>target` without a header, the way a user's file looks; the benchmark reads it back
through the same loader as `python -m seq2seq train --data FILE`. The families vary what the built-in tasks keep
fixed: operand distributions (uniform operands instead of "digit count first"), digit counts, operations, sequence
lengths, alphabets and vocabulary sizes (10 to 3,000 tokens), label noise, data sizes (1,000 to 100,000 pairs),
character and word tokens, and one set of real sentences (Tatoeba English-French).

THE SPLIT IS FIXED (committed before any tuning; see `git log benchmarks/families.py`):
  * "tuning":   the defaults may be chosen by measuring these.
  * "held-out": never used to choose anything; reported only.
The issue's own file (uniform 3-digit addition, ~39,000 training pairs, query not reversed) is in the TUNING half:
it is the acceptance case and the issue's filer has already seen results on it, so it cannot count as held out.
Its held-out siblings are uniform 4-digit addition and uniform 3-digit subtraction.

    python benchmarks/families.py                 # list the families and their halves
    python benchmarks/families.py --write DIR     # write every family's TSV into DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
TATOEBA = Path("/work/shared/data/tatoeba-eng-fra-5k.tsv")  # 3 columns: English, French, attribution


# ---------------------------------------------------------------------------------------------- generators
def _uniform_op(op: str, hi: int):
    """a <op> b with both operands uniform in 0..hi (so most have the full digit count), query as written."""

    def gen(rng: random.Random) -> tuple[str, str]:
        a, b = rng.randint(0, hi), rng.randint(0, hi)
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return f"{a}{op}{b}", str(value)

    return gen


def _string_map(alphabet: str, lo: int, hi: int, f: Callable[[str], str]):
    def gen(rng: random.Random) -> tuple[str, str]:
        x = "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
        return x, f(x)

    return gen


def _date(rng: random.Random, y0: int = 1950, y1: int = 2049) -> dt.date:
    a, b = dt.date(y0, 1, 1).toordinal(), dt.date(y1, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(a, b))


def dates_iso_to_long(rng):  # 2026-11-24 -> 24 November 2026
    d = _date(rng)
    return d.isoformat(), f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def dates_us_short_to_long(rng):  # 11/24/26 -> November 24, 2026 (two-digit years: 1950-2049)
    d = _date(rng)
    return f"{d.month}/{d.day}/{d.year % 100:02d}", f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


ONES = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _words_below_1000(n: int) -> list[str]:
    out = []
    if n >= 100:
        out += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(TENS[n // 10])
        if n % 10:
            out.append(ONES[n % 10])
    elif n >= 10:
        out.append(TEENS[n - 10])
    elif n or not out:
        out.append(ONES[n])
    return out


def digits_to_words(rng):  # "4 0 3 1 2" -> "forty thousand three hundred twelve" (word tokens, 0..99,999)
    n = rng.randint(0, 99_999)
    words = (_words_below_1000(n // 1000) + ["thousand"] if n >= 1000 else []) + (
        _words_below_1000(n % 1000) if n % 1000 or n < 1000 else []
    )
    return " ".join(str(n)), " ".join(words)


def _lexicon(size: int, seed: str) -> tuple[list[str], dict[str, str]]:
    """`size` made-up source words and a fixed made-up translation of each (distinct, 2-4 syllables)."""
    rng = random.Random(zlib.crc32(seed.encode()))
    syll = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]

    def words(n: int) -> list[str]:
        seen: set[str] = set()
        while len(seen) < n:
            seen.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))))
        return sorted(seen)

    src, tgt = words(size), words(size)
    rng.shuffle(tgt)
    return src, dict(zip(src, tgt))


def _lexicon_task(size: int, lo: int, hi: int, reverse: bool, zipf: bool):
    """Word-for-word translation with a `size`-word lexicon; reverse=True also reverses the word order. With zipf,
    word i is drawn with weight 1/(i+1) (a long tail of rare words, as in real text)."""
    src, table = _lexicon(size, f"lexicon{size}")
    weights = [1 / (i + 1) for i in range(size)] if zipf else None

    def gen(rng):
        ws = rng.choices(src, weights=weights, k=rng.randint(lo, hi))
        out = [table[w] for w in ws]
        return " ".join(ws), " ".join(out[::-1] if reverse else out)

    return gen


# ---------------------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    name: str
    half: str  # "tuning" | "held-out"
    tokens: str  # "char" | "word"
    n_pairs: int  # pairs in the file (build_data then keeps 80% for training, 10% valid, 10% test)
    about: str
    gen: Callable | None = None  # rng -> (source, target); None: a real file (see pairs())
    noise: float = 0.0  # fraction of targets replaced by another example's target (wrong labels)
    score: str = "exact_match"  # the number the table compares ("token_accuracy" where exact match stays near 0)

    def pairs(self, n: int | None = None) -> list[tuple[str, str]]:
        """The family's pairs, deterministic: distinct sources drawn with the seed crc32(name); `n` caps the count
        (the benchmark's --quick mode)."""
        n = self.n_pairs if n is None else min(n, self.n_pairs)
        if self.gen is None:
            return _tatoeba_pairs()[:n]
        rng = random.Random(zlib.crc32(self.name.encode()))
        out, seen = [], set()
        for _ in range(50 * n):
            s, t = self.gen(rng)
            if s not in seen:
                seen.add(s)
                out.append((s, t))
                if len(out) == n:
                    break
        if self.noise:
            targets = [t for _, t in out]
            out = [(s, rng.choice(targets) if rng.random() < self.noise else t) for s, t in out]
        return out


def _tatoeba_pairs() -> list[tuple[str, str]]:
    """English, French: the first two of the file's three columns, every line as published (the same English with
    several French translations stays several lines; the library's loader keeps the first of them)."""
    rows = [line.split("\t") for line in TATOEBA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r[0], r[1]) for r in rows if len(r) >= 2]


FAMILIES: list[Family] = [
    # ---------------------------------------------------------------- tuning half
    Family(
        "add3-uniform",
        "tuning",
        "char",
        48_750,
        "a+b, operands uniform 0-999 (the issue's file: 39,000 training pairs, query not reversed)",
        _uniform_op("+", 999),
    ),
    Family(
        "reverse-digits-1k",
        "tuning",
        "char",
        1_000,
        "reverse 4-10 digits, 1,000 pairs (small data)",
        _string_map("0123456789", 4, 10, lambda x: x[::-1]),
    ),
    Family(
        "sort-10letters-100k",
        "tuning",
        "char",
        100_000,
        "sort 5-12 letters of a-j, 100,000 pairs (large data)",
        _string_map(LETTERS[:10], 5, 12, lambda x: "".join(sorted(x))),
    ),
    Family("dates-iso-to-long", "tuning", "char", 10_000, "2026-11-24 -> 24 November 2026", dates_iso_to_long),
    Family(
        "copy-noisy10",
        "tuning",
        "char",
        5_000,
        "copy 3-10 letters, 10% of targets are another example's "
        "(label noise: the best possible exact match is about 90%)",
        _string_map(LETTERS, 3, 10, lambda x: x),
        noise=0.10,
    ),
    Family(
        "digits-to-words",
        "tuning",
        "word",
        20_000,
        "'4 0 3 1 2' -> 'forty thousand three hundred twelve' (word tokens, 0-99,999)",
        digits_to_words,
    ),
    Family(
        "lexicon1000-reverse",
        "tuning",
        "word",
        30_000,
        "word-for-word translation, 1,000-word made-up lexicon (Zipf frequencies), word order reversed, 3-7 words",
        _lexicon_task(1000, 3, 7, True, True),
    ),
    # ---------------------------------------------------------------- held-out half (never tuned on)
    Family("add4-uniform", "held-out", "char", 60_000, "a+b, operands uniform 0-9999", _uniform_op("+", 9999)),
    Family(
        "sub3-uniform",
        "held-out",
        "char",
        48_750,
        "a-b, operands uniform 0-999 (negative results)",
        _uniform_op("-", 999),
    ),
    Family("mul2-uniform", "held-out", "char", 8_000, "a*b, operands uniform 0-99", _uniform_op("*", 99)),
    Family(
        "reverse-long",
        "held-out",
        "char",
        20_000,
        "reverse 8-20 letters of a-z",
        _string_map(LETTERS, 8, 20, lambda x: x[::-1]),
    ),
    Family(
        "dates-us-short",
        "held-out",
        "char",
        10_000,
        "11/24/26 -> November 24, 2026 (century inferred)",
        dates_us_short_to_long,
    ),
    Family(
        "add2-noisy10-1.5k",
        "held-out",
        "char",
        1_500,
        "a+b, operands uniform 0-99, 1,500 pairs, 10% wrong labels (small, noisy)",
        _uniform_op("+", 99),
        noise=0.10,
    ),
    Family(
        "lexicon3000-monotone",
        "held-out",
        "word",
        40_000,
        "word-for-word translation, 3,000-word made-up lexicon (Zipf frequencies), same order, 2-8 words",
        _lexicon_task(3000, 2, 8, False, True),
    ),
    Family(
        "tatoeba-eng-fra",
        "held-out",
        "word",
        5_000,
        "real sentences: Tatoeba English -> French, the 5,000 "
        "shortest lines, first two columns, word tokens (scored by token accuracy: exact match stays low)",
        None,
        score="token_accuracy",
    ),
]
BY_NAME = {f.name: f for f in FAMILIES}
HALVES = ("tuning", "held-out")


def write_tsv(family: Family, folder: str | Path, n: int | None = None) -> Path:
    """Write the family's pairs as FOLDER/<name>.tsv (source<TAB>target, one pair a line) and return the path."""
    path = Path(folder) / f"{family.name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in family.pairs(n)), encoding="utf-8")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", metavar="DIR", help="write every family's TSV file into DIR")
    args = ap.parse_args()
    for f in FAMILIES:
        line = f"{f.half:8s}  {f.name:22s} {f.tokens:4s} {f.n_pairs:7,d}  {f.about}"
        if args.write:
            line += f"  -> {write_tsv(f, args.write)}"
        print(line)
