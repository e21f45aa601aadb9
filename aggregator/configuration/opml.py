"""OPML 2.0 subscription lists in and out: categories are folders (outlines that hold feed outlines).

Import is parsed with defusedxml (no entity expansion, no external resources: an OPML file is untrusted
input). Export writes each category as a folder carrying its slug in our own namespace, so an export
imported into an empty feeds.yaml gives back the same slugs; other readers simply ignore the attribute.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET  # only to *write* OPML; reading goes through defusedxml
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from aggregator.configuration.feeds_file import NewCategory, NewFeed
from aggregator.configuration.load import CATEGORY_SLUG, RESERVED_SLUGS, feed_url_problem, same_feed_key
from aggregator.core.encoding import to_utf8_document
from aggregator.core.errors import ConfigError
from aggregator.core.models import Config
from aggregator.core.slugs import ascii_slug

OPML_NS = "https://github.com/aggregator-archive/aggregator/opml"
ET.register_namespace("aggregator", OPML_NS)
_SLUG_ATTRIBUTE = f"{{{OPML_NS}}}slug"
# On feed outlines we write: the title is the operator's own (feeds.yaml `title:`), not the feed's; and
# the feed is disabled. Without the first, a re-import would freeze every feed's current title.
_OVERRIDE_ATTRIBUTE = f"{{{OPML_NS}}}title-override"
_ENABLED_ATTRIBUTE = f"{{{OPML_NS}}}enabled"


class OpmlError(ConfigError):
    """The OPML file cannot be read or imported."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    url: str
    title: str
    folder: str | None  # the title of the innermost folder holding it
    folder_slug: str | None  # our own slug attribute on that folder, when the file came from us
    title_override: bool = True  # whether `title` is one to keep (in files from us: only when marked)
    enabled: bool = True


@dataclass
class ImportPlan:
    feeds: list[NewFeed] = field(default_factory=list)
    categories: list[NewCategory] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per feed left out, with the reason


def category_slug(title: str) -> str:
    """A category slug from a folder title: transliterated to ASCII (中国税务报新闻 -> zhong-guo-shui-wu-bao-xin-wen).

    A title with nothing to transliterate (emoji, punctuation) gets a stable short hash instead.
    """
    slug = ascii_slug(title)
    if not slug or slug in RESERVED_SLUGS or not CATEGORY_SLUG.match(slug):
        slug = (slug[:48] + "-" if slug else "folder-") + hashlib.sha256(title.encode("utf-8")).hexdigest()[:8]
    return slug


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """Every feed outline in an OPML document, in document order."""
    # expat reads no multi-byte legacy encoding: a GBK export from a Chinese reader becomes UTF-8 first.
    data, _encoding = to_utf8_document(data)
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException, ValueError) as error:
        raise OpmlError(f"{source}: not a readable OPML file: {error}") from None
    if root.tag != "opml":
        raise OpmlError(f"{source}: not an OPML file (the root element is <{root.tag}>, expected <opml>)")
    body = root.find("body")
    if body is None:
        raise OpmlError(f"{source}: OPML file without a <body>")
    return list(_outlines(body, None, None))


def _outlines(node: ET.Element, folder: str | None, folder_slug: str | None) -> Iterator[OpmlFeed]:
    for outline in node.findall("outline"):
        text = (outline.get("title") or outline.get("text") or "").strip()
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url:
            ours = folder_slug is not None  # a folder carrying our slug: the file is an export of ours
            yield OpmlFeed(
                url=url,
                title=text if text != url else "",
                folder=folder,
                folder_slug=folder_slug,
                title_override=outline.get(_OVERRIDE_ATTRIBUTE) == "true" if ours else True,
                enabled=outline.get(_ENABLED_ATTRIBUTE) != "false",
            )
        # A feed outline with children is unusual but legal: its children keep the enclosing folder.
        inner_folder, inner_slug = (folder, folder_slug) if url else (text or folder, outline.get(_SLUG_ATTRIBUTE))
        yield from _outlines(outline, inner_folder, inner_slug)


def plan_import(config: Config, feeds: list[OpmlFeed], category: str | None) -> ImportPlan:
    """Which feeds to add to which categories, which categories to create, and what to leave out."""
    plan = ImportPlan()
    if category is not None and category not in config.categories:
        known = ", ".join(sorted(config.categories)) or "none defined"
        raise OpmlError(f"{config.path}: unknown category {category!r} (known: {known})")
    by_title = {c.title: slug for slug, c in config.categories.items()}
    created: dict[str, str] = {}  # folder title -> slug for categories this import creates
    configured = {same_feed_key(f.url) for f in config.feeds}
    for feed in feeds:
        if problem := feed_url_problem(feed.url):
            plan.skipped.append(f"{feed.url}: {problem}")
            continue
        if same_feed_key(feed.url) in configured:
            plan.skipped.append(f"{feed.url}: already configured")
            continue
        if category is not None:
            slug = category
        elif feed.folder is None:
            plan.skipped.append(f"{feed.url}: outside any folder (pass --category to import such feeds)")
            continue
        else:
            slug = _folder_category(feed, config, by_title, created, plan)
        configured.add(same_feed_key(feed.url))
        title = feed.title if feed.title_override and feed.title else None
        plan.feeds.append(NewFeed(url=feed.url, category=slug, title=title, enabled=feed.enabled))
    return plan


def _folder_category(
    feed: OpmlFeed, config: Config, by_title: dict[str, str], created: dict[str, str], plan: ImportPlan
) -> str:
    title = feed.folder or ""
    own = feed.folder_slug
    if own and CATEGORY_SLUG.match(own) and own not in RESERVED_SLUGS:
        # Our own export names its categories: two of them may share a title ("News" in two languages).
        if own not in config.categories and own not in created.values():
            plan.categories.append(NewCategory(slug=own, title=title))
        created.setdefault(title, own)
        return own
    if title in by_title:
        return by_title[title]
    if title in created:
        return created[title]
    slug = category_slug(title)
    if slug not in config.categories and slug not in created.values():
        plan.categories.append(NewCategory(slug=slug, title=title))
    created[title] = slug
    return slug


def export_opml(config: Config, feed_info: dict[str, tuple[str, str]] | None = None) -> bytes:
    """OPML 2.0 of every configured feed, one folder per category; `feed_info` maps url -> (title, site url)."""
    info = feed_info or {}
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"aggregator subscriptions ({config.path.name})"
    ET.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)
    ET.SubElement(head, "docs").text = "https://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    for slug, category in config.categories.items():
        feeds = [f for f in config.feeds if f.category == slug]
        if not feeds:
            continue
        folder = ET.SubElement(
            body, "outline", {"text": category.title, "title": category.title, _SLUG_ATTRIBUTE: slug}
        )
        for feed in feeds:
            stored_title, site_url = info.get(feed.url, ("", ""))
            title = feed.title or stored_title or feed.url
            attributes = {"type": "rss", "text": title, "title": title, "xmlUrl": feed.url}
            if site_url:
                attributes["htmlUrl"] = site_url
            if feed.title:
                attributes[_OVERRIDE_ATTRIBUTE] = "true"
            if not feed.enabled:
                attributes[_ENABLED_ATTRIBUTE] = "false"
            ET.SubElement(folder, "outline", attributes)
    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")
