"""Reading the CSV inputs (SPEC §2): every value as text, headers mapped and matched.

pyarrow's CSV reader does the parsing (multi-threaded, Arrow strings that pandas 3 keeps
as they are); the slow, exact Python ``csv`` module is used only to explain a failure
(which line, which column) or to number the lines of a file that has quoted newlines.

The frame returned has the canonical column names, all ``string`` dtype, and a
``_line`` column: the 1-based physical line in the file where each record starts, so
every message can name the line an analyst opens in an editor.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from caselle_ic.errors import InputError

LINE = "_line"


def _decode_check(path: Path, encoding: str) -> tuple[int, bool]:
    """Raise InputError naming the line of the first byte that does not decode.

    Returns (number of line breaks a file of one line per record would have, whether a
    CR appears other than in CR LF) for :func:`_record_lines`: the LF count, plus one when
    the last line has no LF.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    bare_cr = False
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk[: exc.start].count(b"\n")
                hint = (
                    'set [extract].encoding = "cp1252" in the biller config if the file was '
                    "exported on Windows"
                    if encoding.lower().replace("_", "-") in ("utf-8", "utf8")
                    else "check [extract].encoding in the biller config"
                )
                raise InputError(
                    f"byte 0x{chunk[exc.start]:02x} is not valid {encoding}; {hint}",
                    file=path,
                    line=line,
                ) from None
            line += chunk.count(b"\n")
            bare_cr = bare_cr or chunk.count(b"\r") != chunk.count(b"\r\n")
            last = chunk[-1:]
    return line - 1 + (last not in (b"\n", b"")), bare_cr


def _explain_parse_failure(path: Path, encoding: str, width: int) -> InputError:
    """Find the first record whose field count differs from the header's."""
    with path.open("r", encoding=_py_encoding(encoding), newline="") as fh:
        reader = csv.reader(fh)
        try:
            next(reader)
            line_of_record = reader.line_num + 1
            for row in reader:
                if row and len(row) != width:
                    return InputError(
                        f"has {len(row)} fields where the header has {width}; "
                        "check for an unquoted comma or a missing delimiter",
                        file=path,
                        line=line_of_record,
                    )
                line_of_record = reader.line_num + 1
        except csv.Error as exc:
            return InputError(f"is not valid CSV ({exc})", file=path, line=reader.line_num)
    return InputError("is not a readable CSV file", file=path)


def _record_lines(path: Path, encoding: str, table: pa.Table, lines: int, bare_cr: bool) -> np.ndarray:
    """Physical start line of each data record (header is line 1). ``lines``/``bare_cr``
    come from :func:`_decode_check`."""
    n_records = table.num_rows
    # Fast path: one line per record (the file's line breaks are the header's and the
    # records' own: no quoted line breaks, no blank lines) -> record i starts at line i + 2.
    ascii_breaks = "\n".encode(encoding) == b"\n" and "\r".encode(encoding) == b"\r"
    # An unbalanced quote at the end swallows the last line break into the last value
    # and leaves the count intact: look at the last record (cheap) to catch it.
    tail_broken = n_records > 0 and any(
        ("\n" in v or "\r" in v) for v in (col[n_records - 1].as_py() or "" for col in table.columns)
    )
    if ascii_breaks and not bare_cr and lines == n_records + 1 and not tail_broken:
        return np.arange(2, n_records + 2, dtype=np.int64)
    starts = np.empty(n_records, dtype=np.int64)
    with path.open("r", encoding=_py_encoding(encoding), newline="") as fh:
        reader = csv.reader(fh, strict=True)
        next(reader, None)
        i, start = 0, reader.line_num + 1
        try:
            for row in reader:
                if row and i < n_records:
                    starts[i] = start
                    i += 1
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InputError(
                f"is not valid CSV from this line on ({exc}); look for an unbalanced double quote",
                file=path,
                line=start,
            ) from None
    return starts


def _py_encoding(encoding: str) -> str:
    """Python codec that also drops a UTF-8 byte-order mark, as pyarrow does."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def normalize_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def read_text_csv(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    column_map: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    known: Iterable[str] | None = None,
    what: str = "input",
) -> pd.DataFrame:
    """Read a CSV file as text with canonical column names.

    * ``column_map``: the biller's header aliases (``"Acct No" -> "account_number"``),
      matched case-insensitively.
    * ``required``: canonical columns that must be present, else InputError naming them.
    * ``known``: canonical columns to keep (others are dropped); None keeps all.
    Missing optional columns from ``known`` are added as empty.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"the {what} file does not exist", file=p)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} in the biller config", file=p) from None

    aliases = {normalize_header(k): v.strip().lower() for k, v in (column_map or {}).items()}

    head = p.open("rb").read(64 * 1024)
    if not head.strip():
        raise InputError(f"the {what} file is empty; expected a header row", file=p, line=1)
    if b"\x00" in head:
        raise InputError(f"the {what} file is binary, not CSV text", file=p, line=1)
    newlines, bare_cr = _decode_check(p, encoding)
    with p.open("r", encoding=_py_encoding(encoding), newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise InputError(f"the header row is not valid CSV ({exc})", file=p, line=1) from None
    if len(header) < 2:
        raise InputError(
            f"the {what} file is not comma-delimited CSV: its header has {len(header)} column",
            file=p,
            line=1,
        )

    try:
        table = pacsv.read_csv(
            p,
            read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                # every value is text: account numbers keep their leading zeros
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                auto_dict_encode=False,
                null_values=[],
                check_utf8=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "Empty CSV file" in text:
            raise InputError(f"the {what} file is empty; expected a header row", file=p, line=1) from None
        with p.open("r", encoding=_py_encoding(encoding), newline="") as fh:
            width = len(next(csv.reader(fh), []))
        raise _explain_parse_failure(p, encoding, width) from None

    raw_names = table.column_names
    canonical = [aliases.get(normalize_header(n), normalize_header(n)) for n in raw_names]
    seen: dict[str, str] = {}
    for raw, canon in zip(raw_names, canonical, strict=True):
        if canon in seen:
            raise InputError(
                f"columns {seen[canon]!r} and {raw!r} both map to {canon!r}; "
                "remove one or fix [extract].columns",
                file=p,
                line=1,
                column=raw,
            )
        seen[canon] = raw
    missing = [c for c in required if c not in seen]
    if missing:
        raise InputError(
            f"required column(s) missing: {', '.join(missing)}; the header has "
            f"{', '.join(raw_names)}. Rename them or map them in [extract].columns",
            file=p,
            line=1,
            column=missing[0],
        )
    keep = list(known) if known is not None else canonical
    cols: dict[str, pd.Series] = {}
    for raw, canon in zip(raw_names, canonical, strict=True):
        if canon not in keep:
            continue
        cols[canon] = table.column(raw).to_pandas(types_mapper=pd.ArrowDtype).astype("string")
    n = table.num_rows
    for canon in keep:
        if canon not in cols:
            cols[canon] = pd.Series([""] * n, dtype="string")
    frame = pd.DataFrame({c: cols[c] for c in keep})
    frame[LINE] = _record_lines(p, encoding, table, newlines, bare_cr)
    return frame
