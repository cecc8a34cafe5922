"""Paperless sync (SPEC §8, §2.3): IC's paperless change log -> Caselle.

For each account only its latest change counts; Caselle gets
``customer_send_paper_invoice_update(customerNumber, sendPaperStatement = not paperless)``
through endpoint setting 14 (failing over to 111 with 112/113). Each change is sent once:
the ledger records it, so a rerun of the same log sends nothing.

Rules the spec leaves open (see docs/caselle-connect.md, "Decisions"):

* ``changed_at`` without an offset is the biller's local time; changes are compared in UTC.
  Two changes of one account at the same instant: the later line of the log wins.
* A non-numeric account is quarantined. An account with an invalid ``paperless`` or
  ``changed_at`` value on any line is held back whole (all its lines quarantined): sending
  its other lines could send a stale choice.
* A change older than one already sent for that account is not sent (it would undo the
  newer one) and is counted as ``stale``.
* The mutation sets a value, so sending it again is harmless: a change whose answer was
  lost is simply sent again, and a crash between sending and recording only means the
  next run sends that batch again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.connect.client import CaselleClient
from caselle_ic.errors import CaselleAPIError, FatalAPIError
from caselle_ic.result import PaperlessCount, RunResult
from caselle_ic.store.ledger import Ledger, biller_key, ledger_url_for, open_ledger, utc_text
from caselle_ic.tabular.csvin import LINE, read_text_csv
from caselle_ic.tabular.output import REASON, write_rejects

log = logging.getLogger(__name__)

KIND = "paperless-sync"
COLUMNS = ("account_number", "paperless", "changed_at")
BATCH_SIZE = 50
#: Largest customerNumber a GraphQL Int can carry.
MAX_CUSTOMER_NUMBER = 2**31 - 1

_TRUE = ("true", "y", "yes", "1")
_FALSE = ("false", "n", "no", "0")
_ISO = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
    r"(?P<offset>Z|[+-]\d{2}:?\d{2})?\Z"
)


def parse_paperless(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``true/false``, ``Y/N``, ``1/0`` (and ``yes/no``), any case -> boolean; bad mask."""
    v = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[v.isin(_TRUE).fillna(False)] = True
    out[v.isin(_FALSE).fillna(False)] = False
    return out, out.isna()


def parse_changed_at(s: pd.Series, tz: Any) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 date-times -> UTC ``datetime64``; without an offset, biller local time.

    Bad mask covers unparseable values and local times that do not exist or are
    ambiguous (the DST change): those need an offset to mean one instant.
    """
    v = s.astype("string").str.strip()
    parts = v.str.extract(_ISO)
    matched = v.str.match(_ISO).fillna(False).astype(bool)
    aware = matched & parts["offset"].notna()
    naive = matched & parts["offset"].isna()
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(v[aware], format="ISO8601", utc=True, errors="coerce").astype(
            "datetime64[us, UTC]"
        )
    if naive.any():
        local = pd.to_datetime(v[naive], format="ISO8601", errors="coerce")
        out[naive] = (
            local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            .dt.tz_convert("UTC")
            .astype("datetime64[us, UTC]")
        )
    return out, out.isna()


def prepare_changes(frame: pd.DataFrame, tz: Any) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(latest change per account, quarantined rows with a reason, superseded count).

    The latest frame has ``customer_number`` (int), ``account`` (its digits as text, the
    ledger key), ``paperless``, ``send_paper``, ``changed_at`` (UTC text) and ``_line``.
    """
    acct = frame["account_number"].astype("string").str.strip()
    numeric = acct.str.fullmatch(r"\d+").fillna(False).astype(bool)
    too_long = numeric & (acct.str.lstrip("0").str.len() > 10)
    number = pd.to_numeric(acct.where(numeric & ~too_long), errors="coerce").astype("Int64")
    too_big = numeric & (too_long | (number > MAX_CUSTOMER_NUMBER).fillna(False))
    paperless, bad_flag = parse_paperless(frame["paperless"])
    changed, bad_time = parse_changed_at(frame["changed_at"], tz)

    reason = pd.Series("", index=frame.index, dtype="string")
    reason = reason.mask(bad_time, "changed_at is not an ISO 8601 date-time (or is ambiguous local time)")
    reason = reason.mask(bad_flag, "paperless must be true/false, Y/N or 1/0")
    reason = reason.mask(too_big, "account_number is too large for a Caselle customer number")
    reason = reason.mask(~numeric, "account_number is not numeric (a Caselle customer number is digits)")
    own_bad = reason != ""

    # Hold back every line of an account that has an invalid line.
    held_numbers = number[own_bad & numeric & ~too_big].dropna().unique()
    first_bad_line = (
        frame.loc[own_bad & numeric & ~too_big].assign(_n=number).groupby("_n")[LINE].min()
        if len(held_numbers)
        else pd.Series(dtype="int64")
    )
    held = ~own_bad & number.isin(held_numbers).fillna(False).astype(bool)
    if held.any():
        lines = number[held].map(first_bad_line).astype("Int64").astype("string")
        reason[held] = "not sent: line " + lines + " of the same account is invalid"

    quarantined = frame.loc[reason != ""].assign(**{REASON: reason[reason != ""]})
    good = frame.loc[reason == ""].assign(
        customer_number=number[reason == ""].astype("int64"),
        paperless=paperless[reason == ""].astype(bool),
        _changed=changed[reason == ""],
    )
    good = good.sort_values(["customer_number", "_changed", LINE], kind="stable")
    latest = good.drop_duplicates("customer_number", keep="last")
    superseded = len(good) - len(latest)
    latest = pd.DataFrame(
        {
            "account_number": latest["account_number"],
            "customer_number": latest["customer_number"],
            "account": latest["customer_number"].astype("string"),
            "paperless": latest["paperless"],
            "send_paper": ~latest["paperless"],
            "changed_at": latest["_changed"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype("string"),
            LINE: latest[LINE],
        }
    ).sort_values(LINE, kind="stable")
    return latest.reset_index(drop=True), quarantined, superseded


def run_paperless_sync(
    log: str | Path,
    config: str | Path | BillerConfig,
    ledger_url: str | None = None,
    *,
    out_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    client_options: dict[str, Any] | None = None,
) -> RunResult:
    """Send the latest paperless change of each account to Caselle, once.

    Quarantined lines go to ``<out_dir>/rejects/<log stem>.rejects.csv`` (default
    ``out_dir``: ``[paths].outbox``); the result's exit status is 1 when there are any.
    """
    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    log_path = Path(log)
    frame = read_text_csv(
        log_path,
        encoding=cfg.extract.encoding,
        column_map=cfg.extract.columns,
        required=COLUMNS,
        known=COLUMNS,
        what="paperless change log",
    )
    latest, quarantined, superseded = prepare_changes(frame, cfg.tz)
    biller = biller_key(cfg)
    result = RunResult(kind=KIND, biller=cfg.name, inputs=[log_path])

    ledger = open_ledger(ledger_url_for(cfg, ledger_url))
    run_id = ledger.start_run(biller, KIND, log_path)
    counts: dict[str, int] = {
        PaperlessCount.ROWS: len(frame),
        PaperlessCount.ACCOUNTS: int(latest["customer_number"].nunique()),
    }
    try:
        to_send, already, stale = _not_yet_sent(ledger, biller, latest)
        sent, refused, failed = _send(
            cfg, ledger, biller, run_id, to_send, batch_size, client_options, result
        )
    except CaselleAPIError:
        ledger.finish_run(run_id, "failed", counts)
        ledger.close()
        raise
    counts |= {
        PaperlessCount.SENT: len(sent),
        PaperlessCount.ALREADY_SENT: already,
        PaperlessCount.STALE: stale,
        PaperlessCount.SUPERSEDED: superseded,
        PaperlessCount.REFUSED: len(refused),
        PaperlessCount.NOT_SENT: len(failed),
    }
    rejects = pd.concat(
        [quarantined, *(f for f in (refused, failed) if not f.empty)], ignore_index=True
    ).sort_values(LINE, kind="stable")
    rejects = rejects[[*COLUMNS, LINE, REASON]] if not rejects.empty else pd.DataFrame()
    counts[PaperlessCount.QUARANTINED] = len(rejects)
    result.counts = counts
    result.quarantined = rejects
    if not rejects.empty:
        result.rejects_path = write_rejects(rejects, Path(out_dir or cfg.paths.outbox), log_path.stem)
    result.tables["sent"] = sent
    result.extra.update({"run_id": run_id, "ledger": ledger.url})
    result.keep_for_retry(len(failed))  # not sent now (Caselle unreachable): the inbox keeps the log
    ledger.finish_run(run_id, "quarantined" if len(rejects) else "ok", counts)
    ledger.close()
    return result


def _not_yet_sent(ledger: Ledger, biller: str, latest: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Drop changes already recorded, and changes older than one already recorded."""
    recorded = ledger.paperless_latest(biller, latest["account"].tolist())
    if not recorded:
        return latest, 0, 0
    previous = latest["account"].map(recorded)
    same = (previous == latest["changed_at"]).fillna(False).astype(bool)
    older = (previous > latest["changed_at"]).fillna(False).astype(bool)
    return latest[~same & ~older], int(same.sum()), int(older.sum())


def _send(
    cfg: BillerConfig,
    ledger: Ledger,
    biller: str,
    run_id: str,
    to_send: pd.DataFrame,
    batch_size: int,
    client_options: dict[str, Any] | None,
    result: RunResult,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Send in aliased batches; record each batch in the ledger as soon as it is answered."""
    sent_parts: list[pd.DataFrame] = []
    refused_parts: list[pd.DataFrame] = []
    failed_parts: list[pd.DataFrame] = []
    if to_send.empty:
        return to_send.iloc[0:0], pd.DataFrame(), pd.DataFrame()
    done = 0
    with CaselleClient.for_purpose(cfg, "paperless", **(client_options or {})) as client:
        for start in range(0, len(to_send), batch_size):
            batch = to_send.iloc[start : start + batch_size]
            pairs = list(zip(batch["customer_number"].tolist(), batch["send_paper"].tolist(), strict=True))
            try:
                outcomes = client.set_send_paper_many(pairs)
            except CaselleAPIError as exc:
                exc.args = (
                    f"{exc}; {done} of {len(to_send)} change(s) were sent and recorded; "
                    "rerun to send the rest",
                )
                raise
            ok = [o.ok for o in outcomes]
            fatal = [isinstance(o.error, FatalAPIError) for o in outcomes]
            reasons = [
                ""
                if o.error is None
                else f"Caselle refused: {o.error}"
                if isinstance(o.error, FatalAPIError)
                else f"not sent ({o.error}); rerun to retry"
                for o in outcomes
            ]
            batch = batch.assign(**{REASON: reasons})
            sent_now = batch[ok]
            refused_now = batch[fatal]
            failed_now = batch[[not a and not b for a, b in zip(ok, fatal, strict=True)]]
            now = utc_text()
            records = pd.concat([sent_now.assign(state="sent"), refused_now.assign(state="rejected")])
            rows = (
                records.assign(
                    biller=biller,
                    sent_at=now,
                    run_id=run_id,
                    detail=records[REASON].where(records[REASON] != "", None),
                )[["biller", "account", "changed_at", "paperless", "state", "sent_at", "run_id", "detail"]]
                .astype({"account": object, "changed_at": object, "paperless": bool, "detail": object})
                .to_dict("records")
            )
            ledger.record_paperless(rows)
            done += len(sent_now) + len(refused_now)
            sent_parts.append(sent_now)
            refused_parts.append(refused_now)
            failed_parts.append(failed_now)
        if client.failovers:
            result.notes.append(f"the paperless endpoint failed over to {client.active_endpoint}")
        result.extra["endpoint"] = client.active_endpoint
    sent = pd.concat(sent_parts, ignore_index=True)[
        ["account_number", "paperless", "send_paper", "changed_at", LINE]
    ]
    return sent, pd.concat(refused_parts, ignore_index=True), pd.concat(failed_parts, ignore_index=True)


__all__ = ["parse_changed_at", "parse_paperless", "prepare_changes", "run_paperless_sync"]
