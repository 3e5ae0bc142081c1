"""A small HTTP/1.1 POST client for notifications: keep-alive connections per endpoint host,
a cap on concurrent connections per host, one overall timeout per request.

Why not httpx here: with hundreds of deliveries in flight its connection pool scans every
connection on each request (quadratic), which made the notifier CPU-bound at a few hundred
notifications a second. Notifications need little of HTTP: a POST with a body, a status
line back (a body by Content-Length, chunked, or to the close), no redirects followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_IDLE_PER_HOST = 32

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Poster:
    def __init__(self, *, timeout_s: float, per_host: int = 32) -> None:
        self.timeout_s = timeout_s
        self.per_host = per_host
        self.idle: dict[tuple[str, str, int], list[Connection]] = {}
        self.slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self.tls = ssl.create_default_context()

    async def post(self, uri: str, body: bytes, headers: dict[str, str]) -> int:
        """The response status; OSError, TimeoutError or ValueError when there is none."""
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {uri}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc.rsplit('@', 1)[-1]}",
                f"Content-Length: {len(body)}", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in headers.items() if "\r" not in v and "\n" not in v]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body
        slot = self.slots.setdefault(key, asyncio.Semaphore(self.per_host))
        async with slot:
            return await asyncio.wait_for(self._exchange(key, request), self.timeout_s)

    async def _exchange(self, key: tuple[str, str, int], request: bytes) -> int:
        reused = self._take(key)
        if reused is not None:
            try:
                return await self._once(key, reused, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the server closed an idle keep-alive connection: one fresh try
        return await self._once(key, await self._open(key), request)

    async def _once(self, key: tuple[str, str, int], conn: Connection, request: bytes) -> int:
        reader, writer = conn
        try:
            writer.write(request)
            await writer.drain()
            status, keep = await _response(reader)
        except BaseException:
            writer.close()
            raise
        if keep and len(self.idle.setdefault(key, [])) < MAX_IDLE_PER_HOST:
            self.idle[key].append(conn)
        else:
            writer.close()
        return status

    def _take(self, key: tuple[str, str, int]) -> Connection | None:
        pool = self.idle.get(key, [])
        while pool:
            reader, writer = pool.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def _open(self, key: tuple[str, str, int]) -> Connection:
        scheme, host, port = key
        if scheme == "https":
            return await asyncio.open_connection(host, port, ssl=self.tls, server_hostname=host,
                                                 limit=MAX_HEADER_BYTES)
        return await asyncio.open_connection(host, port, limit=MAX_HEADER_BYTES)

    async def close(self) -> None:
        for pool in self.idle.values():
            for _, writer in pool:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self.idle.clear()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection may be reused); the body is read and dropped."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValueError("response headers too large") from None
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _chunks(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY_BYTES:
            raise ValueError("response body too large")
        await reader.readexactly(length)
    elif status not in (204, 304) and status >= 200:
        await reader.read(MAX_BODY_BYTES)  # to the close
        keep = False
    return status, keep


async def _chunks(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError("response body too large")
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return
        await reader.readexactly(size + 2)
