"""The environment is isolated per test (tests/conftest.py, ``isolated_environ``): what a
test changes does not reach the next one, and what the shell running pytest exported of
caselle-ic's, Prefect's and the sample biller's variables reaches no test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from caselle_ic.emulator.process import CONFIG_SECRET_ENVS
from caselle_ic.env import VARS
from tests.conftest import ROOT

CASES = Path(__file__).with_name("isolation_cases.py")


def test_a_test_and_the_shell_cannot_change_what_the_next_test_sees(tmp_path: Path) -> None:
    shell = {v.name: f"from-the-shell-{v.name.lower()}" for v in VARS}
    shell.update(dict.fromkeys(CONFIG_SECRET_ENVS, "from-the-shell-secret"))
    shell.update(
        {
            "CASELLE_IC_SOMETHING_NEW": "1",  # not listed in caselle_ic/env.py yet
            "CASELLE_IC_PG_DB": "kept",
            "PREFECT_API_URL": "http://127.0.0.1:9/api",
            "ISOLATION_KEPT": "from-the-shell",
            "ISOLATION_GONE": "from-the-shell",
        }
    )
    pytest = [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*pytest, "--basetemp", str(tmp_path / "basetemp"), str(CASES)],
        cwd=ROOT,
        env={**os.environ, **shell},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "5 passed" in done.stdout, done.stdout + done.stderr


def test_this_run_has_none_of_the_scrubbed_variables() -> None:
    assert [v.name for v in VARS if v.name in os.environ] == []
    assert [n for n in CONFIG_SECRET_ENVS if n in os.environ] == []
    assert "PREFECT_API_URL" not in os.environ
