"""Every error this project raises, in one place.

Hierarchy (modelled on httpx's single exceptions module)::

    CaselleICError                  base; ``str(err)`` is a message that says what to fix
    ├── ConfigError                 the biller TOML or a setting is wrong        (exit 2)
    ├── InputError                  an input file cannot be read as a whole      (exit 2)
    │                               carries file, line and column when known
    ├── OutputError                 an output could not be written               (exit 2)
    ├── LedgerError                 the ledger database refused or is unusable   (exit 2)
    ├── UsageError                  a command-line argument is wrong             (exit 2)
    ├── RecordSchemaError           output records broke a field-map rule that is not
    │                               tied to one record (a bug; nothing written)  (exit 2)
    ├── NothingToWriteError         every record was quarantined; rejects only   (exit 2)
    ├── InboxError                  inbox files failed in a scheduled pickup     (exit 2)
    │                               (each one is in [paths].error with a reason)
    ├── RunFailedError              a flow's run would exit 2: raised after its
    │                               artifacts are published so Prefect shows Failed
    ├── ServiceError                a local service (Prefect server, emulator)
    │                               did not start or answer in time              (exit 2)
    └── CaselleAPIError             talking to Caselle Connect failed
        ├── RetriableError          safe to try again (nothing was committed)
        │   ├── TransportError      connection refused / DNS / TLS before sending
        │   ├── ServerError         HTTP 5xx or GraphQL INTERNAL on a *query*
        │   └── AuthError           HTTP 401 / UNAUTHENTICATED: refresh and resend
        ├── OutcomeUnknownError     a *mutation* was sent and the answer was lost
        │                           (timeout, dropped connection, 5xx, INTERNAL):
        │                           settle with receipts(confirmationNumber:) first
        └── FatalAPIError           Caselle refused the request for good
            ├── NotFoundError       NOT_FOUND
            ├── AlreadyVoidedError  ALREADY_VOIDED
            ├── BadUserInputError   BAD_USER_INPUT
            ├── CredentialsRejectedError  the token endpoint or the API refused the
            │                       credentials even after a fresh token (fix the config)
            └── SchemaValidationError  the document does not validate against the
                                    local schema (never sent)

Messages never contain a secret, a token or a full account number.
"""

from __future__ import annotations

from pathlib import Path


class CaselleICError(Exception):
    """Base class. ``exit_status`` is what the CLI exits with when this escapes a command."""

    exit_status = 2


class ConfigError(CaselleICError):
    """The biller configuration is wrong. Names the file and the setting to fix."""

    def __init__(self, message: str, *, file: str | Path | None = None, setting: str | None = None):
        self.file = str(file) if file is not None else None
        self.setting = setting
        prefix = f"{self.file}: " if self.file else ""
        super().__init__(prefix + message)


class InputError(CaselleICError):
    """An input file cannot be used at all (missing columns, wrong encoding, not CSV)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path,
        line: int | None = None,
        column: str | None = None,
    ):
        self.file = str(file)
        self.line = line
        self.column = column
        where = self.file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


class OutputError(CaselleICError):
    """An output file or directory could not be written."""


class LedgerError(CaselleICError):
    """The ledger database is unreachable or refused an operation."""


class UsageError(CaselleICError):
    """A command-line argument is wrong (for example an account that is not a number)."""


class InboxError(CaselleICError):
    """Some inbox files failed; each is in ``[paths].error`` with its ``.reason.txt``.

    ``summary`` is the pickup's JSON-able report (every file, where it went, why).
    """

    def __init__(self, message: str, *, summary: dict | None = None):
        self.summary = summary or {}
        super().__init__(message)


class ServiceError(CaselleICError):
    """A local service (Prefect server, emulator) did not start or did not answer in time."""


class CaselleAPIError(CaselleICError):
    """A call to Caselle Connect failed. ``code`` is the GraphQL ``extensions.code`` if any."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ):
        self.operation = operation
        self.code = code
        self.status = status
        parts = [message]
        if operation:
            parts.append(f"operation={operation}")
        if code:
            parts.append(f"code={code}")
        if status:
            parts.append(f"http={status}")
        super().__init__(" ".join(parts) if len(parts) == 1 else f"{message} ({', '.join(parts[1:])})")


class RetriableError(CaselleAPIError):
    retriable = True


class TransportError(RetriableError):
    """The request never reached Caselle (connection refused, DNS, TLS)."""


class ServerError(RetriableError):
    """HTTP 5xx or GraphQL INTERNAL for a request that is safe to repeat."""


class AuthError(RetriableError):
    """HTTP 401 or UNAUTHENTICATED: nothing was processed; refresh credentials and resend."""


class OutcomeUnknownError(CaselleAPIError):
    """A mutation was sent and its answer was lost. Settle before any resend."""


class FatalAPIError(CaselleAPIError):
    """Caselle refused the request for good; retrying will not help."""


class NotFoundError(FatalAPIError):
    pass


class AlreadyVoidedError(FatalAPIError):
    pass


class BadUserInputError(FatalAPIError):
    pass


class CredentialsRejectedError(FatalAPIError):
    """Caselle refused the credentials for good: fix the username / secret settings."""


class SchemaValidationError(FatalAPIError):
    """A GraphQL document failed validation against schemas/caselle_connect.graphql."""


#: GraphQL ``extensions.code`` -> exception class for a refused request.
ERROR_CODES: dict[str, type[CaselleAPIError]] = {
    "UNAUTHENTICATED": AuthError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_VOIDED": AlreadyVoidedError,
    "BAD_USER_INPUT": BadUserInputError,
    "INTERNAL": ServerError,
}


class RecordSchemaError(CaselleICError):
    """Records failed a field-map rule that cannot be tied to one record (a missing
    column, a wrong type): a bug in a builder or the field map. Nothing is written."""


class NothingToWriteError(CaselleICError):
    """Every record of the input was quarantined, so no output file was written.

    ``result`` is the run's RunResult (counts, rejects path) so a flow can still publish
    what an analyst needs to fix the input before it re-raises."""

    def __init__(self, message: str, *, result: object = None):
        self.result = result
        super().__init__(message)


class RunFailedError(CaselleICError):
    """A flow run whose command would exit 2 or 3 (SPEC §11 "red means red").

    Raised by a flow after its artifacts are published, so the run ends Failed in Prefect.
    ``result`` is the run's RunResult: the inbox reads it to keep an input whose unsent work
    the next run does (Caselle unreachable), instead of moving it to ``error``."""

    def __init__(self, message: str, *, result: object = None):
        self.result = result
        super().__init__(message)


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it is a regular file.

    ``os.stat`` only (it never opens the path, so a FIFO cannot block the run): "does not
    exist", "is a directory, not a file", or "is not a regular file" (a FIFO, socket or
    device)."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:  # ENOTDIR, ELOOP, a NUL byte in the name...
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a FIFO, socket or device); give a file"
    return None
