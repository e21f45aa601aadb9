"""Secrets in feed addresses kept out of everything but the request itself. Pure functions.

A private feed is often subscribed to as `https://user:password@host/feed` or with an access token in its
query (`?token=...`). feeds.yaml and the archive keep the address as written (it is the feed's identity);
logs, `status`, `/healthz`, `/metrics` and the republished feeds show it with those parts masked.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?i)\b(https?://)[^/?#@\s]+@")
# A query parameter whose name says it is a secret: token, access_token, api_key, apikey, key, secret,
# password, auth, sig... (as the whole name or its last part after _ or -; "keyword" and "monkey" are not).
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:[a-z0-9]+[_-])*(?:token|key|apikey|secret|password|passwd|pwd|auth|signature|sig)=)[^&;#\s]*"
)


def redact_url(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with credentials and secret query values masked."""
    if "@" not in text and "=" not in text:
        return text
    return _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", _USERINFO.sub(rf"\g<1>{MASK}@", text))
