"""Feed dates: parse keeping the source's own UTC offset, and clamp the absurd ones. Pure functions."""

from __future__ import annotations

import email.utils
import functools
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from aggregator.core.models import DateFlag

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
_ISO_SPACE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ Tt](\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(.*)$")
_FOUR_DIGIT_YEAR = re.compile(r"\b(\d{4})\b")
_ISO_OFFSET = re.compile(r"^(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
# The RFC 822 date nearly every RSS feed writes: "Wed, 16 Mar 2022 08:54:16 +0800".
_COMMON_RFC822 = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) (?:([+-])(\d{2})(\d{2})|GMT|UT|UTC|Z)"
)
_MONTHS = {name: number for number, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun"), 1)}
_MONTHS |= {name: number for number, name in enumerate(("jul", "aug", "sep", "oct", "nov", "dec"), 7)}


def parse_date(raw: str, naive_zone: tzinfo = UTC, local_names: tzinfo | None = None) -> datetime | None:
    """An aware datetime in the offset the source wrote, or None when the text is not a date we know.

    RFC 822 (RSS) and RFC 3339 / ISO 8601 (Atom, JSON Feed) cover nearly every feed; the caller falls
    back to the parser's own reading for the rest. Dates without an offset are read in `naive_zone`.
    See `read_date` for zone names.
    """
    return read_date(raw, naive_zone, local_names)[0]


def read_date(raw: str, naive_zone: tzinfo = UTC, local_names: tzinfo | None = None) -> tuple[datetime | None, bool]:
    """`parse_date`'s reading, and whether its offset is a guess: the date names a zone we cannot tell.

    A zone name that `local_names` uses at that moment is read in that zone: "CST" is China Standard
    Time (+0800) for a Chinese source, where email.utils knows only US Central (-0600). Other names are
    read at their one offset (CEST, BST, JST, AEST...; GMT and the US names as email.utils reads them).
    An ambiguous name (IST: India, Ireland or Israel) or an unknown one is read like a date without an
    offset, in `naive_zone`, and said to be a guess: email.utils would read it as UTC without a word.
    """
    text = (raw or "").strip()
    if not text:
        return None, False
    if text[-5:-4] == " " and text[-6:-5].isalpha() and (moved := _ZONE_BEFORE_YEAR.fullmatch(text)):
        # "Tue Jul 15 10:00:00 CEST 2025", as `date` writes it: email.utils would drop the zone's name
        text = f"{moved.group(1)} {moved.group(3)} {moved.group(2)}"
    if (
        text[-1].isalpha()
        and not text[-2:-1].isdigit()  # "...T08:54:16Z", nearly every Atom date: no zone name
        # "... GMT", nearly every RSS date: the whole text's usual reading is quicker
        and (local_names is not None or not text.endswith(_UTC_ENDINGS))
        and (named := _read_named_zone(text, naive_zone, local_names)) is not None
    ):
        return named
    parsed = _parse_text(text)
    if parsed is None:
        return None, False
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_zone)
        # Resolve a zone like Asia/Shanghai to its fixed offset, so the stored text carries +08:00.
        offset = parsed.utcoffset() or timedelta(0)
        parsed = parsed.replace(tzinfo=_fixed(offset))
    return parsed, False


_ZONE_NAME = re.compile(r"(.*\d)\s+([A-Za-z]{1,5})")
_ZONE_BEFORE_YEAR = re.compile(r"(.*\d)\s+([A-Za-z]{1,5})\s+(\d{4})")
_UTC_NAMES = frozenset({"GMT", "UT", "UTC", "Z"})
_UTC_ENDINGS = tuple(f" {name}" for name in _UTC_NAMES)
# What email.utils (and feedparser) read these as: the US zones, and the Atlantic one.
_EMAIL_ZONES = {"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}
_EMAIL_ZONES |= {"AST": -4, "ADT": -3}
# Names of one offset wherever feeds write them, in minutes east of UTC. Left out, as ambiguous: IST
# (India, Ireland, Israel), GST, SST, AMT, ECT... BST is British Summer Time (Bangladesh's zone data says
# +06, not BST); MEZ/MESZ are German for CET/CEST, MET/MEST older names for them.
_ZONE_OFFSETS = {
    "WET": 0, "WEST": 60, "CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "MEZ": 60, "MESZ": 120,
    "EET": 120, "EEST": 180, "BST": 60, "MSK": 180, "SAST": 120, "CAT": 120, "EAT": 180, "WAT": 60,
    "PKT": 300, "NPT": 345, "ICT": 420, "WIB": 420, "HKT": 480, "SGT": 480, "AWST": 480, "PHT": 480,
    "JST": 540, "KST": 540, "ACST": 570, "ACDT": 630, "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780,
    "HST": -600, "HDT": -540, "AKST": -540, "AKDT": -480, "NST": -210, "NDT": -150, "BRT": -180, "ART": -180,
}  # fmt: skip
_NOT_ZONES = frozenset({"AM", "PM"})


def _read_named_zone(text: str, naive_zone: tzinfo, local_names: tzinfo | None) -> tuple[datetime, bool] | None:
    """A date ending in a zone name, read as `read_date` says; None when it is not one (its other forms,
    or no date: the caller reads the text whole)."""
    match = _ZONE_NAME.fullmatch(text)
    if match is None:
        return None
    name = match.group(2).upper()
    if name in _NOT_ZONES:
        return None
    local = _parse_text(match.group(1))
    if local is None:
        return None
    if local.tzinfo is not None:
        return local, False  # "+0200 CEST": the offset says it
    if local_names is not None:
        in_zone = local.replace(tzinfo=local_names)
        if in_zone.tzname() == name:
            return in_zone.replace(tzinfo=_fixed(in_zone.utcoffset() or timedelta(0))), False
    if name in _UTC_NAMES:
        return local.replace(tzinfo=UTC), False
    if name in _EMAIL_ZONES:
        return local.replace(tzinfo=_fixed(timedelta(hours=_EMAIL_ZONES[name]))), False
    if name in _ZONE_OFFSETS:
        return local.replace(tzinfo=_fixed(timedelta(minutes=_ZONE_OFFSETS[name]))), False
    guessed = local.replace(tzinfo=naive_zone)
    return guessed.replace(tzinfo=_fixed(guessed.utcoffset() or timedelta(0))), True


def names_unknown_zone(text: str) -> bool:
    """Whether a date the parser read (where `read_date` could not) ends in a zone name it reads wrongly:
    feedparser takes any name it does not know for UTC."""
    match = _ZONE_NAME.fullmatch((text or "").strip())
    if match is None or not match.group(2).isupper():
        return False
    return match.group(2) not in _UTC_NAMES | _EMAIL_ZONES.keys() | {"MET", "MEST"} | _NOT_ZONES


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> datetime | None:
    """Cached: the fast parser reads each entry's dates to decide whether feedparser's reading is needed,
    and the normaliser then reads the same texts again."""
    return _parse_iso(text) or _parse_rfc822(text) or _parse_numeric(text)


# What Chinese (and many other) sites write: 2022/03/16 08:54:16, 2022年3月16日 8:54, 2022.03.16. Read
# here, in the feed's zone when no offset is written: feedparser's reading of them is a wrong date.
_NUMERIC = re.compile(
    r"(\d{4})(?:/|年\s*|\.)(\d{1,2})(?:/|月\s*|\.)(\d{1,2})日?"
    r"(?:(?:\s+|T)(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*(Z|[+-]\d{2}:?\d{2})?"
)


def _parse_numeric(text: str) -> datetime | None:
    match = _NUMERIC.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    tz: tzinfo | None = None
    try:
        if zone == "Z":
            tz = UTC
        elif zone:
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:
                return None
            tz = timezone((1 if zone[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes))
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=tz)
    except ValueError:  # a 13th month, a 25th hour: not a date
        return None


def _fixed(offset: timedelta) -> tzinfo:
    from datetime import timezone

    return UTC if not offset else timezone(offset)


def _parse_iso(text: str) -> datetime | None:
    match = _ISO_SPACE.match(text)
    if match:
        day, clock, zone = match.groups()
        if zone and not _ISO_OFFSET.match(zone):
            return None
        zone = {"z": "+00:00", "utc": "+00:00", "gmt": "+00:00"}.get(zone.lower(), zone)
        text = f"{day}T{clock.replace(',', '.')}{zone}"
    elif not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse_rfc822(text: str) -> datetime | None:
    if (common := _parse_common_rfc822(text)) is not None:
        return common
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # email.utils reads years below 100 as 19xx/20xx (RFC 2822's obsolete two-digit years) even when
    # written with four digits: "0001" must stay year 1, for the clamp to see it as absurd.
    written = _FOUR_DIGIT_YEAR.search(text)
    if written and int(written.group(1)) != parsed.year:
        try:
            parsed = parsed.replace(year=int(written.group(1)))
        except ValueError:
            return None
    return parsed


def _parse_common_rfc822(text: str) -> datetime | None:
    """email.utils' reading of the usual form, at a third of its cost (it runs for every RSS entry);
    None for anything else, which email.utils then reads (tests hold the two to the same results)."""
    match = _COMMON_RFC822.fullmatch(text)
    if match is None:
        return None
    day, month_name, year, hour, minute, second, sign, offset_hours, offset_minutes = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None or (sign == "-" and offset_hours == offset_minutes == "00"):
        return None  # -0000 means "offset unknown": email.utils returns a naive time for it
    offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes)) if sign else timedelta(0)
    try:
        return datetime(
            int(year),
            month,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError:
        return None


def clamp_date(value: datetime | None, first_seen: datetime) -> tuple[datetime, DateFlag]:
    """The date to keep and why it was replaced: missing, in the future, or before feeds existed."""
    if value is None:
        return first_seen, "missing"
    try:
        if value > first_seen + FUTURE_TOLERANCE:
            return first_seen, "future"
        if value < EARLIEST:
            return first_seen, "ancient"
    except OverflowError:
        return first_seen, "ancient"
    return value, ""


def format_offset_date(value: datetime) -> str:
    """'2022-03-16 08:54:16 +0800': the Jekyll front-matter form, in the source's own offset."""
    return value.strftime("%Y-%m-%d %H:%M:%S %z")


def to_utc_text(value: datetime) -> str:
    """'2022-03-16T00:54:16Z' (isoformat is three times faster than strftime; this runs for every entry)."""
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"
