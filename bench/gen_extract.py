"""Synthetic statement extracts for the invoice-file benchmark (SPEC §2.1 columns).

``write_extract(path, n_statements)`` writes N statements x 5 activity lines with pyarrow
(vectorized: 1,000,000 statements, about 1.4 GB, take well under a minute). Every
statement reconciles; 1 in 50 carries a long general message that overflows Custom8 into
Custom9/Custom10, 1 in 1000 carries one that overflows all five fields, and 1 in 2000 does
not reconcile (quarantined), so the benchmark exercises the same paths as a real cycle.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.schemas.invoices import extract_names

LINES = 5
#: The sample biller's header: the extract columns of schemas/statement_extract.csv, with the
#: two that data/samples/biller.toml maps through [extract].columns written as the biller does.
HEADER = ["Acct No", "Customer Name", *extract_names()[2:]]

FIRST = np.array(["JOHN", "MARY", "ANA", "LUIS", "WEI", "FATIMA", "OLAF", "PRIYA", "JOSÉ", "CHLOE"])
LAST = np.array(["SMITH", "JONES", "GARCIA", "NGUYEN", 'O"BRIEN', "MÜLLER", "KOWALSKI", "PATEL", "LEE"])
STREETS = np.array(["MAIN", "OAK", "CENTER", "2ND", "CANYON VIEW", "STATE", "ELM", "900 EAST"])
CITIES = np.array(["SPRINGVILLE", "MAPLETON", "PROVO", "OREM"])
DESCR = np.array(["WATER BASE", "WATER USAGE", "PAYMENT - THANK YOU", "LATE FEE ADJ", "SEWER"])
TYPES = np.array(["INVOICE", "INVOICE", "PAYMENT", "ADJUSTMENT", "INVOICE"])
CODES = np.array(["42", "42", "", "42", "300"])
SHORT_MSG = "Thank you for paying on time."
LONG_MSG = (
    "Water conservation notice: outdoor watering is limited to three days a week from May "
    "through September. Please check your irrigation timers and fix leaking sprinkler heads. "
    "The city council approved a change to the sewer base rate effective January 1; see the "
    "enclosed insert or visit the utility office for the new rate schedule and a calculator. "
    "Payments can be made online, by phone, or at the drop box outside city hall."
)  # about 450 characters: Custom8 + Custom9 at the default 255
HUGE_MSG = " ".join([LONG_MSG] * 4)  # about 1800 characters: more than five fields hold


def _s(values: np.ndarray | list) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _money(cents: np.ndarray) -> pa.Array:
    a = np.abs(cents)
    text = pc.binary_join_element_wise(_s(a // 100), pc.utf8_lpad(_s(a % 100), 2, "0"), ".")
    return pc.if_else(pa.array(cents < 0), pc.binary_join_element_wise("-", text, ""), text)


def _date(month: np.ndarray | int, day: np.ndarray, year: int = 2026) -> pa.Array:
    n = len(day)
    m = np.broadcast_to(np.asarray(month), (n,))
    return pc.binary_join_element_wise(
        pc.utf8_lpad(_s(m), 2, "0"), pc.utf8_lpad(_s(day), 2, "0"), _s(np.full(n, year)), "/"
    )


def _take(values: np.ndarray, idx: np.ndarray) -> pa.Array:
    return _s(values)[0:0] if len(idx) == 0 else pc.take(_s(values), pa.array(idx))


def build_chunk(start: int, count: int, rng: np.random.Generator) -> pa.Table:
    """Statements ``start .. start+count-1`` as a table of 5 rows each."""
    n = count * LINES
    stmt = np.repeat(np.arange(start, start + count), LINES)
    line = np.tile(np.arange(LINES), count)
    acct = pc.utf8_lpad(_s(stmt + 10_000_001), 8, "0")
    name = pc.binary_join_element_wise(_take(LAST, stmt % 9), _take(FIRST, (stmt // 9) % 10), ", ")
    addr1 = pc.binary_join_element_wise(
        _s(stmt % 9000 + 100), _take(STREETS, stmt % 8), pa.array(np.full(n, "ST")), " "
    )
    empty = pa.array(np.full(n, ""), pa.string())
    address2 = pc.if_else(pa.array(stmt % 7 == 0), pa.scalar("APT 3"), empty)
    city = _take(CITIES, stmt % 4)
    state = pa.array(np.full(n, "UT"))
    zipc = _s(84600 + stmt % 60)
    phone = pc.binary_join_element_wise(
        pa.array(np.full(n, "(801) 555-")), pc.utf8_lpad(_s(stmt % 10000), 4, "0"), ""
    )
    email = pc.binary_join_element_wise(
        pc.utf8_lower(_take(FIRST, (stmt // 9) % 10)), _s(stmt), pa.array(np.full(n, "@example.com")), ""
    )
    # money: per statement
    s_rng = rng.integers(0, 50_000, size=count)
    bfwd = s_rng - 5_000  # some credit balances forward
    charges = rng.integers(500, 9_000, size=(count, LINES))
    credits = np.zeros((count, LINES), dtype=np.int64)
    charges[:, 2] = 0
    credits[:, 2] = rng.integers(1_000, 20_000, size=count)  # payment
    charges[:, 3] = 0
    credits[:, 3] = rng.integers(0, 500, size=count)  # adjustment credit
    balance = bfwd + charges.sum(axis=1) - credits.sum(axis=1)
    ids = np.arange(start, start + count)
    balance = np.where(ids % 2000 == 1999, balance + 1000, balance)  # does not reconcile
    cust_bal = _money(np.repeat(balance, LINES))
    past_due = _money(np.repeat(np.maximum(bfwd - credits[:, 2], 0), LINES))
    msg = np.where(
        ids % 1000 == 500,
        HUGE_MSG,
        np.where(ids % 50 == 10, LONG_MSG, np.where(ids % 5 == 0, SHORT_MSG, "")),
    )
    line_day = np.array([3, 5, 12, 18, 20])[line]
    charge = charges.reshape(-1)
    credit = credits.reshape(-1)
    charge_txt = pc.if_else(pa.array(charge > 0), _money(charge), empty)
    credit_txt = pc.if_else(pa.array(credit > 0), _money(credit), empty)
    ref = pc.binary_join_element_wise(_s(stmt + 500_000), _s(line + 1), "-")
    qty = pc.if_else(pa.array(line == 1), _s((stmt % 40) + 1), pa.scalar("1.00"))
    cols = [
        acct,
        name,
        pc.if_else(pa.array(stmt % 11 == 0), pa.scalar("ATTN BILLING DEPT"), empty),
        addr1,
        address2,
        city,
        state,
        zipc,
        phone,
        email,
        _date(10, np.full(n, 25)),
        _date(11, np.full(n, 20)),
        cust_bal,
        cust_bal,
        past_due,
        _date(9, np.full(n, 25)),
        _money(np.repeat(bfwd, LINES)),
        _money(np.repeat(credits[:, 2], LINES)),
        _date(9, np.full(n, 26)),
        _date(10, np.full(n, 25)),
        _money(np.repeat(-credits[:, 2], LINES)),
        _money(np.repeat(-credits[:, 3], LINES)),
        _take(msg, np.repeat(np.arange(count), LINES)),
        empty,
        _s(stmt % 5),
        empty,
        empty,
        _date(10, line_day),
        _take(TYPES, line),
        ref,
        _take(CODES, line),
        _take(DESCR, line),
        qty,
        charge_txt,
        credit_txt,
        pc.if_else(pa.array(credit > 0), empty, _date(11, np.full(n, 20))),
    ]
    return pa.table(cols, names=HEADER)


def _csv_lines(table: pa.Table) -> pa.Array:
    """RFC 4180 records, quoting only the values that need it (as Caselle exports do)."""
    fields = []
    for col in table.columns:
        col = col.combine_chunks()
        needs = pc.match_substring_regex(col, '[,"\r\n]')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
        fields.append(pc.if_else(needs, quoted, col))
    record = pc.binary_join_element_wise(*fields, ",")
    return pc.binary_join_element_wise(record, pa.array(np.full(len(table), "\r\n")), "")


def write_extract(path: str | Path, n_statements: int, *, chunk: int = 100_000, seed: int = 7) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with path.open("wb") as fh:
        fh.write((",".join(HEADER) + "\r\n").encode())
        for start in range(0, n_statements, chunk):
            lines = _csv_lines(build_chunk(start, min(chunk, n_statements - start), rng))
            _validity, offsets_buf, data = lines.buffers()
            offsets = np.frombuffer(offsets_buf, dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
            fh.write(memoryview(data)[offsets[0] : offsets[-1]])
    return path


if __name__ == "__main__":
    out = write_extract(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    print(out, out.stat().st_size)
