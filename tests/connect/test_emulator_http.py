"""The emulator speaks GraphQL over HTTP as the specs say (issue 12, items 3-4): raw HTTP
requests against a real emulator process, one per rule."""

from __future__ import annotations

import json
from typing import Any

import requests

from caselle_ic.emulator.process import EmulatorProcess

Q = "query($n: Int!) { customer(customerNumber: $n) { customerNumber } }"
TWO = "query A { __typename } query B { __typename }"
MUTATION = (
    "mutation { customer_send_paper_invoice_update(customerNumber: 1001, sendPaperStatement: true)"
    " { customerNumber } }"
)


def _get(emu: EmulatorProcess, accept: str, **params: str) -> requests.Response:
    return requests.get(
        emu.graphql_url, params=params, headers={"Accept": accept}, auth=("u", emu.secret), timeout=10
    )


def _post(emu: EmulatorProcess, body: dict[str, Any], accept: str = "application/json") -> requests.Response:
    return requests.post(
        emu.graphql_url, json=body, headers={"Accept": accept}, auth=("u", emu.secret), timeout=10
    )


def test_get_query_is_executed(awkward_emu: EmulatorProcess):
    r = _get(awkward_emu, "application/json", query=Q, variables=json.dumps({"n": 1001}))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"data": {"customer": {"customerNumber": 1001}}}


def test_get_mutation_is_405_and_changes_nothing(awkward_emu: EmulatorProcess):
    def updates() -> object:
        return requests.get(
            awkward_emu.base_url + "/_admin/paper-updates", auth=("admin", awkward_emu.secret), timeout=10
        ).json()

    before = updates()
    r = _get(awkward_emu, "application/json", query=MUTATION)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert "data" not in r.json()
    assert updates() == before


def test_graphiql_only_for_html(awkward_emu: EmulatorProcess):
    page = _get(awkward_emu, "text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    r = _get(awkward_emu, "application/json", query="{ __typename }")
    assert r.headers["content-type"].startswith("application/json") and r.json() == {
        "data": {"__typename": "Query"}
    }


def test_request_errors_have_no_data_key(awkward_emu: EmulatorProcess):
    cases: list[dict[str, Any]] = [
        {"query": TWO, "operationName": "C"},  # unknown operation
        {"query": TWO},  # several operations, none named
        {"query": Q, "variables": {"n": "abc"}},  # wrong variable type
        {"query": "{ nope"},  # parse error
    ]
    for body in cases:
        r = _post(awkward_emu, body)
        payload = r.json()
        assert "data" not in payload, (body, payload)
        assert payload["errors"] and r.status_code in (200, 400)


def test_execution_errors_keep_data(awkward_emu: EmulatorProcess):
    r = _post(awkward_emu, {"query": Q, "variables": {"n": 999999}})
    payload = r.json()
    assert "data" in payload


def test_graphql_response_json_media_type(awkward_emu: EmulatorProcess):
    ok = _post(awkward_emu, {"query": "{ __typename }"}, accept="application/graphql-response+json")
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    assert ok.json() == {"data": {"__typename": "Query"}}
    bad = _post(awkward_emu, {"query": TWO}, accept="application/graphql-response+json")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(
        "application/graphql-response+json"
    )
    assert "data" not in bad.json()


def test_empty_operation_name_is_absent(awkward_emu: EmulatorProcess):
    r = _post(awkward_emu, {"query": "query A { __typename }", "operationName": ""})
    assert r.status_code == 200 and r.json() == {"data": {"__typename": "Query"}}
