"""``python -m lpmbench.lab``: build a lab (two hosts and a switch in network namespaces, or the two-path ECMP
lab), list or delete labs. The labs themselves are lpmbench.lab.netns and lpmbench.lab.ecmp."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from lpmbench.lab import matrix
from lpmbench.lab.ecmp import EcmpLab
from lpmbench.lab.netns import HOSTS, SWITCH, Lab, LabError, PortSpec, _run, list_lab_namespaces


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lpmbench.lab",
                                     description="Build, list or delete lpmbench lab namespaces.")
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
    matrix.add_parser(sub)
    return parser.parse_args(argv)


def _mbit(value: float | None) -> int | None:
    return None if value is None else int(value * 1_000_000)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.command == "status":
        for name in list_lab_namespaces():
            print(name)
        return 0
    if args.command == "matrix":
        return matrix.main(args.only, args.json, args.save)
    if args.command == "down":
        targets = list_lab_namespaces() if args.all else [Lab(name=args.name).netns(h)
                                                          for h in (SWITCH, *HOSTS)]
        for name in targets:
            _run(["ip", "netns", "del", name], check=False)
        return 0
    try:
        if args.command == "up-ecmp":
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
