"""The root of the fixture tree: what every test shares.

* The environment is isolated per test (``isolated_environ``, autouse): see below.
* The xdist grouping and ordering hooks (``--dist loadgroup``), and the check that the
  groups survived collection.
* ``prefect_harness``: one Prefect test server per session (it takes ~13 s to start).
* ``run_cli``: the installed ``caselle-ic`` console script, as a user runs it.
* The emulator and ledger fixtures are defined once, in :mod:`tests.fixtures.emulators`
  and :mod:`tests.fixtures.ledgers`, loaded here as plugins.

Area conftests (``tests/<area>/conftest.py``) hold only what that area alone uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caselle_ic.emulator.process import CONFIG_SECRET_ENVS
from caselle_ic.env import VARS

pytest_plugins = ["tests.fixtures.emulators", "tests.fixtures.ledgers"]

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
VENV_BIN = Path(sys.executable).parent

# -- the environment -------------------------------------------------------------------------
#: Knobs of the test run itself, read by tests/fixtures/ledgers.py (not by caselle-ic): kept.
TEST_RUN_VARS = frozenset({"CASELLE_IC_PG_ADMIN", "CASELLE_IC_PG_DB", "CASELLE_IC_REQUIRE_POSTGRES"})
#: Variables that change what caselle-ic or Prefect does, removed from the environment of the
#: whole run (and again at the start of each test) so a developer's shell cannot change a
#: result: every variable caselle-ic reads (caselle_ic/env.py), any other CASELLE_IC_* but
#: the test run's own knobs (tests/fixtures/ledgers.py), the secrets the sample biller reads,
#: and the Prefect server to talk to (CLI tests run the direct path unless they opt in).
SCRUBBED = frozenset(
    {v.name for v in VARS}
    | set(CONFIG_SECRET_ENVS)
    | {"PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"}
)


def scrubbed(name: str) -> bool:
    return name in SCRUBBED or (name.startswith("CASELLE_IC_") and name not in TEST_RUN_VARS)


#: The scrubbed variables as the shell that started pytest exported them.
INHERITED = {name: value for name, value in os.environ.items() if scrubbed(name)}


def drop_inherited() -> None:
    for name, value in INHERITED.items():
        if os.environ.get(name) == value:
            del os.environ[name]


# For the whole run, before Prefect is imported (its settings are read from the environment):
# session fixtures and the processes they start (emulators, Prefect servers) inherit none.
drop_inherited()
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


@pytest.fixture(autouse=True)
def isolated_environ() -> Iterator[None]:
    """Each test starts without the shell's values of the scrubbed variables and leaves
    ``os.environ`` as it found it, however it changed it (``monkeypatch``, a direct
    assignment, code under test such as ``caselle-ic demo``, which exports the emulator's
    secrets).

    Session- and module-scoped fixtures are set up before this function-scoped one (unless
    fetched with ``request.getfixturevalue``), so what they export for their tests, e.g. the
    alert tests' emulator secrets, is in the snapshot and stays. Prefect's settings context
    (``prefect_harness``, ``temporary_settings``) is not the environment and is untouched.
    tests/core/test_isolation.py shows both halves.
    """
    saved = dict(os.environ)
    drop_inherited()
    try:
        yield
    finally:
        for name in [n for n in os.environ if n not in saved]:
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order and group the tests for the xdist workers (``--dist loadgroup``).

    * Tests using ``prefect_harness`` form one group: one worker starts one test server
      for all of them, instead of each worker starting its own (~10 s of CPU each).
    * ``slow`` tests go first, then that group, then the rest (a stable sort): they mostly
      wait (a Prefect server, a deadline, a timeout), and started first their waits overlap
      the CPU-bound tests of the other workers instead of ending the run alone.

    Every worker sorts the same way, so the collections still agree.
    """

    def harness(item: pytest.Item) -> bool:
        return "prefect_harness" in getattr(item, "fixturenames", ())

    for item in items:
        if harness(item) and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("prefect-harness"))

    def rank(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("slow") else 1 if harness(item) else 2

    items.sort(key=rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker with ``--dist loadgroup``, every grouped test must carry its group
    in its node id (how xdist's scheduler sees the group). When a pytest or xdist upgrade
    loses it, the grouped tests scatter over the workers, each building its own module
    fixtures (pytest-dev/pytest-xdist#1386): stop here rather than run that way."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if lost:
        message = (
            f"--dist loadgroup lost the xdist_group of {len(lost)} tests (e.g. {lost[0]}); "
            "see the pytest pin in pyproject.toml"
        )
        if sys.__stderr__:  # xdist shows only an INTERNALERROR, not the reason
            sys.__stderr__.write(f"\n{message}\n")
        pytest.exit(message, returncode=4)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``caselle-ic`` console script as a user would."""
    full_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [str(VENV_BIN / "caselle-ic"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
