"""Sockets and trust: socket options, the path-MTU probe, allow lists, TLS, keys, the event loop choice."""
