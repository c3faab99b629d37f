"""Strings from a peer reach the terminal and the logs without terminal control, line breaks or unbounded length.

Cleaning happens where messages are decoded, so it holds for every string of every message, in both
directions, and for a stranger with no key whose ``error`` frame takes the place of the handshake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from agent_helpers import in_process_agents
from cli_runner import cli_runner

from lpmbench.cli import app
from lpmbench.net import keys
from lpmbench.protocol.messages import MAX_DEPTH, MAX_VALUES, Error, ErrorCode, Ready, decode_body
from lpmbench.protocol.text import clean

HEADER = struct.Struct(">I")
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m\nFAKE LINE\r\u202egnp.exe\u2066\x00\x7f\x9b31m\ud800"
UNSAFE = set("\x1b\x07\n\r\x00\x7f\x9b\u202e\u2066\ud800")
runner = cli_runner()


def frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode()
    return HEADER.pack(len(body)) + body


# --- clean() ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("plain text", "plain text"),
    ("\x1b[1;31mred\x1b[0m", "red"),  # CSI removed whole: no "[31m" debris
    ("\x1b]0;title\x07after", "after"),  # OSC (window title) with its text
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
    ("a\nb\r\nc\td", "a b  c d"),  # line breaks and tabs become spaces
    ("\x9b2Jclear", "clear"),  # the C1 form of CSI
    ("bell\x07 nul\x00 del\x7f", "bell? nul? del?"),
    ("\u202eabc\u2066", "?abc?"),  # bidi override and isolate
    ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),  # printable non-ASCII stays
    ("\ud800", "?"),  # a lone surrogate cannot even be written to a log
])
def test_clean_strips_control(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_clean_bounds_length() -> None:
    assert clean("x" * 5000, 100) == "x" * 97 + "..."
    assert len(clean("\x1b[0m" * 100_000 + "x" * 100, 50)) <= 50  # a megabyte of escapes costs a bounded prefix
    assert clean("short", 100) == "short"


# --- at the decoder ---------------------------------------------------------------------------------------

def test_every_string_in_a_decoded_message_is_clean_keys_included() -> None:
    body = json.dumps({"type": "ready", "agent": {"hostname": HOSTILE, HOSTILE: [HOSTILE, {"os": HOSTILE}],
                                                  "long": "y" * 100_000}}).encode()
    message = decode_body(body)
    assert isinstance(message, Ready)
    dumped = json.dumps(message.agent, ensure_ascii=False)
    assert not UNSAFE & set(dumped)
    assert len(message.agent["long"]) <= 1024


@pytest.mark.parametrize("body,problem", [
    ('{"type":"result","run_id":"r","role":"sender","data":{"bytes":' + "9" * 400 + "}}", "64 bits"),
    ('{"type":"result","run_id":"r","role":"sender","data":{"x":' + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)
     + "}}", "deeper"),
    ('{"type":"result","run_id":"r","role":"sender","data":{"x":[' + ",".join(["0"] * (MAX_VALUES + 1)) + "]}}",
     "values"),
    ('{"type":"result","run_id":"r","role":"sender","data":{"x":NaN}}', "not valid JSON"),
])
def test_numbers_and_shapes_no_report_has_are_refused_at_decode(body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_body(body.encode())


# --- end to end: a stranger with no key, an agent's log -----------------------------------------------------

class Stranger:
    """Answers every connection's first bytes with one error frame holding ``message``, then hangs up."""

    def __init__(self, bind: str, message: str) -> None:
        self.payload = frame({"type": "error", "code": "auth", "message": message})
        self.listener = socket.create_server((bind, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            with sock:
                sock.settimeout(5)
                try:
                    sock.recv(4096)
                    sock.sendall(self.payload)
                except OSError:
                    pass

    def __enter__(self) -> Stranger:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def test_a_strangers_error_frame_reaches_the_terminal_clean(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    keys.write_key(str(key_file), keys.generate_key())
    with Stranger("127.0.0.1", HOSTILE + " " + "z" * 5000) as stranger:
        target = f"127.0.0.1:{stranger.port}"
        outcome = runner.invoke(app, ["pair", target, target, "--key-file", str(key_file), "--duration", "0.5"])
    assert outcome.exit_code == 2
    assert "FAKE LINE" in outcome.output  # shown, as text within the error's own line
    assert outcome.output.count("\n") == 1 and outcome.output.endswith("\n"), repr(outcome.output)
    assert not UNSAFE & set(outcome.output[:-1]), repr(outcome.output)
    assert "z" * 1100 not in outcome.output  # bounded


def test_a_strangers_error_frame_reaches_the_agent_log_clean(run_async: Callable[..., Any],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with in_process_agents() as (ends, _):
            reader, writer = await asyncio.open_connection(ends[0].host, ends[0].port)
            writer.write(frame({"type": "error", "code": "auth", "message": HOSTILE}))
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)  # the agent hangs up after logging
            writer.close()

    with caplog.at_level(logging.INFO):
        run_async(scenario())
    logged = [r.getMessage() for r in caplog.records if "FAKE LINE" in r.getMessage()]
    assert logged, [r.getMessage() for r in caplog.records]
    assert not UNSAFE & set("".join(logged)), logged


def test_an_orchestrators_strings_reach_the_agent_clean() -> None:
    """The other direction: what a client sends an agent (an abort reason lands in its log and result, a data
    host in its connect errors) is cleaned by the same decoder."""
    abort = decode_body(json.dumps({"type": "abort", "run_id": HOSTILE, "reason": HOSTILE}).encode())
    start = decode_body(json.dumps({"type": "start", "run_id": "r", "token": "0" * 32, "host": HOSTILE, "port": 9,
                                    "streams": 1, "duration": 1, "interval": 1,
                                    "options": {"send_method": HOSTILE}}).encode())
    texts = [abort["run_id"], abort["reason"], start["host"], start["options"]["send_method"]]
    assert not UNSAFE & set("".join(texts)), texts


def test_our_own_error_codes_survive_cleaning() -> None:
    message = Error(ErrorCode.AUTH, "line one\nline two")
    assert message.code is ErrorCode.AUTH and message.message == "line one line two"
