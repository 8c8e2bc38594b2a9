"""RFB over the desktop's authenticated websocket, for the tests."""

from __future__ import annotations

from tornado.websocket import WebSocketClientConnection

from testkit.rfb import ByteStream


async def websocket_stream(
    url: str, token: str | None, headers: dict[str, str] | None = None
) -> tuple[ByteStream, WebSocketClientConnection]:
    """RFB over the desktop's websocket, authenticated by a token or by the given headers (cookies)."""
    headers = {**({"Authorization": f"token {token}"} if token else {}), **(headers or {})}
    stream = await ByteStream.websocket(url, headers)
    return stream, stream.connection  # type: ignore[attr-defined]
