"""Salvage: a run stopped by a bound asks the model once for its best answer from what it gathered (E5, C3).

Ordinary turns leave `Budget.answer_reserve` of the run's tokens, money and time untouched, so this one call —
no tools, phase ``summarization`` — is affordable when the stop came from the budget itself. When the whole
conversation no longer fits, the call gets a compact digest instead: the task and the tool results, cut to fit.
The run stays PARTIAL (its report says why); the answer goes through the output guards like any other.
"""

from __future__ import annotations

from keel._pipeline.authorize import Allowed, authorize_model_call
from keel._pipeline.propose import FinalTurn, propose, request_for
from keel._pipeline.record import record
from keel._pipeline.state import Finish, RunState
from keel.journal import EventKind, Phase
from keel.models.base import Message, ModelResponse, UserMessage
from keel.result import RunStatus

__all__ = ["BEST_EFFORT_DONE", "best_effort", "salvageable"]

BEST_EFFORT_DONE = "best-effort answer from what was gathered"
_DIGEST_CHARS = (4000, 1000, 250)
"""How much of each tool result a compact best-effort request keeps, tried in turn until one fits."""


def _ask(reason: str) -> str:
    return (
        f"You must stop now ({reason}) and cannot call any more tools. Give your best final answer from the "
        "information you already have, and say plainly what you could not find out or do."
    )


def salvageable(state: RunState, end: Finish) -> bool:
    """A bounded stop of a run that gathered tool results but has no answer, with a reserve to pay for one."""
    return (
        end.status is RunStatus.PARTIAL
        and end.salvage
        and bool(state.tool_results)
        and state.spec.budget.answer_reserve > 0
    )


def _candidates(state: RunState, ask: str) -> list[tuple[Message, ...]]:
    """The full conversation first, then compact digests of the task and the results, each smaller."""
    full: tuple[Message, ...] = (*state.messages, UserMessage(ask))
    compact = []
    for limit in _DIGEST_CHARS:
        results = "\n".join(f"- {r[:limit]}{'…' if len(r) > limit else ''}" for r in state.tool_results[-20:])
        digest = f"{state.spec.task}\n\nWhat the tools returned so far:\n{results}\n\n{ask}"
        compact.append((UserMessage(digest),))
    return [full, *compact]


def _affordable(state: RunState, ask: str) -> FinalTurn | None:
    """The largest of the candidate requests the run's budget (reserve included) can pay for."""
    for messages in _candidates(state, ask):
        turn = FinalTurn(messages)
        request = request_for(state, state.spec.max_output_tokens, turn)
        if isinstance(
            authorize_model_call(state, state.current_model.count_input_tokens(request), reserve=False), Allowed
        ):
            return turn
    return None


async def best_effort(state: RunState, end: Finish) -> Finish:
    """`end`, after one best-effort answer when the budget allows it (the answer becomes the run's output)."""
    turn = _affordable(state, _ask(end.reason))
    if turn is None:
        return end
    # The stop is decided: journaled first, so a crash during the answer does not let a resumed run go on.
    await record(state, EventKind.CHECKPOINT, {"stage": "stopping", "reason": end.reason})
    state.phase = Phase.SUMMARIZATION
    response = await propose(state, turn)
    if isinstance(response, ModelResponse) and response.text and response.text.strip():
        state.done.append(BEST_EFFORT_DONE)
        state.last_text = response.text
    return end
