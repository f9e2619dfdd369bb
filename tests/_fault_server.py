"""`FaultServer`: a real HTTP server on 127.0.0.1 that speaks two LLM APIs and fails on cue.

It answers POST ``/v1/chat/completions`` (OpenAI Chat Completions) and POST ``/v1/messages`` (Anthropic
Messages) from a script: a queue of items, one consumed per request, each either a well-formed reply in that
endpoint's exact wire format (the shapes of tests/cassettes) or a fault: an HTTP error with the provider's own
error body, a hang, a dropped connection, a body that is not the API's JSON. Every request is recorded, so a
test can count the attempts a client made and read what it sent.

Unlike a mock transport, the bytes cross a real socket, so the SDKs' own timeout, connection and retry
handling runs exactly as it would against the provider. When the script runs out the server answers 500 with
a body saying so, so a test never hangs; `FaultServer.close` wakes hanging handlers and closes open
connections, and returns only when every server thread has ended.

    with FaultServer(HTTPError(429, retry_after=2), Reply("Hi")) as server:
        model = OpenAIModel("gpt-test", base_url=server.openai_base_url, api_key="test", max_retries=0)
        ...
        assert len(server.requests) == 2
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "ANTHROPIC_PATH",
    "HTML_PROXY_PAGE",
    "OPENAI_PATH",
    "Drop",
    "FaultServer",
    "HTTPError",
    "Hang",
    "Item",
    "Raw",
    "RecordedRequest",
    "Reply",
    "ToolUse",
    "Truncated",
    "anthropic_message",
    "openai_completion",
]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
Endpoint = Literal["openai", "anthropic"]
_ENDPOINTS: dict[str, Endpoint] = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}
_CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One tool call inside a `Reply`."""

    name: str
    """The tool the model calls."""
    arguments: str | Mapping[str, Any] = "{}"
    """JSON text (sent verbatim to OpenAI, even when invalid) or an object. Anthropic carries an object, so
    text that does not parse to one cannot be sent there: the server answers 500 saying so."""
    id: str | None = None
    """The call id; ``call_<n>_<i>`` (OpenAI) or ``toolu_<n>_<i>`` (Anthropic) when None."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer. ``Reply()`` (no text, no tool calls) is the empty reply."""

    text: str | None = None
    """The text; None is sent as OpenAI ``content: null``, "" as ``""``; Anthropic gets no text block for either."""
    tool_calls: tuple[ToolUse, ...] = ()
    finish: Literal["stop", "tool_calls", "length"] | None = None
    """Why the model stopped, in OpenAI's words (Anthropic: end_turn, tool_use, max_tokens); by default
    ``tool_calls`` when there are any, else ``stop``."""
    input_tokens: int = 21
    output_tokens: int = 7


@dataclass(frozen=True, slots=True)
class HTTPError:
    """An error response with the provider's exact error body (and headers)."""

    status: int
    message: str | None = None
    """The error message; the status's standard phrase when None."""
    error_type: str | None = None
    """The error's ``type``; the provider's usual one for `status` when None (e.g. ``overloaded_error``)."""
    code: str | None = None
    """OpenAI's ``code`` (e.g. ``insufficient_quota``); the usual one for `status` when None. Ignored by Anthropic."""
    retry_after: float | None = None
    """Sent as the ``retry-after`` header, in seconds."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """More response headers, such as ``x-should-retry`` or ``retry-after-ms``."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Wait `seconds` before answering with `then` (to trip a client timeout); `FaultServer.close` cuts it short."""

    seconds: float
    then: Reply | HTTPError | Raw | None = None
    """The late answer; a text reply when None."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Read the request, then close the connection without sending anything."""


@dataclass(frozen=True, slots=True)
class Raw:
    """A response body sent verbatim: an HTML proxy page, JSON of the wrong shape, anything."""

    body: str | bytes | Mapping[str, Any] | list[Any]
    """Text or bytes as is; a mapping or list is JSON-encoded."""
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Truncated:
    """A 200 whose JSON is cut short: the first `keep` fraction of `reply`'s body, with a matching length."""

    reply: Reply = field(default_factory=lambda: Reply("This answer never arrives whole."))
    keep: float = 0.5


Item = Reply | HTTPError | Hang | Drop | Raw | Truncated
"""One scripted answer."""

HTML_PROXY_PAGE = Raw(
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
    content_type="text/html",
)
"""What a misconfigured proxy in front of the API sends, with a 200."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, whatever it answered."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: Any
    """The parsed JSON body; None when it was empty or not JSON."""

    @property
    def endpoint(self) -> Endpoint | None:
        """Which API the path belongs to; None for any other path."""
        return _ENDPOINTS.get(self.path)


# ---- the two wire formats (shapes as in tests/cassettes) ----

_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_ANTHROPIC_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def _finish(reply: Reply) -> str:
    return reply.finish or ("tool_calls" if reply.tool_calls else "stop")


def openai_completion(reply: Reply, *, model: str = "fault-model", seq: int = 1) -> dict[str, Any]:
    """`reply` as an OpenAI ``chat.completion`` object; `seq` makes the ids unique per request."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{seq}_{i}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
                },
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fault{seq:04d}",
        "object": "chat.completion",
        "created": 1721650511 + seq,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fault",
    }


def _tool_input(call: ToolUse) -> Mapping[str, Any]:
    if not isinstance(call.arguments, str):
        return call.arguments
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _ScriptError(f"tool call arguments {call.arguments!r} are not a JSON object; Anthropic cannot carry them")
    return parsed


def anthropic_message(reply: Reply, *, model: str = "fault-model", seq: int = 1) -> dict[str, Any]:
    """`reply` as an Anthropic ``message`` object; `seq` makes the ids unique per request."""
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    content.extend(
        {"type": "tool_use", "id": call.id or f"toolu_{seq}_{i}", "name": call.name, "input": _tool_input(call)}
        for i, call in enumerate(reply.tool_calls)
    )
    return {
        "id": f"msg_fault{seq:04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _ANTHROPIC_STOP[_finish(reply)],
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": reply.output_tokens,
            "service_tier": "standard",
        },
    }


def _error_body(error: HTTPError, endpoint: Endpoint, request_id: str) -> dict[str, Any]:
    message = error.message or _phrase(error.status)
    if endpoint == "anthropic":
        kind = error.error_type or _ANTHROPIC_ERRORS.get(error.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    usual_type, usual_code = _OPENAI_ERRORS.get(error.status, ("server_error", None))
    return {
        "error": {
            "message": message,
            "type": error.error_type or usual_type,
            "param": None,
            "code": error.code or usual_code,
        }
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else f"HTTP {status}"  # 529 is Anthropic's own


class _ScriptError(Exception):
    """A scripted item that cannot be rendered for the endpoint that was hit."""


# ---- the server ----


class FaultServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) answering from a script of `Item` s.

    Args:
        *items: the first scripted answers, in order; `script` appends more.
    """

    def __init__(self, *items: Item) -> None:
        self._lock = threading.Lock()
        self._items: deque[Item] = deque(items)
        self._requests: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()
        """Set by `close`: hanging handlers stop waiting."""
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *items: Item) -> None:
        """Append `items` to the script; each answers one request, in order."""
        with self._lock:
            self._items.extend(items)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many scripted items are still unanswered."""
        with self._lock:
            return len(self._items)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions in the server's handlers (a bug in the server, not a client disconnect)."""
        with self._lock:
            return list(self._errors)

    @property
    def port(self) -> int:
        """The port the server listens on (chosen free at `start`)."""
        if self._httpd is None:
            raise RuntimeError("FaultServer is not started")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the Anthropic SDK's base URL (it appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``<url>/v1``: the OpenAI SDK's base URL (it appends ``/chat/completions``)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The same as `url`, named for symmetry."""
        return self.url

    def start(self) -> FaultServer:
        """Bind a free port and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("FaultServer is already started")
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-server", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: wake hanging handlers, close open connections, and wait for every thread to end.

        Raises:
            RuntimeError: a server thread is still running after a few seconds.
        """
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()  # returns once the accept loop has ended, so no connection arrives after this
        threads = httpd.close_connections()
        httpd.server_close()
        assert self._thread is not None
        threads.append(self._thread)
        for thread in threads:
            thread.join(_CLOSE_TIMEOUT_S)
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            raise RuntimeError(f"FaultServer threads still running after close: {stuck}")

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self, request: RecordedRequest) -> tuple[int, Item | None]:
        """Record `request` and pop the next item for it (None when the script has run out)."""
        with self._lock:
            self._requests.append(request)
            seq = len(self._requests)
            if request.endpoint is None:
                return seq, None
            return seq, self._items.popleft() if self._items else None

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)


class _HTTPServer(ThreadingHTTPServer):
    """Keeps each connection's socket and thread, so that `close_connections` can end them all."""

    daemon_threads = True  # never keeps the interpreter alive; `FaultServer.close` joins them itself

    def __init__(self, fault: FaultServer) -> None:
        self.fault = fault
        self._conn_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall on a machine without a
        # network; the name is only used in CGI environments.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="fault-server-conn", daemon=True
        )
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection down (its handler then reads EOF and ends); return their threads."""
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        return [thread for _, thread in connections]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError):  # a client hanging up is no bug
            self.fault._record_error(error)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, records it, and answers with the next scripted item."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    timeout = 30  # an idle keep-alive connection ends on its own even if no one closes it
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`, not stderr

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        request = RecordedRequest(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
        seq, item = self.server.fault._take(request)
        endpoint = request.endpoint
        if endpoint is None:
            unknown = f"Invalid URL ({self.command} {path}); FaultServer serves {OPENAI_PATH} and {ANTHROPIC_PATH}"
            self._send_error(HTTPError(404, unknown), "openai", seq)
        elif item is None:
            ran_out = f"FaultServer: the script ran out (request #{seq} has no scripted answer)"
            self._send_error(HTTPError(500, ran_out), endpoint, seq)
        else:
            model = body.get("model", "fault-model") if isinstance(body, dict) else "fault-model"
            try:
                self._answer(item, endpoint, seq, str(model))
            except _ScriptError as exc:
                self._send_error(HTTPError(500, f"FaultServer script error: {exc}"), endpoint, seq)

    def _answer(self, item: Item, endpoint: Endpoint, seq: int, model: str) -> None:
        match item:
            case Reply():
                self._send_json(200, _render(item, endpoint, model, seq), endpoint, seq)
            case HTTPError():
                self._send_error(item, endpoint, seq)
            case Hang(seconds=seconds, then=then):
                if self.server.fault._stopping.wait(seconds):
                    self.close_connection = True  # shutting down: no answer
                    return
                self._answer(then or Reply("Sorry for the wait."), endpoint, seq, model)
            case Drop():
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            case Raw(body=body, status=status, content_type=content_type, headers=headers):
                data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else _json(body)
                self._send(status, data, content_type, headers)
            case Truncated(reply=reply, keep=keep):
                data = _json(_render(reply, endpoint, model, seq))
                self._send(200, data[: int(len(data) * keep)], "application/json", {})

    def _send_json(
        self, status: int, body: object, endpoint: Endpoint, seq: int, extra: Mapping[str, str] | None = None
    ) -> None:
        request_id = {"x-request-id" if endpoint == "openai" else "request-id": _request_id(endpoint, seq)}
        self._send(status, _json(body), "application/json", {**request_id, **(extra or {})})

    def _send_error(self, error: HTTPError, endpoint: Endpoint, seq: int) -> None:
        headers = dict(error.headers)
        if error.retry_after is not None:
            seconds = error.retry_after
            headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        body = _error_body(error, endpoint, _request_id(endpoint, seq))
        self._send_json(error.status, body, endpoint, seq, headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout); nothing to answer


def _render(reply: Reply, endpoint: Endpoint, model: str, seq: int) -> dict[str, Any]:
    render = openai_completion if endpoint == "openai" else anthropic_message
    return render(reply, model=model, seq=seq)


def _request_id(endpoint: Endpoint, seq: int) -> str:
    return f"req_fault{seq:04d}" if endpoint == "openai" else f"req_011Fault{seq:04d}"


def _json(value: object) -> bytes:
    return json.dumps(value).encode()
