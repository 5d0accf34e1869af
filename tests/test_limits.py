"""Server limits: defaults, environment overrides, clear errors, and agreement with .streamlit/config.toml."""

import tomllib
from pathlib import Path

import pytest

from seq2seq.limits import LimitError, Limits, get_limits

ROOT = Path(__file__).resolve().parents[1]


def test_defaults():
    lim = get_limits({})
    assert lim == Limits()
    assert (lim.max_upload_mb, lim.max_rows, lim.max_seq_len, lim.max_line_chars, lim.max_vocab) == (
        5,
        50_000,
        200,
        1000,
        5000,
    )  # 200: targets of 200 tokens (issue 13)
    assert (lim.max_params, lim.max_train_seconds, lim.max_runs, lim.max_runs_per_session) == (5_000_000, 600, 48, 3)
    assert lim.max_upload_bytes == 5 * 1024 * 1024


def test_upload_size_matches_streamlit_config():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == Limits().max_upload_mb


def test_env_overrides():
    lim = get_limits(
        {
            "SEQ2SEQ_MAX_ROWS": "10",
            "SEQ2SEQ_MAX_UPLOAD_MB": "0.5",
            "SEQ2SEQ_MAX_PARAMS": "1_000_000",
            "SEQ2SEQ_MAX_TRAIN_SECONDS": " 30 ",
            "SEQ2SEQ_MAX_VOCAB": "",
        }
    )
    assert lim.max_rows == 10 and isinstance(lim.max_rows, int)
    assert lim.max_upload_mb == 0.5 and lim.max_upload_bytes == 524288
    assert lim.max_params == 1_000_000 and lim.max_train_seconds == 30.0
    assert lim.max_vocab == 5000  # empty means default


def test_reads_os_environ(monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_MAX_RUNS", "2")
    assert get_limits().max_runs == 2


def test_legacy_name_of_max_runs_still_read():
    """An operator's old SEQ2SEQ_MAX_CONCURRENT_RUNS still bounds the runs (the new name wins when both are set)."""
    assert get_limits({"SEQ2SEQ_MAX_CONCURRENT_RUNS": "6"}).max_runs == 6
    assert get_limits({"SEQ2SEQ_MAX_CONCURRENT_RUNS": "6", "SEQ2SEQ_MAX_RUNS": "9"}).max_runs == 9
    with pytest.raises(ValueError, match="SEQ2SEQ_MAX_CONCURRENT_RUNS"):
        get_limits({"SEQ2SEQ_MAX_CONCURRENT_RUNS": "lots"})


def test_lesson_seconds_is_off_by_default_and_zero_means_off():
    assert Limits().lesson_seconds == 0 and get_limits({"SEQ2SEQ_LESSON_SECONDS": "0"}).lesson_seconds == 0
    assert get_limits({"SEQ2SEQ_LESSON_SECONDS": "90"}).lesson_seconds == 90.0
    for bad in ("-5", "nan", "soon"):
        with pytest.raises(ValueError, match="SEQ2SEQ_LESSON_SECONDS"):
            get_limits({"SEQ2SEQ_LESSON_SECONDS": bad})


@pytest.mark.parametrize(
    "var,value",
    [
        ("SEQ2SEQ_MAX_ROWS", "lots"),
        ("SEQ2SEQ_MAX_ROWS", "2.5"),
        ("SEQ2SEQ_MAX_SEQ_LEN", "0"),
        ("SEQ2SEQ_MAX_UPLOAD_MB", "-1"),
        ("SEQ2SEQ_MAX_TRAIN_SECONDS", "nan"),
        ("SEQ2SEQ_MAX_TRAIN_SECONDS", "inf"),
    ],
)
def test_invalid_env_names_the_variable(var, value):
    with pytest.raises(ValueError) as e:
        get_limits({var: value})
    assert var in str(e.value) and repr(value) in str(e.value)


def test_frozen():
    with pytest.raises(Exception):  # noqa: B017  (a frozen dataclass raises FrozenInstanceError)
        Limits().max_rows = 1


def test_describe_covers_every_limit():
    rows = Limits.describe()
    assert [r[0] for r in rows] == [
        "SEQ2SEQ_MAX_UPLOAD_MB",
        "SEQ2SEQ_MAX_ROWS",
        "SEQ2SEQ_MAX_SEQ_LEN",
        "SEQ2SEQ_MAX_LINE_CHARS",
        "SEQ2SEQ_MAX_VOCAB",
        "SEQ2SEQ_MAX_PARAMS",
        "SEQ2SEQ_MAX_TRAIN_SECONDS",
        "SEQ2SEQ_MAX_RUNS",
        "SEQ2SEQ_MAX_RUNS_PER_SESSION",
        "SEQ2SEQ_LESSON_SECONDS",
        "SEQ2SEQ_MAX_COMPARE_MODELS",
    ]
    assert all((default > 0 or var == "SEQ2SEQ_LESSON_SECONDS") and len(meaning) > 20 for var, default, meaning in rows)


def test_check_raises_limit_error_with_advice():
    lim = Limits(max_params=1000)
    lim.check("max_params", 1000)  # at the limit is fine
    with pytest.raises(LimitError) as e:
        lim.check("max_params", 1_234_567, "parameters of this model")
    msg = str(e.value)
    assert "1,234,567" in msg and "1,000" in msg and "SEQ2SEQ_MAX_PARAMS" in msg and "hidden units" in msg
    assert e.value.env_var == "SEQ2SEQ_MAX_PARAMS" and isinstance(e.value, ValueError)
