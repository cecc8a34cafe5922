"""The payment export's rules, checked in vectorised code, give exactly the reasons the
declared pandera schema (built from the same rules) gives."""

from __future__ import annotations

import pandas as pd
from pandera.errors import SchemaErrors

from caselle_ic.payments.export import normalize_export
from caselle_ic.schemas.payments import payment_export_schema, prepare, row_reasons
from caselle_ic.tabular.csvin import read_text_csv
from caselle_ic.tabular.rules import failure_cases
from tests.payments.test_payment_export import G1, G2, G3, row, write_export

G5, G6, G7 = (f"00000000-0000-4000-8000-00000000000{k}" for k in (5, 6, 7))


def test_payment_rules_match_pandera(tmp_path):
    rows = [
        row(),
        row(payment_guid="not-a-guid", amount="-1.00", payment_date="yesterday"),
        row(payment_guid=G2, transaction_type="REFUND", original_payment_guid=""),
        row(payment_guid=G3, transaction_type="BOGUS", invoice_type_id="4x2", card_vendor=""),
        row(payment_guid=G1),  # identical repeat
        row(payment_guid=G2, amount="1.005", payment_type_id="11", obd_vendor=""),
        row(payment_guid="", account_number="", customer_name=""),
        # the GUID rule reads bytes; pandera runs the pattern: the same rows fail
        row(payment_guid=G3[:-1] + "g"),
        row(payment_guid=G3 + "0"),
        row(payment_guid=G3.replace("-", "_", 1)),
        row(payment_guid="\u00e9" * 18),
        row(payment_guid=G3, transaction_type="REFUND", original_payment_guid=G1[:-1] + "\u0661"),
        # whole numbers: ASCII digits only, at most nine
        row(payment_guid=G5, invoice_type_id="\u0661\u0662"),
        row(payment_guid=G6, invoice_type_id="1" * 10),
        row(payment_guid=G7, invoice_type_id="9" * 9),
    ]
    raw = read_text_csv(write_export(tmp_path, rows))
    checked = prepare(normalize_export(raw))
    fast = row_reasons(failure_cases(payment_export_schema(), checked))
    try:
        payment_export_schema().to_pandera().validate(checked, lazy=True)
        slow = pd.Series(dtype=object)
    except SchemaErrors as exc:
        slow = row_reasons(exc.failure_cases)
    assert len(fast) >= 5
    assert fast.to_dict() == slow.to_dict()
