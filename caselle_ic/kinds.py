"""The kinds of work, declared once: pipeline, Prefect flow, inbox rule, deployments.

Each :class:`Kind` names its plain pipeline function, the Prefect flow that wraps it, how
the inbox recognises its files (and the scheduled pickup flow), the on-demand deployment
if it has one, and the arguments its pipeline takes. The CLI, the inbox, the deployments
and the flows read :data:`KINDS`; :meth:`Kind.run` is the one place that decides "run as
a Prefect flow or call the function" and the one place that turns a raised
:class:`~caselle_ic.errors.NothingToWriteError` back into its result, so every consumer sees
one :class:`~caselle_ic.result.RunResult` shape.

Adding a kind is one entry here plus its pipeline (and its flow in ``flows/``).

Functions and flows are referenced through small loader functions with ordinary imports
(type-checked, no import strings): importing this module must not import Prefect or
pandas, so ``caselle-ic --help`` stays instant and the library is usable without Prefect's
flows being registered. Place in the dependency rule: above ``flows`` and the pipelines
(it imports them, lazily), below ``ops`` and ``cli`` (which read it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caselle_ic.errors import NothingToWriteError, RunFailedError

if TYPE_CHECKING:
    from caselle_ic.config.model import BillerConfig
    from caselle_ic.result import RunResult

Pipeline = Callable[..., "RunResult"]
Flow = Callable[..., Any]  # a prefect.Flow; typed loosely so this module does not import prefect


@dataclass(frozen=True)
class InboxRule:
    """How the scheduled pickup finds this kind's files in ``[paths].inbox``.

    A file in ``inbox/<kind>/`` is this kind whatever its name; a file directly in the inbox
    is routed by ``pattern`` (rules tried by ascending ``rank``, first match wins).
    """

    flow_name: str  # Prefect flow of the pickup; deployment "<flow_name>/<biller slug>"
    flow: Callable[[], Flow]
    pattern: re.Pattern[str]
    rank: int
    description: str  # of the pickup deployment


@dataclass(frozen=True)
class Kind:
    name: str  # the CLI's and the inbox's name: "payments"
    flow_name: str  # Prefect flow name of one run, and RunResult.kind: "daily-payments"
    description: str
    pipeline: Callable[[], Pipeline]
    flow: Callable[[], Flow]
    input_arg: str | None  # keyword of the input file ("export"); None: no input file
    inbox: InboxRule | None = None
    #: description of the on-demand deployment "<flow_name>/<biller slug>" ("" = none)
    on_demand: str = ""
    out_dir: bool = True  # the pipeline takes out_dir
    now: bool = True  # ... now
    ledger: bool = False  # ... ledger_url
    steps: bool = False  # ... step (each step a Prefect task, or tracked in a direct run)
    progress: bool = False  # ... progress(done, total)

    def run(
        self,
        input: str | Path | None,
        config: BillerConfig | str | Path,
        *,
        via_flow: bool = False,
        out_dir: str | Path | None = None,
        now: str | None = None,
        ledger_url: str | None = None,
        step: Callable[[Any], Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run this kind on one input: through its Prefect flow (``via_flow``: inside a flow
        run it becomes a subflow with its own run and artifacts) or as the plain function.

        ``config`` may be a loaded :class:`BillerConfig` (a direct run then loads nothing
        again); a flow takes the file's path, since flow parameters are shown in the UI.
        ``step`` and ``progress`` are for direct runs (the flows bring their own).
        """
        kwargs: dict[str, Any] = {}
        if self.input_arg is not None:
            kwargs[self.input_arg] = str(input)
        if self.out_dir and out_dir is not None:
            kwargs["out_dir"] = str(out_dir)
        if self.now:
            kwargs["now"] = now
        if self.ledger:
            kwargs["ledger_url"] = ledger_url
        kwargs.update(params or {})
        try:
            if via_flow:
                from caselle_ic.flows._common import lending_config
                from caselle_ic.flows.unattended import subflow_without_heartbeat

                with subflow_without_heartbeat(), lending_config(config):
                    return self.flow()(config=config_path(config), **kwargs)  # type: ignore[no-any-return]
            if self.steps and step is not None:
                kwargs["step"] = step
            if self.progress and progress is not None:
                kwargs["progress"] = progress
            return self.pipeline()(config=config, **kwargs)
        except (NothingToWriteError, RunFailedError) as exc:
            from caselle_ic.result import RunResult

            # "Nothing written" has one shape for every consumer: the result, exit 2. So has
            # a flow run that ended Failed because its command would exit 2 (SPEC §11: the
            # run is red in Prefect; the inbox still reads retry_later from the result).
            if isinstance(exc.result, RunResult):
                return exc.result
            raise


def config_path(config: BillerConfig | str | Path) -> str:
    """The biller file's path as a flow parameter."""
    if isinstance(config, str | Path):
        return str(config)
    return str(config.source)


# -- loaders: plain imports, done when a kind is run --------------------------------------
def _run_invoices() -> Pipeline:
    from caselle_ic.invoices.pipeline import run_invoice_file

    return run_invoice_file


def _run_adjustments() -> Pipeline:
    from functools import partial

    from caselle_ic.invoices.pipeline import run_invoice_file

    # The one place the adjustments special case lives: the invoice run, as adjustments.
    return partial(run_invoice_file, adjustments=True)


def _run_payments() -> Pipeline:
    from caselle_ic.payments.pipeline import run_daily_payments

    return run_daily_payments


def _run_paperless() -> Pipeline:
    from caselle_ic.sync.paperless import run_paperless_sync

    return run_paperless_sync


def _run_balance() -> Pipeline:
    from caselle_ic.sync.balance import run_balance_refresh

    return run_balance_refresh


def _flow_invoices() -> Flow:
    from caselle_ic.flows.invoices import invoice_file

    return invoice_file


def _flow_adjustments() -> Flow:
    from caselle_ic.flows.invoices import adjustments_file

    return adjustments_file


def _flow_payments() -> Flow:
    from caselle_ic.flows.payments import daily_payments

    return daily_payments


def _flow_paperless() -> Flow:
    from caselle_ic.flows.paperless import paperless_sync

    return paperless_sync


def _flow_balance() -> Flow:
    from caselle_ic.flows.balance import balance_refresh

    return balance_refresh


def _inbox_invoices() -> Flow:
    from caselle_ic.flows.ops import invoice_inbox

    return invoice_inbox


def _inbox_adjustments() -> Flow:
    from caselle_ic.flows.ops import adjustments_inbox

    return adjustments_inbox


def _inbox_payments() -> Flow:
    from caselle_ic.flows.ops import payments_inbox

    return payments_inbox


def _inbox_paperless() -> Flow:
    from caselle_ic.flows.ops import paperless_inbox

    return paperless_inbox


#: Every kind, in the order the CLI, the inbox (``--kind all``) and the deployments list them.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "invoices",
            "invoice-file",
            "statement extract -> IC invoice file",
            _run_invoices,
            _flow_invoices,
            "extract",
            inbox=InboxRule(
                "invoice-inbox",
                _inbox_invoices,
                re.compile(r"statement|stmt|extract|invoice", re.IGNORECASE),
                4,
                "Statement extracts waiting in the inbox -> IC invoice files in the outbox",
            ),
            steps=True,
        ),
        Kind(
            "adjustments",
            "adjustments-file",
            "adjustments extract -> IC invoice file (same format)",
            _run_adjustments,
            _flow_adjustments,
            "extract",
            inbox=InboxRule(
                "adjustments-inbox",
                _inbox_adjustments,
                re.compile(r"adjust", re.IGNORECASE),
                1,
                "Adjustments extracts waiting in the inbox -> IC invoice files in the outbox",
            ),
            on_demand="one adjustments extract (give its path as `extract`) -> an IC invoice file",
            steps=True,
        ),
        Kind(
            "payments",
            "daily-payments",
            "daily payment run: Data Pump, voids, lockbox, reconciliation",
            _run_payments,
            _flow_payments,
            "export",
            inbox=InboxRule(
                "payments-inbox",
                _inbox_payments,
                re.compile(r"payment|pymt", re.IGNORECASE),
                3,
                "IC payment exports waiting in the inbox -> Data Pump receipts, voids, lockbox files",
            ),
            ledger=True,
            steps=True,
            progress=True,
        ),
        Kind(
            "paperless",
            "paperless-sync",
            "paperless change log -> Caselle",
            _run_paperless,
            _flow_paperless,
            "log",
            inbox=InboxRule(
                "paperless-inbox",
                _inbox_paperless,
                re.compile(r"paperless", re.IGNORECASE),
                2,
                "Paperless change logs waiting in the inbox -> Caselle paper-statement flags",
            ),
            now=False,
            ledger=True,
        ),
        Kind(
            "balance",
            "balance-refresh",
            "RTDR balances of a list of accounts -> a CSV",
            _run_balance,
            _flow_balance,
            "accounts",
            on_demand="current Caselle balances of the given accounts -> a CSV in the outbox",
        ),
    )
}


def get(name: str) -> Kind:
    """The kind called ``name``; ValueError naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; one of {', '.join(KINDS)}") from None


def inbox_kinds() -> tuple[str, ...]:
    """The kinds the inbox picks up, in registry order."""
    return tuple(k.name for k in KINDS.values() if k.inbox is not None)


def name_rules() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(kind, pattern) for files directly in the inbox, in the order they are tried."""
    rules = [(k.inbox.rank, k.name, k.inbox.pattern) for k in KINDS.values() if k.inbox is not None]
    return tuple((name, pattern) for _, name, pattern in sorted(rules, key=lambda r: r[0]))


__all__ = ["KINDS", "InboxRule", "Kind", "config_path", "get", "inbox_kinds", "name_rules"]
