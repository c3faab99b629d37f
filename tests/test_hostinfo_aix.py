"""AIX / VIOS interface audit, driven by command output in tests/fixtures/aix/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lpmbench.platform import aix

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aix"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def physical_facts(**replacements: str) -> dict:
    attrs = fixture("lsattr_El_ent0.txt")
    for old, new in replacements.items():
        attrs = attrs.replace(old, new)
    return aix.facts_from_outputs("en0", "ent0", adapter_attrs=attrs,
                                  entstat=fixture("entstat_d_ent0.txt"),
                                  interface_attrs=fixture("lsattr_El_en0.txt"))


def sea_facts(real_attrs: str | None = None) -> dict:
    return aix.facts_from_outputs(
        "en10", "ent10", adapter_attrs=fixture("lsattr_El_ent10_sea.txt"),
        entstat=fixture("entstat_d_ent10_sea.txt"), interface_attrs=fixture("lsattr_El_en10.txt"),
        real_adapter_attrs=fixture("lsattr_El_ent0.txt") if real_attrs is None else real_attrs)


@pytest.mark.parametrize(("name", "expected"), [
    ("en0", ("en0", "ent0")), ("ent12", ("en12", "ent12")), ("et3", ("et3", "ent3")),
    ("lo0", ("lo0", None)),
])
def test_interface_maps_to_its_adapter(name: str, expected: tuple) -> None:
    assert aix.split_name(name) == expected


@pytest.mark.parametrize("bad", ["eth0", "en", "ent0; rm -rf /", "../en0", "sea0"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an AIX"):
        aix.interface_facts(bad)


def test_lsattr_values_including_empty_ones() -> None:
    sea = aix.parse_lsattr(fixture("lsattr_El_ent10_sea.txt"))
    assert sea["real_adapter"] == "ent0" and sea["virt_adapters"] == "ent8"
    assert sea["largesend"] == "1" and sea["large_receive"] == "no"
    assert sea["ctl_chan"] == ""  # empty value: the description is not taken for it
    en0 = aix.parse_lsattr(fixture("lsattr_El_en0.txt"))
    assert en0["mtu"] == "9000" and en0["alias4"] == "" and en0["netaddr"] == "10.20.30.11"
    assert aix.parse_lsattr("") == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("10000 Mbps Full Duplex", (10000, "full")),
    ("10 Gbps Full Duplex", (10000, "full")),
    ("25 Gbps Full Duplex", (25000, "full")),
    ("100 Mbps Half Duplex", (100, "half")),
    ("1000_Full_Duplex", (1000, "full")),
    ("Auto_Negotiation", (None, None)),
    ("Unknown", (None, None)),
    (None, (None, None)),
])
def test_media_speed_forms(text: str | None, expected: tuple) -> None:
    assert aix.parse_media_speed(text) == expected


def test_entstat_of_a_physical_adapter() -> None:
    ent0 = aix.parse_entstat(fixture("entstat_d_ent0.txt"))["ent0"]
    assert ent0["device_type"].startswith("PCIe2 2-port 10GbE")
    # "Link Speed: 5.0 Gbps" is the PCIe link, not the Ethernet speed
    assert (ent0["speed_mbps"], ent0["duplex"]) == (10000, "full")
    assert ent0["link_up"] is True and ent0["jumbo_frames"] is True
    assert ent0["large_send"] is True and ent0["large_receive"] is True
    assert ent0["flow_control"] == {"rx": True, "tx": True}
    assert ent0["counters"] == {"rx_errors": 3, "tx_errors": 0, "rx_dropped": 12, "tx_dropped": 0}


def test_entstat_of_an_sea_has_a_section_per_adapter() -> None:
    sections = aix.parse_entstat(fixture("entstat_d_ent10_sea.txt"))
    assert list(sections) == ["ent10", "ent0", "ent8"]
    assert sections["ent10"]["device_type"] == "Shared Ethernet Adapter"
    assert sections["ent10"]["counters"] == {"rx_errors": 0, "tx_errors": 0, "rx_dropped": 7,
                                             "tx_dropped": 4}
    assert sections["ent0"]["speed_mbps"] == 10000
    assert sections["ent8"]["device_type"] == "Virtual I/O Ethernet Adapter (l-lan)"
    assert sections["ent8"]["speed_mbps"] is None


def test_facts_of_a_physical_10g_interface() -> None:
    facts = physical_facts()
    assert facts == {
        "name": "en0", "speed_mbps": 10000, "duplex": "full", "mtu": 9000,
        "large_send": True, "large_receive": True, "flow_control": {"rx": True, "tx": True},
        "jumbo_frames": True, "virtual": False,
        "driver": "PCIe2 2-port 10GbE SFP+Copper Adapter (a21910071410d103)",
        "adapter": "ent0", "real_adapter": None, "link_up": True,
        "counters": {"rx_errors": 3, "tx_errors": 0, "rx_dropped": 12, "tx_dropped": 0},
    }


def test_large_send_and_receive_off_are_reported() -> None:
    facts = physical_facts(**{"large_send     yes": "large_send     no ",
                              "large_receive  yes": "large_receive  no "})
    assert facts["large_send"] is False and facts["large_receive"] is False


def test_facts_of_an_sea_interface_follow_the_real_adapter() -> None:
    facts = sea_facts()
    assert facts["virtual"] is True and facts["driver"] == "Shared Ethernet Adapter"
    assert facts["real_adapter"] == "ent0" and facts["speed_mbps"] == 10000
    assert facts["mtu"] == 1500 and facts["jumbo_frames"] is True  # jumbo on, MTU never raised
    assert facts["large_send"] is True  # largesend=1 on the SEA, large_send=yes on ent0
    assert facts["large_receive"] is False  # the SEA has large_receive=no
    assert facts["counters"]["tx_dropped"] == 4


def test_sea_large_send_needs_the_real_adapter_too() -> None:
    real = fixture("lsattr_El_ent0.txt").replace("large_send     yes", "large_send     no ")
    assert sea_facts(real_attrs=real)["large_send"] is False


def test_facts_of_a_plain_virtual_ethernet_interface() -> None:
    facts = aix.facts_from_outputs("en8", "ent8", entstat=fixture("entstat_d_ent10_sea.txt"),
                                   interface_attrs=fixture("lsattr_El_en10.txt"))
    assert facts["virtual"] is True and facts["speed_mbps"] is None
    assert facts["large_send"] is True  # mtu_bypass=on stands for largesend on virtual Ethernet
    assert facts["jumbo_frames"] is False  # no adapter attribute: MTU 1500 says no


def test_missing_outputs_give_unknown_facts() -> None:
    facts = aix.facts_from_outputs("en0", "ent0")
    assert facts["speed_mbps"] is None and facts["large_send"] is None
    assert facts["virtual"] is None and facts["counters"]["rx_errors"] is None


def test_tcp_counters_from_netstat() -> None:
    counters = aix.parse_netstat_tcp(fixture("netstat_s_p_tcp.txt"))
    assert counters == {"segments_out": 5817939, "retransmits": 2093}
    with pytest.raises(ValueError, match="retransmitted"):
        aix.parse_netstat_tcp("tcp:\n\t12 packets sent\n")


def test_route_get() -> None:
    assert aix.parse_route_get(fixture("route_n_get.txt")) == "en10"
    assert aix.parse_route_get("route: writing to routing socket: not in table") is None


@pytest.mark.parametrize(("address", "interface"), [
    ("10.20.30.40", "en0"),        # connected subnet
    ("10.20.31.77", "en10"),
    ("10.44.7.21", "en10"),        # more specific than default
    ("192.0.2.10", "en0"),         # default route
    ("10.20.30.11", "lo0"),        # our own address
    ("127.0.0.1", "lo0"),
    ("::1", "lo0"),
    ("fd00:20:30::5", "en0"),
    ("2001:db8::1", None),         # no IPv6 default route
])
def test_route_from_netstat_rn(address: str, interface: str | None) -> None:
    assert aix.route_from_netstat(fixture("netstat_rn.txt"), address) == interface


def test_os_name_forms() -> None:
    level = aix.parse_ioslevel(fixture("ioslevel.txt"))
    assert level == "3.1.4.31"
    assert aix.os_name_from("7", "3", level) == "VIOS 3.1.4.31 (AIX 7.3)"
    assert aix.os_name_from("7", "3", None) == "AIX 7.3"
    assert aix.parse_ioslevel("") is None


def test_commands_absent_give_unknown_not_a_crash() -> None:
    # On Linux entstat is missing and lsattr (e2fsprogs) rejects -El: unknown, never a crash.
    if sys.platform.startswith("aix"):
        pytest.skip("this is AIX: the real commands answer")
    facts = aix.interface_facts("en0")
    assert facts["name"] == "en0" and facts["speed_mbps"] is None and facts["mtu"] is None
    assert aix.counters_snapshot("lo0") == dict.fromkeys(aix.COUNTER_NAMES, 0)
    with pytest.raises(ValueError, match="not an IP address"):
        aix.route_interface("mover-b")
