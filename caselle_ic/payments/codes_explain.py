"""The payment codes for people (``caselle-ic codes``): the go-forward setting-131 template,
and how one payment resolves, with why every other entry lost."""

from __future__ import annotations

import json

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import ConfigError
from caselle_ic.payments.codes import (
    CARD_VENDORS,
    OBD_VENDORS,
    PAYMENT_TYPES,
    PAYPAL,
    S131,
    load_payment_codes,
)
from caselle_ic.payments.codes_resolve import describe_key, judge, resolve_one

GO_FORWARD = (
    {"PaymentTypeID": 2, "PaymentCode": 95},
    {"PaymentTypeID": 11, "PaymentCode": 96},
    {"PaymentTypeID": 1, "PaymentCode": 97, "CardVender": ["VISA", "MASTERCARD", "DISCOVER"]},
    {"PaymentTypeID": 1, "PaymentCode": 98, "CardVender": ["AMEX"]},
    {"PaymentTypeID": 15, "PaymentCode": 99},
)


def template_json() -> str:
    """The go-forward setting-131 JSON (seed): 95 ACH/EFT, 96 OBD, 97 Visa/MC/Discover,
    98 Amex, 99 PayPal brands (PayPal Credit and Venmo use the PayPal entry). Distribution
    codes are left out, so they come from settings 64/65; add ``"DistributionCode"`` to an
    entry to route it elsewhere."""
    lines = ",\n".join("  " + json.dumps(e, separators=(", ", ": ")) for e in GO_FORWARD)
    return '{"PaymentSettings": [\n' + lines + "\n]}"


def _parse_arg_int(value: int | str | None, what: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"{what} {value!r} is not a non-negative whole number")
    return int(text)


def explain_text(
    cfg: BillerConfig,
    payment_type: int | str,
    card_vendor: str | None = None,
    obd_vendor: str | None = None,
    invoice_type: int | str | None = None,
) -> str:
    """A readable account of how one payment resolves: the winner, the codes, the posting
    method, and for every other entry why it lost."""
    ptype = _parse_arg_int(payment_type, "--payment-type")
    if ptype not in PAYMENT_TYPES:
        known = ", ".join(f"{k} {v}" for k, v in PAYMENT_TYPES.items())
        raise ConfigError(f"--payment-type {payment_type} is not a payment type ({known})")
    itype = _parse_arg_int(invoice_type, "--invoice-type")
    card = (card_vendor or "").strip().upper() or None
    obd = (obd_vendor or "").strip().upper() or None
    if card and card not in CARD_VENDORS:
        raise ConfigError(f"--card-vendor {card_vendor} is not one of {', '.join(CARD_VENDORS)}")
    if obd and obd not in OBD_VENDORS:
        raise ConfigError(f"--obd-vendor {obd_vendor} is not one of {', '.join(OBD_VENDORS)}")
    codes = load_payment_codes(cfg)
    res = resolve_one(codes, ptype, itype, card, obd)
    verdicts, ctype = judge(codes, ptype, itype, card, obd)

    out = [f"Payment: {describe_key(ptype, itype, card, obd)}"]
    if codes.json_state == "unset":
        out.append(f"{S131} is not set: every payment uses the fallback codes.")
    elif codes.json_state == "invalid":
        out += [f"WARNING: {w}" for w in codes.warnings]
    else:
        out.append(f"{S131}: {len(codes.entries)} entr{'y' if len(codes.entries) == 1 else 'ies'}")
    if ctype != ptype:
        out.append(f"No entry has PaymentTypeID {ptype}, so the PayPal ({PAYPAL}) entries apply.")
    fb_setting = codes.fallback_setting(ptype)
    if res.winner is not None:
        out.append(f"Winner: {res.winner.label} {res.winner.text}")
    else:
        out.append(f"Winner: none; the fallback, setting {fb_setting}, gives every code")
    gl_src = (
        f"setting {fb_setting}, third part"
        if fb_setting in codes.fallbacks
        else f"setting {fb_setting} unset"
    )
    method_src = (
        f"{res.winner.label} PostingMethod"
        if res.winner is not None and res.winner.posting_method
        else codes.default_method_reason
    )
    out += [
        f"  distribution code  {res.distribution_code}  ({res.distribution_source})",
        f"  payment code       {res.payment_code}  ({res.payment_source})",
        f"  GL activity        {res.gl_activity}  ({gl_src})",
        f"  posting method     {res.posting_method}  ({method_src})",
        f"  code_rule          {res.code_rule}",
    ]
    if res.posting_method == "File" and (res.distribution_code > 9999 or res.payment_code > 99):
        out.append(
            "  NOTE: the lockbox file holds distribution codes up to 9999 and payment codes up to 99;"
            " these payments would be quarantined"
        )
    others = [v for v in verdicts if v.status != "winner"]
    if others:
        out.append("Other entries:")
        out += [f"  {v.entry.label}: {v.why}  {v.entry.text}" for v in others]
    return "\n".join(out)
