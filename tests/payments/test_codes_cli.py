"""``caselle-ic codes template`` and ``caselle-ic codes explain`` as a user runs them."""
# ruff: noqa: F811  (make_cfg is a fixture imported from paykit)

from __future__ import annotations

import json

from tests.conftest import SAMPLES, run_cli
from tests.payments.paykit import SEED_131, UNSET, make_cfg  # noqa: F401  (a fixture)


def test_codes_template_prints_the_go_forward_json():
    done = run_cli("codes", "template")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc == {
        "PaymentSettings": [
            {"PaymentTypeID": 2, "PaymentCode": 95},
            {"PaymentTypeID": 11, "PaymentCode": 96},
            {"PaymentTypeID": 1, "PaymentCode": 97, "CardVender": ["VISA", "MASTERCARD", "DISCOVER"]},
            {"PaymentTypeID": 1, "PaymentCode": 98, "CardVender": ["AMEX"]},
            {"PaymentTypeID": 15, "PaymentCode": 99},
        ]
    }


def test_codes_explain_visa_invoice_type_42():
    done = run_cli(
        "codes",
        "explain",
        "--config",
        str(SAMPLES / "biller.toml"),
        "--payment-type",
        "1",
        "--card-vendor",
        "VISA",
        "--invoice-type",
        "42",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Payment: payment type 1 (CC), card vendor VISA, invoice type 42"
    assert any(line.startswith("Winner: entry 1 ") for line in lines)
    fields = {
        line.split()[0] + " " + line.split()[1]: line.split()[2] for line in lines if line.startswith("  ")
    }
    assert fields["distribution code"] == "111"
    assert fields["payment code"] == "4"
    assert fields["GL activity"] == "0"
    assert fields["posting method"] == "DataPump"
    why = {line.split(":")[0].strip(): line for line in lines if line.startswith("  entry ")}
    assert set(why) == {f"entry {n}" for n in range(2, 9)}  # every other entry, once
    assert "names no vendor list while entry 1 does" in why["entry 2"]
    assert "PaymentTypeID 11 is not 1" in why["entry 3"]
    assert "names no InvoiceTypeID while entry 1 does" in why["entry 6"]
    assert "InvoiceTypeID 300 is not the payment's (42)" in why["entry 7"]


def test_codes_explain_venmo_uses_paypal_and_falls_back(tmp_path):
    done = run_cli(
        "codes",
        "explain",
        "--config",
        str(SAMPLES / "biller.toml"),
        "--payment-type",
        "17",
        "--invoice-type",
        "7",
    )
    assert done.returncode == 0, done.stderr
    assert "No entry has PaymentTypeID 17, so the PayPal (15) entries apply." in done.stdout
    assert "Winner: none; the fallback, setting 64, gives every code" in done.stdout
    assert "payment code       99  (setting 64)" in done.stdout


def test_codes_explain_tie_and_invalid_json(make_cfg):
    cfg = make_cfg(
        {
            "PaymentSettings": [
                {"PaymentTypeID": 2, "PaymentCode": 41, "InvoiceTypeID": 42},
                {"PaymentTypeID": 2, "PaymentCode": 42, "InvoiceTypeID": 42},
            ]
        }
    )
    done = run_cli(
        "codes", "explain", "--config", str(cfg.source), "--payment-type", "2", "--invoice-type", "42"
    )
    assert done.returncode == 0, done.stderr
    assert "entry 2: matches and is as specific as entry 1, which comes first" in done.stdout

    bad = make_cfg('{"PaymentSettings": [}')
    done = run_cli("codes", "explain", "--config", str(bad.source), "--payment-type", "2")
    assert done.returncode == 0, done.stderr
    assert "WARNING: setting 131 is not valid JSON" in done.stdout
    assert "code_rule          fallback 65" in done.stdout


def test_codes_explain_errors_exit_2(make_cfg):
    done = run_cli("codes", "explain", "--config", str(SAMPLES / "biller.toml"), "--payment-type", "3")
    assert done.returncode == 2
    assert "--payment-type 3 is not a payment type" in done.stderr
    done = run_cli(
        "codes",
        "explain",
        "--config",
        str(SAMPLES / "biller.toml"),
        "--payment-type",
        "1",
        "--card-vendor",
        "DINERS",
    )
    assert done.returncode == 2 and "DINERS" in done.stderr
    cfg = make_cfg({"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": -4}]})
    done = run_cli("codes", "explain", "--config", str(cfg.source), "--payment-type", "1")
    assert done.returncode == 2
    assert "setting 131 entry 1 PaymentCode is -4; it must be a non-negative integer" in done.stderr
    cfg = make_cfg(s65=UNSET)
    done = run_cli(
        "codes", "explain", "--config", str(cfg.source), "--payment-type", "2", "--invoice-type", "7"
    )
    assert done.returncode == 2
    assert "setting 65 (ach_code) is not set" in done.stderr


def test_explain_warns_when_a_file_code_breaks_the_lockbox_limits(make_cfg):
    from caselle_ic.payments.codes_explain import explain_text

    doc = {"PaymentSettings": [{"PaymentTypeID": 2, "PaymentCode": 777, "PostingMethod": "File"}]}
    text = explain_text(make_cfg(doc), 2)
    assert "posting method     File  (entry 1 PostingMethod)" in text
    assert "these payments would be quarantined" in text
    assert "quarantined" not in explain_text(make_cfg(), 2, invoice_type=42)  # DataPump: no limit
