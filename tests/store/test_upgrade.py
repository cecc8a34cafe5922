"""One store: a ledger made by the code before the inbox claims moved into the migrations
(commit 7fe4e1a, where the inbox created ``inbox_files`` with ``create_all`` on an engine
of its own) opens with today's code: migration 5 keeps the table and its rows, and the
claims work on the ledger's one engine. SQLite and PostgreSQL.

The old code runs for real, in a subprocess, from ``git archive 7fe4e1a`` of this
repository (skipped when that commit is not in the checkout's history).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.store.inbox_claims import InboxStore, inbox_files
from caselle_ic.store.ledger import open_ledger
from caselle_ic.store.migrations import MIGRATIONS
from caselle_ic.store.tables import runs, schema_version

OLD_MAIN = "7fe4e1a"
REPO = Path(__file__).resolve().parents[2]
SHA = "a" * 64

OLD_CODE = """
import sys
from caselle_ic.ops.inbox import InboxStore
from caselle_ic.store.ledger import open_ledger
url, with_ledger = sys.argv[1], sys.argv[2] == "yes"
if with_ledger:
    led = open_ledger(url)
    led.finish_run(led.start_run("b1", "payments"), "ok", {"posted": 1})
    led.close()
store = InboxStore(url)
store.claim(biller="b1", biller_name="Town", sha256=sys.argv[3], kind="payments", name="p.csv", size=3)
store.finish(biller="b1", sha256=sys.argv[3], ok=True, archived_as=None, detail="posted 1")
store.close()
"""


@pytest.fixture(scope="module")
def old_main(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        tar = subprocess.run(
            ["git", "-C", str(REPO), "archive", OLD_MAIN], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {OLD_MAIN} is not in this checkout's history")
    root = tmp_path_factory.mktemp("oldmain")
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(root, filter="tar")
    return root


def run_old(root: Path, url: str, *, with_ledger: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run(
        [sys.executable, "-c", OLD_CODE, url, "yes" if with_ledger else "no", SHA],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("with_ledger", [True, False], ids=["ledger-and-inbox", "inbox-only"])
def test_a_ledger_made_by_the_old_main_upgrades(old_main: Path, ledger_url: str, with_ledger: bool) -> None:
    if ledger_url.startswith("sqlite"):
        Path(ledger_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    run_old(old_main, ledger_url, with_ledger=with_ledger)
    with open_ledger(ledger_url) as led:
        assert led.version() == max(v for v, _, _ in MIGRATIONS) == 5
        with led.begin() as conn:
            versions = list(conn.execute(sa.select(schema_version.c.version).order_by("version")).scalars())
            assert versions == [1, 2, 3, 4, 5]
            assert len(conn.execute(sa.select(runs)).all()) == (1 if with_ledger else 0)
    store = InboxStore(ledger_url)
    try:
        row = store.get("b1", SHA)
        assert row is not None and (row["status"], row["name"], row["detail"]) == (
            "done",
            "p.csv",
            "posted 1",
        )
        assert (
            store.claim(
                biller="b1", biller_name="Town", sha256=SHA, kind="payments", name="p.csv", size=3
            ).outcome
            == "duplicate"
        )
        other = "b" * 64
        claim = store.claim(
            biller="b1", biller_name="Town", sha256=other, kind="payments", name="q.csv", size=3
        )
        assert claim.outcome == "claimed"
        assert store.forget("b1", other) and store.get("b1", other) is None
    finally:
        store.close()


def test_a_new_ledger_has_the_inbox_table_from_the_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as led, led.begin() as conn:
        assert sa.inspect(conn).has_table(inbox_files.name)
        described = conn.execute(sa.select(schema_version.c.description).where(schema_version.c.version == 5))
        assert described.scalar_one().startswith("inbox_files")
