"""Shared fixtures. Area-specific fixtures live beside their tests.

* ``prefect_harness``: one Prefect test server per session (it takes ~13 s to start).
* ``pg_url``: a real PostgreSQL database on 127.0.0.1:5432 (created if missing). When
  the server is not reachable the PostgreSQL tests are skipped, unless
  ``CASELLE_IC_REQUIRE_POSTGRES=1`` (set by .ci/run), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from caselle_ic.emulator.process import EmulatorProcess

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
os.environ.pop("PREFECT_API_URL", None)  # CLI tests run the direct path unless they opt in

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("CASELLE_IC_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_TEST_DB = os.environ.get("CASELLE_IC_PG_DB", "caselle_ic_test")


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


@pytest.fixture(scope="session")
def pg_url() -> str:
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("select 1 from pg_database where datname = :d"), {"d": PG_TEST_DB}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'create database "{PG_TEST_DB}"'))
        admin.dispose()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CASELLE_IC_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_TEST_DB


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


# -- Caselle Connect emulator (issue 3) ------------------------------------------------
# ``emulator``: a real ``caselle-ic emulator`` process on a free port with a fresh SQLite
# file and a random secret (~0.6 s to start). Seeded from data/samples/statements.csv when
# it exists, else from a generated extract of the 50 sample accounts 001001..001050.
# ``emulator_config``: a biller TOML pointing at it, with the secret env vars set.


def write_seed_extract(path: Path, accounts: range = range(1001, 1051)) -> Path:
    """A minimal statement extract (SPEC §2.1 columns) for the given customer numbers.

    Balances are deterministic: customer n owes ``n % 500`` dollars and ``n % 100`` cents.
    """
    lines = ["Acct No,Customer Name,statement_date,due_date,customer_balance,last_statement_balance"]
    for n in accounts:
        lines.append(f"{n:06d},Customer {n},06/01/2025,06/20/2025,{n % 500}.{n % 100:02d},0.00")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


class EmulatorPool:
    """One emulator process per seed content for the whole worker, reset before each test.

    Starting a process costs ~1 s of CPU and ~200 tests use one; ``POST /_admin/reset``
    gives each test a new database with the same seed, no faults and zeroed counters. A
    test that stopped its emulator (or left it dead) gets a new process next time.
    """

    def __init__(self, seeds: Path) -> None:
        self._seeds = seeds  # the pool outlives each test's tmp_path: seeds are copied here
        self._procs: dict[str, EmulatorProcess] = {}

    def get(self, seed: Path) -> EmulatorProcess:
        from caselle_ic.emulator.process import EmulatorProcess

        key = hashlib.sha256(seed.read_bytes()).hexdigest()
        emu = self._procs.get(key)
        if emu is not None and emu.running:
            emu.reset()
            return emu
        if emu is not None:
            emu.__exit__(None, None, None)
        kept = self._seeds / f"{key}.csv"
        shutil.copyfile(seed, kept)
        emu = self._procs[key] = EmulatorProcess(seed=kept)
        emu.start()
        return emu

    def close(self) -> None:
        for emu in self._procs.values():
            emu.__exit__(None, None, None)


@pytest.fixture(scope="session")
def emulator_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPool]:
    pool = EmulatorPool(tmp_path_factory.mktemp("emulator-seeds"))
    yield pool
    pool.close()


@pytest.fixture
def emulator(emulator_pool: EmulatorPool) -> EmulatorProcess:
    """The emulator seeded with data/samples/statements.csv (the sample biller's accounts)."""
    return emulator_pool.get(SAMPLES / "statements.csv")


@pytest.fixture
def emulator_config(emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample biller pointed at ``emulator`` (OAuth), secrets exported for this test."""
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    return emulator.write_config(tmp_path / "biller" / "biller.toml")
