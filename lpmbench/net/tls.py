"""TLS for the control port (optional; the HMAC handshake authenticates either way).

The agent serves with ``--tls-cert``/``--tls-key`` and, with ``--tls-ca``, requires orchestrators to show a
certificate signed by that CA. ``pair`` verifies the agents against ``--tls-ca`` (or the system's trust
store with ``--tls``) and may present ``--tls-cert``/``--tls-key`` itself.
"""

from __future__ import annotations

import ssl


class TlsConfigError(Exception):
    """A certificate, key or CA file cannot be used; the message names the file."""


def _load(action: str, path: str, fn) -> None:  # type: ignore[no-untyped-def]
    try:
        fn()
    except FileNotFoundError:
        raise TlsConfigError(f"{action}: {path} does not exist") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsConfigError(f"{action}: cannot use {path}: {exc}") from None


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load("--tls-cert/--tls-key", f"{cert} / {key}", lambda: context.load_cert_chain(cert, key))
    if client_ca:
        _load("--tls-ca", client_ca, lambda: context.load_verify_locations(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: str | None = None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:
        _load("--tls-ca", ca, lambda: context.load_verify_locations(ca))
    if cert or key:
        if not (cert and key):
            raise TlsConfigError("--tls-cert and --tls-key go together")
        _load("--tls-cert/--tls-key", f"{cert} / {key}", lambda: context.load_cert_chain(cert, key))
    return context
