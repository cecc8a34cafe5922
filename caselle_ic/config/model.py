"""Biller configuration (SPEC §1): one TOML file per biller, validated at startup.

* Unknown keys are refused, so a typo never passes silently.
* IC advanced settings are keyed by their IC setting ID;
  :class:`~caselle_ic.config.settings.Setting` names every ID the technical design lists,
  and unknown IDs are refused.
* Secrets are resolved here, at the edge: any value may be ``env:NAME`` or
  ``prefect-secret:NAME``. Password settings must be one of those; a plain-text value is
  refused with an error naming the setting. Resolved passwords are ``SecretStr`` and never
  print (references: :mod:`caselle_ic.config.settings`).
* The file's sections are strict pydantic models (:mod:`caselle_ic.config.sections`); this
  module loads the file into the frozen :class:`BillerConfig` the code uses.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import SecretStr, ValidationError

from caselle_ic.config.sections import (
    AlertsSection,
    BillerFile,
    ExtractSection,
    InvoiceFileSection,
    LockboxSection,
    ScheduleSection,
)
from caselle_ic.config.settings import PASSWORD_SETTINGS, Setting, is_reference, resolve_reference
from caselle_ic.config.tuning import ConnectSection, PerformanceSection, PostingSection, with_env_overrides
from caselle_ic.errors import ConfigError, file_problem

log = logging.getLogger(__name__)


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
        parsed = BillerFile.model_validate(raw)
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
