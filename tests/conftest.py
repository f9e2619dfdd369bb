"""Keel's own tests never reach a real provider: real models raise unless a test re-enables them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import keel.models
from _fault_server import FaultServer
from keel.store import MemoryStore, SQLiteStore

keel.models.ALLOW_MODEL_REQUESTS = False


@pytest.fixture(autouse=True)
def _no_store_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent without an explicit store must not write into the repository."""
    monkeypatch.setenv("KEEL_STORE", str(tmp_path / "default.db"))


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "keel.db")
    yield store
    store.close()


@pytest.fixture
def local_provider_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Provider requests allowed, for tests whose providers reach only a server on 127.0.0.1; no provider key or
    base URL taken from the environment."""
    monkeypatch.setattr(keel.models, "ALLOW_MODEL_REQUESTS", True)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A running `FaultServer` (tests/_fault_server.py); the test fails if it met an unexpected error."""
    with FaultServer() as running:
        yield running
    assert running.errors == []
