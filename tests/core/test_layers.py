"""The dependency rule of docs/architecture.md, checked on every import in the package.

A module may import its own folder and any layer below its own, never one above: data moves
forward (config -> tabular -> result -> schemas -> store -> connect -> domains -> flows -> kinds -> ops ->
cli). Imports are read with ``ast`` (module level and inside functions alike), so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "caselle_ic"

#: Lowest first. Names are the first part after ``caselle_ic.``; one rank may hold several
#: folders that must not import each other unless listed in SIDEWAYS.
LAYERS: list[set[str]] = [
    {"errors", "failpoints", "logsafe", "resources", "env"},
    {"steps"},  # which pipeline step a direct run is in (uses failpoints)
    {"config"},
    {"tabular"},
    {"result"},
    {"schemas"},
    {"store"},
    {"connect"},
    {"invoices", "payments", "sync"},
    {"audit"},
    {"emulator"},
    {"flows"},
    {"kinds"},
    {"ops"},
    {"cli_support"},  # the process edge every command shares
    {"cli", "__main__"},
]
#: Allowed imports between folders of the same rank (none today).
SIDEWAYS: set[tuple[str, str]] = set()
#: The emulator is a stand-in server: it may use only these, never the client side.
EMULATOR_MAY_USE = {"errors", "resources", "tabular", "schemas", "logsafe", "emulator", "config"}

RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "caselle_ic" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from caselle_ic import x` names the folder in the alias
            if node.module == "caselle_ic":
                found += [(node.lineno, f"caselle_ic.{a.name}") for a in node.names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def owner(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_every_folder_has_a_rank() -> None:
    unranked = {owner(p) for p in modules()} - set(RANK) - {"__init__"}
    assert not unranked, f"add these to LAYERS and docs/architecture.md: {sorted(unranked)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    me = owner(path)
    if me == "__init__":
        return
    bad = []
    for line, module in imports_of(path):
        other = top(module)
        if other is None or other == me:
            continue
        if me == "emulator" and other not in EMULATOR_MAY_USE:
            bad.append(f"line {line}: the emulator imports {module}")
        elif RANK[other] > RANK[me] or (RANK[other] == RANK[me] and (me, other) not in SIDEWAYS):
            bad.append(f"line {line}: {me} imports {module} (a layer above or beside it)")
    assert not bad, "\n".join(bad)


def test_no_import_strings_for_code() -> None:
    """Code reaches code through imports a type checker sees, not importlib strings."""
    offenders = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in modules()
        for n, text in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "import_module(" in text or "__import__(" in text
    ]
    assert not offenders, offenders
