"""``caselle-ic check``: offline against the sample biller file, live against a real
emulator process over HTTP (including one serving a schema variant)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from caselle_ic import cli
from caselle_ic.emulator.process import EmulatorProcess, free_port
from tests.conftest import SAMPLES, run_cli
from tests.ops.conftest import SECRETS


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(["check", *args])
    out, err = capsys.readouterr()
    assert err == ""
    return status, out


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM ")]


# -- offline -----------------------------------------------------------------------------
def test_offline_sample_prints_masked_settings_and_code_table(
    biller_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check(capsys, "--config", str(biller_toml))
    assert status == 0, out
    lines = out.splitlines()
    assert "   10  rtdr_password                  ****  (env:CASELLE_RTDR_KEY)" in lines
    assert "  127  oauth_password                 ****  (env:CASELLE_CLIENT_SECRET)" in lines
    assert "    9  rtdr_username                  ****city" in lines  # "sample-city", masked
    assert "   64  cc_code                        101|99|0" in lines
    # the payment-code table: one row per setting-131 entry, then the fallbacks
    assert (
        "  1     1 (CC)             42             VISA                4            111"
        "               DataPump (default)"
    ) in lines
    assert (
        "  8     2 (ACH)            300            -                   95           300               File"
    ) in lines
    assert "  setting 65 (ACH, OBD fallback): distribution 101, payment 98, GL activity 0" in lines
    assert lines[-1] == "OK: no problems found (offline; --live checks the endpoints)"
    for value in SECRETS.values():
        assert value not in out
    assert "sample-city" not in out
    assert not (biller_toml.parent / "state").exists()  # a check writes nothing


def test_offline_missing_env_var_names_the_setting(
    biller_toml: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASELLE_CLIENT_SECRET")
    status, out = check(capsys, "--config", str(biller_toml))
    assert status == 2
    assert problems(out) == [
        "PROBLEM [setting 127 (oauth_password)] setting 127 (oauth_password) refers to environment "
        "variable CASELLE_CLIENT_SECRET, which is not set; export CASELLE_CLIENT_SECRET before running"
    ]
    assert "  127  oauth_password                 -  (env:CASELLE_CLIENT_SECRET, NOT RESOLVED)" in out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_offline_bad_fallback_and_lockbox_limit_are_found_before_a_run(
    biller_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(biller_toml, '65  = "101|98|0"', '65  = "101/98"')
    _edit(biller_toml, '"PaymentCode": 97, "InvoiceTypeID": 300', '"PaymentCode": 197, "InvoiceTypeID": 300')
    status, out = check(capsys, "--config", str(biller_toml))
    assert status == 2
    found = problems(out)
    assert found[0] == (
        "PROBLEM [setting 65 (ach_code)] setting 65 (ach_code) is '101/98'; write it as distribution|"
        'payment|GL activity with non-negative integers, for example "101|99|0"'
    )
    assert any(
        p.startswith("PROBLEM [setting 131 (payment_codes_json)] entry 7 sends payment type 1 to the lockbox")
        for p in found
    ), found


def test_offline_unreadable_file_and_plain_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check(capsys, "--config", str(tmp_path / "nope.toml"))
    assert status == 2
    assert problems(out)[0].startswith("PROBLEM [file] cannot read the configuration file")
    bad = tmp_path / "plain.toml"
    bad.write_text((SAMPLES / "biller.toml").read_text().replace('"env:CASELLE_DP_PASSWORD"', '"hunter2"', 1))
    status, out = check(capsys, "--config", str(bad))
    assert status == 2
    assert problems(out)[0].startswith("PROBLEM [setting 13 (payments_password)] setting 13")
    assert "hunter2" not in out


# -- live ------------------------------------------------------------------------------------
@pytest.fixture
def variant_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(seed=SAMPLES / "statements.csv", schema_variant=request.param) as emu:
        yield emu


def _config_for(emu: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: object) -> Path:
    for k, v in emu.env().items():
        monkeypatch.setenv(k, v)
    return emu.write_config(tmp_path / "biller" / "biller.toml", **kw)


def test_live_sample_against_the_emulator(
    sample_emu: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config_for(sample_emu, tmp_path, monkeypatch)
    # through the installed console script, as an implementation manager runs it
    done = run_cli("check", "--config", str(cfg), "--live", "--account", "001001", env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for setting, name in (("8", "rtdr"), ("11", "payments"), ("14", "paperless")):
        assert f"  {setting:>3}  {name:<20} {sample_emu.graphql_url}" in out
    assert out.count("auth: OAuth token (setting 126) accepted; schema: ") == 3
    assert "schema: 2 document(s) validate; same as ours" in out  # rtdr, paperless
    assert "schema: 5 document(s) validate; same as ours" in out  # payments
    assert "Account ****1001 (RTDR lookup through setting 8): found, balance " in out
    assert sample_emu.secret not in out + done.stderr
    assert sample_emu.state()["counters"]["mutation_requests"] == 0  # a check sends no mutation


def test_live_wrong_secret_names_the_settings(
    sample_emu: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = _config_for(sample_emu, tmp_path, monkeypatch)
    monkeypatch.setenv("CASELLE_CLIENT_SECRET", "not-the-secret")
    status, out = check(capsys, "--config", str(cfg), "--live")
    assert status == 2
    assert problems(out) == [
        f"PROBLEM [settings {user}/127] the OAuth token URL refused the client id and secret of the "
        f"{name} endpoint"
        for user, name in (("9", "rtdr"), ("12", "payments"), ("15", "paperless"))
    ]
    # HTTP basic (no setting 126): the endpoint's own username/password settings are named
    cfg = _config_for(sample_emu, tmp_path, monkeypatch, oauth=False)
    monkeypatch.setenv("CASELLE_DP_PASSWORD", "not-the-secret")
    status, out = check(capsys, "--config", str(cfg), "--live")
    assert status == 2
    found = problems(out)
    assert [p.split("]")[0] for p in found] == ["PROBLEM [settings 12/13", "PROBLEM [settings 15/16"]
    assert "not-the-secret" not in out


def test_live_unreachable_endpoint_names_its_setting(
    sample_emu: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/tp/api/cr0/graphql"
    cfg = _config_for(sample_emu, tmp_path, monkeypatch, settings={"88": dead})
    status, out = check(capsys, "--config", str(cfg), "--live")
    assert status == 2
    assert problems(out) == [
        "PROBLEM [setting 88 (rtdr_url_secondary)] cannot reach the rtdr-secondary endpoint: "
        "cannot reach the rtdr-secondary endpoint (connection refused) (operation=introspection)"
    ]
    # the OAuth token URL (setting 126) down: named once, not once per endpoint
    dead_token = f"http://127.0.0.1:{free_port()}/oauth/token"
    cfg = _config_for(sample_emu, tmp_path, monkeypatch, settings={"126": dead_token})
    status, out = check(capsys, "--config", str(cfg), "--live")
    assert status == 2
    assert problems(out) == [
        "PROBLEM [setting 126 (oauth_url)] cannot reach the OAuth token URL (connection refused) "
        "(operation=oauth-token)"
    ]


@pytest.mark.parametrize("variant_emulator", ["missing-field"], indirect=True)
def test_live_missing_field_is_found_on_the_rtdr_endpoint_only(
    variant_emulator: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = _config_for(variant_emulator, tmp_path, monkeypatch)
    status, out = check(capsys, "--config", str(cfg), "--live", "--json")
    assert status == 2
    report = json.loads(out)
    assert report["exit_status"] == 2
    assert report["problems"] == [
        {
            "setting": "8",
            "message": f"the {doc} document would break on the rtdr endpoint: "
            "Cannot query field 'balance' on type 'Customer'.",
        }
        for doc in ("customer", "customer (batch)")
    ]
    rtdr = next(e for e in report["endpoints"] if e["setting"] == "8")
    assert rtdr["differences"] == ["Field Customer.balance was removed."]


@pytest.mark.parametrize("variant_emulator", ["renamed-arg"], indirect=True)
def test_live_renamed_argument_is_found_on_the_payments_endpoint(
    variant_emulator: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = variant_emulator.graphql_url
    cfg = _config_for(variant_emulator, tmp_path, monkeypatch, settings={"101": url, "102": "sample-city"})
    status, out = check(capsys, "--config", str(cfg), "--live")
    assert status == 2
    found = problems(out)
    assert {p.split("]")[0] for p in found} == {
        "PROBLEM [setting 11 (payments_url)",
        "PROBLEM [setting 101 (ach_rejects_url)",
    }
    assert (
        "PROBLEM [setting 11 (payments_url)] the void_receipt document would break on the payments endpoint: "
        "Unknown argument 'date' on field 'Mutation.void_receipt'."
    ) in found


def test_account_lookup_bad_input(
    sample_emu: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = _config_for(sample_emu, tmp_path, monkeypatch)
    status, out = check(capsys, "--config", str(cfg), "--account", "999999")
    assert status == 2
    assert problems(out) == [
        "PROBLEM [--account] Caselle has no customer ****9999 (RTDR lookup through setting 8)"
    ]
    status, out = check(capsys, "--config", str(cfg), "--account", "12-AB")
    assert status == 2
    assert problems(out) == ["PROBLEM [--account] ****2-AB is not a Caselle customer number (digits)"]


def test_json_shape_offline(biller_toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = check(capsys, "--config", str(biller_toml), "--json")
    assert status == 0
    report = json.loads(out)
    assert set(report) == {
        "command",
        "config",
        "biller",
        "settings",
        "sections",
        "payment_codes",
        "endpoints",
        "account",
        "problems",
        "notes",
        "exit_status",
    }
    assert report["settings"][2] == {
        "id": 10,
        "name": "rtdr_password",
        "value": "****",
        "source": "env:CASELLE_RTDR_KEY",
        "resolved": True,
    }
    assert report["payment_codes"]["entries"][6]["posting_method"] == "File"
    assert report["payment_codes"]["fallbacks"]["64"] == {
        "distribution_code": 101,
        "payment_code": 99,
        "gl_activity": 0,
    }
    assert report["problems"] == [] and report["exit_status"] == 0
