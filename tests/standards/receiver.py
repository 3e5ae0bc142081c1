"""A minimal local HTTP receiver for notifications (asyncio streams; answers 204 or a set status)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson


class Receiver:
    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.received: list[tuple[float, dict[str, str], Any]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/notify"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def bodies(self) -> list[Any]:
        return [b for _, _, b in self.received]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                pairs = (line.partition(":") for line in lines[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append((time.monotonic(), headers, orjson.loads(body) if body else None))
                writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
