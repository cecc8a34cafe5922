"""The emulator as a real process: auth, state, errors, restart, seeding."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import requests

from caselle_ic.connect.client import CaselleClient, ReceiptInput
from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.errors import AlreadyVoidedError, BadUserInputError, NotFoundError

QUERY = {"query": "query($n: Int!) { customer(customerNumber: $n) { balance } }", "variables": {"n": 1001}}


def receipt(account: str, amount: str, guid: str) -> ReceiptInput:
    return ReceiptInput(
        receipt_date=date(2025, 6, 5),
        distribution_code=101,
        payment_code=99,
        amount=Decimal(amount),
        account_number=account,
        account_name="Payer",
        confirmation_number=guid,
    )


def test_every_request_needs_credentials(awkward_emu: EmulatorProcess):
    no_auth = requests.post(awkward_emu.graphql_url, json=QUERY, timeout=10)
    assert no_auth.status_code == 401
    assert no_auth.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    bad_bearer = requests.post(
        awkward_emu.graphql_url, json=QUERY, headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert bad_bearer.status_code == 401
    bad_basic = requests.post(awkward_emu.graphql_url, json=QUERY, auth=("sample-city", "wrong"), timeout=10)
    assert bad_basic.status_code == 401
    good_basic = requests.post(
        awkward_emu.graphql_url, json=QUERY, auth=("anyone", awkward_emu.secret), timeout=10
    )
    assert good_basic.status_code == 200
    assert good_basic.json() == {"data": {"customer": {"balance": "1234.50"}}}
    # the admin API too
    assert requests.get(awkward_emu.base_url + "/_admin/state", timeout=10).status_code == 401
    # the token endpoint refuses a wrong secret and a wrong grant
    form = {"grant_type": "client_credentials", "client_id": "sample-city", "client_secret": "wrong"}
    assert requests.post(awkward_emu.token_url, data=form, timeout=10).status_code == 401
    form |= {"client_secret": awkward_emu.secret, "grant_type": "password"}
    assert requests.post(awkward_emu.token_url, data=form, timeout=10).status_code == 400


def test_token_endpoint_and_bearer(awkward_emu: EmulatorProcess):
    form = {
        "grant_type": "client_credentials",
        "client_id": "sample-city",
        "client_secret": awkward_emu.secret,
    }
    tok = requests.post(awkward_emu.token_url, data=form, timeout=10).json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600 and len(tok["access_token"]) > 20
    ok = requests.post(
        awkward_emu.graphql_url, json=QUERY, headers={"Authorization": f"Bearer {tok['access_token']}"}
    )
    assert ok.status_code == 200
    assert awkward_emu.expire_tokens() == 1
    again = requests.post(
        awkward_emu.graphql_url, json=QUERY, headers={"Authorization": f"Bearer {tok['access_token']}"}
    )
    assert again.status_code == 401
    awkward_emu.faults(unauthenticated_as="graphql")
    as_graphql = requests.post(awkward_emu.graphql_url, json=QUERY, headers={"Authorization": "Bearer x"})
    assert as_graphql.status_code == 200
    assert as_graphql.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_seeded_from_the_extract(awkward_cfg):
    with CaselleClient.for_purpose(awkward_cfg, "rtdr") as c:
        # "00-1017" cleans to customer 1017; "(12.00)" is a credit balance; first row wins
        dijkstra = c.customer(1017)
        assert (dijkstra.name, dijkstra.balance) == ("Edsger Dijkstra", Decimal("99.99"))
        babbage = c.customer(1003)
        assert (babbage.name, babbage.balance) == ("Babbage, Charles", Decimal("-12.00"))
        assert babbage.send_paper_statement is True
        assert c.customer(1048).balance == Decimal("500.00")


def test_balance_moves_with_receipts_and_voids(awkward_cfg, awkward_emu: EmulatorProcess):
    with (
        CaselleClient.for_purpose(awkward_cfg, "payments") as pay,
        CaselleClient.for_purpose(awkward_cfg, "rtdr") as rtdr,
    ):
        before = rtdr.customer(1001).balance
        assert before == Decimal("1234.50")
        first = pay.create_receipt(receipt("001001", "100.25", "guid-a"))
        second = pay.create_receipt(receipt("1001", "0.25", "guid-b"))
        assert second.receipt_number > first.receipt_number
        assert (first.amount, first.voided, first.void_date) == (Decimal("100.25"), False, None)
        assert rtdr.customer(1001).balance == before - Decimal("100.25") - Decimal("0.25")
        voided = pay.void_receipt(first.receipt_number, date(2025, 6, 6))
        assert (voided.voided, voided.void_date) == (True, date(2025, 6, 6))
        assert rtdr.customer(1001).balance == before - Decimal("0.25")
        found = pay.receipts("guid-a")
        assert [(r.receipt_number, r.voided) for r in found] == [(first.receipt_number, True)]
        assert pay.receipts("never-sent") == []
        third = pay.create_receipt(receipt("001002", "0.10", "guid-c"))
        assert third.receipt_number > second.receipt_number
        assert rtdr.customer(1002).balance == Decimal("0.00")
    assert awkward_emu.state()["receipts"] == 3


def test_refusals_carry_their_codes(awkward_cfg):
    with CaselleClient.for_purpose(awkward_cfg, "payments") as pay:
        r = pay.create_receipt(receipt("001049", "5.00", "guid-v"))
        pay.void_receipt(r.receipt_number, date(2025, 6, 6))
        with pytest.raises(AlreadyVoidedError) as already:
            pay.void_receipt(r.receipt_number, date(2025, 6, 7))
        assert already.value.code == "ALREADY_VOIDED" and already.value.operation == "void_receipt"
        with pytest.raises(NotFoundError) as missing:
            pay.void_receipt(999, date(2025, 6, 7))
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(NotFoundError):
            pay.create_receipt(receipt("009999", "5.00", "guid-x"))
        with pytest.raises(NotFoundError):
            pay.customer(424242)
        with pytest.raises(BadUserInputError) as zero:
            pay.create_receipt(receipt("001049", "0.00", "guid-y"))
        assert zero.value.code == "BAD_USER_INPUT" and "greater than 0" in str(zero.value)
        with pytest.raises(BadUserInputError):  # a mapping input bypasses ReceiptInput's own check
            pay.create_receipt(
                {
                    "receiptDate": "2025-06-05",
                    "distributionCode": 101,
                    "paymentCode": 99,
                    "amount": "1.005",
                    "accountNumber": "001049",
                    "glActivityNumber": 0,
                    "confirmationNumber": "guid-z",
                }
            )
        with pytest.raises(BadUserInputError):
            pay.create_receipt(receipt("10-49", "1.00", "guid-w"))  # not digits
        assert pay.receipts("guid-y") == [] and pay.receipts("guid-z") == []


def test_customer_query_needs_exactly_one_argument(awkward_emu: EmulatorProcess):
    body = {"query": '{ customer(customerNumber: 1001, id: "cust-1001") { id } }'}
    r = requests.post(awkward_emu.graphql_url, json=body, auth=("u", awkward_emu.secret), timeout=10).json()
    assert r["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    by_name = {"query": '{ customer(name: "grace hopper") { customerNumber } }'}
    r = requests.post(
        awkward_emu.graphql_url, json=by_name, auth=("u", awkward_emu.secret), timeout=10
    ).json()
    assert r == {"data": {"customer": {"customerNumber": 1002}}}


def test_restart_keeps_the_data(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments") as pay:
        r1 = pay.create_receipt(receipt("001050", "1.56", "guid-r1"))
        pay.set_send_paper(1050, False)
    old_pid = awkward_emu.pid
    awkward_emu.restart()
    assert awkward_emu.pid != old_pid
    # a new client: the old token died with the process (tokens live in memory)
    with CaselleClient.for_purpose(awkward_cfg, "payments") as pay:
        after = pay.customer(1050)
        assert (after.balance, after.send_paper_statement) == (Decimal("1.00"), False)
        assert [r.receipt_number for r in pay.receipts("guid-r1")] == [r1.receipt_number]
        r2 = pay.create_receipt(receipt("001050", "1.00", "guid-r2"))
        assert r2.receipt_number > r1.receipt_number
        assert pay.customer(1050).balance == Decimal("0.00")
    assert awkward_emu.state()["customers"] == 7  # the seed did not duplicate or reset anyone


def test_a_client_survives_the_restart(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "rtdr") as rtdr:
        assert rtdr.customer(1049).balance == Decimal("75.25")
        awkward_emu.restart()  # its token is gone: the client gets 401, fetches a new one, goes on
        assert rtdr.customer(1049).balance == Decimal("75.25")
        assert rtdr.oauth[0].fetches == 2


def test_aliased_batch_answers_each_item(awkward_cfg, awkward_emu: EmulatorProcess):
    with CaselleClient.for_purpose(awkward_cfg, "payments") as pay:
        outcomes = pay.create_receipts(
            [
                receipt("001048", "10.00", "b-1"),
                receipt("009999", "10.00", "b-2"),
                receipt("001048", "-1.00", "b-3"),
                receipt("001049", "0.25", "b-4"),
            ]
        )
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert isinstance(outcomes[1].error, NotFoundError)
    assert isinstance(outcomes[2].error, BadUserInputError)
    assert outcomes[0].value is not None and outcomes[3].value is not None
    assert outcomes[3].value.receipt_number == outcomes[0].value.receipt_number + 1
    state = awkward_emu.state()
    assert state["receipts"] == 2 and state["counters"]["graphql_requests"] >= 1
    assert state["counters"]["mutation_requests"] == 1  # one document for the batch


def test_batched_json_arrays_are_refused(awkward_emu: EmulatorProcess):
    r = requests.post(
        awkward_emu.graphql_url, json=[QUERY, QUERY], auth=("u", awkward_emu.secret), timeout=10
    )
    assert r.status_code == 400


def test_admin_faults_are_validated(awkward_emu: EmulatorProcess):
    with pytest.raises(Exception, match="unknown fault"):
        awkward_emu.faults(explode=True)
    with pytest.raises(Exception, match="non-negative"):
        awkward_emu.faults(fail_next=-1)
    assert awkward_emu.faults(latency_ms=5, fail_next=2)["fail_next"] == 2
    assert awkward_emu.reset_faults()["fail_next"] == 0


def test_emulator_refuses_to_start_without_a_secret(tmp_path):
    from tests.conftest import run_cli

    r = run_cli(
        "emulator", "--port", "1", "--db", str(tmp_path / "x.db"), env={"CASELLE_EMULATOR_SECRET": ""}
    )
    assert r.returncode == 2
    assert "CASELLE_EMULATOR_SECRET" in r.stderr


def test_reset_is_a_new_database_with_the_start_seed(awkward_cfg, awkward_emu: EmulatorProcess):
    """The test fixtures reuse one process per seed and reset it between tests."""
    fresh = awkward_emu.state()
    with (
        CaselleClient.for_purpose(awkward_cfg, "payments") as pay,
        CaselleClient.for_purpose(awkward_cfg, "rtdr") as rtdr,
    ):
        first = pay.create_receipt(receipt("001001", "100.25", "guid-a"))
        pay.void_receipt(first.receipt_number, date(2025, 6, 6))
        pay.set_send_paper(1002, False)
        awkward_emu.faults(fail_next=5, latency_ms=1, down_prefixes=["/x"])
        assert awkward_emu.state() != fresh
        after = awkward_emu.reset()
        assert after == fresh == awkward_emu.state()  # counters, faults, receipts, tokens: as new
        assert awkward_emu.receipts() == [] and awkward_emu.paper_updates() == []
        assert rtdr.customer(1001).balance == Decimal("1234.50")  # the seed's balance again
        again = pay.create_receipt(receipt("001001", "1.00", "guid-a"))
        assert again.receipt_number == first.receipt_number  # numbering starts over
        assert pay.receipts("guid-a") == [again]
