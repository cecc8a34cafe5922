"""Start-up of ``caselle-ic invoices`` on the 50-account sample: median wall of N runs.

    .venv/bin/python bench/startup.py [--runs N]

Runs, alternating, N times each (like hyperfine): the bare interpreter, the import of
the libraries the command cannot do without (numpy, pandas, pyarrow.compute, pydantic),
and the command itself on ``data/samples/statements.csv``. Prints the median and best
wall of each, the command's ratio to the libraries' import, and the packages that take
the most import time in one ``python -X importtime`` run of the command (what to make
lazy next). Numbers, not assertions: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "statements.csv"
CONFIG = ROOT / "data" / "samples" / "biller.toml"
NOW = "2026-11-01T06:00:00"


def _args(out: str) -> list[str]:
    return ["invoices", str(SAMPLE), "--config", str(CONFIG), "--out", out, "--now", NOW]


def commands(out: str) -> dict[str, list[str]]:
    exe = str(Path(sys.executable).parent / "caselle-ic")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import numpy, pandas, pyarrow.compute, pydantic": [
            sys.executable,
            "-c",
            "import numpy, pandas, pyarrow.compute, pydantic",
        ],
        "caselle-ic invoices (sample)": [exe, *_args(out)],
    }


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return took


def import_profile(out: str, top: int = 8) -> list[tuple[str, float]]:
    """Cumulative import seconds per top-level package (one run, -X importtime)."""
    code = f"import sys; from caselle_ic.cli import main; sys.argv = ['caselle-ic', *{_args(out)!r}]; main()"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    per_pkg: dict[str, float] = defaultdict(float)
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.split(":", 1)[1].split("|")
        if len(fields) != 3:
            continue
        self_us, _cumulative, name = fields
        try:
            per_pkg[name.strip().split(".")[0]] += int(self_us) / 1e6
        except ValueError:
            continue
    return sorted(per_pkg.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=11)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cmds = commands(out)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        loads = [os.getloadavg()[0]]
        for cmd in cmds.values():  # warm the page cache once
            wall(cmd)
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(wall(cmd))
            loads.append(os.getloadavg()[0])
        floor = statistics.median(times["import numpy, pandas, pyarrow.compute, pydantic"])
        print(f"{'':50s} {'median s':>9s} {'best s':>8s} {'x imports':>10s}")
        for name, t in times.items():
            med = statistics.median(t)
            print(f"{name:50s} {med:9.3f} {min(t):8.3f} {med / floor:10.2f}")
        print("\nimport time by package (self seconds, one -X importtime run of the command):")
        for pkg, secs in import_profile(out):
            print(f"  {pkg:30s} {secs:6.3f}")
    print(f"(cpus={os.cpu_count()}; load average {min(loads):.1f}-{max(loads):.1f}; runs={args.runs})")


if __name__ == "__main__":
    main()
