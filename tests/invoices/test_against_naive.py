"""A generated extract (bench/gen_extract.py) through the real pipeline, read in many
byte ranges and written in many small blocks, is byte for byte what the naive csv-module
implementation of the benchmark writes: two independent implementations of SPEC §3 agree."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from caselle_ic.invoices import writer as invoice_writer
from caselle_ic.invoices.pipeline import run_invoice_file
from caselle_ic.tabular import ranges
from tests.conftest import ROOT
from tests.invoices.conftest import BILLER, NOW, STAMP


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("block", "range_bytes"), [(7, 20_000), (1000, ranges.RANGE_BYTES)])
def test_generated_extract_matches_the_naive_implementation(tmp_path, monkeypatch, block, range_bytes):
    gen, bench = _load("gen_extract"), _load("invoice_file")
    extract = gen.write_extract(tmp_path / "x.csv", 2_100, chunk=500)
    monkeypatch.setattr(invoice_writer, "BLOCK", block)  # many blocks, some with quarantines
    monkeypatch.setattr(ranges, "RANGE_BYTES", range_bytes)  # read in ~30 ranges, or whole
    result = run_invoice_file(extract, BILLER, tmp_path / "fast", now=NOW)
    bench.naive(str(extract), str(tmp_path / "naive"))
    fast = result.outputs[0].read_bytes()
    assert fast == (tmp_path / "naive" / f"{STAMP}.txt").read_bytes()
    assert result.counts["statements_in"] == 2_100
    assert result.counts["statements_quarantined"] == 1  # statement 1999 does not reconcile
    assert fast.count(b"\r\n") == result.counts["records_written"]
