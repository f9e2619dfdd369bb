"""`ProcessOwner`: which process is running a run, so a run whose process died can be told from a live one.

Each execution segment's `run_started` event records its owner: host, pid, and the process's start time (with the
machine's boot id on Linux), because a pid alone is reused. A run still marked running whose owner on this host
is gone was interrupted; on another host Keel cannot look, so the answer is "unknown" and the operator decides
(``keel resume --force``).
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from keel.journal import EventKind
from keel.result import RunStatus
from keel.store.base import RunRecord, Store

__all__ = ["Interrupted", "ProcessOwner", "find_interrupted", "last_owner"]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux); None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses, so split after its closing ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """The process that runs a run."""

    host: str
    pid: int
    started: int | None = None
    """The process's start time (clock ticks since boot); tells a reused pid from the original."""
    boot_id: str = ""
    """The machine's boot: a pid of an earlier boot is never the same process."""

    @classmethod
    def current(cls) -> ProcessOwner:
        """This process (its start time and the boot id read once per process, not at every run's start)."""
        return _current(socket.gethostname(), os.getpid())

    @classmethod
    def from_payload(cls, payload: Any) -> ProcessOwner | None:
        """The owner recorded in a `run_started` payload, if any (runs from before owners were recorded: None)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("pid"), int):
            return None
        started = payload.get("started")
        return cls(
            str(payload.get("host", "")),
            payload["pid"],
            started if isinstance(started, int) else None,
            str(payload.get("boot_id", "")),
        )

    def as_payload(self) -> dict[str, Any]:
        """For the journal."""
        return asdict(self)

    def is_alive(self) -> bool | None:
        """True or False on this host; None for a process on another host (Keel cannot look)."""
        if self.host != socket.gethostname():
            return None
        if self.boot_id and self.boot_id != _boot_id():
            return False  # the machine rebooted since
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        if self.started is not None and _start_ticks(self.pid) not in (None, self.started):
            return False  # the pid now belongs to another process
        return not _is_zombie(self.pid)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@functools.lru_cache(maxsize=4)
def _current(host: str, pid: int) -> ProcessOwner:
    """Keyed by host and pid: a forked child, or a renamed host, is a new owner."""
    return ProcessOwner(host, pid, _start_ticks(pid), _boot_id())


def _is_zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still has a pid, but runs nothing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A run still marked running, with the process that ran it and whether that process is alive."""

    run: RunRecord
    owner: ProcessOwner | None
    """None for a run from before owners were recorded."""
    alive: bool | None
    """False: its process died (resume it); None: Keel cannot tell (another host, no owner)."""


async def last_owner(store: Store, run_id: str) -> ProcessOwner | None:
    """The owner recorded by the run's latest `run_started` (each resumed segment records its own)."""
    events = await store.events(run_id)
    started = [e for e in events if e.kind is EventKind.RUN_STARTED]
    return ProcessOwner.from_payload(started[-1].payload.get("owner")) if started else None


async def find_interrupted(store: Store, *, limit: int = 100, include_unknown: bool = True) -> list[Interrupted]:
    """Runs marked running whose process is gone (and, with `include_unknown`, those Keel cannot check)."""
    found = []
    for run in await store.list_runs(limit=limit, status=RunStatus.RUNNING):
        owner = await last_owner(store, run.run_id)
        alive = owner.is_alive() if owner is not None else None
        if alive is False or (alive is None and include_unknown):
            found.append(Interrupted(run, owner, alive))
    return found
