"""MCP tools on the allow-list, against a real MCP server (tests/mcp_server.py) run over stdio."""

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the `mcp` extra is not installed (pip install 'keel-agents[mcp]')")

from keel import Agent, RunStatus
from keel.errors import ConfigError, MissingDependencyError
from keel.journal import Event
from keel.testing import ScriptedModel, call, raw_call, reply
from keel.tools.mcp import MCPServer, ToolPolicy

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))


@pytest.fixture
async def server() -> AsyncIterator[MCPServer]:
    async with MCPServer.stdio(sys.executable, [SERVER_SCRIPT], connect_timeout_s=20) as opened:
        yield opened


def _events(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [event.payload for event in events if event.kind == kind]


async def _run(server: MCPServer, script: list[Any], selection: dict[str, Any]) -> Any:
    tools = await server.tools(selection)
    agent = Agent("mcp-test", ScriptedModel(script), tools=tools, store=":memory:")
    return await agent.run("What is the weather in Oslo?")


async def test_only_the_named_tools_are_registered(server: MCPServer) -> None:
    tools = await server.tools({"get_weather": "low", "send_email": "high"})

    assert [t.name for t in tools] == ["get_weather", "send_email"]
    weather = tools[0]
    assert weather.description == "Current weather in a city."
    assert weather.parameters["required"] == ["city"]
    assert weather.parameters["properties"]["city"]["type"] == "string"
    # `add` is offered by the server but was not named: a model calling it is refused as unknown (G1).
    result = await _run(server, [call("add", a=1, b=2), reply("done")], {"get_weather": "low"})
    (rejected,) = _events(result.events, "tool_rejected")
    assert rejected["tool"] == "add"
    assert "not one of this agent's tools (get_weather)" in rejected["reason"]
    assert _events(result.events, "tool_called") == []


async def test_a_name_the_server_does_not_offer_is_a_config_error_listing_what_it_offers(server: MCPServer) -> None:
    with pytest.raises(ConfigError) as raised:
        await server.tools({"get_weather": "low", "delete_everything": "critical"})

    message = str(raised.value)
    assert "does not offer 'delete_everything'" in message
    assert "it offers: add, fail_always, get_weather, send_email, wait" in message


async def test_severity_is_the_users_and_side_effects_default_to_true(server: MCPServer) -> None:
    email, weather = await server.tools(
        {
            "send_email": "high",
            "get_weather": ToolPolicy("low", side_effects=False, timeout_s=5, trusted=True, name="weather"),
        }
    )

    assert (email.name, email.severity, email.side_effects, email.trusted, email.timeout_s) == (
        "send_email",
        "high",
        True,
        False,
        30.0,
    )
    assert (weather.name, weather.severity, weather.side_effects, weather.trusted, weather.timeout_s) == (
        "weather",
        "low",
        False,
        True,
        5.0,
    )


async def test_an_invalid_severity_is_a_config_error(server: MCPServer) -> None:
    with pytest.raises(ConfigError, match="severity must be one of"):
        await server.tools({"get_weather": "harmless"})  # type: ignore[dict-item]


async def test_an_agent_run_gets_the_servers_answer(server: MCPServer) -> None:
    script = [call("get_weather", city="Oslo"), reply("It is sunny in Oslo.")]
    result = await _run(server, script, {"get_weather": "low"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "It is sunny in Oslo."
    (called,) = _events(result.events, "tool_called")
    assert called["tool"] == "get_weather"
    assert called["arguments"] == {"city": "Oslo"}
    assert called["outcome"] == "ok"
    assert called["result"] == "Sunny and 21 °C in Oslo."
    assert (called["severity"], called["side_effects"]) == ("low", True)


async def test_a_typed_result_comes_back_as_text(server: MCPServer) -> None:
    result = await _run(server, [call("add", a=2, b=40), reply("42")], {"add": "low"})

    (called,) = _events(result.events, "tool_called")
    assert (called["outcome"], called["result"]) == ("ok", "42")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": "two", "b": 40}', "a: 'two' is not of type 'integer'"),
        ('{"a": 2}', "'b' is a required property"),
        ('{"a": 2, "b": 40, "c": 1}', "Additional properties are not allowed ('c' was unexpected)"),
        ('{"a": 2, "b":', "arguments are not valid JSON"),
    ],
)
async def test_invalid_arguments_are_rejected_before_the_server_is_called(
    server: MCPServer, arguments: str, expected: str
) -> None:
    result = await _run(server, [raw_call("add", arguments), reply("sorry")], {"add": "low"})

    (rejected,) = _events(result.events, "tool_rejected")
    assert rejected["tool"] == "add"
    assert expected in rejected["reason"]
    assert _events(result.events, "tool_called") == []


async def test_an_error_result_from_the_server_is_a_tool_error(server: MCPServer) -> None:
    result = await _run(server, [call("fail_always"), reply("The station failed.")], {"fail_always": "low"})

    assert result.status is RunStatus.COMPLETED
    (called,) = _events(result.events, "tool_called")
    assert called["outcome"] == "error"
    assert called["error"].startswith("Tool 'fail_always' failed: MCPToolError: ")
    assert "the weather station is on fire" in called["error"]


async def test_a_call_past_its_timeout_is_stopped_and_the_session_still_works(server: MCPServer) -> None:
    selection = {"wait": ToolPolicy("low", side_effects=False, timeout_s=0.3), "get_weather": "low"}
    script = [call("wait", seconds=30), call("get_weather", city="Oslo"), reply("Sunny.")]
    result = await _run(server, script, selection)

    *waited, weather = _events(result.events, "tool_called")
    assert [w["outcome"] for w in waited] == ["timeout"] * 3  # retried under the default policy, then given up
    assert (weather["outcome"], weather["result"]) == ("ok", "Sunny and 21 °C in Oslo.")


async def test_tools_cannot_be_listed_or_called_once_the_server_is_closed() -> None:
    async with MCPServer.stdio(sys.executable, [SERVER_SCRIPT], connect_timeout_s=20) as server:
        tools = await server.tools({"get_weather": "low"})
    with pytest.raises(ConfigError, match="is not open"):
        await server.tools({"get_weather": "low"})

    agent = Agent("mcp-test", ScriptedModel([call("get_weather", city="Oslo"), reply("?")]), tools=tools)
    result = await agent.run("Weather?")
    (called,) = _events(result.events, "tool_called")
    assert called["outcome"] == "error"
    assert "is not open" in called["error"]


async def test_a_server_that_exits_at_once_is_a_config_error() -> None:
    server = MCPServer.stdio(sys.executable, ["-c", "import sys; sys.exit(3)"], connect_timeout_s=10)
    with pytest.raises(ConfigError, match="could not be reached|did not complete the handshake"):
        async with server:
            pass


async def test_a_server_that_never_answers_times_out() -> None:
    silent = MCPServer.stdio(sys.executable, ["-c", "import sys; sys.stdin.read()"], connect_timeout_s=0.5)
    with pytest.raises(ConfigError, match=r"did not complete the handshake within 0.5s"):
        async with silent:
            pass


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` now raises ImportError

    with pytest.raises(MissingDependencyError, match=r"pip install 'keel-agents\[mcp\]'"):
        MCPServer.stdio(sys.executable, [SERVER_SCRIPT])
    with pytest.raises(MissingDependencyError, match=r"pip install 'keel-agents\[mcp\]'"):
        MCPServer.http("http://localhost:8000/mcp")
