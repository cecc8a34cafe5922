"""The ``caselle-ic`` command (SPEC §10, §11).

Exit status: 0 everything accepted; 1 output written and some records quarantined;
2 nothing written (bad arguments, bad configuration, unreadable input); 3 internal error
(one redacted line on stderr names the step and the log file with the traceback).

When a Prefect API is configured (``PREFECT_API_URL``), ``invoices``, ``payments`` and
``paperless`` run as the matching Prefect flow so the run shows in the UI; otherwise the
same pipeline functions run directly (:mod:`caselle_ic.kinds` decides, in one place).

Adding a command: one function decorated with :func:`command` (its help, and a function
that adds its arguments); it gets the parsed arguments and the biller file loaded once
(or None), and returns a RunResult, a :class:`~caselle_ic.cli_support.Report` or an exit
status. :func:`caselle_ic.cli_support.run_command` does the rest (logging, redaction,
``--json``, exit statuses). Heavy imports happen inside each command so ``--help`` is
instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caselle_ic import kinds
from caselle_ic.cli_support import (
    EXIT_STATUSES,
    Report,
    VersionAction,
    common_options,
    config_arg,
    ledger_arg,
    now_arg,
    out_arg,
    progress_display,
    run_command,
)

Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    func: Callable[[argparse.Namespace, Any], Any]
    arguments: Arguments
    loads_config: bool = True  # load a single --config at the edge and pass it down


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Arguments, *, loads_config: bool = True) -> Callable[..., Any]:
    """Register a subcommand: ``@command("name", "what it does", add_its_arguments)``."""

    def register(func: Callable[[argparse.Namespace, Any], Any]) -> Callable[[argparse.Namespace, Any], Any]:
        COMMANDS[name] = Command(name, help, func, arguments, loads_config)
        return func

    return register


def prefect_configured() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))


def run_kind(name: str, input: Any, cfg: Any, args: argparse.Namespace, **kw: Any) -> Any:
    """Run one kind: as its Prefect flow when an API is configured, else directly."""
    from caselle_ic.steps import tracked

    kind = kinds.get(name)
    if prefect_configured():
        return kind.run(input, cfg, via_flow=True, **kw)
    with progress_display(True) as progress:
        return kind.run(input, cfg, step=tracked, progress=progress, **kw)


# -- the commands --------------------------------------------------------------------------------
def _invoices_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("extract", type=Path, metavar="EXTRACT", help="the statement extract (SPEC §2.1)")
    p.add_argument("--adjustments", action="store_true", help="an adjustments extract (same format)")
    config_arg(p)
    out_arg(p, help="where the invoice file goes (rejects in DIR/rejects/)")
    now_arg(p)


@command("invoices", kinds.KINDS["invoices"].description, _invoices_args)
def cmd_invoices(args: argparse.Namespace, cfg: Any) -> Any:
    name = "adjustments" if args.adjustments else "invoices"
    return run_kind(name, args.extract, cfg, args, out_dir=args.out, now=args.now)


def _payments_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("export", type=Path, metavar="EXPORT", help="the IC payment export (SPEC §2.2)")
    config_arg(p)
    out_arg(p, help="where lockbox files and the reconciliation go")
    now_arg(p)
    ledger_arg(p)


@command("payments", kinds.KINDS["payments"].description, _payments_args)
def cmd_payments(args: argparse.Namespace, cfg: Any) -> Any:
    return run_kind(
        "payments", args.export, cfg, args, out_dir=args.out, now=args.now, ledger_url=args.ledger
    )


def _paperless_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", type=Path, metavar="LOG", help="the paperless change log (SPEC §2.3)")
    config_arg(p)
    ledger_arg(p)
    out_arg(p, required=False, help="where rejects go (default: [paths].outbox)")


@command("paperless", kinds.KINDS["paperless"].description, _paperless_args)
def cmd_paperless(args: argparse.Namespace, cfg: Any) -> Any:
    return run_kind("paperless", args.log, cfg, args, out_dir=args.out, ledger_url=args.ledger)


def _audit_args(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the payments' date")
    out_arg(p, help="where audit-YYYY-MM-DD.csv goes")
    ledger_arg(p)
    p.add_argument(
        "--export",
        type=Path,
        action="append",
        metavar="FILE",
        help="the day's export(s) (default: the archive)",
    )


@command(
    "audit",
    "prove a day's payments landed in Caselle exactly once (SPEC §11)",
    _audit_args,
    loads_config=False,
)
def cmd_audit(args: argparse.Namespace, cfg: Any) -> Any:
    """Exit 0 clean, 1 discrepancies, 2 cannot run."""
    from caselle_ic.audit.pipeline import run_audit

    kwargs: dict[str, Any] = {
        "config": str(args.config),
        "out_dir": str(args.out),
        "ledger_url": args.ledger,
        "exports": [str(p) for p in args.export] if args.export else None,
    }
    if prefect_configured():
        from caselle_ic.flows.audit import daily_audit

        return daily_audit(date=args.date, **kwargs)
    return run_audit(day=args.date, **kwargs)


def _balance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("account", metavar="ACCOUNT", help="the account (customer number) to look up")
    config_arg(p)


@command("balance", "RTDR balance of one account, as JSON", _balance_args)
def cmd_balance(args: argparse.Namespace, cfg: Any) -> Report:
    from caselle_ic.sync.balance import lookup_balance

    found = lookup_balance(args.account, cfg)
    return Report(0, {"balance": found}, stdout=json.dumps(found, separators=(",", ":")) + "\n")


def _emulator_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary file)")
    p.add_argument("--token-ttl", type=int, default=3600, help="OAuth token lifetime in seconds")
    p.add_argument("--seed", type=Path, default=None, help="statement extract to seed customers from")
    p.add_argument("--latency-ms", type=int, default=0, help="fault: delay every request by this much")
    p.add_argument("--fail-next", type=int, default=0, help="fault: the next N GraphQL requests get HTTP 500")
    p.add_argument(
        "--drop-after-commit",
        type=int,
        default=0,
        help="fault: the next N mutation requests commit, then the connection drops",
    )
    p.add_argument(
        "--schema-variant",
        metavar="missing-field|renamed-arg|FILE.graphql",
        help="serve a schema that differs from ours (to test `caselle-ic check --live`)",
    )


@command("emulator", "run the Caselle Connect emulator on 127.0.0.1", _emulator_args, loads_config=False)
def cmd_emulator(args: argparse.Namespace, cfg: Any) -> int:
    from caselle_ic.emulator import serve

    serve(
        host=args.host,
        port=args.port,
        db=args.db,
        token_ttl=args.token_ttl,
        seed=args.seed,
        latency_ms=args.latency_ms,
        fail_next=args.fail_next,
        drop_after_commit=args.drop_after_commit,
        schema_variant=args.schema_variant,
    )
    return 0


def _codes_args(p: argparse.ArgumentParser) -> None:
    csub = p.add_subparsers(dest="codes_command", required=True, metavar="SUBCOMMAND")
    tp = csub.add_parser("template", help="print the go-forward setting-131 JSON (codes 95-99)")
    common_options(tp)
    ep = csub.add_parser("explain", help="show which setting-131 entry wins for a payment, and why")
    config_arg(ep)
    ep.add_argument("--payment-type", required=True, type=int, help="IC PaymentTypeID of the payment")
    ep.add_argument("--card-vendor", help="card vendor (credit card payments)")
    ep.add_argument("--obd-vendor", help="online bill-pay vendor")
    ep.add_argument("--invoice-type", help="IC invoice type of the payment")
    common_options(ep)


@command("codes", "payment codes (setting 131)", _codes_args)
def cmd_codes(args: argparse.Namespace, cfg: Any) -> Report:
    from caselle_ic.payments import codes_explain

    if args.codes_command == "template":
        text = codes_explain.template_json()
        return Report(0, {"setting_131": json.loads(text)}, stdout=text + "\n")
    text = codes_explain.explain_text(
        cfg,
        payment_type=args.payment_type,
        card_vendor=args.card_vendor,
        obd_vendor=args.obd_vendor,
        invoice_type=args.invoice_type,
    )
    return Report(0, {"explanation": text}, stdout=text + "\n")


def _check_args(p: argparse.ArgumentParser) -> None:
    config_arg(p)
    p.add_argument(
        "--live", action="store_true", help="authenticate to every endpoint and compare its schema"
    )
    p.add_argument("--account", metavar="N", help="also look up this customer number (RTDR, setting 8)")


@command(
    "check",
    "is this biller file ready? settings, codes; --live: the endpoints",
    _check_args,
    loads_config=False,
)
def cmd_check(args: argparse.Namespace, cfg: Any) -> Report:
    # loads the file itself: a file that does not load is a finding (exit 2), not a crash
    from caselle_ic.ops.check import render_text, run_check

    report = run_check(args.config, live=args.live, account=args.account)
    payload = {k: v for k, v in report.as_json().items() if k != "exit_status"}
    return Report(report.exit_status, payload, stdout=render_text(report) + "\n")


def _trace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("payment_guid", metavar="PAYMENT_GUID", help="IC PaymentGUID (payment_guid column)")
    config_arg(p)
    ledger_arg(p)


@command(
    "trace",
    "the life of one payment: export line, codes, states, receipt/file, void",
    _trace_args,
    loads_config=False,
)
def cmd_trace(args: argparse.Namespace, cfg: Any) -> Report:
    from caselle_ic.ops.trace import render_text, trace_payment

    found = trace_payment(args.payment_guid, args.config, ledger_url=args.ledger)
    return Report(0, dict(found), stdout=render_text(found) + "\n")


def _claims_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--release", metavar="SHA256|FILE", help="forget this claim: the content is processed again"
    )
    p.add_argument(
        "--force", action="store_true", help="release a claim even if its run may still be working"
    )
    p.add_argument("--all", action="store_true", help="also list done claims (processed content)")
    config_arg(p)
    ledger_arg(p)


@command("inbox-claims", "list the inbox claims (who took which file), release one", _claims_args)
def cmd_inbox_claims(args: argparse.Namespace, cfg: Any) -> Report:
    from caselle_ic.ops import claims

    if args.release:
        result = claims.release_claim(cfg, args.release, args.ledger, force=args.force)
    else:
        result = claims.list_claims(cfg, args.ledger, include_done=args.all)
    return Report(0, dict(result), stdout=claims.render_text(result) + "\n")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=None, help="where outputs go (default: ./demo-output)")
    p.add_argument("--no-prefect", action="store_true", help="run the pipelines without a Prefect server")


@command("demo", "everything end to end on data/samples against the emulator", _demo_args, loads_config=False)
def cmd_demo(args: argparse.Namespace, cfg: Any) -> int:
    from caselle_ic.ops.demo import run_demo

    return int(run_demo(workdir=args.workdir, prefect=not args.no_prefect))


def _serve_args(p: argparse.ArgumentParser) -> None:
    config_arg(p, many=True)
    ledger_arg(p, "shared ledger database of the inbox runs (no password)")


@command("serve", "serve the scheduled deployments of one or more billers", _serve_args)
def cmd_serve(args: argparse.Namespace, cfg: Any) -> int:
    from caselle_ic.ops.deploy import serve_billers

    serve_billers([str(c) for c in args.config], ledger_url=args.ledger)
    return 0


def _inbox_args(p: argparse.ArgumentParser) -> None:
    choices = ["all", *kinds.inbox_kinds()]
    p.add_argument("--kind", choices=choices, default="all", help="which inputs to pick up (default: all)")
    p.add_argument(
        "--settle", type=float, default=30.0, metavar="SECONDS", help="skip files younger than this"
    )
    config_arg(p)
    ledger_arg(p)


@command("inbox", "process the files waiting in the biller's [paths].inbox, once", _inbox_args)
def cmd_inbox(args: argparse.Namespace, cfg: Any) -> Report:
    """Process what waits in the biller's inbox, once (cron-friendly, no Prefect needed)."""
    from caselle_ic.errors import InboxError
    from caselle_ic.ops.inbox import make_handler, process_inbox

    status, summaries = 0, []
    for name in kinds.inbox_kinds() if args.kind == "all" else (args.kind,):
        lines: list[str]
        if prefect_configured():
            rule = kinds.get(name).inbox
            assert rule is not None
            try:
                summary = rule.flow()(
                    config=str(args.config), ledger_url=args.ledger, settle_seconds=args.settle
                )
                lines = []
            except InboxError as exc:
                summary, lines = dict(exc.summary or {"exit_status": 2}), [f"caselle-ic inbox: {exc}"]
                summary["exit_status"] = 2
        else:
            handler = make_handler(name, cfg, via_flow=False, ledger_url=args.ledger)
            report = process_inbox(cfg, name, handler, ledger_url=args.ledger, settle_seconds=args.settle)
            summary, lines = report.to_dict(), report.summary_lines()
        status = max(status, int(summary["exit_status"]))
        summaries.append(summary)
        if not args.json:  # as each kind finishes, so its lines follow its own log lines
            for line in lines:
                print(line, file=sys.stderr)
    return Report(status, {"pickups": summaries})


def _deployments_args(p: argparse.ArgumentParser) -> None:
    config_arg(p, many=True)
    p.add_argument("--pool", default="caselle-ic", help="process work pool name")
    p.add_argument("--root", type=Path, default=None, help="repository root on the workers (default: .)")
    ledger_arg(p, "shared ledger database of the inbox runs (no password)")
    p.add_argument(
        "--no-alerts",
        dest="alerts",
        action="store_false",
        help="do not create or update the billers' [alerts] automations on the Prefect server",
    )
    p.add_argument(
        "--remove",
        action="store_true",
        help="remove the billers' deployments and alert automations from the Prefect server "
        "(needs PREFECT_API_URL)",
    )


@command("deployments", "print a prefect.yaml of the billers' deployments (work pool)", _deployments_args)
def cmd_deployments(args: argparse.Namespace, cfg: Any) -> Report:
    from caselle_ic.config.model import load_config
    from caselle_ic.errors import UsageError
    from caselle_ic.ops.deploy import deploy_alerts, remove_billers, render_prefect_yaml

    configs = [str(c) for c in args.config]
    api = prefect_configured()
    if args.remove:  # the billers leave: their deployments and automations go
        if not api:
            raise UsageError("--remove needs the Prefect server: set PREFECT_API_URL")
        lines = remove_billers(configs)
        return Report(0, {"removed": lines}, stderr=lines)
    root = Path(args.root) if args.root else Path.cwd()
    text = render_prefect_yaml(configs, root=root, work_pool=args.pool, ledger_url=args.ledger)
    notes: list[str] = []
    if args.alerts and api:  # deploying a biller also sets its alerts (SPEC §11)
        notes = deploy_alerts([load_config(c, resolve_secrets=False) for c in configs])
    elif args.alerts:
        notes = ["alerts not set: PREFECT_API_URL is not configured"]
    return Report(0, {"prefect_yaml": text, "alerts": notes}, stdout=text, stderr=notes)


# -- the parser and main ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="caselle-ic",
        description="Caselle <-> Invoice Cloud integration",
        epilog=EXIT_STATUSES,
        formatter_class=raw,
    )
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in COMMANDS.values():
        sp = sub.add_parser(
            c.name, help=c.help, description=c.help, epilog=EXIT_STATUSES, formatter_class=raw
        )
        c.arguments(sp)
        if not sp._subparsers:  # a command with sub-subcommands adds them to each of those
            common_options(sp)
        sp.set_defaults(func=c.func, loads_config=c.loads_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on bad arguments (naming it), 0 on --help
        return int(exc.code or 0)
    return run_command(args, ["caselle-ic", *args_list])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
