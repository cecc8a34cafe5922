#!/usr/bin/env python3
"""The yardstick for the lockbox run's speed: the least work any implementation must do.

Usage: floor_lockbox.py EXPORT OUT_DIR

Mirrors ``../shared/bench/floor_invoices.py`` for SPEC §7: reads EXPORT (an IC payment
export, SPEC 2.2) with pyarrow as strings, multi-threaded, and writes the six lockbox
fields of every row (payment_date, invoice_type_id, payment_type_id, amount,
account_number, customer_name: as many records and about as many bytes as the lockbox
files) comma-delimited, quoted only where needed, CRLF, no header. Time it as a whole
process next to the lockbox run on the same export, in the same session, and quote the
ratio: absolute seconds move with the machine's load, the ratio much less.
"""

import csv
import os
import sys

import pyarrow as pa
import pyarrow.csv as pcsv

src, out_dir = sys.argv[1], sys.argv[2]
with open(src, newline="") as f:
    names = next(csv.reader(f))
table = pcsv.read_csv(
    src,
    convert_options=pcsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=False
    ),
)
fields = ["payment_date", "invoice_type_id", "payment_type_id", "amount", "account_number", "customer_name"]
opts = pcsv.WriteOptions(include_header=False, quoting_style="needed", eol="\r\n")
os.makedirs(out_dir, exist_ok=True)
with pa.OSFile(os.path.join(out_dir, "floor_PYMT.TXT"), "wb") as out:
    pcsv.write_csv(table.select(fields), out, opts)
