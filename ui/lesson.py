"""Lesson mode: a guided walk for the projector through the concepts in order, each step opening the right page with
the right preset (model, input, widget values) and a few sentences on what to point at.

    app.py calls `banner(page)` before the page runs: in lesson mode it draws the lesson bar on top of every page
    (step k of N, what to say and point at, Back / Next, timestep buttons where the page has a timestep slider, the
    presenter toggle) and applies a pending "go to step k" (switch model, set presets, switch page).
Keyboard (Streamlit button shortcuts): PageDown / PageUp = next / previous lesson step (what a presenter's clicker
sends), Right / Left = next / previous timestep on the Encoder and Decoder pages, Alt+P = presenter mode (larger text).
The steps are plain data (STEPS); the texts are ours, in the seed documents' notation (x_t, h_t, c, s_t, y_t, a_t).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from ui import state

K_ON, K_STEP, K_PRESENTER, K_GOTO = "lesson_on", "lesson_step", "lesson_presenter", "lesson_goto"
NEXT_KEY, BACK_KEY, TS_NEXT, TS_BACK, PRESENTER_KEY = "PageDown", "PageUp", "Right", "Left", "Alt+P"
TIMESTEP_SLIDERS = {"encoder": "enc_step", "decoder": "dec_step"}  # page url path -> its timestep slider's key


@dataclass(frozen=True)
class Step:
    title: str
    page: str  # file under pages/
    model: str | None  # shipped pretrained model to show (None: keep the current one)
    say: str  # what to tell the class (Markdown, our words)
    point: tuple[str, ...]  # what to point at on the screen
    input: str | None = None  # the inspection pages' shared source text
    preset: dict = field(default_factory=dict)  # widget key -> value, set when the step opens


STEPS: tuple[Step, ...] = (
    Step(
        "Text becomes timesteps",
        "pages/data.py",
        "reverse",
        "A model cannot read letters: the text is cut into **tokens** (here characters), each token gets an id "
        "from the vocabulary, and each token is one **timestep** x_t. Sequences in a batch have different lengths, "
        "so the shorter ones are filled up with ⟨pad⟩ to the longest; the model skips the padding.",
        (
            "the example's tokens and ids, one column per timestep t",
            "the ⟨pad⟩ cells at the end of shorter rows",
            "the decoder's input starts with ⟨sos⟩, its target ends with ⟨eos⟩",
        ),
    ),
    Step(
        "The encoder reads: h_t",
        "pages/encoder.py",
        "reverse",
        "The encoder reads one token per timestep and updates its hidden state: **h_t = f(x_t, h_{t−1})**. "
        "h_t is a vector of H numbers, a running summary of x_1 … x_t. Press → to read the next token.",
        (
            "the token read at this step",
            "how the gates decide what to keep of h_{t−1}",
            "the new h_t: the same number of units at every timestep, however long the input",
        ),
        input="hello",
        preset={"enc_step": 1},
    ),
    Step(
        "The context vector c: a bottleneck",
        "pages/states.py",
        "dates",
        "Without attention, all the decoder gets is the final state: the **context vector c = q(h_1, …, h_T)**. "
        "Every input, short or long, is squeezed into these H numbers: a bottleneck. Inputs that mean the same "
        "thing should end up with similar c.",
        (
            "all encoder states h_1 … h_T, one row per timestep",
            "the context vector c below them: one vector",
            "Compare two inputs: same date, different formats, similar c?",
        ),
    ),
    Step(
        "Attention: where the decoder looks",
        "pages/decoder.py",
        "reverse",
        "With attention the decoder does not rely on c alone: at every output step it scores every h_j against its "
        "state s_{t−1}, turns the scores into weights **a_t = softmax(scores)** and reads **c_t = Σ_j a_tj h_j**. "
        "Press → to move to the next output step.",
        (
            "the attention weights a_t over the source tokens",
            "for reversal they slide from the last letter back to the first",
            "the distribution p_t and the token chosen at this step",
        ),
        input="hello",
        preset={"dec_step": 1, "dec_strategy": "Greedy", "dec_mode": "Free-running"},
    ),
    Step(
        "Decoding strategies",
        "pages/decoder.py",
        "translate",
        "The decoder gives a distribution p_t over the next token; a **strategy** picks one. Greedy takes the most "
        "likely, sampling draws one (temperature: how adventurous), beam search keeps the k best partial outputs "
        "and can find a better whole sentence than greedy.",
        (
            "the beam tree: the k hypotheses kept at each step",
            "the best hypothesis and its total log-probability",
            "switch to sampling and raise the temperature: outputs get varied, then wrong",
        ),
        input="the big dog sees a cat",
        preset={"dec_strategy": "Beam search", "dec_step": 1},
    ),
    Step(
        "Training: one example, one step",
        "pages/one_step.py",
        "reverse",
        "Training shows the model a pair (x, y). Teacher-forced, the decoder predicts each y_t; the loss is the mean "
        "**−log p_t(y_t)**. Backpropagation sends the error back through every s_t and h_t, and the optimizer moves "
        "every weight a little. Every example in every epoch goes through exactly this.",
        (
            "the cross-entropy of each target token and their mean",
            "press Next stage: the gradient at each timestep",
            "stage 5: how far each group of weights moved, and the loss before and after",
        ),
        preset={"step_stage": "3. The loss"},
    ),
    Step(
        "Vanishing gradients",
        "pages/one_step.py",
        "copy",
        "In a vanilla RNN the gradient is multiplied by the recurrent weights and squashed by tanh at every step "
        "back in time, so it **shrinks towards the first timesteps**: early tokens hardly change what is learned. "
        "Gates (GRU, LSTM) and attention give the gradient shorter paths.",
        (
            "‖∂loss/∂h_t‖ per encoder timestep (switch on the logarithmic axis)",
            "this is a vanilla RNN with attention: the direct paths keep the early bars alive",
            "the Train page draws the same per timestep during a run",
        ),
        preset={"step_stage": "4. Backward", "step_log": True},
    ),
)


def active() -> bool:
    return bool(st.session_state.get(K_ON))


def start(k: int = 0) -> None:
    """Enter lesson mode at step k (a callback: the step opens at the start of the next run)."""
    st.session_state[K_ON] = True
    st.session_state[K_GOTO] = k


def stop() -> None:
    st.session_state[K_ON] = False
    st.session_state.pop(K_GOTO, None)


def _go(delta: int) -> None:
    st.session_state[K_GOTO] = min(len(STEPS) - 1, max(0, st.session_state.get(K_STEP, 0) + delta))


def _timestep(key: str, delta: int) -> None:
    st.session_state[key] = max(1, int(st.session_state.get(key, 1)) + delta)  # the page clamps the top end


def _sync_presenter() -> None:
    st.session_state[K_PRESENTER] = bool(st.session_state.get(K_PRESENTER + "_w"))


def _flip_presenter() -> None:
    st.session_state[K_PRESENTER] = not st.session_state.get(K_PRESENTER)


def _open(k: int) -> None:
    """Apply step k's preset (model, input, widget values) and switch to its page."""
    from ui.inspect import K_SRC_UID, K_TEXT

    step = STEPS[k]
    st.session_state[K_STEP] = k
    if step.model and state.current_pretrained() != step.model and step.model in dict(state.list_pretrained()):
        ckpt = state.load_pretrained(step.model)
        state.set_current(ckpt, f"pretrained: {step.model} ({state.describe(ckpt.model_cfg)})")
    cur = state.current()
    if step.input is not None:
        st.session_state[K_SRC_UID] = cur.uid  # the inspection pages keep this text instead of an example
        st.session_state[K_TEXT] = step.input
    st.session_state.update(step.preset)
    st.switch_page(step.page)


PRESENTER_CSS = """<style>
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p, [data-testid="stMain"] li,
[data-testid="stMain"] label p, [data-testid="stMain"] [data-testid="stCaptionContainer"] { font-size: 1.45rem !important;
  line-height: 1.45 !important; }
[data-testid="stMain"] h1 { font-size: 3.2rem !important; } [data-testid="stMain"] h2 { font-size: 2.4rem !important; }
[data-testid="stMain"] h3 { font-size: 2rem !important; }
[data-testid="stMain"] button p { font-size: 1.3rem !important; }
</style>"""


def banner(page) -> None:
    """The lesson bar on top of the page (only in lesson mode); presenter CSS whenever presenter mode is on."""
    if st.session_state.get(K_PRESENTER):
        st.html(PRESENTER_CSS)
    if not active():
        return
    goto = st.session_state.pop(K_GOTO, None)
    if goto is not None:
        _open(goto)  # switches page (ends this run) unless already there
    k = st.session_state.get(K_STEP, 0)
    step = STEPS[k]
    with st.container(border=True, key="lesson_bar"):
        st.markdown(f"**Lesson · step {k + 1} of {len(STEPS)} · {step.title}**")
        st.markdown(step.say)
        st.markdown("**Point at:** " + " · ".join(step.point))
        cols = st.columns(4, vertical_alignment="center")
        cols[0].button(
            "Back",
            key="lesson_back",
            on_click=_go,
            args=(-1,),
            disabled=k == 0,
            shortcut=BACK_KEY,
            icon=":material/arrow_back:",
            width="stretch",
        )
        cols[1].button(
            "Next",
            key="lesson_next",
            on_click=_go,
            args=(1,),
            disabled=k == len(STEPS) - 1,
            shortcut=NEXT_KEY,
            type="primary",
            icon=":material/arrow_forward:",
            width="stretch",
        )
        slider = TIMESTEP_SLIDERS.get(getattr(page, "url_path", ""))
        if slider:
            cols[2].button(
                "t − 1",
                key="lesson_ts_back",
                on_click=_timestep,
                args=(slider, -1),
                shortcut=TS_BACK,
                width="stretch",
                help="One timestep back",
            )
            cols[3].button(
                "t + 1",
                key="lesson_ts_next",
                on_click=_timestep,
                args=(slider, 1),
                shortcut=TS_NEXT,
                width="stretch",
                help="One timestep on",
            )
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        st.session_state[K_PRESENTER + "_w"] = bool(st.session_state.get(K_PRESENTER))
        c1.toggle(
            "Presenter mode: larger text",
            key=K_PRESENTER + "_w",
            on_change=_sync_presenter,
            help=f"Shortcut: {PRESENTER_KEY}",
        )
        c2.button("End lesson", key="lesson_end", on_click=stop, width="stretch")


def presenter_shortcut() -> None:
    """Alt+P flips presenter mode on any page (a small button in the sidebar)."""
    st.button(
        "Presenter mode (larger text)",
        key="lesson_presenter_btn",
        shortcut=PRESENTER_KEY,
        icon=":material/co_present:",
        width="stretch",
        on_click=_flip_presenter,
        help=f"Shortcut: {PRESENTER_KEY}",
    )
