"""The expert facts on the platform side (issue 13): ping, vioslpm0, lparstat -i and cgroup quotas, bonds,
EtherChannels and multipath routes. AIX parsers run on fixtures in IBM's documented formats (tests/fixtures/aix,
odd cases included: a VIOS level without concurrency_lvl, a user-defined shared pool, a dedicated partition, an
EtherChannel with a backup adapter and one without hash_mode); Linux readers run for real where this host has
the thing (ping, cgroups in a temporary tree, the route table)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lpmbench.platform import InterfaceAudit, aggregate, cpu, mover, reach

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- ping ------------------------------------------------------------------------------------------------------
AIX_PING = """PING 10.20.30.2: (10.20.30.2): 56 data bytes
64 bytes from 10.20.30.2: icmp_seq=0 ttl=255 time=0 ms
64 bytes from 10.20.30.2: icmp_seq=1 ttl=255 time=1 ms
64 bytes from 10.20.30.2: icmp_seq=2 ttl=255 time=0 ms

----10.20.30.2 PING Statistics----
3 packets transmitted, 3 packets received, 0% packet loss
round-trip min/avg/max = 0/0/1 ms
"""
AIX_PING_BLOCKED = """PING 10.20.30.2: (10.20.30.2): 56 data bytes

----10.20.30.2 PING Statistics----
3 packets transmitted, 0 packets received, 100% packet loss
"""
LINUX_PING = """PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.
64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.061 ms

--- 10.77.0.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 404ms
rtt min/avg/max/mdev = 0.040/0.052/0.061/0.008 ms
"""


def test_ping_summaries_of_both_platforms_parse():
    assert reach.parse_ping(AIX_PING) == {"sent": 3, "received": 3, "rtt_ms": 0.0}
    assert reach.parse_ping(AIX_PING_BLOCKED) == {"sent": 3, "received": 0, "rtt_ms": None}
    assert reach.parse_ping(LINUX_PING) == {"sent": 3, "received": 3, "rtt_ms": 0.052}
    assert reach.parse_ping("ping: socket: Operation not permitted\n") is None


def test_blocked_unusable_and_answered_pings_are_told_apart():
    assert reach.judge("10.20.30.2", 1, AIX_PING_BLOCKED, "")["reachable"] is False
    assert reach.judge("10.77.0.2", 0, LINUX_PING, "")["reachable"] is True
    unusable = reach.judge("10.77.0.2", 2, "", "ping: socket: Operation not permitted\n")
    assert unusable["reachable"] is None and "Operation not permitted" in unusable["error"]


def test_ping_command_lines_are_bounded_and_per_platform():
    linux = reach.ping_argv("10.77.0.2", aix=False)
    assert linux[:2] == ["ping", "-n"] and linux[linux.index("-c") + 1] == "3" and "-W" in linux
    assert "-w" not in linux  # with a deadline iputils would send until it, not 3 echoes
    assert "-6" in reach.ping_argv("fd77::2", aix=False)
    assert reach.ping_argv("10.20.30.2", aix=True) == ["ping", "-n", "-c", "3", "-w", "1", "10.20.30.2"]
    assert reach.ping_argv("fd77::2", aix=True)[-3:] == ["-a", "inet6", "fd77::2"]


@pytest.mark.skipif(shutil.which("ping") is None, reason="no ping on this host (Debian: iputils-ping)")
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_ping_to_loopback_for_real(address):
    found = reach.ping_peer(address, aix=False)
    assert found["reachable"] is True and found["sent"] == 3 and found["received"] == 3, found


def test_a_host_without_ping_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    found = reach.ping_peer("127.0.0.1", aix=False)
    assert found["reachable"] is None and "no ping command" in found["error"]


# -- vioslpm0 --------------------------------------------------------------------------------------------------
def test_vioslpm0_defaults():
    facts = mover.facts_from_lsattr(fixture("aix/lsattr_El_vioslpm0.txt"))
    assert facts["available"] is True and facts["missing"] == []
    assert (facts["concurrency_lvl"], facts["cfg_msp_lpm_ops"], facts["tcp_port_low"], facts["tcp_port_high"]) == \
        (4, 8, 0, 0)


def test_vioslpm0_of_an_older_level_with_pinned_ports_and_no_concurrency_lvl():
    facts = mover.facts_from_lsattr(fixture("aix/lsattr_El_vioslpm0_pinned_old.txt"))
    assert facts["concurrency_lvl"] is None and facts["missing"] == ["concurrency_lvl"]
    assert (facts["cfg_msp_lpm_ops"], facts["tcp_port_low"], facts["tcp_port_high"]) == (4, 40001, 40010)


def test_no_vioslpm0_off_vios():
    assert mover.mover_facts(aix=False) == {"available": False, "reason": mover.NO_MOVER, "source": None}
    assert mover.facts_from_lsattr("")["available"] is False


# -- CPU -------------------------------------------------------------------------------------------------------
def test_lparstat_shared_uncapped_may_use_its_virtual_cpus():
    facts = cpu.parse_lparstat_i(fixture("aix/lparstat_i_shared_uncapped.txt"))
    assert facts["mode"] == "uncapped" and facts["dedicated"] is False
    assert (facts["entitled_cores"], facts["online_vcpus"], facts["shared_pool_id"]) == (1.0, 2, 0)
    assert facts["limit_cores"] == 2.0 and facts["pool_cpus"] == 30.0


def test_lparstat_capped_in_a_user_defined_shared_pool_stops_at_its_entitlement():
    facts = cpu.parse_lparstat_i(fixture("aix/lparstat_i_shared_pool_capped.txt"))
    assert facts["mode"] == "capped" and facts["shared_pool_id"] == 3
    assert facts["limit_cores"] == 0.5


def test_lparstat_dedicated_donating_has_its_processors():
    facts = cpu.parse_lparstat_i(fixture("aix/lparstat_i_dedicated.txt"))
    assert facts["dedicated"] is True and facts["mode"] == "donating" and facts["shared_pool_id"] is None
    assert facts["limit_cores"] == 4.0 and facts["pool_cpus"] is None


def test_cgroup_v2_quota_of_the_tightest_ancestor(tmp_path):
    (tmp_path / "system.slice" / "agent.service").mkdir(parents=True)
    (tmp_path / "system.slice" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "system.slice" / "agent.service" / "cpu.max").write_text("max 100000\n")
    quota, source = cpu.cgroup_quota("0::/system.slice/agent.service\n", str(tmp_path))
    assert quota == 1.5 and source == "cgroup v2 cpu.max of /system.slice"


def test_cgroup_v1_cfs_quota(tmp_path):
    base = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    base.mkdir(parents=True)
    (base / "cpu.cfs_quota_us").write_text("50000\n")
    (base / "cpu.cfs_period_us").write_text("100000\n")
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    assert cpu.parse_proc_cgroup(text) == {"v1": "/docker/abc", "v2": "/"}
    assert cpu.cgroup_quota(text, str(tmp_path)) == (0.5, "cgroup v1 cpu.cfs_quota_us of /docker/abc")
    (base / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu.cgroup_quota(text, str(tmp_path)) == (None, None)


def test_linux_cpu_facts_for_real():
    facts = cpu.cpu_facts(aix=False)
    assert facts["logical_cpus"] >= 1 and facts["limit_cores"] <= facts["logical_cpus"]


# -- aggregates ------------------------------------------------------------------------------------------------
def test_linux_8023ad_bond():
    bond = aggregate.parse_proc_bonding(fixture("linux/proc_net_bonding_bond0_8023ad.txt"))
    assert bond["mode"] == "IEEE 802.3ad Dynamic link aggregation" and bond["hash_policy"] == "layer2"
    assert bond["members"] == [{"name": "ens1f0", "up": True, "role": "active"},
                               {"name": "ens1f1", "up": True, "role": "active"}]


def test_linux_active_backup_bond_marks_the_standby():
    bond = aggregate.parse_proc_bonding(fixture("linux/proc_net_bonding_bond1_active_backup.txt"))
    assert bond["hash_policy"] is None
    assert bond["members"] == [{"name": "eth2", "up": True, "role": "active"},
                               {"name": "eth3", "up": False, "role": "backup"}]


def test_bond_from_sysfs(tmp_path, monkeypatch):
    (tmp_path / "bond0" / "bonding").mkdir(parents=True)
    for name, value in (("slaves", "eth0 eth1"), ("mode", "802.3ad 4"), ("xmit_hash_policy", "layer3+4 1"),
                        ("active_slave", "")):
        (tmp_path / "bond0" / "bonding" / name).write_text(value + "\n")
    for member in ("eth0", "eth1"):
        (tmp_path / member).mkdir()
        (tmp_path / member / "operstate").write_text("up\n")
    monkeypatch.setattr(aggregate, "SYS_NET", str(tmp_path))
    bond = aggregate.bond_from_sysfs(str(tmp_path / "bond0"))
    assert bond["mode"] == "802.3ad" and bond["hash_policy"] == "layer3+4"
    assert [m["name"] for m in bond["members"] if m["up"] and m["role"] == "active"] == ["eth0", "eth1"]


def test_etherchannel_with_a_backup_adapter():
    from lpmbench.platform.aix import parse_lsattr

    channel = aggregate.etherchannel_from_lsattr(parse_lsattr(fixture("aix/lsattr_El_ent5_etherchannel.txt")))
    assert channel["mode"] == "8023ad" and channel["hash_policy"] == "default"
    assert [(m["name"], m["role"]) for m in channel["members"]] == [("ent0", "active"), ("ent1", "active"),
                                                                  ("ent2", "backup")]
    moved = aggregate.parse_entstat_bytes(fixture("aix/entstat_d_ent5_etherchannel.txt"))
    assert moved["ent5"] == {"tx": 5680000000, "rx": 101000000}
    assert moved["ent0"] == {"tx": 5679000000, "rx": 51000000} and moved["ent1"] == {"tx": 1000000, "rx": 50000000}
    assert moved["ent2"] == {"tx": 0, "rx": 0}


def test_etherchannel_without_hash_mode_and_no_backup():
    from lpmbench.platform.aix import parse_lsattr

    channel = aggregate.etherchannel_from_lsattr(parse_lsattr(fixture("aix/lsattr_El_ent6_etherchannel_old.txt")))
    assert channel["hash_policy"] is None and channel["mode"] == "standard"
    assert [m["name"] for m in channel["members"]] == ["ent3", "ent4"]
    assert aggregate.etherchannel_from_lsattr(parse_lsattr(fixture("aix/lsattr_El_ent0.txt"))) is None


ROUTES = json.dumps([
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "10.99.0.0/24", "nexthops": [{"gateway": "10.98.1.2", "dev": "v1", "weight": 1},
                                          {"gateway": "10.98.2.2", "dev": "v2", "weight": 1}]},
    {"dst": "10.99.0.7", "dev": "eth0", "gateway": "192.0.2.1"},
])


def test_multipath_route_to_the_peer():
    assert aggregate.parse_multipath(ROUTES, "10.99.0.2") == ["v1", "v2"]
    assert aggregate.parse_multipath(ROUTES, "10.99.0.7") == []  # a longer single-path route wins
    assert aggregate.parse_multipath(ROUTES, "198.51.100.1") == []
    assert aggregate.parse_multipath("not json", "10.99.0.2") == []


def test_the_audit_reports_the_expert_facts_on_loopback():
    audit = InterfaceAudit()
    audit.start("127.0.0.1")
    msp = audit.finish()["msp"]
    assert set(msp) == {"reach", "mover", "cpu", "aggregate"}
    assert msp["mover"]["available"] is False and msp["aggregate"] is None
    assert msp["cpu"]["limit_cores"] >= 0.01
    if shutil.which("ping"):
        assert msp["reach"]["reachable"] is True
