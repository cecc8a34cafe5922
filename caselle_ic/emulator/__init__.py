"""An emulator of Caselle Connect (SPEC §9), the way stripe-mock and moto emulate theirs.

It serves exactly ``schemas/caselle_connect.graphql`` with ariadne on uvicorn, enforces
auth (OAuth client credentials or HTTP basic), keeps customers and receipts in SQLite
across restarts and injects faults on request. See ``docs/caselle-connect.md``.

Credentials: any client id / username with the secret from ``CASELLE_EMULATOR_SECRET``.
No secret is built in; the emulator refuses to start without one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from graphql import GraphQLError

from caselle_ic.emulator.app import EmulatorApp
from caselle_ic.emulator.faults import Faults
from caselle_ic.emulator.resolvers import SCHEMA_VARIANTS, variant_sdl
from caselle_ic.emulator.store import SeedCustomer, Store, read_seed_extract
from caselle_ic.errors import ConfigError
from caselle_ic.resources import SAMPLES

SECRET_ENV = "CASELLE_EMULATOR_SECRET"  # noqa: S105 - the name of the variable, not a secret
#: Seeded when no ``--seed`` is given and the database has no customers yet.
DEFAULT_SEED = SAMPLES / "statements.csv"

log = logging.getLogger("caselle_ic.emulator")


def create_app(
    db: str | Path,
    secret: str,
    *,
    token_ttl: int = 3600,
    seed: str | Path | None = None,
    faults: dict[str, Any] | None = None,
    schema_variant: str | None = None,
) -> EmulatorApp:
    """Open (or create) the database, seed it, and build the ASGI app. ``schema_variant``:
    a name in ``SCHEMA_VARIANTS`` or a .graphql path to serve instead of the project's schema."""
    try:
        sdl = variant_sdl(schema_variant)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    store = Store(db)
    customers: list[SeedCustomer] = []
    if seed is not None:
        customers = read_seed_extract(seed)
        added = store.seed(customers)
        log.info("seeded %d new customer(s) from %s", added, seed)
    elif DEFAULT_SEED.is_file():
        customers = read_seed_extract(DEFAULT_SEED)
        if store.customer_count() == 0:
            added = store.seed(customers)
            log.info("seeded %d customer(s) from %s", added, DEFAULT_SEED)
    try:
        app = EmulatorApp(store, secret, token_ttl=token_ttl, sdl=sdl, seed=customers, faults=faults)
    except (GraphQLError, ValueError) as exc:  # a variant file that is not a usable schema
        store.close()
        raise ConfigError(f"--schema-variant {schema_variant}: not a usable schema: {exc}") from None
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    db: str | Path | None = None,
    token_ttl: int = 3600,
    seed: str | Path | None = None,
    *,
    latency_ms: int = 0,
    fail_next: int = 0,
    drop_after_commit: int = 0,
    schema_variant: str | None = None,
) -> None:
    """Run the emulator until interrupted (``caselle-ic emulator``)."""
    import uvicorn

    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ConfigError(
            f"the emulator needs a secret: export {SECRET_ENV}=<random value> and give the same "
            "value to the integration (CASELLE_CLIENT_SECRET, CASELLE_RTDR_KEY, CASELLE_DP_PASSWORD)"
        )
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="caselle-emulator-")) / "emulator.db"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # ariadne logs every GraphQL error with a traceback; NOT_FOUND and friends are normal
    # answers here. Unexpected resolver failures are logged by resolvers.format_error.
    logging.getLogger("caselle_ic.emulator.graphql").setLevel(logging.CRITICAL)
    app = create_app(
        db,
        secret,
        token_ttl=token_ttl,
        seed=seed,
        faults={"latency_ms": latency_ms, "fail_next": fail_next, "drop_after_commit": drop_after_commit},
        schema_variant=schema_variant,
    )
    if schema_variant:
        log.warning("serving schema variant %s, not schemas/caselle_connect.graphql", schema_variant)
    log.info("Caselle Connect emulator: db %s, %d customer(s)", db, app.store.customer_count())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    log.info("listening on http://%s:%d/tp/api/cr0/graphql", host, port)
    try:
        server.run()
    finally:
        app.store.close()


__all__ = [
    "DEFAULT_SEED",
    "SCHEMA_VARIANTS",
    "SECRET_ENV",
    "EmulatorApp",
    "Faults",
    "SeedCustomer",
    "Store",
    "create_app",
    "read_seed_extract",
    "serve",
]
