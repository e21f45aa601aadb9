"""An httpcore network backend on asyncio's own transports, for the fetcher's connection pools.

httpcore's default backend goes through anyio, which opens a cancel scope for every read and write
(each looks up the current task several times); on conditional GETs answered 304 that overhead is a
quarter of the client's CPU (1,000 requests, 16 in flight: 0.35 s through anyio, 0.26 s here;
benchmarks/http_pools.py).
Here a read that finds data already buffered returns it at once, and a timeout is a timer armed only
while a read or a write actually waits. `httpcore.AsyncNetworkBackend` is httpcore's documented
extension point for this; the errors raised are httpcore's, so httpx maps them as it does its own.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore

# Stop reading from the socket while this much is buffered and unread: a slow consumer of a large
# body must not make the buffer grow without bound.
HIGH_WATER = 256 * 1024
# As httpcore's backends declare them (setsockopt's argument shapes).
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended delay between connection attempts


class _StreamProtocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one reader (or writer) waiting on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        _wake(self._waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self._waiter)
        return False  # close the transport: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        _wake(self._waiter)
        _wake(self._drain)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self._drain)

    def take(self, max_bytes: int) -> bytes:
        chunk = self.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            self.chunks.appendleft(rest)
        self.buffered -= len(chunk)
        if self.reading_paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return chunk

    async def wait_readable(self, timeout: float | None) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await _wait(self._waiter, timeout, httpcore.ReadTimeout)
        finally:
            self._waiter = None

    async def wait_writable(self, timeout: float | None) -> None:
        self._drain = asyncio.get_running_loop().create_future()
        try:
            await _wait(self._drain, timeout, httpcore.WriteTimeout)
        finally:
            self._drain = None


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


async def _wait(future: asyncio.Future[None], timeout: float | None, error: type[Exception]) -> None:
    if timeout is None:
        await future
        return

    def expire() -> None:
        if not future.done():
            future.set_exception(error(f"no progress within {timeout:g}s"))

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._poller: select.poll | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.chunks:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the server closed the connection: httpcore knows what that means where it happens

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if self._protocol.writing_paused:
            await self._protocol.wait_writable(timeout)
            if self._protocol.error is not None:
                raise httpcore.WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        if self._transport.get_extra_info("ssl_object") is not None:
            # No waiting for the server's TLS close_notify (asyncio would, up to 30 s, holding the
            # socket): httpcore only closes a connection it is done with, as its own backends do.
            self._transport.abort()
        else:
            self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        if self._protocol.eof or self._transport.is_closing():
            # asyncio's handshake would wait for a peer already gone, past its own timeout.
            raise httpcore.ConnectError("the server closed the connection before the TLS handshake")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (ConnectionError, EOFError) as error:  # reset, or closed mid-handshake
            self._transport.abort()
            raise httpcore.ConnectError("the server closed the connection during the TLS handshake") from error
        except OSError as error:  # ssl.SSLError (a certificate refused...) included
            self._transport.abort()
            raise httpcore.ConnectError(str(error) or f"TLS handshake failed: {type(error).__name__}") from error
        assert isinstance(transport, asyncio.Transport)
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # Asked of an idle keep-alive connection before reuse: anything received, or the server's
            # close, means it must not be reused. On plain TCP, what the event loop has not delivered
            # yet counts too (a server that closes right after its response: its FIN may still sit in
            # the kernel). Not on TLS, where raw bytes on an idle connection are as often a session
            # ticket as a close; a request that meets a closed connection is sent again (client.py).
            if self._protocol.chunks or self._protocol.eof:
                return True
            return self._transport.get_extra_info("ssl_object") is None and self._socket_readable()
        return None

    def _socket_readable(self) -> bool:
        # One poll object per connection, registered once: httpcore asks several times per request
        # (every idle connection of the pool, each time it assigns one), and building a poll object
        # each time cost 17 us a question.
        if self._poller is None:
            sock = self._transport.get_extra_info("socket")
            if sock is None or sock.fileno() < 0:
                return True
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
        return bool(self._poller.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _StreamProtocol,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error) or type(error).__name__) from error
        except UnicodeError as error:  # asyncio IDNA-encodes the name: an empty or overlong label
            raise httpcore.ConnectError(f"invalid host name {host!r}: {error}") from error
        _apply_options(transport, socket_options)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_StreamProtocol, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {path} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error) or type(error).__name__) from error
        _apply_options(transport, socket_options)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _apply_options(
    transport: asyncio.Transport,
    options: Iterable[SocketOption] | None,
) -> None:
    sock = transport.get_extra_info("socket")
    for option in options or ():
        sock.setsockopt(*option)
