"""Where an agent listens: ``host[:port]`` as users write it (names, IPv4, IPv6 literals)."""

from __future__ import annotations

from dataclasses import dataclass

from lpmbench.protocol.contract import DEFAULT_CONTROL_PORT


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = DEFAULT_CONTROL_PORT

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_CONTROL_PORT) -> Endpoint:
        """``name``, ``name:port``, ``1.2.3.4[:port]``, ``::1`` or ``[::1]:port``."""
        text = text.strip()
        if not text:
            raise ValueError("empty host")
        host, port_text = text, ""
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad host {text!r}: use [IPv6]:port")
            port_text = rest[1:]
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"bad host {text!r}")
        if not port_text:
            return cls(host, default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in {text!r}: use 1..65535")
        return cls(host, int(port_text))
