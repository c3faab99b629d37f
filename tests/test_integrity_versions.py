"""A mixed pair (protocol 2 on one side, 3 on the other) fails with advice naming the side to upgrade, in both
directions, never with garbage: hellos and version errors stay plain JSON in every version.

The protocol-2 side is the real thing where the repository's history is at hand: lpmbench as of the last
protocol-2 commit, exported with ``git archive`` and run as an agent or as ``pair``.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import REPO, AgentProcess

from lpmbench.net import eventloop, keys
from lpmbench.orchestrator.client import AgentClient, PairError
from lpmbench.orchestrator.endpoint import Endpoint
from lpmbench.orchestrator.local import ready_port, stop_process
from lpmbench.protocol.connection import PROTOCOL_VERSION, Connection, Failure, Role
from lpmbench.protocol.messages import Error, ErrorCode, decode_body

KEY = bytes(range(32))
HEADER = struct.Struct(">I")
PROTOCOL_2_COMMIT = "c1fdc87b6ae5755ba7fd326b0dd3911d8513fc25"  # the last commit that spoke protocol 2
START_TIMEOUT_S = 20.0
PAIR_TIMEOUT_S = 60.0
# How a protocol-2 orchestrator reads an agent's version refusal (its connection.py, _AGENT_VERSION_RE).
V2_CLIENT_VERSION_RE = re.compile(r"this (?:side|agent) speaks (?:protocol )?(\d{1,6})")


def frame(obj: dict[str, object]) -> bytes:
    body = json.dumps(obj).encode()
    return HEADER.pack(len(body)) + body


# --- without sockets: what each side says -------------------------------------------------------------

def test_this_orchestrator_tells_a_protocol_2_agents_hello_to_upgrade_the_agent() -> None:
    client = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    client.data_to_send()
    # a protocol-2 agent's hello, as it was: the same fields, an older version
    client.receive_data(frame({"type": "hello", "version": 2, "nonce": "a" * 64, "auth": "hmac-sha256",
                               "mac": "0" * 64}))
    assert client.next_event() == Failure(ErrorCode.VERSION, "agent msp-b:7520 speaks protocol 2, this orchestrator "
                                                             "3: upgrade the agent on msp-b:7520")


def test_this_agent_answers_a_protocol_2_hello_in_plain_json_the_old_client_understands() -> None:
    agent = Connection(Role.AGENT, KEY)
    agent.receive_data(frame({"type": "hello", "version": 2, "nonce": "c" * 64, "auth": "hmac-sha256"}))
    event = agent.next_event()
    assert isinstance(event, Failure) and event.code is ErrorCode.VERSION
    wire = agent.data_to_send()
    (length,) = HEADER.unpack_from(wire)
    assert len(wire) == HEADER.size + length  # one frame, no tag: nothing is sealed before the handshake ends
    refusal = decode_body(wire[HEADER.size:])
    assert refusal == Error(ErrorCode.VERSION, "this agent speaks protocol 3, the orchestrator 2: upgrade lpmbench "
                                               "on the orchestrator's host")
    found = V2_CLIENT_VERSION_RE.search(refusal.message)
    assert found is not None and int(found.group(1)) == PROTOCOL_VERSION


# --- the real protocol-2 code ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def protocol_2_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lpmbench as of the last protocol-2 commit, from this repository's history (skipped without it)."""
    probe = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PROTOCOL_2_COMMIT}^{{commit}}"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the repository's history (git) is not at hand")
    tree = tmp_path_factory.mktemp("protocol2")
    archive = tree / "tree.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), PROTOCOL_2_COMMIT, "lpmbench"],
                   check=True, timeout=60)
    with tarfile.open(archive) as tar:
        tar.extractall(tree)  # noqa: S202 - our own repository's archive
    return tree


def old_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


class OldAgent:
    """A protocol-2 agent process (its pure-Python data plane: the archive has no built extension)."""

    def __init__(self, tree: Path, key_file: str, log: Path) -> None:
        argv = [sys.executable, "-m", "lpmbench", "agent", "--bind", "127.0.0.2", "--port", "0", "--key-file",
                key_file, "--data-ports", "0-0", "--metrics-port", "0"]
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, env=old_env(tree), cwd=str(tree))
        self.endpoint = Endpoint("127.0.0.2", self._wait_ready())

    def _wait_ready(self) -> int:
        port, _ = ready_port(self.proc, START_TIMEOUT_S)
        if port is not None:
            return port
        self.stop()
        raise RuntimeError("the protocol-2 agent did not start")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


@pytest.fixture
def old_agent(protocol_2_tree: Path, key_file: str, tmp_path: Path) -> Iterator[OldAgent]:
    agent = OldAgent(protocol_2_tree, key_file, tmp_path / "old-agent.log")
    try:
        yield agent
    finally:
        agent.stop()


def test_this_orchestrator_and_a_protocol_2_agent(old_agent: OldAgent, key_file: str) -> None:
    async def main() -> PairError:
        client = AgentClient(old_agent.endpoint, keys.load_key(key_file))
        try:
            await client.connect()
        except PairError as exc:
            return exc
        finally:
            await client.close()
        raise AssertionError("a protocol-2 agent was accepted")

    error = eventloop.run(main(), "asyncio")
    label = old_agent.endpoint.label
    assert error.code is ErrorCode.VERSION
    assert error.message == f"agent {label} speaks protocol 2, this orchestrator 3: upgrade the agent on {label}"


def test_pair_against_a_protocol_2_agent_exits_2_saying_upgrade_the_agent(
        old_agent: OldAgent, key_file: str, tmp_path: Path) -> None:
    new_agent = AgentProcess("127.0.0.1", key_file, tmp_path).wait_ready()
    try:
        proc = subprocess.run([sys.executable, "-m", "lpmbench", "pair", new_agent.label, old_agent.endpoint.label,
                               "--key-file", key_file, "--duration", "0.5"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=PAIR_TIMEOUT_S)
    finally:
        new_agent.stop()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"upgrade the agent on {old_agent.endpoint.label}" in proc.stderr, proc.stderr


def test_a_protocol_2_pair_against_this_agent_exits_2_saying_upgrade_lpmbench_here(
        protocol_2_tree: Path, key_file: str, tmp_path: Path) -> None:
    agents = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        sender, receiver = (a.wait_ready() for a in agents)
        proc = subprocess.run([sys.executable, "-m", "lpmbench", "pair", sender.label, receiver.label,
                               "--key-file", key_file, "--duration", "0.5"], capture_output=True, text=True,
                              env=old_env(protocol_2_tree), cwd=str(protocol_2_tree), timeout=PAIR_TIMEOUT_S)
    finally:
        for agent in agents:
            agent.stop()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # the protocol-2 orchestrator reads the agent's version from its refusal and names itself as the one to upgrade
    assert "speaks protocol 3, this orchestrator 2: upgrade lpmbench on this orchestrator's host" in proc.stderr, \
        proc.stderr
