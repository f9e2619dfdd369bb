"""Observers (`Agent(observers=[...])`): every committed event, in order, with its run; never breaking a run."""

import pytest

from keel import Agent, EventKind, ReviewQueue, RunStatus, tool
from keel.errors import ConfigError
from keel.journal import Event
from keel.observe import RunInfo
from keel.store import MemoryStore
from keel.testing import ScriptedModel, call, reply


@tool(trusted=True)
def get_order(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[int, EventKind, RunInfo]] = []

    def on_event(self, event: Event, run: RunInfo) -> None:
        self.seen.append((event.seq, event.kind, run))


class Broken:
    def on_event(self, event: Event, run: RunInfo) -> None:
        raise RuntimeError("exporter down")


def test_an_observer_sees_the_whole_journal_in_order_with_its_run(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    model = ScriptedModel([call("get_order", order_id="1"), reply("Shipped.")])
    agent = Agent("desk", model, tools=[get_order], store=MemoryStore(), observers=[Broken(), recorder])
    result = agent.run_sync("where is 1?", session_id="s1")

    assert result.status is RunStatus.COMPLETED  # the broken observer did not break the run
    assert [(seq, kind) for seq, kind, _ in recorder.seen] == [(e.seq, e.kind) for e in result.events]
    run = recorder.seen[0][2]
    assert (run.run_id, run.agent, run.model, run.session_id) == (result.run_id, "desk", "test:scripted", "s1")
    assert "exporter down" in caplog.text and "observer" in caplog.text


def test_a_resumed_run_is_observed_from_where_it_paused() -> None:
    @tool(severity="critical", side_effects=True, trusted=True)
    def close_account(customer: str) -> str:
        """Close an account."""
        return "closed"

    recorder = Recorder()
    model = ScriptedModel([call("close_account", customer="c"), reply("Closed.")])
    agent = Agent("desk", model, tools=[close_account], store=MemoryStore(), observers=[recorder])
    paused = agent.run_sync("close c")
    [item] = ReviewQueue(agent.store).pending_sync(run_id=paused.run_id)
    ReviewQueue(agent.store).approve_sync(item.id, by="ops")
    before = len(recorder.seen)
    resumed = agent.resume_sync(paused.run_id)

    seqs = [seq for seq, _, _ in recorder.seen[before:]]
    assert seqs == [e.seq for e in resumed.events if e.seq > paused.events[-1].seq]
    assert recorder.seen[before][1] is EventKind.RUN_STARTED


def test_something_that_cannot_observe_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not an observer"):
        Agent("desk", ScriptedModel([reply("x")]), observers=[print])
