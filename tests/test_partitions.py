"""HMC partition lists (lpmbench.analysis.partitions): IBM's -F formats, the CSV, and bad input by line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lpmbench.analysis.partitions import (
    MAX_PARTITION_BYTES,
    Partition,
    PartitionFileError,
    apply_states,
    parse_partitions,
    parse_states,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hmc"
MiB, GiB = 2**20, 2**30


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_lshwres_output_in_mb_with_spaces_commas_and_stopped_partitions():
    found = parse_partitions(fixture("lshwres-mem-lpar.txt"))
    by_name = {p.name: p for p in found}
    assert len(found) == 22
    assert by_name["DB2 PROD 01"].memory_bytes == 384 * GiB  # 393216 MB, the HMC's MB being MiB
    assert by_name["web, frontend"] == Partition("web, frontend", 32 * GiB, None, None, 6)
    assert by_name["test db"].memory_bytes == 0  # Not Activated: no current memory
    assert [p.name for p in found][:2] == ["DB2 PROD 01", "sap-app-01"]  # the HMC's order is kept


def test_lshwres_with_header_reads_the_same():
    found = parse_partitions(fixture("lshwres-mem-lpar-header.txt"))
    assert [(p.name, p.memory_bytes) for p in found] == [
        ("DB2 PROD 01", 384 * GiB), ("web, frontend", 32 * GiB), ("test db", 0)]


def test_csv_with_named_columns_units_dirty_rates_and_states():
    found = parse_partitions(fixture("partitions.csv"))
    db, sap, web, test = found
    assert (db.memory_bytes, db.dirty_rate_Bps, db.state) == (384 * GiB, 250 * MiB, "Running")
    assert sap.dirty_rate_Bps == 40 * MiB
    assert web.name == "web, frontend" and web.dirty_rate_Bps is None  # empty: the default applies
    assert test.state == "Not Activated" and test.memory_bytes == 0


def test_lssyscfg_states_join_and_vios_stay():
    states = parse_states(fixture("lssyscfg-lpar.txt"))
    assert states["test db"] == ("Not Activated", "aixlinux")
    assert states["web, frontend"] == ("Running", "aixlinux")
    kept, vios = apply_states(parse_partitions(fixture("lshwres-mem-lpar.txt")), states)
    assert vios == ["vios-a1", "vios-a2"]
    assert len(kept) == 20
    assert {p.name for p in kept if p.state == "Not Activated"} == {"test db", "dev-app-02", "archive"}


def test_states_with_header_and_two_fields():
    states = parse_states("name,state\nlpar 1,not activated\nlpar 2,Running\n")
    assert states == {"lpar 1": ("Not Activated", None), "lpar 2": ("Running", None)}


def test_states_may_list_more_partitions_but_not_fewer():
    found = parse_partitions("a,1024\nb,2048\n")
    kept, _ = apply_states(found, parse_states("a,Running\nb,Running\nc,Running\n"))
    assert [p.name for p in kept] == ["a", "b"]
    with pytest.raises(PartitionFileError, match=r"'b' \(line 2 of the partition list\) has no state"):
        apply_states(found, parse_states("a,Running\n"), "states.txt")


def test_blank_lines_and_comments_are_skipped_and_lines_still_counted():
    with pytest.raises(PartitionFileError, match="f line 4"):
        parse_partitions("# lshwres output\n\na,1024\nb,lots\n", "f")


@pytest.mark.parametrize("text,needle", [
    ("a,1024\na,2048\n", "line 2: partition 'a' is listed twice (first on line 1)"),
    ("a,4GiB\n", "line 1: curr_mem '4GiB' of 'a' is not a whole number of MB"),
    ("a,1024.5\n", "line 1: curr_mem '1024.5'"),
    ("a,-1\n", "line 1: curr_mem '-1'"),
    ("web, frontend,1024\n", "line 1: expected 2 fields"),
    ('"a,1024\n', "line 1: unexpected end of data"),
    ("a\n", "line 1: expected 2 fields"),
    (",1024\n", "line 1: the partition name is empty"),
    ("a,99999999999\n", "line 1: partition 'a' has 95367 TiB, more than any Power server holds"),
    ("name,memory\na,4096\n", "line 2: memory '4096' of 'a' has no unit"),
    ("name,memory\na,4 lots\n", "line 2: memory of 'a': unknown size unit 'lots'"),
    ("name,memory\na,4Gb\n", "line 2: memory of 'a': unknown size unit 'Gb'"),
    ("name,memory,dirty_rate\na,4GiB,10Mb/s\n", "line 2: dirty rate of 'a': rate unit 'Mb/s'"),
    ("name,memory,state\na,4GiB,Runing\n", "line 2: unknown partition state 'Runing'"),
    ("name,memry\na,4GiB\n", "line 1: unknown column 'memry'"),
    ("name,memory,curr_mem\na,4GiB,4096\n", "line 1: the header needs a name column and one of memory"),
    ("name,memory\na,4GiB,3\n", "line 2: expected 2 fields as the header names"),
    ("name,memory\n", "no partitions found"),
    ("", "no partitions found"),
    ("a\x07b,1024\n", "must be 1-64 printable characters"),
])
def test_bad_partition_lists_name_the_line(text, needle):
    with pytest.raises(PartitionFileError) as caught:
        parse_partitions(text, "frame.txt")
    assert needle in str(caught.value)
    assert str(caught.value).startswith("frame.txt")


@pytest.mark.parametrize("text,needle", [
    ("a,Running\na,Running\n", "line 2: partition 'a' is listed twice"),
    ("a\n", "line 1: expected 2 or 3 fields"),
    ("a,Running,aixlinux,x\n", "line 1: expected 2 or 3 fields"),
    ("a,Sleeping\n", "line 1: unknown partition state 'Sleeping'"),
    ("a,\n", "line 1: partition 'a' has no state"),
])
def test_bad_state_lists_name_the_line(text, needle):
    with pytest.raises(PartitionFileError, match="states.txt") as caught:
        parse_states(text, "states.txt")
    assert needle in str(caught.value)


def test_a_partition_named_name_is_data_not_a_header():
    assert parse_partitions("name,1024\n")[0] == Partition("name", 1024 * MiB, None, None, 1)


def test_the_largest_plausible_partition_is_accepted():
    assert parse_partitions(f"big,{MAX_PARTITION_BYTES // MiB}\n")[0].memory_bytes == MAX_PARTITION_BYTES
    with pytest.raises(PartitionFileError, match="more than any Power server"):
        parse_partitions(f"big,{MAX_PARTITION_BYTES // MiB + 1}\n")


def test_more_partitions_than_a_system_runs_is_refused():
    with pytest.raises(PartitionFileError, match="line 1001: more than 1000 partitions"):
        parse_partitions("".join(f"p{i},1024\n" for i in range(1001)))


names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=64).filter(
    lambda n: n == n.strip() and n.isprintable() and not n.lstrip().startswith("#"))


def _hmc_field(name: str) -> str:
    """How the HMC's -F writes a value: in double quotes when it holds the delimiter or a quote."""
    return '"' + name.replace('"', '""') + '"' if ("," in name or '"' in name) else name


@given(st.lists(st.tuples(names, st.integers(0, 2**26)), min_size=1, max_size=20, unique_by=lambda t: t[0]))
def test_any_names_and_sizes_survive_the_hmc_quoting(rows):
    text = "".join(f"{_hmc_field(name)},{mb}\n" for name, mb in rows)
    found = parse_partitions(text)
    assert [(p.name, p.memory_bytes) for p in found] == [(name, mb * MiB) for name, mb in rows]
