"""llama.cpp in this process: loading GGUF files once, rendering chat templates, bounded generation.

Everything that touches `llama_cpp` lives here, imported lazily, so that Keel imports without the ``local``
extra and a missing extra is a clear `MissingDependencyError` instead of an ImportError deep in a run.

Two loads per file, both cached for the life of the process: a vocabulary-only load (milliseconds, even for
a multi-gigabyte file) that counts prompt tokens and reads the chat template before any call, and the full
model, loaded on the first generation in a worker thread. A loaded model is not thread-safe, so generations
on it are serialized by its lock; each one is bounded by ``max_tokens``, the context window and a wall-clock
deadline checked after every token, and stops at the next token once its caller gives up.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import MissingDependencyError, ModelError, ModelFileError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

__all__ = [
    "INSTALL_HINT",
    "DEFAULT_CONTEXT_CAP",
    "Generation",
    "LocalRuntime",
    "Stop",
    "degenerate",
    "grammar_for",
    "require_runtime",
    "runtime_for",
]

INSTALL_HINT = "pip install 'keel-agents[local]'"
DEFAULT_CONTEXT_CAP = 8192
"""The context window used when none is given: the model's trained window, capped here because the KV cache
of a 128k-token window would take gigabytes of memory that a support-desk turn never needs."""


def require_runtime() -> None:
    """Raise `MissingDependencyError` with the install command when llama-cpp-python is not installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependencyError(
            f"local models run on llama-cpp-python, which is not installed; install Keel's local extra: {INSTALL_HINT}"
        )


Stop = Literal["done", "length", "deadline", "cancelled", "repetition"]

REPETITION_WINDOW = 64
"""Generated tokens that must repeat one short cycle before a generation counts as degenerate."""
REPETITION_MAX_PERIOD = 16
"""The longest cycle (in tokens) looked for: a date, a phrase, a run of newlines."""


def degenerate(tokens: Sequence[int]) -> bool:
    """True when the last `REPETITION_WINDOW` tokens repeat one cycle of at most `REPETITION_MAX_PERIOD` tokens.

    Small models fall into such loops and would otherwise run on to ``max_tokens`` or the end of the window.
    """
    if len(tokens) < REPETITION_WINDOW + REPETITION_MAX_PERIOD:
        return False
    tail = list(tokens[-(REPETITION_WINDOW + REPETITION_MAX_PERIOD) :])
    last = tail[REPETITION_MAX_PERIOD:]
    return any(last == tail[REPETITION_MAX_PERIOD - p : -p] for p in range(1, REPETITION_MAX_PERIOD + 1))


@dataclass(frozen=True, slots=True)
class Generation:
    """What one bounded generation produced."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    stopped: Stop
    """Why it ended: done, `max_tokens`, the wall-clock deadline, abandoned, or a degenerate repetition."""


@dataclass(eq=False)
class LocalRuntime:
    """One GGUF file: its vocabulary and chat template now, the full model on first use."""

    path: Path
    n_ctx: int | None
    n_threads: int | None
    vocab: Llama
    template: str
    eos_token: str
    bos_token: str
    _model: Llama | None = None
    _load_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while the model generates: a llama.cpp context serves one generation at a time."""

    @property
    def context_window(self) -> int:
        """Tokens the context holds: prompt plus reply."""
        if self.n_ctx is not None:
            return self.n_ctx
        trained = _trained_context(self.vocab.metadata)
        return min(trained, DEFAULT_CONTEXT_CAP) if trained else DEFAULT_CONTEXT_CAP

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text the model's own chat template makes of `messages`.

        Raises:
            ValueError: the template refused the conversation (its ``raise_exception``) or failed to render.
        """
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(template=self.template, eos_token=self.eos_token, bos_token=self.bos_token)
        try:
            return formatter(messages=messages).prompt  # type: ignore[arg-type]
        except ValueError:
            raise
        except Exception as exc:  # jinja2's errors: a template that cannot handle this conversation
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc

    def tokenize(self, prompt: str) -> list[int]:
        """The prompt's tokens, special tokens of the template included (exactly what generation is fed)."""
        # Chat templates write the BOS token themselves when the model wants one.
        tokens: list[int] = self.vocab.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def close(self) -> None:
        """Free the model and the vocabulary (llama.cpp memory outside Python's heap)."""
        with self._load_lock:
            if self._model is not None:
                self._model.close()
                self._model = None
        self.vocab.close()

    def model(self) -> Llama:
        """The full model, loaded on first use (call it from a worker thread: a large file takes seconds)."""
        with self._load_lock:
            if self._model is None:
                from llama_cpp import Llama

                kwargs: dict[str, Any] = {"n_ctx": self.context_window, "verbose": False}
                if self.n_threads is not None:
                    kwargs["n_threads"] = self.n_threads
                try:
                    self._model = Llama(str(self.path), **kwargs)
                except (ValueError, RuntimeError) as exc:
                    raise ModelFileError(f"{self.path}: llama.cpp could not load the model ({exc})") from exc
            return self._model

    def generate(
        self,
        tokens: list[int],
        *,
        max_tokens: int,
        grammar: LlamaGrammar | None,
        temperature: float,
        seed: int | None,
        deadline: float,
        cancel: threading.Event,
    ) -> Generation:
        """Generate a reply to `tokens`, stopping at `max_tokens`, at `deadline` (monotonic) or on `cancel`."""
        from llama_cpp import StoppingCriteriaList

        stopped: list[Stop] = []
        prompt_length = len(tokens)

        def must_stop(ids: Any, _logits: Any) -> bool:
            if cancel.is_set():
                stopped.append("cancelled")
            elif time.monotonic() >= deadline:
                stopped.append("deadline")
            elif degenerate(ids[prompt_length:]):
                stopped.append("repetition")
            return bool(stopped)

        if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return Generation("", len(tokens), 0, "deadline")  # another generation held the model throughout
        try:
            if cancel.is_set():
                return Generation("", len(tokens), 0, "cancelled")
            completion: Any = self.model().create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                grammar=grammar,
                stop=[self.eos_token] if self.eos_token else [],
                stopping_criteria=StoppingCriteriaList([must_stop]),
            )
        finally:
            self.lock.release()
        choice = completion["choices"][0]
        usage = completion["usage"]
        ended: Stop = stopped[0] if stopped else "length" if choice["finish_reason"] == "length" else "done"
        return Generation(choice["text"], usage["prompt_tokens"], usage["completion_tokens"], ended)


def _trained_context(metadata: dict[str, str]) -> int | None:
    """The context length the model was trained with (``<architecture>.context_length`` in GGUF metadata)."""
    value = metadata.get(f"{metadata.get('general.architecture', '')}.context_length")
    try:
        return int(value) if value else None
    except ValueError:
        return None


_runtimes: dict[tuple[Path, int | None, int | None], LocalRuntime] = {}
_runtimes_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free every loaded model before the interpreter tears modules down.

    Left to garbage collection at exit, llama-cpp-python's finalizers run after the modules they call are
    gone and print tracebacks.
    """
    with _runtimes_lock:
        for runtime in _runtimes.values():
            runtime.close()
        _runtimes.clear()
    # llama-cpp-python opens two /dev/null files at import and never closes them (ResourceWarnings at exit).
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


def _special_text(vocab: Llama, token: int) -> str:
    if token < 0:
        return ""
    return vocab.detokenize([token], special=True).decode("utf-8", errors="replace")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 while llama.cpp's C code runs.

    A vocabulary-only load prints a spurious context-size warning from C that ``verbose=False`` does not reach.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open(path: Path, n_ctx: int | None, n_threads: int | None) -> LocalRuntime:
    from llama_cpp import Llama

    try:
        with _native_stderr_silenced():
            vocab = Llama(str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: llama.cpp could not read this GGUF file ({exc})") from exc
    template = vocab.metadata.get("tokenizer.chat_template")
    if not template:
        raise ModelFileError(
            f"{path} has no chat template in its metadata: it is probably a base (not instruction-tuned) model, "
            "which cannot hold a conversation; use an instruct/chat GGUF"
        )
    return LocalRuntime(
        path=path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        vocab=vocab,
        template=template,
        eos_token=_special_text(vocab, vocab.token_eos()),
        bos_token=_special_text(vocab, vocab.token_bos()),
    )


def runtime_for(path: Path, *, n_ctx: int | None = None, n_threads: int | None = None) -> LocalRuntime:
    """The process-wide runtime of `path` with these settings, opened on first use.

    Raises:
        MissingDependencyError: llama-cpp-python is not installed.
        ModelFileError: llama.cpp cannot read the file, or it has no chat template.
    """
    require_runtime()
    key = (path, n_ctx, n_threads)
    with _runtimes_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = _open(path, n_ctx, n_threads)
        return runtime


@lru_cache(maxsize=64)
def _compiled_grammar(schema_json: str) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def grammar_for(schema: dict[str, Any], model_name: str) -> LlamaGrammar:
    """The llama.cpp grammar that only admits JSON matching `schema` (compiled once per schema).

    Raises:
        ModelError: llama.cpp cannot turn the schema into a grammar (a JSON-schema feature it lacks);
            not retryable, since the same schema fails the same way.
    """
    try:
        return _compiled_grammar(json.dumps(schema))  # key order matters: "tool" is generated before "arguments"
    except Exception as exc:  # llama.cpp's converter raises plain exceptions for unsupported constructs
        raise ModelError(
            f"{model_name}: cannot build a grammar from the tools' JSON schemas ({type(exc).__name__}: {exc}); "
            "simplify the tool's argument types or use LocalModel(constrained=False)",
            retryable=False,
        ) from exc
