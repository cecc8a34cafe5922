"""What an inbox pickup did (:func:`caselle_ic.ops.inbox.process_inbox`): one
:class:`InboxItem` per file it looked at, and the :class:`InboxReport` of the run, with its
exit status, the summary lines, the JSON the inbox flows return and the Markdown artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from caselle_ic.result import RunResult

Status = Literal["processed", "retry", "failed", "duplicate", "busy", "unsettled", "vanished"]


@dataclass
class InboxItem:
    name: str
    kind: str
    status: Status
    sha256: str = ""
    size: int = 0
    moved_to: Path | None = None
    note: Path | None = None
    result: RunResult | None = None
    reason: str = ""
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        if self.status in ("failed", "retry"):
            return 2
        return self.result.exit_status if self.result is not None else 0


@dataclass
class InboxReport:
    kind: str
    biller: str
    inbox: Path
    items: list[InboxItem] = field(default_factory=list)
    unrecognised: list[Path] = field(default_factory=list)
    in_progress: list[Path] = field(default_factory=list)

    def by_status(self, status: Status) -> list[InboxItem]:
        return [i for i in self.items if i.status == status]

    @property
    def results(self) -> list[RunResult]:
        return [i.result for i in self.items if i.result is not None]

    @property
    def exit_status(self) -> int:
        """2 when a file failed, 1 when records were quarantined, else 0."""
        return max([i.exit_status for i in self.items], default=0)

    def summary_lines(self) -> list[str]:
        counts = {
            s: len(self.by_status(s))
            for s in ("processed", "retry", "failed", "duplicate", "busy", "unsettled")
        }
        lines = [
            f"inbox {self.kind} for {self.biller}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f" (inbox {self.inbox})"
        ]
        for i in self.items:
            where = f" -> {i.moved_to}" if i.moved_to else ""
            why = f": {i.reason}" if i.reason else ""
            lines.append(f"  {i.status:<9} {i.name}{where}{why}")
        if self.unrecognised:
            lines.append(
                "  not recognised (left in the inbox): " + ", ".join(p.name for p in self.unrecognised)
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (what the inbox flows return)."""
        counts = {
            s: len(self.by_status(s))
            for s in ("processed", "retry", "failed", "duplicate", "busy", "unsettled")
        }
        return {
            "biller": self.biller,
            "kind": self.kind,
            "exit_status": self.exit_status,
            **counts,
            "unrecognised": [p.name for p in self.unrecognised],
            "files": [
                {
                    "name": i.name,
                    "status": i.status,
                    "moved_to": str(i.moved_to) if i.moved_to else None,
                    "reason": i.reason,
                    "outputs": [str(p) for p in i.result.outputs] if i.result else [],
                    "quarantined": i.result.n_quarantined if i.result else 0,
                    "rejects": str(i.result.rejects_path) if i.result and i.result.rejects_path else None,
                    "seconds": round(i.seconds, 3),
                }
                for i in self.items
            ],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Inbox pickup: {self.kind} — {self.biller}",
            "",
            f"Inbox: `{self.inbox}`",
            "",
            "| file | status | moved to | records quarantined | note |",
            "| --- | --- | --- | --- | --- |",
        ]
        for i in self.items:
            q = str(i.result.n_quarantined) if i.result is not None else ""
            moved = f"`{i.moved_to}`" if i.moved_to else "(left in inbox)"
            reason = i.reason.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{i.name}` | {i.status} | {moved} | {q} | {reason} |")
        if not self.items:
            lines.append("| (nothing waiting) | | | | |")
        if self.unrecognised:
            lines += [
                "",
                "Files whose name does not say what they are (left in the inbox; rename them or move "
                "them into `inbox/<kind>/`): " + ", ".join(f"`{p.name}`" for p in self.unrecognised),
            ]
        return "\n".join(lines) + "\n"


__all__ = ["InboxItem", "InboxReport", "Status"]
