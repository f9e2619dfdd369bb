"""llama.cpp in this process: one GGUF file's chat template, tokenizer, grammars and bounded generation.

`llama_cpp` is imported lazily (see `_local_loading`), so Keel imports without the ``local`` extra.

Two loads per file: a vocabulary-only load (milliseconds, even for a multi-gigabyte file) that counts prompt
tokens and reads the chat template before any call, and the full model, loaded on the first generation in a
worker thread. A loaded model is not thread-safe, so generations on it are serialized by its lock; each one
is bounded by ``max_tokens``, the context window, a wall-clock deadline and a cancel flag that llama.cpp checks
during every decode, and a repetition check after every token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import ModelError, ModelFileError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

__all__ = [
    "DEFAULT_CONTEXT_CAP",
    "LIFECYCLE",
    "Generation",
    "LocalRuntime",
    "Stop",
    "degenerate",
    "grammar_for",
]

DEFAULT_CONTEXT_CAP = 8192
"""The context window used when none is given: the model's trained window, capped here because the KV cache
of a 128k-token window would take gigabytes of memory that a support-desk turn never needs."""


Stop = Literal["done", "length", "deadline", "cancelled", "repetition"]

REPETITION_WINDOW = 96
"""Generated tokens that must repeat one short cycle before a generation counts as degenerate."""
REPETITION_MAX_PERIOD = 32
"""The longest cycle (in tokens) looked for: a date, a phrase, a list item, a run of newlines."""


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


@dataclass(frozen=True, slots=True)
class _Watch:
    """The bounds of the generation in progress, read by llama.cpp's abort callback during every decode."""

    deadline: float
    cancel: threading.Event

    def expired(self) -> Stop | None:
        if self.cancel.is_set():
            return "cancelled"
        if time.monotonic() >= self.deadline:
            return "deadline"
        return None

    def acquire(self, lock: threading.Lock) -> bool:
        """Take `lock`, giving up when the watch expires (polled, so a cancelled caller does not wait on)."""
        while not lock.acquire(timeout=_LOCK_POLL_S):
            if self.expired() is not None:
                return False
        return True


_LOCK_POLL_S = 0.05
LIFECYCLE = threading.Lock()
"""Serializes every llama.cpp load and free in the process: with ``verbose=False`` llama-cpp-python redirects
the process's stdout and stderr while it loads, and two overlapping loads would restore each other's
redirection, silencing the process for good."""


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
    _watch: _Watch | None = None
    _abort_callback: Any = None
    """The ctypes callback llama.cpp calls during decoding; kept here so it is not garbage-collected."""

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
        # Chat templates write the BOS token themselves when the model wants one. A lone surrogate (bad
        # bytes decoded leniently upstream) cannot be encoded; it becomes U+FFFD rather than failing the run.
        data = prompt.encode("utf-8", errors="replace")
        tokens: list[int] = self.vocab.tokenize(data, add_bos=False, special=True)
        return tokens

    def grammar_is_valid(self, grammar: LlamaGrammar) -> bool:
        """Whether llama.cpp's C parser accepts `grammar` (an invalid one would crash the sampler, not raise)."""
        import llama_cpp

        vocab = self.vocab._model.vocab  # the C vocabulary the sampler is built for
        sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def close(self) -> None:
        """Free the model and the vocabulary (llama.cpp memory outside Python's heap)."""
        with self._load_lock, LIFECYCLE:
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
                    kwargs["n_threads"] = kwargs["n_threads_batch"] = self.n_threads
                try:
                    with LIFECYCLE:
                        self._model = Llama(str(self.path), **kwargs)
                except (ValueError, RuntimeError) as exc:
                    raise ModelFileError(f"{self.path}: llama.cpp could not load the model ({exc})") from exc
                self._install_abort(self._model)
            return self._model

    def _install_abort(self, model: Llama) -> None:
        """Let llama.cpp stop mid-decode (a long prompt takes seconds to read) once the watch expires."""
        import llama_cpp

        @llama_cpp.ggml_abort_callback  # type: ignore[untyped-decorator]
        def should_abort(_data: Any) -> bool:
            watch = self._watch
            return watch is not None and watch.expired() is not None

        self._abort_callback = should_abort
        llama_cpp.llama_set_abort_callback(model.ctx, should_abort, None)

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
        """Generate a reply to `tokens` within `max_tokens`, `deadline` (monotonic) and `cancel`.

        The deadline and the cancel flag are checked by llama.cpp itself during every decode (the prompt's
        too), so neither a long prompt nor a long reply outlives them; a degenerate repetition is checked after
        every token.

        Raises:
            ModelError: llama.cpp failed or refused the prompt for a reason other than the bounds.
        """
        from llama_cpp import StoppingCriteriaList

        watch = _Watch(deadline, cancel)
        generated = [0]
        looped = [False]

        def repeating(ids: Any, _logits: Any) -> bool:
            generated[0] = len(ids) - len(tokens)
            looped[0] = looped[0] or degenerate(ids[len(tokens) :])
            return looped[0]

        if not watch.acquire(self.lock):
            return Generation("", 0, 0, watch.expired() or "deadline")  # another generation held the model
        try:
            if (early := watch.expired()) is not None:
                return Generation("", 0, 0, early)
            model = self.model()
            self._watch = watch
            # Every prompt is read from an empty context: reusing the cached prefix of the previous call splits
            # the prompt into other batches, whose float rounding can flip a greedy choice, and the same request
            # must get the same reply (tests, replays, bug reports). A 135M model rereads 1,000 tokens in ~0.2 s.
            model.reset()  # type: ignore[no-untyped-call]
            try:
                completion: Any = model.create_completion(
                    tokens,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                    grammar=grammar,
                    stop=[self.eos_token] if self.eos_token else [],
                    stopping_criteria=StoppingCriteriaList([repeating]),
                )
            except (RuntimeError, ValueError) as exc:
                model.reset()  # type: ignore[no-untyped-call]  # an aborted decode leaves a half-filled context: start clean next time
                stop = watch.expired()
                if stop is None:
                    raise ModelError(f"{self.path.name}: llama.cpp failed: {exc}", retryable=False) from exc
                return Generation("", len(tokens), max(generated[0], 0), stop)
            finally:
                self._watch = None
        finally:
            self.lock.release()
        choice = completion["choices"][0]
        usage = completion["usage"]
        ended: Stop = "repetition" if looped[0] else "length" if choice["finish_reason"] == "length" else "done"
        return Generation(choice["text"], usage["prompt_tokens"], usage["completion_tokens"], ended)


def _trained_context(metadata: dict[str, str]) -> int | None:
    """The context length the model was trained with (``<architecture>.context_length`` in GGUF metadata)."""
    value = metadata.get(f"{metadata.get('general.architecture', '')}.context_length")
    try:
        return int(value) if value else None
    except ValueError:
        return None


@lru_cache(maxsize=64)
def _compiled_grammar(schema_json: str) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


_valid_grammars: set[str] = set()


def grammar_for(schema: dict[str, Any], model_name: str, runtime: LocalRuntime) -> LlamaGrammar:
    """The llama.cpp grammar that only admits JSON matching `schema`, compiled and checked once per schema.

    Raises:
        ModelError: llama.cpp cannot turn the schema into a valid grammar (a JSON-schema feature its converter
            lacks); not retryable, since the same schema fails the same way.
    """
    schema_json = json.dumps(schema)  # key order matters: "tool" is generated before "arguments"
    try:
        grammar = _compiled_grammar(schema_json)
    except Exception as exc:  # llama.cpp's converter raises plain exceptions for unsupported constructs
        raise _grammar_error(model_name, f"{type(exc).__name__}: {exc}") from exc
    if schema_json not in _valid_grammars:
        # The converter can emit text the C parser rejects; a sampler built from it would crash the process.
        if not runtime.grammar_is_valid(grammar):
            raise _grammar_error(model_name, "llama.cpp's parser rejected the grammar made from them")
        _valid_grammars.add(schema_json)
    return grammar


def _grammar_error(model_name: str, detail: str) -> ModelError:
    return ModelError(
        f"{model_name}: cannot build a grammar from the tools' JSON schemas ({detail}); simplify the argument "
        "or output types, or use LocalModel(constrained=False)",
        retryable=False,
    )
