"""The partitions of a frame, read from what the HMC prints: pure functions of text, no I/O.

Three inputs, so that the admin never retypes what the HMC already knows:

* ``lshwres -r mem -m SYSTEM --level lpar -F lpar_name,curr_mem`` (optionally ``--header``): one partition a
  line, its current memory in MB. The HMC's MB are binary (memory is handed out in logical memory blocks
  of 16 to 256 MB, powers of two), so 4096 MB is 4 GiB. A partition that is not running has 0 MB.
* ``lssyscfg -r lpar -m SYSTEM -F name,state`` (optionally ``,lpar_env``): each partition's state. A
  ``Not Activated`` partition moves only its configuration; a VIOS (``lpar_env`` ``vioserver``) does not move.
* A CSV with a header line naming its columns, for what the HMC does not know: ``name``, ``memory`` (with a
  unit: ``256GiB``), and optionally ``dirty_rate`` (``600MiB/s``) and ``state``.

HMC ``-F`` output separates values with the delimiter given to ``-F`` (a comma here) and puts a value in
double quotes when it contains one (HMC manual pages, ``-F``); Python's csv module reads exactly that. Every
error is a ``PartitionFileError`` whose message names the file and the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Optional

from lpmbench.analysis.units import parse_rate_bps, parse_size_bytes

__all__ = [
    "ACTIVE_STATES",
    "INACTIVE_STATES",
    "MAX_PARTITIONS",
    "MAX_PARTITION_BYTES",
    "HMC_STATES",
    "Partition",
    "PartitionFileError",
    "apply_states",
    "parse_partitions",
    "parse_states",
]

HMC_MB = 2**20
# The largest Power servers (E1080, E1180) hold 64 TB; no partition can have more. Bigger is a unit mistake.
MAX_PARTITION_BYTES = 64 * 2**40
# An HMC-managed system runs at most 1000 partitions.
MAX_PARTITIONS = 1000
_MAX_NAME_CHARS = 64
# The states lssyscfg reports for a partition (HMC manual page of lssyscfg, attribute "state").
HMC_STATES = (
    "Running", "Not Activated", "Open Firmware", "Starting", "Shutting Down", "Error", "Not Available",
    "Migrating - Running", "Migrating - Not Activated", "Hardware Discovery", "Suspending", "Suspended",
    "Resuming",
)
# Active partition mobility moves a partition that is up (its memory crosses the MSPs); inactive mobility
# moves only the configuration of one that is off. Any other state has to settle before LPM can move it.
ACTIVE_STATES = frozenset({"Running", "Open Firmware"})
INACTIVE_STATES = frozenset({"Not Activated"})
_CANONICAL_STATE = {state.lower(): state for state in HMC_STATES}
_NAME_COLUMNS = {"name", "lpar_name", "partition"}
_KNOWN_COLUMNS = _NAME_COLUMNS | {"memory", "curr_mem", "dirty_rate", "state"}


class PartitionFileError(ValueError):
    """A partition list that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class Partition:
    """One partition of the frame. ``dirty_rate_Bps`` and ``state`` are None when the input did not say."""

    name: str
    memory_bytes: int
    dirty_rate_Bps: Optional[float] = None
    state: Optional[str] = None
    line: int = 0


def _records(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every line that is not blank or a ``#`` comment, one record a line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise PartitionFileError(
                f"{source} line {number}: {exc} in {line!r} (a double quote is not closed)"
            ) from None
        yield number, [field.strip() for field in fields]


def _column_key(field: str) -> str:
    return field.strip().lower().replace(" ", "_").replace("-", "_")


def _is_whole_number(text: str) -> bool:
    return text.isdigit()


def _looks_like_header(fields: list[str]) -> bool:
    # A partition may be called "name"; a header's second field is never a number of MB.
    return _column_key(fields[0]) in _NAME_COLUMNS and len(fields) > 1 and not _is_whole_number(fields[1])


def _check_name(name: str, where: str) -> str:
    if not name:
        raise PartitionFileError(f"{where}: the partition name is empty")
    if len(name) > _MAX_NAME_CHARS or not name.isprintable():
        raise PartitionFileError(f"{where}: partition name {name!r} must be 1-{_MAX_NAME_CHARS} printable characters")
    return name


def _check_size(name: str, size: int, where: str) -> int:
    if size > MAX_PARTITION_BYTES:
        raise PartitionFileError(
            f"{where}: partition {name!r} has {size / 2**40:.0f} TiB, more than any Power server holds (64 TB); "
            "is the unit right?"
        )
    return size


def _hmc_megabytes(name: str, text: str, where: str) -> int:
    if not _is_whole_number(text):
        raise PartitionFileError(
            f"{where}: curr_mem {text!r} of {name!r} is not a whole number of MB as lshwres prints it; for sizes "
            "with units write a CSV whose first line is name,memory (e.g. db01,256GiB)"
        )
    return _check_size(name, int(text) * HMC_MB, where)


def _size_with_unit(name: str, text: str, where: str) -> int:
    if _is_whole_number(text):
        raise PartitionFileError(
            f"{where}: memory {text!r} of {name!r} has no unit; write e.g. {text}MiB (the HMC's MB) or 256GiB"
        )
    try:
        size = parse_size_bytes(text)
    except ValueError as exc:
        raise PartitionFileError(f"{where}: memory of {name!r}: {exc}") from None
    return _check_size(name, size, where)


def _dirty_rate(name: str, text: str, where: str) -> Optional[float]:
    if not text:
        return None
    try:
        return parse_rate_bps(text) / 8
    except ValueError as exc:
        raise PartitionFileError(f"{where}: dirty rate of {name!r}: {exc}") from None


def _state(text: str, where: str) -> Optional[str]:
    if not text:
        return None
    state = _CANONICAL_STATE.get(" ".join(text.split()).lower())
    if state is None:
        raise PartitionFileError(f"{where}: unknown partition state {text!r}; the HMC's states are "
                                 + ", ".join(HMC_STATES))
    return state


def _field_count_error(fields: list[str], expected: str, where: str) -> PartitionFileError:
    return PartitionFileError(
        f"{where}: expected {expected}, found {len(fields)} field(s) {fields!r}; a name that contains a comma "
        "must be in double quotes, as the HMC writes it"
    )


def _header_columns(fields: list[str], where: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, field in enumerate(fields):
        key = _column_key(field)
        if key not in _KNOWN_COLUMNS:
            raise PartitionFileError(f"{where}: unknown column {field!r}; known columns are name, memory "
                                     "(with a unit), dirty_rate, state, or lshwres's lpar_name, curr_mem (MB)")
        key = "name" if key in _NAME_COLUMNS else key
        if key in columns:
            raise PartitionFileError(f"{where}: column {field!r} appears twice")
        columns[key] = index
    if "name" not in columns or ("memory" in columns) == ("curr_mem" in columns):
        raise PartitionFileError(f"{where}: the header needs a name column and one of memory or curr_mem")
    return columns


def _row_with_header(fields: list[str], columns: dict[str, int], where: str, number: int) -> Partition:
    if len(fields) != len(columns):
        raise _field_count_error(fields, f"{len(columns)} fields as the header names", where)
    name = _check_name(fields[columns["name"]], where)
    if "curr_mem" in columns:
        memory = _hmc_megabytes(name, fields[columns["curr_mem"]], where)
    else:
        memory = _size_with_unit(name, fields[columns["memory"]], where)
    dirty = _dirty_rate(name, fields[columns["dirty_rate"]], where) if "dirty_rate" in columns else None
    state = _state(fields[columns["state"]], where) if "state" in columns else None
    return Partition(name, memory, dirty, state, number)


def _row_lshwres(fields: list[str], where: str, number: int) -> Partition:
    if len(fields) != 2:
        raise _field_count_error(fields, "2 fields (lpar_name,curr_mem as lshwres -F prints them)", where)
    name = _check_name(fields[0], where)
    return Partition(name, _hmc_megabytes(name, fields[1], where), None, None, number)


def parse_partitions(text: str, source: str = "partitions") -> list[Partition]:
    """Partitions from lshwres ``-F lpar_name,curr_mem`` output, or from a CSV with a header line.

    ``source`` names the input in errors. Raises ``PartitionFileError`` on malformed lines, sizes without or
    with unknown units, a partition bigger than any Power server, duplicate names, or no partition at all.
    """
    partitions: list[Partition] = []
    first_line: dict[str, int] = {}
    columns: Optional[dict[str, int]] = None
    for number, fields in _records(text, source):
        where = f"{source} line {number}"
        if not partitions and columns is None and _looks_like_header(fields):
            columns = _header_columns(fields, where)
            continue
        partition = _row_with_header(fields, columns, where, number) if columns else _row_lshwres(fields, where,
                                                                                                   number)
        if partition.name in first_line:
            raise PartitionFileError(
                f"{where}: partition {partition.name!r} is listed twice (first on line {first_line[partition.name]})"
            )
        first_line[partition.name] = number
        partitions.append(partition)
        if len(partitions) > MAX_PARTITIONS:
            raise PartitionFileError(f"{where}: more than {MAX_PARTITIONS} partitions, more than one system runs")
    if not partitions:
        raise PartitionFileError(f"{source}: no partitions found")
    return partitions


def _is_states_header(fields: list[str]) -> bool:
    return len(fields) > 1 and _column_key(fields[0]) in _NAME_COLUMNS and _column_key(fields[1]) == "state"


def parse_states(text: str, source: str = "states") -> dict[str, tuple[str, Optional[str]]]:
    """``lssyscfg -r lpar -F name,state[,lpar_env]`` output: name -> (state, lpar_env or None)."""
    states: dict[str, tuple[str, Optional[str]]] = {}
    first_line: dict[str, int] = {}
    for number, fields in _records(text, source):
        where = f"{source} line {number}"
        if not first_line and _is_states_header(fields):
            continue  # lssyscfg --header
        if len(fields) not in (2, 3):
            raise _field_count_error(fields, "2 or 3 fields (name,state[,lpar_env] as lssyscfg -F prints them)",
                                     where)
        name = _check_name(fields[0], where)
        if name in first_line:
            raise PartitionFileError(f"{where}: partition {name!r} is listed twice (first on line {first_line[name]})")
        first_line[name] = number
        state = _state(fields[1], where)
        if state is None:
            raise PartitionFileError(f"{where}: partition {name!r} has no state")
        states[name] = (state, fields[2] if len(fields) == 3 and fields[2] else None)
    return states


def apply_states(
    partitions: list[Partition], states: dict[str, tuple[str, Optional[str]]], source: str = "states"
) -> tuple[list[Partition], list[str]]:
    """Partitions with their lssyscfg states, and the names of the VIOS left out (a VIOS does not migrate).

    Every partition must have a state; names only in ``states`` are ignored (lshwres may have been filtered).
    """
    kept: list[Partition] = []
    vios: list[str] = []
    for partition in partitions:
        if partition.name not in states:
            raise PartitionFileError(
                f"{source}: partition {partition.name!r} (line {partition.line} of the partition list) has no "
                "state; are both lists from the same system?"
            )
        state, environment = states[partition.name]
        if environment == "vioserver":
            vios.append(partition.name)
            continue
        kept.append(replace(partition, state=state))
    return kept, vios
