"""AppTest of real text on the Data page: the column picker on a file with three columns, the duplicates choice,
the tokenization comparison, and the built-in Tatoeba task with its license."""

import os

import pytest
import torch
from streamlit.testing.v1 import AppTest

os.environ["SEQ2SEQ_TRAINER_BACKEND"] = "thread"
torch.set_num_threads(1)
APP = "../app.py"

ROWS = [
    ("Go.", "Va !"),
    ("Go.", "Allez !"),
    ("Hi.", "Salut !"),
    ("Run!", "Cours !"),
    ("Run!", "Courez !"),
    ("Who?", "Qui ?"),
    ("Wow!", "Ça alors !"),
    ("Fire!", "Au feu !"),
    ("Help!", "À l'aide !"),
    ("Jump.", "Saute."),
    ("Stop!", "Arrête-toi !"),
    ("Wait!", "Attends !"),
    ("Begin.", "Commencez."),
    ("Hello!", "Bonjour !"),
    ("I see.", "Je comprends."),
    ("I try.", "J'essaye."),
]
TSV3 = "".join(f"{s}\t{t}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}\n" for i, (s, t) in enumerate(ROWS))


@pytest.fixture
def app():
    return AppTest.from_file(APP, default_timeout=90).run()


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_column_picker_previews_rows_and_picks_columns(app):
    app.segmented_control(key="source").set_value("Upload a file").run()
    app.main.file_uploader[0].upload("eng-fra.tsv", TSV3.encode(), "text/tab-separated-values").run()
    ok(app)
    preview = app.dataframe[0].value
    assert list(preview.columns) == ["1", "2", "3"] and len(preview) == 5 and preview.iloc[0, 0] == "Go."
    assert app.selectbox(key="up_src_col").value == "1" and app.selectbox(key="up_tgt_col").value == "2"
    sample = app.dataframe[1].value
    assert set(sample["target"]) <= {t for _, t in ROWS}  # French targets, not the attribution column
    pairs = len(sample)
    # several targets of one source are kept; removing all but the first is a visible choice
    assert any("several targets" in i.value for i in app.info)
    app.radio(key="up_dedup").set_value("source").run()
    assert len(ok(app).dataframe[1].value) < pairs
    # English -> attribution makes no sense but must work: the picker really chooses the columns
    app.selectbox(key="up_tgt_col").select("3").run()
    assert all(t.startswith("CC-BY") for t in ok(app).dataframe[1].value["target"])
    app.selectbox(key="up_tgt_col").select("1").run()  # the same column twice: a clear message, no traceback
    assert any("two different columns" in e.value for e in ok(app).error)


def test_tokenizations_are_compared_on_the_example(app):
    app.segmented_control(key="source").set_value("Upload a file").run()
    app.main.file_uploader[0].upload("eng-fra.tsv", TSV3.encode(), "text/tab-separated-values").run()
    app.radio(key="up_tokens").set_value("word").run()
    table = next(d.value for d in ok(app).dataframe if "held-out coverage" in d.value.columns)
    assert list(table["tokens"]) == ["char", "word (this data)", "subword"]
    assert table["count"].iloc[0] > table["count"].iloc[1]  # characters: more tokens than words
    assert "##" in table["the source cut into tokens"].iloc[1] or "##" in table["the source cut into tokens"].iloc[2]


def test_tatoeba_task_shows_its_license_and_several_references(app):
    app.selectbox(key="task").select("tatoeba").run()
    ok(app)
    assert app.radio(key="tatoeba.tokens").value == "word"
    assert any("CC BY 2.0 FR" in c.value and "tatoeba.org" in c.value for c in app.caption)
    train = app.dataframe[0].value
    assert train["source"].duplicated().any()  # several French translations of one English sentence
    assert int(app.metric[0].value.replace(",", "")) > 3000
    app.radio(key="tatoeba.tokens").set_value("subword").run()
    assert any("joined back into words" in c.value for c in ok(app).caption)
