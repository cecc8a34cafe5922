"""``caselle-ic check`` (SPEC §11): is this biller file ready to run?

Offline: the file loads and validates, every ``env:`` / ``prefect-secret:`` reference
resolves, each configured endpoint has the credentials its auth needs, and setting 131
with its fallbacks 64/65 resolves every payment key it can meet (the error a run would hit
is reported now, naming the setting). Prints the effective settings — secrets as ``****``
with the reference they come from, usernames masked like account numbers, passwords in
URLs hidden — and the payment-code table.

``--live`` (:mod:`caselle_ic.ops.check_live`) authenticates to every configured endpoint,
introspects its schema and validates the documents this client sends there;
``--account N`` does one RTDR lookup. Exit 0 when nothing is wrong, 2 otherwise; every
problem names its setting (or argument).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.config.settings import PASSWORD_SETTINGS, Setting
from caselle_ic.errors import ConfigError
from caselle_ic.tabular.values import mask_account_value

#: Settings whose value identifies an account or client: masked like account numbers.
USERNAME_SETTINGS = frozenset(
    {
        Setting.RTDR_USERNAME,
        Setting.PAYMENTS_USERNAME,
        Setting.PAPERLESS_USERNAME,
        Setting.AUTOPAY_USERNAME,
        Setting.ACH_REJECTS_USERNAME,
        Setting.PAPERLESS_USERNAME_SECONDARY,
    }
)
SECRET_MASK = "****"  # noqa: S105 - what a secret is shown as


@dataclass(frozen=True)
class Problem:
    """Something that would make a run fail. ``setting`` is an IC setting ID ("8",
    "126/127"), a file section ("[biller]") or an argument ("--account")."""

    setting: str
    message: str

    def text(self) -> str:
        return f"PROBLEM [{_setting_label(self.setting)}] {self.message}"


@dataclass
class CheckReport:
    config: str
    biller: dict[str, str] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    payment_codes: dict[str, Any] = field(default_factory=dict)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    account: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 2 if self.problems else 0

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "problems"}
        out["problems"] = [asdict(p) for p in self.problems]
        out["exit_status"] = self.exit_status
        return out


def _setting_label(setting: str) -> str:
    if setting.isdigit():
        try:
            return Setting(int(setting)).label
        except ValueError:
            return f"setting {setting}"
    if "/" in setting and all(p.isdigit() for p in setting.split("/")):
        return "settings " + setting
    return setting


def mask_url(url: str) -> str:
    """A URL with any password in it hidden (``https://user:****@host/...``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{SECRET_MASK}@{host}"))


def _raw_settings(path: Path) -> dict[int, str]:
    """The [settings] values as written (for the reference a secret comes from)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {int(k): str(v).strip() for k, v in raw.items() if str(k).isdigit()}


def effective_settings(cfg: BillerConfig) -> list[dict[str, Any]]:
    """Every setting the file sets, as an analyst may see it."""
    raw = _raw_settings(cfg.source)
    out: list[dict[str, Any]] = []
    for sid in sorted(
        {
            *cfg.settings,
            *cfg.secrets,
            *cfg.unresolved,
            *(Setting(k) for k in raw if k in Setting._value2member_map_),
        }
    ):
        item: dict[str, Any] = {"id": int(sid), "name": sid.name.lower()}
        ref = raw.get(int(sid), "")
        if sid in PASSWORD_SETTINGS:
            item["value"] = SECRET_MASK if sid in cfg.secrets else "-"
            item["source"] = ref
            item["resolved"] = sid in cfg.secrets
        elif sid == Setting.PAYMENT_CODES_JSON:
            item["value"] = "(JSON, see the payment-code table)"
        else:
            value = cfg.settings.get(sid, "")
            if sid in USERNAME_SETTINGS:
                value = mask_account_value(value)
            elif value.startswith(("http://", "https://")):
                value = mask_url(value)
            item["value"] = value
            if ref.startswith(("env:", "prefect-secret:")):
                item["source"] = ref
        out.append(item)
    return out


def _sections(cfg: BillerConfig, ledger_url: str | None) -> dict[str, Any]:
    from caselle_ic.store.ledger import mask_url as mask_db_url

    # Not ledger_url_for: that creates the state folder, and a check writes nothing.
    ledger = mask_db_url(ledger_url) if ledger_url else f"sqlite:///{cfg.paths.state / 'ledger.db'}"
    return {
        "paths": {k: str(v) for k, v in asdict(cfg.paths).items()},
        "invoice_file": cfg.invoice_file.model_dump(),
        "extract": cfg.extract.model_dump(),
        "lockbox": cfg.lockbox.model_dump(),
        "schedule": cfg.schedule.model_dump(),
        "ledger": ledger,
    }


# -- checks ------------------------------------------------------------------------------
#: Purposes and the URL setting that enables each (ach_rejects only when 101 is set).
PURPOSE_URL = {
    "rtdr": Setting.RTDR_URL,
    "payments": Setting.PAYMENTS_URL,
    "paperless": Setting.PAPERLESS_URL,
    "ach_rejects": Setting.ACH_REJECTS_URL,
}


def _credential_problems(cfg: BillerConfig) -> list[Problem]:
    """Build each configured endpoint's client as a run would: a missing username, password
    or client secret is found here, naming its setting. Nothing is sent."""
    from caselle_ic.connect.client import CaselleClient

    problems: list[Problem] = []
    for purpose, url_setting in PURPOSE_URL.items():
        if not cfg.get(url_setting):
            continue
        try:
            CaselleClient.for_purpose(cfg, purpose).close()  # type: ignore[arg-type]
        except ConfigError as exc:
            problems.append(
                Problem(
                    _setting_of(exc, str(int(url_setting))), _message(exc).removeprefix(f"{cfg.source}: ")
                )
            )
    return problems


def _message(exc: Exception) -> str:
    """The error text without the file prefix ConfigError adds (the report names the file)."""
    text = str(exc)
    file = getattr(exc, "file", None)
    if file and text.startswith(f"{file}: "):
        text = text[len(file) + 2 :]
    return text


def _setting_of(exc: ConfigError, default: str) -> str:
    s = exc.setting or default
    if s.startswith("setting "):
        s = s.split()[1]
    return s


def payment_code_table(cfg: BillerConfig) -> tuple[dict[str, Any], list[Problem]]:
    """Setting 131's entries, the fallbacks and the default posting method, and the
    problems a run would meet resolving them (every payment key the entries name)."""
    from caselle_ic.payments import codes
    from caselle_ic.payments.codes_resolve import resolve_one

    problems: list[Problem] = []
    try:
        table = codes.load_payment_codes(cfg)
    except ConfigError as exc:
        return {}, [Problem(_setting_of(exc, "131"), _message(exc))]
    problems += [Problem("131", w) for w in table.warnings]
    problems += [Problem(str(s), p) for s, p in table.fallback_problems.items()]
    entries = []
    for e in table.entries:
        method = e.posting_method or table.default_method
        entries.append(
            {
                "entry": e.number,
                "payment_type": e.payment_type,
                "payment_type_name": codes.PAYMENT_TYPES.get(e.payment_type, "?"),
                "invoice_type": e.invoice_type,
                "card_vendors": list(e.card_vendors) if e.card_vendors is not None else None,
                "obd_vendors": list(e.obd_vendors) if e.obd_vendors is not None else None,
                "payment_code": e.payment_code,
                "distribution_code": e.distribution_code,
                "posting_method": method,
                "posting_method_from": "entry" if e.posting_method else "default",
            }
        )
    # Every key a payment can have that the entries distinguish: a run resolves the same.
    invoice_types: list[int | None] = [
        None,
        *sorted({e.invoice_type for e in table.entries if e.invoice_type is not None}),
    ]
    seen: set[str] = set()
    for ptype in codes.PAYMENT_TYPES:
        cards: list[str | None] = [None, *codes.CARD_VENDORS] if ptype == 1 else [None]
        obds: list[str | None] = [None, *codes.OBD_VENDORS] if ptype == 11 else [None]
        for itype in invoice_types:
            for card in cards:
                for obd in obds:
                    try:
                        res = resolve_one(table, ptype, itype, card, obd)
                    except ConfigError as exc:
                        msg = _message(exc)
                        if msg not in seen:
                            seen.add(msg)
                            problems.append(Problem(_setting_of(exc, "131"), msg))
                        continue
                    if res.posting_method == "File" and (
                        res.distribution_code > 9999 or res.payment_code > 99
                    ):
                        msg = (
                            f"{res.code_rule} sends payment type {ptype} to the lockbox file with "
                            f"distribution code {res.distribution_code} and payment code {res.payment_code}; "
                            "the file holds at most 4 and 2 digits, so these payments would be quarantined"
                        )
                        if msg not in seen:
                            seen.add(msg)
                            problems.append(Problem("131", msg))
    fallbacks = {
        str(s): {
            "distribution_code": f.distribution_code,
            "payment_code": f.payment_code,
            "gl_activity": f.gl_activity,
        }
        for s, f in table.fallbacks.items()
    }
    return {
        "state": table.json_state,
        "entries": entries,
        "fallbacks": fallbacks,
        "default_posting_method": table.default_method,
        "default_posting_method_reason": table.default_method_reason,
    }, problems


def run_check(
    config: str | Path,
    *,
    live: bool = False,
    account: str | None = None,
    ledger_url: str | None = None,
    client_options: dict[str, Any] | None = None,
) -> CheckReport:
    """Check a biller file; see the module docstring. Never raises for a bad file: every
    finding is a :class:`Problem` of the report."""
    report = CheckReport(config=str(config))
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        report.problems.append(Problem(_setting_of(exc, "file"), _message(exc)))
        return report
    report.biller = {
        "name": cfg.name,
        "biller_guid": cfg.biller_guid,
        "invoice_format_guid": cfg.invoice_format_guid,
        "timezone": cfg.timezone,
    }
    report.settings = effective_settings(cfg)
    report.sections = _sections(cfg, ledger_url)
    for sid, message in sorted(cfg.unresolved.items()):
        report.problems.append(Problem(str(int(sid)), message.removeprefix(f"{cfg.source}: ")))
    report.problems += [p for p in _credential_problems(cfg) if not _already(report, p)]
    report.payment_codes, code_problems = payment_code_table(cfg)
    report.problems += code_problems
    if live or account is not None:
        from caselle_ic.ops.check_live import check_account, check_endpoints

        opts = {"timeout": (5.0, 20.0), "max_attempts": 2, "backoff": 0.2, **(client_options or {})}
        if live:
            report.endpoints, live_problems, notes = check_endpoints(cfg, opts)
            report.problems += [p for p in live_problems if not _already(report, p)]
            report.notes += notes
        if account is not None:
            report.account, account_problems = check_account(cfg, account, opts)
            report.problems += account_problems
    return report


def _already(report: CheckReport, problem: Problem) -> bool:
    """An unresolved secret is reported once, not again by each endpoint that needs it."""
    return any(p.setting == problem.setting for p in report.problems)


# -- output ------------------------------------------------------------------------------
def _fmt_codes(value: Any) -> str:
    return "-" if value is None else str(value)


def render_text(report: CheckReport) -> str:
    lines = [f"caselle-ic check: {report.config}"]
    if report.biller:
        b = report.biller
        lines += [
            "",
            f"Biller: {b['name']}",
            f"  BillerGuid {b['biller_guid']}, InvoiceFormatGuid {b['invoice_format_guid']}, "
            f"time zone {b['timezone']}",
            "",
            "Settings:",
        ]
        for s in report.settings:
            extra = ""
            if "source" in s:
                extra = f"  ({s['source']}{'' if s.get('resolved', True) else ', NOT RESOLVED'})"
            lines.append(f"  {s['id']:>3}  {s['name']:<30} {s['value']}{extra}")
        sec = report.sections
        lines += ["", "Paths:"] + [f"  {k:<8} {v}" for k, v in sec["paths"].items()]
        lines.append(f"  ledger   {sec['ledger']}")
        lines += [
            "",
            "Invoice file: " + ", ".join(f"{k}={v}" for k, v in sec["invoice_file"].items()),
            "Extract: encoding="
            + sec["extract"]["encoding"]
            + "".join(f", {k!r} -> {v}" for k, v in sec["extract"]["columns"].items()),
            "Lockbox: " + ", ".join(f"{k}={v}" for k, v in sec["lockbox"].items()),
            "Schedule: " + ", ".join(f"{k}={v!r}" for k, v in sec["schedule"].items()),
        ]
    pc = report.payment_codes
    if pc:
        lines += ["", f"Payment codes (setting 131: {pc['state']}; {len(pc['entries'])} entries):"]
        if pc["entries"]:
            lines.append(
                f"  {'entry':<6}{'PaymentTypeID':<19}{'InvoiceTypeID':<15}{'vendors':<20}"
                f"{'PaymentCode':<13}{'DistributionCode':<18}PostingMethod"
            )
        for e in pc["entries"]:
            vendors = e["card_vendors"] or e["obd_vendors"]
            lines.append(
                f"  {e['entry']:<6}{str(e['payment_type']) + ' (' + e['payment_type_name'] + ')':<19}"
                f"{_fmt_codes(e['invoice_type']):<15}{(','.join(vendors) if vendors else '-'):<20}"
                f"{_fmt_codes(e['payment_code']):<13}{_fmt_codes(e['distribution_code']):<18}"
                f"{e['posting_method']}{' (default)' if e['posting_method_from'] == 'default' else ''}"
            )
        for s, f in pc["fallbacks"].items():
            kind = "CC, PayPal, Venmo" if s == "64" else "ACH, OBD"
            lines.append(
                f"  setting {s} ({kind} fallback): distribution {f['distribution_code']}, "
                f"payment {f['payment_code']}, GL activity {f['gl_activity']}"
            )
        lines.append(
            f"  default posting method: {pc['default_posting_method']} "
            f"({pc['default_posting_method_reason']})"
        )
        lines.append(
            "  which entry wins for a payment: caselle-ic codes explain --config ... --payment-type N"
        )
    if report.endpoints:
        lines += ["", "Endpoints (live):"]
        for ep in report.endpoints:
            lines.append(f"  {ep['setting']:>3}  {ep['name']:<20} {ep['url']}")
            lines.append(f"       auth: {ep['auth']}; schema: {ep['schema']}")
    if report.account is not None:
        a = report.account
        lines += ["", f"Account {a['account']} (RTDR lookup through setting {a['setting']}): {a['result']}"]
    lines += [""] + [f"note: {n}" for n in report.notes]
    if report.problems:
        lines += [p.text() for p in report.problems]
        lines.append(f"{len(report.problems)} problem(s): fix the settings named above (exit 2)")
    else:
        lines.append(
            "OK: no problems found" + ("" if report.endpoints else " (offline; --live checks the endpoints)")
        )
    return "\n".join(lines)


def render_json(report: CheckReport) -> str:
    return json.dumps(report.as_json(), indent=2, default=str)


__all__ = [
    "CheckReport",
    "Problem",
    "effective_settings",
    "mask_url",
    "payment_code_table",
    "render_json",
    "render_text",
    "run_check",
]
