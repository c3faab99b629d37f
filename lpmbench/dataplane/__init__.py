"""The data plane: bulk send and receive of one stream. Chooses the C twin or the pure-Python twin once.

The C extension (``lpmbench.dataplane._lpmbench``, built from ``ext/``) is used when it imports, unless
``LPMBENCH_NO_EXTENSIONS=1`` is set or the interpreter is not CPython. Both twins expose the same API:
``new_counters``, ``send_stream``, ``recv_stream``, ``SLOT_BYTES``, ``SLOT_STOP``, ``SEND_METHODS``,
``POLL_SLICE_MS`` and ``IMPLEMENTATION`` ("c" or "python").

``send_stream(..., method="auto")`` follows one policy in both twins (AUTO_POLICY in ext/loops.c, with
the measurements behind it): plain ``send`` to a peer on a loopback address, where the receiver copies
anyway; otherwise ``zerocopy``, switching to ``send`` once the kernel reports that it copies anyway
(a namespace on the same host, a device without scatter-gather); ``sendfile`` then ``send`` when the
kernel refuses zerocopy. The method that carried the run is returned as ``method_used``.

The loops work on a duplicate of the caller's descriptor: closing the caller's descriptor does not end
a running loop (nor the connection); set ``counters[SLOT_STOP]`` (or ``shutdown()`` the socket).
"""

from __future__ import annotations

import logging
import os
import platform
from types import ModuleType

log = logging.getLogger(__name__)

#: Why the C twin is not in use, or None when it is.
fallback_reason: str | None = None


def _choose() -> ModuleType:
    global fallback_reason
    from lpmbench.dataplane import _python

    if os.environ.get("LPMBENCH_NO_EXTENSIONS", "") not in ("", "0"):
        fallback_reason = "LPMBENCH_NO_EXTENSIONS is set"
        return _python
    if platform.python_implementation() != "CPython":
        fallback_reason = f"{platform.python_implementation()} runs the pure-Python data plane"
        return _python
    try:
        from lpmbench.dataplane import _lpmbench  # type: ignore[attr-defined]
    except ImportError as exc:
        fallback_reason = f"C data plane unavailable ({exc}); using the pure-Python twin"
        log.warning("%s", fallback_reason)
        return _python
    return _lpmbench


_impl = _choose()

IMPLEMENTATION: str = _impl.IMPLEMENTATION
SLOT_BYTES: int = _impl.SLOT_BYTES
SLOT_STOP: int = _impl.SLOT_STOP
SEND_METHODS: tuple[str, ...] = tuple(_impl.SEND_METHODS)
#: The loops look at the stop flag and the deadline at least this often: a stop request or a passed
#: deadline ends a loop within one slice (plus the time to get a CPU back).
POLL_SLICE_MS: int = _impl.POLL_SLICE_MS
new_counters = _impl.new_counters
send_stream = _impl.send_stream
recv_stream = _impl.recv_stream
