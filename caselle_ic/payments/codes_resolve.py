"""Payment codes applied (SPEC §5, rules 1-5 in :mod:`caselle_ic.payments.codes`): one
payment key judged against every setting-131 entry (:func:`judge`, :func:`resolve_one`),
and a whole payments frame resolved once per distinct key (:func:`resolve_codes`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.settings import Setting
from caselle_ic.errors import ConfigError
from caselle_ic.payments.codes import (
    PAYMENT_TYPES,
    PAYPAL,
    PAYPAL_BRANDS,
    S131,
    CodeEntry,
    PaymentCodeConfig,
    Resolution,
)
from caselle_ic.tabular.frames import rows_where
from caselle_ic.tabular.values import arrow_strings


@dataclass
class Verdict:
    """One entry's part in resolving one payment key, and why."""

    entry: CodeEntry
    status: str  # "winner" | "outranked" | "excluded"
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def describe_key(ptype: int, invoice_type: int | None, card: str | None, obd: str | None) -> str:
    """A payment key in words, for errors and ``codes explain``."""
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


def judge(
    codes: PaymentCodeConfig, ptype: int, invoice_type: int | None, card: str | None, obd: str | None
) -> tuple[list[Verdict], int]:
    """Every entry with its verdict for one payment key (rules 1-3)."""
    ctype = _candidate_type(codes, ptype)
    verdicts: list[Verdict] = []
    matching: list[Verdict] = []
    for e in codes.entries:
        v = Verdict(e, "excluded")
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
    verdicts, ctype = judge(codes, payment_type, invoice_type, card, obd)
    winner = next((v.entry for v in verdicts if v.status == "winner"), None)
    fb_setting = codes.fallback_setting(payment_type)
    fb = codes.fallbacks.get(fb_setting)
    malformed = codes.fallback_problems.get(fb_setting)
    needs_codes = winner is None or winner.payment_code is None or winner.distribution_code is None
    if fb is None and (needs_codes or malformed):
        what = describe_key(payment_type, invoice_type, card, obd)
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


def _text_codes(frame: pd.DataFrame, col: str) -> tuple[np.ndarray, list[str]]:
    """A vendor column stripped and upper-cased, as (code per row, distinct values): the
    text work is done once per distinct value (a handful), not per row."""
    n = len(frame)
    if col not in frame.columns:
        return np.zeros(n, dtype=np.int64), [""]
    encoded = pc.dictionary_encode(arrow_strings(frame[col].astype("string").fillna("")).combine_chunks())
    cleaned = pc.utf8_upper(pc.utf8_trim_whitespace(encoded.dictionary)).to_pylist()
    merged, distinct = pd.factorize(np.array(cleaned, dtype=object))
    codes = np.asarray(merged, dtype=np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes, [str(v) for v in distinct]


def _invoice_types(values: pd.Series) -> np.ndarray:
    """Invoice type IDs as int64, -1 where there is none."""
    if values.dtype != "int64":
        numbers = pd.to_numeric(values.replace("", pd.NA) if values.dtype != "Int64" else values)
        values = numbers.astype("Int64").fillna(-1)
    return np.asarray(values.to_numpy(dtype=np.int64), dtype=np.int64)


#: (payment type, invoice type, card vendor, OBD vendor): what resolve_one is given
Key = tuple[int, int | None, str | None, str | None]


def _key_groups(
    frame: pd.DataFrame,
) -> tuple[np.ndarray, list[tuple[int, int | None, str | None, str | None]]]:
    """(group of each row, the key of each group) over (payment type, invoice type, card
    vendor, OBD vendor); groups are numbered in order of first appearance."""
    n = len(frame)
    pt = pd.to_numeric(frame["payment_type_id"]).to_numpy(dtype=np.int64)
    it = _invoice_types(frame["invoice_type_id"]) if "invoice_type_id" in frame.columns else np.full(n, -1)
    cv, cards = _text_codes(frame, "card_vendor")
    ov, obds = _text_codes(frame, "obd_vendor")
    pt_codes, pts = pd.factorize(pt)
    it_codes, its = pd.factorize(it)
    combined = ((pt_codes.astype(np.int64) * len(its) + it_codes) * len(cards) + cv) * len(obds) + ov
    gid, firsts = pd.factorize(combined)
    keys: list[Key] = []
    for k in np.asarray(firsts, dtype=np.int64).tolist():
        k, o = divmod(k, len(obds))
        k, c = divmod(k, len(cards))
        p, i = divmod(k, len(its))
        itype = int(its[i])
        keys.append((int(pts[p]), None if itype < 0 else itype, cards[c] or None, obds[o] or None))
    return np.asarray(gid, dtype=np.int64), keys


def resolve_codes(frame: pd.DataFrame, codes: PaymentCodeConfig) -> pd.DataFrame:
    """Add the §5 result columns to a payments frame (one distinct key resolved once).

    Needs ``payment_type_id``; uses ``invoice_type_id``, ``card_vendor`` and ``obd_vendor``
    when present. Rows whose ``transaction_type`` is not PAYMENT (reversals take the codes
    of their original) get <NA>. Adds ``distribution_code``, ``payment_code``,
    ``gl_activity`` (Int64), ``posting_method``, ``code_rule`` (``entry N``, 1-based, or
    ``fallback 64`` / ``fallback 65``), ``distribution_source`` and ``payment_source``
    (``setting 131 entry N`` or ``setting 64`` / ``setting 65``: what to fix).
    """
    out = frame.copy(deep=False)  # copy-on-write: the input's columns are shared, not copied
    n = len(frame)
    if "transaction_type" in frame.columns:
        is_payment = (frame["transaction_type"].astype("string").fillna("") == "PAYMENT").to_numpy(
            dtype=bool, na_value=False
        )
    else:
        is_payment = np.ones(n, dtype=bool)
    gid, keys = _key_groups(rows_where(frame, is_payment))
    resolved = [resolve_one(codes, *key) for key in keys]
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
