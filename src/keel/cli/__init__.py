"""The ``keel`` command line: ``demo``, ``run``, ``runs``, ``trace``. Entry point: ``keel.cli.main:main``."""

from __future__ import annotations

from keel.cli.main import app

__all__ = ["app"]
