"""SPEC §5: payment codes from setting 131, falling back to settings 64/65."""
# ruff: noqa: F811  (make_cfg is a fixture imported from paykit)

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caselle_ic.config.model import load_config
from caselle_ic.errors import ConfigError
from caselle_ic.payments.codes import (
    CARD_VENDORS,
    OBD_VENDORS,
    PAYMENT_TYPES,
    CodeEntry,
    Fallback,
    PaymentCodeConfig,
    load_payment_codes,
    parse_fallback,
)
from caselle_ic.payments.codes_explain import template_json
from caselle_ic.payments.codes_resolve import resolve_codes, resolve_one
from tests.conftest import SAMPLES
from tests.payments.paykit import UNSET, make_cfg  # noqa: F401  (a fixture)

# -- the seed's worked example ---------------------------------------------------------------

WORKED_EXAMPLE = [
    # (payment type, card vendor, obd vendor, invoice type) -> (payment code, distribution code, rule)
    ((1, "VISA", None, 42), (4, 111, "entry 1")),
    ((1, "MASTERCARD", None, 42), (7, 444, "entry 2")),
    ((1, "VISA", None, 7), (123, 456, "entry 6")),
    ((11, None, "FISERV", 42), (777, 555, "entry 3")),
    ((17, None, None, 42), (777, 555, "entry 4")),  # Venmo: PayPal's entry
    ((2, None, None, 42), (777, 555, "entry 5")),
    ((2, None, None, 7), (98, 101, "fallback 65")),  # setting 65 = 101|98|0
]


@pytest.mark.parametrize(("key", "expected"), WORKED_EXAMPLE, ids=[str(k) for k, _ in WORKED_EXAMPLE])
def test_worked_example_one(make_cfg, key, expected):
    codes = load_payment_codes(make_cfg())
    ptype, card, obd, itype = key
    r = resolve_one(codes, ptype, itype, card, obd)
    assert (r.payment_code, r.distribution_code, r.code_rule) == expected
    assert r.gl_activity == 0
    assert r.posting_method == "DataPump"


def test_worked_example_vectorized(make_cfg):
    codes = load_payment_codes(make_cfg())
    frame = pd.DataFrame(
        {
            "payment_type_id": [k[0] for k, _ in WORKED_EXAMPLE],
            "card_vendor": pd.Series([k[1] or "" for k, _ in WORKED_EXAMPLE], dtype="string"),
            "obd_vendor": pd.Series([k[2] or "" for k, _ in WORKED_EXAMPLE], dtype="string"),
            "invoice_type_id": pd.array([k[3] for k, _ in WORKED_EXAMPLE], dtype="Int64"),
        }
    )
    out = resolve_codes(frame, codes)
    got = list(zip(out["payment_code"], out["distribution_code"], out["code_rule"], strict=True))
    assert got == [e for _, e in WORKED_EXAMPLE]
    assert (out["gl_activity"] == 0).all()


def test_sample_biller_routes_invoice_type_300_to_file():
    cfg = load_config(SAMPLES / "biller.toml")
    codes = load_payment_codes(cfg)
    r = resolve_one(codes, 1, 300, "VISA")
    assert (r.distribution_code, r.payment_code, r.posting_method, r.code_rule) == (
        300,
        97,
        "File",
        "entry 7",
    )
    r = resolve_one(codes, 2, 300)
    assert (r.distribution_code, r.payment_code, r.posting_method) == (300, 95, "File")
    # PayPal for invoice type 300 has no entry of its own: fallback 64, Data Pump
    r = resolve_one(codes, 15, 300)
    assert (r.distribution_code, r.payment_code, r.posting_method, r.code_rule) == (
        101,
        99,
        "DataPump",
        "fallback 64",
    )


# -- rule 1: candidates, PayPal brands --------------------------------------------------------


@pytest.mark.parametrize("brand", [16, 17])
def test_paypal_brands_use_paypal_entries_when_they_have_none(make_cfg, brand):
    codes = load_payment_codes(make_cfg({"PaymentSettings": [{"PaymentTypeID": 15, "PaymentCode": 55}]}))
    r = resolve_one(codes, brand, 9)
    assert (r.payment_code, r.distribution_code, r.code_rule) == (55, 101, "entry 1")


def test_paypal_brand_with_own_entry_does_not_fall_through_to_paypal(make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 15, "PaymentCode": 55},
            {"PaymentTypeID": 17, "PaymentCode": 66, "InvoiceTypeID": 42},
        ]
    }
    codes = load_payment_codes(make_cfg(doc))
    assert resolve_one(codes, 17, 42).payment_code == 66
    # Venmo has an entry of its own, so PayPal's does not apply even when Venmo's misses
    r = resolve_one(codes, 17, 7)
    assert (r.payment_code, r.code_rule) == (99, "fallback 64")
    # PayPal Credit has none of its own: PayPal's entry
    assert resolve_one(codes, 16, 7).payment_code == 55


def test_other_payment_types_never_borrow(make_cfg):
    codes = load_payment_codes(make_cfg({"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": 5}]}))
    assert resolve_one(codes, 15).code_rule == "fallback 64"
    assert resolve_one(codes, 2).code_rule == "fallback 65"


# -- rule 2: matching -------------------------------------------------------------------------


def test_invoice_type_absent_matches_every_invoice_type(make_cfg):
    codes = load_payment_codes(make_cfg({"PaymentSettings": [{"PaymentTypeID": 2, "PaymentCode": 12}]}))
    assert {resolve_one(codes, 2, it).payment_code for it in (None, 0, 7, 42)} == {12}


def test_invoice_type_named_must_equal(make_cfg):
    codes = load_payment_codes(
        make_cfg({"PaymentSettings": [{"PaymentTypeID": 2, "PaymentCode": 12, "InvoiceTypeID": 42}]})
    )
    assert resolve_one(codes, 2, 42).payment_code == 12
    assert resolve_one(codes, 2, 7).code_rule == "fallback 65"
    assert resolve_one(codes, 2, None).code_rule == "fallback 65"


def test_card_vendor_list_must_contain_the_vendor(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": 98, "CardVender": ["AMEX", "DISCOVER"]}]}
    codes = load_payment_codes(make_cfg(doc))
    assert resolve_one(codes, 1, None, "AMEX").payment_code == 98
    assert resolve_one(codes, 1, None, "discover").payment_code == 98  # vendors compare case-blind
    assert resolve_one(codes, 1, None, "VISA").code_rule == "fallback 64"
    assert resolve_one(codes, 1, None, None).code_rule == "fallback 64"  # no vendor: not contained


def test_obd_vendor_list_must_contain_the_vendor(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 11, "PaymentCode": 96, "OBDVender": ["RPPS"]}]}
    codes = load_payment_codes(make_cfg(doc))
    assert resolve_one(codes, 11, None, None, "RPPS").payment_code == 96
    assert resolve_one(codes, 11, None, None, "FISERV").code_rule == "fallback 65"


def test_vendor_absent_matches_every_vendor(make_cfg):
    codes = load_payment_codes(make_cfg({"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": 97}]}))
    assert {resolve_one(codes, 1, None, v).payment_code for v in (*CARD_VENDORS, None)} == {97}


# -- rule 3: specificity and order -------------------------------------------------------------


def test_invoice_type_outranks_vendor(make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 1, "PaymentCode": 10, "CardVender": ["VISA"]},
            {"PaymentTypeID": 1, "PaymentCode": 20, "InvoiceTypeID": 42},
        ]
    }
    codes = load_payment_codes(make_cfg(doc))
    assert resolve_one(codes, 1, 42, "VISA").payment_code == 20
    assert resolve_one(codes, 1, 7, "VISA").payment_code == 10


def test_vendor_outranks_no_vendor_at_equal_invoice_type(make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 1, "PaymentCode": 30},
            {"PaymentTypeID": 1, "PaymentCode": 31, "CardVender": ["VISA"]},
        ]
    }
    codes = load_payment_codes(make_cfg(doc))
    assert resolve_one(codes, 1, None, "VISA").payment_code == 31  # later but more specific
    assert resolve_one(codes, 1, None, "AMEX").payment_code == 30


def test_both_named_outranks_either(make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 1, "PaymentCode": 1, "InvoiceTypeID": 42},
            {"PaymentTypeID": 1, "PaymentCode": 2, "CardVender": ["VISA"]},
            {"PaymentTypeID": 1, "PaymentCode": 3, "InvoiceTypeID": 42, "CardVender": ["VISA"]},
        ]
    }
    assert resolve_one(load_payment_codes(make_cfg(doc)), 1, 42, "VISA").payment_code == 3


def test_tie_goes_to_the_earlier_entry(make_cfg):
    doc = {
        "PaymentSettings": [
            {"PaymentTypeID": 2, "PaymentCode": 41, "InvoiceTypeID": 42},
            {"PaymentTypeID": 2, "PaymentCode": 42, "InvoiceTypeID": 42},
        ]
    }
    r = resolve_one(load_payment_codes(make_cfg(doc)), 2, 42)
    assert (r.payment_code, r.code_rule) == (41, "entry 1")


# -- rule 4: fallback ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ptype", "setting"), [(1, 64), (15, 64), (16, 64), (17, 64), (2, 65), (11, 65)])
def test_fallback_setting_per_payment_type(make_cfg, ptype, setting):
    codes = load_payment_codes(make_cfg(UNSET, s64="201|91|5", s65="202|92|6"))
    r = resolve_one(codes, ptype)
    expected = (201, 91, 5) if setting == 64 else (202, 92, 6)
    assert (r.distribution_code, r.payment_code, r.gl_activity) == expected
    assert r.code_rule == f"fallback {setting}"


def test_missing_payment_code_comes_from_fallback(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 1, "DistributionCode": 700}]}
    r = resolve_one(load_payment_codes(make_cfg(doc)), 1)
    assert (r.distribution_code, r.payment_code, r.code_rule) == (700, 99, "entry 1")
    assert (r.distribution_source, r.payment_source) == ("setting 131 entry 1", "setting 64")


def test_missing_distribution_code_comes_from_fallback(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 2, "PaymentCode": 95}]}
    r = resolve_one(load_payment_codes(make_cfg(doc)), 2)
    assert (r.distribution_code, r.payment_code) == (101, 95)
    assert (r.distribution_source, r.payment_source) == ("setting 65", "setting 131 entry 1")


def test_gl_activity_is_the_fallback_third_part(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 2, "PaymentCode": 95, "DistributionCode": 5}]}
    assert resolve_one(load_payment_codes(make_cfg(doc, s65="101|98|99")), 2).gl_activity == 99
    assert resolve_one(load_payment_codes(make_cfg(doc, s65="101|98")), 2).gl_activity == 0
    assert resolve_one(load_payment_codes(make_cfg(doc, s65="101|98|")), 2).gl_activity == 0
    # the winner supplies both codes and 65 is unset: GL activity 0, no error
    assert resolve_one(load_payment_codes(make_cfg(doc, s65=UNSET)), 2).gl_activity == 0


@pytest.mark.parametrize("text", [UNSET, "", "   "])
def test_setting_131_missing_or_empty_uses_fallback_silently(make_cfg, text):
    codes = load_payment_codes(make_cfg(text))
    assert codes.json_state == "unset"
    assert codes.warnings == ()
    assert resolve_one(codes, 1, 42, "VISA").code_rule == "fallback 64"


@pytest.mark.parametrize(
    "text",
    [
        '{"PaymentSettings": [ {"PaymentTypeID": 1,, } ]}',
        "not json",
        '["PaymentSettings"]',
        '{"Payments": []}',
    ],
)
def test_invalid_json_is_one_warning_and_fallback(make_cfg, caplog, text):
    with caplog.at_level(logging.WARNING, logger="caselle_ic.payments.codes"):
        codes = load_payment_codes(make_cfg(text))
    assert codes.json_state == "invalid"
    assert len(codes.warnings) == 1
    assert "setting 131" in codes.warnings[0]
    assert len([r for r in caplog.records if "setting 131" in r.getMessage()]) == 1
    frame = pd.DataFrame({"payment_type_id": [1, 1, 2, 11, 15] * 200})
    out = resolve_codes(frame, codes)  # a thousand payments, still one warning
    assert set(out["code_rule"]) == {"fallback 64", "fallback 65"}
    assert len([r for r in caplog.records if "setting 131" in r.getMessage()]) == 1


def test_empty_payment_settings_list_is_valid(make_cfg):
    codes = load_payment_codes(make_cfg('{"PaymentSettings": []}'))
    assert (codes.json_state, codes.warnings) == ("ok", ())
    assert resolve_one(codes, 11).code_rule == "fallback 65"


# -- rule 5: configuration errors -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, "abc", 1.5, True, "4a", "", 2**31])
@pytest.mark.parametrize("key", ["PaymentCode", "DistributionCode", "InvoiceTypeID"])
def test_code_not_a_non_negative_integer_is_config_error(make_cfg, key, bad):
    doc = {"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": 1}, {"PaymentTypeID": 2, key: bad}]}
    with pytest.raises(ConfigError) as err:
        load_payment_codes(make_cfg(doc))
    assert err.value.setting == "setting 131"
    assert "entry 2" in str(err.value) and key in str(err.value)


def test_codes_as_digit_strings_are_accepted(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": "1", "PaymentCode": "04", "DistributionCode": " 111 "}]}
    r = resolve_one(load_payment_codes(make_cfg(doc)), 1)
    assert (r.payment_code, r.distribution_code) == (4, 111)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"PaymentCode": 4}, "no PaymentTypeID"),
        ({"PaymentTypeID": 3}, "not a payment type"),
        ({"PaymentTypeID": 1, "InvoiceType": 42}, "unknown key 'InvoiceType'"),
        ({"PaymentTypeID": 1, "CardVender": ["VISA", "DINERS"]}, "DINERS"),
        ({"PaymentTypeID": 1, "CardVender": []}, "CardVender"),
        ({"PaymentTypeID": 11, "OBDVender": ["CHECKFREE"]}, "CHECKFREE"),
        ({"PaymentTypeID": 1, "PostingMethod": "Email"}, "PostingMethod"),
        ({"PaymentTypeID": 1, "paymentcode": 4, "PaymentCode": 5}, "twice"),
    ],
)
def test_bad_entry_is_config_error_naming_setting_131(make_cfg, entry, words):
    with pytest.raises(ConfigError) as err:
        load_payment_codes(make_cfg({"PaymentSettings": [entry]}))
    assert err.value.setting == "setting 131"
    assert "entry 1" in str(err.value) and words in str(err.value)


def test_entry_that_is_not_an_object_is_config_error(make_cfg):
    with pytest.raises(ConfigError, match="entry 2 is 5, not an object"):
        load_payment_codes(make_cfg('{"PaymentSettings": [{"PaymentTypeID": 1}, 5]}'))


def test_keys_are_case_blind_and_vendor_spelling_accepted(make_cfg):
    doc = {
        "PaymentSettings": [
            {"paymenttypeid": 1, "PAYMENTCODE": 9, "CardVendor": ["visa"], "postingMethod": "file"}
        ]
    }
    r = resolve_one(load_payment_codes(make_cfg(doc)), 1, None, "VISA")
    assert (r.payment_code, r.posting_method) == (9, "File")


def test_missing_fallback_needed_is_config_error_naming_it(make_cfg):
    codes = load_payment_codes(make_cfg(s65=UNSET))
    assert resolve_one(codes, 2, 42).payment_code == 777  # not needed: fine
    with pytest.raises(ConfigError) as err:
        resolve_one(codes, 2, 7)
    assert err.value.setting is not None
    assert err.value.setting.startswith("setting 65")
    assert "is not set" in str(err.value)
    frame = pd.DataFrame({"payment_type_id": [2, 2], "invoice_type_id": pd.array([42, 7], dtype="Int64")})
    with pytest.raises(ConfigError, match="setting 65"):
        resolve_codes(frame, codes)


def test_winner_without_payment_code_needs_fallback(make_cfg):
    codes = load_payment_codes(
        make_cfg({"PaymentSettings": [{"PaymentTypeID": 1, "DistributionCode": 3}]}, s64=UNSET)
    )
    with pytest.raises(ConfigError, match=r"entry 1 wins .* has no PaymentCode"):
        resolve_one(codes, 1)


@pytest.mark.parametrize("text", ["101", "101|99|0|1", "a|99|0", "101|-9|0", "101||0", "101|99|x"])
def test_malformed_fallback_is_config_error_when_used(make_cfg, text):
    codes = load_payment_codes(make_cfg(UNSET, s64=text))
    assert resolve_one(codes, 2).code_rule == "fallback 65"  # 65 is fine; 64 not used
    with pytest.raises(ConfigError) as err:
        resolve_one(codes, 1)
    assert err.value.setting is not None
    assert err.value.setting.startswith("setting 64")
    assert repr(text) in str(err.value)


def test_parse_fallback_forms():
    assert parse_fallback(64, "101|99|0") == (Fallback(64, 101, 99, 0), None)
    assert parse_fallback(65, " 7 | 8 | 9 ") == (Fallback(65, 7, 8, 9), None)
    assert parse_fallback(64, None) == (None, None)
    assert parse_fallback(64, "x")[1] is not None


# -- posting method ---------------------------------------------------------------------------------


def test_posting_method_default_depends_on_setting_11(make_cfg):
    assert resolve_one(load_payment_codes(make_cfg()), 1).posting_method == "DataPump"
    codes = load_payment_codes(make_cfg(s11=UNSET))
    assert codes.default_method == "File"
    assert resolve_one(codes, 1).posting_method == "File"
    assert resolve_one(codes, 1, 42, "VISA").posting_method == "File"


def test_entry_posting_method_overrides_default(make_cfg):
    doc = {"PaymentSettings": [{"PaymentTypeID": 1, "PaymentCode": 9, "PostingMethod": "DataPump"}]}
    assert resolve_one(load_payment_codes(make_cfg(doc, s11=UNSET)), 1).posting_method == "DataPump"


# -- vectorized frame ---------------------------------------------------------------------------------


def test_resolve_codes_skips_reversals_and_keeps_rows(make_cfg):
    codes = load_payment_codes(make_cfg())
    frame = pd.DataFrame(
        {
            "transaction_type": pd.Series(["PAYMENT", "REFUND", "PAYMENT", "ACH_REJECT"], dtype="string"),
            "payment_type_id": [1, 1, 2, 2],
            "invoice_type_id": pd.array([42, 42, None, 7], dtype="Int64"),
            "card_vendor": pd.Series(["VISA", "VISA", "", ""], dtype="string"),
        }
    ).set_axis([10, 11, 12, 13])
    out = resolve_codes(frame, codes)
    assert list(out.index) == [10, 11, 12, 13]
    assert out["payment_code"].astype(object).where(out["payment_code"].notna(), None).tolist() == [
        4,
        None,
        98,
        None,
    ]
    assert out["code_rule"].astype(object).where(out["code_rule"].notna(), None).tolist() == [
        "entry 1",
        None,
        "fallback 65",
        None,
    ]
    assert str(out["distribution_code"].dtype) == "Int64"


def test_resolve_codes_matches_resolve_one_on_the_sample(make_cfg):
    cfg = load_config(SAMPLES / "biller.toml")
    codes = load_payment_codes(cfg)
    from caselle_ic.payments.export import read_payment_export

    valid = read_payment_export(SAMPLES / "payments.csv", cfg).payments
    out = resolve_codes(valid, codes)
    for row in out.itertuples():
        itype = None if pd.isna(row.invoice_type_id) else int(row.invoice_type_id)
        r = resolve_one(codes, row.payment_type_id, itype, row.card_vendor, row.obd_vendor)
        assert (
            row.distribution_code,
            row.payment_code,
            row.gl_activity,
            row.posting_method,
            row.code_rule,
        ) == (
            r.distribution_code,
            r.payment_code,
            r.gl_activity,
            r.posting_method,
            r.code_rule,
        )


def test_resolve_codes_empty_frame(make_cfg):
    out = resolve_codes(
        pd.DataFrame({"payment_type_id": pd.Series([], dtype="int64")}), load_payment_codes(make_cfg())
    )
    assert len(out) == 0 and "payment_code" in out.columns


# -- template --------------------------------------------------------------------------------------


def test_template_is_the_go_forward_configuration(make_cfg):
    text = template_json()
    json.loads(text)
    codes = load_payment_codes(make_cfg(text, s64="10|1|0", s65="20|2|0"))
    expected = {
        (2, None, None): 95,
        (11, None, "FISERV"): 96,
        (11, None, "RPPS"): 96,
        (1, "VISA", None): 97,
        (1, "MASTERCARD", None): 97,
        (1, "DISCOVER", None): 97,
        (1, "AMEX", None): 98,
        (15, None, None): 99,
        (16, None, None): 99,
        (17, None, None): 99,
    }
    got = {k: resolve_one(codes, k[0], 42, k[1], k[2]).payment_code for k in expected}
    assert got == expected
    # distribution codes come from 64 / 65
    assert resolve_one(codes, 1, None, "AMEX").distribution_code == 10
    assert resolve_one(codes, 2).distribution_code == 20


# -- property: never raises on a well-formed config, codes come from config or fallback ------------

_codes = st.integers(min_value=0, max_value=2**31 - 1)
_ptype = st.sampled_from(sorted(PAYMENT_TYPES))
_entry = st.fixed_dictionaries(
    {"PaymentTypeID": _ptype},
    optional={
        "PaymentCode": st.one_of(_codes, _codes.map(str)),
        "DistributionCode": st.one_of(_codes, _codes.map(str)),
        "InvoiceTypeID": st.sampled_from([0, 7, 42, 300]),
        "CardVender": st.lists(st.sampled_from(CARD_VENDORS), min_size=1, max_size=4, unique=True),
        "OBDVender": st.lists(st.sampled_from(OBD_VENDORS), min_size=1, max_size=2, unique=True),
        "PostingMethod": st.sampled_from(["DataPump", "File", "datapump"]),
    },
)
_payment = st.tuples(
    _ptype,
    st.one_of(st.none(), st.sampled_from([0, 7, 42, 300, 5])),
    st.one_of(st.none(), st.sampled_from(CARD_VENDORS)),
    st.one_of(st.none(), st.sampled_from(OBD_VENDORS)),
)


def _config(
    entries: list[dict[str, Any]], fb64: tuple[int, int, int], fb65: tuple[int, int, int]
) -> PaymentCodeConfig:
    from caselle_ic.payments.codes import parse_setting_131

    parsed, state, warnings = parse_setting_131(json.dumps({"PaymentSettings": entries}))
    return PaymentCodeConfig(
        entries=parsed,
        fallbacks={64: Fallback(64, *fb64), 65: Fallback(65, *fb65)},
        fallback_problems={},
        default_method="DataPump",
        default_method_reason="test",
        warnings=warnings,
        json_state=state,
    )


def _oracle(
    entries: tuple[CodeEntry, ...], p: tuple[int, int | None, str | None, str | None]
) -> CodeEntry | None:
    """Rules 1-3 written out independently: filter, then sort by (specificity desc, order)."""
    ptype, itype, card, obd = p
    own = [e for e in entries if e.payment_type == ptype]
    if ptype in (16, 17) and not own:
        own = [e for e in entries if e.payment_type == 15]
    keep = [
        e
        for e in own
        if (e.invoice_type is None or e.invoice_type == itype)
        and (e.card_vendors is None or card in e.card_vendors)
        and (e.obd_vendors is None or obd in e.obd_vendors)
    ]
    keep.sort(key=lambda e: (-(e.invoice_type is not None), -(e.names_vendor), e.number))
    return keep[0] if keep else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(_entry, max_size=8),
    payments=st.lists(_payment, min_size=1, max_size=30),
    fb64=st.tuples(_codes, _codes, _codes),
    fb65=st.tuples(_codes, _codes, _codes),
)
def test_resolution_never_raises_and_codes_come_from_config(entries, payments, fb64, fb65):
    codes = _config(entries, fb64, fb65)
    frame = pd.DataFrame(
        {
            "payment_type_id": [p[0] for p in payments],
            "invoice_type_id": pd.array([p[1] for p in payments], dtype="Int64"),
            "card_vendor": pd.Series([p[2] or "" for p in payments], dtype="string"),
            "obd_vendor": pd.Series([p[3] or "" for p in payments], dtype="string"),
        }
    )
    out = resolve_codes(frame, codes)
    assert len(out) == len(payments)
    for p, row in zip(payments, out.itertuples(), strict=True):
        fb = codes.fallbacks[64 if p[0] in (1, 15, 16, 17) else 65]
        allowed_pc = {e.payment_code for e in codes.entries if e.payment_code is not None} | {fb.payment_code}
        allowed_dc = {e.distribution_code for e in codes.entries if e.distribution_code is not None} | {
            fb.distribution_code
        }
        assert row.payment_code in allowed_pc
        assert row.distribution_code in allowed_dc
        assert row.gl_activity == fb.gl_activity
        expected = _oracle(codes.entries, p)
        if expected is None:
            assert row.code_rule == f"fallback {fb.setting}"
            assert (row.distribution_code, row.payment_code) == (fb.distribution_code, fb.payment_code)
            assert row.posting_method == "DataPump"
        else:
            assert row.code_rule == expected.label
            assert row.payment_code == (
                expected.payment_code if expected.payment_code is not None else fb.payment_code
            )
            assert row.distribution_code == (
                expected.distribution_code if expected.distribution_code is not None else fb.distribution_code
            )
            assert row.posting_method == (expected.posting_method or "DataPump")
