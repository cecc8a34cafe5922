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
import ctypes
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from caselle_ic.errors import InputError, file_problem
from caselle_ic.tabular.breaks import line_break_counts
from caselle_ic.tabular.values import empty_strings, string_series

LINE = "_line"
#: The longest value read (bytes): far beyond any real field, well below Arrow's 16 MiB
#: block, so a runaway field is named as one instead of "not valid CSV".
MAX_FIELD_BYTES = 1 << 20
_TOO_LONG = (
    f"a field is too long (more than {MAX_FIELD_BYTES // (1 << 20)} MiB); look for an unbalanced double quote"
)
# the csv module explains failures: same limit as ours (its default is 128 KiB)
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_BYTES))


def _csv_error(exc: csv.Error, default: str) -> str:
    return _TOO_LONG if "field larger than field limit" in str(exc) else default


def scan_values(table: pa.Table, lines: np.ndarray, path: Path) -> None:
    """Refuse a NUL byte or a too-long field anywhere in the file (not only in the first
    64 KiB): a NUL in an accountName must never reach Caselle. libc memchr over each
    column's data buffer; a value's line and column are looked up only on a hit."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        for chunk in column.chunks:
            data = chunk.buffers()[2] if len(chunk) else None
            if data is None or data.size == 0:
                continue
            nul = _MEMCHR(data.address, 0, data.size) if _MEMCHR is not None else None
            if nul or (_MEMCHR is None and b"\x00" in data.to_pybytes()):
                hit = pc.index(pc.match_substring(column, "\x00"), True).as_py()
                if hit >= 0:
                    raise InputError(
                        "holds a NUL byte (binary data, not CSV text); fix the export",
                        file=path,
                        line=int(lines[hit]) if hit < len(lines) else None,
                        column=name,
                    )
            if data.size > MAX_FIELD_BYTES:
                hit = pc.index(pc.greater(pc.binary_length(column), MAX_FIELD_BYTES), True).as_py()
                if hit >= 0:
                    raise InputError(_TOO_LONG, file=path, line=int(lines[hit]), column=name)


def _decode_check(path: Path, encoding: str) -> int:
    """Raise InputError naming the line of the first byte that does not decode.

    Returns the number of line feeds in the file (the same pass counts them), which
    tells :func:`_record_lines` whether every record sits on its own line."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
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
    return line - 1


def has_empty_records(table: pa.Table) -> bool:
    """Whether any record has every value empty (what a kept blank line becomes)."""
    if table.num_rows == 0 or table.num_columns == 0:
        return False
    candidates = pc.equal(pc.binary_length(table.column(0)), 0)
    if not pc.any(candidates).as_py():
        return False
    rows = pa.array(np.flatnonzero(candidates.to_numpy(zero_copy_only=False)))
    empty = np.ones(len(rows), dtype=bool)
    for column in table.columns[1:]:
        empty &= pc.equal(pc.binary_length(pc.take(column, rows)), 0).to_numpy(zero_copy_only=False)
    return bool(empty.any())


def read_arrow(
    path: Path | pa.NativeFile,
    encoding: str,
    header: list[str],
    *,
    keep_blank_lines: bool,
    check_utf8: bool,
    newlines_in_values: bool = True,
    header_given: bool = False,
) -> pa.Table:
    """Every column as Arrow ``string`` (account numbers keep their leading zeros).

    ``keep_blank_lines``: a blank line becomes a record of empty values instead of being
    skipped (see :func:`has_empty_records`). ``newlines_in_values=False`` is the fast
    read (blocks split at any line break, parsed in parallel); it is only right when no
    quoted value holds a line break, which :func:`_one_line_per_record` proves after.
    ``header_given``: ``path`` is a part of the file after its header (a byte range)."""
    # Arrow's default block size (1 MB) for the fast read: blocks that stay in the CPU
    # cache parse a third faster than 16 MB ones; the serial read takes big blocks.
    block_size = 1 << 24 if newlines_in_values else None
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            encoding=encoding, block_size=block_size, column_names=header if header_given else None
        ),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=newlines_in_values, ignore_empty_lines=not keep_blank_lines
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            auto_dict_encode=False,
            null_values=[],
            check_utf8=check_utf8,
        ),
    )


def _trailing_line_feeds(path: Path) -> int:
    """Line feeds in the run of CR/LF at the very end of the file (trailing blank lines)."""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    stripped = tail.rstrip(b"\r\n")
    return tail[len(stripped) :].count(b"\n")


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
            return InputError(_csv_error(exc, f"is not valid CSV ({exc})"), file=path, line=reader.line_num)
    return InputError("is not a readable CSV file", file=path)


def _record_lines(path: Path, encoding: str, table: pa.Table, no_blank_lines: bool) -> np.ndarray:
    """Physical start line of each data record (header is line 1).

    Fast path: no blank line between records (``no_blank_lines``, proven by the reader
    or by counting) and no line break inside a value -> record i starts at line i + 2.
    Otherwise the csv module numbers them."""
    n_records = table.num_rows
    ascii_breaks = "\n".encode(encoding) == b"\n" and "\r".encode(encoding) == b"\r"
    if ascii_breaks and no_blank_lines and not values_have_line_breaks(table):
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
                _csv_error(
                    exc, f"is not valid CSV from this line on ({exc}); look for an unbalanced double quote"
                ),
                file=path,
                line=start,
            ) from None
    return starts


def one_line_per_record(table: pa.Table, counts: tuple[int, int, int], record_line_feeds: int) -> bool:
    """Whether a read without ``newlines_in_values`` is certainly the right one.

    A quoted line break inside one block stays in its value (seen by the scan of the
    values); one where a block was cut misparses silently, but then the text has more
    line feeds than records, or a carriage return that is not part of CR+LF. So: no
    value holds CR or LF, every CR is followed by LF, and the line feeds that end records
    (``record_line_feeds``, counted by the caller: a whole file or one range) = records."""
    _, cr, crlf = counts
    if cr != crlf or record_line_feeds != table.num_rows:
        return False
    return not values_have_line_breaks(table)


def _one_line_per_record(path: Path, table: pa.Table, counts: tuple[int, int, int]) -> bool:
    """:func:`one_line_per_record` of a whole file: its line feeds, less trailing ones."""
    return one_line_per_record(table, counts, counts[0] - _trailing_line_feeds(path))


def _memchr() -> Callable[[int, int, int], int | None] | None:
    try:
        libc = ctypes.CDLL(None)
        fn = libc.memchr
    except (OSError, AttributeError):  # pragma: no cover - not a glibc/BSD libc
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    return fn


_MEMCHR = _memchr()


def values_have_line_breaks(table: pa.Table) -> bool:
    """Whether any value holds CR or LF (a quoted line break, or an unterminated quote).

    Scans each column's data buffer with libc ``memchr`` (gigabytes per second); a
    buffer may hold bytes outside the chunk's slice, which can only make this say yes."""
    for column in table.columns:
        for chunk in column.chunks:
            data = chunk.buffers()[2] if len(chunk) else None
            if data is None or data.size == 0:
                continue
            if _MEMCHR is None:  # pragma: no cover
                if pc.any(pc.match_substring_regex(chunk, "[\r\n]")).as_py():
                    return True
                continue
            if _MEMCHR(data.address, 10, data.size) or _MEMCHR(data.address, 13, data.size):
                return True
    return False


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
    text = read_text_table(
        path, encoding=encoding, column_map=column_map, required=required, known=known, what=what
    )
    frame = pd.DataFrame({name: string_series(text.table.column(name)) for name in text.table.column_names})
    frame[LINE] = text.lines
    return frame


@dataclass
class TextTable:
    """A CSV file read as text: Arrow ``string`` columns with canonical names, and the
    physical line where each record starts. Big inputs stay in Arrow (4-byte offsets,
    no per-value Python objects); :func:`read_text_csv` is the pandas view of it.

    Mutable on purpose: a pipeline that has consumed some columns drops them with
    :meth:`drop` so their memory is released even while a caller still holds this object.
    """

    path: Path
    table: pa.Table
    lines: np.ndarray
    present: list[str] = field(default_factory=list)  # canonical columns the header had
    #: a read in ranges: each record's byte offset in the file, then the end of the last
    starts: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def drop(self, columns: Iterable[str]) -> None:
        names = set(columns)
        self.table = self.table.drop_columns([c for c in self.table.column_names if c in names])


def read_text_table(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    column_map: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    known: Iterable[str] | None = None,
    what: str = "input",
) -> TextTable:
    """Like :func:`read_text_csv`, returning the Arrow table and line numbers."""
    p = Path(path)
    if (problem := file_problem(p)) is not None:
        raise InputError(f"the {what} file {problem}", file=p)
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
    utf8 = codecs.lookup(encoding).name == "utf-8"
    # UTF-8 is validated by the Arrow reader itself (vectorised, in parallel); the Python
    # pass that names the offending line runs only when that fails. Other encodings are
    # decoded in Python anyway, and that pass also counts the lines.
    line_feeds = None if utf8 else _decode_check(p, encoding)
    with p.open("r", encoding=_py_encoding(encoding), newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise InputError(f"the header row is not valid CSV ({exc})", file=p, line=1) from None
        except UnicodeDecodeError:
            _decode_check(p, encoding)
            raise
    if len(header) < 2:
        raise InputError(
            f"the {what} file is not comma-delimited CSV: its header has {len(header)} column",
            file=p,
            line=1,
        )

    # With one line break at the end at most, read with blank lines kept: Arrow turns a
    # blank line into a record of empty values, so when no record is entirely empty the
    # file has no blank line and one physical line per record (unless a value holds a
    # line break, which _record_lines checks) -- proven without reading it in Python.
    strict = utf8 and _trailing_line_feeds(p) <= 1
    # The fast read first (what the floor does: blocks cut at line breaks, parsed in
    # parallel) while another thread counts the line breaks; it is kept only when those
    # counts prove that no quoted value holds a line break (:func:`_one_line_per_record`).
    # Otherwise -- or when the fast read fails -- the file is read again with
    # ``newlines_in_values``, which lexes quotes serially.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="line-breaks") as pool:
        counting = pool.submit(line_break_counts, p) if utf8 else None
        try:
            table = read_arrow(
                p, encoding, header, keep_blank_lines=strict, check_utf8=utf8, newlines_in_values=False
            )
        except pa.ArrowInvalid:
            table = None
        counts = counting.result() if counting is not None else None
    if table is not None and strict and has_empty_records(table):
        strict = False
        table = None
    if table is not None and not (counts and _one_line_per_record(p, table, counts)):
        table = None
    try:
        if table is None:
            table = read_arrow(p, encoding, header, keep_blank_lines=strict, check_utf8=utf8)
        if strict and has_empty_records(table):  # blank lines (or ",,," rows): skip them
            strict = False
            table = read_arrow(p, encoding, header, keep_blank_lines=False, check_utf8=utf8)
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "Empty CSV file" in text:
            raise InputError(f"the {what} file is empty; expected a header row", file=p, line=1) from None
        if utf8 and "UTF8" in text:
            _decode_check(p, encoding)  # raises, naming the line
        with p.open("r", encoding=_py_encoding(encoding), newline="") as fh:
            width = len(next(csv.reader(fh), []))
        raise _explain_parse_failure(p, encoding, width) from None
    if strict:
        no_blank_lines = True
    else:
        feeds = (counts or line_break_counts(p))[0] if line_feeds is None else line_feeds
        no_blank_lines = feeds - _trailing_line_feeds(p) == table.num_rows

    keep, source = canonical_columns(p, table.column_names, aliases, required, known)
    lines = _record_lines(p, encoding, table, no_blank_lines)
    scan_values(table, lines, p)
    return text_table(p, table, lines, keep, source)


def canonical_columns(
    path: Path,
    raw_names: list[str],
    aliases: Mapping[str, str],
    required: Iterable[str],
    known: Iterable[str] | None,
) -> tuple[list[str], dict[str, str]]:
    """The canonical columns to keep, and the header name each present one is read from.
    InputError when two headers map to one column or a required one is missing."""
    canonical = [aliases.get(normalize_header(n), normalize_header(n)) for n in raw_names]
    seen: dict[str, str] = {}
    for raw, canon in zip(raw_names, canonical, strict=True):
        if canon in seen:
            raise InputError(
                f"columns {seen[canon]!r} and {raw!r} both map to {canon!r}; "
                "remove one or fix [extract].columns",
                file=path,
                line=1,
                column=raw,
            )
        seen[canon] = raw
    missing = [c for c in required if c not in seen]
    if missing:
        raise InputError(
            f"required column(s) missing: {', '.join(missing)}; the header has "
            f"{', '.join(raw_names)}. Rename them or map them in [extract].columns",
            file=path,
            line=1,
            column=missing[0],
        )
    keep = list(known) if known is not None else canonical
    return keep, {canon: seen[canon] for canon in keep if canon in seen}


def text_table(
    path: Path, table: pa.Table, lines: np.ndarray, keep: list[str], source: dict[str, str]
) -> TextTable:
    """``table`` (columns named as in the header) as a TextTable of the ``keep`` columns;
    a known column the header lacks is added empty."""
    n = table.num_rows
    cols = [
        table.column(source[c]) if c in source else pa.chunked_array([empty_strings(n).cast(pa.string())])
        for c in keep
    ]
    present = [c for c in keep if c in source]
    return TextTable(path=path, table=pa.table(cols, names=keep), lines=lines, present=present)
