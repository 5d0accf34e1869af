"""Tokenizers: how text is cut into the tokens x_1..x_T the model reads, and how tokens are joined back into text.

    "char"     every character is a token, spaces included           "Tom's here!" -> T o m ' s ␣ h e r e !
    "word"     words and punctuation marks                           "Tom's here!" -> Tom ##' ##s here ##!
    "subword"  words cut into pieces learned by byte-pair encoding   "unhappy!"    -> un ##happy ##!

Word and subword tokens carry their spacing, so text comes back as it was typed: a token that starts with GLUE
("##", as in BERT's WordPiece) is written right after the previous one; any other token after a space. Runs of
whitespace (tabs, non-breaking spaces) count as one space and spaces at the ends are dropped, so

    detokenize(tokenize(text)) == " ".join(text.split())          (lowercased first with lowercase=True)

and no character is ever lost: a character the subword model has never seen becomes a piece of its own (which the
vocabulary then maps to <unk>). Character tokens round-trip exactly.

Subwords: `Tokenizer.train_subword(texts, vocab_size)` learns a byte-pair encoding (BPE) on the training split only,
with Hugging Face `tokenizers` (chosen over sentencepiece by measurement: benchmarks/bench_subword.py and the
README). BPE starts from single characters and repeatedly merges the most frequent adjacent pair into a new piece,
until the vocabulary has `vocab_size` pieces; frequent words end up whole, rare ones in pieces. It learns inside the
word tokens above (never across a space or a punctuation mark), and the pieces after the first of a word carry GLUE.
The learned model is saved as JSON (`to_dict`) -- never a pickle -- and `from_dict` checks it before use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

MODES = ("char", "word", "subword")
GLUE = "##"  # prefix of a token written with no space before it
_PIECE = re.compile(r"\w+|[^\w\s]")  # a word (letters, digits, _) or one punctuation mark / symbol
MAX_BPE_JSON_CHARS = 4_000_000  # a saved subword model bigger than this is refused (a checkpoint is untrusted)
MAX_BPE_VOCAB = 50_000
DEFAULT_VOCAB_SIZE = 1000  # subword pieces learned when no --vocab-size is given (see README: measured on Tatoeba)


def split_words(text: str) -> list[str]:
    """Words and punctuation marks, with GLUE on those written right after the previous one (no space)."""
    out, end = [], None
    for m in _PIECE.finditer(text):
        p = m.group()
        out.append(GLUE + p if end is not None and m.start() == end else p)
        end = m.end()
    return out


def join_tokens(tokens: Sequence[str]) -> str:
    """Inverse of split_words (and of subword pieces): GLUE tokens are glued to the previous one, others follow a
    space. A token that is only "##" (never produced by tokenize) is written as it is."""
    parts = []
    for i, tok in enumerate(tokens):
        if tok.startswith(GLUE) and len(tok) > len(GLUE):
            parts.append(tok[len(GLUE) :])
        else:
            parts.append(tok if i == 0 else " " + tok)
    return "".join(parts)


def strip_glue(token: str) -> str:
    """The text of a token without its spacing mark: "##s" -> "s"."""
    return token[len(GLUE) :] if token.startswith(GLUE) and len(token) > len(GLUE) else token


def words_of(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Group tokens into the words they write (a word = a token after a space and the GLUE tokens after it):
    [("Tom's", [0, 1, 2]), ("here!", [3, 4])] -- for showing subword pieces joined back into words."""
    groups: list[tuple[str, list[int]]] = []
    for i, tok in enumerate(tokens):
        if groups and tok.startswith(GLUE) and len(tok) > len(GLUE):
            w, idx = groups[-1]
            groups[-1] = (w + strip_glue(tok), idx + [i])
        else:
            groups.append((tok, [i]))
    return groups


class Tokenizer:
    """One tokenization: mode "char" | "word" | "subword", optional lowercasing, and for subwords the learned BPE.

    tokenize(text) -> list[str]; detokenize(tokens) -> str. Equal tokenizers cut every text the same way."""

    def __init__(self, mode: str = "char", lowercase: bool = False, bpe: dict | None = None):
        if mode not in MODES:
            raise ValueError(f"tokens must be one of {', '.join(MODES)}, got {mode!r}")
        if (mode == "subword") != (bpe is not None):
            raise ValueError(
                "a subword tokenizer needs its learned model (Tokenizer.train_subword)"
                if mode == "subword"
                else f"only subword tokens have a learned model, not {mode!r}"
            )
        self.mode, self.lowercase, self.bpe = mode, bool(lowercase), bpe
        self._hf = None
        self._cache: dict[str, list[str]] = {}
        if bpe is not None:
            self._hf = _hf_from_dict(bpe)

    # -- learning
    @classmethod
    def train_subword(
        cls, texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, lowercase: bool = False
    ) -> Tokenizer:
        """Learn a BPE of `vocab_size` pieces from `texts` (the training split: sources and targets)."""
        from tokenizers import Tokenizer as HF
        from tokenizers import models, pre_tokenizers, trainers

        if not isinstance(vocab_size, int) or not 30 <= vocab_size <= MAX_BPE_VOCAB:
            raise ValueError(
                f"the subword vocabulary size must be a whole number from 30 to {MAX_BPE_VOCAB:,}, got {vocab_size!r}"
            )
        hf = HF(models.BPE(unk_token="<unk>", continuing_subword_prefix=GLUE))
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<unk>"],
            show_progress=False,
            continuing_subword_prefix=GLUE,
            min_frequency=2,
        )
        words = (" ".join(strip_glue(w) for w in split_words(t.lower() if lowercase else t)) for t in texts)
        hf.train_from_iterator(words, trainer)
        return cls("subword", lowercase, json.loads(hf.to_str()))

    # -- cutting and joining
    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.mode == "char":
            return list(text)
        words = split_words(text)
        if self.mode == "word":
            return words
        out = []
        for w in words:
            glued = w.startswith(GLUE) and len(w) > len(GLUE)
            pieces = self._pieces(strip_glue(w))
            out.append(GLUE + pieces[0] if glued else pieces[0])
            out.extend(GLUE + p for p in pieces[1:])
        return out

    def _pieces(self, word: str) -> list[str]:
        """BPE pieces of one word, as slices of the word itself (so an unknown character stays itself)."""
        got = self._cache.get(word)
        if got is None:
            enc = self._hf.encode(word)
            got = [word[a:b] for a, b in enc.offsets if b > a]
            if "".join(got) != word:  # never expected; the characters win over the model
                got = list(word)
            if len(self._cache) < 200_000:
                self._cache[word] = got
        return got

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens) if self.mode == "char" else join_tokens(tokens)

    # -- description and serialization
    @property
    def vocab_size(self) -> int | None:
        """Pieces in the learned subword model (None for char/word)."""
        return len(self.bpe["model"]["vocab"]) if self.bpe else None

    def describe(self) -> str:
        """ "word tokens, lowercased" -- for captions and the CLI."""
        d = f"{self.mode} tokens" + (f" (BPE, {self.vocab_size:,} pieces)" if self.bpe else "")
        return d + (", lowercased" if self.lowercase else "")

    def to_dict(self) -> dict:
        d = {"mode": self.mode, "lowercase": self.lowercase}
        if self.bpe is not None:
            d["bpe"] = self.bpe
        return d

    @classmethod
    def from_dict(cls, d) -> Tokenizer:
        """Inverse of to_dict, for untrusted JSON (a checkpoint): ValueError for anything unexpected."""
        if isinstance(d, str):  # a bare mode, as older checkpoints and data descriptions store it
            return cls(d)
        if not isinstance(d, dict) or set(d) - {"mode", "lowercase", "bpe"} or "mode" not in d:
            raise ValueError("tokenizer: expected an object with keys mode, lowercase and (for subwords) bpe")
        if not isinstance(d.get("lowercase", False), bool):
            raise ValueError("tokenizer: lowercase must be true or false")
        return cls(d["mode"], d.get("lowercase", False), d.get("bpe"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.mode, self.lowercase, json.dumps(self.bpe, sort_keys=True) if self.bpe else None))

    def __repr__(self) -> str:
        return f"Tokenizer({self.describe()})"

    def __getstate__(self) -> dict:  # to worker processes: the JSON, not the Rust object
        return {"mode": self.mode, "lowercase": self.lowercase, "bpe": self.bpe}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["mode"], state["lowercase"], state["bpe"])


def _hf_from_dict(bpe: dict):
    """A Hugging Face tokenizer from its JSON, after checking that it is a small BPE model of the kind we make."""
    from tokenizers import Tokenizer as HF

    if not isinstance(bpe, dict):
        raise ValueError("tokenizer: the subword model must be a JSON object")
    text = json.dumps(bpe)
    if len(text) > MAX_BPE_JSON_CHARS:
        raise ValueError(
            f"tokenizer: the subword model is {len(text):,} characters, over the limit of {MAX_BPE_JSON_CHARS:,}"
        )
    model = bpe.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ValueError("tokenizer: the subword model must be a BPE model with a vocabulary")
    if len(model["vocab"]) > MAX_BPE_VOCAB or not isinstance(model.get("merges"), list):
        raise ValueError(f"tokenizer: the subword model must have at most {MAX_BPE_VOCAB:,} pieces and a merge list")
    if model.get("continuing_subword_prefix") != GLUE:
        raise ValueError(f"tokenizer: the subword model must mark continued pieces with {GLUE!r}")
    try:
        return HF.from_str(text)
    except Exception as e:  # the Rust parser's own complaint, as a ValueError
        raise ValueError(f"tokenizer: not a valid subword model: {str(e)[:200]}") from None


def as_tokenizer(tokens: str | Tokenizer) -> Tokenizer:
    """A Tokenizer from a Tokenizer or a mode name ("char", "word"; "subword" needs a learned model)."""
    if isinstance(tokens, Tokenizer):
        return tokens
    return _PLAIN.get(tokens) or Tokenizer(tokens)


_PLAIN = {m: Tokenizer(m) for m in ("char", "word")}
