"""A network-namespace test lab: two hosts behind one Linux bridge "switch".

``Lab`` builds three network namespaces (``lpmb-a-<suffix>``, ``lpmb-b-<suffix>``,
``lpmb-sw-<suffix>``). Each host has one ``eth0`` wired by a veth pair to a port ``p-<host>`` of
the bridge ``br0`` in the switch namespace. Per port it can set:

- the MTU on the host side and on the switch side separately (hosts at 9000 and switch ports at
  1500 is a jumbo-frame black hole: nothing answers "fragmentation needed", frames just vanish);
- the link rate with a ``tbf`` qdisc on both ends of the link, with a short queue to model a
  shallow switch buffer;
- random frame loss with an nftables rule in the bridge family (``numgen random mod N``), since
  netem is not available on every kernel.

TSO, GSO and GRO are off on every veth so that frames on the wire are real, MTU-sized frames.
Addresses (10.77.0.0/24 and fd77:6c70:6d62::/64) exist only inside the namespaces, neighbours
are static so that loss never delays ARP / ND, and everything is torn down on exit.

Usable from tests, benchmarks and by hand::

    python -m lpmbench.lab up --name demo --host-mtu 9000 --switch-mtu 1500
    python -m lpmbench.lab status
    python -m lpmbench.lab down --name demo
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

__all__ = ["HOSTS", "REQUIRED_TOOLS", "Lab", "LabError", "PortSpec", "lab_unavailable_reason",
           "list_lab_namespaces"]

HOSTS = ("a", "b")
SWITCH = "switch"
PREFIX = "lpmb"
REQUIRED_TOOLS = ("ip", "tc", "nft", "ethtool")
_HOST_NUMBER = {"a": 1, "b": 2}
_SUBNET4 = "10.77.0."
_SUBNET6 = "fd77:6c70:6d62::"
_CLONE_NEWNET = 0x40000000
_ETH_HEADER = 14
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
_T = TypeVar("_T")


class LabError(RuntimeError):
    """A lab command failed; the message names the command and what it printed."""


@dataclass(frozen=True)
class PortSpec:
    """How one host's link to the switch behaves.

    host_mtu: MTU of the host's eth0. switch_mtu: MTU of the switch port (None: same as host).
    rate_bps: link rate in both directions (None: unshaped). queue_bytes: the tbf queue, i.e. the
    switch buffer (None: 5 ms at the link rate). burst_bytes: tbf bucket (None: derived).
    loss: probability that a frame crossing this switch port is dropped, per direction.
    out_mtu: the switch drops frames larger than this on their way out of the port to the host only (a black
    hole in one direction: the host still sends jumbo frames through it). block_icmp: the switch drops ICMP and
    ICMPv6 echo requests and replies crossing the port, as a firewall that blocks ping does.
    """

    host_mtu: int = 1500
    switch_mtu: int | None = None
    rate_bps: int | None = None
    queue_bytes: int | None = None
    burst_bytes: int | None = None
    loss: float = 0.0
    out_mtu: int | None = None
    block_icmp: bool = False

    def __post_init__(self) -> None:
        for label, mtu in (("host_mtu", self.host_mtu), ("switch_mtu", self.switch_mtu), ("out_mtu", self.out_mtu)):
            if mtu is not None and not 68 <= mtu <= 65535:
                raise ValueError(f"{label} must be between 68 and 65535, got {mtu}")
        if self.rate_bps is not None and self.rate_bps < 8_000:
            raise ValueError(f"rate_bps must be at least 8000, got {self.rate_bps}")
        for label, size in (("queue_bytes", self.queue_bytes), ("burst_bytes", self.burst_bytes)):
            if size is not None and size < 1:
                raise ValueError(f"{label} must be positive, got {size}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")

    @property
    def effective_switch_mtu(self) -> int:
        return self.host_mtu if self.switch_mtu is None else self.switch_mtu

    def tbf_params(self) -> tuple[int, int, int] | None:
        """(rate_bps, burst_bytes, limit_bytes) for tc tbf, or None when unshaped."""
        if self.rate_bps is None:
            return None
        largest_frame = max(self.host_mtu, self.effective_switch_mtu) + _ETH_HEADER
        # The bucket must hold the largest frame or tbf drops it; 1 ms of line rate keeps the
        # shaper accurate at high rates without hiding the shallow queue behind a huge burst.
        burst = self.burst_bytes or max(2 * largest_frame, self.rate_bps // 8 // 1000)
        queue = self.queue_bytes or max(3 * largest_frame, self.rate_bps // 8 // 200)
        return self.rate_bps, burst, max(queue, largest_frame)


def lab_unavailable_reason() -> str | None:
    """Why a lab cannot be built here (not root, not Linux, a tool missing), or None."""
    if not sys.platform.startswith("linux"):
        return "the lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the lab needs root to create network namespaces"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return "the lab needs these missing tools: " + ", ".join(missing)
    return None


def _run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 10.0,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _enter_netns(path: str) -> None:
    """Move the calling thread (only) into the network namespace at path."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Lab:
    """Two hosts ("a", "b") and a bridge switch in network namespaces; a context manager."""

    def __init__(self, ports: Mapping[str, PortSpec] | None = None, *, name: str | None = None,
                 ipv6: bool = True) -> None:
        unknown = set(ports or {}) - set(HOSTS)
        if unknown:
            raise ValueError(f"unknown host(s) {sorted(unknown)}; hosts are {HOSTS}")
        self.name = name or f"{os.getpid()}-{secrets.token_hex(3)}"
        if not _NAME_RE.match(self.name):
            raise ValueError(f"lab name must match {_NAME_RE.pattern}, got {self.name!r}")
        self.ipv6 = ipv6
        self.ports: dict[str, PortSpec] = {host: PortSpec() for host in HOSTS}
        self.ports.update(ports or {})
        self._created: list[str] = []

    # -- naming -------------------------------------------------------------------------------
    def netns(self, host: str) -> str:
        """The namespace name of "a", "b" or "switch"."""
        if host == SWITCH:
            return f"{PREFIX}-sw-{self.name}"
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}; use one of {HOSTS + (SWITCH,)}")
        return f"{PREFIX}-{host}-{self.name}"

    def address(self, host: str, family: int = 4) -> str:
        """The host's address on the lab link, IPv4 (family 4) or IPv6 (family 6)."""
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}; use one of {HOSTS}")
        if family == 4:
            return f"{_SUBNET4}{_HOST_NUMBER[host]}"
        if family == 6 and self.ipv6:
            return f"{_SUBNET6}{_HOST_NUMBER[host]}"
        raise ValueError(f"no IPv{family} address in this lab")

    @property
    def is_up(self) -> bool:
        return bool(self._created)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    def up(self) -> Lab:
        """Build the lab; on any failure, tear down what was built and re-raise."""
        reason = lab_unavailable_reason()
        if reason:
            raise LabError(reason)
        if self._created:
            raise LabError(f"lab {self.name} is already up")
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Delete every namespace this lab created (their links, qdiscs and rules go with them)."""
        while self._created:
            _run(["ip", "netns", "del", self._created.pop()], check=False)

    def _build(self) -> None:
        for host in (SWITCH, *HOSTS):
            _run(["ip", "netns", "add", self.netns(host)])
            self._created.append(self.netns(host))
        switch = self.netns(SWITCH)
        self._ip(switch, "link", "set", "lo", "up")
        self._ip(switch, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        self._ip(switch, "link", "set", "br0", "up")
        for host in HOSTS:
            self._wire_host(host)
        self._set_static_neighbours()
        for host in HOSTS:
            self._apply_port(host)
        self._apply_switch_rules()

    def _wire_host(self, host: str) -> None:
        ns, switch, port = self.netns(host), self.netns(SWITCH), f"p-{host}"
        # Created from inside the switch namespace, so the names never meet the root namespace.
        self._ip(switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._ip(switch, "link", "set", port, "master", "br0")
        self._ip(ns, "link", "set", "lo", "up")
        self._ip(ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
        if self.ipv6:
            self._ip(ns, "addr", "add", f"{self.address(host, 6)}/64", "dev", "eth0", "nodad")
        for owner, dev in ((host, "eth0"), (SWITCH, port)):
            # Real frames on the wire: no segmentation or receive offload to hide the MTU.
            self.run_in(owner, ["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])
            self._ip(self.netns(owner), "link", "set", dev, "up")

    def _set_static_neighbours(self) -> None:
        macs = {host: self._mac(host) for host in HOSTS}
        for host in HOSTS:
            for peer in HOSTS:
                if peer == host:
                    continue
                families = (4, 6) if self.ipv6 else (4,)
                for family in families:
                    self._ip(self.netns(host), "neigh", "replace", self.address(peer, family),
                             "lladdr", macs[peer], "dev", "eth0", "nud", "permanent")

    def _mac(self, host: str) -> str:
        out = self._ip(self.netns(host), "-j", "link", "show", "dev", "eth0").stdout
        return str(json.loads(out)[0]["address"])

    # -- per-port configuration ----------------------------------------------------------------
    def set_port(self, host: str, spec: PortSpec) -> None:
        """Change one host's link (MTUs, rate, buffer, loss) while the lab is up."""
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}; use one of {HOSTS}")
        self.ports[host] = spec
        if self.is_up:
            self._apply_port(host)
            self._apply_switch_rules()

    def update_port(self, host: str, **changes: Any) -> None:
        """set_port with only some fields changed, e.g. update_port("b", loss=0.1)."""
        self.set_port(host, replace(self.ports[host], **changes))

    def _apply_port(self, host: str) -> None:
        spec, ns, switch, port = self.ports[host], self.netns(host), self.netns(SWITCH), f"p-{host}"
        self._ip(ns, "link", "set", "eth0", "mtu", str(spec.host_mtu))
        self._ip(switch, "link", "set", port, "mtu", str(spec.effective_switch_mtu))
        for netns, dev in ((ns, "eth0"), (switch, port)):
            _run(["tc", "-n", netns, "qdisc", "del", "dev", dev, "root"], check=False)
            tbf = spec.tbf_params()
            if tbf:
                rate, burst, limit = tbf
                _run(["tc", "-n", netns, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                      f"{rate}bit", "burst", str(burst), "limit", str(limit)])
        self._apply_host_rules(host)

    def _apply_host_rules(self, host: str) -> None:
        # veth accepts frames 4 bytes over its MTU (room for a VLAN tag); a real NIC set to this
        # MTU would not, so drop them here to keep the black hole exact.
        mtu = self.ports[host].host_mtu
        script = (
            "table inet lpmb {\n chain rx_mtu {\n  type filter hook prerouting priority -300;\n"
            "  policy accept;\n }\n}\nflush chain inet lpmb rx_mtu\n"
            f'add rule inet lpmb rx_mtu iifname "eth0" meta length > {mtu} drop\n'
        )
        self._nft(host, script)

    def _apply_switch_rules(self) -> None:
        lines = [
            "table bridge lpmb {\n chain port_filter {\n  type filter hook forward priority 0;\n"
            "  policy accept;\n }\n}",
            "flush chain bridge lpmb port_filter",
        ]
        for host in HOSTS:
            spec, port = self.ports[host], f"p-{host}"
            for direction in ("iifname", "oifname"):
                # A switch port drops frames over its MTU in both directions; in the bridge
                # family "meta length" is the L3 length, i.e. what the MTU bounds.
                mtu = spec.effective_switch_mtu
                if direction == "oifname" and spec.out_mtu is not None:
                    mtu = min(mtu, spec.out_mtu)
                lines.append(f'add rule bridge lpmb port_filter {direction} "{port}" meta length > {mtu} drop')
                if spec.block_icmp:
                    lines += [f'add rule bridge lpmb port_filter {direction} "{port}" icmp type '
                              f"{{ echo-request, echo-reply }} drop",
                              f'add rule bridge lpmb port_filter {direction} "{port}" icmpv6 type '
                              f"{{ echo-request, echo-reply }} drop"]
                if spec.loss > 0:
                    threshold = round(spec.loss * 1_000_000)
                    lines.append(f'add rule bridge lpmb port_filter {direction} "{port}" '
                                 f"numgen random mod 1000000 < {threshold} drop")
        self._nft(SWITCH, "\n".join(lines) + "\n")

    # -- running things inside ------------------------------------------------------------------
    def _ip(self, netns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", netns, *args])

    def _nft(self, host: str, script: str) -> None:
        _run(["ip", "netns", "exec", self.netns(host), "nft", "-f", "-"], input_text=script)

    def run_in(self, host: str, argv: Sequence[str], *, timeout: float = 10.0, check: bool = True,
               input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv to completion inside a namespace; raise LabError on failure if check."""
        return _run(["ip", "netns", "exec", self.netns(host), *argv], input_text=input_text,
                    timeout=timeout, check=check)

    def popen_in(self, host: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
        """Start argv inside a namespace; the caller waits for (or kills) it."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns(host), *argv], **popen_kwargs)

    def spawn_in(self, host: str, fn: Callable[..., _T], *args: Any,
                 **kwargs: Any) -> concurrent.futures.Future[_T]:
        """Run fn(*args, **kwargs) in a new thread that lives in the host's namespace.

        Sockets the function creates belong to that namespace. /sys and /proc/self still show
        the caller's namespace, so use run_in for tools that read them.
        """
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        path = f"/run/netns/{self.netns(host)}"

        def target() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                _enter_netns(path)
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)

        threading.Thread(target=target, name=f"lab-{self.name}-{host}", daemon=True).start()
        return future

    def call_in(self, host: str, fn: Callable[..., _T], *args: Any, timeout: float = 30.0,
                **kwargs: Any) -> _T:
        """spawn_in and wait for the result (at most timeout seconds)."""
        return self.spawn_in(host, fn, *args, **kwargs).result(timeout=timeout)


def list_lab_namespaces() -> list[str]:
    """Names of lpmbench lab namespaces that exist now (any lab, any process)."""
    out = _run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    names = [entry["name"] for entry in json.loads(out)] if out else []
    return sorted(name for name in names if name.startswith(f"{PREFIX}-"))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lpmbench.lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build a lab and leave it running")
    up.add_argument("--name", default="manual", help="lab suffix (default: manual)")
    up.add_argument("--host-mtu", type=int, default=1500)
    up.add_argument("--switch-mtu", type=int, default=None, help="default: same as --host-mtu")
    up.add_argument("--rate-mbit", type=float, default=None, help="link rate of both ports")
    up.add_argument("--rate-b-mbit", type=float, default=None, help="link rate of host b only")
    up.add_argument("--loss", type=float, default=0.0, help="frame loss at port b, 0..1")
    up.add_argument("--block-icmp", action="store_true", help="the switch drops ping (ICMP echo) at port a")
    up.add_argument("--out-mtu-b", type=int, default=None,
                    help="the switch drops frames larger than this toward b only (a one-way black hole)")
    ecmp = sub.add_parser("up-ecmp", help="build the two-path L3 lab (lpmbench.lab.ecmp) and leave it running")
    ecmp.add_argument("--name", default="manual")
    ecmp.add_argument("--hash-policy", type=int, choices=(0, 1), default=0,
                      help="host a's net.ipv4.fib_multipath_hash_policy (0: L3, 1: L4)")
    down = sub.add_parser("down", help="delete a lab's namespaces")
    down.add_argument("--name", default="manual")
    down.add_argument("--all", action="store_true", help="every lpmb-* namespace")
    sub.add_parser("status", help="list lab namespaces")
    return parser.parse_args(argv)


def _mbit(value: float | None) -> int | None:
    return None if value is None else int(value * 1_000_000)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "status":
        for name in list_lab_namespaces():
            print(name)
        return 0
    if args.command == "down":
        targets = list_lab_namespaces() if args.all else [Lab(name=args.name).netns(h)
                                                          for h in (SWITCH, *HOSTS)]
        for name in targets:
            _run(["ip", "netns", "del", name], check=False)
        return 0
    try:
        if args.command == "up-ecmp":
            from lpmbench.lab.ecmp import EcmpLab  # the ECMP lab builds on this module

            lab: Lab = EcmpLab(args.hash_policy, name=args.name).up()
        else:
            base = PortSpec(host_mtu=args.host_mtu, switch_mtu=args.switch_mtu,
                            rate_bps=_mbit(args.rate_mbit))
            port_b = replace(base, loss=args.loss, rate_bps=_mbit(args.rate_b_mbit) or base.rate_bps,
                             out_mtu=args.out_mtu_b)
            lab = Lab({"a": replace(base, block_icmp=args.block_icmp), "b": port_b}, name=args.name).up()
    except (ValueError, LabError) as exc:
        print(f"lab up: {exc}", file=sys.stderr)
        return 2
    for host in HOSTS:
        print(f"{host}: netns {lab.netns(host)}  {lab.address(host)}  {lab.address(host, 6) if lab.ipv6 else ''}")
    print(f"switch: netns {lab.netns(SWITCH)}")
    print(f"run: ip netns exec {lab.netns('a')} <command>; tear down: python -m lpmbench.lab down "
          f"--name {args.name}")
    return 0
