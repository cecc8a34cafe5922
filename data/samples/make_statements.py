"""Regenerate data/samples/statements.csv and statements_cp1252.csv (run from the repo root).

The sample statement extract of Sample City Utilities: accounts 001001 .. 001050, one
row per activity line, statement-level columns repeated on every line (SPEC §2.1). Most
accounts are ordinary water/sewer/garbage bills; the ones listed in ``SPECIAL`` exercise
a rule each (docs/invoices.md has the table). Deterministic: same bytes every run.

    python data/samples/make_statements.py
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from caselle_ic.schemas.invoices import extract_names

HERE = Path(__file__).resolve().parent

#: The sample biller's header: the extract columns of schemas/statement_extract.csv, with the
#: two that data/samples/biller.toml maps through [extract].columns written as the biller does.
HEADER = ["Acct No", "Customer Name", *extract_names()[2:]]

FIRST = ["James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "Daniel", "Nancy"]
LAST = ["Anderson", "Baker", "Christensen", "Davis", "Evans", "Fowler", "Gardner", "Hansen", "Iverson"]
STREETS = ["Main St", "Center St", "Canyon View Dr", "400 North", "Maple Ln", "Orchard Way"]

NOTICE = (
    "Outdoor watering is limited to three days a week from May through September. Please check "
    "your irrigation timers and repair leaking sprinkler heads. The city council approved a change "
    "to the sewer base rate effective January 1; see the enclosed insert or visit the utility office "
    "for the new rate schedule."
)  # 341 characters: Custom8 and Custom9 at the default 255
HUGE = " ".join(
    [
        "ANNUAL WATER QUALITY REPORT: Sample City's drinking water met every federal and state "
        "standard last year. Copies of the full report are at city hall and the library."
    ]
    * 9
)  # about 1,500 characters: more than five fields of 255 hold

STATEMENT_DATE, DUE_DATE = "10/25/2026", "11/20/2026"
PERIOD = ("09/26/2026", "10/25/2026")
LAST_DATE = "09/25/2026"


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def ordinary(n: int) -> dict[str, Any]:
    """Account 0010nn: balance forward, a payment, then the month's charges."""
    first, last = FIRST[n % len(FIRST)], LAST[n % len(LAST)]
    bfwd = 4_000 + (n * 731) % 9_000
    usage = 1_250 + (n * 377) % 6_000
    lines = [
        ("10/03/2026", "PAYMENT", f"P{n:05d}", "", "Payment - thank you", "", "", money(bfwd), ""),
        ("10/25/2026", "INVOICE", f"{260_000 + n}", "42", "Water base rate", "1", "32.50", "", DUE_DATE),
        (
            "10/25/2026",
            "INVOICE",
            f"{260_000 + n}",
            "42",
            "Water usage",
            f"{usage / 250:.3f}",
            money(usage),
            "",
            DUE_DATE,
        ),
        ("10/25/2026", "INVOICE", f"{260_000 + n}", "42", "Sewer", "1.00", "28.00", "", DUE_DATE),
    ]
    charges = 3250 + usage + 2800
    return {
        "account": f"001{n:03d}",
        "name": f"{first} {last}",
        "attention": "",
        "address1": f"{100 + n * 7} {STREETS[n % len(STREETS)]}",
        "address2": "",
        "city": "Springville",
        "state": "UT",
        "zip": f"846{63 + n % 3:02d}",
        "phone": f"(801) 555-{1000 + n:04d}",
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "balance": charges,
        "bfwd": bfwd,
        "last_payment": money(bfwd),
        "payments": money(-bfwd),
        "adjustments": "0.00",
        "message": "Thank you for conserving water.",
        "udf": ("", f"ROUTE {n % 4 + 1}", "", ""),
        "lines": lines,
    }


def statements() -> list[dict[str, Any]]:
    out = {n: ordinary(n) for n in range(1, 51)}

    # 001002: amounts written as a spreadsheet would ($, thousands separators, parentheses),
    # dates in the other two accepted forms, quantity with trailing zeros.
    s = out[2]
    s["lines"] = [
        ("2026-10-25", "INVOICE", "260002", "42", "Irrigation meter", "2.500", "$1,234.50", "", "11/20/2026"),
        ("10/3/2026", "PAYMENT", "P00002", "", "Payment - thank you", "", "", "$40.00", ""),
    ]
    s["bfwd"], s["last_payment"], s["payments"] = 4_000, "$40.00", "(40.00)"
    s["balance"] = 123_450

    # 001003: lines out of date order in the extract (the file orders them by date; ties
    # keep extract order), and an ADJUSTMENT.
    s = out[3]
    s["lines"] = [
        ("10/25/2026", "INVOICE", "260003", "42", "Water base rate", "1", "32.50", "", DUE_DATE),
        ("10/03/2026", "PAYMENT", "P00003", "", "Payment - thank you", "", "", money(s["bfwd"]), ""),
        ("10/15/2026", "ADJUSTMENT", "A00003", "42", "Leak adjustment", "", "", "10.00", ""),
        ("10/25/2026", "INVOICE", "260003", "42", "Sewer", "1", "28.00", "", DUE_DATE),
    ]
    s["balance"] = 3250 + 2800 - 1000
    s["adjustments"] = "-10.00"

    # 001004: no INVOICE line; first line is an ADJUSTMENT with a category code
    # -> InvoiceNumber "A77004-10/2/2026", InvoiceTypeID 300.
    s = out[4]
    s["lines"] = [
        ("10/02/2026", "ADJUSTMENT", "A77004", "300", "Meter deposit refund applied", "", "", "25.00", ""),
        ("10/09/2026", "PAYMENT", "P00004", "42", "Payment - thank you", "", "", money(s["bfwd"]), ""),
    ]
    s["balance"] = -2_500  # credit balance
    s["adjustments"] = "-25.00"

    # 001005: payment-only statement: InvoiceNumber = ref + "-" + M/D/YYYY of the line;
    # the PAYMENT line's code is blanked in CustomField4 and InvoiceTypeID.
    s = out[5]
    s["lines"] = [
        ("10/12/2026", "PAYMENT", "P-77812", "42", "Payment - thank you", "", "", money(s["bfwd"]), "")
    ]
    s["balance"] = 0

    # 001006: no activity this period: one row with the line columns empty.
    s = out[6]
    s["lines"] = [("", "", "", "", "", "", "", "", "")]
    s["balance"] = s["bfwd"]
    s["payments"], s["last_payment"] = "0.00", ""

    # 001007: a notice that overflows Custom8 into Custom9.
    out[7]["message"] = NOTICE
    # 001008: a notice longer than all five message fields: truncated, named in the notes.
    out[8]["message"] = HUGE

    # 001009: credit balance (negative TotalAmountDue), paid more than owed.
    s = out[9]
    s["lines"] = [
        ("10/04/2026", "PAYMENT", "P00009", "", "Payment - thank you", "", "", "150.00", ""),
        ("10/25/2026", "INVOICE", "260009", "42", "Water base rate", "1", "32.50", "", DUE_DATE),
    ]
    s["balance"] = s["bfwd"] - 15_000 + 3_250
    s["bfwd"] = s["bfwd"]
    s["last_payment"], s["payments"] = "150.00", "-150.00"

    # 001010-001012: names with commas and quotes; an attention line; a message with a
    # line break and a tab (quoted in the CSV) that become spaces.
    out[10]["name"] = 'O\'Brien, Patrick "Pat"'
    out[10]["attention"] = "c/o Springville Property Mgmt, LLC"
    out[11]["name"] = "Smith, John & Mary"
    out[11]["address2"] = "Apt #4 | Rear"
    out[12]["name"] = '"Big Sky" Storage'
    out[12]["message"] = "Your meter will be replaced\r\non November 12.\tExpect a short outage."

    # 001013: rows of one statement not adjacent in the extract (see the ordering below).
    # 001017 / 001018 / 001019: account numbers with separators that clean to digits.
    out[17]["account"] = "00-1017"
    out[18]["account"] = "001.018"
    out[19]["account"] = "001 019"

    # -- statements that are quarantined (SPEC §3.5) --------------------------------
    # 001040: does not reconcile (the balance is 10.00 more than the lines add up to).
    out[40]["balance"] += 1_000
    # 001041: a negative charge.
    s = out[41]
    s["lines"] = [
        *s["lines"][:3],
        ("10/25/2026", "INVOICE", "260041", "42", "Sewer credit", "1", "-28.00", "", DUE_DATE),
    ]
    s["balance"] -= 5_600
    # 001042: statement-level values that differ between lines (a second due date).
    out[42]["due_conflict"] = "11/21/2026"
    # 001043: an impossible due date.
    out[43]["due"] = "13/45/2026"
    # 001044 written two ways that clean to the same AccountNumber: both quarantined.
    out[44]["twin"] = True
    # 001045: a line with no line_type.
    s = out[45]
    s["lines"] = [s["lines"][0], (*s["lines"][1][:1], "", *s["lines"][1][2:]), *s["lines"][2:]]
    return [out[n] for n in range(1, 51)]


def rows(stmt: dict[str, Any]) -> list[list[str]]:
    out = []
    for i, line in enumerate(stmt["lines"]):
        due = stmt.get("due", DUE_DATE)
        if stmt.get("due_conflict") and i == len(stmt["lines"]) - 1:
            due = stmt["due_conflict"]
        out.append(
            [
                stmt["account"],
                stmt["name"],
                stmt["attention"],
                stmt["address1"],
                stmt["address2"],
                stmt["city"],
                stmt["state"],
                stmt["zip"],
                stmt["phone"],
                stmt["email"],
                STATEMENT_DATE,
                due,
                money(stmt["balance"]),
                "",  # balance_due defaults to customer_balance
                money(max(stmt["bfwd"] - 4_000, 0)) if stmt["bfwd"] > 4_000 else "",
                LAST_DATE,
                money(stmt["bfwd"]),
                stmt["last_payment"],
                PERIOD[0],
                PERIOD[1],
                stmt["payments"],
                stmt["adjustments"],
                stmt["message"],
                *stmt["udf"],
                *line,
            ]
        )
    return out


def extract_rows() -> list[list[str]]:
    table = []
    held: list[list[str]] = []
    for stmt in statements():
        r = rows(stmt)
        if stmt["account"] == "001013":  # split: two lines now, the rest after 001014
            table += r[:2]
            held = r[2:]
            continue
        table += r
        if stmt["account"] == "001014":
            table += held
        if stmt.get("twin"):
            twin = dict(stmt, account="0010-44", name=stmt["name"] + " (old account)")
            table += rows(twin)
    return table


def write(path: Path, table: list[list[str]], encoding: str) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    w.writerows(table)
    path.write_bytes(buf.getvalue().encode(encoding))


def cp1252_rows() -> list[list[str]]:
    """A small Windows export: accented names as cp1252 bytes."""
    names = ["José Peña", "Zoë Müller", "François Lefèvre", "Ångström Åsa", "Dvořák Beth"]
    out = []
    for i, name in enumerate(names[:4], start=21):
        stmt = ordinary(i)
        stmt["name"] = name
        stmt["address1"] = f"{100 + i} Calle Año Nuevo"
        stmt["message"] = "Café hours: 8–5 (closed Nov 26)."
        out += rows(stmt)
    return out


if __name__ == "__main__":
    write(HERE / "statements.csv", extract_rows(), "utf-8")
    write(HERE / "statements_cp1252.csv", cp1252_rows(), "cp1252")
    print("wrote statements.csv and statements_cp1252.csv")
