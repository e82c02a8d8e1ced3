"""The ``stillroom`` command: a thin shell over core for scripts, pipelines and CI.

Every rule lives in core; the command modules parse arguments, call one core
function and print what comes back. Named errors become one sentence on stderr
and an exit code (2 invalid input, 3 governance violation).
"""

from core.cli.base import LAZY_COMMANDS, cli, load_mapping  # noqa: F401  (command modules load on first use)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stillroom")
