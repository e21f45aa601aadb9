"""Small feed documents built in code, for tests that need to vary them."""

from __future__ import annotations

from html import escape


def rss(items: list[dict[str, str]], title: str = "Test feed", encoding: str = "utf-8", extra: str = "") -> bytes:
    parts = [
        f'<?xml version="1.0" encoding="{encoding}"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://site.example/</link><description>d</description>{extra}",
    ]
    for item in items:
        parts.append("<item>")
        for key, value in item.items():
            if key == "description":
                parts.append(f"<description><![CDATA[{value}]]></description>")
            else:
                parts.append(f"<{key}>{escape(value, quote=False)}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode(encoding)


def item(n: int, **overrides: str) -> dict[str, str]:
    base = {
        "title": f"Item {n}",
        "link": f"https://site.example/{n}",
        "guid": f"id-{n}",
        "pubDate": f"Wed, 16 Mar 2022 08:{n % 60:02d}:16 +0800",
        "description": f"<p>Body {n}</p>",
    }
    base.update(overrides)
    return base


def billion_laughs() -> bytes:
    """Ten levels of entities, each ten of the one below: 10^10 characters if expanded."""
    declarations = b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
    return (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        + declarations
        + b']><rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>&j;</title></item></channel></rss>'
    )


def quadratic_blowup(references: int) -> bytes:
    """One 50 KB entity referenced `references` times: 100 KB of XML, 50 KB x references expanded."""
    return (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "'
        + b"B" * 50_000
        + b'">]><rss version="2.0"><channel><title>t</title><item><guid>1</guid><description>'
        + b"&big;" * references
        + b"</description></item></channel></rss>"
    )
