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
