"""A tiny MCP server for tests/test_tools_mcp.py, run over stdio: ``python tests/mcp_server.py``.

Built with the official SDK's high-level server (FastMCP, named `MCPServer` in mcp 2), so the tests exercise a
real server process, the real stdio transport and the real protocol.
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("keel-test-server", log_level="WARNING")


@server.tool()
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Sunny and 21 °C in {city}."


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail_always() -> str:
    """A tool that always fails."""
    raise ToolError("the weather station is on fire")


@server.tool()
def send_email(to: str, body: str) -> str:
    """Send an email (pretends to)."""
    return f"sent {len(body)} characters to {to}"


@server.tool()
async def wait(seconds: float) -> str:
    """Take a while to answer."""
    await anyio.sleep(seconds)
    return f"waited {seconds}s"


if __name__ == "__main__":
    server.run("stdio")
