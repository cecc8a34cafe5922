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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


@dataclass
class _Verdict:
    entry: CodeEntry
    status: str  # "winner" | "outranked" | "excluded"
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


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


# -- resolution -------------------------------------------------------------------------------


def _describe(ptype: int, invoice_type: int | None, card: str | None, obd: str | None) -> str:
    parts = [f"payment type {ptype} ({PAYMENT_TYPES.get(ptype, '?')})"]
    if card:
        parts.append(f"card vendor {card}")
    if obd:
        parts.append(f"OBD vendor {obd}")
    parts.append(f"invoice type {invoice_type}" if invoice_type is not None else "no invoice type")
    return ", ".join(parts)


def _candidate_type(codes: PaymentCodeConfig, ptype: int) -> int:
    if ptype in PAYPAL_BRANDS and not any(e.payment_type == ptype for e in codes.entries):
        return PAYPAL
    return ptype


def _judge(
    codes: PaymentCodeConfig, ptype: int, invoice_type: int | None, card: str | None, obd: str | None
) -> tuple[list[_Verdict], int]:
    """Every entry with its verdict for one payment key (rules 1-3)."""
    ctype = _candidate_type(codes, ptype)
    verdicts: list[_Verdict] = []
    matching: list[_Verdict] = []
    for e in codes.entries:
        v = _Verdict(e, "excluded")
        if e.payment_type != ctype:
            v.why = f"PaymentTypeID {e.payment_type} is not {ctype}"
            if ctype != ptype:
                v.why += f" (the PayPal entries apply to {PAYMENT_TYPES[ptype]})"
        elif e.invoice_type is not None and e.invoice_type != invoice_type:
            theirs = invoice_type if invoice_type is not None else "none"
            v.why = f"InvoiceTypeID {e.invoice_type} is not the payment's ({theirs})"
        elif e.card_vendors is not None and (card or "") not in e.card_vendors:
            listed = json.dumps(list(e.card_vendors))
            v.why = f"CardVender {listed} does not list {card or 'the payment (no card vendor)'}"
        elif e.obd_vendors is not None and (obd or "") not in e.obd_vendors:
            listed = json.dumps(list(e.obd_vendors))
            v.why = f"OBDVender {listed} does not list {obd or 'the payment (no OBD vendor)'}"
        else:
            v.status = "outranked"
            matching.append(v)
        verdicts.append(v)
    if matching:
        best = max(matching, key=lambda v: (v.entry.specificity, -v.entry.number))
        best.status = "winner"
        for v in matching:
            if v is best:
                continue
            if v.entry.specificity == best.entry.specificity:
                v.why = f"matches and is as specific as {best.entry.label}, which comes first"
            elif v.entry.specificity[0] < best.entry.specificity[0]:
                v.why = f"matches, but names no InvoiceTypeID while {best.entry.label} does"
            else:
                v.why = f"matches, but names no vendor list while {best.entry.label} does"
    return verdicts, ctype


def resolve_one(
    codes: PaymentCodeConfig,
    payment_type: int,
    invoice_type: int | None = None,
    card_vendor: str | None = None,
    obd_vendor: str | None = None,
) -> Resolution:
    """Resolve the codes of one payment key. ConfigError when a needed fallback is bad."""
    card = (card_vendor or "").strip().upper() or None
    obd = (obd_vendor or "").strip().upper() or None
    verdicts, ctype = _judge(codes, payment_type, invoice_type, card, obd)
    winner = next((v.entry for v in verdicts if v.status == "winner"), None)
    fb_setting = codes.fallback_setting(payment_type)
    fb = codes.fallbacks.get(fb_setting)
    malformed = codes.fallback_problems.get(fb_setting)
    needs_codes = winner is None or winner.payment_code is None or winner.distribution_code is None
    if fb is None and (needs_codes or malformed):
        what = _describe(payment_type, invoice_type, card, obd)
        if malformed:
            problem, reason = malformed, f"a payment with {what} needs it"
        elif winner is None:
            problem = f"{Setting(fb_setting).label} is not set"
            reason = f"a payment with {what} matches no {S131} entry and needs it"
        else:
            problem = f"{Setting(fb_setting).label} is not set"
            missing = "PaymentCode" if winner.payment_code is None else "DistributionCode"
            reason = f"{S131} {winner.label} wins for a payment with {what} but has no {missing}"
        raise ConfigError(
            f'{problem}; {reason}. Write it as distribution|payment|GL activity, for example "101|99|0"',
            file=codes.source,
            setting=Setting(fb_setting).label,
        )
    fb_label = f"setting {fb_setting}"
    if winner is None:
        assert fb is not None
        return Resolution(
            fb.distribution_code,
            fb.payment_code,
            fb.gl_activity,
            codes.default_method,
            f"fallback {fb_setting}",
            fb_label,
            fb_label,
            None,
            ctype,
        )
    dc = winner.distribution_code if winner.distribution_code is not None else fb.distribution_code  # type: ignore[union-attr]
    pc = winner.payment_code if winner.payment_code is not None else fb.payment_code  # type: ignore[union-attr]
    gl = fb.gl_activity if fb is not None else 0
    entry_label = f"{S131} {winner.label}"
    return Resolution(
        dc,
        pc,
        gl,
        winner.posting_method or codes.default_method,
        winner.label,
        entry_label if winner.distribution_code is not None else fb_label,
        entry_label if winner.payment_code is not None else fb_label,
        winner,
        ctype,
    )


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    def text(col: str) -> pd.Series:
        if col not in frame.columns:
            return pd.Series("", index=frame.index, dtype="string")
        return frame[col].astype("string").fillna("").str.strip().str.upper()

    itype = (
        frame["invoice_type_id"]
        if "invoice_type_id" in frame.columns
        else pd.Series(pd.NA, index=frame.index)
    )
    return pd.DataFrame(
        {
            "pt": pd.to_numeric(frame["payment_type_id"]).astype("int64"),
            "it": pd.to_numeric(itype.replace("", pd.NA)).astype("Int64").fillna(-1).astype("int64"),
            "cv": text("card_vendor"),
            "ov": text("obd_vendor"),
        },
        index=frame.index,
    )


def resolve_codes(frame: pd.DataFrame, codes: PaymentCodeConfig) -> pd.DataFrame:
    """Add the §5 result columns to a payments frame (one distinct key resolved once).

    Needs ``payment_type_id``; uses ``invoice_type_id``, ``card_vendor`` and ``obd_vendor``
    when present. Rows whose ``transaction_type`` is not PAYMENT (reversals take the codes
    of their original) get <NA>. Adds ``distribution_code``, ``payment_code``,
    ``gl_activity`` (Int64), ``posting_method``, ``code_rule`` (``entry N``, 1-based, or
    ``fallback 64`` / ``fallback 65``), ``distribution_source`` and ``payment_source``
    (``setting 131 entry N`` or ``setting 64`` / ``setting 65``: what to fix).
    """
    out = frame.copy()
    n = len(frame)
    if "transaction_type" in frame.columns:
        is_payment = (frame["transaction_type"].astype("string").fillna("") == "PAYMENT").to_numpy()
    else:
        is_payment = np.ones(n, dtype=bool)
    keys = _key_frame(frame.loc[is_payment])
    gid = keys.groupby(["pt", "it", "cv", "ov"], sort=False).ngroup().to_numpy()
    first = keys.assign(_g=gid).drop_duplicates("_g").set_index("_g").sort_index()
    resolved = [
        resolve_one(codes, int(r.pt), None if r.it < 0 else int(r.it), r.cv or None, r.ov or None)
        for r in first.itertuples()
    ]
    ints = {
        "distribution_code": np.array([r.distribution_code for r in resolved], dtype="int64"),
        "payment_code": np.array([r.payment_code for r in resolved], dtype="int64"),
        "gl_activity": np.array([r.gl_activity for r in resolved], dtype="int64"),
    }
    texts = {
        "posting_method": [r.posting_method for r in resolved],
        "code_rule": [r.code_rule for r in resolved],
        "distribution_source": [r.distribution_source for r in resolved],
        "payment_source": [r.payment_source for r in resolved],
    }
    missing = ~is_payment
    for col, arr in ints.items():
        values = np.zeros(n, dtype="int64")
        values[is_payment] = arr[gid] if len(gid) else 0
        out[col] = pd.Series(pd.arrays.IntegerArray(values, missing.copy()), index=frame.index)
    # the texts go through Arrow: one take per column, no Python string per row
    positions = np.zeros(n, dtype=np.int64)
    if len(gid):
        positions[is_payment] = gid
    index = pa.array(positions, mask=missing)
    for col, vals in texts.items():
        table = pa.array(vals, type=pa.large_string())
        taken = pc.take(table, index) if len(vals) else pa.nulls(n, pa.large_string())
        out[col] = pd.Series(pd.arrays.ArrowStringArray(taken), index=frame.index, dtype="string")
    return out


# -- template and explain -------------------------------------------------------------------


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
    verdicts, ctype = _judge(codes, ptype, itype, card, obd)

    out = [f"Payment: {_describe(ptype, itype, card, obd)}"]
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
