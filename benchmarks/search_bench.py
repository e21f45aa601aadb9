"""Search latency on a 100,000-entry archive.

Builds the archive through the real write path (`Archive.record` with synthetic PollRecords of
normalised entries: half Chinese, half English, ~600 characters of text each), then times
`aggregator.search.search` for several kinds of query, median of repeated runs.

    .venv/bin/python benchmarks/search_bench.py [--entries 100000] [--db /tmp/search-bench.db]

The database is kept between runs (delete it to rebuild, e.g. after a change to the index's schema).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from aggregator.core.models import Entry, PollRecord
from aggregator.store.archive import Archive
from aggregator.store.search import search

CHINESE = [
    "税务",
    "征管",
    "改革",
    "纳税人",
    "缴费人",
    "发票",
    "增值税",
    "留抵退税",
    "减税降费",
    "智慧税务",
    "数据",
    "服务",
    "监管",
    "执法",
    "企业",
    "政策",
    "落实",
    "推进",
    "优化",
    "营商环境",
    "便民",
    "办税",
    "春风行动",
    "总局",
    "地方",
    "创新",
    "风险",
    "信用",
    "稽查",
    "申报",
]
ENGLISH = [
    "feed",
    "archive",
    "poll",
    "conditional",
    "request",
    "etag",
    "cache",
    "server",
    "client",
    "parser",
    "entry",
    "revision",
    "search",
    "index",
    "category",
    "publish",
    "reader",
    "subscriber",
    "update",
    "policy",
    "network",
    "timeout",
    "backoff",
    "history",
    "content",
    "title",
]
FEEDS = 200
QUERIES = [
    ("Chinese phrase, 4 chars", "征管改革"),
    ("Chinese word, 2 chars", "税务"),
    ("Chinese, 1 char", "税"),
    ("Chinese, two terms", "留抵退税 营商环境"),
    ("English word", "backoff"),
    ("English phrase", '"conditional request"'),
    ("English prefix", "subscri*"),
    ("rare word", "zyxwvut"),
    ("category filter", "征管改革 --category c3"),
]


def synthetic_entry(number: int, rng: random.Random) -> Entry:
    chinese = number % 2 == 0
    words = CHINESE if chinese else ENGLISH
    joiner = "" if chinese else " "
    paragraphs = [joiner.join(rng.choices(words, k=40 if chinese else 60)) for _ in range(3)]
    if number % 97 == 0:
        paragraphs.append("zyxwvut")
    title = joiner.join(rng.choices(words, k=6))
    html = "".join(f"<p>{p}</p>" for p in paragraphs)
    offset = timezone(timedelta(hours=8)) if chinese else UTC
    published = datetime(2020, 1, 1, tzinfo=offset) + timedelta(minutes=7 * number)
    digest = hashlib.sha256(f"{number}".encode()).hexdigest()
    return Entry(
        id=digest[:16],
        key=f"guid-{number}",
        link=f"https://source{number % FEEDS}.example/{number}",
        title=title,
        author="",
        summary="",
        content=html,
        published=published,
        updated=None,
        date_flag="",
        tags=(),
        enclosures=(),
        content_hash=digest,
    )


def build(path: Path, total: int) -> float:
    rng = random.Random(42)
    started = time.perf_counter()
    per_feed = total // FEEDS
    with Archive.open(path) as archive:
        number = 0
        for batch_start in range(0, FEEDS, 20):
            polls = []
            for feed in range(batch_start, batch_start + 20):
                entries = []
                for _ in range(per_feed):
                    entries.append(synthetic_entry(number, rng))
                    number += 1
                polls.append(
                    PollRecord(
                        url=f"https://source{feed}.example/feed.xml",
                        category=f"c{feed % 10}",
                        fetched_at=datetime.now(UTC),
                        status="ok",
                        consecutive_errors=0,
                        title=f"Source {feed}",
                        entries=tuple(entries),
                    )
                )
            archive.record(polls)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/search-bench.db"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if not args.db.exists():
        seconds = build(args.db, args.entries)
        print(f"built {args.entries} entries in {seconds:.1f}s ({args.db}, {args.db.stat().st_size / 1e6:.0f} MB)")
    with Archive.open(args.db) as archive:
        print(f"archive: {archive.count_entries()} entries, {archive.count_revisions()} revisions")
        print(f"{'query':32} {'text':24} {'hits':>5} {'median ms':>10} {'max ms':>8}")
        for label, text in QUERIES:
            query, _, category = text.partition(" --category ")
            timings, hits = [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                result = search(archive, query, category=category or None, limit=20)
                timings.append((time.perf_counter() - started) * 1000)
                hits = len(result.hits)
            print(f"{label:32} {text:24} {hits:>5} {statistics.median(timings):>10.1f} {max(timings):>8.1f}")


if __name__ == "__main__":
    main()
