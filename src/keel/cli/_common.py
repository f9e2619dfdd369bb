"""What every command shares: the consoles, the exit codes, Keel errors turned into messages, the store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keel.errors import (
    ConfigError,
    KeelError,
    ResumeError,
    ReviewError,
    StoreError,
    StoreNotFoundError,
    UnknownRunError,
    help_page,
)
from keel.result import RunStatus
from keel.store import DEFAULT_STORE_PATH, MemoryStore, Store, open_store

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "StoreOption",
    "err_console",
    "existing_store",
    "exit_code",
    "fail",
    "keel_errors",
    "out_console",
    "read_store",
    "run_async",
    "store_flag",
    "using_store",
]

EXIT_OK = 0
"""The run completed."""
EXIT_FAILURE = 1
"""The run failed, or Keel could not do its job (store unreachable, …)."""
EXIT_USAGE = 2
"""The command was used wrongly: bad arguments, unknown run, bad configuration."""
EXIT_STOPPED = 3
"""The run ended partial, escalated or rejected."""

T = TypeVar("T")

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Store URL or path (sqlite:///path.db, a file path, memory://). Default: $KEEL_STORE or .keel/keel.db.",
        show_default=False,
    ),
]


def out_console() -> Console:
    """The console for results (stdout); made per call so it follows redirections (tests, pipes)."""
    return Console(highlight=False)


def err_console() -> Console:
    """The console for errors and warnings (stderr)."""
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int) -> NoReturn:
    """Print `message` to stderr and leave with `code`."""
    err_console().print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(code)


@contextmanager
def keel_errors() -> Iterator[None]:
    """Turn Keel's exceptions into a message, the page that explains it, and an exit code instead of a traceback."""
    try:
        yield
    except (UnknownRunError, ReviewError, ResumeError) as exc:  # a run or review item named wrongly, or too early
        fail(_explained(exc), EXIT_USAGE)
    except ConfigError as exc:
        fail(_explained(exc), EXIT_USAGE)
    except StoreNotFoundError as exc:  # a store that is not there was named wrongly
        fail(_explained(exc), EXIT_USAGE)
    except KeelError as exc:
        fail(_explained(exc), EXIT_FAILURE)


def _explained(exc: KeelError) -> str:
    return f"{exc} (help: {help_page(exc)})"


def exit_code(status: RunStatus) -> int:
    """The process exit code for a run's status (0 completed, 3 partial/escalated/rejected, 1 failed)."""
    if status is RunStatus.COMPLETED:
        return EXIT_OK
    if status in (RunStatus.PARTIAL, RunStatus.ESCALATED, RunStatus.REJECTED):
        return EXIT_STOPPED
    return EXIT_FAILURE


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


@contextmanager
def using_store(url: str | None, *, create: bool = True) -> Iterator[Store]:
    """Open the store named by `url` (else ``KEEL_STORE``, else ``.keel/keel.db``) and close it afterwards.

    Commands that only read pass ``create=False``: a store that does not exist yet is then an error, not a new
    empty file.
    """
    store = open_store(url, create=create)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def existing_store(url: str | None) -> Iterator[Store]:
    """An existing store, opened for writing (a store of an older schema is migrated by that open).

    A mistyped ``--store`` is reported (`StoreNotFoundError`), never created empty.
    """
    try:
        open_store(url, create=False).close()
    except StoreNotFoundError:
        raise
    except StoreError:
        pass  # an older schema: opening it for writing below migrates it, as running an agent would
    with using_store(url) as store:
        yield store


def store_flag(store: Store, given: str | None) -> str:
    """The ``--store …`` a later command needs to find this store again ('' when the default finds it)."""
    if given is not None:
        return f" --store {given}"
    default = os.environ.get("KEEL_STORE") or str(DEFAULT_STORE_PATH)
    if isinstance(store, MemoryStore) or store.url in (default, f"sqlite:///{default}"):
        return ""
    return f" --store {store.url}"


def read_store(url: str | None, read: Callable[[Store], Coroutine[Any, Any, T]], console: Console) -> T | None:
    """Run `read` on the existing store, opened read-only; None (and "no runs yet" said) when there is no store."""
    with keel_errors():
        try:
            with using_store(url, create=False) as opened:
                return run_async(read(opened))
        except StoreNotFoundError as exc:
            console.print(Text(f"no runs yet (no store at {exc.path})", style="yellow"))
            return None
