"""Lesson page: the guided lesson's outline, and where it starts (ui/lesson.py holds the steps and the lesson bar)."""

import streamlit as st

from ui import lesson
from ui.state import ensure_app

ensure_app()  # run through app.py (sidebar, navigation) even on a deep link

st.title("Lesson: inside a sequence-to-sequence model")
st.markdown(
    "A guided walk for the projector, in the order a class meets the ideas. Each step opens the right page with "
    "the right model and input, and the bar on top says what to tell the class and what to point at.\n\n"
    f"**Keyboard:** {lesson.NEXT_KEY} / {lesson.BACK_KEY} = next / previous step (a presenter's clicker sends these), "
    f"→ / ← = next / previous timestep on the Encoder and Decoder pages, {lesson.PRESENTER_KEY} = presenter mode "
    "(larger text). The notation: x_t input token, h_t encoder state, c context vector, s_t decoder state, "
    "y_t output token, a_t attention weights, p_t the distribution over the next token."
)
if lesson.active():
    st.button(
        "Restart the lesson from step 1",
        key="lesson_restart",
        on_click=lesson.start,
        args=(0,),
        icon=":material/replay:",
    )
else:
    st.button(
        "Start the lesson",
        key="lesson_start",
        on_click=lesson.start,
        args=(0,),
        type="primary",
        shortcut=lesson.NEXT_KEY,
        icon=":material/play_arrow:",
    )
for k, step in enumerate(lesson.STEPS):
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.markdown(f"**{k + 1}. {step.title}** — {step.say}")
    c2.button("Open", key=f"lesson_open_{k}", on_click=lesson.start, args=(k,), width="stretch")
