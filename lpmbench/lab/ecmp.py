"""An L3 lab with two equal-cost paths: the spine-leaf shape in which MSP traffic is spread by ECMP hashing.

Host ``a`` (the sending MSP) holds its address 10.88.0.1 on its loopback and reaches host ``b`` (10.88.1.2) by a
multipath route over two veths, ``v1`` and ``v2``, to a router namespace (the lab's "switch" namespace, here a
router), which forwards to ``b`` over one link. ``net.ipv4.fib_multipath_hash_policy`` of host ``a`` picks the
path of each flow: 0 hashes on addresses only (L3: every stream between two MSPs takes one path), 1 on
addresses and ports (L4: the streams spread). Test traffic never leaves the namespaces.

    with EcmpLab(hash_policy=1) as lab:
        lab.address("a"), lab.address("b"), lab.paths  # "10.88.0.1", "10.88.1.2", ("v1", "v2")
"""

from __future__ import annotations

from lpmbench.lab.netns import HOSTS, SWITCH, Lab, LabError, _run

PATHS = ("v1", "v2")
ADDRESSES = {"a": "10.88.0.1", "b": "10.88.1.2"}
ROUTER_TO_B = "10.88.1.1"


class EcmpLab(Lab):
    """Hosts a and b and a router between them; a reaches b over two equal-cost paths."""

    def __init__(self, hash_policy: int = 0, *, name: str | None = None) -> None:
        if hash_policy not in (0, 1):
            raise ValueError(f"hash_policy is 0 (L3) or 1 (L4), got {hash_policy}")
        super().__init__(name=name, ipv6=False)
        self.hash_policy = hash_policy
        self.paths = PATHS

    def address(self, host: str, family: int = 4) -> str:
        if host not in HOSTS or family != 4:
            raise ValueError(f"the ECMP lab has IPv4 addresses of {HOSTS} only")
        return ADDRESSES[host]

    def _build(self) -> None:
        for host in (SWITCH, *HOSTS):
            self._ip_netns_add(host)
        a, b, router = self.netns("a"), self.netns("b"), self.netns(SWITCH)
        for ns in (a, b, router):
            self._ip(ns, "link", "set", "lo", "up")
        self._ip(a, "addr", "add", f"{ADDRESSES['a']}/32", "dev", "lo")
        for index, dev in enumerate(PATHS, start=1):
            self._ip(a, "link", "add", dev, "type", "veth", "peer", "name", f"r{index}", "netns", router)
            self._ip(a, "addr", "add", f"10.98.{index}.1/30", "dev", dev)
            self._ip(router, "addr", "add", f"10.98.{index}.2/30", "dev", f"r{index}")
            self._ip(a, "link", "set", dev, "up")
            self._ip(router, "link", "set", f"r{index}", "up")
        self._ip(router, "link", "add", "rb", "type", "veth", "peer", "name", "eth0", "netns", b)
        self._ip(router, "addr", "add", f"{ROUTER_TO_B}/24", "dev", "rb")
        self._ip(b, "addr", "add", f"{ADDRESSES['b']}/24", "dev", "eth0")
        self._ip(router, "link", "set", "rb", "up")
        self._ip(b, "link", "set", "eth0", "up")
        self.run_in(SWITCH, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.run_in("a", ["sysctl", "-qw", f"net.ipv4.fib_multipath_hash_policy={self.hash_policy}"])
        hops = [arg for i, dev in enumerate(PATHS, start=1) for arg in ("nexthop", "via", f"10.98.{i}.2", "dev", dev)]
        self._ip(a, "route", "add", "10.88.1.0/24", "src", ADDRESSES["a"], *hops)
        back = [arg for i in (1, 2) for arg in ("nexthop", "via", f"10.98.{i}.1", "dev", f"r{i}")]
        self._ip(router, "route", "add", f"{ADDRESSES['a']}/32", *back)
        self._ip(b, "route", "add", "default", "via", ROUTER_TO_B)

    def _ip_netns_add(self, host: str) -> None:
        _run(["ip", "netns", "add", self.netns(host)])
        self._created.append(self.netns(host))

    def set_port(self, host: str, spec: object) -> None:
        raise LabError("the ECMP lab has routed links, not switch ports")
