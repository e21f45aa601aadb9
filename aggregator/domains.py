"""Which requests share a politeness budget: those to one registrable domain (feeds.bbci.co.uk and
www.bbci.co.uk are one operator), judged with the Public Suffix List through tldextract.

Only the list bundled with tldextract is used: looking it up never touches the network.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import tldextract

# Private suffixes count (blogspot.com, github.io): x.blogspot.com and y.blogspot.com are two owners.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """example.co.uk for a.b.example.co.uk; the host itself for IP addresses, localhost and the like."""
    host = host.lower().rstrip(".")
    domain = _EXTRACT(host).top_domain_under_public_suffix
    return domain or host


def politeness_key(url: str) -> str:
    return registrable_domain(urlsplit(url).hostname or "")
