"""The client over HTTP against the emulator process, with faults injected."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from gql import gql

from caselle_ic.config.model import load_config
from caselle_ic.connect import client as client_module
from caselle_ic.connect.client import (
    CaselleClient,
    ReceiptInput,
    create_receipts_document,
    customers_document,
    send_paper_document,
    validate_document,
)
from caselle_ic.emulator.process import EmulatorProcess, free_port
from caselle_ic.errors import (
    CredentialsRejectedError,
    OutcomeUnknownError,
    SchemaValidationError,
    ServerError,
    TransportError,
)

FAST = {"backoff": 0.01}


def receipt(account: str, amount: str, guid: str) -> ReceiptInput:
    return ReceiptInput(
        receipt_date=date(2025, 6, 5),
        distribution_code=101,
        payment_code=99,
        amount=Decimal(amount),
        account_number=account,
        confirmation_number=guid,
    )


def counters(emu: EmulatorProcess) -> dict[str, int]:
    found: dict[str, int] = emu.state()["counters"]
    return found


# -- schema validation -----------------------------------------------------------------
def test_every_document_constant_validates():
    for name in ("CUSTOMER_QUERY", "RECEIPTS_QUERY", "CREATE_RECEIPT_MUTATION", "VOID_RECEIPT_MUTATION"):
        validate_document(getattr(client_module, name).document, name)
    validate_document(client_module.SEND_PAPER_MUTATION.document)
    for n in (1, 7, 50):
        validate_document(create_receipts_document(n))
        validate_document(send_paper_document(n))
        validate_document(customers_document(n))


def test_invalid_documents_are_refused_before_sending(awkward_cfg, awkward_emu: EmulatorProcess):
    bad_field = gql("query Bad($n: Int!) { customer(customerNumber: $n) { id nickname } }")
    bad_type = gql("query Bad($n: String!) { customer(customerNumber: $n) { id } }")
    bad_arg = gql("mutation Bad($r: Int!) { void_receipt(receiptNumber: $r) { receiptNumber } }")
    before = counters(awkward_emu)["graphql_requests"]
    with CaselleClient.for_purpose(awkward_cfg, "rtdr") as c:
        for doc in (bad_field, bad_type, bad_arg):
            with pytest.raises(SchemaValidationError) as err:
                c.execute(doc.document, {"n": 1001, "r": 1})
            assert "nothing was sent" in str(err.value)
    assert counters(awkward_emu)["graphql_requests"] == before


# -- auth ---------------------------------------------------------------------------------
def test_token_is_reused_then_refreshed_before_expiry(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(token_ttl=2)
    with CaselleClient.for_purpose(awkward_cfg, "rtdr") as c:
        for _ in range(5):
            c.customer(1001)
        assert c.oauth[0].fetches == 1  # reused, not fetched per request
        time.sleep(2.1)
        c.customer(1001)
        assert c.oauth[0].fetches == 2  # refreshed ahead of a 401
    assert counters(awkward_emu)["unauthenticated"] == 0


@pytest.mark.parametrize("unauthenticated_as", ["http", "graphql"])
def test_token_expiry_mid_run_loses_nothing(
    awkward_cfg, awkward_emu: EmulatorProcess, unauthenticated_as: str
):
    awkward_emu.faults(unauthenticated_as=unauthenticated_as)
    with CaselleClient.for_purpose(awkward_cfg, "payments") as pay:
        numbers = []
        for i in range(20):
            if i in (7, 14):
                awkward_emu.expire_tokens()  # the server forgets every token mid-run
            numbers.append(pay.create_receipt(receipt("001048", "1.00", f"exp-{i}")).receipt_number)
            if i == 10:
                awkward_emu.expire_tokens()
                assert pay.customer(1048).balance == Decimal("489.00")  # a query refreshes too
        assert pay.oauth[0].fetches == 4
    assert numbers == sorted(numbers) and len(set(numbers)) == 20
    state = awkward_emu.state()
    assert state["receipts"] == 20 and state["counters"]["receipts_created"] == 20
    assert state["counters"]["unauthenticated"] == 3


def test_http_basic_when_oauth_is_not_configured(awkward_emu: EmulatorProcess, awkward_env, tmp_path: Path):
    cfg = load_config(awkward_emu.write_config(tmp_path / "b.toml", oauth=False))
    with CaselleClient.for_purpose(cfg, "rtdr") as c:
        assert c.oauth == []
        assert c.customer(1002).balance == Decimal("0.10")
    assert counters(awkward_emu)["tokens_issued"] == 0


def test_wrong_credentials_are_fatal_and_named(awkward_emu: EmulatorProcess, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CASELLE_CLIENT_SECRET", "not-the-secret")
    monkeypatch.setenv("CASELLE_RTDR_KEY", "not-the-secret")
    cfg = load_config(awkward_emu.write_config(tmp_path / "b.toml"))
    with CaselleClient.for_purpose(cfg, "rtdr", **FAST) as c, pytest.raises(CredentialsRejectedError) as err:
        c.customer(1001)
    assert "127" in str(err.value) and "not-the-secret" not in str(err.value)
    basic = load_config(awkward_emu.write_config(tmp_path / "c.toml", oauth=False))
    with (
        CaselleClient.for_purpose(basic, "rtdr", **FAST) as c,
        pytest.raises(CredentialsRejectedError) as err,
    ):
        c.customer(1001)
    assert "9/10" in str(err.value)


# -- 5xx ----------------------------------------------------------------------------------
def test_queries_are_retried_through_a_500_burst(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(fail_next=3)
    with CaselleClient.for_purpose(awkward_cfg, "rtdr", max_attempts=4, **FAST) as c:
        assert c.customer(1001).balance == Decimal("1234.50")
    assert counters(awkward_emu)["injected_500"] == 3


def test_a_500_burst_longer_than_the_retries_is_a_server_error(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(fail_next=10)
    with (
        CaselleClient.for_purpose(awkward_cfg, "rtdr", max_attempts=3, **FAST) as c,
        pytest.raises(ServerError),
    ):
        c.customer(1001)
    assert counters(awkward_emu)["injected_500"] == 3


def test_mutations_are_never_blindly_retried_on_500(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        pay.customer(1049)  # token fetched, connection warm
        awkward_emu.faults(fail_next=2)
        before = counters(awkward_emu)["graphql_requests"]
        outcomes = pay.create_receipts(
            [receipt("001049", "1.00", "five-1"), receipt("001049", "2.00", "five-2")]
        )
        assert all(o.unknown for o in outcomes)
        assert counters(awkward_emu)["graphql_requests"] == before + 1  # sent once, not again
        with pytest.raises(OutcomeUnknownError):
            pay.void_receipt(100001, date(2025, 6, 6))
        assert counters(awkward_emu)["graphql_requests"] == before + 2
        # settle: the emulator's 500 came before processing, so nothing committed
        assert pay.receipts("five-1") == [] and pay.receipts("five-2") == []
    assert awkward_emu.state()["receipts"] == 0


def test_repeatable_mutation_is_retried(awkward_cfg, awkward_emu: EmulatorProcess):
    awkward_emu.faults(fail_next=2)
    with CaselleClient.for_purpose(awkward_cfg, "paperless", **FAST) as c:
        assert c.set_send_paper(1001, False).send_paper_statement is False
    assert [u["customerNumber"] for u in awkward_emu.paper_updates()] == [1001]


# -- lost answers ---------------------------------------------------------------------------
def test_commit_then_drop_is_outcome_unknown_then_settled(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        before = pay.customer(1048).balance
        assert before is not None
        awkward_emu.faults(drop_after_commit=1)
        batch = [
            receipt("001048", "1.00", "drop-1"),
            receipt("001048", "2.00", "drop-2"),
            receipt("001048", "3.00", "drop-3"),
        ]
        outcomes = pay.create_receipts(batch)
        assert [o.unknown for o in outcomes] == [True, True, True]
        assert "settle" in str(outcomes[0].error)
        # settled by confirmation number: each committed exactly once, nothing sent again
        settled = {r.confirmation_number: pay.receipts(r.confirmation_number) for r in batch}
        assert {k: len(v) for k, v in settled.items()} == {"drop-1": 1, "drop-2": 1, "drop-3": 1}
        assert settled["drop-2"][0].amount == Decimal("2.00")
        assert pay.customer(1048).balance == before - Decimal("6.00")
    state = awkward_emu.state()
    assert state["receipts"] == 3 and state["counters"]["dropped_connections"] == 1


def test_void_whose_answer_is_dropped_is_settled_by_receipts(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        r = pay.create_receipt(receipt("001050", "2.00", "void-drop"))
        awkward_emu.faults(drop_after_commit=1)
        with pytest.raises(OutcomeUnknownError):
            pay.void_receipt(r.receipt_number, date(2025, 6, 6))
        (after,) = pay.receipts("void-drop")
        assert after.voided is True  # it did commit; no resend, so no ALREADY_VOIDED


def test_internal_after_commit_marks_items_unknown(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", **FAST) as pay:
        awkward_emu.faults(internal_after_commit=1)
        outcomes = pay.create_receipts(
            [receipt("001049", "1.00", "int-1"), receipt("009999", "1.00", "int-2")]
        )
        assert outcomes[0].unknown and outcomes[0].error is not None and outcomes[0].error.code == "INTERNAL"
        assert (
            not outcomes[1].unknown
            and outcomes[1].error is not None
            and outcomes[1].error.code == "NOT_FOUND"
        )
        assert len(pay.receipts("int-1")) == 1


def test_read_timeout_on_a_mutation_is_outcome_unknown(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments", timeout=(2.0, 0.3), **FAST) as pay:
        pay.customer(1049)
        awkward_emu.faults(latency_ms=800)
        before = counters(awkward_emu)["graphql_requests"]
        with pytest.raises(OutcomeUnknownError, match="read timeout"):
            pay.create_receipt(receipt("001049", "1.00", "slow-1"))
        awkward_emu.faults(latency_ms=0)
        time.sleep(0.8)
        assert len(pay.receipts("slow-1")) == 1  # the server did take it
        assert (
            counters(awkward_emu)["graphql_requests"] == before + 2
        )  # the mutation once, the settle query once


def test_refused_connection_is_retried_even_for_mutations(
    awkward_env, awkward_emu: EmulatorProcess, tmp_path: Path
):
    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg = load_config(awkward_emu.write_config(tmp_path / "b.toml", settings={"11": dead}))
    with (
        CaselleClient.for_purpose(cfg, "payments", max_attempts=3, **FAST) as pay,
        pytest.raises(TransportError) as err,
    ):
        pay.create_receipts([receipt("001049", "1.00", "dead-1")])
    assert "connection refused" in str(err.value)
    assert awkward_emu.state()["receipts"] == 0


# -- failover -------------------------------------------------------------------------------
def test_failover_to_the_secondary_when_the_primary_is_down(
    awkward_env, awkward_emu: EmulatorProcess, tmp_path: Path
):
    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg = load_config(
        awkward_emu.write_config(
            tmp_path / "b.toml", settings={"8": dead, "88": awkward_emu.graphql_url_under("secondary")}
        )
    )
    with CaselleClient.for_purpose(cfg, "rtdr", **FAST) as c:
        assert c.active_endpoint == "rtdr"
        assert c.customer(1050).balance == Decimal("2.56")
        assert (c.active_endpoint, c.failovers) == ("rtdr-secondary", 1)
        assert c.customer(1049).balance == Decimal("75.25")  # stays on the secondary
        assert c.failovers == 1


def test_failover_on_5xx_and_paperless_secondary_credentials(
    awkward_emu: EmulatorProcess, awkward_env, tmp_path: Path
):
    cfg = load_config(
        awkward_emu.write_config(
            tmp_path / "b.toml",
            oauth=False,
            settings={
                "14": awkward_emu.graphql_url_under("primary"),
                "111": awkward_emu.graphql_url_under("secondary"),
                "112": "secondary-user",
                "113": "env:CASELLE_DP_PASSWORD",
            },
        )
    )
    awkward_emu.faults(down_prefixes=["/primary"])
    with CaselleClient.for_purpose(cfg, "paperless", max_attempts=2, **FAST) as c:
        assert c.set_send_paper(1002, False).send_paper_statement is False
        assert c.active_endpoint == "paperless-secondary"
    assert counters(awkward_emu)["injected_503"] == 2
    assert awkward_emu.paper_updates()[0]["sendPaperStatement"] is False


def test_no_failover_for_a_mutation_whose_answer_was_lost(
    awkward_env, awkward_emu: EmulatorProcess, tmp_path: Path
):
    cfg = load_config(
        awkward_emu.write_config(
            tmp_path / "b.toml",
            settings={
                "8": awkward_emu.graphql_url_under("primary"),
                "88": awkward_emu.graphql_url_under("secondary"),
            },
        )
    )
    with CaselleClient.for_purpose(cfg, "rtdr", **FAST) as c:
        c.customer(1001)
        awkward_emu.faults(drop_after_commit=1)
        outcomes = c.create_receipts([receipt("001001", "1.00", "nofail-1")])
        assert outcomes[0].unknown and c.active_endpoint == "rtdr"
    assert awkward_emu.state()["receipts"] == 1
