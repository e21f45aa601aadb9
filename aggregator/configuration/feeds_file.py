"""Edit feeds.yaml from the command line without losing the operator's comments and layout.

ruamel.yaml's round trip keeps comments, but it attaches a comment to the key *before* it, so deleting a
feed or appending one can carry away (or misplace) the comment that introduces the next feed. Edits here
are therefore made on the lines of the file, using ruamel only to find where each feed starts; the new
text is then validated with `parse_config` and checked to mean exactly the intended change before it is
written atomically. Nothing is written when any check fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from aggregator.configuration.load import CATEGORY_SLUG, RESERVED_SLUGS, feed_url_problem, parse_config, same_feed_key
from aggregator.configuration.yamlread import YamlSyntaxError, load_yaml
from aggregator.core.atomic import write_text_atomic
from aggregator.core.errors import ConfigError
from aggregator.core.models import Config, FeedConfig

_PLAIN_SAFE = re.compile(r"^[^\s\"'#:{}\[\],&*!|>%@`-][^#]*$")


class FeedsFileError(ConfigError):
    """feeds.yaml cannot be edited as asked (unknown feed, duplicate, or an edit that would not validate)."""


@dataclass(frozen=True, slots=True)
class NewFeed:
    url: str
    category: str
    title: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class NewCategory:
    slug: str
    title: str


@dataclass(frozen=True, slots=True)
class _ItemSpan:
    first: int  # index of the line holding the item's "- "
    last: int  # index of the item's last line of content (comments and blank lines after it excluded)
    key_column: int  # column of the item's keys
    dash_column: int


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _scalar(value: str) -> str:
    """A YAML scalar for `value`: plain when that reads back identically ("1.0" would read as a number,
    "Notes:" as a mapping), else double-quoted with YAML's escapes (a newline or a tab in a title)."""
    if _PLAIN_SAFE.match(value) and value == value.strip() and ": " not in value and value.lower() not in _KEYWORDS:
        try:
            if load_yaml(f"k: {value}\n") == {"k": value}:
                return value
        except YamlSyntaxError:
            pass
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


_KEYWORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", ""}


class FeedsFile:
    """feeds.yaml as text plus its parsed Config; `save()` validates and writes atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # Edited with \n line ends and written back with the file's own: a Windows-made feeds.yaml
            # keeps its CRLF on every line, not only on the lines an edit left alone.
            raw = path.read_bytes().decode("utf-8")
            self.newline = "\r\n" if "\r\n" in raw and raw.count("\r\n") == raw.count("\n") else "\n"
            self.text = raw.replace("\r\n", "\n") if self.newline == "\r\n" else raw
        except FileNotFoundError:
            raise FeedsFileError(f"{path}: config file not found (pass --config PATH)") from None
        except (OSError, UnicodeDecodeError) as error:
            raise FeedsFileError(f"{path}: cannot read config: {error}") from None
        self.config = parse_config(self.text, path)

    # --- queries ---------------------------------------------------------------------------------

    def feed(self, url: str) -> FeedConfig:
        for feed in self.config.feeds:
            if feed.url == url:
                return feed
        raise FeedsFileError(f"{self.path}: no feed {url!r} (see `aggregator feeds list`)")

    # --- edits -----------------------------------------------------------------------------------

    def add_feeds(
        self, feeds: Sequence[NewFeed], categories: Sequence[NewCategory] = (), *, dry_run: bool = False
    ) -> None:
        """Append feeds (and create missing categories) at the end of their sections; `dry_run` only
        checks that none of them is configured already."""
        known = {same_feed_key(feed.url): feed.url for feed in self.config.feeds}
        # feeds.yaml reads titles without their outer spaces: written with them, the edit would not check out.
        feeds = [replace(feed, title=feed.title.strip() or None) if feed.title else feed for feed in feeds]
        for feed in feeds:
            if problem := feed_url_problem(feed.url):
                raise FeedsFileError(f"{feed.url!r}: {problem}")
            key = same_feed_key(feed.url)
            if (same := known.get(key)) is not None:
                as_written = "" if same == feed.url else f" (as {same!r})"
                raise FeedsFileError(f"{self.path}: feed {feed.url!r} is already configured{as_written}")
            known[key] = feed.url
        if dry_run:
            return
        text = self.text
        if categories:
            text = self._append_categories(text, categories)
        if feeds:
            text = self._append_feeds(text, feeds)

        def expected(old: Config, new: Config) -> bool:
            added = {(f.url, f.category, f.title, f.enabled) for f in feeds}
            return {(f.url, f.category, f.title, f.enabled) for f in new.feeds} == {
                (f.url, f.category, f.title, f.enabled) for f in old.feeds
            } | added and set(new.categories) == set(old.categories) | {c.slug for c in categories}

        self._replace(text, expected)

    def remove_feed(self, url: str) -> None:
        self.feed(url)
        _index, span = self._span_of(self.text, url)
        lines = self.text.splitlines(keepends=True)
        text = "".join(lines[: span.first] + lines[span.last + 1 :])
        if not self._feed_spans(text) and re.search(r"(?m)^feeds:\s*(#.*)?$", text):
            # The last feed went: an empty `feeds:` would read as null, which is fine, but say so plainly.
            text = re.sub(r"(?m)^feeds:[ \t]*(#.*)?$", lambda m: "feeds: []" + (" " + m[1] if m[1] else ""), text)
        self._replace(text, lambda old, new: [f.url for f in new.feeds] == [f.url for f in old.feeds if f.url != url])

    def set_enabled(self, url: str, enabled: bool) -> bool:
        """Enable or disable a feed; returns False when it already was."""
        feed = self.feed(url)
        if feed.enabled == enabled:
            return False
        _index, span = self._span_of(self.text, url, block_item=True)
        lines = self.text.splitlines(keepends=True)
        enabled_line = re.compile(rf"^\s{{{span.key_column}}}enabled\s*:")
        item = range(span.first + 1, span.last + 1)
        # The first line holds "- key: ...": strip the dash to look at its key too.
        first_key = " " * span.key_column + lines[span.first][span.key_column :]
        existing = [i for i in item if enabled_line.match(lines[i])]
        if enabled_line.match(first_key):
            existing.insert(0, span.first)
        if enabled:
            # The default is enabled: drop the line rather than leave `enabled: true` behind.
            for i in reversed(existing):
                if i == span.first:
                    raise FeedsFileError(f"{self.path}: put `url:` first in the feed {url!r} to edit it")
                del lines[i]
        elif existing:
            i = existing[0]
            lines[i] = re.sub(r"(enabled\s*:\s*)[^#\n]*?(\s*(#.*)?)$", r"\1false\2", lines[i].rstrip("\n")) + "\n"
        else:
            newline = "\n"
            if not lines[span.last].endswith("\n"):
                lines[span.last] += "\n"
            lines.insert(span.last + 1, " " * span.key_column + "enabled: false" + newline)
        text = "".join(lines)

        def expected(old: Config, new: Config) -> bool:
            return [(f.url, f.enabled if f.url != url else enabled) for f in old.feeds] == [
                (f.url, f.enabled) for f in new.feeds
            ]

        self._replace(text, expected)
        return True

    # --- text surgery ----------------------------------------------------------------------------

    def _document(self, text: str) -> Any:
        try:
            return _yaml().load(text)
        except YAMLError as error:
            # ruamel's message spans a dozen lines (context, both marks, a link): keep its problem and line.
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            mark = getattr(error, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise FeedsFileError(f"{self.path}{where}: cannot edit: {problem}") from None

    def _feed_spans(self, text: str) -> list[tuple[Any, _ItemSpan]]:
        """Each feed item with its line span, in file order."""
        document = self._document(text)
        feeds = document.get("feeds") if isinstance(document, CommentedMap) else None
        if not isinstance(feeds, CommentedSeq) or not feeds or feeds.fa.flow_style():
            return []
        lines = text.splitlines()
        top_keys = [int(document.lc.key(k)[0]) for k in document]
        feeds_line = int(document.lc.key("feeds")[0])
        after = [line for line in top_keys if line > feeds_line]
        section_end = min(after) if after else len(lines)
        starts = [int(feeds.lc.item(i)[0]) for i in range(len(feeds))]
        spans = []
        for i, item in enumerate(feeds):
            next_start = starts[i + 1] if i + 1 < len(feeds) else section_end
            last = next_start - 1
            while last > starts[i] and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
                last -= 1
            key_column = int(feeds.lc.item(i)[1])
            dash_column = lines[starts[i]].index("-")
            spans.append((item, _ItemSpan(starts[i], last, key_column, dash_column)))
        return spans

    def _span_of(self, text: str, url: str, *, block_item: bool = False) -> tuple[int, _ItemSpan]:
        """Where feed `url` stands; `block_item` when the edit needs its keys on lines of their own."""
        for index, (item, span) in enumerate(self._feed_spans(text)):
            if isinstance(item, dict) and item.get("url") == url:
                if block_item and isinstance(item, CommentedMap) and item.fa.flow_style():
                    raise FeedsFileError(
                        f"{self.path}:{span.first + 1}: the feed {url!r} is written inline ({{...}}); "
                        "write it as `- url: ...` with one key per line to edit it"
                    )
                return index, span
        document = self._document(text)
        feeds = document.get("feeds") if isinstance(document, CommentedMap) else None
        if isinstance(feeds, CommentedSeq) and feeds.fa.flow_style():
            line = int(document.lc.key("feeds")[0]) + 1
            raise FeedsFileError(
                f"{self.path}:{line}: `feeds:` is written inline ([...]); write it as a block list "
                "(one `- url:` per feed) to edit it"
            )
        raise FeedsFileError(f"{self.path}: cannot find feed {url!r} in the file's feeds list")

    def _append_feeds(self, text: str, feeds: Sequence[NewFeed]) -> str:
        spans = self._feed_spans(text)
        if spans:
            last = spans[-1][1]
            dash, keys = last.dash_column, last.key_column
        else:
            dash, keys = 2, 4
        block = []
        for feed in feeds:
            block.append(" " * dash + "-" + " " * (keys - dash - 1) + f"url: {_scalar(feed.url)}\n")
            block.append(" " * keys + f"category: {_scalar(feed.category)}\n")
            if feed.title:
                block.append(" " * keys + f"title: {_scalar(feed.title)}\n")
            if not feed.enabled:
                block.append(" " * keys + "enabled: false\n")
        lines = text.splitlines(keepends=True)
        if spans:
            at = spans[-1][1].last + 1
            if not lines[at - 1].endswith("\n"):
                lines[at - 1] += "\n"
            return "".join(lines[:at] + block + lines[at:])
        # No block list yet: replace `feeds:` / `feeds: []`, or start the section at the end.
        document = self._document(text)
        if isinstance(document, CommentedMap) and "feeds" in document:
            line = int(document.lc.key("feeds")[0])
            if isinstance(document["feeds"], list) and document["feeds"]:
                raise FeedsFileError(f"{self.path}: write `feeds:` as a block list (one `- url:` per feed) to edit it")
            comment = re.search(r"#.*$", lines[line].rstrip("\n"))
            lines[line] = "feeds:" + (f"  {comment[0]}" if comment else "") + "\n"
            return "".join(lines[: line + 1] + block + lines[line + 1 :])
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + "feeds:\n" + "".join(block)

    def _append_categories(self, text: str, categories: Sequence[NewCategory]) -> str:
        document = self._document(text)
        block = []
        for category in categories:
            if category.slug in RESERVED_SLUGS or not CATEGORY_SLUG.match(category.slug):
                raise FeedsFileError(f"{self.path}: {category.slug!r} is not a valid category slug")
            block.append(f"  {category.slug}:\n")
            block.append(f"    title: {_scalar(category.title)}\n")
        lines = text.splitlines(keepends=True)
        if isinstance(document, CommentedMap) and isinstance(document.get("categories"), CommentedMap):
            node = document["categories"]
            if node and not node.fa.flow_style():
                keys = list(node)
                indent = int(node.lc.key(keys[0])[1])
                block = [_reindent(line, indent) for line in block]
                top = [int(document.lc.key(k)[0]) for k in document]
                start = int(document.lc.key("categories")[0])
                after = [line for line in top if line > start]
                end = (min(after) if after else len(lines)) - 1
                while end > start and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
                    end -= 1
                if not lines[end].endswith("\n"):
                    lines[end] += "\n"
                return "".join(lines[: end + 1] + block + lines[end + 1 :])
        if isinstance(document, CommentedMap) and "categories" in document:
            if document["categories"]:
                raise FeedsFileError(f"{self.path}: write `categories:` as a block mapping to add categories")
            line = int(document.lc.key("categories")[0])
            lines[line] = "categories:\n"
            return "".join(lines[: line + 1] + block + lines[line + 1 :])
        # No categories section: put one before `feeds:` when there is one, else at the end.
        if isinstance(document, CommentedMap) and "feeds" in document:
            line = int(document.lc.key("feeds")[0])
            return "".join([*lines[:line], "categories:\n", *block, *lines[line:]])
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + "categories:\n" + "".join(block)

    def _replace(self, text: str, expected: Callable[[Config, Config], bool]) -> None:
        try:
            new = parse_config(text, self.path)
        except ConfigError as error:
            raise FeedsFileError(f"{self.path}: edit not written, the result would not validate:\n{error}") from None
        if not expected(self.config, new):
            raise FeedsFileError(f"{self.path}: edit not written: the file's layout defeated a safe edit; edit by hand")
        self.text = text
        self.config = new

    def save(self) -> None:
        text = self.text.replace("\n", self.newline) if self.newline != "\n" else self.text
        try:
            write_text_atomic(self.path, text, follow_symlinks=True)
        except OSError as error:
            raise ConfigError(f"{self.path}: cannot write it: {error.strerror or error}") from None


def _reindent(line: str, indent: int) -> str:
    """Category block lines are written for a 2-space indent; shift them to the file's own indent."""
    stripped = line.lstrip(" ")
    depth = (len(line) - len(stripped)) // 2
    return " " * (indent * depth) + stripped
