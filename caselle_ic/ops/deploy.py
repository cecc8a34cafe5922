"""Deployments per biller, with schedules in the biller's time zone (SPEC §10).

For each biller (deployment name = the biller's slug, e.g. ``sample-city-utilities``):

==========================  =====================================  ==========================
deployment                  what it runs                           when (``[schedule]``)
==========================  =====================================  ==========================
``invoice-inbox/<biller>``  statement extracts in the inbox        ``invoices``, default
                            -> ``invoice-file`` per file           ``0 6 1 * *`` (1st, 06:00)
``payments-inbox/<biller>`` payment exports -> ``daily-payments``  ``payments``, ``0 7 * * *``
``paperless-inbox/<b…>``    change logs -> ``paperless-sync``      ``paperless``, ``0 6 * * *``
``adjustments-inbox/<b…>``  adjustments extracts                   ``adjustments``, on demand
``adjustments-file/<b…>``   one adjustments extract (path given)   on demand
``balance-refresh/<b…>``    balances of a list of accounts         on demand
``daily-audit/<biller>``    yesterday's payments against Caselle   ``audit``, an hour after
                            (SPEC §11)                             ``payments``
==========================  =====================================  ==========================

plus, once for the fleet, ``all-billers/<kind>`` (on demand): the fan-out of
:mod:`flows.ops`. Cron times are the biller's local time (``[biller].timezone``), so
"06:00" stays 06:00 across daylight-saving changes.

The same table is produced two ways from one plan (:func:`biller_plan`):
:func:`serve_billers` (``caselle-ic serve``) serves them from this process, and
:func:`render_prefect_yaml` writes the ``prefect.yaml`` used with a process work pool and
``prefect worker start`` on as many machines as needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import ConfigError
from caselle_ic.kinds import KINDS, inbox_kinds

WORK_POOL = "caselle-ic"
TAG = "caselle-ic"

#: Pull steps of every deployment in the prefect.yaml: into the worker's checkout, then
#: install the project there exactly as locked (the worker runs from that checkout's
#: .venv, so the flow run's ``import caselle_ic`` sees the synced code). ``uv`` must be on
#: the worker's PATH.
PULL_STEPS: list[dict[str, Any]] = [
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CASELLE_IC_HOME }}"}},
    {
        "prefect.deployments.steps.run_shell_script": {
            "id": "install-project",
            "script": "uv sync --locked",
            "directory": "{{ $CASELLE_IC_HOME }}",
            "stream_output": False,
        }
    },
]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment, as data: what :func:`to_runner` and the prefect.yaml are built from."""

    flow: Callable[[], Any]  # loads the Prefect flow (caselle_ic.kinds)
    flow_name: str
    name: str
    parameters: dict[str, Any]
    description: str
    cron: str | None = None
    timezone: str | None = None
    tags: tuple[str, ...] = ()
    concurrency_limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: more cron schedules (biller time zone), each with its parameters: ``input-deadline``
    schedules: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def entrypoint(self) -> str:
        """A module path (``caselle_ic.flows.ops.payments_inbox``): the worker imports the
        flow from the installed package, after the pull steps installed it — no file path
        into a checkout, so it works from any working directory. (Imports the flow to read
        where it is defined.)"""
        fn = self.flow().fn
        return f"{fn.__module__}.{fn.__name__}"

    def cron_schedules(self) -> list[tuple[str, dict[str, Any]]]:
        return ([(self.cron, {})] if self.cron else []) + list(self.schedules)


def _input_deadline() -> Any:
    from caselle_ic.flows.deadline import input_deadline

    return input_deadline


def _all_billers() -> Any:
    from caselle_ic.flows.ops import all_billers

    return all_billers


def check_cron(cron: str, where: str, file: Path | None = None) -> str:
    """Validate a cron expression the way Prefect's scheduler will read it."""
    from prefect.schedules import validate_cron_string

    try:
        return validate_cron_string(cron)
    except ValueError as exc:
        raise ConfigError(f"{where} = {cron!r}: {exc}", file=file, setting=where) from None


def check_ledger_url(url: str) -> str:
    """A ledger URL for deployment parameters: parameters show in the UI, so no password."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"--ledger {url!r} is not a database URL; use postgresql+psycopg://user@host/db"
        ) from None
    if parsed.password:
        raise ConfigError(
            "--ledger holds a password; deployment parameters are shown in the Prefect UI. "
            "Give the URL without it and put the password in PGPASSWORD or ~/.pgpass on each worker"
        )
    return url


def biller_plan(
    cfg: BillerConfig,
    config_param: str,
    outbox_param: str | None = None,
    ledger_url: str | None = None,
) -> list[DeploymentSpec]:
    """The deployments of one biller.

    ``config_param`` is the config path the runs will load; ``outbox_param`` the ``out_dir``
    of the on-demand flows (default: the biller's outbox, absolute); ``ledger_url`` the
    shared ledger database of the inbox runs (default: SQLite in ``[paths].state``).
    """
    specs: list[DeploymentSpec] = []
    for kind in KINDS.values():
        if kind.inbox is None:
            continue
        cron = getattr(cfg.schedule, kind.name) or None
        if cron:
            check_cron(cron, f"[schedule].{kind.name}", cfg.source)
        specs.append(
            DeploymentSpec(
                kind.inbox.flow,
                kind.inbox.flow_name,
                cfg.slug,
                {"config": config_param, **({"ledger_url": ledger_url} if ledger_url else {})},
                f"{cfg.name}: {kind.inbox.description}",
                cron=cron,
                timezone=cfg.timezone if cron else None,
                tags=(TAG, cfg.slug, kind.name),
                concurrency_limit=1,  # one pickup per biller and kind at a time
            )
        )
    expect = cfg.alerts.expect
    for expected, cron in expect.items():
        check_cron(cron, f"[alerts].expect.{expected}", cfg.source)
    if expect:
        specs.append(
            DeploymentSpec(
                _input_deadline,
                "input-deadline",
                cfg.slug,
                {"config": config_param},
                f"{cfg.name}: alert when an expected input has not arrived by its deadline ([alerts].expect)",
                timezone=cfg.timezone,
                tags=(TAG, cfg.slug, "alerts"),
                schedules=tuple((cron, {"kind": k}) for k, cron in sorted(expect.items())),
            )
        )
    outbox = outbox_param or str(cfg.paths.outbox)
    for kind in KINDS.values():
        if kind.on_demand:
            specs.append(
                DeploymentSpec(
                    kind.flow,
                    kind.flow_name,
                    cfg.slug,
                    {"config": config_param, "out_dir": outbox},
                    f"{cfg.name}: {kind.on_demand}",
                    tags=(TAG, cfg.slug, kind.name),
                )
            )
    specs.append(audit_spec(cfg, config_param, ledger_url))
    return specs


def _audit_flow() -> Any:
    from caselle_ic.flows.audit import daily_audit

    return daily_audit


def audit_spec(cfg: BillerConfig, config_param: str, ledger_url: str | None = None) -> DeploymentSpec:
    """``daily-audit/<biller>`` (SPEC §11): yesterday's payments against Caselle, an hour
    after the payments pickup (``[schedule].audit``); CSV in ``<outbox>/audit/``."""
    from caselle_ic.audit.schedule import audit_cron

    cron = audit_cron(cfg.schedule)
    if cron:
        check_cron(cron, "[schedule].audit", cfg.source)
    return DeploymentSpec(
        _audit_flow,
        "daily-audit",
        cfg.slug,
        {"config": config_param, **({"ledger_url": ledger_url} if ledger_url else {})},
        f"{cfg.name}: prove yesterday's payments landed in Caselle exactly once (discrepancies -> alert)",
        cron=cron,
        timezone=cfg.timezone if cron else None,
        tags=(TAG, cfg.slug, "audit"),
        concurrency_limit=1,
    )


def fleet_plan() -> list[DeploymentSpec]:
    """``all-billers/<kind>``: start the ``kind`` inbox run of every biller (on demand)."""
    return [
        DeploymentSpec(
            _all_billers,
            "all-billers",
            kind,
            {"kind": kind},
            f"Start the {kind} inbox run of every biller (one run per biller and period)",
            tags=(TAG, "fleet", kind),
        )
        for kind in inbox_kinds()
    ]


def plan(
    config_paths: Sequence[str | Path], *, relative_to: Path | None = None, ledger_url: str | None = None
) -> list[DeploymentSpec]:
    """Deployments for several billers plus the fleet fan-out.

    Config paths become the runs' ``config`` parameter: absolute, or relative to
    ``relative_to`` (the repository root, for a prefect.yaml shared by several machines)
    when they are inside it.
    Two billers with the same slug are refused (their deployments would collide).
    """
    specs: list[DeploymentSpec] = []
    seen: dict[str, Path] = {}
    for raw in config_paths:
        path = Path(raw)
        cfg = load_config(path)
        if cfg.slug in seen:
            raise ConfigError(
                f"biller name {cfg.name!r} gives the same deployment name {cfg.slug!r} as {seen[cfg.slug]}; "
                "give each biller a distinct [biller].name",
                file=path,
            )
        seen[cfg.slug] = path
        specs += biller_plan(
            cfg,
            _param_path(path, relative_to),
            _param_path(cfg.paths.outbox, relative_to),
            check_ledger_url(ledger_url) if ledger_url else None,
        )
    return specs + fleet_plan()


def _param_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it is inside it, else absolute."""
    full = path.resolve()
    if root is not None and full.is_relative_to(root.resolve()):
        return str(full.relative_to(root.resolve()))
    return str(full)


# -- serving from this process ------------------------------------------------------------
def to_runner(spec: DeploymentSpec) -> Any:
    """A ``RunnerDeployment`` for ``prefect.serve`` (imports the flow)."""
    from prefect.schedules import Cron

    flow = spec.flow()
    schedules = [Cron(c, timezone=spec.timezone, parameters=p) for c, p in spec.cron_schedules()] or None
    return flow.to_deployment(
        name=spec.name,
        schedules=schedules,
        parameters=spec.parameters,
        description=spec.description,
        tags=list(spec.tags),
        concurrency_limit=spec.concurrency_limit,
    )


def runner_deployments(specs: Iterable[DeploymentSpec], *, skip_missing: bool = False) -> list[Any]:
    """RunnerDeployments for the specs. ``skip_missing``: leave out flows not importable."""
    out = []
    for spec in specs:
        try:
            out.append(to_runner(spec))
        except (ImportError, AttributeError):
            if not skip_missing:
                raise
    return out


def serve_billers(
    config_paths: Sequence[str | Path], *, ledger_url: str | None = None, limit: int | None = None
) -> None:
    """``caselle-ic serve``: serve every biller's deployments from this process until Ctrl-C.

    Without ``PREFECT_API_URL`` a local Prefect server is started (or reused) on
    127.0.0.1:4200 first, so schedules and runs are kept and shown in its UI.
    """
    from caselle_ic.ops.prefect_server import ensure_server

    specs = plan(config_paths, ledger_url=ledger_url)  # loads each biller file once
    server = ensure_server()
    os.environ["PREFECT_API_URL"] = server.api_url
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        # the alert automations need each biller's [alerts] only: no secret to resolve
        for line in deploy_alerts([load_config(p, resolve_secrets=False) for p in config_paths]):
            print(line)
        deployments = runner_deployments(specs)
        billers = len(config_paths)
        print(f"serving {len(deployments)} deployments for {billers} biller(s); UI: {server.ui_url}")
        serve(*deployments, limit=limit)


# -- alerts and removal ----------------------------------------------------------------------
def deploy_alerts(cfgs: Sequence[BillerConfig]) -> list[str]:
    """Create or update the billers' alert automations (:mod:`caselle_ic.ops.alerts`)."""
    from caselle_ic.ops.alerts import ensure_alerts

    report = ensure_alerts(list(cfgs))
    quiet = [c.name for c in cfgs if not c.alerts.notify]
    return report.lines() + ([f"no alerts ([alerts].notify unset) for: {', '.join(quiet)}"] if quiet else [])


def remove_billers(config_paths: Sequence[str | Path]) -> list[str]:
    """Remove the billers' deployments and alert automations from the Prefect server.

    Every deployment named after a biller's slug and tagged ``caselle-ic`` goes (its
    scheduled runs with it); past runs and their artifacts stay. The fleet's
    ``all-billers/<kind>`` deployments stay.
    """
    import asyncio

    from caselle_ic.ops.alerts import remove_alerts

    slugs = [load_config(p, resolve_secrets=False).slug for p in config_paths]

    async def drop() -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        gone: list[str] = []
        async with get_client() as client:
            found = await client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=slugs))
            )
            flows = {f.id: f.name for f in await client.read_flows()}
            for d in found:
                if TAG in (d.tags or []):
                    await client.delete_deployment(d.id)
                    gone.append(f"{flows.get(d.flow_id, '?')}/{d.name}")
        return gone

    removed = [f"deployment removed: {name}" for name in sorted(asyncio.run(drop()))]
    return removed + remove_alerts(slugs).lines()


# -- prefect.yaml for a process work pool ----------------------------------------------------
def render_prefect_yaml(
    config_paths: Sequence[str | Path],
    *,
    root: Path,
    work_pool: str = WORK_POOL,
    ledger_url: str | None = None,
) -> str:
    """The ``prefect.yaml`` declaring the same deployments for a process work pool.

    Each worker machine has a checkout of this repository at ``$CASELLE_IC_HOME`` (the pull
    step changes into it), the biller configs at the same relative paths, and the secrets
    in its environment or in Prefect Secret blocks.
    """
    import prefect
    import yaml

    deployments = []
    for spec in plan(config_paths, relative_to=root, ledger_url=ledger_url):
        d: dict[str, Any] = {
            "name": spec.name,
            "entrypoint": spec.entrypoint,
            "description": spec.description,
            "tags": list(spec.tags),
            "parameters": spec.parameters,
            "schedules": [
                {"cron": c, "timezone": spec.timezone, "active": True, **({"parameters": p} if p else {})}
                for c, p in spec.cron_schedules()
            ],
        }
        if spec.concurrency_limit:
            d["concurrency_limit"] = spec.concurrency_limit
        d["work_pool"] = {"name": work_pool, "work_queue_name": "default"}
        deployments.append(d)
    doc = {
        "name": "caselle-ic",
        "prefect-version": prefect.__version__,
        "build": None,
        "push": None,
        "pull": PULL_STEPS,
        "deployments": deployments,
    }
    header = (
        "# Deployments of caselle-ic for a Prefect process work pool (docs/operations.md).\n"
        "# Generated from the biller configs by:\n"
        "#   caselle-ic deployments --config "
        + " --config ".join(str(Path(p)) for p in config_paths)
        + (f" --ledger {ledger_url}" if ledger_url else "")
        + " > prefect.yaml\n"
        "# Deploy:  prefect work-pool create caselle-ic --type process\n"
        "#          prefect deploy --all\n"
        "# Workers: each has a checkout at $CASELLE_IC_HOME, synced once (uv sync --locked), and runs\n"
        "#          export CASELLE_IC_HOME=/path/to/caselle-ic\n"
        "#          $CASELLE_IC_HOME/.venv/bin/prefect worker start --pool caselle-ic\n"
        "# Before each run the pull steps enter the checkout and run `uv sync --locked` there, so the\n"
        "# run imports the flows (module entrypoints) from the project as locked, code included.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=110)
