"""Counts read from untrusted text (feed fields, response headers)."""

from __future__ import annotations

# Far beyond any real ttl, max-age or Retry-After, and far inside SQLite's 64-bit integers.
ONE_YEAR_SECONDS = 366 * 24 * 3600
ONE_YEAR_MINUTES = 366 * 24 * 60
# The largest integer every JSON reader (JavaScript's included) keeps exact.
MAX_JSON_INTEGER = 2**53 - 1


def read_count(text: str | None, maximum: int) -> int | None:
    """The non-negative integer `text` spells, at most `maximum`; None unless it is plain ASCII digits.

    A value past `maximum` reads as `maximum`: a feed may claim anything, but a 20-digit ttl must not
    overflow SQLite and a 5,000-digit one must not trip Python's limit on converting long strings.
    """
    if text is None:
        return None
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"  # "0000000060" is 60, however long it is written
    if len(digits) > len(str(maximum)):
        return maximum
    return min(int(digits), maximum)


def read_json_count(value: object, maximum: int) -> int | None:
    """A JSON number that is a non-negative whole count, at most `maximum`; None for anything else.

    5000000.0 is 5000000: JavaScript has only doubles, and many JSON writers print a whole one that way.
    A fraction, a negative number, infinity or NaN (which Python's json reads) counts nothing, and
    neither do the digits of an integer too long to convert (the JSON reader leaves them as text).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer() or value < 0:  # also False for infinity and NaN
            return None
        return maximum if value > maximum else int(value)
    if isinstance(value, int):
        return min(value, maximum) if value >= 0 else None
    return None
