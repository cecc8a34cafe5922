"""When the scheduled ``daily-audit`` runs (``[schedule].audit``): by default an hour after
the day's last payments pickup (``[schedule].payments``), so it audits what that run posted."""

from __future__ import annotations

from caselle_ic.config.sections import ScheduleSection


def _values(field: str, top: int) -> set[int] | None:
    """The values a cron field takes (``*``, ``a``, ``a-b``, ``*/n``, ``a-b/n``, lists), or
    None for what this reading does not cover (names, ``L``, ``#``)."""
    out: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            return None
        step = int(step_text or 1)
        if span == "*":
            lo, hi = 0, top
        elif span.isdigit():
            lo = int(span)
            hi = top if step_text else lo
        elif "-" in span and all(x.isdigit() for x in span.split("-", 1)):
            lo, hi = (int(x) for x in span.split("-", 1))
        else:
            return None
        if step < 1 or lo > hi or hi > top:
            return None
        out.update(range(lo, hi + 1, step))
    return out


def audit_cron(schedule: ScheduleSection) -> str | None:
    """The audit's cron, or None (on demand only).

    ``[schedule].audit`` when given (``""``: on demand). Otherwise one run a day, at the
    minute of the day's last payments pickup, an hour later (``0 7 * * *`` -> ``0 8 * * *``,
    ``*/15 6-18 * * 1-5`` -> ``45 19 * * 1-5``), on the same days; a last pickup in the 23:00
    hour gives 23:59. None when payments are on demand.
    """
    if schedule.audit is not None:
        return schedule.audit or None
    if not schedule.payments:
        return None
    minute, hour, dom, month, dow = schedule.payments.split()
    minutes, hours = _values(minute, 59), _values(hour, 23)
    last_minute = max(minutes) if minutes else 0
    last_hour = max(hours) if hours else 7
    if last_hour == 23:
        return f"59 23 {dom} {month} {dow}"
    return f"{last_minute} {last_hour + 1} {dom} {month} {dow}"


__all__ = ["audit_cron"]
