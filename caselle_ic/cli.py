"""The ``caselle-ic`` command (SPEC §10).

Exit status: 0 everything accepted; 1 output written and some records quarantined;
2 nothing written (bad arguments, bad configuration, unreadable input).

When a Prefect API is configured (``PREFECT_API_URL``), ``invoices``, ``payments`` and
``paperless`` run as the matching Prefect flow so the run shows in the UI; otherwise the
same pipeline functions run directly, without starting a Prefect server.

Heavy imports (pandas, prefect, gql) happen inside each command so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from caselle_ic.errors import CaselleICError


def prefect_configured() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))


def _run_pipeline(flow_module: str, flow_name: str, direct: Callable[..., Any], **kwargs: Any) -> Any:
    """Run through the Prefect flow when an API is configured, else call directly."""
    if prefect_configured():
        import importlib

        from caselle_ic.errors import RunFailedError

        module = importlib.import_module(flow_module)
        try:
            return getattr(module, flow_name)(**kwargs)
        except RunFailedError as exc:  # red in Prefect; reported (exit 2) like the direct path
            if exc.result is None:
                raise
            return exc.result
    return direct(**kwargs)


def _finish(result: Any) -> int:
    for line in result.summary_lines():
        print(line, file=sys.stderr)
    return int(result.exit_status)


def cmd_invoices(args: argparse.Namespace) -> int:
    from caselle_ic.invoices.pipeline import run_invoice_file

    flow_name = "adjustments_file" if args.adjustments else "invoice_file"
    result = _run_pipeline(
        "caselle_ic.flows.invoices",
        flow_name,
        run_invoice_file,
        extract=str(args.extract),
        config=str(args.config),
        out_dir=str(args.out),
        now=args.now,
        **({"adjustments": True} if args.adjustments and not prefect_configured() else {}),
    )
    return _finish(result)


def cmd_payments(args: argparse.Namespace) -> int:
    from caselle_ic.payments.pipeline import run_daily_payments

    result = _run_pipeline(
        "caselle_ic.flows.payments",
        "daily_payments",
        run_daily_payments,
        export=str(args.export),
        config=str(args.config),
        out_dir=str(args.out),
        now=args.now,
        ledger_url=args.ledger,
    )
    return _finish(result)


def cmd_paperless(args: argparse.Namespace) -> int:
    from caselle_ic.sync.paperless import run_paperless_sync

    result = _run_pipeline(
        "caselle_ic.flows.paperless",
        "paperless_sync",
        run_paperless_sync,
        log=str(args.log),
        config=str(args.config),
        ledger_url=args.ledger,
        **({"out_dir": str(args.out)} if args.out else {}),
    )
    return _finish(result)


def cmd_balance(args: argparse.Namespace) -> int:
    from caselle_ic.config.model import load_config
    from caselle_ic.sync.balance import lookup_balance

    print(json.dumps(lookup_balance(args.account, load_config(args.config)), separators=(",", ":")))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
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
    )
    return 0


def cmd_codes(args: argparse.Namespace) -> int:
    from caselle_ic.payments import codes

    if args.codes_command == "template":
        print(codes.template_json())
        return 0
    from caselle_ic.config.model import load_config

    print(
        codes.explain_text(
            load_config(args.config),
            payment_type=args.payment_type,
            card_vendor=args.card_vendor,
            obd_vendor=args.obd_vendor,
            invoice_type=args.invoice_type,
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from caselle_ic.ops.demo import run_demo

    return int(run_demo(workdir=args.workdir, prefect=not args.no_prefect))


def cmd_serve(args: argparse.Namespace) -> int:
    from caselle_ic.ops.deploy import serve_billers

    serve_billers([str(c) for c in args.config], ledger_url=args.ledger)
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    """Process what waits in the biller's inbox, once (cron-friendly, no Prefect needed)."""
    from caselle_ic.config.model import load_config
    from caselle_ic.ops.inbox import KINDS, make_handler, process_inbox

    cfg = load_config(args.config)
    status = 0
    for kind in KINDS if args.kind == "all" else (args.kind,):
        if prefect_configured():
            import importlib

            from caselle_ic.errors import InboxError

            flow = getattr(importlib.import_module("caselle_ic.flows.ops"), _INBOX_FLOW_FN[kind])
            try:
                summary = flow(config=str(args.config), ledger_url=args.ledger, settle_seconds=args.settle)
            except InboxError as exc:
                print(f"caselle-ic inbox: {exc}", file=sys.stderr)
                status = 2
            else:
                status = max(status, int(summary["exit_status"]))
            continue
        handler = make_handler(kind, args.config, via_flow=False, ledger_url=args.ledger)
        report = process_inbox(cfg, kind, handler, ledger_url=args.ledger, settle_seconds=args.settle)
        for line in report.summary_lines():
            print(line, file=sys.stderr)
        status = max(status, report.exit_status)
    return status


_INBOX_FLOW_FN = {
    "invoices": "invoice_inbox",
    "adjustments": "adjustments_inbox",
    "payments": "payments_inbox",
    "paperless": "paperless_inbox",
}


def cmd_deployments(args: argparse.Namespace) -> int:
    from caselle_ic.config.model import load_config
    from caselle_ic.errors import UsageError
    from caselle_ic.ops.deploy import deploy_alerts, remove_billers, render_prefect_yaml

    configs = [str(c) for c in args.config]
    if args.remove:  # the billers leave: their deployments and automations go
        if not prefect_configured():
            raise UsageError("--remove needs the Prefect server: set PREFECT_API_URL")
        for line in remove_billers(configs):
            print(line, file=sys.stderr)
        return 0
    root = Path(args.root) if args.root else Path.cwd()
    text = render_prefect_yaml(configs, root=root, work_pool=args.pool, ledger_url=args.ledger)
    if args.alerts and prefect_configured():  # deploying a biller also sets its alerts (SPEC §11)
        for line in deploy_alerts([load_config(c) for c in configs]):
            print(line, file=sys.stderr)
    elif args.alerts:
        print("alerts not set: PREFECT_API_URL is not configured", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="caselle-ic", description="Caselle <-> Invoice Cloud integration")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(
        sp: argparse.ArgumentParser, *, out: bool = False, now: bool = False, ledger: bool = False
    ) -> None:
        sp.add_argument("--config", required=True, type=Path, metavar="BILLER.toml")
        if out:
            sp.add_argument("--out", required=True, type=Path, metavar="DIR")
        if now:
            sp.add_argument(
                "--now", metavar="YYYY-MM-DDTHH:MM:SS", help="pin the run clock (biller local time)"
            )
        if ledger:
            sp.add_argument("--ledger", metavar="URL", help="SQLAlchemy URL of the ledger database")

    sp = sub.add_parser("invoices", help="statement extract -> IC invoice file")
    sp.add_argument("extract", type=Path, metavar="EXTRACT")
    sp.add_argument("--adjustments", action="store_true", help="an adjustments extract (same format)")
    common(sp, out=True, now=True)
    sp.set_defaults(func=cmd_invoices)

    sp = sub.add_parser("payments", help="daily payment run: Data Pump, voids, lockbox, reconciliation")
    sp.add_argument("export", type=Path, metavar="EXPORT")
    common(sp, out=True, now=True, ledger=True)
    sp.set_defaults(func=cmd_payments)

    sp = sub.add_parser("paperless", help="paperless change log -> Caselle")
    sp.add_argument("log", type=Path, metavar="LOG")
    common(sp, ledger=True)
    sp.add_argument("--out", type=Path, metavar="DIR", help="where rejects go (default: [paths].outbox)")
    sp.set_defaults(func=cmd_paperless)

    sp = sub.add_parser("balance", help="RTDR balance of one account, as JSON")
    sp.add_argument("account", metavar="ACCOUNT")
    common(sp)
    sp.set_defaults(func=cmd_balance)

    sp = sub.add_parser("emulator", help="run the Caselle Connect emulator on 127.0.0.1")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary file)")
    sp.add_argument("--token-ttl", type=int, default=3600, help="OAuth token lifetime in seconds")
    sp.add_argument("--seed", type=Path, default=None, help="statement extract to seed customers from")
    sp.add_argument("--latency-ms", type=int, default=0, help="fault: delay every request by this much")
    sp.add_argument(
        "--fail-next", type=int, default=0, help="fault: the next N GraphQL requests get HTTP 500"
    )
    sp.add_argument(
        "--drop-after-commit",
        type=int,
        default=0,
        help="fault: the next N mutation requests commit, then the connection drops",
    )
    sp.set_defaults(func=cmd_emulator)

    sp = sub.add_parser("codes", help="payment codes (setting 131)")
    csub = sp.add_subparsers(dest="codes_command", required=True)
    tp = csub.add_parser("template", help="print the go-forward setting-131 JSON (codes 95-99)")
    tp.set_defaults(func=cmd_codes)
    ep = csub.add_parser("explain", help="show which setting-131 entry wins for a payment, and why")
    ep.add_argument("--config", required=True, type=Path)
    ep.add_argument("--payment-type", required=True, type=int)
    ep.add_argument("--card-vendor")
    ep.add_argument("--obd-vendor")
    ep.add_argument("--invoice-type")
    ep.set_defaults(func=cmd_codes)

    sp = sub.add_parser("demo", help="everything end to end on data/samples against the emulator")
    sp.add_argument("--workdir", type=Path, default=None, help="where outputs go (default: ./demo-output)")
    sp.add_argument("--no-prefect", action="store_true", help="run the pipelines without a Prefect server")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("serve", help="serve the scheduled deployments of one or more billers")
    sp.add_argument("--config", required=True, type=Path, action="append", metavar="BILLER.toml")
    sp.add_argument("--ledger", metavar="URL", help="shared ledger database of the inbox runs (no password)")
    sp.set_defaults(func=cmd_serve)
    sp = sub.add_parser("inbox", help="process the files waiting in the biller's [paths].inbox, once")
    sp.add_argument(
        "--kind", choices=["all", "invoices", "adjustments", "payments", "paperless"], default="all"
    )
    sp.add_argument(
        "--settle", type=float, default=30.0, metavar="SECONDS", help="skip files younger than this"
    )
    common(sp, ledger=True)
    sp.set_defaults(func=cmd_inbox)

    sp = sub.add_parser("deployments", help="print a prefect.yaml of the billers' deployments (work pool)")
    sp.add_argument("--config", required=True, type=Path, action="append", metavar="BILLER.toml")
    sp.add_argument("--pool", default="caselle-ic", help="process work pool name")
    sp.add_argument("--root", type=Path, default=None, help="repository root on the workers (default: .)")
    sp.add_argument("--ledger", metavar="URL", help="shared ledger database of the inbox runs (no password)")
    sp.add_argument(
        "--no-alerts",
        dest="alerts",
        action="store_false",
        help="do not create or update the billers' alert automations on the Prefect server",
    )
    sp.add_argument(
        "--remove",
        action="store_true",
        help="remove the billers' deployments and alert automations from the Prefect server",
    )
    sp.set_defaults(func=cmd_deployments)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except CaselleICError as exc:
        print(f"caselle-ic {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"caselle-ic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
