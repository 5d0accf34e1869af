"""User data: a TSV or CSV file of (source, target) pairs -> list[(source, target)].

    .tsv / .txt   one pair per line, "source<TAB>target", no header; quotes are ordinary characters; more
                  columns are fine ("English<TAB>French<TAB>attribution"): columns=("1", "2") picks them (1-based)
    .csv          a header line; columns named source and target by default, or columns=("english", "french")
                  (header names, case and surrounding spaces ignored; numbers also work); standard CSV quoting

`read_table` gives the columns and the first rows, for a column picker with a preview.

Everything a user can upload goes through `load_pairs`, which either returns clean pairs or raises DataError
with a message meant for the user: what is wrong, on which line (1-based, as a text editor counts), and what to
do. The checks run cheapest first (size, emptiness, NUL bytes, encoding, line lengths, row count) so a hostile
file is turned away before pandas parses it. Any other failure is still reported as a DataError, never as a
stack trace.
"""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from .data import DataError
from .limits import LimitError, Limits, get_limits

__all__ = ["DataError", "DataLimitError", "load_pairs", "read_table", "file_kind"]


class DataLimitError(DataError, LimitError):
    """The file is over a server limit (size, rows, line length); also a LimitError naming the variable."""


def file_kind(filename: str) -> str:
    """ "tsv" or "csv" from the file name's extension; DataError otherwise."""
    name = (filename or "").strip().lower()
    if name.endswith((".tsv", ".txt", ".tab")):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    raise DataError(
        f"Unsupported file type {filename!r}: upload a .tsv or .txt file (source<TAB>target on each "
        f"line) or a .csv file with a header line source,target."
    )


def _line_of_offset(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset, counting \\n, \\r\\n and lone \\r as line breaks."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _decode(data: bytes) -> str:
    zero = data.find(b"\x00")
    if zero >= 0:
        hint = (
            " It looks like UTF-16: save it as UTF-8."
            if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) >= 8 and data.count(b"\x00") * 4 > len(data))
            else ""
        )
        raise DataError(
            f"Line {_line_of_offset(data, zero)} contains a NUL byte (byte offset {zero}); this is not "
            f"a text file in UTF-8.{hint} Remove the NUL characters or save the file as UTF-8 text."
        )
    try:
        return data.decode("utf-8-sig")  # plain UTF-8, with or without a byte-order mark
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 4].hex(" ")
        raise DataError(
            f"Line {_line_of_offset(data, e.start)} is not valid UTF-8 (byte offset {e.start}: {bad}). "
            f"Save the file as UTF-8 text (in a spreadsheet: 'CSV UTF-8'; in an editor: "
            f"encoding UTF-8)."
        ) from None


def _check_fields(pairs: list[tuple[object, object]], where: list[str]) -> list[tuple[str, str]]:
    out = []
    for (src, tgt), at in zip(pairs, where):
        for name, value in (("source", src), ("target", tgt)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"{at}: the {name} is empty. Every row needs a non-empty source and target; "
                    f"fill it in or delete the row."
                )
        out.append((src, tgt))
    return out


def _check_rows(n: int, limits: Limits) -> None:
    if n > limits.max_rows:
        var = Limits.env_var("max_rows")
        raise DataLimitError(
            f"The file has {n:,} rows; this server accepts at most {limits.max_rows:,} "
            f"({var}). Upload a random sample of your data.",
            env_var=var,
        )


def _tsv_lines(lines: list[str], limits: Limits) -> tuple[list[tuple[int, str]], int]:
    """Non-blank lines (1-based number, text) and the number of columns, all lines alike; DataError otherwise."""
    kept = [(i + 1, line) for i, line in enumerate(lines) if line.strip() or "\t" in line]
    if not kept:
        raise DataError("The file is empty: it has only blank lines.")
    _check_rows(len(kept), limits)
    if all("\t" not in line for _, line in kept):
        comma = sum("," in line for _, line in kept) > len(kept) // 2
        raise DataError(
            "The file has a single column: no line contains a TAB between source and target."
            + (
                " It looks comma-separated: name it .csv and give it the header line source,target."
                if comma
                else " Write each pair as source<TAB>target."
            )
        )
    first_n, first = kept[0]
    width = first.count("\t")
    for n, line in kept:
        tabs = line.count("\t")
        if tabs == 0:
            raise DataError(f"Line {n} has no TAB: expected source<TAB>target. Add the target or delete the line.")
        if tabs != width:
            raise DataError(
                f"Line {n} has {tabs} TAB{'s' if tabs > 1 else ''} but line {first_n} has {width}: every "
                f"line needs the same columns (a TAB inside a field is not allowed)."
            )
    return kept, width + 1


def _tsv_frame(kept: list[tuple[int, str]], width: int) -> pd.DataFrame:
    df = pd.read_csv(
        io.StringIO("\n".join(line for _, line in kept)),
        sep="\t",
        header=None,
        names=[str(i + 1) for i in range(width)],
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=False,
        engine="c",
    )
    if len(df) != len(kept):  # cannot happen for the lines checked above; refuse rather than misnumber rows
        raise DataError(f"Could not read the file: expected {len(kept)} rows, read {len(df)}.")
    return df


def _tsv_columns(columns: tuple[str, str] | None, width: int) -> tuple[int, int]:
    if columns is None:
        return 1, 2
    try:
        src, tgt = (int(str(c).strip()) for c in columns)
    except ValueError:
        raise DataError(
            f"A TSV file has no header: give the columns as numbers, 1 to {width} (e.g. 1,2), not "
            f"{','.join(map(str, columns))}."
        ) from None
    for c in (src, tgt):
        if not 1 <= c <= width:
            raise DataError(f"Column {c} does not exist: the file has {width} columns (numbered from 1).")
    if src == tgt:
        raise DataError("The source and target must be two different columns.")
    return src, tgt


def _read_tsv(lines: list[str], limits: Limits, columns=None) -> list[tuple[str, str]]:
    kept, width = _tsv_lines(lines, limits)
    src, tgt = _tsv_columns(columns, width)
    df = _tsv_frame(kept, width)
    pairs = list(zip(df[str(src)].tolist(), df[str(tgt)].tolist()))
    return _check_fields(pairs, [f"Line {n}" for n, _ in kept])


def _csv_frame(text: str, lines: list[str], limits: Limits) -> tuple[pd.DataFrame, list[int]]:
    nonblank = [i + 1 for i, line in enumerate(lines) if line.strip()]
    if not nonblank:
        raise DataError("The file is empty: it has only blank lines.")
    _check_rows(len(nonblank) - 1, limits)
    try:
        df = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=True, engine="c"
        )
    except pd.errors.EmptyDataError:
        raise DataError("The file is empty.") from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise DataError(
                f"Line {m.group(2)} has {m.group(3)} fields but the header has {m.group(1)}. Put "
                f"fields that contain commas in double quotes, or remove the extra commas."
            ) from None
        raise DataError(
            f"Could not read the CSV file: {str(e).strip().splitlines()[-1][:200]}. Check its "
            f'quotes (a field that starts with " must end with ").'
        ) from None
    return df, nonblank


def _csv_columns(df: pd.DataFrame, columns: tuple[str, str] | None) -> tuple[object, object]:
    by_name = {str(c).strip().lower(): c for c in df.columns}
    want = ("source", "target") if columns is None else tuple(str(c).strip() for c in columns)
    found = ", ".join(repr(str(c)) for c in df.columns[:8]) + (", ..." if len(df.columns) > 8 else "")
    picked = []
    for w in want:
        if w.lower() in by_name:
            picked.append(by_name[w.lower()])
        elif columns is not None and w.isdigit() and 1 <= int(w) <= len(df.columns):
            picked.append(df.columns[int(w) - 1])
        else:
            picked.append(None)
    missing = [w for w, c in zip(want, picked) if c is None]
    if missing:
        single = " The file seems to have a single column." if len(df.columns) == 1 else ""
        if columns is None:
            raise DataError(
                f"The CSV header must name the columns source and target; missing: {', '.join(missing)}. "
                f"The first line has: {found}.{single} Pick the columns (--columns NAME,NAME, or the "
                f"column picker), add the header line source,target, or save the pairs as a .tsv file "
                f"(source<TAB>target, without a header)."
            )
        raise DataError(f"The CSV header has no column {', '.join(map(repr, missing))}; it has: {found}.{single}")
    if picked[0] == picked[1]:
        raise DataError("The source and target must be two different columns.")
    return picked[0], picked[1]


def _read_csv(text: str, lines: list[str], limits: Limits, columns=None) -> list[tuple[str, str]]:
    df, nonblank = _csv_frame(text, lines, limits)
    src, tgt = _csv_columns(df, columns)
    if len(df) == 0:
        raise DataError("The CSV file has a header but no data rows. Add source,target pairs below the header.")
    _check_rows(len(df), limits)
    data_lines = nonblank[1:]
    where = (
        [f"Line {n}" for n in data_lines]
        if len(data_lines) == len(df)  # one physical line per row
        else [f"Data row {i + 1}" for i in range(len(df))]
    )  # quoted fields span lines: count rows
    pairs = list(zip(df[src].tolist(), df[tgt].tolist()))
    return _check_fields(pairs, where)


def _text_lines(data, filename: str, limits: Limits) -> tuple[str, str, list[str]]:
    """Checks shared by every reader: kind, size, emptiness, encoding, line lengths -> (kind, text, lines)."""
    kind = file_kind(filename)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"Expected the file's bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) > limits.max_upload_bytes:
        var = Limits.env_var("max_upload_mb")
        raise DataLimitError(
            f"The file is {len(data) / 2**20:.1f} MB; this server accepts at most "
            f"{limits.max_upload_mb:g} MB ({var}). Upload a smaller sample of your data.",
            env_var=var,
        )
    if not data.strip():
        raise DataError("The file is empty.")
    text = _decode(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows, old Mac and Unix line endings alike
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines):
        if len(line) > limits.max_line_chars:
            var = Limits.env_var("max_line_chars")
            raise DataLimitError(
                f"Line {i + 1} has {len(line):,} characters; this server accepts at most "
                f"{limits.max_line_chars:,} per line ({var}). Shorten or split that line.",
                env_var=var,
            )
    return kind, text, lines


def read_table(
    data: bytes, filename: str, limits: Limits | None = None, n_rows: int = 5
) -> tuple[list[str], list[list[str]]]:
    """The columns of an uploaded file and its first `n_rows` rows, for a column picker: TSV columns are named
    "1", "2", ... (1-based, as --columns takes them), CSV columns by their header. Raises DataError."""
    limits = limits or get_limits()
    try:
        kind, text, lines = _text_lines(data, filename, limits)
        if kind == "tsv":
            kept, width = _tsv_lines(lines, limits)
            df = _tsv_frame(kept[:n_rows], width)
        else:
            df, _ = _csv_frame(text, lines, limits)
        return [str(c) for c in df.columns], [[str(v) for v in row] for row in df.head(n_rows).values.tolist()]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"Could not read {filename!r}: {type(e).__name__}: {str(e).strip()[:200]}") from None


def load_pairs(
    data: bytes, filename: str, limits: Limits | None = None, columns: tuple[str, str] | None = None
) -> list[tuple[str, str]]:
    """Read an uploaded TSV/CSV file into (source, target) pairs, or raise DataError saying what is wrong.
    `columns` = (source, target): 1-based numbers for a TSV (default 1, 2), header names for a CSV (default
    source, target); other columns are ignored."""
    limits = limits or get_limits()
    kind = file_kind(filename)
    try:
        kind, text, lines = _text_lines(data, filename, limits)
        return _read_tsv(lines, limits, columns) if kind == "tsv" else _read_csv(text, lines, limits, columns)
    except DataError:
        raise
    except Exception as e:  # a parser corner we did not foresee: still a message, never a stack trace
        raise DataError(
            f"Could not read {filename!r} as {kind.upper()}: {type(e).__name__}: {str(e).strip()[:200]}"
        ) from None
