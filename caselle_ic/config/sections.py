"""The biller file's sections as strict pydantic models (unknown keys refused): ``[biller]``,
``[invoice_file]``, ``[extract]``, ``[lockbox]``, ``[paths]``, ``[schedule]``, ``[alerts]``,
and the whole file; the tuning sections are in :mod:`caselle_ic.config.tuning`."""

from __future__ import annotations

import codecs
import re
import uuid
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from caselle_ic.config.tuning import ConnectSection, PerformanceSection, PostingSection


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BillerSection(_Strict):
    name: str = Field(min_length=1)
    biller_guid: str
    invoice_format_guid: str
    timezone: str = "America/Denver"

    @field_validator("biller_guid", "invoice_format_guid")
    @classmethod
    def _guid(cls, v: str) -> str:
        try:
            uuid.UUID(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone such as 'America/Denver'") from None
        return v


def _ascii_compatible(v: str) -> str:
    """Refuse an encoding whose CSV punctuation is not plain ASCII bytes (UTF-16/32...):
    the readers and writers find commas, pipes, quotes and line breaks by byte. An
    unknown name is left to the reader, which names it."""
    try:
        codecs.lookup(v)
    except LookupError:
        return v
    probe = '\r\n,|"azAZ09'
    try:
        same = probe.encode("ascii").decode(v) == probe  # decode: a BOM codec (utf-8-sig) passes
    except (UnicodeError, LookupError):
        same = False
    if not same:
        raise ValueError(
            f"{v!r} is not supported: use an encoding that keeps ASCII as is "
            "(utf-8, cp1252, latin-1...); UTF-16/UTF-32 exports must be converted first"
        )
    return v


class InvoiceFileSection(_Strict):
    message_field_length: int = Field(default=255, ge=1, le=4000)
    line_ending: Literal["CRLF", "LF"] = "CRLF"
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        return _ascii_compatible(v)

    @property
    def newline(self) -> str:
        return "\r\n" if self.line_ending == "CRLF" else "\n"


class ExtractSection(_Strict):
    encoding: str = "utf-8"
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        return _ascii_compatible(v)


class LockboxSection(_Strict):
    combine_cloud_stores: bool = False


class PathsSection(_Strict):
    inbox: str = "data/inbox"
    outbox: str = "data/outbox"
    archive: str = "data/archive"
    error: str = "data/error"
    state: str = "data/state"

    @field_validator("inbox", "outbox", "archive", "error", "state")
    @classmethod
    def _no_nul(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("holds a NUL character; no path can")
        return v


_CRON = re.compile(r"^\S+(\s+\S+){4}\Z")
DEFAULT_TIMEOUT_SECONDS = 7200
DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY_SECONDS = 600


class ScheduleSection(_Strict):
    """Cron schedules of the scheduled inbox pickups, in the biller's time zone.

    An empty string means "on demand only" (no schedule). Checked fully (ranges, names)
    when the deployments are built, by Prefect's cron parser.
    """

    invoices: str = "0 6 1 * *"  # 06:00 on the 1st of each month
    audit: str | None = None  # daily-audit; None: an hour after ``payments`` (caselle_ic/audit/schedule.py)
    adjustments: str = ""  # on demand
    payments: str = "0 7 * * *"  # 07:00 every day
    paperless: str = "0 6 * * *"  # 06:00 every day
    #: every flow run of this biller ends TimedOut after this many seconds (SPEC §11); well
    #: under a day, so a hung run never holds the biller's concurrency slot until the next one
    timeout: int = Field(default=DEFAULT_TIMEOUT_SECONDS, ge=10, le=86_400)
    #: an inbox pickup whose files could not be finished now (Caselle unreachable, the ledger
    #: down) tries again this many times, ``retry_delay`` seconds apart (SPEC §11: 3 x 10 min)
    retries: int = Field(default=DEFAULT_RETRIES, ge=0, le=20)
    retry_delay: int = Field(default=DEFAULT_RETRY_DELAY_SECONDS, ge=0, le=86_400)

    @field_validator("invoices", "adjustments", "payments", "paperless", "audit")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = " ".join(v.split())
        if v and not _CRON.match(v):
            raise ValueError(
                f"{v!r} is not a 5-field cron expression such as '0 6 1 * *' (or \"\" for on demand)"
            )
        return v


#: Input kinds an ``[alerts].expect`` deadline may name (the inbox kinds).
ALERT_KINDS = ("invoices", "adjustments", "payments", "paperless")


class AlertsSection(_Strict):
    """Who is told when money did not move (SPEC §11).

    ``notify`` names a Prefect notification block (Slack, e-mail, Teams, custom webhook;
    ``"slack-webhook/ops"`` or just ``"ops"``); ``""`` means no alerts. ``expect`` maps an
    input kind to a cron (biller time zone) by which that input must have arrived.
    """

    notify: str = ""
    expect: dict[str, str] = Field(default_factory=dict)

    @field_validator("expect")
    @classmethod
    def _expect(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for kind, cron in v.items():
            if kind not in ALERT_KINDS:
                raise ValueError(f"expect: {kind!r} is not an input kind (one of {', '.join(ALERT_KINDS)})")
            cron = " ".join(str(cron).split())
            if not _CRON.match(cron):
                raise ValueError(
                    f"expect.{kind} = {cron!r} is not a 5-field cron expression such as '0 9 * * 1-5'"
                )
            out[kind] = cron
        return out


class BillerFile(_Strict):
    """The whole biller file, as TOML gives it (settings still raw)."""

    biller: BillerSection
    settings: dict[str, str | int] = Field(default_factory=dict)
    invoice_file: InvoiceFileSection = Field(default_factory=InvoiceFileSection)
    extract: ExtractSection = Field(default_factory=ExtractSection)
    lockbox: LockboxSection = Field(default_factory=LockboxSection)
    paths: PathsSection = Field(default_factory=PathsSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    posting: PostingSection = Field(default_factory=PostingSection)
    connect: ConnectSection = Field(default_factory=ConnectSection)
    performance: PerformanceSection = Field(default_factory=PerformanceSection)
