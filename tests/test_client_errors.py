"""What the orchestrator says when the other end is not what it expects: a name that does not resolve, a
server of another protocol on the control port, TLS at one end only, an agent without a key when a key was
given. Each peer here is real (an agent, Python's TLS) or a hostile peer written in Python that speaks what
such a server speaks; all on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import ssl
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from agent_helpers import KEY, AgentProcess, in_process_agents
from cli_runner import cli_runner

from lpmbench.cli import app
from lpmbench.net import eventloop
from lpmbench.orchestrator.client import AgentClient, PairError
from lpmbench.orchestrator.endpoint import Endpoint
from lpmbench.protocol.connection import PROTOCOL_VERSION, Connection, Failure, Role, State
from lpmbench.protocol.messages import ErrorCode

SSH_BANNER = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n"
# What nginx answers at once to a request line that starts with a NUL byte (our frame's length prefix).
NGINX_400 = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\n"
             b"Content-Length: 157\r\nConnection: close\r\n\r\n<html>...</html>")
TLS_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])  # fatal protocol_version, as some TLS servers send


async def connect_error(endpoint: Endpoint, key: bytes | None = KEY, **kw: object) -> PairError:
    client = AgentClient(endpoint, key, **kw)  # type: ignore[arg-type]
    try:
        await client.connect()
    except PairError as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError(f"connected to {endpoint.label}")


@contextlib.asynccontextmanager
async def stranger(first_words: bytes | None, answer: bytes | None = None) -> AsyncIterator[Endpoint]:
    """A server of another protocol: says ``first_words`` on connect (a banner), or ``answer`` to whatever it
    is sent first, then hangs up."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if first_words:
            writer.write(first_words)
        if answer:
            await reader.read(1)
            writer.write(answer)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


# --- names --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,says", [
    # The C library refuses "vios1," (a comma pasted along) without asking DNS: no traffic leaves loopback.
    ("vios1,", "the name 'vios1,' does not resolve"),
    ("msp1..lab", "'msp1..lab' is not a valid host name"),
])
def test_a_host_name_typo_says_the_name_does_not_resolve(name: str, says: str) -> None:
    error = eventloop.run(connect_error(Endpoint(name, 7520)), "asyncio")
    assert error.code is ErrorCode.UNREACHABLE
    assert says in error.message and "start 'lpmbench agent'" not in error.message, error.message


def test_pair_names_the_typo_and_exits_2(key_file: str) -> None:
    result = cli_runner().invoke(app, ["pair", "vios1,", "vios2,", "--key-file", key_file, "--duration", "1"])
    assert result.exit_code == 2, result.output
    assert "does not resolve" in result.output and "start 'lpmbench agent'" not in result.output, result.output


# --- another protocol on the control port -----------------------------------------------------------------

def test_an_ssh_server_on_the_control_port_is_named_by_its_banner() -> None:
    async def main() -> PairError:
        async with stranger(SSH_BANNER) as end:
            return await connect_error(end)

    error = eventloop.run(main(), "asyncio")
    assert error.message == (f"127.0.0.1:{error.host.rsplit(':', 1)[1]} is not an lpmbench agent: it answered "
                             f"'SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5'; check the host and port, and that TLS "
                             f"is on at both ends or neither")
    assert "frame length" not in error.message


def test_an_http_server_on_the_control_port_is_named_by_its_answer() -> None:
    async def main() -> PairError:
        async with stranger(None, NGINX_400) as end:
            return await connect_error(end)

    error = eventloop.run(main(), "asyncio")
    assert "is not an lpmbench agent: it answered 'HTTP/1.1 400 Bad Request'" in error.message, error.message


def test_an_http_server_that_waits_for_a_request_line_is_not_called_an_agent() -> None:
    """Python's http.server waits for a request line (our hello has no newline): the handshake times out,
    and the message says nothing answered like an agent rather than only "no message for 5 s"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        error = eventloop.run(connect_error(Endpoint("127.0.0.1", server.server_address[1])), "asyncio")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert error.code is ErrorCode.TIMEOUT
    assert "did not answer the handshake" in error.message and "lpmbench agent" in error.message, error.message


def test_banners_are_quoted_without_control_characters() -> None:
    conn = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    conn.data_to_send()
    conn.receive_data(b"EVIL\x1b]0;pwned\x07\x1b[2J banner\r\nmore")
    event = conn.next_event()
    assert isinstance(event, Failure) and "it answered 'EVIL?]0;pwned??[2J banner'" in event.message
    assert not any(ord(c) < 32 or ord(c) == 127 for c in event.message)


def test_a_long_banner_is_cut() -> None:
    conn = Connection(Role.CLIENT, KEY)
    conn.data_to_send()
    conn.receive_data(b"X" * 5000)
    event = conn.next_event()
    assert isinstance(event, Failure) and "'" + "X" * 60 + "...'" in event.message and len(event.message) < 300


def test_binary_first_bytes_with_a_plausible_length_are_no_agent() -> None:
    """A length prefix that fits, then no JSON object: said at once, not after a 5 s wait for the body."""
    conn = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    conn.data_to_send()
    conn.receive_data(bytes([0, 0, 1, 0, 0xDE, 0xAD, 0xBE, 0xEF]))
    event = conn.next_event()
    assert event == Failure(ErrorCode.PROTOCOL, "msp-b:7520 is not an lpmbench agent: its first bytes are 00 00 01 "
                                                "00 de ad be ef; check the host and port, and that TLS is on at "
                                                "both ends or neither")


# --- TLS at one end only --------------------------------------------------------------------------------

def test_a_tls_orchestrator_and_a_plain_agent_say_tls_is_on_at_one_end_only(run_async) -> None:
    async def main() -> PairError:
        async with in_process_agents(count=1) as (ends, _):
            return await connect_error(ends[0], tls=ssl.create_default_context())

    error = run_async(main())
    assert error.code is ErrorCode.TLS
    assert "TLS is on at one end only" in error.message and "--tls-ca" in error.message, error.message
    assert "WRONG_VERSION_NUMBER" not in error.message


def client_hello() -> bytes:
    """The first bytes a real TLS client (Python's ssl) sends."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="msp-b")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_plain_agent_names_a_tls_client_hello() -> None:
    """What the agent logs (and answers) when an orchestrator with --tls reaches its plain control port."""
    agent = Connection(Role.AGENT, KEY)
    agent.receive_data(client_hello())
    event = agent.next_event()
    assert isinstance(event, Failure) and agent.state is State.CLOSED
    assert event.message.startswith("a TLS client on this agent's plain control port: TLS is on at one end only")
    assert "frame length" not in event.message


def test_a_plain_orchestrator_names_a_tls_record_from_the_agent() -> None:
    async def main() -> PairError:
        async with stranger(None, TLS_ALERT) as end:
            return await connect_error(end)

    error = eventloop.run(main(), "asyncio")
    assert error.code is ErrorCode.TLS and "answered in TLS: TLS is on at one end only" in error.message, error


def test_a_tls_agent_answers_a_tls_orchestrator_over_sealed_frames(run_async) -> None:
    """TLS stays optional and composes with the sealed frames: a whole handshake and a command over TLS."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> object:
        async with in_process_agents(count=1, ssl=server) as (ends, _):
            client = AgentClient(ends[0], KEY, tls=client_ctx)
            await client.connect()
            await client.send("abort", run_id="none")  # a sealed command the agent takes without an answer
            await client.close()
            return client.facts

    assert run_async(main())


# --- a key means authentication ---------------------------------------------------------------------------

def frame(obj: dict[str, object]) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


@contextlib.asynccontextmanager
async def unauthenticated_agent() -> AsyncIterator[Endpoint]:
    """A peer that answers any hello with "no auth", then with ready and made-up facts: a hostile agent, or a
    relay that downgrades a real one. Without the key it can do nothing else."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the client's hello
        writer.write(frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": "a" * 64, "auth": "none"}))
        await reader.read(65536)  # its auth
        writer.write(frame({"type": "ready", "agent": {"hostname": "msp-b"}}))
        await writer.drain()
        await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def test_a_key_and_insecure_refuse_an_agent_that_says_no_auth() -> None:
    """--key-file with --insecure used to accept an agent answering "auth none", and then its every report."""

    async def main() -> PairError:
        async with unauthenticated_agent() as end:
            return await connect_error(end, KEY, allow_insecure=True)

    error = eventloop.run(main(), "asyncio")
    assert error.code is ErrorCode.AUTH
    assert "runs without a key" in error.message and "restart the agent with --key-file" in error.message
    assert "drop --key-file to test a lab pair without auth" in error.message


def test_without_a_key_the_same_agent_is_accepted() -> None:
    """The refusal is about the key: a keyless orchestrator (pair --insecure) still talks to keyless agents."""

    async def main() -> dict[str, object]:
        async with unauthenticated_agent() as end:
            client = AgentClient(end, None, allow_insecure=True)
            await client.connect()
            await client.close()
            return client.facts

    assert eventloop.run(main(), "asyncio") == {"hostname": "msp-b"}


def test_pair_with_key_file_and_insecure_exits_2_against_an_insecure_agent(key_file: str, tmp_path: Path) -> None:
    procs = [AgentProcess(bind, None, tmp_path, extra=["--insecure"]) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        sender, receiver = (p.wait_ready() for p in procs)
        result = cli_runner().invoke(app, ["pair", sender.label, receiver.label, "--key-file", key_file,
                                           "--insecure", "--duration", "0.5"])
        # without a key the same pair runs: the refusal is about the key, not the agents
        plain = cli_runner().invoke(app, ["pair", sender.label, receiver.label, "--insecure", "--duration", "0.5"])
    finally:
        for proc in procs:
            proc.stop()
    assert result.exit_code == 2, result.output
    # refused before any agent is asked (the library refuses such an agent too: the test above)
    assert "--key-file and --insecure contradict each other" in result.output, result.output
    assert "Verdict" not in result.output, result.output
    assert plain.exit_code in (0, 1) and "Verdict" in plain.output, plain.output
