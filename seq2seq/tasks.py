"""Built-in synthetic tasks: small worlds where we know the right answer, generated offline from a seed.

Each task is a function `rng -> (source, target)` plus its parameters. `generate_splits` draws distinct sources
until it has enough, shuffles them and cuts them into train / valid / test, so a source string is never in two
splits and the same seed always gives the same data.

    copy       "kxqe"             -> "kxqe"             the easiest: the decoder repeats the input
    reverse    "kxqe"             -> "eqxk"             the first output needs the *last* input: attention shines
    sort       "kxqe"             -> "eqkx"             needs the whole input before the first output
    addition   "123+45"           -> "168"              carries run right to left, output is read left to right
    dates      "24 Nov 2026"      -> "2026-11-24"       many surface forms, one meaning
    translate  "the big dog sees a cat" -> "la hundo granda un kato vidas"   word level, reordering

Split sizes are generous on purpose. With 20,000 training pairs of 3-digit addition, an LSTM or a GRU reached 97%
exact match on its training pairs and stalled near 83% on held-out ones (it memorized answers instead of learning
the carries; measured here); with 100,000 both passed 99% held out. Too little data, not the cell, was what
stalled. The same holds, less sharply, for reversal (5,000 -> 20,000 pairs).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------------------------------------- sequences
def _letters(rng: random.Random, alphabet: str, min_len: int, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len)))


def copy_task(rng, min_len=5, max_len=15, alphabet=LETTERS):
    x = _letters(rng, alphabet, min_len, max_len)
    return x, x


def reverse_task(rng, min_len=5, max_len=15, alphabet=LETTERS):
    x = _letters(rng, alphabet, min_len, max_len)
    return x, x[::-1]


def sort_task(rng, min_len=5, max_len=15, alphabet=LETTERS):
    x = _letters(rng, alphabet, min_len, max_len)
    return x, "".join(sorted(x))


def addition_task(rng, digits=3, min_digits=1):
    """a+b with each operand having min_digits..digits digits (the digit count is drawn first, so short numbers
    are as common as long ones)."""

    def number() -> int:
        d = rng.randint(min_digits, digits)
        return rng.randint(0 if d == 1 else 10 ** (d - 1), 10**d - 1)

    a, b = number(), number()
    return f"{a}+{b}", str(a + b)


# -------------------------------------------------------------------------------------------------- dates
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
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


# One lambda per human format. "/" is always month/day/year (US) and "." always day.month.year, so every
# source has exactly one reading.
DATE_FORMATS: list[Callable[[dt.date], str]] = [
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",  # 24 Nov 2026
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",  # 24 November 2026
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",  # November 24, 2026
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",  # Nov 24, 2026
    lambda d: f"{d.month}/{d.day}/{d.year}",  # 11/24/2026
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 24.11.2026
    lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}",  # Tuesday, 24 November 2026
    lambda d: f"{WEEKDAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}",  # Tue 24 Nov 2026
    lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",  # the 24th of November 2026
    lambda d: f"{d.day}-{MONTHS[d.month - 1][:3].lower()}-{str(d.year)[2:]}",  # 24-nov-26 (year 2000-2099 below)
]


def dates_task(rng, min_year=1950, max_year=2049):
    start = dt.date(min_year, 1, 1).toordinal()
    d = dt.date.fromordinal(rng.randint(start, dt.date(max_year, 12, 31).toordinal()))
    formats = DATE_FORMATS if 2000 <= d.year <= 2099 else DATE_FORMATS[:-1]  # two-digit years only for 20xx
    return rng.choice(formats)(d), d.isoformat()


# ---------------------------------------------------------------------------------------------- translate
# A tiny English-like grammar and its translation into "Toyish", a made-up language with different word order:
#   English:  det adj* noun  verb  det adj* noun  [adverb]        (subject - verb - object)
#   Toyish:   det noun adj*  det noun adj*  [adverb]  verb        (subject - object - verb, adjectives after nouns)
# Plural nouns take -j in Toyish and so do their adjectives (agreement); English marks plural on the noun and,
# for subjects, on the verb ("the dogs see", "the dog sees"). Every English plural differs from its singular
# ("fish" would not), so the target is always determined by the source.
NOUNS = {  # English singular, English plural, Toyish
    "dog": ("dogs", "hundo"),
    "cat": ("cats", "kato"),
    "bird": ("birds", "birdo"),
    "horse": ("horses", "ĉevalo"),
    "fox": ("foxes", "vulpo"),
    "teacher": ("teachers", "instruisto"),
    "student": ("students", "studento"),
    "child": ("children", "infano"),
    "farmer": ("farmers", "kampulo"),
    "king": ("kings", "reĝo"),
    "queen": ("queens", "reĝino"),
    "doctor": ("doctors", "kuracisto"),
    "friend": ("friends", "amiko"),
    "baker": ("bakers", "bakisto"),
    "girl": ("girls", "knabino"),
    "boy": ("boys", "knabo"),
    "woman": ("women", "virino"),
    "man": ("men", "viro"),
    "robot": ("robots", "roboto"),
    "cook": ("cooks", "kuiristo"),
}
ADJECTIVES = {
    "big": "granda",
    "small": "malgranda",
    "old": "maljuna",
    "young": "juna",
    "happy": "feliĉa",
    "sad": "malĝoja",
    "red": "ruĝa",
    "blue": "blua",
    "green": "verda",
    "tall": "alta",
    "quiet": "trankvila",
    "clever": "lerta",
    "lazy": "maldiligenta",
    "brave": "brava",
    "hungry": "malsata",
}
VERBS = {  # English 3rd person singular, English plural, Toyish
    "sees": ("see", "vidas"),
    "likes": ("like", "ŝatas"),
    "helps": ("help", "helpas"),
    "follows": ("follow", "sekvas"),
    "finds": ("find", "trovas"),
    "calls": ("call", "vokas"),
    "feeds": ("feed", "nutras"),
    "knows": ("know", "konas"),
    "meets": ("meet", "renkontas"),
    "watches": ("watch", "rigardas"),
    "teaches": ("teach", "instruas"),
    "carries": ("carry", "portas"),
    "loves": ("love", "amas"),
    "hears": ("hear", "aŭdas"),
    "pushes": ("push", "puŝas"),
}
ADVERBS = {
    "quickly": "rapide",
    "slowly": "malrapide",
    "often": "ofte",
    "always": "ĉiam",
    "happily": "feliĉe",
    "today": "hodiaŭ",
}
DETERMINERS = {"the": "la", "a": "unu", "some": "kelkaj", "every": "ĉiu"}


def _noun_phrase(rng: random.Random, max_adjectives: int, p_plural: float) -> tuple[list[str], list[str], bool]:
    noun = rng.choice(sorted(NOUNS))
    plural = rng.random() < p_plural
    det = rng.choice(["the", "some"] if plural else ["the", "a", "every"])
    adjs = rng.sample(sorted(ADJECTIVES), rng.randint(0, max_adjectives))
    english = [det] + adjs + [NOUNS[noun][0] if plural else noun]
    j = "j" if plural else ""
    toyish = [DETERMINERS[det], NOUNS[noun][1] + j] + [ADJECTIVES[a] + j for a in adjs]
    return english, toyish, plural


def translate_task(rng, min_len=4, max_len=12, max_adjectives=2, p_plural=0.3, p_adverb=0.3):
    """English-like sentence (min_len..max_len words) -> Toyish."""
    for _ in range(1000):
        s_en, s_toy, s_plural = _noun_phrase(rng, max_adjectives, p_plural)
        o_en, o_toy, _ = _noun_phrase(rng, max_adjectives, p_plural)
        verb = rng.choice(sorted(VERBS))
        adverb = [rng.choice(sorted(ADVERBS))] if rng.random() < p_adverb else []
        english = s_en + [VERBS[verb][0] if s_plural else verb] + o_en + adverb
        if min_len <= len(english) <= max_len:
            toyish = s_toy + o_toy + [ADVERBS[a] for a in adverb] + [VERBS[verb][1]]
            return " ".join(english), " ".join(toyish)
    raise ValueError(
        f"translate: no sentence of {min_len}..{max_len} words with max_adjectives={max_adjectives}; "
        f"sentences have 5 to {7 + 2 * max_adjectives} words"
    )


# --------------------------------------------------------------------------------------------- real sentences
DATA_DIR = Path(__file__).resolve().parent / "data_files"
TATOEBA_FILE = DATA_DIR / "tatoeba-eng-fra-5k.tsv"
TATOEBA_LICENSE = (
    "Sentences from the Tatoeba project (tatoeba.org), via manythings.org/anki; licensed CC BY 2.0 FR "
    "(creativecommons.org/licenses/by/2.0/fr/). Every pair's contributors are named in the file's "
    "third column: seq2seq/data_files/tatoeba-eng-fra-5k.tsv (see the README next to it)."
)


@functools.cache
def file_pairs(path: str) -> tuple[tuple[str, str], ...]:
    """(English, French) pairs of a shipped TSV file (columns 1 and 2; the third, the attribution, is kept in the
    file and shown on the Data page)."""
    with open(path, encoding="utf-8") as f:
        return tuple((c[0], c[1]) for line in f.read().split("\n") if line and len(c := line.split("\t")) >= 2)


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    tokens: str  # default tokenization: "char" | "word" | "subword"
    generate: Callable[..., tuple[str, str]] | None  # (rng, **params) -> (source, target); None for a file task
    params: dict = field(default_factory=dict)  # parameter -> default
    n_train: int = 20000  # see the note at the top: small splits get memorized
    n_valid: int = 500
    n_test: int = 500
    file: Path | None = None  # a file task: real pairs from this TSV; sizes count distinct sources
    license: str | None = None  # attribution and license of a file task's data (shown with it)

    def example(self, seed: int = 0, **params) -> tuple[str, str]:
        if self.file is not None:
            pairs = file_pairs(str(self.file))
            return pairs[random.Random(seed).randrange(len(pairs))]
        return self.generate(random.Random(seed), **{**self.params, **params})

    def space_size(self, **params) -> float:
        """Number of distinct sources the task can produce with these parameters (inf when unknown/huge)."""
        p = {**self.params, **params}
        if self.file is not None:
            return float(len({s for s, _ in file_pairs(str(self.file))}))
        if "alphabet" in p:
            a = len(set(p["alphabet"]))  # sources are strings over the alphabet, for sort too
            return float(sum(a**n for n in range(p["min_len"], p["max_len"] + 1)))
        if self.name == "addition":
            lo = 0 if p["min_digits"] == 1 else 10 ** (p["min_digits"] - 1)
            return float((10 ** p["digits"] - lo) ** 2)
        if self.name == "dates":
            return float((p["max_year"] - p["min_year"] + 1) * 365.25 * (len(DATE_FORMATS) - 1))
        return float("inf")


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "copy",
            "Copy the input: the decoder must reproduce the letters in order.",
            "char",
            copy_task,
            {"min_len": 5, "max_len": 15, "alphabet": LETTERS},
        ),
        TaskSpec(
            "reverse",
            "Reverse the input: the first output letter is the last input letter, so the whole input "
            "must survive in the context vector, or attention must look back.",
            "char",
            reverse_task,
            {"min_len": 5, "max_len": 15, "alphabet": LETTERS},
        ),
        TaskSpec(
            "sort",
            "Sort the letters alphabetically: the model must see every letter before writing the first.",
            "char",
            sort_task,
            {"min_len": 5, "max_len": 15, "alphabet": LETTERS},
        ),
        TaskSpec(
            "addition",
            "Add two numbers written as text, like 123+45 -> 168: carries flow right to left.",
            "char",
            addition_task,
            {"digits": 3, "min_digits": 1},
            n_train=100_000,
            n_valid=1000,
            n_test=1000,
        ),
        TaskSpec(
            "dates",
            "Normalize a date written in one of several human formats (24 Nov 2026, November 24, 2026, "
            "11/24/2026, 24.11.2026, ...) to ISO 2026-11-24.",
            "char",
            dates_task,
            {"min_year": 1950, "max_year": 2049},
            n_train=10000,
            n_valid=1000,
            n_test=1000,
        ),
        TaskSpec(
            "translate",
            "Translate tiny English sentences into Toyish, a made-up language that puts adjectives after "
            "nouns and the verb at the end (word level).",
            "word",
            translate_task,
            {"min_len": 4, "max_len": 12, "max_adjectives": 2, "p_plural": 0.3, "p_adverb": 0.3},
            n_train=10000,
            n_valid=1000,
            n_test=1000,
        ),
        TaskSpec(
            "tatoeba",
            "English -> French (Tatoeba, real sentences): the 5,000 shortest pairs of the PyTorch "
            "seq2seq tutorial's data; most English sentences have several correct translations, all kept.",
            "word",
            None,
            {},
            n_train=2097,
            n_valid=250,
            n_test=250,
            file=TATOEBA_FILE,
            license=TATOEBA_LICENSE,
        ),
    ]
}


class Splits(dict):
    """{"train": [...], "valid": [...], "test": [...]} plus `notes`: what generate_splits had to change."""

    def __init__(self, *args, notes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = notes or []


def _check_params(spec: TaskSpec, params: dict) -> dict:
    unknown = set(params) - set(spec.params)
    if unknown:
        raise ValueError(
            f"task {spec.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(spec.params) or 'none'}"
        )
    p = {**spec.params, **params}
    if "min_len" in p and not 1 <= p["min_len"] <= p["max_len"]:
        raise ValueError(f"{spec.name}: need 1 <= min_len <= max_len, got {p['min_len']}..{p['max_len']}")
    if "alphabet" in p and not p["alphabet"]:
        raise ValueError(f"{spec.name}: the alphabet is empty")
    if spec.name == "addition" and not 1 <= p["min_digits"] <= p["digits"] <= 18:
        raise ValueError(f"addition: need 1 <= min_digits <= digits <= 18, got {p['min_digits']}, {p['digits']}")
    if spec.name == "dates" and not 1 <= p["min_year"] <= p["max_year"] <= 9999:
        raise ValueError(f"dates: need 1 <= min_year <= max_year <= 9999, got {p['min_year']}..{p['max_year']}")
    return p


def generate_splits(
    task: str,
    n_train: int | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    **params,
) -> Splits:
    """Deterministic train/valid/test pairs for a built-in task; no source string is in two splits.

    Sizes default to the task's own (TASKS[task].n_train ...). When the task cannot produce that many distinct
    sources (e.g. copy of length 1 over 3 letters), all sizes shrink in proportion and `result.notes` says so.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    spec = TASKS[task]
    p = _check_params(spec, params)
    sizes = {
        "train": spec.n_train if n_train is None else n_train,
        "valid": spec.n_valid if n_valid is None else n_valid,
        "test": spec.n_test if n_test is None else n_test,
    }
    if any(n < 0 for n in sizes.values()) or sizes["train"] < 1:
        raise ValueError(f"split sizes must be >= 0 (train >= 1), got {sizes}")
    want, notes = sum(sizes.values()), []
    if spec.file is not None:
        return _file_splits(spec, sizes, seed)

    # Never ask for more than ~90% of the space of distinct sources: rejection sampling would crawl near 100%.
    room = spec.space_size(**p)
    if want > 0.9 * room:
        scale = 0.9 * room / want
        sizes = {k: max(int(v * scale), 1 if v else 0) for k, v in sizes.items()}
        notes.append(
            f"{task}: only about {int(room)} distinct sources exist with these parameters, not the {want} "
            f"asked for; splits shrunk to {sizes['train']} / {sizes['valid']} / {sizes['test']}"
        )
        want = sum(sizes.values())

    rng = random.Random(f"{task}:{seed}")
    seen: dict[str, str] = {}
    misses, patience = 0, 20 * want + 1000
    while len(seen) < want and misses < patience:
        src, tgt = spec.generate(rng, **p)
        if src in seen:
            misses += 1
        else:
            seen[src] = tgt
    pairs = list(seen.items())
    if len(pairs) < want:  # the space estimate was too generous: share what we found, in proportion
        scale = len(pairs) / want
        sizes = {k: int(v * scale) for k, v in sizes.items()}
        sizes["train"] = len(pairs) - sizes["valid"] - sizes["test"]
        notes[:] = [
            f"{task}: found only {len(pairs)} distinct sources, not the {want} asked for; "
            f"splits shrunk to {sizes['train']} / {sizes['valid']} / {sizes['test']}"
        ]
    rng.shuffle(pairs)
    out, start = Splits(notes=notes), 0
    for k in ("train", "valid", "test"):
        out[k] = pairs[start : start + sizes[k]]
        start += sizes[k]
    return out


def _file_splits(spec: TaskSpec, sizes: dict, seed: int) -> Splits:
    """A file task's splits: its distinct sources shuffled with `seed` and dealt out (valid, test, then train), each
    with all of its targets, so no source is in two splits. Sizes count sources; they shrink if the file is short."""
    groups: dict[str, list[str]] = {}
    for src, tgt in file_pairs(str(spec.file)):
        if tgt not in groups.setdefault(src, []):
            groups[src].append(tgt)
    sources = list(groups)
    random.Random(f"{spec.name}:{seed}").shuffle(sources)
    notes, want = [], sum(sizes.values())
    if want > len(sources):
        scale = len(sources) / want
        sizes = {k: int(v * scale) for k, v in sizes.items()}
        notes.append(
            f"{spec.name}: the file has {len(sources)} distinct sources, not the {want} asked for; splits "
            f"shrunk to {sizes['train']} / {sizes['valid']} / {sizes['test']}"
        )
    out, start = Splits(notes=notes), 0
    for k in ("valid", "test", "train"):
        out[k] = [(s, t) for s in sources[start : start + sizes[k]] for t in groups[s]]
        start += sizes[k]
    return Splits({k: out[k] for k in ("train", "valid", "test")}, notes=notes)
