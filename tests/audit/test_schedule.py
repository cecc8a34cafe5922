"""``[schedule].audit``: by default an hour after the day's last payments pickup."""

from __future__ import annotations

import pytest

from caselle_ic.audit.schedule import audit_cron
from caselle_ic.config.sections import ScheduleSection


@pytest.mark.parametrize(
    ("payments", "audit", "expected"),
    [
        ("0 7 * * *", None, "0 8 * * *"),
        ("30 6,14 * * 1-5", None, "30 15 * * 1-5"),
        ("*/15 6-18 * * 1-5", None, "45 19 * * 1-5"),
        ("0 23 * * *", None, "59 23 * * *"),
        ("", None, None),  # payments on demand: so is the audit
        ("0 7 * * *", "15 9 * * *", "15 9 * * *"),
        ("0 7 * * *", "", None),  # "" = on demand
    ],
)
def test_audit_cron(payments: str, audit: str | None, expected: str | None) -> None:
    assert audit_cron(ScheduleSection(payments=payments, audit=audit)) == expected
