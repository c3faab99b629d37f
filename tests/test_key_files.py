"""Key files another user could read or replace are refused, as ssh's StrictModes does; keygen --out makes them.

The suite runs as root here, so "another user" is made with chown to uid 65534 (nobody); those tests are skipped
for an unprivileged user, who cannot give a file away.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli_runner

from lpmbench.cli import app
from lpmbench.net import keys

OTHER_UID = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
runner = cli_runner()


@pytest.fixture
def safe_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "etc-lpmbench"
    folder.mkdir(mode=0o700)
    return folder


def make_key(folder: Path, name: str = "key") -> Path:
    path = folder / name
    keys.write_key(str(path), keys.generate_key())
    return path


def refusal(path: Path) -> str:
    with pytest.raises(keys.KeyFileError) as caught:
        keys.load_key(str(path))
    return str(caught.value)


def test_a_private_key_in_a_private_folder_loads(safe_dir: Path) -> None:
    path = make_key(safe_dir)
    assert len(keys.load_key(str(path))) == keys.KEY_BYTES


@needs_root
def test_a_key_owned_by_another_user_is_refused(safe_dir: Path) -> None:
    path = make_key(safe_dir)
    os.chown(path, OTHER_UID, -1)
    message = refusal(path)
    assert "owned by" in message and f"chown root {path}" in message


def test_a_key_readable_by_others_is_still_refused(safe_dir: Path) -> None:
    path = make_key(safe_dir)
    os.chmod(path, 0o644)
    assert f"chmod 600 {path}" in refusal(path)


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777])
def test_a_folder_others_may_write_is_refused(safe_dir: Path, mode: int) -> None:
    path = make_key(safe_dir)
    os.chmod(safe_dir, mode)
    message = refusal(path)
    assert f"chmod go-w {safe_dir}" in message and "replace" in message


def test_a_writable_folder_higher_up_is_refused(tmp_path: Path) -> None:
    outer = tmp_path / "shared"
    inner = outer / "lpmbench"
    inner.mkdir(parents=True, mode=0o700)
    path = make_key(inner)
    os.chmod(outer, 0o777)  # whoever may write here can rename 'lpmbench' away and put their own in its place
    assert f"chmod go-w {outer}" in refusal(path)


def test_a_sticky_shared_folder_like_tmp_is_accepted(tmp_path: Path) -> None:
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # others may add files but cannot rename or remove ours
    path = make_key(shared)
    assert len(keys.load_key(str(path))) == keys.KEY_BYTES


@needs_root
def test_a_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    path = make_key(folder)
    os.chown(folder, OTHER_UID, -1)
    message = refusal(path)
    assert str(folder) in message and "chown root" in message


def test_a_link_in_a_writable_folder_is_refused(safe_dir: Path, tmp_path: Path) -> None:
    path = make_key(safe_dir)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    link = open_dir / "key"
    link.symlink_to(path)  # anyone may point this link at a key of their own
    assert f"chmod go-w {open_dir}" in refusal(link)


def test_a_link_to_a_key_in_a_writable_folder_is_refused(safe_dir: Path, tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    target = make_key(open_dir)
    os.chmod(open_dir, 0o777)
    link = safe_dir / "key"
    link.symlink_to(target)
    assert f"chmod go-w {open_dir}" in refusal(link)


def test_a_fifo_in_place_of_the_key_is_refused_without_hanging(safe_dir: Path) -> None:
    path = safe_dir / "key"
    os.mkfifo(path, 0o600)
    outcome: list[Any] = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(keys.KeyFileError, keys.load_key,
                                                                            str(path))), daemon=True)
    reader.start()
    reader.join(5)
    assert outcome and "not a regular file" in str(outcome[0].value)


# --- keygen --out -----------------------------------------------------------------------------------------

def test_keygen_without_out_still_prints_the_key() -> None:
    result = runner.invoke(app, ["keygen"])
    assert result.exit_code == 0 and len(bytes.fromhex(result.stdout.strip())) == keys.KEY_BYTES


def test_keygen_out_makes_the_folder_and_a_private_key(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "lpmbench" / "key"
    old_umask = os.umask(0)  # the most permissive umask: the modes must not depend on it
    try:
        result = runner.invoke(app, ["keygen", "--out", str(path)])
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the key is not shown where a terminal log would keep it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(keys.load_key(str(path))) == keys.KEY_BYTES


def test_keygen_out_creates_the_file_at_mode_600_from_the_first_instant(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every open that creates the file asks for 600 and O_EXCL: there is no moment at 644 to read it in."""
    creating: list[tuple[int, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            creating.append((flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    path = tmp_path / "key"
    for argv in (["keygen", "--out", str(path)], ["keygen", "--out", str(path), "--force"]):
        assert runner.invoke(app, argv).exit_code == 0
    assert len(creating) == 2
    assert all(mode == 0o600 and flags & os.O_EXCL for flags, mode in creating)


def test_keygen_out_refuses_to_overwrite_a_key_without_force(tmp_path: Path) -> None:
    path = tmp_path / "key"
    first = runner.invoke(app, ["keygen", "--out", str(path)])
    assert first.exit_code == 0
    before = path.read_text()
    again = runner.invoke(app, ["keygen", "--out", str(path)])
    assert again.exit_code == 2 and "--force" in again.output
    assert path.read_text() == before
    forced = runner.invoke(app, ["keygen", "--out", str(path), "--force"])
    assert forced.exit_code == 0 and path.read_text() != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary file left behind


def test_keygen_out_warns_when_the_folder_would_make_agents_refuse_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    result = runner.invoke(app, ["keygen", "--out", str(folder / "key")])
    assert result.exit_code == 0
    assert f"chmod go-w {folder}" in result.output
