"""User data loaders: specific messages for bad files, exact round trips for good ones, and a fuzz suite.

The fuzz tests feed load_pairs random bytes, huge lines, mixed line endings, NUL bytes, right-to-left text,
combining marks, emoji, header-only and one-column files. Every case must either give valid pairs or raise
DataError; any other exception fails the test. The number of cases tried per loader is reported in the
warnings summary of the pytest output ("LoaderFuzzCount").
"""

import codecs
import csv
import io
import warnings
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq.limits import LimitError, Limits
from seq2seq.loaders import DataError, load_pairs

CASES: Counter = Counter()
SMALL = Limits(max_rows=200, max_line_chars=300, max_upload_mb=0.05)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(max_examples=600, deadline=None)  # random bytes are cheap to generate: try many


class LoaderFuzzCount(UserWarning):
    """Carries the per-loader case counts into pytest's warnings summary."""


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    total = sum(CASES.values())
    msg = ", ".join(f"{k}: {v}" for k, v in sorted(CASES.items()))
    warnings.warn(LoaderFuzzCount(f"load_pairs cases tried: {msg} (total {total})"), stacklevel=2)
    print(f"\nload_pairs cases tried: {msg} (total {total})")


def attempt(data: bytes, filename: str, limits: Limits = SMALL):
    """load_pairs must return valid pairs or raise DataError with a short, non-empty message."""
    CASES["TSV" if filename.endswith((".tsv", ".txt")) else "CSV"] += 1
    try:
        pairs = load_pairs(data, filename, limits)
    except DataError as e:
        msg = str(e)
        assert msg and len(msg) < 600 and "Traceback" not in msg
        return e
    assert isinstance(pairs, list) and pairs
    assert len(pairs) <= limits.max_rows
    for p in pairs:
        assert isinstance(p, tuple) and len(p) == 2
        assert all(isinstance(x, str) and x.strip() and "\x00" not in x and "\r" not in x for x in p)
    return pairs


NAMES = st.sampled_from(["d.tsv", "d.csv", "d.txt", "D.CSV"])
EOLS = st.sampled_from(["\n", "\r\n", "\r"])
# Scripts and marks that break naive text handling: Hebrew and Arabic (right to left), bidi controls,
# combining accents, emoji with zero-width joiners and skin tones, CJK.
TRICKY = st.sampled_from(
    list("שלוםعربي")
    + [
        "\u202e",
        "\u200f",
        "\u200b",
        "\u0301",
        "\u0308",
        "\u0327",
        "😀",
        "👩\u200d💻",
        "👍🏽",
        "🇫🇷",
        "漢",
        "字",
        "ﷺ",
        "\ufeff",
    ]
)
PIECE = st.one_of(st.characters(codec="utf-8", exclude_characters="\t\n\r\x00"), TRICKY)


def texts(pieces=PIECE, min_size=0, max_size=12):
    return st.lists(pieces, min_size=min_size, max_size=max_size).map("".join)


FIELD = texts(min_size=1).filter(lambda s: s.strip() != "")
# A file that starts with U+FEFF starts with a byte-order mark, which is not data: keep it out of round trips.
CLEAN_FIELD = FIELD.filter(lambda s: not s.startswith("\ufeff"))


# ------------------------------------------------------------------ fuzz: anything in, DataError or pairs out
@CHEAP
@given(st.binary(max_size=400), NAMES)
def test_fuzz_random_bytes(data, name):
    attempt(data, name)


@FUZZ
@given(
    st.lists(st.tuples(texts(st.one_of(st.sampled_from(list("\t,\"' ;")), PIECE), max_size=20), EOLS), max_size=12),
    NAMES,
    st.booleans(),
)
def test_fuzz_structured_lines(lines, name, bom):
    text = "".join(line + eol for line, eol in lines)
    attempt((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"), name)


@FUZZ
@given(st.lists(st.tuples(FIELD, FIELD, EOLS), min_size=1, max_size=8), st.data(), NAMES)
def test_fuzz_nul_bytes_and_mixed_endings(rows, data, name):
    header = "source,target\n" if name.lower().endswith(".csv") else ""
    sep = "," if header else "\t"
    raw = (header + "".join(f"{s.replace(',', ' ')}{sep}{t.replace(',', ' ')}{e}" for s, t, e in rows)).encode()
    pos = data.draw(st.integers(0, len(raw)))
    e = attempt(raw[:pos] + b"\x00" + raw[pos:], name)
    assert isinstance(e, DataError) and "NUL" in str(e)


@settings(max_examples=60, deadline=None)
@given(st.integers(250, 2000), st.integers(0, 3), NAMES)
def test_fuzz_huge_lines(width, where, name):
    lines = ["source,target" if name.lower().endswith(".csv") else "a\tb"] + [
        "x\ty" if "tsv" in name or "txt" in name else "x,y"
    ] * 4
    lines.insert(1 + where, "h" * width + ("\tz" if "csv" not in name.lower() else ",z"))
    res = attempt("\n".join(lines).encode(), name)
    if width + 2 > SMALL.max_line_chars:
        assert isinstance(res, DataError) and f"Line {2 + where}" in str(res) and "SEQ2SEQ_MAX_LINE_CHARS" in str(res)


@FUZZ
@given(st.lists(FIELD.filter(lambda s: "\t" not in s), min_size=1, max_size=10), EOLS, NAMES)
def test_fuzz_one_column(values, eol, name):
    res = attempt(eol.join(v.replace(",", "") for v in values).encode(), name)
    assert isinstance(res, DataError)


@FUZZ
@given(
    st.lists(st.sampled_from(["source", "target", "extra", "Source", " TARGET ", "id", ""]), min_size=1, max_size=4),
    EOLS,
    st.integers(0, 3),
)
def test_fuzz_header_only(cols, eol, blank_lines):
    res = attempt((",".join(cols) + eol * (1 + blank_lines)).encode(), "h.csv")
    assert isinstance(res, DataError)


# ------------------------------------------------------------------ valid files round-trip exactly
@FUZZ
@given(st.lists(st.tuples(CLEAN_FIELD, FIELD, EOLS), min_size=1, max_size=15), st.booleans(), st.integers(0, 2))
def test_tsv_round_trip(rows, bom, trailing_blank):
    text = "".join(f"{s}\t{t}{e}" for s, t, e in rows) + "\n" * trailing_blank
    got = attempt((b"\xef\xbb\xbf" if bom else b"") + text.encode(), "rt.tsv", Limits())
    assert got == [(s, t) for s, t, _ in rows]


@FUZZ
@given(
    st.lists(st.tuples(CLEAN_FIELD, CLEAN_FIELD, texts(max_size=5)), min_size=1, max_size=15),
    EOLS,
    st.booleans(),
    st.booleans(),
)
def test_csv_round_trip(rows, eol, extra_column, swap):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=eol)
    header = ["target", "source"] if swap else ["source", "target"]
    w.writerow(header + (["note"] if extra_column else []))
    for s, t, x in rows:
        w.writerow(([t, s] if swap else [s, t]) + ([x] if extra_column else []))
    got = attempt(buf.getvalue().encode(), "rt.csv", Limits())
    assert got == [(s, t) for s, t, _ in rows]


# ------------------------------------------------------------------ specific messages
def err(data, name="d.tsv", limits=SMALL) -> str:
    with pytest.raises(DataError) as e:
        load_pairs(data, name, limits)
    return str(e.value)


def test_messages_name_the_problem_and_row():
    assert "empty" in err(b"") and "empty" in err(b"  \n\n\r\n ")
    assert "single column" in err(b"abc\ndef\n")
    assert "name it .csv" in err(b"a,b\nc,d\n")
    assert "Line 3 has no TAB" in err(b"a\tb\nc\td\nlonely\n")
    assert "Line 2 has 2 TABs" in err(b"a\tb\nc\td\te\n")
    assert "Line 2: the target is empty" in err(b"a\tb\nc\t  \n")
    assert "Line 4: the source is empty" in err(b"a\tb\r\n\r\nc\td\r\n\tz\r\n")  # blank line 2 still counted
    m = err(b"a\tb\nc\td\xff\xfe\n")
    assert "Line 2 is not valid UTF-8" in m and "byte offset 7" in m
    m = err("a\tb\n".encode("utf-16"))
    assert "NUL" in m and "UTF-16" in m
    assert "Line 3 contains a NUL byte" in err(b"a\tb\rc\td\r\ne\x00\tf\n")
    assert "Unsupported file type" in err(b"a\tb", "d.xlsx")
    assert "Expected the file's bytes" in err("a\tb", "d.tsv")


def test_csv_messages():
    assert "header but no data rows" in err(b"source,target\n", "d.csv")
    assert "header but no data rows" in err(b"\xef\xbb\xbfsource,target\r\n\r\n", "d.csv")
    m = err(b"source\nabc\n", "d.csv")
    assert "missing: target" in m and "single column" in m
    m = err(b"input,output\na,b\n", "d.csv")
    assert "missing: source, target" in m and "'input', 'output'" in m
    assert "Line 4 has 3 fields but the header has 2" in err(b"source,target\na,b\n\nc,d,e\n", "d.csv")
    assert "Line 3: the target is empty" in err(b"source,target\na,b\nc\n", "d.csv")
    assert "Line 2: the source is empty" in err(b"source,target\n,b\n", "d.csv")
    assert "quotes" in err(b'source,target\n"abc,d\n', "d.csv")
    assert "Data row 2: the target is empty" in err(b'source,target\n"a\nb",c\nd,\n', "d.csv")


def test_limits_are_named():
    lim = Limits(max_rows=3, max_upload_mb=0.001, max_line_chars=20)
    with pytest.raises(LimitError) as e:
        load_pairs(b"a\tb\n" * 4, "d.tsv", lim)
    assert "4 rows" in str(e.value) and "at most 3" in str(e.value) and e.value.env_var == "SEQ2SEQ_MAX_ROWS"
    assert isinstance(e.value, DataError)
    assert "SEQ2SEQ_MAX_ROWS" in err(b"source,target\n" + b"a,b\n" * 4, "d.csv", lim)
    assert "SEQ2SEQ_MAX_UPLOAD_MB" in err(b"a\tb\n" * 400, "d.tsv", lim)
    assert "Line 2 has 21 characters" in err(b"a\tb\n" + b"x" * 19 + b"\tb\n", "d.tsv", lim)


def test_good_files():
    assert load_pairs(b"a\tb\r\nc\td\re\tf\n\n", "x.tsv") == [("a", "b"), ("c", "d"), ("e", "f")]
    assert load_pairs(b'He said "hi"\t"quoted"\n', "x.txt") == [('He said "hi"', '"quoted"')]
    data = b'\xef\xbb\xbf Source ,TARGET,n\n"x, y",z,1\n\n"q""r",s,\n'
    assert load_pairs(data, "x.csv") == [("x, y", "z"), ('q"r', "s")]
    rtl = "שלום עולם\tمرحبا e\u0301 👩\u200d💻\n"
    assert load_pairs(rtl.encode(), "x.tsv") == [("שלום עולם", "مرحبا e\u0301 👩\u200d💻")]
    assert load_pairs(b"NA\tnull\nNaN\t1e5\n", "x.tsv") == [("NA", "null"), ("NaN", "1e5")]  # text stays text
    assert load_pairs(codecs.BOM_UTF8 + b"source,target\nNA,None\n", "x.csv") == [("NA", "None")]
