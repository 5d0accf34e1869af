"""Data: from text pairs to padded tensors of token ids.

The path of one example, as the Data page shows it:

    "abc"  --tokenize-->  ["a", "b", "c"]  --Vocab.encode-->  [7, 5, 9]  --make_batch-->  one row of a (B, S) tensor

* Tokens are characters ("char"), words and punctuation marks ("word") or learned subword pieces ("subword"): see
  tokens.py, which also joins tokens back into text.
* Every vocabulary starts with four special tokens: <pad> 0 (fills short rows of a batch), <sos> 1 (start of
  sequence: the decoder's first input), <eos> 2 (end of sequence: the decoder's last target), <unk> 3 (any token
  not in the vocabulary).
* A batch pads every sequence to the longest one *in that batch*, so the number of timesteps S (encoder) and T
  (decoder) changes from batch to batch. Masks say which positions are real tokens.
* The decoder is trained with teacher forcing: its input at step t is the true previous token y_{t-1}, so for a
  target y_1..y_n the input row is  <sos> y_1 .. y_n  and the output row (what it must predict) is  y_1 .. y_n <eos>.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch

from .tokens import DEFAULT_VOCAB_SIZE, Tokenizer, as_tokenizer
from .tokens import MODES as TOKEN_MODES

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = [PAD, SOS, EOS, UNK]
PAD_ID, SOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
DEDUP = ("pairs", "source", "none")  # build_data's choices: drop repeated pairs / keep one target per source / keep all
MIN_PAIRS_TO_SPLIT = 10


class DataError(ValueError):
    """Something is wrong with the user's data. The message is shown to the user as it is: it says what is wrong,
    where (row / line number, 1-based) and what to do."""


# ----------------------------------------------------------------------------------------------------- tokens
def tokenize(text: str, mode: str | Tokenizer) -> list[str]:
    """ "char": every character is a token (spaces too). "word": words and punctuation marks, with their spacing
    (tokens.py). A Tokenizer (subwords, lowercasing) cuts the text its own way."""
    return as_tokenizer(mode).tokenize(text)


def detokenize(tokens: Sequence[str], mode: str | Tokenizer) -> str:
    """Inverse of tokenize: exact for "char"; for words and subwords, whitespace comes back as single spaces."""
    return as_tokenizer(mode).detokenize(tokens)


# ------------------------------------------------------------------------------------------------------ vocab
class Vocab:
    """Two-way map between tokens and ids. itos[i] is the token with id i; stoi is its inverse."""

    def __init__(self, itos: Sequence[str], counts: dict[str, int] | None = None):
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        self.counts: dict[str, int] = dict(counts or {})

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None, min_freq: int = 1) -> Vocab:
        """Count tokens; keep those seen at least `min_freq` times, most frequent first (ties alphabetical).

        `max_size` caps the whole vocabulary, the 4 specials included; dropped tokens will encode as <unk>.
        Tokens spelled like a special ("<eos>" typed as a word) are not added: they stay plain text (-> <unk>).
        """
        if max_size is not None and max_size < len(SPECIALS) + 1:
            raise ValueError(f"max_size must be at least {len(SPECIALS) + 1} (4 specials + 1 token), got {max_size}")
        counts = Counter(tok for toks in token_lists for tok in toks)
        for s in SPECIALS:
            counts.pop(s, None)
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls(SPECIALS + kept, dict(counts))

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token -> id; unknown tokens -> UNK_ID. No <sos>/<eos> is added."""
        get = self.stoi.get
        return [get(t, UNK_ID) for t in tokens]

    def encode_text_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Like encode, but user text can never become a control token: "<eos>" written in the data -> UNK_ID."""
        get = self.stoi.get
        return [i if (i := get(t, UNK_ID)) >= len(SPECIALS) else UNK_ID for t in tokens]

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> list[str]:
        """Id -> token. With strip_special: stop at the first <eos> and drop <pad>/<sos> (keep <unk>)."""
        out = []
        for i in ids:
            i = int(i)
            if strip_special:
                if i == EOS_ID:
                    break
                if i in (PAD_ID, SOS_ID):
                    continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """The n most frequent tokens in the data the vocabulary was built from, with their counts."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return items if n is None else items[:n]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {self.itos[4:12]}{' ...' if len(self) > 12 else ''})"

    def to_dict(self) -> dict:
        return {"itos": list(self.itos), "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: dict | list) -> Vocab:
        """Inverse of to_dict; also accepts a bare itos list (as in a checkpoint's vocab.json). Validates."""
        if isinstance(d, list):
            d = {"itos": d}
        if not isinstance(d, dict) or "itos" not in d:
            raise ValueError("vocabulary: expected an object with an 'itos' list of tokens")
        extra = set(d) - {"itos", "counts"}
        if extra:
            raise ValueError(f"vocabulary: unknown key(s) {', '.join(sorted(map(str, extra)))}")
        itos, counts = d["itos"], d.get("counts", {})
        if not isinstance(itos, list) or not all(isinstance(t, str) and t for t in itos):
            raise ValueError("vocabulary: 'itos' must be a list of non-empty strings")
        if itos[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"vocabulary: must start with the special tokens {SPECIALS}, got {itos[:4]}")
        if len(set(itos)) != len(itos):
            dup = next(t for t, n in Counter(itos).items() if n > 1)
            raise ValueError(f"vocabulary: token {dup!r} appears more than once")
        if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in counts.items()
        ):
            raise ValueError("vocabulary: 'counts' must map tokens to non-negative whole numbers")
        return cls(itos, counts)


# ------------------------------------------------------------------------------------------------------ batch
@dataclass
class Batch:
    """B examples padded to the longest source (S timesteps) and the longest target (T = n + 1 timesteps)."""

    src: torch.Tensor  # (B, S) long, x_1..x_S, padded with PAD_ID
    src_len: torch.Tensor  # (B,) long, real source length of each row
    tgt_in: torch.Tensor  # (B, T) long, <sos> y_1 .. y_n  (decoder inputs)
    tgt_out: torch.Tensor  # (B, T) long, y_1 .. y_n <eos>  (what the decoder must predict)
    src_mask: torch.Tensor  # (B, S) bool, True at real tokens
    tgt_mask: torch.Tensor  # (B, T) bool, True at real tokens (including <sos>/<eos>)
    tgt_len: torch.Tensor | None = None  # (B,) long, n + 1 per row

    def __len__(self) -> int:
        return self.src.shape[0]

    @property
    def n_tokens(self) -> int:
        """Number of target tokens predicted in this batch (what the loss averages over)."""
        return int(self.tgt_mask.sum())


def _pad(seqs: Sequence[Sequence[int]], prefix: list[int], suffix: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = [len(s) + len(prefix) + len(suffix) for s in seqs]
    width = max(max(lens, default=1), 1)
    rows = [prefix + list(s) + suffix + [PAD_ID] * (width - n) for s, n in zip(seqs, lens)]
    return torch.tensor(rows, dtype=torch.long).reshape(len(seqs), width), torch.tensor(lens, dtype=torch.long)


def _mask(lens: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width).unsqueeze(0) < lens.unsqueeze(1)


def make_batch(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]]) -> Batch:
    """Pad a list of encoded examples into a Batch (no <sos>/<eos> in the inputs: they are added here)."""
    if len(src_ids) != len(tgt_ids) or len(src_ids) == 0:
        raise ValueError(f"need the same, non-zero number of sources and targets, got {len(src_ids)}, {len(tgt_ids)}")
    src, src_len = _pad(src_ids, [], [])
    tgt_in, tgt_len = _pad(tgt_ids, [SOS_ID], [])
    tgt_out, _ = _pad(tgt_ids, [], [EOS_ID])
    return Batch(src, src_len, tgt_in, tgt_out, _mask(src_len, src.shape[1]), _mask(tgt_len, tgt_in.shape[1]), tgt_len)


def truncate(seqs: Sequence[Sequence], max_len: int) -> tuple[list[list], int]:
    """Cut every sequence to at most max_len items; also return how many sequences were cut."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    cut = [list(s[:max_len]) for s in seqs]
    return cut, sum(len(s) > max_len for s in seqs)


# ------------------------------------------------------------------------------------------------------- data
SPLITS = ("train", "valid", "test")


@dataclass
class Seq2SeqData:
    """Everything a run or the app needs about one dataset: the text pairs of each split, the two vocabularies,
    the tokenization and the maximum length. Pairs stay as text; `batches()` encodes a split once into padded
    tensors and then serves batches by slicing them."""

    tokens: str  # the mode: "char" | "word" | "subword" (= tokenizer.mode)
    src_vocab: Vocab
    tgt_vocab: Vocab
    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    max_len: int
    n_truncated: int = 0  # examples (all splits) whose source or target was cut to max_len
    n_duplicates: int = 0  # pairs dropped by build_data because their source was already seen
    n_empty: int = 0  # pairs dropped because the source or target had no tokens
    notes: list[str] = field(default_factory=list)  # what build_data (or a task generator) changed, for the user
    tokenizer: Tokenizer | None = None  # how text becomes tokens (None: the plain tokenizer of `tokens`)
    dedup: str = "pairs"  # what build_data removed as duplicates (DEDUP)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.tokenizer is None:
            self.tokenizer = as_tokenizer(self.tokens)
        if self.tokenizer.mode != self.tokens:
            raise ValueError(f"tokens {self.tokens!r} does not match the tokenizer's mode {self.tokenizer.mode!r}")

    # -- encoding
    def encode_source(self, src: str) -> list[int]:
        return self.src_vocab.encode_text_tokens(self.tokenizer.tokenize(src)[: self.max_len])

    def encode_pair(self, src: str, tgt: str) -> tuple[list[int], list[int]]:
        """Token ids of a pair, each cut to max_len, without <sos>/<eos> (make_batch adds them)."""
        return self.encode_source(src), self.tgt_vocab.encode_text_tokens(self.tokenizer.tokenize(tgt)[: self.max_len])

    def references(self, name: str) -> dict[str, list[str]]:
        """Every target of each source in a split, in order: {source: [target, ...]} (several when the data gives
        several correct outputs for one input; evaluation counts an output right if it matches any of them)."""
        refs: dict[str, list[str]] = {}
        for s, t in self.split(name):
            refs.setdefault(s, []).append(t)
        return refs

    def split(self, name: str) -> list[tuple[str, str]]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)

    def _tensors(self, name: str) -> dict[str, torch.Tensor]:
        """Encode a split once: padded src (N, max S), tgt_in/tgt_out (N, max T) and lengths."""
        if name not in self._cache:
            pairs = self.split(name)
            if not pairs:
                raise DataError(f"the {name} split is empty")
            enc = [self.encode_pair(s, t) for s, t in pairs]
            b = make_batch([e[0] for e in enc], [e[1] for e in enc])
            self._cache[name] = {
                "src": b.src,
                "src_len": b.src_len,
                "tgt_in": b.tgt_in,
                "tgt_out": b.tgt_out,
                "tgt_len": b.tgt_len,
            }
        return self._cache[name]

    def batches(
        self, split: str = "train", batch_size: int = 128, shuffle: bool = True, seed: int = 0
    ) -> Iterator[Batch]:
        """One pass over a split in batches of `batch_size` (the last one may be smaller), each padded to its
        own longest sequence. With shuffle, the order is a permutation drawn from `seed` (same seed, same order)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        t = self._tensors(split)
        n = t["src"].shape[0]
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        else:
            order = torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            src_len, tgt_len = t["src_len"][idx], t["tgt_len"][idx]
            S, T = max(int(src_len.max()), 1), int(tgt_len.max())
            yield Batch(
                t["src"][idx, :S],
                src_len,
                t["tgt_in"][idx, :T],
                t["tgt_out"][idx, :T],
                _mask(src_len, S),
                _mask(tgt_len, T),
                tgt_len,
            )

    def n_batches(self, split: str = "train", batch_size: int = 128) -> int:
        return -(-len(self.split(split)) // batch_size)

    # -- serialization (plain JSON-able dicts; used to ship data to training processes and into checkpoints)
    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "src_vocab": self.src_vocab.to_dict(),
            "tgt_vocab": self.tgt_vocab.to_dict(),
            "train": [list(p) for p in self.train],
            "valid": [list(p) for p in self.valid],
            "test": [list(p) for p in self.test],
            "max_len": self.max_len,
            "n_truncated": self.n_truncated,
            "n_duplicates": self.n_duplicates,
            "n_empty": self.n_empty,
            "notes": list(self.notes),
            "tokenizer": self.tokenizer.to_dict(),
            "dedup": self.dedup,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Seq2SeqData:
        try:
            splits = {k: [(str(s), str(t)) for s, t in d[k]] for k in SPLITS}
            return cls(
                d["tokens"],
                Vocab.from_dict(d["src_vocab"]),
                Vocab.from_dict(d["tgt_vocab"]),
                **splits,
                max_len=int(d["max_len"]),
                n_truncated=int(d.get("n_truncated", 0)),
                n_duplicates=int(d.get("n_duplicates", 0)),
                n_empty=int(d.get("n_empty", 0)),
                notes=[str(n) for n in d.get("notes", [])],
                tokenizer=Tokenizer.from_dict(d.get("tokenizer", d["tokens"])),
                dedup=str(d.get("dedup", "pairs")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a valid dataset description: {e}") from None

    def __getstate__(self) -> dict:  # ship text, not the tensor cache, to other processes
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state


def _clean_pairs(pairs: Iterable, tok: Tokenizer) -> tuple[list[tuple[str, str]], int]:
    """Check the pair shape and drop pairs whose source or target has no tokens; return (kept, n dropped)."""
    kept, n_empty = [], 0
    for i, p in enumerate(pairs):
        if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise DataError(f"example {i + 1} is not a (source, target) pair of strings: {p!r:.80}")
        if not tok.tokenize(p[0]) or not tok.tokenize(p[1]):
            n_empty += 1
            continue
        kept.append((p[0], p[1]))
    return kept, n_empty


def _dedupe(pairs: list[tuple[str, str]], how: str, seen: set[str] | None = None) -> tuple[list[tuple[str, str]], int]:
    """Drop duplicates (`how`: "pairs" = a (source, target) pair seen before, "source" = any pair after the first of
    its source, "none" = nothing), and any pair whose source is in `seen` (another split's). Returns (kept, n)."""
    seen = set() if seen is None else seen
    mine: set = set()
    out = []
    for p in pairs:
        if p[0] in seen:
            continue
        key = p if how == "pairs" else p[0] if how == "source" else None
        if key is not None:
            if key in mine:
                continue
            mine.add(key)
        out.append(p)
    seen.update(p[0] for p in out)
    return out, len(pairs) - len(out)


def _groups(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Pairs grouped by source, in order of first appearance (a split takes or leaves a whole group)."""
    by_src: dict[str, list[tuple[str, str]]] = {}
    for p in pairs:
        by_src.setdefault(p[0], []).append(p)
    return list(by_src.values())


def _flat(groups: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    return [p for g in groups for p in g]


DEDUP_NOTE = {
    "pairs": "Removed {n} pair(s) that repeat an earlier (source, target) pair exactly.",
    "source": "Removed {n} pair(s) whose source was already seen (the first target of each source was kept).",
    "none": "{n} pair(s) dropped because their source is also in the validation/test data.",
}


def build_data(
    pairs_or_splits,
    tokens: str | Tokenizer = "char",
    max_len: int = 50,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
    max_vocab: int | None = None,
    lowercase: bool = False,
    vocab_size: int | None = None,
    dedup: str = "pairs",
) -> Seq2SeqData:
    """Make a Seq2SeqData from a list of (source, target) pairs or from ready splits.

    Duplicates are removed as `dedup` says ("pairs": repeated (source, target) pairs, so several targets of one
    source are all kept; "source": all but the first target of a source; "none": nothing). A list is shuffled with
    `seed` and cut into train / valid / test by source, so no source string is in two splits and all the targets of
    a source stay together. A dict {"train": [...], "valid": [...], "test": [...]} keeps its splits; a missing or
    empty valid/test split is carved out of train, and train pairs whose source also appears in valid or test are
    dropped. Vocabularies are built from the training split only: tokens first seen in valid/test encode as <unk>,
    as they would for a new input. Subword pieces (tokens="subword") are learned from the training split too, with
    `vocab_size` pieces (default tokens.DEFAULT_VOCAB_SIZE); for char/word tokens `vocab_size` caps the
    vocabularies (rarer tokens -> <unk>), as `max_vocab` (the server's limit) does. A Tokenizer as `tokens` is
    used as it is (a trained model's own).
    """
    given = tokens if isinstance(tokens, Tokenizer) else None
    mode = given.mode if given else tokens
    if mode not in TOKEN_MODES:
        raise ValueError(f"tokens must be one of {', '.join(TOKEN_MODES)}, got {tokens!r}")
    if dedup not in DEDUP:
        raise ValueError(f"dedup must be one of {', '.join(DEDUP)}, got {dedup!r}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a whole number of at least 1, got {max_len!r}")
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size < 5):
        raise ValueError(f"vocab_size must be a whole number of at least 5, got {vocab_size!r}")
    for name, f in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0 <= f < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {f}")
    # before a subword model exists, pairs are checked with word tokens (a word always has at least one piece)
    check = given or (Tokenizer("word", lowercase) if mode == "subword" else Tokenizer(mode, lowercase))

    rng = random.Random(seed)
    if isinstance(pairs_or_splits, dict):
        unknown = set(pairs_or_splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"splits must be named {', '.join(SPLITS)}; got {', '.join(sorted(map(str, unknown)))}")
        cleaned, n_empty = {}, 0
        for k in SPLITS:
            cleaned[k], e = _clean_pairs(pairs_or_splits.get(k) or [], check)
            n_empty += e
        seen: set[str] = set()
        valid, d1 = _dedupe(cleaned["valid"], dedup, seen)
        test, d2 = _dedupe(cleaned["test"], dedup, seen)
        train, d3 = _dedupe(cleaned["train"], dedup, seen)
        n_dup = d1 + d2 + d3
        groups = _groups(train)
        rng.shuffle(groups)
        carve = (not valid and valid_frac > 0) or (not test and test_frac > 0)
        if len(groups) < (MIN_PAIRS_TO_SPLIT if carve else 1):
            raise DataError(
                f"The training data is too small{' to split off validation/test examples' if carve else ''}"
                f": {len(groups)} distinct source(s) after removing empty and duplicate pairs and sources "
                f"that are also in the validation/test data. Add more examples."
            )
        if not valid and valid_frac > 0:
            n = max(1, round(valid_frac * len(groups)))
            valid, groups = _flat(groups[:n]), groups[n:]
        if not test and test_frac > 0:
            n = max(1, round(test_frac * len(groups)))
            test, groups = _flat(groups[:n]), groups[n:]
        train = _flat(groups)
    else:
        pairs, n_empty = _clean_pairs(pairs_or_splits, check)
        pairs, n_dup = _dedupe(pairs, dedup)
        groups = _groups(pairs)
        n = len(groups)
        if n < MIN_PAIRS_TO_SPLIT:
            raise DataError(
                f"The dataset is too small to split into training, validation and test sets: it has {n} distinct "
                f"source(s) after removing {n_dup} duplicate(s) and {n_empty} empty pair(s); at least "
                f"{MIN_PAIRS_TO_SPLIT} are needed (a few hundred to learn anything). Add more examples."
            )
        rng.shuffle(groups)
        n_valid = max(1, round(valid_frac * n)) if valid_frac > 0 else 0
        n_test = max(1, round(test_frac * n)) if test_frac > 0 else 0
        valid, test = _flat(groups[:n_valid]), _flat(groups[n_valid : n_valid + n_test])
        train = _flat(groups[n_valid + n_test :])

    if given:
        tok = given
    elif mode == "subword":
        tok = Tokenizer.train_subword([x for p in train for x in p], vocab_size or DEFAULT_VOCAB_SIZE, lowercase)
    else:
        tok = Tokenizer(mode, lowercase)
    cap = vocab_size if mode != "subword" else None
    caps = [c for c in (cap, max_vocab) if c is not None]
    cap = min(caps) if caps else None
    src_vocab = Vocab.build((tok.tokenize(s) for s, _ in train), max_size=cap)
    tgt_vocab = Vocab.build((tok.tokenize(t) for _, t in train), max_size=cap)
    n_truncated = sum(
        len(tok.tokenize(s)) > max_len or len(tok.tokenize(t)) > max_len
        for split in (train, valid, test)
        for s, t in split
    )
    notes = []
    if n_dup:
        notes.append(DEDUP_NOTE[dedup].format(n=n_dup))
    n_multi = sum(len(g) > 1 for g in _groups(train))
    if n_multi:
        notes.append(
            f"{n_multi:,} training source(s) have several targets; all are kept, and evaluation counts an "
            f"output as right if it matches any target of its source."
        )
    if n_empty:
        notes.append(f"Removed {n_empty} pair(s) whose source or target has no {mode} tokens.")
    if n_truncated:
        notes.append(f"{n_truncated} example(s) are longer than {max_len} tokens and are cut to that length.")
    if cap is not None and max(len(src_vocab.counts), len(tgt_vocab.counts)) > cap - len(SPECIALS):
        notes.append(f"The vocabulary is capped at {cap} tokens: rarer tokens become <unk>.")
    return Seq2SeqData(
        mode,
        src_vocab,
        tgt_vocab,
        train,
        valid,
        test,
        max_len,
        n_truncated,
        n_dup,
        n_empty,
        notes,
        tokenizer=tok,
        dedup=dedup,
    )


# ------------------------------------------------------------------------------------------- app helpers
def walkthrough(data: Seq2SeqData, src_text: str, tgt_text: str, batch_with: int = 3) -> dict:
    """One example on its way into the model, for the Data page.

    The example is padded as it would be in a batch with the first `batch_with` training pairs, so the <pad>
    positions are real. Returns token lists, ids, and two tables (lists of row dicts, one row per timestep):
    "source" (t, token x_t, id, is padding) and "target" (t, decoder input y_{t-1}, its id, target y_t, its id).
    """
    src_tokens = data.tokenizer.tokenize(src_text)
    tgt_tokens = data.tokenizer.tokenize(tgt_text)
    src_ids, tgt_ids = data.encode_pair(src_text, tgt_text)
    others = [data.encode_pair(s, t) for s, t in data.train[:batch_with]]
    b = make_batch([src_ids] + [o[0] for o in others], [tgt_ids] + [o[1] for o in others])
    sv, tv = data.src_vocab, data.tgt_vocab
    src_rows = [
        {
            "t": t + 1,
            "token": sv.itos[i],
            "id": i,
            "padding": i == PAD_ID,
            "text": src_tokens[t] if t < min(len(src_tokens), data.max_len) else "",
        }
        for t, i in enumerate(b.src[0].tolist())
    ]
    tgt_rows = [
        {
            "t": t + 1,
            "decoder input": tv.itos[i_in],
            "input id": i_in,
            "target": tv.itos[i_out],
            "target id": i_out,
            "padding": i_in == PAD_ID,
        }
        for t, (i_in, i_out) in enumerate(zip(b.tgt_in[0].tolist(), b.tgt_out[0].tolist()))
    ]
    return {
        "src_tokens": src_tokens,
        "tgt_tokens": tgt_tokens,
        "src_ids": src_ids,
        "tgt_ids": tgt_ids,
        "src_unknown": [tok for tok, i in zip(src_tokens, src_ids) if i == UNK_ID],
        "tgt_unknown": [tok for tok, i in zip(tgt_tokens, tgt_ids) if i == UNK_ID],
        "truncated": len(src_tokens) > data.max_len or len(tgt_tokens) > data.max_len,
        "batch_size": len(b),
        "S": b.src.shape[1],
        "T": b.tgt_in.shape[1],
        "source": src_rows,
        "target": tgt_rows,
    }


def length_stats(data: Seq2SeqData, splits: Sequence[str] = SPLITS) -> dict:
    """Token lengths before truncation, for the source/target histograms (with the max-length line)."""
    pairs = [p for name in splits for p in data.split(name)]
    src = [len(data.tokenizer.tokenize(s)) for s, _ in pairs]
    tgt = [len(data.tokenizer.tokenize(t)) for _, t in pairs]
    return {
        "source": src,
        "target": tgt,
        "max_len": data.max_len,
        "n_src_cut": sum(n > data.max_len for n in src),
        "n_tgt_cut": sum(n > data.max_len for n in tgt),
        "n_truncated": sum(a > data.max_len or b > data.max_len for a, b in zip(src, tgt)),
        "n": len(pairs),
    }


def check_input_text(
    text: str, vocab: Vocab, tokens_mode: str | Tokenizer, max_len: int
) -> tuple[list[str], list[str]]:
    """Validate text typed into the app before it reaches a model: returns (tokens, warnings).

    Raises DataError for empty input or input longer than max_len tokens. Warns (does not fail) when some or all
    tokens are not in the vocabulary, since the model will see them as <unk>.
    """
    if not isinstance(text, str) or not text.strip():
        raise DataError("The input is empty. Type a source sequence (or pick an example).")
    tokens = tokenize(text, tokens_mode)
    if len(tokens) > max_len:
        mode = as_tokenizer(tokens_mode).mode
        unit = {"char": "characters", "word": "words and punctuation marks", "subword": "subword pieces"}[mode]
        raise DataError(f"The input has {len(tokens)} {unit}; the limit is {max_len}. Shorten it.")
    unknown = [t for t in tokens if t not in vocab.stoi or vocab.stoi[t] < len(SPECIALS)]
    warnings = []
    if len(unknown) == len(tokens):
        warnings.append(
            "None of the input's tokens is in the model's vocabulary: the model sees only <unk> and "
            "its output will be meaningless. Try an input like the training examples."
        )
    elif unknown:
        shown = ", ".join(repr(t) for t in dict.fromkeys(unknown))
        warnings.append(
            f"{len(unknown)} of {len(tokens)} tokens are not in the vocabulary and become <unk>: {shown[:200]}"
        )
    return tokens, warnings


def fit_to_vocab(
    data: Seq2SeqData, tokens: str | Tokenizer, src_vocab: Vocab, tgt_vocab: Vocab
) -> tuple[Seq2SeqData | None, str | None]:
    """Re-express `data` in a trained model's vocabularies so the model can keep training on it.

    A model's embedding rows and output units are tied to its vocabularies id by id, so the data must be encoded
    with the model's own token -> id maps. That works when every token in the data is one the model knows; a token
    it has never seen has no embedding row and no output unit. Returns (data in the model's vocabularies, None),
    or (None, a message saying what does not match and what to do).
    """
    tok = as_tokenizer(tokens)
    if tok.mode != data.tokens:
        return None, (
            f"The model reads {tok.mode} tokens but this data is split into {data.tokens} tokens. "
            f"Train a new model, or choose {tok.mode}-level tokens on the Data page."
        )
    if tok != data.tokenizer:
        return None, (
            f"The model cuts text differently from this data ({tok.describe()} against "
            f"{data.tokenizer.describe()}): its token ids would mean other things. Train a new model, or "
            f"choose the model's tokenization on the Data page."
        )
    for side, mv, dv in (("source", src_vocab, data.src_vocab), ("target", tgt_vocab, data.tgt_vocab)):
        missing = [t for t in dv.itos if t not in mv.stoi]
        if missing:
            shown = ", ".join(repr(t) for t in missing[:5]) + (" ..." if len(missing) > 5 else "")
            return None, (
                f"The model's {side} vocabulary ({len(mv):,} tokens) does not match this data: "
                f"{len(missing):,} token(s) in the data are unknown to the model ({shown}). Train a new "
                f"model from random weights, or load data like the data the model was trained on."
            )
    return replace(data, src_vocab=src_vocab, tgt_vocab=tgt_vocab, tokenizer=tok), None


def compare_tokenizations(
    data: Seq2SeqData, example: str, vocab_size: int = DEFAULT_VOCAB_SIZE, lowercase: bool = False
) -> list[dict]:
    """How each tokenization cuts `example` and what it gives on this data, for the Data page: one row per mode
    ("char", "word", "subword" with `vocab_size` pieces learned on the training split), each with the example's
    tokens, the source and target vocabulary sizes built from the training split, the coverage (share of the held-out
    tokens, valid and test, both sides, found in those vocabularies: the rest become <unk>) and the mean number of
    tokens per sentence (the timesteps the RNNs run)."""
    held = data.valid + data.test or data.train
    rows = []
    for mode in TOKEN_MODES:
        if mode == "subword":
            tok = (
                data.tokenizer
                if data.tokens == "subword"
                and data.tokenizer.vocab_size == vocab_size
                and data.tokenizer.lowercase == lowercase
                else Tokenizer.train_subword([x for p in data.train for x in p], vocab_size, lowercase)
            )
        else:
            tok = Tokenizer(mode, lowercase)
        src_v = Vocab.build(tok.tokenize(s) for s, _ in data.train)
        tgt_v = Vocab.build(tok.tokenize(t) for _, t in data.train)
        known = total = 0
        for s, t in held:
            for v, text in ((src_v, s), (tgt_v, t)):
                toks = tok.tokenize(text)
                known += sum(x in v.stoi for x in toks)
                total += len(toks)
        lengths = [len(tok.tokenize(x)) for p in data.train for x in p]
        rows.append(
            {
                "tokens": mode,
                "example": tok.tokenize(example),
                "source vocab": len(src_v),
                "target vocab": len(tgt_v),
                "coverage": known / max(total, 1),
                "tokens per sentence": sum(lengths) / max(len(lengths), 1),
                "tokenizer": tok,
            }
        )
    return rows
