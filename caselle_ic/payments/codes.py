"""Payment codes (SPEC §5): advanced setting 131, falling back to settings 64 / 65.

Setting 131 holds ``{"PaymentSettings": [entry, ...]}``. For one payment:

1. Candidates are the entries whose ``PaymentTypeID`` equals the payment's; PayPal Credit
   (16) and Venmo (17) with no entry of their own use the PayPal (15) entries.
2. Keep those whose ``InvoiceTypeID`` is absent or equal to the payment's, whose
   ``CardVender`` is absent or lists the payment's card vendor, and whose ``OBDVender`` is
   absent or lists its OBD vendor.
3. The most specific wins: naming ``InvoiceTypeID`` outranks not naming it; then naming a
   vendor list outranks not naming one; still tied, the earlier entry wins.
4. The fallback is setting 64 (``distribution|payment|GL activity``) for payment types 1,
   15, 16, 17 and 65 for 2 and 11. It fills a missing ``PaymentCode`` /
   ``DistributionCode`` of the winner, gives every code when nothing wins, and always
   gives the GL activity number (its third part; 0 when absent or when the setting is
   unset and nothing else is needed from it).
5. The posting method is the winner's ``PostingMethod``, else ``DataPump`` when setting 11
   is set and ``File`` when it is not.

This module parses the settings (:func:`load_payment_codes`);
:mod:`caselle_ic.payments.codes_resolve` applies the rules to payments and
:mod:`caselle_ic.payments.codes_explain` explains them (``caselle-ic codes``).

Resolution is vectorized the way a small rule table should be: the payments are grouped by
their distinct (payment type, invoice type, card vendor, OBD vendor) keys, each distinct
key is resolved once in Python, and the answers are broadcast back to every row.

Configuration problems (decided, see docs/payments.md):

* setting 131 unset or blank: fallback for everything, silently (that is a valid setup);
* 131 not valid JSON, or not ``{"PaymentSettings": [...]}``: fallback for everything and
  ONE warning for the run (``PaymentCodeConfig.warnings``), never silent;
* an entry that is not an object, has an unknown key (typos must not widen an entry),
  lacks ``PaymentTypeID``, or has a code that is not a non-negative integer:
  :class:`ConfigError` naming setting 131 and the entry;
* a fallback setting that is malformed, or missing while a payment needs it:
  :class:`ConfigError` naming the setting, raised when a payment needs it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from caselle_ic.config.model import BillerConfig
from caselle_ic.config.settings import Setting
from caselle_ic.errors import ConfigError

log = logging.getLogger(__name__)

PAYMENT_TYPES: dict[int, str] = {
    1: "CC",
    2: "ACH",
    11: "OBD",
    15: "PayPal",
    16: "PayPal Credit",
    17: "Venmo",
}
CARD_VENDORS = ("VISA", "DISCOVER", "MASTERCARD", "AMEX")
OBD_VENDORS = ("FISERV", "RPPS")
PAYPAL = 15
PAYPAL_BRANDS = (16, 17)
ACH_FALLBACK_TYPES = (2, 11)  # setting 65
POSTING_METHODS = {"datapump": "DataPump", "file": "File"}
INT_MAX = 2**31 - 1  # codes are GraphQL Int

#: Canonical entry keys; keys are matched case-insensitively, and the seed's spelling
#: "Vender" as well as "Vendor" is accepted.
_KEYS = {
    "paymenttypeid": "PaymentTypeID",
    "paymentcode": "PaymentCode",
    "distributioncode": "DistributionCode",
    "invoicetypeid": "InvoiceTypeID",
    "cardvender": "CardVender",
    "cardvendor": "CardVender",
    "obdvender": "OBDVender",
    "obdvendor": "OBDVender",
    "postingmethod": "PostingMethod",
}

S131 = f"setting {int(Setting.PAYMENT_CODES_JSON)}"


@dataclass(frozen=True)
class CodeEntry:
    """One validated entry of setting 131. ``number`` is 1-based, as ``codes explain`` shows."""

    number: int
    payment_type: int
    payment_code: int | None = None
    distribution_code: int | None = None
    invoice_type: int | None = None
    card_vendors: tuple[str, ...] | None = None
    obd_vendors: tuple[str, ...] | None = None
    posting_method: str | None = None
    text: str = ""

    @property
    def label(self) -> str:
        return f"entry {self.number}"

    @property
    def names_vendor(self) -> bool:
        return self.card_vendors is not None or self.obd_vendors is not None

    @property
    def specificity(self) -> tuple[int, int]:
        return (int(self.invoice_type is not None), int(self.names_vendor))


@dataclass(frozen=True)
class Fallback:
    """Setting 64 or 65 parsed: ``distribution|payment|GL activity``."""

    setting: int
    distribution_code: int
    payment_code: int
    gl_activity: int


@dataclass(frozen=True)
class PaymentCodeConfig:
    entries: tuple[CodeEntry, ...]
    fallbacks: dict[int, Fallback]
    fallback_problems: dict[int, str]
    default_method: str
    default_method_reason: str
    warnings: tuple[str, ...] = ()
    json_state: str = "ok"  # ok | unset | invalid
    source: str = ""

    def fallback_setting(self, payment_type: int) -> int:
        return 65 if payment_type in ACH_FALLBACK_TYPES else 64


@dataclass(frozen=True)
class Resolution:
    distribution_code: int
    payment_code: int
    gl_activity: int
    posting_method: str
    code_rule: str
    distribution_source: str
    payment_source: str
    winner: CodeEntry | None
    candidates_from: int  # the PaymentTypeID whose entries were candidates


# -- parsing --------------------------------------------------------------------------------


def _code(value: Any, *, what: str, setting: str, file: str) -> int:
    """A non-negative integer (a JSON number or a string of digits), else ConfigError."""
    if isinstance(value, bool):
        ok, n = False, -1
    elif isinstance(value, int):
        ok, n = value >= 0, value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        ok, n = True, int(value.strip())
    else:
        ok, n = False, -1
    if not ok or n > INT_MAX:
        raise ConfigError(
            f"{what} is {json.dumps(value)}; it must be a non-negative integer", file=file, setting=setting
        )
    return n


def _vendors(value: Any, allowed: tuple[str, ...], *, what: str, file: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise ConfigError(
            f"{what} is {json.dumps(value)}; write a list such as {json.dumps(list(allowed[:2]))} "
            "or leave the key out to match every vendor",
            file=file,
            setting=S131,
        )
    out = tuple(v.strip().upper() for v in items)
    unknown = [v for v in out if v not in allowed]
    if unknown:
        raise ConfigError(
            f"{what} lists {', '.join(unknown)}; known vendors are {', '.join(allowed)}",
            file=file,
            setting=S131,
        )
    return out


def _entry(number: int, raw: Any, file: str) -> CodeEntry:
    where = f"{S131} entry {number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is {json.dumps(raw)}, not an object", file=file, setting=S131)
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        canon = _KEYS.get(str(key).strip().lower())
        if canon is None:
            raise ConfigError(
                f"{where} has the unknown key {key!r}; known keys are PaymentTypeID, PaymentCode, "
                "DistributionCode, InvoiceTypeID, CardVender, OBDVender, PostingMethod",
                file=file,
                setting=S131,
            )
        if canon in fields:
            raise ConfigError(f"{where} names {canon} twice", file=file, setting=S131)
        if value is not None:
            fields[canon] = value
    if "PaymentTypeID" not in fields:
        raise ConfigError(f"{where} has no PaymentTypeID (it is required)", file=file, setting=S131)
    ptype = _code(fields["PaymentTypeID"], what=f"{where} PaymentTypeID", setting=S131, file=file)
    if ptype not in PAYMENT_TYPES:
        known = ", ".join(f"{k} {v}" for k, v in PAYMENT_TYPES.items())
        raise ConfigError(
            f"{where} PaymentTypeID {ptype} is not a payment type ({known})", file=file, setting=S131
        )

    def opt_code(key: str) -> int | None:
        return _code(fields[key], what=f"{where} {key}", setting=S131, file=file) if key in fields else None

    method = None
    if "PostingMethod" in fields:
        pm = fields["PostingMethod"]
        method = POSTING_METHODS.get(pm.strip().lower()) if isinstance(pm, str) else None
        if method is None:
            raise ConfigError(
                f'{where} PostingMethod is {json.dumps(pm)}; use "DataPump" or "File"',
                file=file,
                setting=S131,
            )
    return CodeEntry(
        number=number,
        payment_type=ptype,
        payment_code=opt_code("PaymentCode"),
        distribution_code=opt_code("DistributionCode"),
        invoice_type=opt_code("InvoiceTypeID"),
        card_vendors=(
            _vendors(fields["CardVender"], CARD_VENDORS, what=f"{where} CardVender", file=file)
            if "CardVender" in fields
            else None
        ),
        obd_vendors=(
            _vendors(fields["OBDVender"], OBD_VENDORS, what=f"{where} OBDVender", file=file)
            if "OBDVender" in fields
            else None
        ),
        posting_method=method,
        text=json.dumps(raw, separators=(", ", ": ")),
    )


def parse_fallback(setting: int, text: str | None) -> tuple[Fallback | None, str | None]:
    """Setting 64/65 -> (Fallback, None); (None, None) when unset; (None, problem) when malformed."""
    label = Setting(setting).label
    if text is None or not text.strip():
        return None, None
    parts = [p.strip() for p in text.strip().split("|")]
    if len(parts) == 3 and parts[2] == "":
        parts = parts[:2]
    if len(parts) not in (2, 3) or not all(p.isdigit() and p.isascii() for p in parts):
        return None, (
            f"{label} is {text!r}; write it as distribution|payment|GL activity with non-negative "
            'integers, for example "101|99|0"'
        )
    nums = [int(p) for p in parts]
    if any(n > INT_MAX for n in nums):
        return None, f"{label} is {text!r}; a code is larger than {INT_MAX}"
    return Fallback(setting, nums[0], nums[1], nums[2] if len(nums) == 3 else 0), None


def parse_setting_131(text: str | None, file: str = "") -> tuple[tuple[CodeEntry, ...], str, tuple[str, ...]]:
    """Setting 131 -> (entries, state, warnings). state is ``ok``, ``unset`` or ``invalid``."""
    if text is None or not text.strip():
        return (), "unset", ()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            (),
            "invalid",
            (
                f"{S131} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); every "
                "payment uses the fallback codes of settings 64/65 until it is fixed",
            ),
        )
    except RecursionError:  # json recurses per nesting level: invalid JSON here (SPEC §5)
        return (
            (),
            "invalid",
            (
                f"{S131} is not valid JSON (nested too deeply); every payment uses the fallback "
                "codes of settings 64/65 until it is fixed",
            ),
        )
    settings = None
    if isinstance(doc, dict):
        for k, v in doc.items():
            if str(k).strip().lower() == "paymentsettings":
                settings = v
    if not isinstance(settings, list):
        return (
            (),
            "invalid",
            (
                f'{S131} is JSON but not {{"PaymentSettings": [...]}}; every payment uses the fallback '
                "codes of settings 64/65 until it is fixed",
            ),
        )
    return tuple(_entry(i, raw, file) for i, raw in enumerate(settings, start=1)), "ok", ()


def load_payment_codes(cfg: BillerConfig) -> PaymentCodeConfig:
    """Parse settings 131, 64 and 65 of a biller. Warnings (invalid JSON) are logged once
    here and returned in ``warnings`` for the run's notes."""
    file = str(cfg.source)
    entries, state, warnings = parse_setting_131(cfg.get(Setting.PAYMENT_CODES_JSON), file)
    fallbacks: dict[int, Fallback] = {}
    problems: dict[int, str] = {}
    for s in (Setting.CC_CODE, Setting.ACH_CODE):
        fb, problem = parse_fallback(int(s), cfg.get(s))
        if fb is not None:
            fallbacks[int(s)] = fb
        if problem is not None:
            problems[int(s)] = problem
    if cfg.get(Setting.PAYMENTS_URL):
        method, why = "DataPump", f"default: {Setting.PAYMENTS_URL.label} is set"
    else:
        method, why = "File", f"default: {Setting.PAYMENTS_URL.label} is not set"
    for w in warnings:
        log.warning("%s: %s", file, w)
    return PaymentCodeConfig(
        entries=entries,
        fallbacks=fallbacks,
        fallback_problems=problems,
        default_method=method,
        default_method_reason=why,
        warnings=warnings,
        json_state=state,
        source=file,
    )
