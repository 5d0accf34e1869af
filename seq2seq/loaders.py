"""User data: a TSV or CSV file of (source, target) pairs -> list[(source, target)].

    .tsv / .txt   one pair per line, "source<TAB>target", no header; quotes are ordinary characters
    .csv          a header line with columns named source and target (others are ignored); standard CSV quoting

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
from .limits import Limits, LimitError, get_limits

__all__ = ["DataError", "DataLimitError", "load_pairs", "file_kind"]


class DataLimitError(DataError, LimitError):
    """The file is over a server limit (size, rows, line length); also a LimitError naming the variable."""


def file_kind(filename: str) -> str:
    """"tsv" or "csv" from the file name's extension; DataError otherwise."""
    name = (filename or "").strip().lower()
    if name.endswith((".tsv", ".txt", ".tab")):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    raise DataError(f"Unsupported file type {filename!r}: upload a .tsv or .txt file (source<TAB>target on each "
                    f"line) or a .csv file with a header line source,target.")


def _line_of_offset(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset, counting \\n, \\r\\n and lone \\r as line breaks."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _decode(data: bytes) -> str:
    zero = data.find(b"\x00")
    if zero >= 0:
        hint = (" It looks like UTF-16: save it as UTF-8." if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                or (len(data) >= 8 and data.count(b"\x00") * 4 > len(data)) else "")
        raise DataError(f"Line {_line_of_offset(data, zero)} contains a NUL byte (byte offset {zero}); this is not "
                        f"a text file in UTF-8.{hint} Remove the NUL characters or save the file as UTF-8 text.")
    try:
        return data.decode("utf-8-sig")  # plain UTF-8, with or without a byte-order mark
    except UnicodeDecodeError as e:
        bad = data[e.start: e.start + 4].hex(" ")
        raise DataError(f"Line {_line_of_offset(data, e.start)} is not valid UTF-8 (byte offset {e.start}: {bad}). "
                        f"Save the file as UTF-8 text (in a spreadsheet: 'CSV UTF-8'; in an editor: "
                        f"encoding UTF-8).") from None


def _check_fields(pairs: list[tuple[object, object]], where: list[str]) -> list[tuple[str, str]]:
    out = []
    for (src, tgt), at in zip(pairs, where):
        for name, value in (("source", src), ("target", tgt)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{at}: the {name} is empty. Every row needs a non-empty source and target; "
                                f"fill it in or delete the row.")
        out.append((src, tgt))
    return out


def _check_rows(n: int, limits: Limits) -> None:
    if n > limits.max_rows:
        var = Limits.env_var("max_rows")
        raise DataLimitError(f"The file has {n:,} rows; this server accepts at most {limits.max_rows:,} "
                             f"({var}). Upload a random sample of your data.", env_var=var)


def _read_tsv(lines: list[str], limits: Limits) -> list[tuple[str, str]]:
    kept = [(i + 1, line) for i, line in enumerate(lines) if line.strip() or "\t" in line]
    if not kept:
        raise DataError("The file is empty: it has only blank lines.")
    _check_rows(len(kept), limits)
    if all("\t" not in line for _, line in kept):
        comma = sum("," in line for _, line in kept) > len(kept) // 2
        raise DataError("The file has a single column: no line contains a TAB between source and target."
                        + (" It looks comma-separated: name it .csv and give it the header line source,target."
                           if comma else " Write each pair as source<TAB>target."))
    for n, line in kept:
        tabs = line.count("\t")
        if tabs == 0:
            raise DataError(f"Line {n} has no TAB: expected source<TAB>target. Add the target or delete the line.")
        if tabs > 1:
            raise DataError(f"Line {n} has {tabs} TABs: expected exactly one, between source and target "
                            f"(a TAB inside a field is not allowed).")
    df = pd.read_csv(io.StringIO("\n".join(line for _, line in kept)), sep="\t", header=None,
                     names=["source", "target"], dtype=str, keep_default_na=False, na_filter=False,
                     quoting=csv.QUOTE_NONE, skip_blank_lines=False, engine="c")
    if len(df) != len(kept):  # cannot happen for the lines checked above; refuse rather than misnumber rows
        raise DataError(f"Could not read the file: expected {len(kept)} rows, read {len(df)}.")
    pairs = list(zip(df["source"].tolist(), df["target"].tolist()))
    return _check_fields(pairs, [f"Line {n}" for n, _ in kept])


def _read_csv(text: str, lines: list[str], limits: Limits) -> list[tuple[str, str]]:
    nonblank = [i + 1 for i, line in enumerate(lines) if line.strip()]
    if not nonblank:
        raise DataError("The file is empty: it has only blank lines.")
    _check_rows(len(nonblank) - 1, limits)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                         skip_blank_lines=True, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError("The file is empty.") from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise DataError(f"Line {m.group(2)} has {m.group(3)} fields but the header has {m.group(1)}. Put "
                            f"fields that contain commas in double quotes, or remove the extra commas.") from None
        raise DataError(f"Could not read the CSV file: {str(e).strip().splitlines()[-1][:200]}. Check its "
                        f"quotes (a field that starts with \" must end with \").") from None
    columns = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in ("source", "target") if c not in columns]
    if missing:
        found = ", ".join(repr(str(c)) for c in df.columns[:5]) + (", ..." if len(df.columns) > 5 else "")
        single = " The file seems to have a single column." if len(df.columns) == 1 else ""
        raise DataError(f"The CSV header must name the columns source and target; missing: {', '.join(missing)}. "
                        f"The first line has: {found}.{single} Add the header line source,target (or save the "
                        f"pairs as a .tsv file, source<TAB>target, without a header).")
    if len(df) == 0:
        raise DataError("The CSV file has a header but no data rows. Add source,target pairs below the header.")
    _check_rows(len(df), limits)
    data_lines = nonblank[1:]
    where = ([f"Line {n}" for n in data_lines] if len(data_lines) == len(df)  # one physical line per row
             else [f"Data row {i + 1}" for i in range(len(df))])  # quoted fields span lines: count rows
    pairs = list(zip(df[columns["source"]].tolist(), df[columns["target"]].tolist()))
    return _check_fields(pairs, where)


def load_pairs(data: bytes, filename: str, limits: Limits | None = None) -> list[tuple[str, str]]:
    """Read an uploaded TSV/CSV file into (source, target) pairs, or raise DataError saying what is wrong."""
    limits = limits or get_limits()
    kind = file_kind(filename)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"Expected the file's bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) > limits.max_upload_bytes:
        var = Limits.env_var("max_upload_mb")
        raise DataLimitError(f"The file is {len(data) / 2 ** 20:.1f} MB; this server accepts at most "
                             f"{limits.max_upload_mb:g} MB ({var}). Upload a smaller sample of your data.",
                             env_var=var)
    if not data.strip():
        raise DataError("The file is empty.")
    try:
        text = _decode(data)
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows, old Mac and Unix line endings alike
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, line in enumerate(lines):
            if len(line) > limits.max_line_chars:
                var = Limits.env_var("max_line_chars")
                raise DataLimitError(f"Line {i + 1} has {len(line):,} characters; this server accepts at most "
                                     f"{limits.max_line_chars:,} per line ({var}). Shorten or split that line.",
                                     env_var=var)
        return _read_tsv(lines, limits) if kind == "tsv" else _read_csv(text, lines, limits)
    except DataError:
        raise
    except Exception as e:  # a parser corner we did not foresee: still a message, never a stack trace
        raise DataError(f"Could not read {filename!r} as {kind.upper()}: {type(e).__name__}: "
                        f"{str(e).strip()[:200]}") from None
