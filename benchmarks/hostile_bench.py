"""Time and peak memory of parsing + normalising each hostile document family, one fresh process each.

    .venv/bin/python benchmarks/hostile_bench.py

Prints one row per family: seconds, the child's peak RSS, and what came out (entries or the error).
The documents are the ones tests/fetching/test_hostile.py serves, at full size.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.feeds import billion_laughs, item, quadratic_blowup, rss


def documents() -> dict[str, bytes]:
    laughs = billion_laughs()
    blowup = quadratic_blowup(4_000)
    return {
        "billion laughs": laughs,
        "quadratic blowup (100 KB -> 200 MB)": blowup,
        "deeply nested (200,000 levels)": b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        + b"<x>" * 200_000
        + b"</channel></rss>",
        "10,000 entries": rss([item(n, guid=f"n{n}") for n in range(10_000)]),
        "40,000-char author": rss([item(1, author="a" * 40_000)]),
        "500,000-char author": rss([item(1, author="a b" * 170_000)]),
        "20 MB of one text node": rss([item(1, description="x" * 20_000_000)]),
        "binary garbage (4 MB)": os.urandom(4 * 1024 * 1024),
        "surrogate reference": rss([item(1)]).replace(b"Item 1", b"&#xD800;"),
    }


def run(name: str, body: bytes) -> tuple[str, float, int, str]:
    from aggregator.parse_workers import ParseJob, run_parse_job

    started = time.perf_counter()
    result = run_parse_job(
        ParseJob(body, "https://f.example/", "https://f.example/", "application/rss+xml", None, None, datetime.now(UTC))
    )
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = f"{len(result.entries)} entries" if not isinstance(result, str) else result[:70]
    return name, seconds, peak_kb, outcome


def main() -> None:
    print("| case | seconds | peak RSS MB | outcome |\n|---|---|---|---|")
    for name, body in documents().items():
        with ProcessPoolExecutor(1) as pool:  # a fresh process per case: peak RSS is this case's own
            case, seconds, peak_kb, outcome = pool.submit(run, name, body).result()
        print(f"| {case} | {seconds:.2f} | {peak_kb / 1024:.0f} | {outcome} |")


if __name__ == "__main__":
    main()
