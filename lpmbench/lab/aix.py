"""The AIX personality: run a real lpmbench command on Linux as it would run on a VIOS.

    python -m lpmbench.lab.aix agent --key-file KEY --bind ADDR
    python -m lpmbench.lab.aix pair A B --key-file KEY

Before lpmbench is imported, this process is made to look like AIX's CPython 3.9 from the AIX Toolbox:

- ``sys.platform`` is ``"aix"`` and ``platform.uname()`` says AIX 7.3, so :mod:`lpmbench.platform` chooses
  ``aix.py`` and every platform check in the package takes its AIX branch;
- the ``socket``, ``os`` and ``select`` modules lose what AIX's CPython does not have (:data:`AIX_LACKS`;
  sources: AIX 7.2's headers as mirrored by golang.org/x/sys unix/zerrors_aix_ppc64.go, CPython's #ifdef
  guards in Modules/socketmodule.c and posixmodule.c, CPython issue 81517 for os.sendfile);
- the asyncio loop uses poll(2) (AIX has no epoll); psutil, when installed, is imported while the process is
  still Linux, as the same API reading the Linux kernel (``LPMBENCH_AIX_NO_PSUTIL=1``: no psutil at all);
- uvloop cannot be imported (no AIX build) and ``LPMBENCH_NO_EXTENSIONS=1`` (a VIOS has no compiler), so the
  pure-Python data plane and the stock asyncio loop run, as they would there;
- ``PATH`` starts with wrapper scripts that answer ``lsattr`` (adapters, interfaces and vioslpm0), ``entstat``,
  ``netstat``, ``route``, ``ioscli``, ``lparstat -i`` and ``ping`` in IBM's documented formats from the Linux
  state underneath (:mod:`lpmbench.lab.aix_commands`).

What stays Linux, plainly: the kernel. TCP, path-MTU discovery, the socket options that do exist and every
number the commands print come from Linux. The personality proves that the AIX code paths work end to end
and never lean on a Linux-only facility; it does not prove how AIX's TCP behaves. Nothing here has run on a
real VIOS.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import select
import selectors
import shutil
import socket
import sys
import sysconfig
import tempfile

from lpmbench.lab import aix_commands

# Names Linux's CPython exports and AIX's does not (its headers lack them), by module.
AIX_LACKS: dict[object, tuple[str, ...]] = {
    socket: (
        "TCP_INFO", "TCP_USER_TIMEOUT", "TCP_CONGESTION", "TCP_CORK", "TCP_DEFER_ACCEPT", "TCP_LINGER2",
        "TCP_QUICKACK", "TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_FASTOPEN", "TCP_NOTSENT_LOWAT",
        "SO_BINDTODEVICE", "SO_MARK", "SO_PRIORITY", "SO_PASSCRED", "SO_PEERCRED", "SO_INCOMING_CPU",
        "SO_ZEROCOPY", "SO_MAX_PACING_RATE", "MSG_ZEROCOPY", "MSG_ERRQUEUE", "MSG_CONFIRM", "MSG_MORE",
        "MSG_DONTWAIT", "IP_RECVERR", "IPV6_RECVERR", "IP_MTU_DISCOVER", "IP_PMTUDISC_DO",
        "IP_PMTUDISC_PROBE", "IP_MTU", "IPV6_MTU_DISCOVER", "IPV6_MTU", "IP_TRANSPARENT",
        "IP_BIND_ADDRESS_NO_PORT", "AF_PACKET", "AF_NETLINK",
    ),
    os: ("sendfile", "memfd_create", "splice", "eventfd", "pidfd_open", "sched_setaffinity"),
    select: ("epoll",),
}
UNAME = ("AIX", "3", "7", "00F84C7A4C00")  # system, release, version, machine: AIX 7.3 on POWER


def become_aix() -> str:
    """Make this process look like AIX's CPython; returns the folder of command wrappers on PATH.

    Call before importing anything of lpmbench but :mod:`lpmbench.lab`.
    """
    already = [name for name in sys.modules if name.startswith("lpmbench.") and not name.startswith("lpmbench.lab")]
    if already:
        raise RuntimeError(f"become_aix() must run before lpmbench is imported (already: {sorted(already)[:3]})")
    _import_psutil_as_linux()
    sysconfig.get_config_vars()  # cached now: it finds the interpreter's build data by sys.platform
    sys.platform = "aix"
    node = platform.node()
    platform.uname = lambda: platform.uname_result(UNAME[0], node, UNAME[1], UNAME[2], UNAME[3])  # type: ignore
    for module, names in AIX_LACKS.items():
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
    selectors.DefaultSelector = selectors.PollSelector  # what selectors picks where there is no epoll
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # import uvloop now raises ImportError
    os.environ["LPMBENCH_NO_EXTENSIONS"] = "1"
    commands = _command_folder()
    os.environ["PATH"] = commands + os.pathsep + os.environ.get("PATH", "")
    os.environ[aix_commands.COMMANDS_ENV] = commands  # a stand-in that wraps a Linux tool of its name skips it
    return commands


def _import_psutil_as_linux() -> None:
    """psutil picks its platform module from sys.platform at import: import it while this is still Linux.

    On a VIOS psutil comes from the AIX Toolbox or a local build, or not at all; its API is the same, and here
    it reads the Linux kernel underneath, like every other number. Without psutil the agent runs with CPU
    figures unknown, which ``LPMBENCH_AIX_NO_PSUTIL=1`` emulates.
    """
    if os.environ.get("LPMBENCH_AIX_NO_PSUTIL", "") not in ("", "0"):
        sys.modules["psutil"] = None  # type: ignore[assignment]
        return
    with contextlib.suppress(ImportError):
        import psutil  # noqa: F401


def _command_folder() -> str:
    """A folder of sh wrappers, one per emulated command, removed when this process exits."""
    folder = tempfile.mkdtemp(prefix="lpmbench-aix-")
    atexit.register(shutil.rmtree, folder, True)
    for name in aix_commands.COMMANDS:
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as script:
            script.write(f'#!/bin/sh\nexec "{sys.executable}" -m lpmbench.lab.aix_commands {name} "$@"\n')
        os.chmod(path, 0o755)
    return folder


def main(argv: list[str]) -> None:
    commands = become_aix()
    from lpmbench.platform import aix  # only now: it must see the AIX personality

    aix.IOSCLI = os.path.join(commands, "ioscli")  # the real one is /usr/ios/cli/ioscli on a VIOS
    from lpmbench.cli import main as lpmbench_main

    sys.argv = ["lpmbench", *argv]
    lpmbench_main()


if __name__ == "__main__":
    main(sys.argv[1:])
