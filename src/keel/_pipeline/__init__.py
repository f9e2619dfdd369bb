"""The governed step pipeline every pattern goes through (private: use `keel.Agent`)."""

from __future__ import annotations

from keel._pipeline.resume import resume_pipeline
from keel._pipeline.run import run_pipeline
from keel._pipeline.state import RunSpec

__all__ = ["RunSpec", "resume_pipeline", "run_pipeline"]
