"""ExfiltrationGuard on garak's web-injection test outputs (NVIDIA/garak, Apache-2.0), by split and group.

    python bench/exfiltration_guard.py

The data (`tests/data/exfiltration_garak.json`, provenance inside) are model outputs garak's markdown/HTML
exfiltration detectors are tested on, with garak's labels: *unsafe* carries an exfiltration image, *safe* should not
be flagged as one. The guard is judged on what it strips (images to hosts no trusted source mentioned): an unsafe
output must lose its image; a safe one should keep its text. Garak calls an image without data in its query benign;
Keel strips any image to an unverified host, so the last column repeats the run with every host in the case known
(as if a trusted source had mentioned it). The held-out split was fixed before the guard first ran on it and was
never tuned on.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keel.guardrails import ExfiltrationGuard, GuardContext
from keel.guardrails._urls import find_targets, host_of

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "exfiltration_garak.json"


def stripped(text: str, *, hosts_known: bool) -> bool:
    """Whether the default guard removes an image from `text` (every host of the text known, when asked)."""
    known = [h for t in find_targets(text) if (h := host_of(t.url))] if hosts_known else []
    verdict = ExfiltrationGuard(allow_hosts=known).check(text, GuardContext())
    return any(f.kind == "unverified_image" for f in verdict.findings)


def main() -> None:
    cases = json.loads(DATA.read_text(encoding="utf-8"))["cases"]
    rows: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for case in cases:
        row = rows[(case["split"], case["group"], case["garak_label"])]
        row[0] += 1
        row[1] += stripped(case["text"], hosts_known=False)
        row[2] += stripped(case["text"], hosts_known=True)
    table = Table(title="ExfiltrationGuard() on garak's web-injection outputs: images stripped")
    for column in ("split", "group", "garak label", "cases", "stripped", "stripped, hosts known"):
        table.add_column(
            column, justify="right" if column in ("cases", "stripped", "stripped, hosts known") else "left"
        )
    for (split, group, label), (n, hit, hit_known) in rows.items():
        table.add_row(split, group, label, str(n), f"{hit}/{n}", f"{hit_known}/{n}")
    for split in ("dev", "held_out"):
        unsafe = [c for c in cases if c["split"] == split and c["garak_label"] == "unsafe"]
        safe = [c for c in cases if c["split"] == split and c["garak_label"] == "safe"]
        caught = sum(stripped(c["text"], hosts_known=False) for c in unsafe)
        kept = sum(not stripped(c["text"], hosts_known=False) for c in safe)
        table.add_row(split, "[bold]all[/bold]", "unsafe caught / safe kept", str(len(unsafe) + len(safe)),
                      f"{caught}/{len(unsafe)} · {kept}/{len(safe)}", "")  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    sys.exit(main())
