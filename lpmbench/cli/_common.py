"""What every command shares: the typer app, exit codes, error output, key loading and option parsing.

Command modules import only this module from the CLI; :mod:`lpmbench.cli` registers them.
Exit codes: 0 pass/warn, 1 fail, 2 usage or runtime error.
"""

import os
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from lpmbench import __version__
from lpmbench.analysis import units
from lpmbench.net import keys

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Is the network between two PowerVM MSPs fit for Live Partition Mobility, and if not, why?")
err = Console(stderr=True, soft_wrap=True)


def die(message: str) -> typer.Exit:
    err.print(f"[bold red]lpmbench:[/bold red] {escape(message)}", highlight=False)
    return typer.Exit(EXIT_ERROR)


def _version(value: bool) -> None:
    if value:
        print(f"lpmbench {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    pass


@app.command()
def keygen(
    out: Annotated[Optional[str], typer.Option(
        "--out", metavar="FILE", help="Write the key to FILE (mode 600 from the start; its folder is made mode 700 "
                                      "if missing) instead of printing it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="With --out: replace an existing key file.")] = False,
) -> None:
    """Make a new random key (32 bytes, hex). The same key goes on every agent and on the orchestrator."""
    key = keys.generate_key()
    if out is None:
        print(key)
        return
    _write_new_key(out, key, force)
    err.print(f"lpmbench: wrote a new key to {escape(out)} (mode 600)", highlight=False)
    try:  # the folder it landed in may let others replace it: say so now, not when an agent refuses it
        keys.load_key(out)
    except keys.KeyFileError as exc:
        err.print(f"[bold yellow]lpmbench: warning:[/bold yellow] {escape(str(exc))}", highlight=False)


def _write_new_key(path: str, key: str, force: bool) -> None:
    """The key in ``path``, never readable by others, not even for a moment; an existing key only with --force."""
    try:
        _make_private_folders(os.path.dirname(os.path.abspath(path)))
        keys.write_key(path, key, replace=force)
    except FileExistsError:
        raise die(f"{path} exists; keep it, or pass --force to replace it (every agent then needs the new key)") \
            from None
    except OSError as exc:
        raise die(f"cannot write the key to {path}: {exc.strerror or exc}") from None


def _make_private_folders(folder: str) -> None:
    """``folder`` and every missing parent, each mode 700 (os.makedirs gives the parents the umask's mode)."""
    missing = []
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)


def load_key_or_die(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        return keys.load_key(path)
    except keys.KeyFileError as exc:
        raise die(str(exc)) from None


def parse_or_die(parser: Any, text: str, option: str) -> Any:
    try:
        return parser(text)
    except (ValueError, TypeError) as exc:
        raise die(f"{option}: {exc}") from None


def seconds_or_die(text: str, option: str, minimum: float, maximum: float) -> float:
    """A run length in seconds (``10``, ``10s``, ``2m``, ``1h``): a bare number is seconds, as the option's
    help says; out of [minimum, maximum] is exit 2 naming the option."""
    seconds = parse_or_die(units.parse_duration_seconds, text, option)
    if not minimum <= seconds <= maximum:
        raise die(f"{option} {text.strip()}: must be from {units.format_duration(minimum)} to "
                  f"{units.format_duration(maximum)}")
    return float(seconds)


def check_output_path(path: str, option: str) -> None:
    """Before any work is done: a file can be written at ``path`` (its folder exists and takes new files, and it
    is not itself a folder). Reports are written beside their path and renamed into place, so the folder's
    permission is what counts."""
    if os.path.isdir(path):
        raise die(f"{option} {path}: that is a folder; give a file name, e.g. {os.path.join(path, 'report.html')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise die(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise die(f"{option} {path}: cannot create files in {folder} (permission denied)")
