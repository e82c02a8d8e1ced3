"""The ``stillroom`` command: a thin shell over core for scripts, pipelines and CI.

Every rule lives in core; the command modules parse arguments, call one core
function and print what comes back. Named errors become one sentence on stderr
and an exit code (2 invalid input, 3 governance violation).

``main`` first offers the command to the warm daemon (core.cli.warm), which runs
the database commands without paying for the imports again; click and the command
modules load only when the command runs in this process.
"""

from __future__ import annotations

import sys
from typing import Any

_FROM_BASE = ("cli", "LAZY_COMMANDS", "load_mapping")


def main() -> None:
    """Console-script entry point."""
    from core.cli import warm  # the warm daemon's client: sockets and json only, no click, no database layer

    code = warm.run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from core.cli.base import cli  # the command runs in this process

    cli(prog_name="stillroom")


def __getattr__(name: str) -> Any:
    """`from core.cli import cli` (and LAZY_COMMANDS, load_mapping) still works, loading core.cli.base on use."""
    if name in _FROM_BASE:
        from core.cli import base  # loaded on first use, so that `main` can reach the daemon first

        return getattr(base, name)
    raise AttributeError(f"module 'core.cli' has no attribute {name!r}")
