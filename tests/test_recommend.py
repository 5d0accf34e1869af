"""seq2seq.recommend: settings sized from the data, each with a reason, all valid and all offered by the app."""

from seq2seq.config import ModelConfig, TrainConfig
from seq2seq.data import build_data
from seq2seq.recommend import embed_size, recommend
from seq2seq.tasks import generate_splits
from ui.state import BATCH_SIZES, EMBED_SIZES, HIDDEN_SIZES, LEARNING_RATES, MODEL_WIDGETS, TRAIN_WIDGETS


def reverse_data(n: int, max_len: int = 50):
    return build_data(
        dict(generate_splits("reverse", n, 40, 40, seed=0, min_len=3, max_len=12)), tokens="char", max_len=max_len
    )


def word_data(vocab: int, n: int = 400):
    words = [f"w{i}" for i in range(vocab)]
    pairs = [
        (" ".join(words[(i * 7 + k) % vocab] for k in range(4)), " ".join(words[(i * 3 + k) % vocab] for k in range(3)))
        for i in range(n)
    ]
    return build_data(pairs, tokens="word")


def test_every_setting_has_a_reason_and_the_configs_are_valid():
    data = reverse_data(3000)
    rec = recommend(data)
    cfg = rec.model_config(data)
    assert isinstance(cfg, ModelConfig) and cfg.attention != "none"
    tc = rec.train_config()
    assert isinstance(tc, TrainConfig) and tc.epochs is None and tc.stop_patience > 0  # until it stops improving
    named = {r.setting for r in rec.reasons}
    assert {"attention", "embed", "hidden", "batch_size", "lr_schedule", "budget", "max_len"} <= named
    assert all(r.why.strip() for r in rec.reasons)
    text = rec.explain()
    assert text.count("\n- ") == len(rec.reasons) - 1 and "**attention = dot**" in text
    # every value the app's widgets are set to is one of their options
    assert set(MODEL_WIDGETS) <= set(rec.model) and set(TRAIN_WIDGETS) <= set(rec.train)
    assert rec.model["embed"] in EMBED_SIZES and rec.model["hidden"] in HIDDEN_SIZES
    assert rec.train["batch_size"] in BATCH_SIZES and rec.train["lr"] in LEARNING_RATES


def test_sizes_follow_the_data():
    small, large = recommend(reverse_data(500)), recommend(reverse_data(3000))
    assert small.train["batch_size"] == 32 and large.train["batch_size"] == 64
    assert "500" not in large.explain() and f"{len(reverse_data(500).train):,} training pairs" in small.explain()
    assert [embed_size(v) for v in (30, 100, 101, 1000, 1001)] == [32, 32, 64, 64, 128]
    big_vocab = word_data(1500)
    rec = recommend(big_vocab)
    assert rec.model["embed"] == 128 and f"{len(big_vocab.src_vocab):,} tokens" in rec.explain()


def test_max_len_reason_names_what_is_cut():
    cut = reverse_data(600, max_len=6)  # sources of up to 12 letters, cut to 6
    rec = recommend(cut)
    assert rec.max_len == 12
    why = next(r.why for r in rec.reasons if r.setting == "max_len")
    assert "raise it to 12" in why and f"{cut.n_truncated:,}" in why
    assert recommend(cut, max_seq_len=10).max_len == 10  # never past the server's limit
    ok = next(r.why for r in recommend(reverse_data(600)).reasons if r.setting == "max_len")
    assert "nothing is cut" in ok
