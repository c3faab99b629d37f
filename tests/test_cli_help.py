"""``--help`` shows the help texts as written: square brackets are text, never markup that vanishes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer

from lpmbench.cli import app

COMMAND = typer.main.get_command(app)
COMMANDS = sorted(COMMAND.commands)  # type: ignore[attr-defined] - the app is a group of commands
BRACKETED = re.compile(r"\[[^\]]*\]")


def _help(*args: str) -> str:
    """The real help output, as a user's terminal of 80 columns gets it, with runs of whitespace as one space
    (the help column wraps)."""
    proc = subprocess.run([sys.executable, "-m", "lpmbench", *args, "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "80", "TERM": "dumb"})
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def test_the_named_papercuts_keep_their_brackets() -> None:
    text = _help("pair")
    assert "[default: 1, or the duration when shorter]" in text
    assert "(opens offline, no extra needed)" in text


@pytest.mark.parametrize("name", COMMANDS)
def test_every_bracket_in_a_help_text_reaches_the_screen(name: str) -> None:
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    written = [part for param in command.params for part in BRACKETED.findall(getattr(param, "help", None) or "")]
    written += BRACKETED.findall(command.help or "")
    text = _help(name)
    for part in written:
        assert " ".join(part.split()) in text, f"{name} --help lost {part!r}"
