"""Fixtures for the operations tests: the sample biller with its secrets exported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"

#: Values the sample config's env: references resolve to in these tests. Distinctive, so a
#: leak is found by a plain substring search.
SECRETS = {
    "CASELLE_RTDR_KEY": "rtdr-K3y-9f8e7d6c5b4a",
    "CASELLE_DP_PASSWORD": "dp-Pa55w0rd-a1b2c3d4",
    "CASELLE_CLIENT_SECRET": "cl13nt-S3cret-0011aabb",
}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    return dict(SECRETS)


@pytest.fixture
def biller_toml(tmp_path: Path, secrets_env: dict[str, str]) -> Path:
    """A copy of the sample biller config whose [paths] point into tmp_path."""
    text = (SAMPLES / "biller.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("[paths]")
    body = head + (
        '[paths]\ninbox = "inbox"\noutbox = "outbox"\narchive = "archive"\nerror = "error"\nstate = "state"\n'
    )
    path = tmp_path / "biller.toml"
    path.write_text(body, encoding="utf-8")
    for extra in SAMPLES.glob("*.csv"):
        shutil.copy(extra, tmp_path / extra.name)
    return path
