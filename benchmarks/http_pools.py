"""How httpx's connection pool size changes the CPU cost of a request (the numbers behind fetch.HttpClient).

Starts the benchmark feed server, learns every feed's ETag with one pass of GETs, then times passes of
1,000 conditional GETs (all answered 304) with N requests in flight, spread over pools of P connections
(N/P httpx transports), the same through one `httpx.AsyncClient`, and through the transports aggregator
uses (pools of two on its asyncio network backend for httpcore). Prints wall and CPU seconds.

    .venv/bin/python benchmarks/http_pools.py [--feeds 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time

import httpx
from run import start_server

from aggregator.fetching.client import SHARD_CONNECTIONS, _pool_transport


async def learn_etags(base: str, feeds: int) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        semaphore = asyncio.Semaphore(8)

        async def one(index: int) -> tuple[str, str]:
            url = f"{base}/feed/{index}.xml"
            async with semaphore:
                response = await client.get(url)
            return url, response.headers["ETag"]

        return await asyncio.gather(*(one(i) for i in range(feeds)))


async def transports_pass(
    targets: list[tuple[str, str]], in_flight: int, pool: int, ours: bool = False
) -> tuple[float, float]:
    """`ours`: the transports aggregator uses (fetch.py: pools of fetch.SHARD_CONNECTIONS on the asyncio
    network backend of netbackend.py) instead of httpx's defaults (anyio)."""
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    count = max(1, in_flight // pool)
    shards = (
        [_pool_transport(ssl.create_default_context()) for _ in range(count)]
        if ours
        else [httpx.AsyncHTTPTransport(limits=limits, verify=False) for _ in range(count)]
    )
    semaphores = [asyncio.Semaphore(pool) for _ in shards]
    timeout = httpx.Timeout(30).as_dict()

    async def one(index: int, url: str, etag: str) -> int:
        shard = index % len(shards)
        async with semaphores[shard]:
            request = httpx.Request("GET", url, headers={"If-None-Match": etag}, extensions={"timeout": timeout})
            response = await shards[shard].handle_async_request(request)
            try:
                async for _ in response.aiter_raw():  # read to the end: the connection stays alive
                    pass
            finally:
                await response.aclose()
            return response.status_code

    started, cpu = time.perf_counter(), time.process_time()
    statuses = await asyncio.gather(*(one(i, url, etag) for i, (url, etag) in enumerate(targets)))
    assert set(statuses) == {304}, set(statuses)
    result = time.perf_counter() - started, time.process_time() - cpu
    for shard in shards:
        await shard.aclose()
    return result


async def client_pass(targets: list[tuple[str, str]], in_flight: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    semaphore = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(url: str, etag: str) -> int:
            async with semaphore, client.stream("GET", url, headers={"If-None-Match": etag}) as response:
                async for _ in response.aiter_raw():
                    pass
                return response.status_code

        started, cpu = time.perf_counter(), time.process_time()
        statuses = await asyncio.gather(*(one(url, etag) for url, etag in targets))
        assert set(statuses) == {304}, set(statuses)
        return time.perf_counter() - started, time.process_time() - cpu


async def measure(base: str, feeds: int) -> None:
    targets = await learn_etags(base, feeds)
    print(f"{feeds} conditional GETs to one host, every one answered 304")
    print(f"{'layout':<40} {'wall s':>8} {'CPU s':>8}")
    for in_flight in (16, 32):
        wall, cpu = await client_pass(targets, in_flight)
        print(f"{f'one AsyncClient, {in_flight} in flight':<40} {wall:8.2f} {cpu:8.2f}")
        for pool in (in_flight, 4, 2, 1):
            wall, cpu = await transports_pass(targets, in_flight, pool)
            layout = f"{in_flight // pool} transport(s) x {pool} connections"
            print(f"{layout:<40} {wall:8.2f} {cpu:8.2f}")
        wall, cpu = await transports_pass(targets, in_flight, SHARD_CONNECTIONS, ours=True)
        layout = f"{in_flight // SHARD_CONNECTIONS} x {SHARD_CONNECTIONS}, asyncio backend (ours)"
        print(f"{layout:<40} {wall:8.2f} {cpu:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    args = parser.parse_args()
    server, base = start_server(args.feeds, seed=7, latency=0.0)
    try:
        asyncio.run(measure(base, args.feeds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
