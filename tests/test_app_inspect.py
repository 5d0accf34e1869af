"""AppTest of the inspection pages: each renders on the default model and its main widgets change what is shown.

The pages are run on their own (no sidebar): ui.state.current() opens the default model exactly as in the app.
A second model kind (bidirectional, 3-layer GRU without attention) is planted in session_state to check that the
pages handle it rather than erroring."""

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from seq2seq.config import ModelConfig
from seq2seq.data import Vocab
from seq2seq.model import Seq2Seq
from ui.state import K_CURRENT, Current

torch.set_num_threads(1)
ENCODER, STATES, DECODER = "../pages/encoder.py", "../pages/states.py", "../pages/decoder.py"


def run(page: str, current: Current | None = None) -> AppTest:
    at = AppTest.from_file(page, default_timeout=60)
    if current is not None:
        at.session_state[K_CURRENT] = current
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def gru_bi_3layer() -> Current:
    """Bidirectional 3-layer GRU, no attention, word tokens."""
    vocab = Vocab.build([["red", "green", "blue", "big", "small"]])
    torch.manual_seed(0)
    cfg = ModelConfig(
        len(vocab), len(vocab), cell="gru", embed=8, hidden=12, layers=3, bidirectional=True, attention="none"
    )
    return Current(
        "test: GRU bi 3",
        Seq2Seq(cfg).eval(),
        cfg,
        None,
        "word",
        None,
        vocab,
        vocab,
        {},
        {},
        ["big red blue", "small green", "red red red green"],
    )


# ------------------------------------------------------------------------------------------------------- encoder
def test_encoder_slider_and_buttons_move_the_shown_token():
    at = run(ENCODER)
    text = at.text_input(key="inspect_src").value
    # the default model may read in one direction ("Step 1: reading x_1 = ...") or two ("Forward ...: x_1 = ...")
    assert text and "x_1 = " in at.subheader[0].value and repr(text[0]) in at.subheader[0].value
    at.slider(key="enc_step").set_value(3).run()
    ok(at)
    assert "x_3" in at.subheader[0].value and repr(text[2]) in at.subheader[0].value
    assert any("after 3 of" in t for t in titles(at))
    at.button(key="enc_fwd").click().run()
    assert ok(at).slider(key="enc_step").value == 4 and "x_4" in at.subheader[0].value
    at.button(key="enc_back").click().run()
    assert ok(at).slider(key="enc_step").value == 3
    assert not any("Context vector" in t for t in titles(at))
    at.slider(key="enc_step").set_value(len(text)).run()  # the last step shows the context vector c
    assert any("Context vector" in t for t in titles(ok(at)))
    at.toggle(key="enc_play").set_value(True).run()  # the browser-side animation
    spec = json.loads(ok(at).get("plotly_chart")[0].proto.spec)
    assert len(spec["frames"]) == len(text)


def test_encoder_input_messages():
    at = run(ENCODER)
    at.text_input(key="inspect_src").set_value("").run()
    assert "empty" in ok(at).error[0].value and not at.get("plotly_chart")
    at.text_input(key="inspect_src").set_value("x" * 500).run()
    assert "limit" in ok(at).error[0].value
    at.text_input(key="inspect_src").set_value("ÄÖÜ").run()
    assert "None of the input's tokens" in ok(at).warning[0].value and at.get("plotly_chart")
    at.text_input(key="inspect_src").set_value("<b>x</b>").run()  # user markup is plain data
    assert ok(at).get("plotly_chart")


def test_encoder_bidirectional_multilayer(gru_bi_3layer):
    at = run(ENCODER, gru_bi_3layer)
    heads = [s.value for s in at.subheader]
    assert len(heads) == 2 and heads[0].startswith("Forward") and heads[1].startswith("Backward")
    assert "'big'" in heads[0] and "'blue'" in heads[1]  # forward at x_1, backward at x_T
    at.selectbox(key="enc_layer").set_value(1).run()
    assert any("layer 1" in t for t in titles(ok(at)))
    assert any("Embedding" in t for t in titles(at))


# -------------------------------------------------------------------------------------------------------- states
def test_states_page_and_compare():
    at = run(STATES)
    t = titles(at)
    assert any(x.startswith("All encoder states") for x in t) and any("Context vector" in x for x in t)
    assert any("trajectories" in x for x in t) and any("side by side" in x for x in t)
    sim = at.metric[0].value
    at.text_input(key="states_input_b").set_value(at.text_input(key="inspect_src").value).run()
    assert ok(at).metric[0].value == "1.000" != sim  # the same input: identical contexts
    at.slider(key="states_n_inputs").set_value(10).run()
    pca = next(
        c for c in at.get("plotly_chart") if "trajectories" in json.loads(c.proto.spec)["layout"]["title"]["text"]
    )
    assert "of 11 inputs" in json.loads(pca.proto.spec)["layout"]["title"]["text"]  # 10 + the current input


def test_states_bidirectional_multilayer(gru_bi_3layer):
    at = run(STATES, gru_bi_3layer)
    assert any("layer 3" in x for x in titles(at))
    at.selectbox(key="states_layer").set_value(2).run()
    assert any("layer 2" in x for x in titles(ok(at)))


# ------------------------------------------------------------------------------------------------------- decoder
def test_decoder_strategies():
    at = run(DECODER)
    greedy_out = at.code[0].value
    assert any(x.startswith("Output distribution p_1") for x in titles(at))
    at.radio(key="dec_strategy").set_value("Beam search").run()
    assert any(x.startswith("Beam search tree") for x in titles(ok(at)))
    assert at.dataframe  # ranked hypotheses
    at.radio(key="dec_strategy").set_value("Sampling").run()
    at.slider(key="dec_temperature").set_value(3.0).run()
    sampled = {ok(at).code[0].value}
    for seed in (1, 2, 3):
        at.number_input(key="dec_seed").set_value(seed).run()
        sampled.add(ok(at).code[0].value)
    assert any("Distribution sampled from" in x for x in titles(at))
    assert len(sampled | {greedy_out}) > 1  # hot sampling with different seeds does not always give greedy's output


def test_decoder_step_slider():
    at = run(DECODER)
    assert at.subheader[1].value.startswith("Step 1: input y_0 = '<sos>'")
    at.slider(key="dec_step").set_value(2).run()
    first = at.code[0].value
    assert ok(at).subheader[1].value.startswith("Step 2: input y_1 =")
    assert any(x.startswith("Output distribution p_2") for x in titles(at))
    assert at.code[0].value == first  # moving the slider does not change the decoded output


def test_decoder_teacher_forced_shows_cross_entropy():
    at = run(DECODER)
    at.radio(key="dec_mode").set_value("Teacher-forced against a target").run()
    ok(at)
    assert at.text_input(key="dec_target").value  # the known correct output of the example is offered
    assert any(x.startswith("Per-token cross-entropy") for x in titles(at))
    loss = float(at.metric[0].value)
    assert loss > 0
    at.text_input(key="dec_target").set_value("zzzzzzzz").run()
    assert float(ok(at).metric[0].value) != loss
    at.text_input(key="dec_target").set_value("").run()
    assert "Type a target" in ok(at).error[0].value


def test_decoder_force_token_changes_later_steps():
    at = run(DECODER)
    at.number_input(key="dec_force_t").set_value(1).run()
    at.button(key="dec_force_go").click().run()
    ok(at)
    assert any(x.startswith("Forcing step 1") for x in titles(at))
    info = next(i.value for i in at.info if i.value.startswith("Forced y_1 ="))
    forced_tok = info.split("=")[1].split(".")[0].strip()
    at.slider(key="dec_step").set_value(2).run()  # step 2 is now fed the forced token
    assert ok(at).subheader[1].value.startswith(f"Step 2: input y_1 = {forced_tok}")
    at.button(key="dec_force_clear").click().run()
    assert not any(x.startswith("Forcing") for x in titles(ok(at)))


def test_decoder_without_attention(gru_bi_3layer):
    at = run(DECODER, gru_bi_3layer)
    assert any("No attention" in i.value for i in at.info)
    assert not any("Attention" in x for x in titles(at))
    at.radio(key="dec_strategy").set_value("Beam search").run()
    assert any(x.startswith("Beam search tree") for x in titles(ok(at)))
