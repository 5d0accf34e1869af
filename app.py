"""Seq2Seq Explorer: `streamlit run app.py`.

The entry script runs on every interaction: page config, the worker pool (started once per server process),
the navigation over the pages, a shared link's settings (first run only), the sidebar, the chosen page, and
finally the URL brought up to date with the whole setup (ui/state.py: seed_from_url, sync_url).

Everything sits under `if __name__ == "__main__"` because the training workers are spawned processes, and
multiprocessing's spawn re-runs the main script (this file, as "__mp_main__") in each new worker: there it must do
nothing, or each worker would start a pool of its own.
"""


def main() -> None:
    import streamlit as st

    from ui import lesson, sidebar, state

    st.set_page_config(page_title="Seq2Seq Explorer", page_icon=":material/swap_horiz:", layout="wide")
    state.shared_trainer()  # start (once per process) and warm the training workers, so "Start" trains at once

    pg = st.navigation(
        {
            "Build": [
                st.Page("pages/data.py", title="Data", icon=":material/table_view:", default=True),
                st.Page("pages/model.py", title="Model", icon=":material/account_tree:"),
                st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
            ],
            "Look inside": [
                st.Page("pages/encoder.py", title="Encoder", icon=":material/input:"),
                st.Page("pages/states.py", title="Hidden states & context", icon=":material/grid_on:"),
                st.Page("pages/decoder.py", title="Decoder", icon=":material/output:"),
                st.Page("pages/one_step.py", title="One training step", icon=":material/footprint:"),
            ],
            "Experiments": [
                st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
            ],
            "Teach": [st.Page("pages/lesson.py", title="Lesson", icon=":material/school:")],
        }
    )
    state.seed_from_url()  # a shared link's settings, for every page (first run only)
    lesson.banner(pg)  # lesson mode: the lesson bar on top of the page (and a pending step's page switch)
    sidebar.render()
    with st.sidebar:
        lesson.presenter_shortcut()
    pg.run()
    state.sync_url()  # the URL carries the settings of every page, not only this page's bound widgets


if __name__ == "__main__":
    main()
