"""The README's commands are commands lpmbench takes, and the documents cite only files the repository has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from lpmbench.cli import app

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
GROUP = typer.main.get_command(app)
KEYGEN_HAS_OUT = any("--out" in getattr(p, "opts", ()) for p in GROUP.commands["keygen"].params)  # type: ignore[attr-defined]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _commands(block: str) -> list[str]:
    """Each ``lpmbench ...`` command line of a code block: prompt, comment and optional ``[...]`` lines dropped,
    continued lines joined."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            part = part.strip().removeprefix("$ ")
            if part.startswith("lpmbench "):
                commands.append(part.split(" #", 1)[0].strip())
    return commands


README_COMMANDS = [c for block in _code_blocks(README) for c in _commands(block)]


def test_the_first_two_commands_are_the_one_machine_try_and_the_tests() -> None:
    blocks = _code_blocks(README)
    assert blocks[0].strip() == "pip install . && lpmbench pair --local"
    assert blocks[1].strip() == "pip install -e '.[test]' && python -m pytest"


def test_the_deploy_step_writes_the_key_with_keygen_out() -> None:
    assert "lpmbench keygen --out /etc/lpmbench/key" in README_COMMANDS
    assert "keygen >" not in README


@pytest.mark.parametrize("command", README_COMMANDS)
def test_every_readme_command_parses(command: str) -> None:
    """The command, its options and their values as the CLI parses them (nothing runs)."""
    if command.startswith("lpmbench keygen --out") and not KEYGEN_HAS_OUT:
        pytest.skip("keygen --out is made on another branch (issue 16); this test runs it once both are merged")
    name, *args = shlex.split(command)[1:]
    assert name in GROUP.commands, f"no command {name!r}"  # type: ignore[attr-defined]
    GROUP.commands[name].make_context(name, args)  # type: ignore[attr-defined]


DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES = sorted((REPO / "lpmbench").rglob("*.py"))


@pytest.mark.parametrize("path", DOCUMENTS + SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_cited_markdown_files_exist(path: Path) -> None:
    """A document or module that sends the reader to a .md file sends them somewhere real (DESIGN.md was not)."""
    text = path.read_text(encoding="utf-8")
    for cited in set(re.findall(r"[\w./-]*\b[\w-]+\.md\b", text)):
        candidates = [path.parent / cited, REPO / cited, REPO / "docs" / cited]
        assert any(c.is_file() for c in candidates), f"{path.relative_to(REPO)} cites {cited}, which is not here"
