"""Worker processes that start together: for tests of what several OS processes do to one store at once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def start_together(
    script: str, barrier: Path, workers: int, argv: Callable[[int], list[str]], *, timeout: float = 120
) -> list[subprocess.Popen[bytes]]:
    """Start `workers` copies of `script` (worker i gets ``argv(i)``) and release them at once.

    Each worker touches ``barrier/ready-<i>`` when it is set up, then waits for ``barrier/go``; this returns once
    every worker is ready and released, so the workers contend from their first operation.
    """
    barrier.mkdir(exist_ok=True)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *argv(w)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for w in range(workers)
    ]
    deadline = time.monotonic() + timeout
    while len(list(barrier.glob("ready-*"))) < workers:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    (barrier / "go").touch()
    return procs
