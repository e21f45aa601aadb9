"""OPML 2.0 listing of the feeds we republish, so a reader can subscribe to all of them at once. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outline:
    title: str
    xml_url: str
    html_url: str = ""
    description: str = ""


def render_opml(title: str, outlines: list[Outline], owner_id: str = "") -> bytes:
    """OPML 2.0 with one `type="rss"` outline per feed (the type OPML readers use for any feed format).

    No dateCreated/dateModified: the file must stay byte-identical while the list does not change.
    """
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    if owner_id:
        ET.SubElement(head, "ownerId").text = owner_id
    body = ET.SubElement(root, "body")
    for outline in outlines:
        attributes = {"type": "rss", "text": outline.title, "title": outline.title, "xmlUrl": outline.xml_url}
        if outline.html_url:
            attributes["htmlUrl"] = outline.html_url
        if outline.description:
            attributes["description"] = outline.description
        ET.SubElement(body, "outline", attributes)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
