"""What the emulator does wrong on purpose (``POST /_admin/faults``, ``--latency-ms`` and
friends): latency, injected 500/503, dropped connections and INTERNAL after a commit, the
way unauthenticated requests are answered, token lifetime, hostile answers
(:mod:`caselle_ic.emulator.hostile`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from caselle_ic.emulator import hostile as hostile_mode


@dataclass
class Faults:
    """What the emulator does wrong on purpose. Counters count down as they fire."""

    latency_ms: int = 0  # added before every GraphQL and token request
    fail_next: int = 0  # the next N GraphQL requests answer HTTP 500 without processing
    drop_after_commit: int = 0  # the next N mutation requests commit, then the connection drops
    internal_after_commit: int = 0  # the next N mutation requests commit, then answer INTERNAL
    down_prefixes: list[str] = field(default_factory=list)  # GraphQL paths under these answer 503
    unauthenticated_as: str = "http"  # "http": HTTP 401; "graphql": HTTP 200 + UNAUTHENTICATED
    token_ttl: int = 3600  # lifetime of tokens issued from now on, seconds
    # Hostile answers (issue 13, emulator/hostile.py): the next `hostile_next` requests to
    # `hostile_on` ("graphql" or "token") are answered the `hostile` way, with its parameter.
    hostile: str = ""  # one of hostile_mode.MODES
    hostile_next: int = 0
    hostile_on: str = "graphql"  # "mutation": GraphQL requests that are mutations only
    hostile_body: str = ""  # "body": answered instead of the real answer
    hostile_fields: dict[str, Any] = field(default_factory=dict)  # "fields": set in every object
    hostile_size: int = 0  # "huge_error": characters of each error message
    slow_body_s: float = 1.0  # "slow": seconds between two bytes of the answer

    _INT_FIELDS = (
        "latency_ms",
        "fail_next",
        "drop_after_commit",
        "internal_after_commit",
        "token_ttl",
        "hostile_next",
        "hostile_size",
    )
    _CHECKS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "hostile": (lambda v: v in ("", *hostile_mode.MODES), f"hostile must be one of {hostile_mode.MODES}"),
        "hostile_on": (
            lambda v: v in ("graphql", "mutation", "token"),
            "hostile_on: graphql, mutation or token",
        ),
        "hostile_body": (lambda v: isinstance(v, str), "hostile_body must be a string"),
        "hostile_fields": (lambda v: isinstance(v, dict), "hostile_fields must be an object"),
        "slow_body_s": (
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 60,
            "slow_body_s must be 0-60 seconds",
        ),
    }

    def hostile_for(self, endpoint: str, *, mutation: bool = False) -> bool:
        """Is this request to ``endpoint`` one to answer the hostile way? (counts down)"""
        on = self.hostile_on
        if self.hostile and self.hostile_next > 0 and (on == endpoint or (on == "mutation" and mutation)):
            self.hostile_next -= 1
            return True
        return False

    def update(self, changes: dict[str, Any]) -> None:
        if changes.get("reset"):
            fresh = Faults(token_ttl=self.token_ttl)
            for name, value in asdict(fresh).items():
                setattr(self, name, value)
        for key, value in changes.items():
            if key == "reset":
                continue
            if key in self._INT_FIELDS:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                setattr(self, key, value)
            elif key == "down_prefixes":
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise ValueError("down_prefixes must be a list of path prefixes")
                self.down_prefixes = list(value)
            elif key in self._CHECKS:
                ok, message = self._CHECKS[key]
                if not ok(value):
                    raise ValueError(message)
                setattr(self, key, value)
            elif key == "unauthenticated_as":
                if value not in ("http", "graphql"):
                    raise ValueError('unauthenticated_as must be "http" or "graphql"')
                self.unauthenticated_as = value
            else:
                raise ValueError(f"unknown fault {key!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
