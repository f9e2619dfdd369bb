"""Opening GGUF files for llama.cpp: the process-wide cache of runtimes, and freeing them at exit.

Imported only when a local model is used, so that Keel imports without the ``local`` extra; a missing extra is a
clear `MissingDependencyError` naming the install command instead of an ImportError deep in a run.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from keel.errors import MissingDependencyError, ModelFileError
from keel.models._local_runtime import LIFECYCLE, LocalRuntime

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["INSTALL_HINT", "require_runtime", "runtime_for"]

INSTALL_HINT = "pip install 'keel-agents[local]'"


def require_runtime() -> None:
    """Raise `MissingDependencyError` with the install command when llama-cpp-python is not installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependencyError(
            f"local models run on llama-cpp-python, which is not installed; install Keel's local extra: {INSTALL_HINT}"
        )


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
        with LIFECYCLE, _native_stderr_silenced():
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
