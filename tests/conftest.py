"""Keel's own tests never reach a real provider: real models raise unless a test re-enables them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import keel.models
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
