"""Keep secrets, tokens and full account numbers out of every log line.

Prefect masks only its own API key. This module installs a redaction step that every log
record goes through, whoever logs it (our code, gql, requests, Prefect's run loggers, a
``print`` captured by ``log_prints``), before any handler formats it — including the
handler that ships flow-run logs to the Prefect API, so nothing sensitive reaches the
server's database or the UI.

It is installed in two ways, both idempotent:

* a :class:`RedactingFilter` on the root logger, on every ``prefect*`` logger and on each
  of their handlers (console, ``APILogHandler``, ``WorkerAPILogHandler``, pytest's
  capture handler …) present at install time;
* a wrapper around the log-record factory (``logging.setLogRecordFactory``), so records
  reach handlers added *after* installation (Prefect re-configures logging in new
  processes) already redacted.

What is redacted (see ``docs/operations.md``, "Decisions"):

1. **Secrets** of every loaded biller config (``cfg.all_secret_values()``), as they are
   and URL-encoded, anywhere in the text -> ``[REDACTED]``.
2. **Credentials by shape**: ``Bearer <token>``, ``Basic <b64>``, the value of an
   ``Authorization`` header, ``access_token`` / ``refresh_token`` / ``client_secret`` /
   ``password`` / ``api_key`` / ``token`` key-value pairs (``k=v``, ``k: v``, ``"k": "v"``),
   and JWTs (``eyJ….….…``) -> ``[REDACTED]``.
3. **Account numbers**: a free-standing run of digits, optionally in groups of 2+ joined
   by single ``-`` or ``.`` (``001001``, ``00-1017``, ``001.018``, ``303-555-0123``), with
   6 or more digits in all, is shown as ``****`` + its last 4 digits. Not touched, because
   they are recognised first: ISO dates and date-times, ``M/D/YYYY`` dates, clock times,
   amounts (``1234.56``, ``1,234.50``, ``$1,234``), one-digit decimals (``0.125``), IPv4
   addresses, UUIDs, and digits glued to letters or ``_`` (file names such as
   ``INVCLD_CSLSTMT101_20250131060000.txt``, hex). Numbers under 6 digits (counts, years,
   ports, line numbers, a 4-digit customer number that *is* its own last 4) are kept.
   Write large counts with separators (``f"{n:,}"``) so they are not mistaken for an
   account.

Exceptions attached to a record are formatted once, redacted, and kept as ``exc_text``
(``exc_info`` is dropped so no formatter can re-render the raw exception).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

# -- credentials recognised by their shape -------------------------------------------------
_CREDENTIAL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xxx / Authorization: Basic xxx / 'Authorization': 'xxx'
    (
        re.compile(
            r"""(?i)(authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token|digest)\s+)?[^\s"',;}]+"""
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)"), "scheme"),
    (
        re.compile(
            r"""(?i)\b((?:access|refresh|id)_token|client_secret|password|passwd|pwd|api_?key|(?<!prefect-)secret|token)"""
            r"""(["']?\s*[:=]\s*["']?)(?!\[REDACTED\])[^\s"'&,;}]+"""
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
)


def _looks_like_token(value: str) -> bool:
    """A credential, not an English word: has a digit/symbol, or a capital after the first."""
    return bool(re.search(r"[0-9\-._~+/=]", value) or re.search(r"[A-Z]", value[1:]))


def _scheme_token(m: re.Match[str]) -> str:
    scheme, space, value = m.group(1), m.group(2), m.group(3)
    return f"{scheme}{space}{REDACTED}" if _looks_like_token(value) else m.group(0)


# -- account numbers -----------------------------------------------------------------------
# Alternatives before ``acct`` are things that look numeric but are not accounts; they
# are matched first (leftmost alternative wins) and returned unchanged.
_KEEP = [
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",  # UUID
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",  # ISO
    r"\d{1,2}/\d{1,2}/\d{2,4}",  # M/D/YYYY
    r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?",  # clock time
    r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?",  # IPv4[:port]
    r"\$?\d{1,3}(?:,\d{3})+(?:\.\d+)?",  # 1,234,567.89
    r"\$?\d+\.\d{1,2}(?![\d.])",  # 1234.56
    r"(?<![\d.])\d\.\d+",  # 0.125 (durations, ratios)
]
_ACCOUNT = r"(?P<acct>(?<![\w.,$])\d{2,}(?:[-.]\d{2,})*(?![\w]|[.,]\d))"
_NUMERIC = re.compile("|".join(f"(?:{k})" for k in _KEEP) + "|" + _ACCOUNT)
MIN_ACCOUNT_DIGITS = 6


def _mask_match(m: re.Match[str]) -> str:
    acct = m.group("acct")
    if acct is None:
        return m.group(0)
    digits = re.sub(r"\D", "", acct)
    if len(digits) < MIN_ACCOUNT_DIGITS:
        return acct
    return "****" + digits[-4:]


def mask_accounts(text: str) -> str:
    """Mask account-number-like digit runs to their last 4 digits (rule in the module doc)."""
    return _NUMERIC.sub(_mask_match, text)


class Redactor:
    """Holds the known secrets and turns any text into its redacted form."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._secret_re: re.Pattern[str] | None = None

    @property
    def secret_count(self) -> int:
        return len(self._secrets)

    def add_secrets(self, values: Iterable[str]) -> None:
        new: set[str] = set()
        for v in values:
            if not v:
                continue
            new.add(v)
            new.add(quote(v, safe=""))
            new.add(quote_plus(v, safe=""))
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._secret_re = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        if not text:
            return text
        secret_re = self._secret_re
        if secret_re is not None:
            text = secret_re.sub(REDACTED, text)
        for pattern, repl in _CREDENTIAL_PATTERNS:
            text = pattern.sub(_scheme_token if repl == "scheme" else repl, text)
        return mask_accounts(text)

    def redact_record(self, record: logging.LogRecord) -> None:
        """Redact a record in place (message, arguments and attached exception)."""
        if getattr(record, "_caselle_redacted", False):
            return
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we can show safely
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.redact(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._caselle_redacted = True


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the record and always lets it through."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("caselle-ic-redaction")
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        self.redactor.redact_record(record)
        return True


REDACTOR = Redactor()
FILTER = RedactingFilter(REDACTOR)
_install_lock = threading.Lock()


def _secret_values(source: Any) -> list[str]:
    if source is None:
        return []
    if hasattr(source, "all_secret_values"):
        return list(source.all_secret_values())
    if isinstance(source, str):
        return [source]
    out: list[str] = []
    for item in source:
        out += _secret_values(item)
    return out


def _install_record_factory() -> None:
    current = logging.getLogRecordFactory()
    if getattr(current, "_caselle_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        REDACTOR.redact_record(record)
        return record

    factory._caselle_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _loggers_to_cover() -> list[logging.Logger]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    names = ["prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.extra", "prefect.workers"]
    names += [n for n in list(logging.root.manager.loggerDict) if n.startswith("prefect")]
    for name in dict.fromkeys(names):
        loggers.append(logging.getLogger(name))
    return loggers


def _attach_filter() -> None:
    for lg in _loggers_to_cover():
        if FILTER not in lg.filters:
            lg.addFilter(FILTER)
        for handler in lg.handlers:
            if FILTER not in handler.filters:
                handler.addFilter(FILTER)


def install_redaction(source: Any = None) -> Redactor:
    """Install the redaction (idempotent) and add the secrets of ``source``.

    ``source`` is a ``BillerConfig``, a string, or an iterable of either (several
    billers); None installs only the shape-based rules. Secrets accumulate across calls,
    so a process serving many billers redacts all of them. Call it again after adding
    handlers if you want them to carry the filter too (the record factory already
    covers them).
    """
    REDACTOR.add_secrets(_secret_values(source))
    with _install_lock:
        _install_record_factory()
        _attach_filter()
    return REDACTOR


def register_secrets(values: Any) -> None:
    """Add secrets to the redaction (called by every configuration load).

    Cheap and idempotent: the record factory is installed the first time, so a library
    caller is never unprotected; the filters on Prefect's loggers and on handlers are
    attached at the process edges (:func:`install_redaction` from the CLI and the flows).
    """
    REDACTOR.add_secrets(_secret_values(values))
    if not redaction_installed():
        with _install_lock:
            _install_record_factory()


def redact(text: str) -> str:
    """Redact a string the way log lines are redacted (for reason files, messages)."""
    return REDACTOR.redact(text)


def redaction_installed() -> bool:
    return bool(getattr(logging.getLogRecordFactory(), "_caselle_redacting", False))


__all__: list[str] = [
    "FILTER",
    "REDACTED",
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
    "install_redaction",
    "mask_accounts",
    "redact",
    "redaction_installed",
    "register_secrets",
]
