import pytest
from pydantic import BaseModel

from keel.errors import ModelError
from keel.models import ModelRequest, ModelResponse, RequestUsage, UserMessage
from keel.testing import FunctionModel, ScriptedModel, call, calls, fail, raw_call, reply


def request(text: str = "hi", max_output_tokens: int = 1024) -> ModelRequest:
    return ModelRequest(instructions="be brief", messages=(UserMessage(text),), max_output_tokens=max_output_tokens)


class Out(BaseModel):
    n: int


async def test_scripted_model_plays_its_turns_in_order_and_records_requests():
    model = ScriptedModel(
        [call("a", x=1), calls(("b", {}), call("c", y="z")), raw_call("d", "{bad"), reply(Out(n=3), confidence=0.9)],
        usage=[(10, 1), (20, 2)],
        price=(1.0, 2.0),
    )
    first = await model.request(request())
    assert first.tool_calls[0].name == "a" and first.tool_calls[0].arguments == '{"x": 1}'
    assert first.finish_reason == "tool_calls" and first.usage == RequestUsage(10, 1)
    second = await model.request(request())
    assert [c.name for c in second.tool_calls] == ["b", "c"]
    assert len({c.id for c in second.tool_calls}) == 2
    assert (await model.request(request())).tool_calls[0].arguments == "{bad"
    last = await model.request(request())
    assert last.text == '{"n":3}' and last.confidence == 0.9
    assert last.usage == RequestUsage(20, 2), "the last per-turn usage repeats"
    assert len(model.requests) == 4
    assert model.price.cost(1_000_000, 1_000_000) == 3.0


async def test_scripted_model_respects_the_output_allowance_and_reports_exhaustion():
    model = ScriptedModel([reply("x")], usage=(10, 500))
    assert (await model.request(request(max_output_tokens=100))).usage.output_tokens == 100
    with pytest.raises(ModelError, match="the script has 1 turns and request 2 came"):
        await model.request(request())


async def test_fail_raises_the_scripted_error():
    model = ScriptedModel([fail("boom"), fail(TimeoutError("slow"))])
    with pytest.raises(ModelError, match="boom"):
        await model.request(request())
    with pytest.raises(TimeoutError):
        await model.request(request())


async def test_function_model_builds_answers_from_the_request():
    def echo(req: ModelRequest) -> str:
        return f"you said {req.messages[-1].content}"

    model = FunctionModel(echo, price=(1.0, 1.0))
    response = await model.request(request("ping"))
    assert response.text == "you said ping"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0, "usage is estimated when not given"

    async def fixed(req: ModelRequest) -> ModelResponse:
        return ModelResponse(text="ok", usage=RequestUsage(7, 3))

    assert (await FunctionModel(fixed).request(request())).usage == RequestUsage(7, 3)
