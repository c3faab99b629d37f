"""The command line: parses options, calls the library, renders. Exit codes: 0 pass/warn, 1 fail, 2 error.

Each command lives in its own module and registers itself on the app of :mod:`._common` when imported here.
"""

from lpmbench.cli import agent, pair, plan, report  # noqa: F401 - importing registers the commands
from lpmbench.cli._common import app


def main() -> None:
    app()
