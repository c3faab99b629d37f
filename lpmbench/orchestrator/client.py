"""One authenticated control connection from the orchestrator to an agent, over the sans-I/O protocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any

from lpmbench.orchestrator.endpoint import Endpoint
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import messages
from lpmbench.protocol.contract import CONTROL_CONNECT_TIMEOUT_S, LATE_READ_GRACE_S, REPLY_TIMEOUT_S
from lpmbench.protocol.messages import Bye, ErrorCode, Message

READ_CHUNK = 65536


class PairError(Exception):
    """A run could not start: unreachable agent, bad key, busy agent. ``host`` names the agent."""

    def __init__(self, host: str, message: str, code: ErrorCode) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message
        self.code = code


# OpenSSL's reasons when the bytes that came back are no TLS record: an agent (or anything else) answering in
# plain text, such as a plain agent's error frame about a ClientHello it cannot read.
_PLAIN_ANSWER_REASONS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
                                   "RECORD_LAYER_FAILURE"})


def _tls_failure_text(exc: ssl.SSLError) -> str:
    if exc.reason in _PLAIN_ANSWER_REASONS:
        return ("the agent answered without TLS: TLS is on at one end only (this orchestrator uses it, the agent's "
                "control port does not); drop --tls/--tls-ca, or start the agent with --tls-cert and --tls-key")
    if exc.reason == "TLSV1_ALERT_ACCESS_DENIED":  # the agent's --allow list, checked before the TLS handshake
        return ("the agent refused this orchestrator's address (not in its --allow list); add this host's "
                "address to the agent's --allow, or run pair from a host it allows")
    return f"TLS handshake failed ({exc.reason or exc}); check --tls-ca and the agent's certificate"


class AgentClient:
    """One authenticated control connection to an agent, over the sans-I/O protocol.

    Every byte to the agent goes through :meth:`_flush`, which writes what the connection queued.
    """

    def __init__(self, endpoint: Endpoint, key: bytes | None, allow_insecure: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.conn = protocol.Connection(protocol.Role.CLIENT, key, allow_insecure=allow_insecure,
                                        peer_name=endpoint.label)
        self.facts: dict[str, Any] = {}
        self.address: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        host = self.endpoint.label
        self._reader, self._writer = await self._open()
        self.address = str(self._writer.get_extra_info("peername")[0])
        await self._flush()
        event = await self._next_event(CONTROL_CONNECT_TIMEOUT_S)
        if isinstance(event, protocol.Failure):
            raise PairError(host, self._handshake_failure_text(event), event.code)
        if not isinstance(event, protocol.Authenticated):
            raise PairError(host, f"unexpected {event!r} during the handshake", ErrorCode.PROTOCOL)
        self.facts = dict(event.peer)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The TCP (and TLS) connection; PairError saying which step failed and what to check."""
        host, name = self.endpoint.label, self.endpoint.host
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(name, self.endpoint.port, ssl=self.tls,
                                        server_hostname=name if self.tls else None),
                CONTROL_CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise PairError(host, f"no answer within {CONTROL_CONNECT_TIMEOUT_S:.0f} s; is the agent running and "
                                  f"the control port open?", ErrorCode.UNREACHABLE) from None
        except ssl.SSLError as exc:
            raise PairError(host, _tls_failure_text(exc), ErrorCode.TLS) from None
        except socket.gaierror as exc:  # before OSError, which it is: a typo is no agent to start
            raise PairError(host, f"the name {name!r} does not resolve ({exc.strerror or exc}): check its spelling, "
                                  f"DNS or /etc/hosts, or give the agent's address", ErrorCode.UNREACHABLE) from None
        except UnicodeError:  # Python's IDNA encoding refuses an empty or over-long label before any lookup
            raise PairError(host, f"{name!r} is not a valid host name (an empty or over-long label): check its "
                                  f"spelling", ErrorCode.UNREACHABLE) from None
        except OSError as exc:
            raise PairError(host, f"cannot connect ({exc.strerror or exc}); start 'lpmbench agent' there "
                                  f"or check the host and port", ErrorCode.UNREACHABLE) from None

    def _handshake_failure_text(self, failure: protocol.Failure) -> str:
        if failure.code is ErrorCode.TIMEOUT:
            # An agent answers a hello at once; a server of another protocol may wait for more (an HTTP server
            # for the end of a request line, which our binary hello never sends).
            return (f"the port is open but did not answer the handshake within {CONTROL_CONNECT_TIMEOUT_S:.0f} s: "
                    f"is it an lpmbench agent's control port? Check the host and port (and --tls if the agent "
                    f"uses TLS)")
        if failure.code is ErrorCode.EOF and self.tls is None:
            # An agent with TLS on its control port hangs up on a plain-text hello without a word; so does one
            # whose handshake slots for this address are all taken (a flood from here, or many orchestrators
            # behind one NAT address).
            return (f"the agent closed the connection during the handshake ({failure.message}): if it serves "
                    f"TLS on its control port (agent --tls-cert), pass --tls-ca; otherwise it may be refusing "
                    f"this address for now (too many handshakes from it at once): retry, and see the agent's log")
        if failure.code is ErrorCode.EOF:
            return (f"the agent closed the connection during the handshake ({failure.message}); it may be "
                    f"refusing this address for now (too many handshakes from it at once): retry, and see the "
                    f"agent's log")
        return failure.message

    async def send(self, message: Message | str, **fields: Any) -> None:
        """Send one command: a typed message, or its wire name and fields (``send("abort", run_id=...)``)."""
        self.conn.send(message if isinstance(message, Message) else messages.build(message, fields))
        await self._flush()

    async def next_message(self, timeout: float) -> Message | protocol.Failure:
        event = await self._next_event(timeout)
        if isinstance(event, protocol.Closed):
            return protocol.Failure(ErrorCode.CLOSED, "the agent closed the control connection")
        assert isinstance(event, (Message, protocol.Failure))
        return event

    async def _next_event(self, timeout: float) -> protocol.Event:
        """The next event, or a TIMEOUT Failure when nothing came for ``timeout`` s.

        Past the deadline, what arrived meanwhile still counts: an orchestrator that was stopped (Ctrl-Z, a
        paused VM) wakes with its timers expired before it has looked at its sockets, where the agents'
        reports wait. So before declaring a timeout it reads for LATE_READ_GRACE_S more, once per call (a
        peer dribbling bytes cannot stretch it further).
        """
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        grace_given = False
        while True:
            event = self.conn.next_event()
            await self._flush()
            if not isinstance(event, protocol.NeedData):
                return event
            if loop.time() >= deadline and not grace_given:
                grace_given = True
                deadline = loop.time() + LATE_READ_GRACE_S
            remaining = deadline - loop.time()
            if remaining <= 0:
                return protocol.Failure(ErrorCode.TIMEOUT, f"no message for {timeout:.0f} s")
            try:
                data = await asyncio.wait_for(self._reader.read(READ_CHUNK), remaining)
            except asyncio.TimeoutError:
                continue  # the next turn gives the grace, or ends
            except OSError as exc:  # reset, unreachable, TLS errors (ssl.SSLError is an OSError)
                return protocol.Failure(ErrorCode.CLOSED, f"control connection lost ({exc})")
            self.conn.receive_data(data)

    async def _flush(self) -> None:
        """The client's only write path: whatever the connection queued (handshake, commands, error frames)."""
        data = self.conn.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
            # A dead agent shows up in the next read; an agent that stopped reading, at the next reply timeout.
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._writer.drain(), REPLY_TIMEOUT_S)

    async def close(self) -> None:
        if self._writer is None:
            return
        if self.conn.state is protocol.State.READY:
            with contextlib.suppress(Exception):
                await self.send(Bye())
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2)

