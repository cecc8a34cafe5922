"""The registry of kinds (caselle_ic/kinds.py), the one result convention, the tuning
sections with their environment overrides (caselle_ic/env.py), and the biller file loaded
once per run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from caselle_ic import env, kinds
from caselle_ic.config.model import load_config
from caselle_ic.errors import ConfigError
from caselle_ic.payments.posting import PostingOptions
from caselle_ic.result import RunResult
from tests.conftest import ROOT, SAMPLES, run_cli
from tests.invoices.conftest import line, statement, write_extract

BASE = """
[biller]
name = "Test Town"
biller_guid = "5009a105-933f-4e03-98f7-84b417d55d9f"
invoice_format_guid = "a2ef4f14-d023-4548-9139-02338672fe88"
"""


def write(tmp_path: Path, text: str = "") -> Path:
    p = tmp_path / "biller.toml"
    p.write_text(BASE + text, encoding="utf-8")
    return p


# -- the registry -------------------------------------------------------------------------------
def test_the_registry_is_what_the_inbox_and_the_deployments_read(tmp_path: Path) -> None:
    from caselle_ic.ops import deploy
    from caselle_ic.ops import inbox_scan as inbox

    assert list(kinds.KINDS) == ["invoices", "adjustments", "payments", "paperless", "balance"]
    assert inbox.KINDS == kinds.inbox_kinds() == ("invoices", "adjustments", "payments", "paperless")
    # name rules keep their order: adjustments before invoices ("adjusted_statements.csv")
    assert [k for k, _ in inbox.NAME_RULES] == ["adjustments", "paperless", "payments", "invoices"]
    assert inbox.classify("Adjusted_Statements.CSV") == "adjustments"
    assert inbox.classify("daily_pymt.csv") == "payments"
    cfg = load_config(write(tmp_path))
    specs = deploy.biller_plan(cfg, "biller.toml")
    assert [s.full_name for s in specs] == [
        "invoice-inbox/test-town",
        "adjustments-inbox/test-town",
        "payments-inbox/test-town",
        "paperless-inbox/test-town",
        "adjustments-file/test-town",
        "balance-refresh/test-town",
        "daily-audit/test-town",
    ]


def _flow_name(flow: object) -> str:
    """A Prefect flow's name; kinds.py types flows loosely so that it need not import prefect."""
    from prefect import Flow

    assert isinstance(flow, Flow)
    return flow.name


def test_flows_and_entrypoints_come_from_the_objects() -> None:
    from caselle_ic.flows.ops import INBOX_FLOWS, payments_inbox
    from caselle_ic.flows.payments import daily_payments
    from caselle_ic.ops.deploy import DeploymentSpec

    k = kinds.get("payments")
    assert k.flow() is daily_payments and _flow_name(k.flow()) == k.flow_name == "daily-payments"
    assert k.inbox is not None and k.inbox.flow() is payments_inbox
    assert INBOX_FLOWS == {
        "invoices": "invoice-inbox",
        "adjustments": "adjustments-inbox",
        "payments": "payments-inbox",
        "paperless": "paperless-inbox",
    }
    for kind in kinds.KINDS.values():
        assert _flow_name(kind.flow()) == kind.flow_name
        if kind.inbox:
            assert _flow_name(kind.inbox.flow()) == kind.inbox.flow_name
    spec = DeploymentSpec(k.inbox.flow, "payments-inbox", "x", {}, "")
    assert spec.entrypoint == "caselle_ic.flows.ops.payments_inbox"  # a module path (issue 9 item 8)
    assert (ROOT / "flows" / "ops.py").is_file()
    with pytest.raises(ValueError, match="unknown kind 'receipts'; one of invoices, adjustments"):
        kinds.get("receipts")


def test_no_import_strings_left_for_code() -> None:
    for path in (ROOT / "caselle_ic").rglob("*.py"):
        text = path.read_text()
        assert "import_module(" not in text, path
        assert not re.search(r"\(\"caselle_ic\.[a-z_.]+\", \"[a-z_]+\"\)", text), path


def test_nothing_written_is_one_result_shape_for_every_consumer(tmp_path: Path) -> None:
    """Invoices raise NothingToWriteError; the registry hands every consumer the result."""
    extract = tmp_path / "bad.csv"
    write_extract(extract, statement("001001", [line("10/05/2026", "INVOICE", "X", "-2.00")]))
    cfg = load_config(SAMPLES / "biller.toml")
    result = kinds.get("invoices").run(extract, cfg, out_dir=tmp_path / "out", now="2026-11-01T06:00:00")
    assert isinstance(result, RunResult) and result.exit_status == 2 and result.nothing_written
    assert result.error.startswith(f"every statement of {extract} was quarantined (1 statements)")
    assert result.outputs == [] and result.retry_later is False and result.to_json()["exit_status"] == 2


def test_retry_later_and_error_decide_the_exit_status() -> None:
    r = RunResult(kind="k", biller="b", inputs=[])
    assert (r.exit_status, r.retry_later) == (0, False)
    r.keep_for_retry(3)
    assert (r.retry_later, r.pending, r.exit_status) == (True, 3, 0)
    r.outputs.append(Path("x"))
    r.error = "Caselle Connect could not be reached"
    assert (r.exit_status, r.nothing_written) == (2, False)  # written, but not done


# -- settings and the environment ------------------------------------------------------------------
def test_posting_and_performance_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CASELLE_IC_POST_WORKERS",
        "CASELLE_IC_POST_BATCH",
        "CASELLE_IC_SETTLE_GRACE",
        "CASELLE_IC_THREADS",
    ):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(write(tmp_path))
    assert (cfg.posting.workers, cfg.posting.batch_size, cfg.posting.settle_grace_seconds) == (4, 50, 90.0)
    assert cfg.performance.threads is None
    defaults = PostingOptions()
    opts = PostingOptions.from_settings(cfg.posting)
    assert (opts.workers, opts.batch_size, opts.settle_grace_seconds) == (
        defaults.workers,
        defaults.batch_size,
        defaults.settle_grace_seconds,
    )
    path = write(
        tmp_path,
        "[posting]\nworkers = 2\nbatch_size = 25\nsettle_grace_seconds = 120\n[performance]\nthreads = 1\n",
    )
    cfg = load_config(path)
    opts = PostingOptions.from_settings(cfg.posting)
    assert (opts.workers, opts.batch_size, opts.settle_grace_seconds) == (2, 25, 120.0)
    assert cfg.performance.threads == 1
    monkeypatch.setenv("CASELLE_IC_POST_WORKERS", "7")  # the environment overrides the file
    monkeypatch.setenv("CASELLE_IC_SETTLE_GRACE", "1.5")
    monkeypatch.setenv("CASELLE_IC_THREADS", "3")
    cfg = load_config(path)
    assert (cfg.posting.workers, cfg.posting.batch_size, cfg.posting.settle_grace_seconds) == (7, 25, 1.5)
    assert cfg.performance.threads == 3


def test_lean_memory_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(write(tmp_path)).performance.lean_memory is False
    path = write(tmp_path, "[performance]\nlean_memory = true\n")
    assert load_config(path).performance.lean_memory is True
    for raw, value in (("0", False), ("off", False), ("1", True), ("TRUE", True)):
        monkeypatch.setenv("CASELLE_IC_LEAN_MEMORY", raw)
        assert load_config(path).performance.lean_memory is value
    monkeypatch.setenv("CASELLE_IC_LEAN_MEMORY", "maybe")
    with pytest.raises(ConfigError, match=r"CASELLE_IC_LEAN_MEMORY='maybe' must be 1 or 0"):
        load_config(path)


def test_the_connect_retry_window_reaches_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caselle_ic.connect.client import CaselleClient

    monkeypatch.delenv("CASELLE_IC_RETRY_WINDOW", raising=False)
    for key in ("CASELLE_RTDR_KEY", "CASELLE_DP_PASSWORD", "CASELLE_CLIENT_SECRET"):
        monkeypatch.setenv(key, f"{key.lower()}-r3try-w1ndow")  # redaction is process-wide: distinctive
    assert load_config(write(tmp_path)).connect.retry_window_seconds == 30.0
    sample = tmp_path / "sample.toml"
    sample.write_text(
        (SAMPLES / "biller.toml").read_text(encoding="utf-8") + "\n[connect]\nretry_window_seconds = 4.5\n",
        encoding="utf-8",
    )
    cfg = load_config(sample)
    with CaselleClient.for_purpose(cfg, "payments") as client:
        assert client.retry_window == 4.5
    monkeypatch.setenv("CASELLE_IC_RETRY_WINDOW", "0.5")  # the environment overrides the file
    cfg = load_config(sample)
    with CaselleClient.for_purpose(cfg, "paperless") as client:
        assert client.retry_window == 0.5
    with CaselleClient.for_purpose(cfg, "paperless", retry_window=9) as client:
        assert client.retry_window == 9  # a caller's explicit option wins (check --live)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[connect]\nretry_window_seconds = -1\n", "[connect.retry_window_seconds]"),
        ("[posting]\nworkers = 0\n", "[posting.workers]"),
        ("[posting]\nspeed = 1\n", "[posting.speed] unknown key"),
    ],
)
def test_bad_tuning_settings_name_themselves(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("CASELLE_IC_POST_BATCH", "ten", "CASELLE_IC_POST_BATCH='ten' must be a positive integer"),
        ("CASELLE_IC_SETTLE_GRACE", "-1", "CASELLE_IC_SETTLE_GRACE='-1' must be a number of seconds"),
    ],
)
def test_a_bad_override_exits_2_naming_the_variable(
    var: str, value: str, message: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "etc" / "b" / "biller.toml"
    cfg.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "biller.toml", cfg)
    r = run_cli("inbox", "--config", str(cfg), env={var: value})
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_every_caselle_ic_variable_the_code_reads_is_listed_and_documented() -> None:
    read = set()
    for path in [*(ROOT / "caselle_ic").rglob("*.py"), *(ROOT / "flows").rglob("*.py")]:
        read |= set(re.findall(r"\"(CASELLE_(?:IC|EMULATOR)_[A-Z_]+)\"", path.read_text()))
    assert read <= set(env.BY_NAME), read - set(env.BY_NAME)
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert env.markdown_table() in docs  # the table in the docs is the module's


def test_the_biller_file_is_loaded_once_per_direct_run(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "b" / "biller.toml"
    cfg.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "biller.toml", cfg)
    args = ["invoices", str(SAMPLES / "statements.csv"), "--config", str(cfg), "--out", str(tmp_path / "o")]
    r = run_cli(*args, "--log-level", "DEBUG")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("loaded the biller file") == 1, r.stderr
