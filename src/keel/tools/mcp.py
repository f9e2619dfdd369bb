"""MCP tools on the allow-list: a server's tools become Keel tools only by explicit name, at a severity you set.

An MCP server decides what it offers; the agent's owner decides what the agent may call (G1). `MCPServer.tools`
takes the names to register and the severity of each; a name the server does not offer is a `ConfigError`
that lists what it does offer, and a tool the server offers but you did not name is never registered, so it
can never run. The server's own hints (``readOnlyHint``, ``destructiveHint``) are ignored on purpose: they are
claims by the party being governed. Every MCP tool is side-effecting unless you say otherwise, and its output
is untrusted (screened for prompt injection) unless you declare it trusted.

```python
async with MCPServer.stdio("python", ["-m", "my_server"]) as server:
    tools = await server.tools({"get_weather": "low", "send_email": ToolPolicy("high", timeout_s=10)})
    result = await Agent(..., tools=[*tools, other_tool]).run("...")
```

The returned tools call the server through the session opened by ``async with``: run the agent inside that
block, on the same event loop (``await agent.run(...)``, not ``run_sync``). Arguments are checked against the
server's JSON schema before anything is sent (with ``jsonschema``, which the ``mcp`` SDK depends on), so an
invalid call is rejected by Keel like any other (E3). Needs the ``mcp`` extra: ``pip install 'keel-agents[mcp]'``.
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, RootModel, field_validator
from pydantic_core import PydanticCustomError

from keel.errors import ConfigError, MissingDependencyError
from keel.tools.tool import SEVERITIES, Severity, Tool

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as RemoteTool

__all__ = ["INSTALL_HINT", "MCPServer", "MCPToolError", "ToolPolicy"]

INSTALL_HINT = "pip install 'keel-agents[mcp]'"

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What every provider accepts as a tool name (OpenAI's rule is the strictest)."""
_MAX_PAGES = 100
"""Bound on the tools/list pagination walk: a server whose cursor never ends cannot hang `tools()`."""
_MAX_PROBLEMS = 5
"""Schema violations reported per rejected call: enough for the model to fix them, short enough to read."""


class MCPToolError(RuntimeError):
    """The server answered a tool call with an error result; Keel records the call with outcome ``error``."""


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """How Keel governs one MCP tool: the values `@tool` would take for a local function.

    Attributes:
        severity: how much harm a wrong call can do (low, medium, high, critical); no default, you decide.
        side_effects: False only for tools you know to be read-only; True (the default) means never cached and
            treated as changing the world.
        timeout_s: wall-time limit of one call.
        trusted: True only when you control the server and what it returns; its output is then not screened
            for prompt injection and does not taint the run (G5).
        cost_usd: what one call costs when the server fronts a paid API; reserved and charged like
            ``@tool(cost_usd=...)``.
        name: the name the model sees, when the server's name is not a valid tool name or collides with another
            tool (two servers offering ``search``); defaults to the server's name.
    """

    severity: Severity
    side_effects: bool = True
    timeout_s: float = 30.0
    trusted: bool = False
    cost_usd: float = 0.0
    name: str | None = None


def _sdk() -> type[Client]:
    """The SDK's `Client`, or `MissingDependencyError` naming the install command."""
    try:
        from mcp import Client
    except ImportError as exc:
        raise MissingDependencyError(
            f"MCP tools need the official `mcp` SDK, which is not installed; install Keel's mcp extra: {INSTALL_HINT}"
        ) from exc
    return Client


class MCPServer:
    """A connection to one MCP server, opened by ``async with`` and closed when the block ends.

    Build it with `MCPServer.stdio` (a local command speaking MCP on stdin/stdout) or `MCPServer.http`
    (a streamable-HTTP endpoint).
    """

    def __init__(self, make_client: Callable[[], Client], *, label: str, connect_timeout_s: float = 30.0) -> None:
        """Prefer `stdio` or `http`; `make_client` builds the SDK client when the block is entered."""
        if connect_timeout_s <= 0:
            raise ConfigError(f"MCP server {label}: connect_timeout_s must be positive, got {connect_timeout_s!r}")
        self._make_client = make_client
        self.label = label
        """How errors name this server: the command line or the URL."""
        self.connect_timeout_s = float(connect_timeout_s)
        """Bound on starting the server and the protocol handshake, and on listing its tools."""
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def stdio(
        cls,
        command: str,
        args: list[str] | tuple[str, ...] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        connect_timeout_s: float = 30.0,
    ) -> MCPServer:
        """A server run as a subprocess (``command args...``) that speaks MCP on its stdin and stdout.

        The subprocess inherits only a safe minimal environment (PATH, HOME, …; the SDK's rule) plus `env`:
        pass the API keys it needs explicitly. It is stopped when the ``async with`` block ends.
        """
        client_class = _sdk()
        from mcp import StdioServerParameters

        params = StdioServerParameters(command=command, args=list(args), env=dict(env) if env else None, cwd=cwd)
        label = " ".join([command, *args])
        return cls(lambda: client_class(params, mode="auto"), label=label, connect_timeout_s=connect_timeout_s)

    @classmethod
    def http(cls, url: str, *, connect_timeout_s: float = 30.0) -> MCPServer:
        """A server at a streamable-HTTP endpoint, such as ``http://localhost:8000/mcp``."""
        client_class = _sdk()
        return cls(lambda: client_class(url, mode="auto"), label=url, connect_timeout_s=connect_timeout_s)

    async def __aenter__(self) -> MCPServer:
        """Start or reach the server and complete the MCP handshake within `connect_timeout_s`."""
        if self._client is not None:
            raise ConfigError(f"MCP server {self.label} is already open")
        client = self._make_client()
        connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        holder = asyncio.create_task(_hold(client, connected, stop), name=f"keel-mcp {self.label}")
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await asyncio.shield(connected)
        except BaseException as exc:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)  # the SDK bounds every wait of its shutdown
            if isinstance(exc, TimeoutError):
                raise ConfigError(
                    f"MCP server {self.label} did not complete the handshake within {self.connect_timeout_s:g}s"
                ) from exc
            if isinstance(exc, Exception):  # spawn failures, a server that exits at once, protocol errors
                raise ConfigError(f"MCP server {self.label} could not be reached: {_describe(exc)}") from exc
            raise
        self._client, self._holder, self._stop = client, holder, stop
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the session and stop the server (the SDK bounds every wait of its shutdown)."""
        holder, stop = self._holder, self._stop
        self._client = self._holder = self._stop = self._loop = None
        if holder is not None and stop is not None:
            stop.set()
            await holder

    def _open_client(self) -> Client:
        if self._client is None:
            raise ConfigError(f"MCP server {self.label} is not open: use `async with MCPServer...(...) as server:`")
        if asyncio.get_running_loop() is not self._loop:
            raise ConfigError(
                f"MCP server {self.label} was opened on another event loop; run the agent inside the `async with` "
                "block with `await agent.run(...)` (not `run_sync`)"
            )
        return self._client

    async def offered(self) -> dict[str, RemoteTool]:
        """Every tool the server offers, by name, as it lists them (nothing here is registered).

        Raises:
            ConfigError: the server is not open, or did not list its tools within `connect_timeout_s`.
        """
        client = self._open_client()
        listed: dict[str, RemoteTool] = {}
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    listed.update((remote.name, remote) for remote in page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError as exc:
            raise ConfigError(
                f"MCP server {self.label} did not list its tools within {self.connect_timeout_s:g}s"
            ) from exc
        except Exception as exc:  # a protocol error, or the server went away
            raise ConfigError(f"MCP server {self.label} could not list its tools: {_describe(exc)}") from exc
        return listed

    async def tools(self, selection: Mapping[str, Severity | ToolPolicy]) -> list[Tool]:
        """Keel tools for exactly the server tools named in `selection`, each at the severity given.

        Args:
            selection: server tool name → its severity (``"low"`` … ``"critical"``) or a `ToolPolicy`.

        Returns:
            One `Tool` per name, in the order of `selection`; tools the server offers but you did not name are
            left out.

        Raises:
            ConfigError: a name the server does not offer (the message lists what it offers), an invalid
                severity or tool name, or a server tool whose input schema is not valid JSON schema.
        """
        policies = {remote: _policy(self.label, remote, choice) for remote, choice in selection.items()}
        offered = await self.offered()
        missing = [name for name in policies if name not in offered]
        if missing:
            raise ConfigError(
                f"MCP server {self.label} does not offer {', '.join(map(repr, missing))}; "
                f"it offers: {', '.join(sorted(offered)) or 'no tools'}"
            )
        return [self._tool(offered[name], policy) for name, policy in policies.items()]

    def _tool(self, remote: RemoteTool, policy: ToolPolicy) -> Tool:
        name = policy.name or remote.name
        if not _TOOL_NAME.match(name):
            raise ConfigError(
                f"MCP tool {remote.name!r} of {self.label}: {name!r} is not a valid tool name (letters, digits, _ "
                "and -, at most 64); give it one with ToolPolicy(..., name='...')"
            )
        schema = _closed(remote.input_schema)
        parameters = copy.deepcopy(schema)
        parameters.pop("title", None)
        remote_name = remote.name

        async def call(root: dict[str, Any]) -> Any:
            result = await self._open_client().call_tool(remote_name, root)
            return _content(result)

        return Tool(
            name=name,
            description=(remote.description or remote.title or "").strip(),
            parameters=parameters,
            function=call,
            args_model=_args_model(name, schema, self.label),
            is_async=True,
            severity=policy.severity,
            side_effects=policy.side_effects,
            timeout_s=policy.timeout_s,
            cost_usd=float(policy.cost_usd),
            trusted=policy.trusted,
        )

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"MCPServer({self.label!r}, {state})"


async def _hold(client: Client, connected: asyncio.Future[None], stop: asyncio.Event) -> None:
    """Hold the SDK session open in a task of its own until `stop` is set.

    The SDK's transports are anyio task groups, which must be exited by the task that entered them; holding
    them here lets ``async with MCPServer...`` be entered and left from different tasks (an async fixture,
    a web framework's startup and shutdown hooks) without breaking that rule.
    """
    try:
        async with client:
            connected.set_result(None)
            await stop.wait()
    except Exception as exc:
        if not connected.done():
            connected.set_exception(exc)
        # Failing after the handshake: the calls made meanwhile have already failed, and closing is all that is left.
    finally:
        if not connected.done():  # cancelled before the handshake completed
            connected.cancel()


def _describe(exc: BaseException) -> str:
    """`exc` as ``Type: message``, looking inside the one-exception groups anyio wraps errors in."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _policy(label: str, remote: str, choice: Severity | ToolPolicy) -> ToolPolicy:
    policy = choice if isinstance(choice, ToolPolicy) else ToolPolicy(severity=choice)
    if policy.severity not in SEVERITIES:
        raise ConfigError(
            f"MCP tool {remote!r} of {label}: severity must be one of {SEVERITIES}, got {policy.severity!r}"
        )
    if not policy.timeout_s > 0:
        raise ConfigError(f"MCP tool {remote!r} of {label}: timeout_s must be positive, got {policy.timeout_s!r}")
    if not (isinstance(policy.cost_usd, int | float) and math.isfinite(policy.cost_usd) and policy.cost_usd >= 0):
        raise ConfigError(
            f"MCP tool {remote!r} of {label}: cost_usd must be a finite amount >= 0, got {policy.cost_usd!r}"
        )
    return policy


def _args_model(name: str, schema: dict[str, Any], label: str) -> type[BaseModel]:
    """A model that accepts a JSON object when it satisfies the server's JSON schema.

    The whole object is the model's root, so the journal records the arguments exactly as the model sent them
    (no nulls for omitted optional arguments) and the server receives them unchanged.
    """
    from jsonschema import Draft202012Validator, SchemaError, validators

    validator_class = validators.validator_for(schema, default=Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(
            f"MCP tool {name!r} of {label}: its input schema is not valid JSON schema: {exc.message}"
        ) from exc
    validator = validator_class(schema)

    def check(value: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(value), key=lambda error: list(error.absolute_path))
        if errors:
            problems = "; ".join(_problem(error) for error in errors[:_MAX_PROBLEMS])
            raise PydanticCustomError("json_schema", "{problems}", {"problems": problems})
        return value

    namespace = {"__module__": __name__, "_check": field_validator("root")(check)}
    model = type(f"{name}_args", (RootModel[dict[str, Any]],), namespace)
    return cast(type[BaseModel], model)


_OPEN_KEYWORDS = frozenset(
    {"additionalProperties", "patternProperties", "unevaluatedProperties", "allOf", "anyOf", "oneOf", "$ref", "if"}
)


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` refusing argument names it does not declare, unless it says what to do with them.

    JSON schema allows undeclared properties by default, and most servers (FastMCP) leave it unsaid and then
    silently drop them; Keel refuses a hallucinated argument name instead, as it does for local tools (E3).
    Schemas that compose or decide about extra properties themselves are left as they are.
    """
    if "properties" not in schema or _OPEN_KEYWORDS & schema.keys():
        return schema
    return {**schema, "additionalProperties": False}


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


def _content(result: CallToolResult) -> Any:
    """What the model reads: the text parts joined, else the structured result (JSON), else placeholders."""
    texts: list[str] = []
    others: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)  # type: ignore[union-attr]
        elif kind == "resource" and hasattr(block.resource, "text"):  # type: ignore[union-attr]
            texts.append(block.resource.text)  # type: ignore[union-attr]
        else:
            detail = getattr(block, "mime_type", None) or getattr(block, "uri", None) or ""
            others.append(f"[{kind}{': ' + str(detail) if detail else ''}]")
    if result.is_error:
        raise MCPToolError("\n".join(texts + others) or "the server reported an error without a message")
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return result.structured_content
    return "\n".join(others)
