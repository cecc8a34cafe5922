"""Log redaction: secrets, tokens and account numbers never reach a log line.

Checked through plain ``logging`` and through Prefect's run logger in a real flow run on
the Prefect test server, reading back the logs the server stored (what the UI shows).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from caselle_ic.config.model import load_config
from caselle_ic.logsafe import (
    FILTER,
    REDACTED,
    install_redaction,
    mask_accounts,
    redact,
    redaction_installed,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzYW1wbGUtY2l0eSJ9.c2lnbmF0dXJlXzEyMw"
OPAQUE_TOKEN = "tok_8hd72HSk2mzQ91xx"
ACCOUNTS = ["001017", "00-1017", "001.018", "4455667788"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("account 001001 owes", "account ****1001 owes"),
        ("accounts 00-1017 and 001.018", "accounts ****1017 and ****1018"),
        ("phone 303-555-0123", "phone ****0123"),
        ("'001001'.", "'****1001'."),
        ("customer 1001 (4 digits: its own last 4)", "customer 1001 (4 digits: its own last 4)"),
        ("12345 rows", "12345 rows"),
        ("1,000,000 rows, 1000000 rows", "1,000,000 rows, ****0000 rows"),
        ("$1,234.50 1234.56 -12.00 (12.00) 123456.78", "$1,234.50 1234.56 -12.00 (12.00) 123456.78"),
        ("2025-01-31 2025-01-31T06:00:00-07:00 1/31/2025 06:00:00", None),
        ("InvoiceNumber 1-1/1/2021", None),
        ("INVCLD_CSLSTMT101_20250131060000.txt 101_PYMT_20250131.TXT", None),
        ("guid 5009a105-933f-4e03-98f7-84b417d55d9f", None),
        ("http://127.0.0.1:8765/tp/api/cr0/graphql took 0.125 s", None),
        ("001 019", None),  # space-separated groups are two numbers to us (documented)
    ],
)
def test_account_rule(text: str, expected: str | None) -> None:
    assert mask_accounts(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        (f"{{'Authorization': 'Bearer {OPAQUE_TOKEN}'}}", OPAQUE_TOKEN),
        ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
        (f'{{"access_token": "{OPAQUE_TOKEN}", "token_type": "Bearer"}}', OPAQUE_TOKEN),
        ("grant_type=client_credentials&client_id=x&client_secret=abcDEF123", "abcDEF123"),
        (f"got {TOKEN} back", TOKEN),
        (f"bearer {OPAQUE_TOKEN}", OPAQUE_TOKEN),
    ],
)
def test_credentials_by_shape(text: str, gone: str) -> None:
    out = redact(text)
    assert gone not in out
    assert REDACTED in out


def test_prose_is_not_mangled() -> None:
    text = "HTTP basic authentication; Bearer token refreshed; token_type Bearer; prefect-secret:my-block"
    assert redact(text) == text


def test_load_config_registers_its_secrets(secrets_env: dict[str, str], biller_toml: Path) -> None:
    cfg = load_config(biller_toml)
    assert set(cfg.all_secret_values()) == set(secrets_env.values())
    for value in secrets_env.values():
        assert redact(f"x{value}y") == f"x{REDACTED}y"
        # URL-encoded too (form bodies, query strings)
        assert value not in redact(f"client_secret%3D{value}")


def test_install_is_idempotent(secrets_env: dict[str, str]) -> None:
    before = logging.getLogRecordFactory()
    install_redaction(list(secrets_env.values()))
    factory = logging.getLogRecordFactory()
    install_redaction(list(secrets_env.values()))
    install_redaction()
    assert logging.getLogRecordFactory() is factory
    assert redaction_installed()
    assert logging.getLogger().filters.count(FILTER) == 1
    assert logging.getLogger("prefect.flow_runs").filters.count(FILTER) == 1
    for handler in logging.getLogger("prefect.flow_runs").handlers:
        assert handler.filters.count(FILTER) == 1
    assert before is factory or getattr(before, "_caselle_redacting", False) is False


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in [*secrets, TOKEN, OPAQUE_TOKEN, *ACCOUNTS] if s in text]


def test_std_logging_is_redacted(
    secrets_env: dict[str, str], biller_toml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_config(biller_toml)  # registers the secrets
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # added after installation: the factory covers it
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("caselle_ic.test_logsafe")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            pw = secrets_env["CASELLE_DP_PASSWORD"]
            logger.info("posting with password %s and header %s", pw, {"Authorization": f"Bearer {TOKEN}"})
            logger.warning("account %s collides with %s (%s)", "001017", "00-1017", "001.018")
            logger.info("token %s for customer %s", OPAQUE_TOKEN, 4455667788)
            try:
                raise RuntimeError(
                    f"connect failed secret={secrets_env['CASELLE_CLIENT_SECRET']} acct 4455667788"
                )
            except RuntimeError:
                logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    captured = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    secrets = list(secrets_env.values())
    assert _leaks(out, secrets) == []
    assert _leaks(captured, secrets) == []
    # what remains is useful: masked accounts, marked redactions, the traceback kept
    assert "****1017" in out and "****7788" in out and REDACTED in out
    assert "Traceback" in out and "RuntimeError" in out


@pytest.mark.prefect
def test_prefect_run_logs_are_redacted(
    prefect_harness: None, secrets_env: dict[str, str], biller_toml: Path
) -> None:
    """Log through get_run_logger() and print() in a real flow run; read the stored logs back."""
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    @flow(name="logsafe-check", log_prints=True)
    def leaky(config: str) -> str:
        from prefect.runtime import flow_run

        cfg = load_config(config)
        install_redaction(cfg)
        pw = secrets_env["CASELLE_RTDR_KEY"]
        logger = get_run_logger()
        logger.info("RTDR key is %s; Authorization: Bearer %s", pw, TOKEN)
        logger.warning("account 001017 / 00-1017 / 001.018 and customer 4455667788")
        print(f"print: client secret {secrets_env['CASELLE_CLIENT_SECRET']} token {OPAQUE_TOKEN}")
        try:
            raise ValueError(f"password={secrets_env['CASELLE_DP_PASSWORD']}")
        except ValueError:
            logger.exception("failed once")
        return str(flow_run.id)

    run_id = leaky(str(biller_toml))

    # the API handler carries the filter too (belt and braces with the record factory)
    api_handlers = [
        h for h in logging.getLogger("prefect.flow_runs").handlers if isinstance(h, APILogHandler)
    ]
    assert api_handlers and all(FILTER in h.filters for h in api_handlers)

    for h in api_handlers:
        h.flush()
    import asyncio
    import uuid

    async def read() -> list[str]:
        async with get_client() as client:
            for _ in range(50):
                logs = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
                )
                messages = [lg.message for lg in logs]
                if (
                    sum(
                        "account" in m or "RTDR key" in m or "print:" in m or "failed once" in m
                        for m in messages
                    )
                    >= 4
                ):
                    return messages
                await asyncio.sleep(0.2)
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)]))
            )
            raise AssertionError(f"logs did not arrive: {messages!r} runs={runs!r}")

    messages = asyncio.run(read())
    text = "\n".join(messages)
    assert _leaks(text, list(secrets_env.values())) == [], text
    assert "****1017" in text and "****7788" in text and REDACTED in text
    assert "Traceback" in text  # the exception is still there, redacted
