"""The invoice run, step by step (SPEC §3, §10): extract in, IC invoice file out.

:func:`run_invoice_file` is the one sequence of steps. The CLI calls it directly; the
Prefect flows in ``flows/invoices.py`` call it with a ``step`` wrapper that turns each
step into a Prefect task, so the sequence exists once.

Exit statuses (through :class:`~caselle_ic.result.RunResult` and the CLI):
0 every statement written; 1 the file was written and some statements were quarantined
(rejects in ``OUT/rejects/``); 2 nothing written — an unreadable input or config, or
every statement quarantined (:class:`~caselle_ic.errors.NothingToWriteError`; the
rejects file is still written so the analyst sees why).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from caselle_ic.config.model import BillerConfig, load_config, resolve_now
from caselle_ic.errors import InputError, NothingToWriteError
from caselle_ic.invoices.build import build_records
from caselle_ic.invoices.checks import check_extract
from caselle_ic.invoices.extract import read_extract
from caselle_ic.invoices.writer import invoice_file_name, write_invoice_file
from caselle_ic.result import InvoiceCount, RunResult
from caselle_ic.tabular.memory import use_jemalloc
from caselle_ic.tabular.output import write_rejects
from caselle_ic.tabular.parallel import set_threads
from caselle_ic.tabular.values import format_cents

F = TypeVar("F", bound=Callable[..., Any])
Step = Callable[[F], F]

INVOICE_KIND = "invoice-file"
ADJUSTMENTS_KIND = "adjustments-file"


def _identity(fn: F) -> F:
    return fn


def run_invoice_file(
    extract: str | Path,
    config: str | Path | BillerConfig,
    out_dir: str | Path,
    now: str | datetime | None = None,
    adjustments: bool = False,
    step: Callable[[Any], Any] | None = None,
) -> RunResult:
    """Statement (or adjustments) extract -> ``OUT/INVCLD_CSLSTMT101_<stamp>.txt``.

    ``step`` wraps each step function (identity by default); the Prefect flows pass one
    that makes each step a task. Raises a CaselleICError (exit 2) when nothing is written.
    """
    wrap = step or _identity
    # a loaded config is passed down by the CLI (loaded once per run); a path is loaded here
    cfg = config if isinstance(config, BillerConfig) else wrap(load_config)(config)
    use_jemalloc(give_back=cfg.performance.lean_memory)
    set_threads(cfg.performance.threads)
    clock = resolve_now(now, cfg.tz)
    kind = ADJUSTMENTS_KIND if adjustments else INVOICE_KIND
    stem = invoice_file_name(clock).removesuffix(".txt")

    table = wrap(read_extract)(extract, cfg)
    if table.num_rows == 0:
        raise InputError("the extract has a header but no rows; there is nothing to send", file=extract)
    checked = wrap(check_extract)(table, cfg)
    del table  # the extract's text: what the records still need, they hold themselves
    build = wrap(build_records)(checked, cfg, clock)
    del checked  # parsed lines and statements: released before the file is rendered

    result = RunResult(
        kind=kind,
        biller=cfg.name,
        inputs=[Path(extract)],
        counts=dict(build.counts),
        totals={"TotalInvoiceAmount": format_cents(build.total_cents)},
        quarantined=build.rejects,
        notes=list(build.notes),
        period=f"{clock:%Y-%m}",
    )
    result.rejects_path = wrap(write_rejects)(build.rejects, out_dir, stem)
    if build.counts[InvoiceCount.STATEMENTS_WRITTEN] == 0:
        result.counts[InvoiceCount.RECORDS_WRITTEN] = 0
        n_in = build.counts[InvoiceCount.STATEMENTS_IN]
        result.error = (
            f"every statement of {extract} was quarantined ({n_in} statements); "
            f"no invoice file was written. The reasons are in {result.rejects_path}"
        )
        # Raised for callers of this function (and so the flow run fails); the registry of
        # kinds turns it back into ``result`` (exit 2, nothing written) for every consumer.
        raise NothingToWriteError(result.error, result=result)
    path = wrap(write_invoice_file)(
        build.records,
        out_dir,
        clock,
        line_ending=cfg.invoice_file.line_ending,
        encoding=cfg.invoice_file.encoding,
    )
    result.outputs.append(path)
    return result
