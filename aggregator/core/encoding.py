"""Decide how a feed's bytes are encoded and turn them into UTF-8. Pure functions.

Servers lie: a GBK feed is often served as `charset=utf-8`, or a document declares gb2312 while
using GBK-only characters. We try the candidates in order of trust and keep the first that decodes
the whole body strictly, so text is never silently turned into mojibake; UTF-8 comes first, and is kept
with its bad sequences replaced when they are a small share of its characters.
"""

from __future__ import annotations

import codecs
import re

_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"'][^>]*\?>")
_XML_DECLARATION_ANY = re.compile(rb"^\s*<\?xml[^>]*\?>")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Legacy Chinese names decode with their superset, so GBK-only characters in a "gb2312" feed survive.
# Big5 is read as Microsoft's cp950, what Taiwanese sites write (big5hkscs reads the ETEN extension,
# kana and Cyrillic among it, as Hong Kong characters); a document cp950 cannot read is tried as HKSCS.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "big5": "cp950", "x-gbk": "gb18030"}
_ALTERNATIVES = {"cp950": "big5hkscs"}
_FALLBACKS = ("utf-8", "gb18030", "cp950", "big5hkscs", "shift_jis", "euc-kr", "windows-1252")


def canonical(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return _SUPERSETS.get(codec, _SUPERSETS.get(name.lower(), codec))


def charset_from_content_type(content_type: str | None) -> str | None:
    match = _CHARSET.search(content_type or "")
    return match.group(1) if match else None


def _bom(body: bytes) -> tuple[str | None, int]:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    # UTF-16/32 without a BOM, recognised by how '<?' is laid out (XML 1.0 appendix F).
    head = body[:4]
    if head == b"\x00\x00\x00<":
        return "utf-32-be", 0
    if head == b"<\x00\x00\x00":
        return "utf-32-le", 0
    if head[:2] == b"\x00<":
        return "utf-16-be", 0
    if head[:2] == b"<\x00":
        return "utf-16-le", 0
    return None, 0


def decode_feed(body: bytes, content_type: str | None = None, override: str | None = None) -> tuple[str, str]:
    """(text, encoding used). `override` (the operator's charset setting) beats everything."""
    text, used, _ = _decode(body, content_type, override)
    return text, used


def _decode(body: bytes, content_type: str | None, override: str | None) -> tuple[str, str, bool]:
    """decode_feed, and whether the whole body decoded strictly (nothing replaced, no BOM dropped)."""
    if override:
        forced = canonical(override) or override
        return body.decode(forced, errors="replace"), forced, False
    bom_name, bom_length = _bom(body)
    if bom_name:
        return body[bom_length:].decode(bom_name, errors="replace"), bom_name, False
    candidates: list[str] = []
    declared = _XML_DECLARATION.match(body[:512])
    names: list[str | None] = [
        declared.group(1).decode("ascii") if declared else None,
        charset_from_content_type(content_type),
        *_FALLBACKS,
    ]
    if not body.isascii():
        # A body that is valid UTF-8 is UTF-8, whatever its declaration or header says: GBK or Big5 text
        # is practically never valid UTF-8, while UTF-8 text labelled GBK often decodes "strictly" as
        # GB18030, into mojibake (servers configured once for a legacy site, then fed UTF-8). So is one
        # that is UTF-8 but for a few bad sequences (see _mostly_utf8).
        try:
            return body.decode("utf-8"), "utf-8", True  # also what XML assumes without a declaration
        except UnicodeDecodeError:
            mostly = _mostly_utf8(body)
        if mostly is not None:
            return mostly, "utf-8", False
        if names[0] is None and names[1] is None and _reads_as_big5(body):
            names.insert(2, "cp950")  # before the GB18030 fallback
    for name in names:
        codec = canonical(name) if name else None
        for option in (codec, _ALTERNATIVES.get(codec or "")):
            if option and option not in candidates and not option.startswith(("utf-16", "utf-32")):
                candidates.append(option)
    if not body.isascii():
        candidates.remove("utf-8")  # one of the fallbacks, and already found wanting
    for codec in candidates:
        try:
            return body.decode(codec), codec, True
        except (UnicodeDecodeError, LookupError):
            continue
    return body.decode("utf-8", errors="replace"), "utf-8", False


# A UTF-8 document with a few bad sequences (a character cut short by a template that cuts by bytes, a
# stray Latin-1 byte) is UTF-8 all the same: each bad sequence becomes U+FFFD and every other character
# is kept, where reading the whole in another encoding would turn all of them into nonsense. Text in a
# legacy encoding, read as UTF-8, has most of its non-ASCII characters invalid: three in four for GBK
# (the rest happen to form UTF-8 sequences; measured on the bundled sample), nearly all for Big5, Shift JIS,
# EUC-KR and single-byte encodings. A share of one in three lies far from that even for a short text (of
# the sample's three-character snippets in GBK or Big5, 4 in 448 come under it; from five characters on,
# none), while a mostly English page keeps its few curly quotes and accents beside a stray Latin-1 byte.
_MOSTLY_UTF8_INVALID_SHARE = 1 / 3
_ASCII = bytes(range(0x80))


def _mostly_utf8(body: bytes) -> str | None:
    """The body read as UTF-8 with its bad sequences replaced, when they are few enough; else None."""
    text = body.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - body.count("\ufffd".encode())  # some write U+FFFD themselves
    non_ascii = len(text) - (len(body) - len(body.translate(None, _ASCII)))  # an ASCII byte is one character
    return text if invalid <= _MOSTLY_UTF8_INVALID_SHARE * non_ascii else None


# Where each encoding keeps its everyday characters: GB2312's first level (the 3,755 most used hanzi) and
# Big5's "frequently used" block (5,401 characters).
_EVERYDAY = {"gb18030": (b"\xb0\xa1", b"\xd7\xfe"), "cp950": (b"\xa4\x40", b"\xc6\x7e")}
_SAMPLE_CHARACTERS = 20_000


def _reads_as_big5(body: bytes) -> bool:
    """Whether a body that names no encoding is likelier Big5 than GBK. Both read nearly any double-byte
    text without error, so GB18030, tried first, took every Big5 feed into nonsense. The right reading
    puts most characters among its everyday ones; the wrong one scatters them into symbols (kana,
    box drawing) and rare characters. A tie goes to GB18030, the commoner of the two."""
    shares = {}
    for codec in _EVERYDAY:
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            shares[codec] = -1.0
            continue
        low, high = _EVERYDAY[codec]
        wide = [c for c in text if ord(c) >= 0x80][:_SAMPLE_CHARACTERS]
        everyday = sum(1 for c in wide if low <= c.encode(codec, errors="replace") <= high)
        shares[codec] = everyday / len(wide) if wide else 0.0
    return shares["cp950"] > max(shares["gb18030"], 0.0)


def to_utf8_document(body: bytes, content_type: str | None = None, override: str | None = None) -> tuple[bytes, str]:
    """The body as UTF-8 bytes with its XML declaration saying so, and the encoding it came in."""
    text, used, exact = _decode(body, content_type, override)
    # Most feeds are UTF-8 already: strictly decoded, the text would encode back to these very bytes.
    data = body if exact and used == "utf-8" else text.encode("utf-8", errors="replace")
    declaration = _XML_DECLARATION_ANY.match(data[:512])
    if declaration:
        data = b'<?xml version="1.0" encoding="utf-8"?>' + data[declaration.end() :]
    return data, used
