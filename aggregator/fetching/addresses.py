"""Which URLs the fetcher may follow: what the network adds (redirects, learned URLs) must not reach
loopback, private, link-local or metadata addresses unless the operator allowed that host:port.

A URL the operator wrote in feeds.yaml is the operator's choice and is fetched as written (unless
`strict_network` is on), and so is a redirect that stays on that URL's own host and port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _origin(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return None
    return parts.hostname.lower().rstrip("."), port


def same_origin(a: str, b: str) -> bool:
    origin = _origin(a)
    return origin is not None and origin == _origin(b)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself: dotted, bracketed IPv6, or the legacy numeric forms
    (2130706433, 0x7f.1, 0177.0.0.1) that C resolvers and browsers still accept."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def _allowed(origin: tuple[str, int], allow_hosts: frozenset[str]) -> bool:
    host, port = origin
    return f"{host}:{port}" in allow_hosts or (f"[{host}]:{port}" in allow_hosts)


def exempt(url: str, configured_url: str, allow_hosts: frozenset[str], strict: bool) -> bool:
    """True when `url` may reach any address: allow-listed, or on the configured URL's own origin."""
    origin = _origin(url)
    if origin is not None and _allowed(origin, allow_hosts):
        return True
    return not strict and same_origin(url, configured_url)


def peer_refusal(url: str, peer: str | None) -> str | None:
    """Why a connection already made must not be used: the address actually connected to is not public
    (a hostname that resolved to a public address when checked and to a private one when connecting)."""
    if peer is None:
        return None
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return None
    if is_public(address):
        return None
    return f"refused {url}: the connection went to non-public address {address}"


async def refusal(url: str, configured_url: str, allow_hosts: frozenset[str], strict: bool) -> str | None:
    """Why `url` must not be fetched, or None when it may be."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"refused non-HTTP URL {url}"
    origin = _origin(url)
    if origin is None:
        return f"refused URL without a valid host: {url!r}"
    if _allowed(origin, allow_hosts):
        return None
    if not strict and same_origin(url, configured_url):
        return None
    host = origin[0]
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, origin[1], type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            return f"cannot resolve {host}: {error}"
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            return (
                f"refused {url}: {host} is a non-public address ({address}); "
                f"add '{host}:{origin[1]}' to settings.allow_hosts to allow it"
            )
    return None
