"""A hostile agent for tests: it holds the key, completes a real handshake (the protocol's own Connection) and
then sends whatever its script says, in place of the reports a real agent would send.

It answers ``arm`` with ``armed`` and ``start`` with ``started`` at once (no data moves), then sends its
script for that role. It runs in threads with blocking sockets, so an orchestrator can run in this process
(``run_pair``, or the CLI through CliRunner) and be measured. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable, Union

from lpmbench.orchestrator.endpoint import Endpoint
from lpmbench.protocol import connection as protocol
from lpmbench.protocol.messages import Abort, Arm, Armed, Bye, Message, Result, Start, Started

IO_TIMEOUT_S = 20.0  # no test waits on a hostile agent longer than this
Script = Callable[[str], list[Union[Message, bytes]]]  # run_id -> what to send; bytes go out raw


def good_final(role: str, streams: int = 2) -> dict[str, Any]:
    """A final report a real agent could send (nothing moved fast, but every field well formed)."""
    samples = [{"id": i, "bytes": 1_000_000, "started": True} for i in range(streams)]
    if role == "sender":
        for sample in samples:
            sample["tcp"] = {"total_retrans": 0, "segs_out": 1000, "rtt_us": 200, "snd_mss": 1448, "snd_cwnd": 10}
    return {"role": role, "hostname": f"hostile-{role}", "os": "Linux", "version": "0", "dataplane": "c",
            "elapsed_s": 0.5, "streams": samples, "error": None, "stalled": False}


def good_interval(run_id: str, index: int, streams: int = 2) -> dict[str, Any]:
    return {"run_id": run_id, "index": index, "t": 0.25 * (index + 1),
            "streams": [{"id": i, "bytes": 500_000 * (index + 1)} for i in range(streams)]}


def honest(role: str) -> Script:
    """What a healthy agent of ``role`` reports for a 0.5 s run at 0.25 s intervals."""
    def script(run_id: str) -> list[Union[Message, bytes]]:
        from lpmbench.protocol.messages import Interval

        return [*(Interval(**good_interval(run_id, i)) for i in range(2)), Result(run_id, role, good_final(role))]
    return script


class HostileAgent:
    def __init__(self, bind: str, key: bytes, script: Script, facts: dict[str, Any] | None = None) -> None:
        self.key = key
        self.script = script
        self.facts = facts if facts is not None else {"hostname": "hostile", "os": "Linux", "version": "0"}
        self.errors: list[BaseException] = []
        self._listener = socket.create_server((bind, 0))
        self._listener.settimeout(0.2)
        self.endpoint = Endpoint(bind, self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileAgent:
        self._accepter.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(IO_TIMEOUT_S)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT_S)
        conn = protocol.Connection(protocol.Role.AGENT, self.key, agent_info=self.facts)
        try:
            with sock:
                for event in self._events(sock, conn):
                    if not self._answer(sock, conn, event):
                        return
        except (OSError, protocol.ProtocolError) as exc:
            if not isinstance(exc, (ConnectionError, socket.timeout)):
                self.errors.append(exc)

    @staticmethod
    def _events(sock: socket.socket, conn: protocol.Connection) -> Iterator[Any]:
        while True:
            event = conn.next_event()
            sock.sendall(conn.data_to_send())
            if isinstance(event, protocol.NeedData):
                data = sock.recv(65536)
                conn.receive_data(data)
                continue
            yield event
            if isinstance(event, (protocol.Failure, protocol.Closed)):
                return

    def _answer(self, sock: socket.socket, conn: protocol.Connection, event: Any) -> bool:
        """Play the script on arm/start; False once the session is over."""
        if isinstance(event, (protocol.Failure, protocol.Closed, Abort, Bye)):
            return False
        if isinstance(event, (Arm, Start)):
            conn.send(Armed(event.run_id, port=9) if isinstance(event, Arm) else Started(event.run_id))
            for item in self.script(event.run_id):
                with contextlib.suppress(ConnectionError):
                    sock.sendall(item if isinstance(item, bytes) else self._frame(conn, item))
            sock.sendall(conn.data_to_send())
        return True

    @staticmethod
    def _frame(conn: protocol.Connection, message: Message) -> bytes:
        conn.send(message)
        return conn.data_to_send()


@contextlib.contextmanager
def hostile_pair(key: bytes, sender: Script, receiver: Script,
                 facts: dict[str, Any] | None = None) -> Iterator[tuple[HostileAgent, HostileAgent]]:
    """A hostile sender on 127.0.0.1 and a hostile receiver on 127.0.0.2, each playing its own script."""
    with HostileAgent("127.0.0.1", key, sender, facts) as a, HostileAgent("127.0.0.2", key, receiver, facts) as b:
        yield a, b
