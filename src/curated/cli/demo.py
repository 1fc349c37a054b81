"""CLI commands of this group (see curated.cli.COMMAND_MODULES)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to app."""
