"""Allow lists (``--allow``): which orchestrators may control an agent and which peers it may exchange data with."""

from __future__ import annotations

import ipaddress
from typing import Any


def parse_networks(texts: list[str] | tuple[str, ...]) -> tuple[Any, ...]:
    """``--allow`` values: addresses or CIDR networks (IPv4 or IPv6). Raises ValueError naming the bad one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--allow {text!r} is not an address or network like 10.0.0.0/24 or fd00::/64") from None
    return tuple(networks)


def allowed(address: str | None, networks: tuple[Any, ...] | None) -> bool:
    """True when no allow list is set, or ``address`` lies in one of its networks."""
    if networks is None:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)
