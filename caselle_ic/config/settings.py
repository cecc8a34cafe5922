"""IC advanced setting IDs (:class:`Setting`), which of them are passwords, and secret
references: any value may be ``env:NAME`` or ``prefect-secret:NAME``, resolved here, at the
edge (:func:`resolve_reference`)."""

from __future__ import annotations

import os
import re
from enum import IntEnum
from pathlib import Path
from typing import Any

from caselle_ic.errors import ConfigError


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
    """Is ``value`` an ``env:`` or ``prefect-secret:`` reference (resolved or not)?"""
    return bool(_REF.match(value))
