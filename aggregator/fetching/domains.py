"""Which requests share a politeness budget: those to one registrable domain (feeds.bbci.co.uk and
www.bbci.co.uk are one operator), judged with the Public Suffix List (publicsuffixlist, which bundles
the list and has no dependencies: looking a host up never touches the network).
"""

from __future__ import annotations

import ipaddress
from functools import cache, lru_cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList


@cache
def _suffix_list() -> PublicSuffixList:
    # Built on first use (60 ms): a run whose feeds are all on IP addresses or localhost never pays it.
    # Private suffixes count (blogspot.com, github.io): x.blogspot.com and y.blogspot.com are two owners.
    return PublicSuffixList(only_icann=False)


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """example.co.uk for a.b.example.co.uk; the host itself for IP addresses, localhost and the like."""
    host = host.lower().rstrip(".").strip("[]")
    if "." not in host:
        return host
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _suffix_list().privatesuffix(host) or host


def politeness_key(url: str) -> str:
    return registrable_domain(urlsplit(url).hostname or "")
