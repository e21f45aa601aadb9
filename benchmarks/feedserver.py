"""A deterministic local feed server for benchmarks: loopback only, many feeds, conditional GET, gzip.

    python benchmarks/feedserver.py --feeds 1000 --port 8765

Feed `i` lives at /feed/<i>.xml. 70% are RSS 2.0 and 30% Atom 1.0, with 20-50 entries of 1-5 KB HTML
(one feed in five in Chinese); three feeds in ten are gzip-encoded when the client accepts it. Every
response carries an ETag and a Last-Modified and a matching conditional request gets a 304.

Everything comes from a seeded RNG, so two servers started with the same --seed serve the same bytes.
A "generation" counter makes a fraction of the feeds gain entries:

    POST /_control/mutate?fraction=0.1&add=5   -> bump the generation; JSON {generation, changed, entries}
    GET  /_control/stats                       -> JSON {feeds, generation, entries}: what a full archive holds

For fault soaks (benchmarks/fault_soak.py) it can also misbehave and keep a record of what it served:

    POST /_control/edit?fraction=0.05          -> edit one existing entry of a sample of the feeds (a revision)
    POST /_control/faults?kind=K&feeds=1,2     -> those feeds answer K from now on: 500, reset (connection
                                                  dropped), timeout (no answer), garbage (200, not a feed), ok
    GET  /_control/record                      -> JSON: every feed request (time, client, status) and, per
                                                  feed, its entries now and the versions each edit served
A request's client is its X-Soak-Client header ("daemon" when absent).

It is an asyncio protocol rather than http.server: a threaded stdlib server tops out near a thousand
requests a second on two cores, which would make the server, not the client, what a benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

FIRST_DATE = datetime(2024, 1, 1, tzinfo=UTC)
LAST_MODIFIED_BASE = datetime(2025, 1, 1, tzinfo=UTC)
_WORDS = tuple(
    [
        "archive",
        "feed",
        "reader",
        "server",
        "network",
        "request",
        "latency",
        "parser",
        "entry",
        "category",
        "update",
        "storage",
        "index",
        "search",
        "summary",
        "content",
        "title",
        "author",
        "date",
        "offset",
        "history",
        "revision",
        "policy",
        "operator",
        "source",
        "journal",
        "report",
        "market",
        "weather",
        "city",
        "council",
        "budget",
        "school",
        "river",
        "station",
        "bridge",
        "festival",
        "museum",
        "library",
    ]
)
_HANZI = "税务总局发布关于进一步优化营商环境的通知各地纳税人缴费人服务中心加快推进数字化改革新闻报道经济发展市场监管"
_PARAGRAPH_POOL = 240


def _sentence(rng: random.Random, chinese: bool) -> str:
    if chinese:
        return "".join(rng.choice(_HANZI) for _ in range(rng.randint(12, 40))) + "。"
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
    return " ".join(words).capitalize() + "."


def _paragraph_pool(seed: int, chinese: bool) -> list[str]:
    """Ready-made HTML paragraphs (about 300-700 bytes each) that entry bodies are assembled from."""
    rng = random.Random(f"{seed}:pool:{chinese}")
    pool = []
    for n in range(_PARAGRAPH_POOL):
        text = " ".join(_sentence(rng, chinese) for _ in range(rng.randint(3, 7)))
        extra = rng.choice(
            (
                "",
                f' <a href="/related/{n}.html">related</a>',
                f' <img src="images/{n}.jpg" alt="figure {n}">',
                f" <strong>{escape(_sentence(rng, chinese))}</strong>",
                f' <a href="https://example.com/{n}?a=1&amp;b=2">source</a>',
            )
        )
        pool.append(f"<p>{escape(text)}{extra}</p>")
    return pool


@dataclass
class FeedSpec:
    index: int
    atom: bool
    chinese: bool
    gzip: bool
    base_entries: int
    extra_entries: int = 0  # entries gained through mutations
    changes: int = 0
    cache: dict[bool, tuple[bytes, str]] = field(default_factory=dict)  # gzip? -> (body, etag)
    edits: dict[int, int] = field(default_factory=dict)  # entry number -> its edit version (0: as first served)
    fault: str = "ok"

    @property
    def entries(self) -> int:
        return self.base_entries + self.extra_entries

    @property
    def last_modified(self) -> datetime:
        return LAST_MODIFIED_BASE + timedelta(hours=self.changes)


class FeedCorpus:
    """The feeds and their bytes, generated on demand and cached until a mutation changes them."""

    def __init__(self, feeds: int, seed: int = 7, prerender: bool = False) -> None:
        self.seed = seed
        self.generation = 0
        # Render bodies ahead of the requests, as a server of static files would have them: rendering
        # and compressing a changed feed on its first request took ~5 ms of the server's CPU each, on
        # the cores the client under test is measured on.
        self.prerender = prerender
        rng = random.Random(f"{seed}:feeds")
        self.specs = [
            FeedSpec(
                index=i,
                atom=rng.random() < 0.3,
                chinese=rng.random() < 0.2,
                gzip=rng.random() < 0.3,
                base_entries=rng.randint(20, 50),
            )
            for i in range(feeds)
        ]
        self.pools = {False: _paragraph_pool(seed, False), True: _paragraph_pool(seed, True)}

    @property
    def total_entries(self) -> int:
        return sum(spec.entries for spec in self.specs)

    def mutate(self, fraction: float, add: int = 5) -> list[int]:
        """Next generation: a seeded sample of `fraction` of the feeds each gains `add` entries."""
        self.generation += 1
        rng = random.Random(f"{self.seed}:generation:{self.generation}")
        count = round(len(self.specs) * max(0.0, min(1.0, fraction)))
        changed = sorted(rng.sample(range(len(self.specs)), count))
        for index in changed:
            spec = self.specs[index]
            spec.extra_entries += add
            spec.changes += 1
            spec.cache.clear()
            if self.prerender:
                self.body(index, spec.gzip)
        return changed

    def edit(self, fraction: float) -> list[int]:
        """Edit one existing entry of a seeded sample of `fraction` of the feeds: its content changes, so
        an archive keeps the version before as a revision."""
        self.generation += 1
        rng = random.Random(f"{self.seed}:edit:{self.generation}")
        count = round(len(self.specs) * max(0.0, min(1.0, fraction)))
        changed = sorted(rng.sample(range(len(self.specs)), count))
        for index in changed:
            spec = self.specs[index]
            number = rng.randrange(spec.entries)
            spec.edits[number] = spec.edits.get(number, 0) + 1
            spec.changes += 1
            spec.cache.clear()
            if self.prerender:
                self.body(index, spec.gzip)
        return changed

    def body(self, index: int, compressed: bool) -> tuple[bytes, str]:
        spec = self.specs[index]
        cached = spec.cache.get(compressed)
        if cached is None:
            if compressed:
                plain, etag = self.body(index, False)
                cached = (gzip.compress(plain, compresslevel=6, mtime=0), etag[:-1] + '-gz"')
            else:
                plain = self._render(spec).encode()
                cached = (plain, '"' + hashlib.sha256(plain).hexdigest()[:20] + '"')
            spec.cache[compressed] = cached
        return cached

    def _entry(self, spec: FeedSpec, number: int) -> dict[str, str]:
        rng = random.Random(f"{self.seed}:{spec.index}:{number}")
        pool = self.pools[spec.chinese]
        size = rng.randint(1000, 5000)
        parts = [f"<p>Entry {number} of feed {spec.index}.</p>"]
        length = len(parts[0])
        while length < size:
            paragraph = rng.choice(pool)
            parts.append(paragraph)
            length += len(paragraph.encode())
        edit = spec.edits.get(number, 0)
        if edit:
            parts.append(f"<p>Edited: version {edit}.</p>")
        published = FIRST_DATE + timedelta(hours=number * 7, minutes=spec.index % 60, seconds=number % 60)
        title = _sentence(rng, spec.chinese)[:60]
        return {
            "id": f"urn:bench:{spec.index}:{number}",
            "link": f"https://feed{spec.index}.example.com/posts/{number}.html",
            "title": title,
            "html": "\n".join(parts),
            "summary": _sentence(rng, spec.chinese),
            "published": published.isoformat() if spec.atom else format_datetime(published),
            "author": f"Author {rng.randint(1, 9)}",
            "tags": "|".join(sorted({rng.choice(_WORDS) for _ in range(rng.randint(1, 3))})),
        }

    def _render(self, spec: FeedSpec) -> str:
        # Newest first, as real feeds are; entry numbers never change, so old entries keep their ids.
        entries = [self._entry(spec, n) for n in range(spec.entries - 1, -1, -1)]
        title = f"Benchmark feed {spec.index}" + (" 中文新闻" if spec.chinese else "")
        site = f"https://feed{spec.index}.example.com/"
        if spec.atom:
            return self._atom(spec, title, site, entries)
        return self._rss(spec, title, site, entries)

    @staticmethod
    def _rss(spec: FeedSpec, title: str, site: str, entries: list[dict[str, str]]) -> str:
        items = []
        for e in entries:
            tags = "".join(f"<category>{escape(t)}</category>" for t in e["tags"].split("|"))
            items.append(
                f"<item><title>{escape(e['title'])}</title><link>{e['link']}</link>"
                f'<guid isPermaLink="false">{e["id"]}</guid><pubDate>{e["published"]}</pubDate>'
                f"<author>{escape(e['author'])}</author>{tags}"
                f"<description>{escape(e['html'])}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>{site}</link><description>Feed {spec.index}</description>"
            f"<language>{'zh-cn' if spec.chinese else 'en'}</language>" + "\n".join(items) + "</channel></rss>\n"
        )

    @staticmethod
    def _atom(spec: FeedSpec, title: str, site: str, entries: list[dict[str, str]]) -> str:
        items = []
        for e in entries:
            tags = "".join(f'<category term="{escape(t)}"/>' for t in e["tags"].split("|"))
            items.append(
                f'<entry><title>{escape(e["title"])}</title><link href="{e["link"]}"/><id>{e["id"]}</id>'
                f"<published>{e['published']}</published><updated>{e['published']}</updated>"
                f"<author><name>{escape(e['author'])}</name></author>{tags}"
                f"<summary>{escape(e['summary'])}</summary>"
                f'<content type="html">{escape(e["html"])}</content></entry>'
            )
        updated = entries[0]["published"] if entries else FIRST_DATE.isoformat()
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f'<title>{escape(title)}</title><link href="{site}"/><id>urn:bench:feed:{spec.index}</id>'
            f"<updated>{updated}</updated>" + "\n".join(items) + "</feed>\n"
        )


def _not_modified(spec: FeedSpec, etag: str, headers: dict[str, str]) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        plain = etag.removesuffix('-gz"').removesuffix('"')
        return any(
            tag.strip().removeprefix("W/").strip('"').removesuffix("-gz") == plain.strip('"')
            for tag in if_none_match.split(",")
        )
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since:
        try:
            return parsedate_to_datetime(if_modified_since) >= spec.last_modified
        except (TypeError, ValueError):
            return False
    return False


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for GET and the control endpoints."""

    def __init__(self, corpus: FeedCorpus, latency: float, record: ServedRecord | None = None) -> None:
        self.corpus = corpus
        self.record = record if record is not None else ServedRecord()
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self._handle(head)

    def _handle(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._send(400, b"bad request\n", {}, close=True)
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        close = headers.get("connection", "").lower() == "close"
        status, body, extra = self._respond(method, target, headers)
        if status == -1:  # "reset": drop the connection without an answer
            if self.transport is not None:
                self.transport.abort()
            return
        if status == -2:  # "timeout": never answer; the client's deadline decides
            return
        if self.latency > 0:
            asyncio.get_running_loop().call_later(self.latency, self._send, status, body, extra, close)
        else:
            self._send(status, body, extra, close)

    def _respond(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        corpus = self.corpus
        if parts.path == "/_control/stats":
            return self._json(
                {"feeds": len(corpus.specs), "generation": corpus.generation, "entries": corpus.total_entries}
            )
        if parts.path == "/_control/mutate" and method == "POST":
            changed = corpus.mutate(float(query.get("fraction", "0.1")), int(query.get("add", "5")))
            return self._json(
                {"generation": corpus.generation, "changed": len(changed), "entries": corpus.total_entries}
            )
        if parts.path == "/_control/edit" and method == "POST":
            changed = corpus.edit(float(query.get("fraction", "0.05")))
            return self._json({"generation": corpus.generation, "edited": len(changed)})
        if parts.path == "/_control/faults" and method == "POST":
            kind = query.get("kind", "ok")
            chosen = [int(i) for i in query.get("feeds", "").split(",") if i.strip().isdigit()]
            for index in chosen:
                if index < len(corpus.specs):
                    corpus.specs[index].fault = kind
            return self._json({"kind": kind, "feeds": len(chosen)})
        if parts.path == "/_control/record":
            return self._json(self.record.report(corpus))
        name = parts.path.removeprefix("/feed/").removesuffix(".xml")
        if method not in ("GET", "HEAD") or not name.isdigit() or int(name) >= len(corpus.specs):
            return 404, b"not found\n", {"Content-Type": "text/plain"}
        spec = corpus.specs[int(name)]
        status, body, extra = self._feed(method, spec, headers)
        self.record.add(spec, headers.get("x-soak-client", "daemon"), status)
        return status, body, extra

    def _feed(self, method: str, spec: FeedSpec, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        corpus = self.corpus
        if spec.fault == "500":
            return 500, b"internal error\n", {"Content-Type": "text/plain"}
        if spec.fault == "reset":
            return -1, b"", {}
        if spec.fault == "timeout":
            return -2, b"", {}
        if spec.fault == "garbage":
            return 200, b"\x00\x01 this is not a feed <<<", {"Content-Type": "application/rss+xml"}
        compressed = spec.gzip and "gzip" in headers.get("accept-encoding", "")
        body, etag = corpus.body(spec.index, compressed)
        extra = {
            "Content-Type": "application/atom+xml" if spec.atom else "application/rss+xml; charset=utf-8",
            "ETag": etag,
            "Last-Modified": format_datetime(spec.last_modified, usegmt=True),
            "Vary": "Accept-Encoding",
        }
        if compressed:
            extra["Content-Encoding"] = "gzip"
        if _not_modified(spec, etag, headers):
            return 304, b"", extra
        return 200, body if method == "GET" else b"", extra

    @staticmethod
    def _json(value: object) -> tuple[int, bytes, dict[str, str]]:
        return 200, json.dumps(value).encode() + b"\n", {"Content-Type": "application/json"}

    def _send(self, status: int, body: bytes, headers: dict[str, str], close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}[
            status
        ]
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if status != 304:
            lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if close:
            self.transport.close()


class ServedRecord:
    """What the server answered, for a soak to check an archive against: each feed request's time, client
    and status, and for each edited entry the versions that went out in a full answer."""

    def __init__(self) -> None:
        self.requests: dict[int, list[tuple[float, str, int]]] = {}
        self.versions: dict[int, dict[int, set[int]]] = {}

    def add(self, spec: FeedSpec, client: str, status: int) -> None:
        self.requests.setdefault(spec.index, []).append((time.time(), client, status))
        if status == 200 and spec.fault == "ok":
            served = self.versions.setdefault(spec.index, {})
            for number in range(spec.entries):
                served.setdefault(number, set()).add(spec.edits.get(number, 0))

    def report(self, corpus: FeedCorpus) -> dict[str, object]:
        return {
            "requests": {str(i): r for i, r in self.requests.items()},
            "feeds": {
                str(spec.index): {
                    "entries": spec.entries,
                    "edits": {str(n): v for n, v in spec.edits.items()},
                    "served_versions": {
                        str(n): sorted(v) for n, v in self.versions.get(spec.index, {}).items() if v != {0}
                    },
                }
                for spec in corpus.specs
            },
        }


async def serve(corpus: FeedCorpus, port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    # Loopback only, always: this server exists to be hammered by a benchmark on this machine.
    record = ServedRecord()
    server = await loop.create_server(lambda: FeedProtocol(corpus, latency, record), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"serving {len(corpus.specs)} feeds on http://127.0.0.1:{bound}/", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--generation", type=int, default=0, help="start at this generation (10%% mutations)")
    parser.add_argument(
        "--warm", action="store_true", help="render every body before serving, and a mutation's before answering it"
    )
    args = parser.parse_args(argv)
    corpus = FeedCorpus(args.feeds, args.seed, prerender=args.warm)
    for _ in range(args.generation):
        corpus.mutate(0.1)
    if args.warm:
        for spec in corpus.specs:
            corpus.body(spec.index, spec.gzip)
    try:
        asyncio.run(serve(corpus, args.port, args.latency))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
