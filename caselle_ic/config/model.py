"""Biller configuration (SPEC §1): one TOML file per biller, validated at startup.

* Unknown keys are refused, so a typo never passes silently.
* IC advanced settings are keyed by their IC setting ID; :class:`Setting` names every ID
  the technical design lists, and unknown IDs are refused.
* Secrets are resolved here, at the edge: any value may be ``env:NAME`` or
  ``prefect-secret:NAME``. Password settings must be one of those; a plain-text value is
  refused with an error naming the setting. Resolved passwords are ``SecretStr`` and never
  print.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from caselle_ic.config.tuning import ConnectSection, PerformanceSection, PostingSection, with_env_overrides
from caselle_ic.errors import ConfigError, file_problem

log = logging.getLogger(__name__)


class Setting(IntEnum):
    """IC advanced setting IDs used by the Caselle integration (seed: "Advanced Settings")."""

    RTDR_URL = 8
    RTDR_USERNAME = 9
    RTDR_PASSWORD = 10
    PAYMENTS_URL = 11
    PAYMENTS_USERNAME = 12
    PAYMENTS_PASSWORD = 13
    PAPERLESS_URL = 14
    PAPERLESS_USERNAME = 15
    PAPERLESS_PASSWORD = 16
    AUTOPAY_URL = 17
    AUTOPAY_USERNAME = 18
    AUTOPAY_PASSWORD = 19
    SERVICE_VERSION = 35
    CC_CODE = 64
    ACH_CODE = 65
    RTDR_URL_SECONDARY = 88
    ACH_REJECTS_URL = 101
    ACH_REJECTS_USERNAME = 102
    ACH_REJECTS_PASSWORD = 103
    PAPERLESS_URL_SECONDARY = 111
    PAPERLESS_USERNAME_SECONDARY = 112
    PAPERLESS_PASSWORD_SECONDARY = 113
    OAUTH_URL = 126
    OAUTH_PASSWORD = 127
    OAUTH_TOKEN_EXPIRATION = 128
    PAYMENT_CODES_JSON = 131

    @property
    def label(self) -> str:
        return f"setting {int(self)} ({self.name.lower()})"


#: Settings that hold a password or key: never plain text in the file.
PASSWORD_SETTINGS = frozenset(
    {
        Setting.RTDR_PASSWORD,
        Setting.PAYMENTS_PASSWORD,
        Setting.PAPERLESS_PASSWORD,
        Setting.AUTOPAY_PASSWORD,
        Setting.ACH_REJECTS_PASSWORD,
        Setting.PAPERLESS_PASSWORD_SECONDARY,
        Setting.OAUTH_PASSWORD,
    }
)

_REF = re.compile(r"^(env|prefect-secret):([A-Za-z0-9_.\-/]+)\Z")


def resolve_reference(value: str, *, what: str, file: Path | None = None) -> str:
    """Resolve ``env:NAME`` / ``prefect-secret:NAME``; any other value is returned as is."""
    m = _REF.match(value)
    if not m:
        return value
    kind, name = m.groups()
    if kind == "env":
        if name not in os.environ:
            raise ConfigError(
                f"{what} refers to environment variable {name}, which is not set; "
                f"export {name} before running",
                file=file,
                setting=what,
            )
        return os.environ[name]
    try:
        from prefect.blocks.system import Secret

        secret: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
        return str(secret.get())
    except Exception as exc:  # Prefect raises ValueError / ObjectNotFound / httpx errors
        raise ConfigError(
            f"{what} refers to Prefect Secret block {name!r}, which could not be loaded "
            f"({type(exc).__name__}); create it in the Prefect UI or with "
            f"`prefect block create secret`",
            file=file,
            setting=what,
        ) from None


def is_reference(value: str) -> bool:
    return bool(_REF.match(value))


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


class _File(_Strict):
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


@dataclass(frozen=True)
class Endpoint:
    """One Caselle Connect endpoint with its credentials and optional secondary."""

    name: str
    url: str
    username: str | None
    password: SecretStr | None
    secondary: Endpoint | None = None

    def __repr__(self) -> str:  # never show the password
        return f"Endpoint(name={self.name!r}, url={self.url!r}, username={self.username!r})"


@dataclass(frozen=True)
class Paths:
    inbox: Path
    outbox: Path
    archive: Path
    error: Path
    state: Path


@dataclass(frozen=True)
class BillerConfig:
    """The validated, resolved configuration of one biller."""

    source: Path
    name: str
    biller_guid: str
    invoice_format_guid: str
    timezone: str
    settings: dict[Setting, str]
    secrets: dict[Setting, SecretStr]
    invoice_file: InvoiceFileSection
    extract: ExtractSection
    lockbox: LockboxSection
    paths: Paths
    unresolved: dict[Setting, str] = field(default_factory=dict)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    alerts: AlertsSection = field(default_factory=AlertsSection)
    posting: PostingSection = field(default_factory=PostingSection)
    connect: ConnectSection = field(default_factory=ConnectSection)
    performance: PerformanceSection = field(default_factory=PerformanceSection)

    def __repr__(self) -> str:
        return f"BillerConfig(name={self.name!r}, source={str(self.source)!r})"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def slug(self) -> str:
        """A file- and URL-safe short name for run names and state files."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "biller"

    def get(self, setting: Setting) -> str | None:
        """A non-secret setting's value, or None when unset."""
        if setting in PASSWORD_SETTINGS:
            raise KeyError(f"{setting.label} is a secret; use secret()")
        return self.settings.get(setting)

    def secret(self, setting: Setting) -> SecretStr | None:
        """A password setting's value; ConfigError if its reference could not be resolved."""
        if setting in self.unresolved:
            raise ConfigError(self.unresolved[setting], setting=setting.label)
        return self.secrets.get(setting)

    # -- endpoints -------------------------------------------------------------------
    def _endpoint(self, name: str, url: Setting, user: Setting, pw: Setting) -> Endpoint | None:
        u = self.settings.get(url)
        if not u:
            return None
        return Endpoint(name, u, self.settings.get(user), self.secret(pw))

    def endpoint(
        self, purpose: Literal["rtdr", "payments", "paperless", "autopay", "ach_rejects"]
    ) -> Endpoint:
        """The endpoint for a purpose, with its secondary when one is configured.

        ACH rejects fall back to the payments endpoint when setting 101 is unset.
        Raises ConfigError naming the setting when the purpose is not configured.
        """
        S = Setting
        if purpose == "rtdr":
            primary = self._endpoint("rtdr", S.RTDR_URL, S.RTDR_USERNAME, S.RTDR_PASSWORD)
            secondary = self._endpoint(
                "rtdr-secondary", S.RTDR_URL_SECONDARY, S.RTDR_USERNAME, S.RTDR_PASSWORD
            )
            missing = S.RTDR_URL
        elif purpose == "payments":
            primary = self._endpoint("payments", S.PAYMENTS_URL, S.PAYMENTS_USERNAME, S.PAYMENTS_PASSWORD)
            secondary, missing = None, S.PAYMENTS_URL
        elif purpose == "paperless":
            primary = self._endpoint("paperless", S.PAPERLESS_URL, S.PAPERLESS_USERNAME, S.PAPERLESS_PASSWORD)
            secondary = self._endpoint(
                "paperless-secondary",
                S.PAPERLESS_URL_SECONDARY,
                S.PAPERLESS_USERNAME_SECONDARY,
                S.PAPERLESS_PASSWORD_SECONDARY,
            )
            missing = S.PAPERLESS_URL
        elif purpose == "autopay":
            primary = self._endpoint("autopay", S.AUTOPAY_URL, S.AUTOPAY_USERNAME, S.AUTOPAY_PASSWORD)
            secondary, missing = None, S.AUTOPAY_URL
        elif purpose == "ach_rejects":
            primary = self._endpoint(
                "ach-rejects", S.ACH_REJECTS_URL, S.ACH_REJECTS_USERNAME, S.ACH_REJECTS_PASSWORD
            )
            if primary is None:
                return self.endpoint("payments")
            secondary, missing = None, S.ACH_REJECTS_URL
        else:  # pragma: no cover - Literal guards this
            raise ValueError(purpose)
        if primary is None:
            raise ConfigError(
                f"{missing.label} is not set; it is needed for {purpose}",
                file=self.source,
                setting=missing.label,
            )
        if secondary is not None:
            primary = Endpoint(primary.name, primary.url, primary.username, primary.password, secondary)
        return primary

    @property
    def oauth_url(self) -> str | None:
        return self.settings.get(Setting.OAUTH_URL) or None

    @property
    def oauth_secret(self) -> SecretStr | None:
        return self.secret(Setting.OAUTH_PASSWORD)

    @property
    def allocate_to_invoice(self) -> bool:
        return (self.settings.get(Setting.SERVICE_VERSION) or "").strip().upper() == "ALLOCATEAR"

    def all_secret_values(self) -> list[str]:
        """Every resolved secret, for redaction filters and leak tests."""
        return [s.get_secret_value() for s in self.secrets.values() if s.get_secret_value()]


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against SPEC §1)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        parts.append(f"[{loc}] {msg}")
    return "; ".join(parts)


def load_config(path: str | Path, *, resolve_secrets: bool = True) -> BillerConfig:
    """Read, validate and resolve a biller TOML file. Raises ConfigError with what to fix.

    Load it once per run and pass the result down (each load resolves the secrets, maybe
    over the Prefect API). ``resolve_secrets=False`` leaves every ``env:`` /
    ``prefect-secret:`` reference unresolved (for a run name, which needs no secret).
    Environment overrides of ``[posting]`` / ``[connect]`` / ``[performance]`` (caselle_ic/env.py) are
    applied here.
    """
    src = Path(path)
    if (problem := file_problem(src)) is not None:  # a FIFO would block read_bytes
        raise ConfigError(f"cannot read the configuration file: it {problem}", file=src)
    try:
        raw_bytes = src.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file ({exc.strerror})", file=src) from None
    try:
        raw: dict[str, Any] = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("the configuration file is not UTF-8 text", file=src) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=src) from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError("not valid TOML: arrays or tables nested too deeply", file=src) from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc), file=src) from None

    settings: dict[Setting, str] = {}
    secrets: dict[Setting, SecretStr] = {}
    unresolved: dict[Setting, str] = {}
    raw_keys: dict[Setting, str] = {}
    for key, value in parsed.settings.items():
        try:
            sid = Setting(int(key))
        except ValueError:
            known = ", ".join(str(int(s)) for s in Setting)
            raise ConfigError(
                f"[settings] {key} is not an IC setting ID this integration knows (known: {known})",
                file=src,
                setting=str(key),
            ) from None
        if sid in raw_keys:  # "011" and "11 " are one setting: which one was meant?
            raise ConfigError(
                f"[settings] keys {raw_keys[sid]!r} and {key!r} both mean setting {int(sid)}; keep one",
                file=src,
                setting=sid.label,
            )
        raw_keys[sid] = key
        text = str(value).strip()
        if not resolve_secrets and is_reference(text):
            unresolved[sid] = f"{sid.label} was not resolved (configuration loaded without secrets)"
            continue
        if sid in PASSWORD_SETTINGS:
            if text and not is_reference(text):
                raise ConfigError(
                    f'{sid.label} holds a plain-text password; write it as "env:NAME" or '
                    f'"prefect-secret:NAME" and keep the value out of the file',
                    file=src,
                    setting=sid.label,
                )
            if text:
                # A secret that cannot be resolved now (env var not exported) is only an
                # error for the commands that need it: invoices need no password.
                try:
                    secrets[sid] = SecretStr(resolve_reference(text, what=sid.label, file=src))
                except ConfigError as exc:
                    unresolved[sid] = str(exc)
            continue
        text = resolve_reference(text, what=sid.label, file=src)
        if text:
            settings[sid] = text

    base = src.resolve().parent
    p = parsed.paths
    paths = Paths(
        *((base / getattr(p, f)).resolve() for f in ("inbox", "outbox", "archive", "error", "state"))
    )
    # Every secret this process knows is redacted from all log output from now on (the
    # handlers and Prefect's loggers are covered at the process edge: CLI main, flows).
    from caselle_ic.logsafe import register_secrets

    register_secrets([v.get_secret_value() for v in secrets.values()])

    b = parsed.biller
    log.debug("loaded the biller file %s%s", src, "" if resolve_secrets else " (secrets not resolved)")
    return BillerConfig(
        source=src,
        name=b.name,
        biller_guid=b.biller_guid,
        invoice_format_guid=b.invoice_format_guid,
        timezone=b.timezone,
        settings=settings,
        secrets=secrets,
        invoice_file=parsed.invoice_file,
        extract=parsed.extract,
        lockbox=parsed.lockbox,
        paths=paths,
        unresolved=unresolved,
        schedule=parsed.schedule,
        alerts=parsed.alerts,
        posting=with_env_overrides(parsed.posting, "posting"),
        connect=with_env_overrides(parsed.connect, "connect"),
        performance=with_env_overrides(parsed.performance, "performance"),
    )


_NOW = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})?\Z")


def resolve_now(now: str | datetime | None, tz: ZoneInfo) -> datetime:
    """The run clock in the biller's time zone.

    ``--now YYYY-MM-DDTHH:MM:SS`` without an offset is biller local time; with an offset
    (or ``Z``) it is converted. None means the current time.
    """
    if now is None:
        return datetime.now(tz).replace(microsecond=0)
    if isinstance(now, datetime):
        return now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
    if not _NOW.match(now):
        raise ConfigError(f"--now {now!r} is not YYYY-MM-DDTHH:MM:SS (optionally with +HH:MM or Z)")
    parsed = datetime.fromisoformat(now.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed.astimezone(tz)
