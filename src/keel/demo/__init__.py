"""The demo agents ``keel demo`` runs: offline, over a small bundled dataset."""

from __future__ import annotations

from keel.demo.support import DEMO_TASK, SupportDesk, build_agent, scripted_model, support_tools

__all__ = ["DEMO_TASK", "SupportDesk", "build_agent", "scripted_model", "support_tools"]
