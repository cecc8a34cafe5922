"""Biller configuration (SPEC §1): validated at startup, secrets only by reference."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from caselle_ic.config.model import load_config, resolve_now
from caselle_ic.config.settings import PASSWORD_SETTINGS, Setting
from caselle_ic.errors import ConfigError
from tests.conftest import SAMPLES

BASE = """
[biller]
name = "Test Town"
biller_guid = "5009a105-933f-4e03-98f7-84b417d55d9f"
invoice_format_guid = "a2ef4f14-d023-4548-9139-02338672fe88"
timezone = "America/Denver"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "biller.toml"
    p.write_text(BASE + text, encoding="utf-8")
    return p


def test_sample_config_loads_and_names_every_setting(monkeypatch):
    for var in ("CASELLE_RTDR_KEY", "CASELLE_DP_PASSWORD", "CASELLE_CLIENT_SECRET"):
        monkeypatch.setenv(var, f"value-of-{var}")
    cfg = load_config(SAMPLES / "biller.toml")
    assert cfg.name == "Sample City Utilities"
    assert cfg.get(Setting.CC_CODE) == "101|99|0"
    assert cfg.allocate_to_invoice is True
    ep = cfg.endpoint("payments")
    assert ep.url.endswith("/tp/api/cr0/graphql") and ep.username == "sample-city"
    assert ep.password is not None and ep.password.get_secret_value() == "value-of-CASELLE_DP_PASSWORD"
    assert "value-of" not in repr(ep) and "value-of" not in repr(cfg)
    # every setting ID the seed lists has a name
    assert {
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        35,
        64,
        65,
        88,
        101,
        102,
        103,
        111,
        112,
        113,
        126,
        127,
        128,
        131,
    } == {int(s) for s in Setting}
    assert {int(s) for s in PASSWORD_SETTINGS} == {10, 13, 16, 19, 103, 113, 127}


@pytest.mark.parametrize("sid", [10, 13, 16, 19, 103, 113, 127])
def test_plaintext_password_is_refused_naming_the_setting(tmp_path, sid):
    p = write(tmp_path, f'[settings]\n{sid} = "hunter2"\n')
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert f"setting {sid}" in str(err.value)
    assert "env:NAME" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_unknown_keys_and_unknown_setting_ids_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[invoice_file.message_field_lenght\] unknown key"):
        load_config(write(tmp_path, "[invoice_file]\nmessage_field_lenght = 3\n"))
    with pytest.raises(ConfigError, match="999 is not an IC setting ID"):
        load_config(write(tmp_path, '[settings]\n999 = "x"\n'))
    with pytest.raises(ConfigError, match=r"\[bogus\] unknown key"):
        load_config(write(tmp_path, "[bogus]\nx = 1\n"))


def test_bad_values_say_what_to_fix(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text(BASE.replace("America/Denver", "Mars/Olympus"), encoding="utf-8")
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        load_config(p)
    p.write_text(BASE.replace("5009a105-933f-4e03-98f7-84b417d55d9f", "not-a-guid"), encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a GUID"):
        load_config(p)
    p.write_text("[biller\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_env_reference_resolves_and_missing_env_is_an_error_only_when_used(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    monkeypatch.setenv("TOWN_URL", "http://127.0.0.1:1/tp/api/cr0/graphql")
    cfg = load_config(write(tmp_path, '[settings]\n11 = "env:TOWN_URL"\n12 = "u"\n13 = "env:NOPE_NOT_SET"\n'))
    assert cfg.get(Setting.PAYMENTS_URL) == "http://127.0.0.1:1/tp/api/cr0/graphql"
    with pytest.raises(ConfigError, match="NOPE_NOT_SET, which is not set"):
        cfg.endpoint("payments")
    with pytest.raises(ConfigError, match=r"setting 8 .* is not set"):
        cfg.endpoint("rtdr")


def test_secondary_endpoints_and_ach_rejects_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("PW", "pw")
    cfg = load_config(
        write(
            tmp_path,
            '[settings]\n8 = "http://a"\n88 = "http://b"\n9 = "u"\n10 = "env:PW"\n'
            '11 = "http://p"\n12 = "u"\n13 = "env:PW"\n14 = "http://c"\n'
            '111 = "http://d"\n112 = "u2"\n113 = "env:PW"\n',
        )
    )
    rtdr = cfg.endpoint("rtdr")
    assert rtdr.secondary is not None and rtdr.secondary.url == "http://b" and rtdr.secondary.username == "u"
    pl = cfg.endpoint("paperless")
    assert pl.secondary is not None and pl.secondary.url == "http://d" and pl.secondary.username == "u2"
    assert cfg.endpoint("ach_rejects").url == "http://p"


def test_paths_are_relative_to_the_config_file(tmp_path):
    cfg = load_config(write(tmp_path, '[paths]\ninbox = "in"\n'))
    assert cfg.paths.inbox == (tmp_path / "in").resolve()
    assert cfg.paths.state == (tmp_path / "data" / "state").resolve()


def test_resolve_now_is_biller_local_unless_an_offset_is_given():
    tz = ZoneInfo("America/Denver")
    assert resolve_now("2026-11-01T06:00:00", tz) == datetime(2026, 11, 1, 6, 0, tzinfo=tz)
    assert resolve_now("2026-11-01T13:00:00Z", tz).hour == 6
    with pytest.raises(ConfigError, match="--now"):
        resolve_now("11/01/2026", tz)
