"""What a tool can know about the call it serves: who calls, and a read-only view of the store.

Nothing a tool can reach from its `ToolContext` changes how the run is governed: the context is frozen, and its
store is a `StoreView` with reads only — a tool cannot append to a journal, decide a review item, release a
spending reservation or finish a run through it. (A tool is the agent owner's own code, and Python is no sandbox:
this keeps governance out of reach of a tool's ordinary means, not of code set on getting around it.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, Generic, ParamSpec, TypeVar, overload

from keel.store.base import Store

__all__ = ["StoreView", "ToolContext"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Read(Generic[_P, _R]):
    """A read of `Store` offered by `StoreView`: the viewed store's own method, with its signature and docstring.

    Declared from the protocol's method, so a read's parameters are written once, in `Store`.
    """

    def __init__(self, method: Callable[Concatenate[Store, _P], _R]) -> None:
        self._name: str = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, view: None, owner: type[StoreView]) -> _Read[_P, _R]: ...
    @overload
    def __get__(self, view: StoreView, owner: type[StoreView]) -> Callable[_P, _R]: ...
    def __get__(self, view: StoreView | None, owner: type[StoreView]) -> _Read[_P, _R] | Callable[_P, _R]:
        if view is None:
            return self
        method: Callable[_P, _R] = getattr(view._store, self._name)
        return method


class StoreView:
    """The reads of a `Store`, and nothing that writes: what a tool gets as `ToolContext.store`."""

    __slots__ = ("_store", "url")

    def __init__(self, store: Store | StoreView) -> None:
        """View `store` (a view of a view views the same store)."""
        self._store: Store = store._store if isinstance(store, StoreView) else store
        self.url: str = store.url
        """Where the store lives."""

    get_run = _Read(Store.get_run)
    events = _Read(Store.events)
    list_runs = _Read(Store.list_runs)
    recent_events = _Read(Store.recent_events)
    get_review = _Read(Store.get_review)
    list_reviews = _Read(Store.list_reviews)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Passed to a tool that declares a parameter annotated `ToolContext`; never part of its schema."""

    run_id: str
    """The run making the call."""
    call_id: str
    """The model's id for this call."""
    idempotency_key: str
    """Stable for this call across retries and resumes: hand it to side-effecting APIs so a repeat is a no-op."""
    tool_name: str
    agent: str
    session_id: str | None
    attempt: int
    """1 for the first attempt."""
    store: StoreView
    """The run's store, read-only (journals, runs, review items); a `Store` given here is wrapped in a view."""

    def __post_init__(self) -> None:
        if not isinstance(self.store, StoreView):
            object.__setattr__(self, "store", StoreView(self.store))
