"""The GraphQL schema of Caselle Connect, shared by the client and the emulator.

``caselle_connect.graphql`` is a copy of ``shared/spec/caselle_connect.graphql``; it is the
one file both sides load, so a document the client validates is exactly what the emulator
serves.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

GRAPHQL_SCHEMA_PATH = Path(__file__).with_name("caselle_connect.graphql")


@lru_cache(maxsize=1)
def schema_sdl() -> str:
    """The schema's SDL text."""
    return GRAPHQL_SCHEMA_PATH.read_text(encoding="utf-8")


__all__ = ["GRAPHQL_SCHEMA_PATH", "schema_sdl"]
