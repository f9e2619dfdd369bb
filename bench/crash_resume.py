"""Crash recovery under random SIGKILLs: runs and their resumers killed at random, resumed until done.

Each trial (tests/_crash_harness.py) runs the plan of tests/crash_agents.py — reads, a payment through an API that
deduplicates on Keel's idempotency key, a charge through one that cannot — in a child process, kills it at a
random moment, then resumes it in child processes until it is completed: half the resumers are killed too, and
one round in five starts three resumers at once. A run that pauses on a side effect that may have happened is
decided by a "person" who checks the effects file the tools write (fsynced, outside Keel). The table counts what
the trials did and how many times a guarantee broke: duplicated and lost side effects, runs left unresumable
(a refused resume although every process was dead, a crashed resumer, or no completion within 12 rounds), and
runs resumed by more than one of the racing resumers. The last four must be 0.

    .venv/bin/python bench/crash_resume.py [-n 100] [--seed 0] [--workers 2] [--json]

Exit status: 0 when no guarantee broke, 1 otherwise. Bounded: every child has a 60 s deadline, every trial 12
rounds; 100 trials take about a minute and a half on two cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _machine import cpu_model, version

from _crash_harness import Chaos, Tally, trial

ROWS = [
    ("runs", "runs (a first process each)"),
    ("kills", "first processes killed mid-run"),
    ("resumes", "resume processes started"),
    ("killed_resumes", "resume processes killed"),
    ("concurrent_rounds", "rounds of 3 resumers at once"),
    ("approvals", "repeats approved (no effect on the statement)"),
    ("denials", "repeats denied (the effect is on the statement)"),
    ("duplicated", "duplicated side effects"),
    ("lost", "lost side effects"),
    ("unresumable", "runs left unresumable"),
    ("resumed_more_than_once", "runs resumed by two racing resumers"),
]


def run_all(n: int, seed: int, workers: int, chaos: Chaos) -> tuple[Tally, float]:
    total = Tally(runs=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keel-crash-") as tmp, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(trial, Path(tmp) / f"t{i}", f"{seed}:{i}", chaos) for i in range(n)]
        for future in futures:
            total.add(future.result())
    return total, time.perf_counter() - started


def summary(tally: Tally, wall_s: float, seed: int, workers: int) -> dict[str, Any]:
    return {
        "counts": asdict(tally),
        "broken": tally.broken,
        "wall_s": round(wall_s, 1),
        "seed": seed,
        "workers": workers,
        "machine": {"cpu": cpu_model(), "python": platform.python_version(), "keel": version("keel-agents")},
    }


def print_table(data: dict[str, Any]) -> None:
    counts = data["counts"]
    machine = data["machine"]
    print(f"crash recovery: {counts['runs']} trials, seed {data['seed']}, {data['workers']} workers, "
          f"{data['wall_s']} s — {machine['cpu']}, Python {machine['python']}")  # fmt: skip
    print()
    print(f"| {'what':<48} | {'count':>6} |")
    print(f"|{'-' * 50}|{'-' * 8}|")
    for key, label in ROWS:
        print(f"| {label:<48} | {counts[key]:>6} |")
    print()
    print("guarantees broken:", data["broken"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="how many trials (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times and choices (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="trials at a time (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    tally, wall_s = run_all(args.n, args.seed, args.workers, Chaos())
    data = summary(tally, wall_s, args.seed, args.workers)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 1 if tally.broken else 0


if __name__ == "__main__":
    sys.exit(main())
