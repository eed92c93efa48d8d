"""What a bind address means to the people who connect to it: loopback-only or every
interface, and the URL that reaches it from this machine. The listener, the feed server and
the metrics endpoint all answer these the same way."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for a bind to every interface, which is reached locally at 127.0.0.1."""
    return host in ("0.0.0.0", "::", "")


def local_url(scheme: str, host: str, port: int, path: str = "") -> str:
    """The URL that reaches a server bound to `host`:`port` from this machine."""
    if is_wildcard(host):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"
