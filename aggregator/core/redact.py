"""Secrets in feed addresses kept out of everything but the request itself. Pure functions.

A private feed is often subscribed to as `https://user:password@host/feed` or with an access token in its
query (`?token=...`). feeds.yaml and the archive keep the address as written (it is the feed's identity);
logs, `status`, `/healthz`, `/metrics` and the republished feeds show it with those parts masked.
"""

from __future__ import annotations

import hashlib
import re

MASK = "***"
# Up to the last "@" before the path, as urlsplit reads it: a password may itself hold an "@".
# Any scheme: a mistyped `ftp://user:password@...` in a message is as secret as an http one.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s'\"<>]+@")
# A password holding a raw "/", "?" or "#" (it should have been percent-encoded) ends the authority early
# for urlsplit, but is no less secret: after "user:", it runs to the last "@" that a host follows (within
# 512 characters: a message of many "x://y:" must not cost the square of its length).
_USERINFO_RAW = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s'\"<>:@\[\]]*):([^\s'\"<>]{0,512})@(?=[^/?#\s'\"<>@]+(?:[/?#\s'\"<>]|$))"
)
_PORT_THEN_PATH = re.compile(r"[0-9]*(?:[/?#]|$)")
# A query parameter whose name says it is a secret: token, access_token, api_key, apikey, key, secret,
# password, auth, sig... (as the whole name or its last part after _ or -; "keyword" and "monkey" are not).
_SECRET_NAME = r"(?i)([?&;](?:[a-z0-9]+[_-])*(?:token|key|apikey|secret|password|passwd|pwd|auth|signature|sig)=)"
# In a message, the value ends at a quote or bracket around the address too.
_SECRET_PARAMETER = re.compile(_SECRET_NAME + r"[^&;#\s'\"<>]*")
# In a query alone, as it always was: the identifiers built from it must not change.
_SECRET_PARAMETER_IN_QUERY = re.compile(_SECRET_NAME + r"[^&;#\s]*")


def redact_url(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with credentials and secret query values masked."""
    if "@" not in text and "=" not in text:
        return text
    if ":" in text:
        text = _USERINFO_RAW.sub(_masked_raw_userinfo, text)
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    return _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", text)


def _masked_raw_userinfo(match: re.Match[str]) -> str:
    scheme, user, rest = match.groups()
    # `host.example:8443/feed?by=jo@example.org`, `localhost:8080/@jo`: a host and its port, and an "@"
    # further on; no userinfo. A single-label name before digits (`user:12/34@host`) is taken for a user
    # with a password: a feed on such a host with an "@" in its path is rarer than such a password.
    if _PORT_THEN_PATH.match(rest) and ("." in user or user.lower() == "localhost"):
        return match.group(0)
    return f"{scheme}{MASK}@"


def has_raw_delimiter_in_password(url: str) -> bool:
    """Whether `url`'s password holds a raw "/", "?" or "#": urlsplit reads part of it as the port (and
    says so in its error, password characters included)."""
    masked = _USERINFO_RAW.sub(_masked_raw_userinfo, url, count=1)
    return masked != url and _USERINFO.sub(rf"\g<1>{MASK}@", url, count=1) != masked


def fingerprint_secrets(query: str) -> str:
    """`query` with each secret parameter's value replaced by a short hash of it: stable and distinct per
    value, for identifiers built from a feed's address (two tokens of one feed are two feeds)."""

    def hashed(match: re.Match[str]) -> str:
        value = match.string[match.end(1) : match.end()]
        return match.group(1) + "h" + hashlib.sha256(value.encode()).hexdigest()[:12]

    return _SECRET_PARAMETER_IN_QUERY.sub(hashed, query)
