"""Cases run by tests/core/test_isolation.py in a pytest of their own, in this order, from a
shell that exported the variables it names. Not collected by the suite (not ``test_*.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from caselle_ic.emulator.process import CONFIG_SECRET_ENVS
from caselle_ic.env import VARS
from tests.conftest import TEST_RUN_VARS


def test_1_a_test_changes_the_environment_without_monkeypatch() -> None:
    os.environ["ISOLATION_LEAK"] = "leaked"
    os.environ["ISOLATION_KEPT"] = "changed"
    del os.environ["ISOLATION_GONE"]
    os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"


def test_2_the_next_test_sees_the_environment_as_it_was() -> None:
    assert "ISOLATION_LEAK" not in os.environ
    assert os.environ["ISOLATION_KEPT"] == "from-the-shell"
    assert os.environ["ISOLATION_GONE"] == "from-the-shell"
    assert "PREFECT_API_URL" not in os.environ


def test_3_the_shells_caselle_ic_prefect_and_secret_variables_do_not_reach_a_test() -> None:
    assert [v.name for v in VARS if v.name in os.environ] == []
    # the test run's own knobs stay (CI exports CASELLE_IC_REQUIRE_POSTGRES for the whole run)
    assert [n for n in os.environ if n.startswith("CASELLE_IC_") and n not in TEST_RUN_VARS] == []
    assert [n for n in CONFIG_SECRET_ENVS if n in os.environ] == []
    assert "PREFECT_API_URL" not in os.environ
    assert os.environ["CASELLE_IC_PG_DB"] == "kept"  # a knob of the test run itself stays


@pytest.fixture(scope="module")
def exported_by_a_module_fixture() -> Iterator[None]:
    os.environ["CASELLE_IC_RETRY_WINDOW"] = "2"  # as the alert tests export the emulator's secrets
    yield
    del os.environ["CASELLE_IC_RETRY_WINDOW"]


@pytest.mark.parametrize("n", [1, 2])
def test_4_what_a_module_fixture_exports_reaches_each_of_its_tests(
    exported_by_a_module_fixture: None, n: int
) -> None:
    assert os.environ["CASELLE_IC_RETRY_WINDOW"] == "2"
    os.environ["CASELLE_IC_RETRY_WINDOW"] = "3"  # and a test changing it changes it for itself
