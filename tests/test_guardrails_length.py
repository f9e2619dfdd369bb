"""LengthGuard: answers held to a length, truncated, refused, flagged or sent to a person (G3 format)."""

import pytest
from pydantic import BaseModel

from keel import Agent, EventKind, ReviewQueue, RunStatus
from keel.errors import ConfigError
from keel.guardrails import GuardContext, LengthGuard
from keel.store import MemoryStore
from keel.testing import ScriptedModel, reply

LONG = "Your order 1234 shipped on Monday and should arrive by Thursday at the latest, tracking attached."


def run(answer: str, *guards, output=None):
    agent = Agent("desk", ScriptedModel([reply(answer)]), guards=list(guards), output=output, store=MemoryStore())
    return agent.run_sync("where is my order?")


def test_an_answer_within_the_limit_passes_untouched() -> None:
    assert LengthGuard(max_chars=len(LONG)).check(LONG, GuardContext()).passed
    assert LengthGuard(max_chars=500, max_lines=1).check(LONG, GuardContext()).passed


def test_truncate_cuts_at_a_word_boundary_and_marks_the_cut() -> None:
    verdict = LengthGuard(max_chars=40).check(LONG, GuardContext())

    assert verdict.action == "redact"
    assert verdict.text == "Your order 1234 shipped on Monday and…"
    assert len(verdict.text) <= 40
    [finding] = verdict.findings
    assert finding.kind == "too_long" and finding.end == len(LONG) and finding.start == len(verdict.text) - 1
    assert "over the limit of 40" in verdict.detail


def test_a_line_limit_keeps_whole_lines() -> None:
    text = "line one\nline two\nline three"
    verdict = LengthGuard(max_chars=1000, max_lines=2).check(text, GuardContext())
    assert verdict.text == "line one\nline two" and "3 lines, over the limit of 2" in verdict.detail


def test_a_single_long_word_is_cut_mid_word_rather_than_emptied() -> None:
    verdict = LengthGuard(max_chars=10).check("x" * 50, GuardContext())
    assert verdict.text == "x" * 9 + "…"


def test_a_truncated_answer_completes_and_the_verdict_is_journaled() -> None:
    result = run(LONG, LengthGuard(max_chars=40))

    assert result.status is RunStatus.COMPLETED
    assert result.output == "Your order 1234 shipped on Monday and…"
    [verdict] = [e.payload for e in result.events if e.kind is EventKind.GUARD_VERDICT]
    assert verdict["guard"] == "length" and verdict["verdict"] == "redact" and verdict["target"] == "output"


def test_block_refuses_a_long_answer_and_flag_lets_it_through() -> None:
    blocked = run(LONG, LengthGuard(max_chars=40, mode="block"))
    assert blocked.status is RunStatus.REJECTED and blocked.output is None
    assert "refused by length" in blocked.report.reason

    flagged = run(LONG, LengthGuard(max_chars=40, mode="flag"))
    assert flagged.status is RunStatus.COMPLETED and flagged.output == LONG


def test_escalate_holds_the_long_answer_for_a_person() -> None:
    agent = Agent(
        "desk", ScriptedModel([reply(LONG)]), guards=[LengthGuard(max_chars=40, mode="escalate")], store=MemoryStore()
    )
    result = agent.run_sync("where is my order?")

    assert result.status is RunStatus.ESCALATED and result.output is None
    [item] = ReviewQueue(agent.store).pending_sync(run_id=result.run_id)
    assert "length" in item.reason
    ReviewQueue(agent.store).approve_sync(item.id, by="alice")
    assert agent.resume_sync(result.run_id).output == LONG


class Ticket(BaseModel):
    title: str
    priority: int


def test_truncate_shortens_a_typed_answers_strings_and_keeps_its_schema() -> None:
    answer = Ticket(title="Parcel late " * 10, priority=2).model_dump_json()
    result = run(answer, LengthGuard(max_chars=60), output=Ticket)

    assert result.status is RunStatus.COMPLETED
    assert isinstance(result.output, Ticket) and result.output.priority == 2
    assert len(result.output.title) <= 60 and result.output.title.endswith("…")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_chars": 0}, "max_chars must be a whole number above zero"),
        ({"max_chars": -5}, "max_chars must be a whole number above zero"),
        ({"max_chars": 2.5}, "max_chars must be a whole number above zero"),
        ({"max_chars": 10, "max_lines": 0}, "max_lines must be a whole number above zero"),
        ({"max_chars": 10, "mode": "shorten"}, "mode must be one of truncate, block, escalate, flag"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LengthGuard(**kwargs)
