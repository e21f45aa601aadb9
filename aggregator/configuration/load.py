"""Read and validate feeds.yaml into a `Config`; every problem becomes one line naming file, line, field."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator.configuration.yamlread import LineDict, YamlSyntaxError, item_line, key_line, load_yaml
from aggregator.core.errors import ConfigError
from aggregator.core.models import Category, Config, FeedConfig, Settings
from aggregator.core.redact import has_raw_delimiter_in_password

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# "all" names the combined feed; "feeds" and "category" are top-level folders of the published site.
RESERVED_SLUGS = {"all", "feeds", "category"}
CATEGORY_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def parse_duration(value: object) -> int:
    """'90s', '15m', '2h', '1d', '1h30m' or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or _DURATION_PART.sub("", text).strip():
                raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 1d)")
            seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 1d)")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be zero or a positive whole number, got {value!r}")
    return value


_FRACTIONAL_SECONDS = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)?$")


def _seconds(value: object) -> float:
    """A timeout or delay: a duration ('30s', '2m'), a fraction of a second ('0.25s', '250ms') or a number."""
    if isinstance(value, str):
        match = _FRACTIONAL_SECONDS.match(value.strip().lower())
        if match:
            seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
            if seconds <= 0:
                raise ValueError(f"must be positive, got {value!r}")
            return seconds
        return float(parse_duration(value))
    return float(_positive_number(value))


def _non_negative_seconds(value: object) -> float:
    """A duration that may be zero ('0', 0, '0s' switch a delay off)."""
    if value in (0, 0.0, "0", "0s", "0ms") and not isinstance(value, bool):
        return 0.0
    return _seconds(value)


def _positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return float(value)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|kib|k|mb|mib|m|gb|gib|g)?$")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}


def parse_size(value: object) -> int:
    """'20MB', '512KiB', or a number of bytes -> bytes (> 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value).strip().lower()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 20MB, 512KB, or bytes)")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be non-empty text, got {value!r}")
    return value.strip()


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _base_url(value: object) -> str:
    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
    return url if url.endswith("/") else url + "/"


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"must be a TCP port number (1-65535), got {value!r}")
    return value


# Each setting: how to read it. Adding a setting is adding a field to Settings and a line here.
SETTING_READERS: dict[str, Callable[[Any], Any]] = {
    "archive_dir": _text,
    "base_url": _base_url,
    "default_interval": parse_duration,
    "min_interval": parse_duration,
    "max_interval": parse_duration,
    "user_agent": _text,
    "connect_timeout": _seconds,
    "request_timeout": _seconds,
    "max_body_bytes": parse_size,
    "max_redirects": _non_negative_int,
    "concurrency": _positive_int,
    "per_host_concurrency": _positive_int,
    "parse_workers": _non_negative_int,
    "parse_timeout": _seconds,
    "parse_memory_limit": parse_size,
    "publish": _boolean,
    "allow_hosts": lambda value: tuple(_host_port(h) for h in _string_list(value)),
    "strict_network": _boolean,
    "feed_entries": _positive_int,
    "serve_host": _text,
    "serve_port": _port,
    "per_host_delay": _non_negative_seconds,
    "shutdown_grace": _seconds,
    "adaptive_interval": _boolean,
    "site_title": _text,
    "site_language": _text,
    "site_page_size": _positive_int,
    "site_timezone": lambda value: _timezone(value),  # defined below, with the feed readers
    "templates_dir": lambda value: Path(_text(value)),
}

FEED_KEYS = {"url", "category", "title", "tags", "interval", "enabled", "headers", "charset", "timezone"}
CATEGORY_KEYS = {"title", "description", "tags"}


class _Problems:
    """Collects validation problems so that one run reports all of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        # Categories already reported as invalid: a feed naming one is not reported again as unknown.
        self.refused_categories: set[object] = set()

    def add(self, line: int | None, where: str, message: str) -> None:
        location = f"{self.path}:{line + 1}" if line is not None else str(self.path)
        self.lines.append(f"{location}: {where}: {message}")


def _string_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"must be a list of non-empty text, got {value!r}")
    return tuple(v.strip() for v in value)


def same_feed_key(url: str) -> tuple[str, str, str, int | None, str, str]:
    """What makes two feed URLs the same address: scheme and host in any case, the default port written
    or not, an empty path or "/". (Other spellings, such as a trailing slash, may be different feeds.)"""
    try:
        parts = urlsplit(url)
    except ValueError:  # a broken address (refused on loading) is only ever the same as itself
        return "", "", url, None, "", ""
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None
    credentials = parts.netloc.rpartition("@")[0]  # two accounts on one server are two feeds
    return scheme, credentials, (parts.hostname or "").lower(), port, parts.path or "/", parts.query


def _host_port(value: str) -> str:
    """`host:port` or `[IPv6]:port`, in the form addresses are compared in: lowercase, no trailing dot on
    the host, the port without leading zeros."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]@]+):([0-9]{1,5})", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"entries must be host:port (e.g. intranet.example:8080), got {value!r}")
    return f"{match.group(1).lower().rstrip('.')}:{int(match.group(2))}"


def feed_url_problem(url: str) -> str | None:
    """What makes `url` unusable as a feed address, or None: the one rule for feeds.yaml, `feeds add` and
    OPML import."""
    if has_raw_delimiter_in_password(url):
        # urlsplit would take the password's start for a port, and its error would show it.
        return "the password holds a raw '/', '?' or '#': write them percent-encoded (%2F, %3F, %23)"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as error:
        return f"not a valid URL ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported URL scheme {parts.scheme or '(none)'!r} (use http or https)"
    if not parts.hostname:
        return "URL has no host"
    if any(character.isspace() or ord(character) < 0x20 for character in parts.netloc):
        return "the host contains a space or a control character"
    if port == 0:
        return "port 0 is not a port a server listens on"
    return None


def _feed_url(value: object) -> str:
    url = _text(value)
    if problem := feed_url_problem(url):
        raise ValueError(f"{problem}: {url!r}")
    return url


def _charset(value: object) -> str:
    name = _text(value)
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown character encoding {name!r}") from None
    return name


def _timezone(value: object) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)") from None
    return name


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of header name to value")
    pairs = []
    for name, header_value in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"invalid header name {name!r}")
        if not isinstance(header_value, str | int) or re.search(r"[\r\n\x00]", str(header_value)):
            raise ValueError(f"invalid value for header {name!r}")
        pairs.append((name, str(header_value)))
    return tuple(pairs)


def _read_field(problems: _Problems, node: Any, key: str, where: str, reader: Callable[[Any], Any]) -> Any:
    try:
        return reader(node[key])
    except ValueError as error:
        problems.add(key_line(node, key), f"{where}.{key}", str(error))
        return None


def load_config(path: str | Path) -> Config:
    """Read feeds.yaml at `path`; raise ConfigError with one line per problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config PATH)") from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte {error.object[error.start]:#04x}); save the file as UTF-8,"
            f" e.g. iconv -f GBK -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    try:
        document = load_yaml(text)
    except YamlSyntaxError as error:
        line = f":{error.line + 1}" if error.line is not None else ""
        raise ConfigError(f"{path}{line}: YAML syntax error: {error.problem}") from None

    problems = _Problems(path)
    if document is None:
        document = LineDict()
    if not isinstance(document, dict):
        raise ConfigError(f"{path}:1: top level must be a mapping with settings, categories and feeds")
    for key in document:
        if key not in ("settings", "categories", "feeds"):
            problems.add(key_line(document, key), str(key), "unknown key (expected settings, categories, feeds)")

    settings = _read_settings(document.get("settings"), document, path, problems)
    categories = _read_categories(document.get("categories"), document, problems)
    feeds = _read_feeds(document.get("feeds"), document, categories, problems)
    if problems.lines:
        raise ConfigError("\n".join(problems.lines))
    return Config(path=path, settings=settings, categories=categories, feeds=tuple(feeds))


def _expand_home(value: str | Path, node: Any, key: str, problems: _Problems) -> Path:
    """A folder setting with `~` or `~user` read as that home folder."""
    try:
        return Path(value).expanduser()
    except RuntimeError as error:  # no such user, or no home folder to be found
        problems.add(key_line(node, key) if node else None, f"settings.{key}", str(error))
        return Path(value)


def _read_settings(node: Any, document: Any, path: Path, problems: _Problems) -> Settings:
    values: dict[str, Any] = {}
    if node is not None and not isinstance(node, dict):
        problems.add(key_line(document, "settings"), "settings", "must be a mapping")
        node = None
    for key in node or {}:
        reader = SETTING_READERS.get(key)
        if reader is None:
            problems.add(key_line(node, key), f"settings.{key}", "unknown setting")
            continue
        value = _read_field(problems, node, key, "settings", reader)
        if value is not None:
            values[key] = value
    archive_dir = _expand_home(values.pop("archive_dir", "archive"), node, "archive_dir", problems)
    if not archive_dir.is_absolute():
        archive_dir = (path.parent / archive_dir).resolve()
    if os.path.isfile(archive_dir):  # os.path: a folder this user may not enter is for the commands to report
        problems.add(
            key_line(node, "archive_dir") if node else None, "settings.archive_dir", f"{archive_dir} is a file"
        )
    if "templates_dir" in values:
        values["templates_dir"] = _expand_home(values["templates_dir"], node, "templates_dir", problems)
    known = {f.name for f in fields(Settings)}
    settings = Settings(archive_dir=archive_dir, **{k: v for k, v in values.items() if k in known})
    if settings.min_interval > settings.max_interval:
        problems.add(
            key_line(node, "min_interval") if node else None,
            "settings.min_interval",
            f"must not exceed max_interval ({format_duration(settings.max_interval)})",
        )
    templates = settings.templates_dir
    if templates is not None and not (templates if templates.is_absolute() else path.parent / templates).is_dir():
        problems.add(key_line(node, "templates_dir"), "settings.templates_dir", f"{str(templates)!r} is not a folder")
    return settings


def _read_categories(node: Any, document: Any, problems: _Problems) -> dict[str, Category]:
    categories: dict[str, Category] = {}
    if node is None:
        return categories
    if not isinstance(node, dict):
        problems.add(key_line(document, "categories"), "categories", "must be a mapping of slug to category")
        return categories
    for slug, body in node.items():
        where = f"categories.{slug}"
        line = key_line(node, slug)
        if not isinstance(slug, str) or not CATEGORY_SLUG.match(slug):
            problems.add(line, where, "slug must be lowercase letters, digits, '-' or '_' (at most 64)")
            problems.refused_categories.add(slug)
            continue
        if slug in RESERVED_SLUGS:
            problems.add(
                line, where, f"{slug!r} is reserved (it names the combined feed or a top-level folder of the site)"
            )
            problems.refused_categories.add(slug)
            continue
        if body is None:
            body = LineDict()
        if not isinstance(body, dict):
            problems.add(line, where, "must be a mapping (title, description, tags)")
            continue
        for key in body:
            if key not in CATEGORY_KEYS:
                problems.add(key_line(body, key), f"{where}.{key}", "unknown key (expected title, description, tags)")
        title = _read_field(problems, body, "title", where, _text) if "title" in body else slug
        description = _read_field(problems, body, "description", where, _text) if "description" in body else ""
        tags = _read_field(problems, body, "tags", where, _string_list) if "tags" in body else ()
        categories[slug] = Category(slug=slug, title=title or slug, description=description or "", tags=tags or ())
    return categories


def _read_feeds(node: Any, document: Any, categories: dict[str, Category], problems: _Problems) -> list[FeedConfig]:
    feeds: list[FeedConfig] = []
    if node is None:
        return feeds
    if not isinstance(node, list):
        problems.add(key_line(document, "feeds"), "feeds", "must be a list of feeds")
        return feeds
    seen: dict[tuple[str, str, str, int | None, str, str], int] = {}
    for index, body in enumerate(node):
        where = f"feeds[{index}]"
        line = item_line(node, index)
        if not isinstance(body, dict):
            problems.add(line, where, "must be a mapping with at least url and category")
            continue
        before = len(problems.lines)
        for key in body:
            if key not in FEED_KEYS:
                problems.add(
                    key_line(body, key), f"{where}.{key}", f"unknown key (expected {', '.join(sorted(FEED_KEYS))})"
                )
        if "url" not in body:
            problems.add(line, f"{where}.url", "missing (every feed needs a url)")
        if "category" not in body:
            problems.add(line, f"{where}.category", "missing (every feed needs a category)")
        url = _read_field(problems, body, "url", where, _feed_url) if "url" in body else None
        category = _read_field(problems, body, "category", where, _text) if "category" in body else None
        if category is not None and category not in categories and category not in problems.refused_categories:
            known = ", ".join(sorted(categories)) or "none defined"
            problems.add(
                key_line(body, "category"), f"{where}.category", f"unknown category {category!r} (known: {known})"
            )
        optional = {
            "title": _text,
            "tags": _string_list,
            "interval": parse_duration,
            "enabled": _boolean,
            "headers": _headers,
            "charset": _charset,
            "timezone": _timezone,
        }
        extra = {
            key: _read_field(problems, body, key, where, reader) for key, reader in optional.items() if key in body
        }
        if url is not None:
            same = same_feed_key(url)
            if same in seen:
                problems.add(
                    key_line(body, "url"), f"{where}.url", f"duplicate feed {url!r} (first at line {seen[same] + 1})"
                )
            else:
                seen[same] = line or 0
        if len(problems.lines) > before or url is None or category is None:
            continue
        feeds.append(
            FeedConfig(
                url=url,
                category=category,
                title=extra.get("title"),
                tags=extra.get("tags") or (),
                interval=extra.get("interval"),
                enabled=extra.get("enabled", True),
                headers=extra.get("headers") or (),
                charset=extra.get("charset"),
                timezone=extra.get("timezone"),
                line=(line or 0) + 1,
            )
        )
    return feeds
