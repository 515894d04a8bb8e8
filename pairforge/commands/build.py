"""Click commands for this area (see pairforge/cli.py)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
