"""Tokenizers (seq2seq/tokens.py): words and punctuation with their spacing, subword BPE, lowercasing, JSON."""

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.data import build_data
from seq2seq.tokens import GLUE, Tokenizer, join_tokens, split_words, strip_glue, words_of

FAST = settings(max_examples=150, deadline=None)
text = st.text(st.characters(codec="utf-8"), max_size=50)
# text that looks like sentences: letters, digits, punctuation, apostrophes, spaces of several kinds
sentences = st.text(st.sampled_from(list("abcTomé'’.,!?-:;0123 \u00a0\u202f\t")), max_size=60)

CORPUS = [
    "Tom's here!",
    "I'm happy.",
    "Run!",
    "Who is he?",
    "Tom ran.",
    "We're unhappy.",
    "It's Tom's.",
    "Cours\u00a0!",
    "Il est là.",
    "Je suis heureux.",
    "Qui est-ce ?",
    "C'est Tom.",
] * 5


@pytest.fixture(scope="module")
def bpe():
    return Tokenizer.train_subword(CORPUS, vocab_size=60)


def test_word_tokens_split_punctuation_and_round_trip_as_typed():
    tok = Tokenizer("word")
    assert tok.tokenize("Tom's here!") == ["Tom", GLUE + "'", GLUE + "s", "here", GLUE + "!"]
    assert tok.detokenize(tok.tokenize("Tom's here!")) == "Tom's here!"
    assert tok.tokenize("Qui est-ce ?") == ["Qui", "est", GLUE + "-", GLUE + "ce", "?"]  # the space before ? kept
    assert tok.detokenize(tok.tokenize("Cours\u00a0!")) == "Cours !"  # any whitespace run is one space


def test_lowercase_applies_before_cutting():
    assert Tokenizer("word", lowercase=True).tokenize("Tom RAN.") == ["tom", "ran", GLUE + "."]
    assert Tokenizer("char", lowercase=True).tokenize("Ab") == ["a", "b"]


@FAST
@given(text)
def test_word_round_trip_and_no_character_lost(s):
    toks = Tokenizer("word").tokenize(s)
    assert join_tokens(toks) == " ".join(s.split())  # round trip, whitespace normalized
    assert "".join(strip_glue(t) for t in toks) == "".join(s.split())  # every character is in some token
    assert Tokenizer("word").tokenize(join_tokens(toks)) == toks  # cutting the joined text gives the same tokens
    assert all(t and not any(c.isspace() for c in t) for t in toks)


@FAST
@given(text)
def test_lowercased_round_trip(s):
    tok = Tokenizer("word", lowercase=True)
    assert tok.detokenize(tok.tokenize(s)) == " ".join(s.lower().split())


@FAST
@given(st.one_of(text, sentences))
def test_subword_round_trip_and_no_character_lost(bpe, s):
    toks = bpe.tokenize(s)
    assert bpe.detokenize(toks) == " ".join(s.split())
    assert "".join(strip_glue(t) for t in toks) == "".join(s.split())
    # subword pieces joined back into words are the word tokens, glue marks included
    assert [w for w, _ in words_of(toks)] == [w for w, _ in words_of(split_words(s))]


def test_subword_cuts_rare_words_into_known_pieces(bpe):
    toks = bpe.tokenize("Tom's unhappy!")
    assert toks[:3] == ["Tom", GLUE + "'", GLUE + "s"]  # frequent: whole
    assert len(toks) > 5 and all(t.startswith(GLUE) for t in toks[4:])  # "unhappy!" in pieces, glued
    assert bpe.detokenize(toks) == "Tom's unhappy!"
    assert bpe.tokenize("Zyx") == ["Z", GLUE + "y", GLUE + "x"]  # unseen characters stay (the Vocab maps to <unk>)


def test_subword_model_is_json_and_reloads_the_same(bpe):
    d = json.loads(json.dumps(bpe.to_dict()))
    again = Tokenizer.from_dict(d)
    assert again == bpe and again.tokenize("We're unhappy.") == bpe.tokenize("We're unhappy.")
    assert pickle.loads(pickle.dumps(bpe)) == bpe  # worker processes get the JSON, rebuilt there
    assert Tokenizer.from_dict("word") == Tokenizer("word")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d["bpe"]["model"].update(type="Unigram"), "BPE"),
        (lambda d: d["bpe"]["model"].update(continuing_subword_prefix="@@"), "##"),
        (lambda d: d["bpe"]["model"].update(vocab={str(i): i for i in range(60_000)}), "at most"),
        (lambda d: d["bpe"]["model"].update(merges="x"), "merge"),
        (lambda d: d.update(extra=1), "keys"),
        (lambda d: d.update(lowercase="yes"), "true or false"),
        (lambda d: d["bpe"].update(pad="x" * 5_000_000), "over the limit"),
    ],
)
def test_hostile_subword_models_are_refused(bpe, mutate, match):
    d = json.loads(json.dumps(bpe.to_dict()))
    mutate(d)
    with pytest.raises(ValueError, match=match):
        Tokenizer.from_dict(d)


def test_vocab_size_is_a_parameter_and_learned_on_train_only():
    pairs = [(f"word{i} common", f"mot{i} commun") for i in range(300)]
    small = build_data(pairs, tokens="subword", vocab_size=60, seed=0)
    big = build_data(pairs, tokens="subword", vocab_size=400, seed=0)
    assert small.tokenizer.vocab_size <= 60 < big.tokenizer.vocab_size <= 400
    assert len(small.src_vocab) < len(big.src_vocab)
    # learned from the training split only: a word that appears only in the test split, however often, is no piece
    held = build_data(
        {"train": pairs, "test": [("quokka quokka quokka", "quokka quokka")] * 3},
        tokens="subword",
        vocab_size=400,
        seed=0,
    )
    pieces = {strip_glue(p) for p in held.tokenizer.bpe["model"]["vocab"]}
    assert "quokka" not in pieces and "quok" not in pieces and "okka" not in pieces
    assert held.tokenizer.detokenize(held.tokenizer.tokenize("quokka")) == "quokka"  # still cut, into letters
    for s, _ in small.test:
        assert small.tokenizer.detokenize(small.tokenizer.tokenize(s)) == s


def test_bad_vocab_size_is_refused():
    with pytest.raises(ValueError, match="from 30"):
        Tokenizer.train_subword(CORPUS, vocab_size=10)
    with pytest.raises(ValueError, match="learned model"):
        Tokenizer("subword")


def test_checkpoint_keeps_the_subword_model_and_refuses_a_hostile_one(tmp_path):
    from seq2seq import checkpoint as C
    from seq2seq.config import ModelConfig
    from seq2seq.model import Seq2Seq

    pairs = [(f"Tom's word{i} here!", f"Tom est là{i} !") for i in range(40)]
    d = build_data(pairs, tokens="subword", vocab_size=60, lowercase=True)
    cfg = ModelConfig(len(d.src_vocab), len(d.tgt_vocab), hidden=8, embed=4)
    ck = C.Checkpoint(
        model=Seq2Seq(cfg),
        model_cfg=cfg,
        train_cfg=None,
        tokens=d.tokens,
        src_vocab=d.src_vocab,
        tgt_vocab=d.tgt_vocab,
        tokenizer=d.tokenizer,
    )
    again = C.from_zip_bytes(C.to_zip_bytes(ck))
    assert again.tokenizer == d.tokenizer and again.tokens == "subword" and again.tokenizer.lowercase
    files = {k: v for k, v in C.to_files(ck).items() if k != C.MANIFEST}  # edited files: no manifest to match
    config = json.loads(files[C.CONFIG])
    config["tokenizer"]["bpe"]["model"]["type"] = "WordPiece"
    with pytest.raises(C.CheckpointError, match="config.json: tokenizer"):
        C.from_files({**files, C.CONFIG: json.dumps(config).encode()})
    config["tokenizer"] = {"mode": "word", "lowercase": False}  # says word, config says subword
    with pytest.raises(C.CheckpointError, match="tokenizer cuts word"):
        C.from_files({**files, C.CONFIG: json.dumps(config).encode()})
