"""Data layer: tokenization, vocabulary, padding and masks, truncation, splits, fast batches, app helpers."""

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.data import (
    EOS_ID,
    PAD_ID,
    SOS_ID,
    SPECIALS,
    UNK_ID,
    Batch,
    DataError,
    Seq2SeqData,
    Vocab,
    build_data,
    check_input_text,
    detokenize,
    length_stats,
    make_batch,
    tokenize,
    truncate,
    walkthrough,
)

torch.set_num_threads(1)
FAST = settings(max_examples=100, deadline=None)
text = st.text(st.characters(codec="utf-8"), max_size=40)
words = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=("Z", "Cc")), min_size=1, max_size=6), max_size=10
)


def pairs_of(n, seed=0):
    import random

    r = random.Random(seed)
    out = []
    for _ in range(n):
        s = "".join(r.choice("abcdefgh") for _ in range(r.randint(1, 12)))
        out.append((s, s[::-1]))
    return out


# ------------------------------------------------------------------ tokenization
def test_specials_have_fixed_ids():
    assert SPECIALS == ["<pad>", "<sos>", "<eos>", "<unk>"] and (PAD_ID, SOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    v = Vocab.build([["x"]])
    assert v.itos[:4] == SPECIALS and [v.stoi[s] for s in SPECIALS] == [0, 1, 2, 3]


@FAST
@given(text)
def test_char_tokenization_round_trips_exactly(s):
    assert detokenize(tokenize(s, "char"), "char") == s
    assert len(tokenize(s, "char")) == len(s)


@FAST
@given(text)
def test_word_tokenization_round_trips_up_to_whitespace(s):
    toks = tokenize(s, "word")
    assert detokenize(toks, "word") == " ".join(s.split())
    assert tokenize(detokenize(toks, "word"), "word") == toks
    assert all(t and not any(c.isspace() for c in t) for t in toks)


def test_bad_mode():
    with pytest.raises(ValueError):
        tokenize("x", "bpe")


# ------------------------------------------------------------------ vocabulary
def test_vocab_order_and_limits():
    v = Vocab.build([list("aaabbc"), list("cd")], min_freq=1)
    assert v.itos[4:] == ["a", "b", "c", "d"]  # by count, ties alphabetical
    assert v.most_common(2) == [("a", 3), ("b", 2)] and v.counts["d"] == 1
    assert Vocab.build([list("aaabbc")], min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab.build([list("aaabbc")], max_size=5).itos[4:] == ["a"]
    with pytest.raises(ValueError):
        Vocab.build([["a"]], max_size=4)


def test_specials_in_text_never_become_control_tokens():
    v = Vocab.build([["<eos>", "<pad>", "x"]])
    assert v.itos == SPECIALS + ["x"]
    assert v.encode_text_tokens(["x", "<eos>", "<pad>"]) == [4, UNK_ID, UNK_ID]


@FAST
@given(st.lists(words, min_size=1, max_size=5), words)
def test_vocab_encode_decode(train, other):
    train = [[t for t in toks if t not in SPECIALS] for toks in train]
    other = [t for t in other if t not in SPECIALS]
    v = Vocab.build(train)
    assert len(v) == 4 + len({t for toks in train for t in toks})
    for toks in train:  # known tokens come back exactly, and never as a special id
        ids = v.encode(toks)
        assert all(i >= 4 for i in ids) and v.decode(ids) == toks
        assert v.decode(ids + [EOS_ID] + ids) == toks  # decoding stops at <eos>
        assert v.decode([SOS_ID] + ids + [EOS_ID, PAD_ID], strip_special=False) == ["<sos>"] + toks + ["<eos>", "<pad>"]
    known = set(v.itos)
    assert v.decode(v.encode(other)) == [t if t in known else "<unk>" for t in other]
    assert Vocab.from_dict(v.to_dict()) == v and Vocab.from_dict(v.to_dict()).counts == v.counts


@pytest.mark.parametrize(
    "bad",
    [
        {"itos": ["a", "b"]},
        {"itos": SPECIALS[:3]},
        {"itos": SPECIALS + ["a", "a"]},
        {"itos": SPECIALS + [""]},
        {"itos": SPECIALS + [3]},
        {"itos": "abc"},
        {"itos": SPECIALS + ["a"], "counts": {"a": -1}},
        {"itos": SPECIALS + ["a"], "extra": 1},
        {},
        42,
        None,
    ],
)
def test_vocab_from_dict_validates(bad):
    with pytest.raises(ValueError):
        Vocab.from_dict(bad)


def test_vocab_from_bare_list():
    assert Vocab.from_dict(SPECIALS + ["a"]).itos == SPECIALS + ["a"]


# ------------------------------------------------------------------ padding and masks
ids_lists = st.lists(st.lists(st.integers(4, 50), max_size=12), min_size=1, max_size=8)


@FAST
@given(ids_lists, st.data())
def test_make_batch_pads_without_losing_content(src, data):
    tgt = data.draw(st.lists(st.lists(st.integers(4, 50), max_size=12), min_size=len(src), max_size=len(src)))
    b = make_batch(src, tgt)
    B = len(src)
    S, T = max(1, max(map(len, src))), max(map(len, tgt)) + 1
    assert b.src.shape == (B, S) and b.tgt_in.shape == b.tgt_out.shape == (B, T)
    assert b.src_mask.shape == (B, S) and b.tgt_mask.shape == (B, T)
    assert b.src.dtype == b.tgt_in.dtype == torch.long and b.src_mask.dtype == torch.bool
    assert b.src_len.tolist() == [len(s) for s in src] and b.tgt_len.tolist() == [len(t) + 1 for t in tgt]
    for i in range(B):
        n, m = len(src[i]), len(tgt[i])
        assert b.src[i, :n].tolist() == src[i] and (b.src[i, n:] == PAD_ID).all()
        assert b.tgt_in[i, : m + 1].tolist() == [SOS_ID] + tgt[i] and (b.tgt_in[i, m + 1 :] == PAD_ID).all()
        assert b.tgt_out[i, : m + 1].tolist() == tgt[i] + [EOS_ID] and (b.tgt_out[i, m + 1 :] == PAD_ID).all()
        assert b.src_mask[i].tolist() == [True] * n + [False] * (S - n)
        assert b.tgt_mask[i].tolist() == [True] * (m + 1) + [False] * (T - m - 1)
    assert b.n_tokens == sum(len(t) + 1 for t in tgt) and len(b) == B


def test_make_batch_rejects_mismatch():
    with pytest.raises(ValueError):
        make_batch([[4]], [])


@FAST
@given(st.lists(st.lists(st.integers(), max_size=20), max_size=20), st.integers(1, 15))
def test_truncate_counts_what_it_cuts(seqs, max_len):
    cut, n_cut = truncate(seqs, max_len)
    assert n_cut == sum(len(s) > max_len for s in seqs)
    assert all(len(c) == min(len(s), max_len) and c == s[: len(c)] for c, s in zip(cut, seqs))


def test_truncate_rejects_zero():
    with pytest.raises(ValueError):
        truncate([[1]], 0)


# ------------------------------------------------------------------ build_data and splits
@FAST
@given(
    st.lists(
        st.tuples(st.text("abcxyz ", min_size=1, max_size=6), st.text("abc", min_size=1, max_size=6)),
        min_size=0,
        max_size=60,
    ),
    st.integers(0, 3),
)
def test_splits_disjoint_and_deterministic(pairs, seed):
    distinct = {s for s, t in pairs if s.strip() and t.strip()}
    if len(distinct) < 10:
        with pytest.raises(DataError, match="too small to split"):
            build_data(pairs, tokens="word", seed=seed, dedup="source")
        return
    d = build_data(pairs, tokens="word", seed=seed, dedup="source")
    srcs = [{s for s, _ in getattr(d, k)} for k in ("train", "valid", "test")]
    assert not (srcs[0] & srcs[1]) and not (srcs[0] & srcs[2]) and not (srcs[1] & srcs[2])
    assert sum(map(len, srcs)) == len(d.train) + len(d.valid) + len(d.test) == len(distinct)
    assert d.n_duplicates + d.n_empty + len(distinct) == len(pairs)
    assert len(d.valid) >= 1 and len(d.test) >= 1
    again = build_data(list(pairs), tokens="word", seed=seed, dedup="source")
    assert (again.train, again.valid, again.test) == (d.train, d.valid, d.test)


def test_too_small_message_is_clear():
    with pytest.raises(DataError) as e:
        build_data([("a", "b"), ("a", "c"), ("d", "e")], dedup="source")
    msg = str(e.value)
    assert "too small to split" in msg and "2 distinct" in msg and "1 duplicate" in msg and "at least 10" in msg


def test_build_data_from_given_splits_removes_overlap():
    train = pairs_of(200, 1)
    valid = train[:5] + [("zz", "zz")]
    d = build_data({"train": train, "valid": valid}, test_frac=0.1)
    assert d.valid == valid and len(d.test) >= 1
    assert not {s for s, _ in d.train} & {s for s, _ in d.valid + d.test}


def test_given_splits_too_small_to_carve():
    with pytest.raises(DataError, match="too small to split off"):
        build_data({"train": pairs_of(5), "valid": [], "test": []})
    with pytest.raises(DataError, match="too small"):
        build_data({"train": [("a", "b")], "valid": [("a", "c")], "test": [("x", "y")]})
    d = build_data({"train": pairs_of(5), "valid": [("zz", "zz")], "test": [("yy", "yy")]})
    assert len(d.train) >= 1 and d.valid == [("zz", "zz")]


def test_build_data_truncation_and_vocab_cap():
    pairs = [("abcdefghij"[: n % 10 + 1] + str(n), "x" * (n % 20 + 1)) for n in range(100)]
    d = build_data(pairs, max_len=8, max_vocab=8)
    assert d.n_truncated == sum(len(s) > 8 or len(t) > 8 for s, t in pairs)
    assert len(d.src_vocab) == 8
    assert any("capped at 8" in n for n in d.notes) and any(f"{d.n_truncated} example" in n for n in d.notes)
    assert all(len(d.encode_pair(s, t)[0]) <= 8 and len(d.encode_pair(s, t)[1]) <= 8 for s, t in pairs)
    stats = length_stats(d)
    assert sorted(stats["source"]) == sorted(len(s) for s, _ in pairs) and stats["n_truncated"] == d.n_truncated


def test_build_data_validates_arguments():
    for kwargs in ({"tokens": "bpe"}, {"max_len": 0}, {"valid_frac": 0.7}, {"test_frac": -0.1}):
        with pytest.raises(ValueError):
            build_data(pairs_of(50), **kwargs)
    with pytest.raises(DataError):
        build_data([("a", "b", "c")] * 20)


# ------------------------------------------------------------------ batches
def test_batches_cover_split_once_and_match_make_batch():
    d = build_data(pairs_of(500))
    seen = []
    for b in d.batches("train", 64, shuffle=True, seed=3):
        assert isinstance(b, Batch) and len(b) <= 64
        assert b.src.shape[1] == int(b.src_len.max()) and b.tgt_in.shape[1] == int(b.tgt_len.max())
        for row in range(len(b)):
            n = int(b.src_len[row])
            seen.append(d.src_vocab.decode(b.src[row, :n].tolist()))
            assert (b.src_mask[row] == (torch.arange(b.src.shape[1]) < n)).all()
    assert sorted("".join(s) for s in seen) == sorted(s for s, _ in d.train)
    # same seed, same order; another seed, another order; unshuffled = stored order
    order = lambda seed: torch.cat([b.src[:, 0] for b in d.batches("train", 64, True, seed)]).tolist()  # noqa: E731
    assert order(3) == order(3) and order(3) != order(4)
    first = next(d.batches("valid", 1000, shuffle=False))
    ref = make_batch(*zip(*[d.encode_pair(s, t) for s, t in d.valid]))
    for f in ("src", "src_len", "tgt_in", "tgt_out", "src_mask", "tgt_mask"):
        assert torch.equal(getattr(first, f), getattr(ref, f)), f
    assert d.n_batches("train", 64) == sum(1 for _ in d.batches("train", 64))


def test_batches_are_fast():
    d = build_data(pairs_of(20000))
    list(d.batches("train", 128))  # first pass encodes once
    t = time.perf_counter()
    n = sum(1 for _ in d.batches("train", 128, True, 1))
    per_batch = (time.perf_counter() - t) / n
    assert per_batch < 2e-3, f"{per_batch * 1e6:.0f} us per batch"


def test_dict_round_trip_and_pickle_drops_cache():
    import pickle  # only to check what multiprocessing would send; never used on files

    d = build_data(pairs_of(100))
    list(d.batches("train", 16))
    d2 = Seq2SeqData.from_dict(d.to_dict())
    assert (d2.train, d2.src_vocab, d2.max_len, d2.notes) == (d.train, d.src_vocab, d.max_len, d.notes)
    assert pickle.loads(pickle.dumps(d))._cache == {}
    with pytest.raises(DataError):
        Seq2SeqData.from_dict({"tokens": "char"})


# ------------------------------------------------------------------ app helpers
def test_walkthrough_shows_sos_eos_pad():
    d = build_data(pairs_of(200))
    w = walkthrough(d, "ab", "ba")
    assert w["src_tokens"] == ["a", "b"] and w["src_ids"] == d.src_vocab.encode(["a", "b"])
    assert [r["token"] for r in w["source"]][:2] == ["a", "b"]
    assert len(w["source"]) == w["S"] and all(r["token"] == "<pad>" for r in w["source"][2:])
    assert w["S"] > 2  # padded to the longer examples it is batched with
    assert [r["decoder input"] for r in w["target"]][:3] == ["<sos>", "b", "a"]
    assert [r["target"] for r in w["target"]][:3] == ["b", "a", "<eos>"]
    assert all(r["padding"] for r in w["target"][3:]) and len(w["target"]) == w["T"]
    w = walkthrough(d, "a?", "?")
    assert w["src_unknown"] == ["?"] and w["source"][1]["token"] == "<unk>"


def test_check_input_text():
    v = Vocab.build([["the", "dog"]])
    assert check_input_text("the dog", v, "word", 5) == (["the", "dog"], [])
    toks, warn = check_input_text("the cat", v, "word", 5)
    assert toks == ["the", "cat"] and "1 of 2" in warn[0] and "'cat'" in warn[0]
    _, warn = check_input_text("zebra <eos>", v, "word", 5)
    assert "None of the input" in warn[0]
    for bad in ("", "   \n", None):
        with pytest.raises(DataError, match="empty"):
            check_input_text(bad, v, "word", 5)
    with pytest.raises(DataError, match="6 words and punctuation marks; the limit is 5"):
        check_input_text("the " * 6, v, "word", 5)


def test_fit_to_vocab_reencodes_or_names_the_problem():
    from seq2seq.data import fit_to_vocab

    a = build_data([(f"ab{i}", f"ba{i}") for i in range(40)], tokens="char", seed=0)
    same_tokens = build_data([(f"{i}ba", f"{i}ab") for i in range(40)], tokens="char", seed=1)
    fitted, msg = fit_to_vocab(same_tokens, "char", a.src_vocab, a.tgt_vocab)
    assert msg is None and fitted.src_vocab is a.src_vocab and fitted.train == same_tokens.train
    b = next(fitted.batches("train", 4, shuffle=False))
    assert a.src_vocab.decode(b.src[0].tolist()) == list(fitted.train[0][0])
    other = build_data([(f"xy{i}", f"yx{i}") for i in range(40)], tokens="char", seed=0)
    fitted, msg = fit_to_vocab(other, "char", a.src_vocab, a.tgt_vocab)
    assert fitted is None and "source vocabulary" in msg and "'x'" in msg
    assert "word tokens" in fit_to_vocab(a, "word", a.src_vocab, a.tgt_vocab)[1]
