"""The attack bench: try to break Keel's guarantees the way a hostile or unlucky operator would, and count.

Five parts, each bounded and on loopback only (a SQLite file in a temporary directory, PostgreSQL only at a loopback
address, the dashboard in-process or on 127.0.0.1):

  a. spend      spend ceilings under 6 processes of concurrent runs, some SIGKILLed mid-call (SQLite, PostgreSQL)
  b. review     one review item decided at once by threads, processes, the dashboard's POST and ``keel review``
  c. dashboard  the JSON API fuzzed from its own OpenAPI (schemathesis), tokens and CSRF off loopback, HTML/JS in
                task text and tool results on every page
  d. secrets    secrets and PII in tasks, tool calls, results and answers, looked for in everything that shows data
  e. input      corrupt, read-only, newer-schema and missing stores, huge task text, through the CLI and dashboard

Every case is a guarantee; the table counts those held and broken (known, separately filed defects are counted
apart). The whole bench takes about 2 minutes on 2 cores; ``--scale`` makes the concurrent parts bigger.

    python bench/attack.py [--parts a,b,c,d,e] [--scale 1] [--seed 0] [--postgres URL] [--fuzz-examples 30] [-v]

PostgreSQL: ``--postgres`` or ``KEEL_TEST_POSTGRES_URL``; only a loopback host is used. Exit status 1 when a case
broke that is not a known, filed defect.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _attack_table import Report
from _machine import cpu_model, version
from rich.console import Console

PARTS = "abcde"


def _loopback_postgres(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"PostgreSQL at {host!r} is not on loopback: skipped", file=sys.stderr)
        return None
    return url


async def _run(parts: str, tmp: Path, postgres: str | None, args: argparse.Namespace, report: Report) -> None:
    timings: dict[str, float] = {}
    for part in parts:
        start = time.monotonic()
        if part == "a":
            import _attack_spend

            await _attack_spend.attack(report, tmp, postgres, scale=args.scale, seed=args.seed)
        elif part == "b":
            import _attack_review

            await _attack_review.attack(report, tmp, postgres, scale=args.scale)
        elif part == "c":
            import _attack_dashboard

            await _attack_dashboard.attack(report, tmp, examples=args.fuzz_examples, seed=args.seed)
        elif part == "d":
            import _attack_secrets

            await _attack_secrets.attack(report, tmp)
        elif part == "e":
            import _attack_input

            await _attack_input.attack(report, tmp, postgres)
        timings[part] = time.monotonic() - start
    print("seconds per part: " + ", ".join(f"{p} {s:.1f}" for p, s in timings.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts, e.g. a,c (default: all)")
    parser.add_argument("--scale", type=int, default=1, help="more processes' runs and kills (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", default=os.environ.get("KEEL_TEST_POSTGRES_URL"), help="a loopback PostgreSQL")
    parser.add_argument("--fuzz-examples", type=int, default=30, help="schemathesis examples per operation")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every case's detail, not only failures")
    args = parser.parse_args()
    parts = "".join(p for p in args.parts.replace(",", "") if p in PARTS)
    console = Console(width=160)
    console.print(f"Keel attack bench · {cpu_model()} · {os.cpu_count()} cores · keel {version('keel-agents')}")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="keel-attack-") as tmp:
        asyncio.run(_run(parts, Path(tmp), _loopback_postgres(args.postgres), args, report))
    report.print(console, verbose=args.verbose)
    return 1 if report.broke else 0


if __name__ == "__main__":
    sys.exit(main())
