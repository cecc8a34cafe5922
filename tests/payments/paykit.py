"""Helpers for the payment tests: biller configs with chosen settings, written as TOML.

Test modules import the fixture: ``from paykit import make_cfg``."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from caselle_ic.config.model import BillerConfig, load_config

#: The seed's worked example (technical design, "JSON Configurations for Payment Codes").
SEED_131 = {
    "PaymentSettings": [
        {
            "PaymentTypeID": 1,
            "PaymentCode": 4,
            "InvoiceTypeID": 42,
            "CardVender": ["VISA"],
            "DistributionCode": "111",
        },
        {"PaymentTypeID": 1, "PaymentCode": 7, "InvoiceTypeID": 42, "DistributionCode": "444"},
        {"PaymentTypeID": 11, "PaymentCode": 777, "InvoiceTypeID": 42, "DistributionCode": "555"},
        {"PaymentTypeID": 15, "PaymentCode": 777, "InvoiceTypeID": 42, "DistributionCode": "555"},
        {"PaymentTypeID": 2, "PaymentCode": 777, "InvoiceTypeID": 42, "DistributionCode": "555"},
        {"PaymentTypeID": 1, "PaymentCode": 123, "DistributionCode": "456"},
    ]
}

_BASE = """
[biller]
name = "Test Town"
biller_guid = "5009a105-933f-4e03-98f7-84b417d55d9f"
invoice_format_guid = "a2ef4f14-d023-4548-9139-02338672fe88"
timezone = "America/Denver"

[settings]
{settings}

[lockbox]
combine_cloud_stores = {combine}
"""

UNSET = object()
DEFAULTS: dict[int, object] = {
    11: "http://127.0.0.1:8765/tp/api/cr0/graphql",
    64: "101|99|0",
    65: "101|98|0",
}


def _toml_value(v: object) -> str:
    return "'''" + v + "'''" if isinstance(v, str) and ("\n" in v or '"' in v) else json.dumps(v)


@pytest.fixture
def make_cfg(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BillerConfig]:
    """make_cfg(s131=..., s64=..., s65=..., s11=..., combine=False) -> BillerConfig.

    ``s131`` may be a dict (dumped as JSON) or raw text; pass ``UNSET`` to leave a
    setting out. Defaults: 11 set, 64 = 101|99|0, 65 = 101|98|0, 131 = the seed example.
    """
    counter = iter(range(10_000))
    folder = tmp_path_factory.mktemp("config")  # outside tmp_path: tests list their output dirs

    def make(
        s131: object = SEED_131,
        s64: object = DEFAULTS[64],
        s65: object = DEFAULTS[65],
        s11: object = DEFAULTS[11],
        combine: bool = False,
    ) -> BillerConfig:
        settings: dict[int, object] = {11: s11, 64: s64, 65: s65, 131: s131}
        lines = []
        for key, value in settings.items():
            if value is UNSET:
                continue
            if isinstance(value, dict):
                value = json.dumps(value)
            lines.append(f"{key} = {_toml_value(value)}")
        path = folder / f"biller{next(counter)}.toml"
        path.write_text(
            _BASE.format(settings="\n".join(lines), combine="true" if combine else "false"), encoding="utf-8"
        )
        return load_config(path)

    return make
