"""The inbox never follows a link out of itself (issue 13, item 12): a symbolic link (file
or kind folder) is refused, never read, and its target's content is echoed nowhere."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.ops.inbox import inbox_files, process_inbox
from caselle_ic.store.inbox_claims import default_ledger_url

from .inboxkit import GOOD, total_handler

SECRET_HEADER = "SECRET_HEADER_account_number,amount\n001001,1.00\n"


@pytest.fixture
def cfg(biller_toml: Path) -> BillerConfig:
    return load_config(biller_toml)


def _old(path: Path) -> None:
    t = time.time() - 600
    os.utime(path, (t, t), follow_symlinks=False)


def _everything_written(cfg: BillerConfig, tmp_path: Path) -> str:
    text = []
    for root in (cfg.paths.error, cfg.paths.archive, cfg.paths.outbox, cfg.paths.state):
        if root.exists():
            for p in root.rglob("*"):
                if p.is_file() and not p.is_symlink() and p.suffix not in (".db", ".db-journal", ".db-wal"):
                    text.append(p.read_text(encoding="utf-8", errors="replace"))
    engine = sa.create_engine(default_ledger_url(cfg))
    with engine.connect() as conn:
        text += [str(dict(r)) for r in conn.execute(sa.select(inbox_files)).mappings()]
    engine.dispose()
    return "\n".join(text)


@pytest.mark.parametrize("where", ["kind folder", "inbox root"])
def test_a_link_to_a_file_outside_is_refused_and_not_read(cfg, tmp_path, caplog, where):
    outside = tmp_path / "elsewhere" / "secret.csv"
    outside.parent.mkdir(parents=True)
    outside.write_text(SECRET_HEADER, encoding="utf-8")
    folder = cfg.paths.inbox / "payments" if where == "kind folder" else cfg.paths.inbox
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "x_payments.csv"
    link.symlink_to(outside)
    _old(link)
    good = cfg.paths.inbox / "payments" / "good.csv"
    good.parent.mkdir(parents=True, exist_ok=True)
    good.write_text(GOOD, encoding="utf-8")
    _old(good)
    calls: list[str] = []
    report = process_inbox(cfg, "payments", total_handler(calls), settle_seconds=0)
    assert calls == ["good.csv"]
    assert [p.name for p in report.unrecognised] == ["x_payments.csv"]
    assert link.is_symlink() and outside.read_text(encoding="utf-8") == SECRET_HEADER  # left alone
    assert "SECRET_HEADER" not in _everything_written(cfg, tmp_path)
    assert "SECRET_HEADER" not in caplog.text and "SECRET_HEADER" not in report.to_markdown()
    assert "symbolic link" in caplog.text


def test_a_linked_kind_folder_is_not_entered(cfg, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.csv").write_text(SECRET_HEADER, encoding="utf-8")
    _old(outside / "a.csv")
    cfg.paths.inbox.mkdir(parents=True, exist_ok=True)
    (cfg.paths.inbox / "payments").symlink_to(outside, target_is_directory=True)
    calls: list[str] = []
    report = process_inbox(cfg, "payments", total_handler(calls), settle_seconds=0)
    assert calls == [] and [p.name for p in report.unrecognised] == ["payments"]
    assert (outside / "a.csv").exists()


def test_a_link_inside_the_inbox_is_refused_too(cfg):
    folder = cfg.paths.inbox / "payments"
    folder.mkdir(parents=True, exist_ok=True)
    real = cfg.paths.inbox / "real.txt"
    real.write_text(GOOD, encoding="utf-8")
    (folder / "b.csv").symlink_to(real)
    _old(folder / "b.csv")
    calls: list[str] = []
    process_inbox(cfg, "payments", total_handler(calls), settle_seconds=0)
    assert calls == []
